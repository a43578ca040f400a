// The chat's settings (src/config.ts): every variable read, every malformed value refused with a
// message naming the variable, CHAT_SECRET and CHAT_ALLOWED_ORIGINS, and the README's settings
// table kept equal to the declarations it is rendered from.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { CHAT_SETTINGS, readChatConfig, renderSettingsTable } from '../src/config.js';
import { MIN_SECRET_BYTES } from '../src/jwt.js';
import { PROJECT_ROOT } from './helpers/server.js';

describe('readChatConfig', () => {
  test('defaults: the declared ones, no secret (rooms off), no extra origins', () => {
    assert.deepEqual(readChatConfig({}), {
      historySize: 50, queueMaxMessages: 1000, queueMaxBytes: 1048576, maxSenderLength: 64, maxMessageLength: 4096,
      ratePerSecond: 20, rateBurst: 100, maxRoomMembers: 100, maxRoomsPerUser: 100, secret: null, allowedOrigins: [],
      dedupeWindow: 86400, dedupeMaxEntries: 100000, logSegmentBytes: 67108864, dataDir: 'data',
      redisSnapshotEvery: 10000, redisUrl: null,
    });
  });

  test('CHAT_REDIS_URL: parsed; empty means no Redis; a malformed one is refused, naming the variable', () => {
    assert.deepEqual(readChatConfig({ CHAT_REDIS_URL: 'redis://:pw@10.0.0.5:6380/2' }).redisUrl, { host: '10.0.0.5', port: 6380, username: null, password: 'pw', db: 2 });
    assert.equal(readChatConfig({ CHAT_REDIS_URL: ' ' }).redisUrl, null);
    assert.throws(() => readChatConfig({ CHAT_REDIS_URL: 'http://x' }), /^Error: CHAT_REDIS_URL: has the scheme http:\/\/: expected redis:\/\//);
  });

  test('CHAT_DATA_DIR: a path as given; empty or blank means memory only', () => {
    assert.equal(readChatConfig({ CHAT_DATA_DIR: '/var/lib/chat' }).dataDir, '/var/lib/chat');
    assert.equal(readChatConfig({ CHAT_DATA_DIR: '' }).dataDir, null);
    assert.equal(readChatConfig({ CHAT_DATA_DIR: '  ' }).dataDir, null);
  });

  test('reads every variable', () => {
    assert.deepEqual(readChatConfig({
      CHAT_HISTORY_SIZE: '5', CHAT_QUEUE_MAX_MESSAGES: '10', CHAT_QUEUE_MAX_BYTES: '2048',
      CHAT_MAX_SENDER_LENGTH: '7', CHAT_MAX_MESSAGE_LENGTH: '9', CHAT_RATE_PER_SECOND: '3', CHAT_RATE_BURST: '4',
      CHAT_MAX_ROOM_MEMBERS: '6', CHAT_MAX_ROOMS_PER_USER: '8', CHAT_SECRET: 'x'.repeat(32),
      CHAT_ALLOWED_ORIGINS: 'https://chat.example.com, http://localhost:3000',
      CHAT_DEDUPE_WINDOW: '60', CHAT_DEDUPE_MAX_ENTRIES: '11', CHAT_LOG_SEGMENT_BYTES: '65536', CHAT_DATA_DIR: 'here',
      CHAT_REDIS_SNAPSHOT_EVERY: '12', CHAT_REDIS_URL: 'redis://127.0.0.1:7000',
    }), {
      historySize: 5, queueMaxMessages: 10, queueMaxBytes: 2048, maxSenderLength: 7, maxMessageLength: 9,
      ratePerSecond: 3, rateBurst: 4, maxRoomMembers: 6, maxRoomsPerUser: 8, secret: Buffer.from('x'.repeat(32)),
      allowedOrigins: ['https://chat.example.com', 'http://localhost:3000'],
      dedupeWindow: 60, dedupeMaxEntries: 11, logSegmentBytes: 65536, dataDir: 'here',
      redisSnapshotEvery: 12, redisUrl: { host: '127.0.0.1', port: 7000, username: null, password: null, db: 0 },
    });
  });

  for (const setting of Object.values(CHAT_SETTINGS)) {
    for (const value of ['abc', '-1', '1.5', ' 5', '0x10', '1e3', String(setting.max + 1), ...(setting.min > 0 ? [String(setting.min - 1)] : [])]) {
      test(`refuses ${setting.env}=${JSON.stringify(value)} with a message naming it and its range`, () => {
        assert.throws(() => readChatConfig({ [setting.env]: value }), {
          message: `${setting.env} must be a whole number from ${setting.min} to ${setting.max}, got "${value}"`,
        });
      });
    }
  }

  test('the history must fit in a new subscriber\'s queue', () => {
    assert.throws(() => readChatConfig({ CHAT_HISTORY_SIZE: '20', CHAT_QUEUE_MAX_MESSAGES: '10' }), {
      message: 'CHAT_HISTORY_SIZE (20) must not exceed CHAT_QUEUE_MAX_MESSAGES (10)',
    });
  });

  test(`CHAT_SECRET: at least ${MIN_SECRET_BYTES} bytes of UTF-8; shorter stops startup, naming it`, () => {
    assert.deepEqual(readChatConfig({ CHAT_SECRET: 'é'.repeat(16) }).secret, Buffer.from('é'.repeat(16)), '16 × 2 bytes');
    assert.throws(() => readChatConfig({ CHAT_SECRET: 'x'.repeat(31) }), /^Error: CHAT_SECRET must be at least 32 bytes long, got 31/);
    assert.equal(readChatConfig({ CHAT_SECRET: '' }).secret, null, 'empty: rooms off');
  });

  test('CHAT_ALLOWED_ORIGINS: origins only, normalised as browsers send them', () => {
    assert.deepEqual(readChatConfig({ CHAT_ALLOWED_ORIGINS: 'HTTPS://Chat.Example.com:443,,http://x:8080' }).allowedOrigins, ['https://chat.example.com', 'http://x:8080']);
    for (const bad of ['chat.example.com', 'https://a.com/', 'https://a.com/path', 'https://a.com?q', 'ftp://a.com', 'https://u@a.com']) {
      assert.throws(() => readChatConfig({ CHAT_ALLOWED_ORIGINS: bad }), (error: Error) => error.message.startsWith(`CHAT_ALLOWED_ORIGINS: "${bad}" is not an origin`), bad);
    }
  });
});

test('the README\'s settings table is the one rendered from the declarations', () => {
  const readme = readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8');
  const match = /<!-- chat-settings:begin -->\n([\s\S]*?)\n<!-- chat-settings:end -->/.exec(readme);
  assert.ok(match, 'README.md has the chat-settings markers');
  assert.equal(match[1], renderSettingsTable(), 'README.md drifted from src/config.ts: run npm run build && node dist/readme-tables.js --write');
});
