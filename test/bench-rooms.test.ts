// Tests for src/bench/rooms.ts (with rooms-setup.ts and deliveries.ts under it): the rooms
// scenario against the real server, at a rate far below any limit, so that its counts are exact.
// What it must get right: every member signs in, every room is made, each message reaches its
// room's members and the publisher (whose copy is its acknowledgement), and error answers are
// counted apart from deliveries.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { roomsServerEnv, runRooms, type RoomsOptions } from '../src/bench/rooms.js';
import { startServer } from './helpers/server.js';

function options(port: number, secret: string, rate: number): RoomsOptions {
  return {
    target: { host: '127.0.0.1', port, path: '/chat' }, serverPid: null, size: 128,
    mode: 'fixed', rate, firstStep: 1, durationS: 1, rampStart: null, rampFactor: 1.5, stepS: 1, maxSteps: 1,
    drainS: 5, maxP99Ms: 60_000, minRatio: 0.999, threads: 1, concurrency: 20, connectTimeoutS: 10, log: () => {},
    // 3 rooms, 2 publishers: publisher 0 creates and publishes to rooms 0 and 2, publisher 1 to room 1.
    rooms: 3, members: 4, publishers: 2, secret: Buffer.from(secret, 'utf8'),
  };
}

describe('the rooms scenario', () => {
  test('every message reaches its room\'s members and its publisher, whose copy is the acknowledgement', async () => {
    const env = roomsServerEnv(3, 4, 2);
    const server = await startServer({ env });
    try {
      const result = await runRooms(options(server.port, env['CHAT_SECRET']!, 20));
      assert.equal(result.error, null);
      assert.deepEqual(result.setup.errors, {});
      assert.equal(result.setup.signed_in, 3 * 3 + 2);
      assert.equal(result.setup.rooms_created, 3);
      const step = result.fixed!;
      assert.equal(step.sent, 20);
      assert.equal(step.expected, 20 * 4); // 3 members and the publisher per message
      assert.equal(step.received, 20 * 4);
      assert.equal(step.acks, 20);
      assert.equal(step.passed, true);
      assert.deepEqual(result.error_answers, {});
      assert.equal(result.out_of_order, 0);
    } finally {
      await server.stop();
    }
  });

  test('a refused message is counted as an error answer, not as a delivery or an acknowledgement', async () => {
    // The server's default limit, made tiny: publisher 0 spends its 3 tokens on authenticate and
    // its two create_room, so almost every message is refused (`rate_limited`).
    const env: Record<string, string> = { ...roomsServerEnv(3, 4, 2), CHAT_RATE_PER_SECOND: '1', CHAT_RATE_BURST: '3' };
    const server = await startServer({ env });
    try {
      const result = await runRooms(options(server.port, env['CHAT_SECRET']!, 40));
      const step = result.fixed!;
      const refused = result.error_answers['rate_limited'] ?? 0;
      assert.ok(refused > 0);
      assert.deepEqual(Object.keys(result.error_answers), ['rate_limited']);
      assert.equal(step.acks! + refused, step.sent); // every message answered exactly once
      assert.equal(step.received, step.acks! * 4); // an accepted message reached its 4 connections
      assert.equal(step.passed, false);
    } finally {
      await server.stop();
    }
  });
});
