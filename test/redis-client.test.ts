// Tests for src/redis/client.ts (RedisClient) against a real redis-server started on a free port
// (test/helpers/redis-server.ts), and for src/redis/url.ts, backoffDelay() and isBlockingCommand(),
// which need no server. Without redis-server the server tests are skipped, except in CI.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { backoffDelay, isBlockingCommand, RedisClient, type RedisClientOptions } from '../src/redis/client.js';
import { RedisConnectionError, RedisReplyError, RespProtocolError } from '../src/redis/errors.js';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { describeRedisUrl, parseRedisUrl } from '../src/redis/url.js';
import { redisServerAvailable, skipWithoutRedis, startRedisServer, type RunningRedis } from './helpers/redis-server.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Asserts that `promise` rejects with a RedisConnectionError of this code (and mayHaveExecuted). */
async function rejectsWith(promise: Promise<unknown>, code: string, mayHaveExecuted?: boolean): Promise<RedisConnectionError> {
  let caught: unknown = null;
  await promise.then(() => assert.fail(`expected a RedisConnectionError ${code}, got a reply`), (error: unknown) => { caught = error; });
  assert.ok(caught instanceof RedisConnectionError, `expected a RedisConnectionError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (mayHaveExecuted !== undefined) assert.equal(caught.mayHaveExecuted, mayHaveExecuted, caught.message);
  return caught;
}

/** Counts a client's events. */
function countEvents(client: RedisClient): { connected: number; disconnected: number; reconnecting: number } {
  const counts = { connected: 0, disconnected: 0, reconnecting: 0 };
  client.on('connected', () => counts.connected++);
  client.on('disconnected', () => counts.disconnected++);
  client.on('reconnecting', () => counts.reconnecting++);
  return counts;
}

// ---------------------------------------------------------------------------------------------
// URLs.

test('parseRedisUrl: host, port, user, password and db, with the defaults', () => {
  assert.deepEqual(parseRedisUrl('redis://127.0.0.1:6380'), { host: '127.0.0.1', port: 6380, username: null, password: null, db: 0 });
  assert.deepEqual(parseRedisUrl('redis://localhost'), { host: 'localhost', port: 6379, username: null, password: null, db: 0 });
  assert.deepEqual(parseRedisUrl('redis://:s3cret@redis.internal:6379/2'), { host: 'redis.internal', port: 6379, username: null, password: 's3cret', db: 2 });
  assert.deepEqual(parseRedisUrl('redis://chat:p%40ss%3Aw%2Fd@10.0.0.5:7000/15/'), { host: '10.0.0.5', port: 7000, username: 'chat', password: 'p@ss:w/d', db: 15 });
  assert.deepEqual(parseRedisUrl('redis://[::1]:6379/0'), { host: '::1', port: 6379, username: null, password: null, db: 0 });
  assert.deepEqual(parseRedisUrl('  redis://h:1/  '), { host: 'h', port: 1, username: null, password: null, db: 0 });
});

test('parseRedisUrl: bad URLs get a clear message that never repeats the password', () => {
  const cases: [string, RegExp][] = [
    ['', /^is empty/],
    ['localhost:6379', /^has the scheme localhost:\/\/|^is not a valid URL/],
    ['not a url', /^is not a valid URL/],
    ['http://h:6379', /^has the scheme http:\/\//],
    ['rediss://:hunter2@h:6380', /^uses rediss:\/\/ \(Redis over TLS\), which this server does not support/],
    ['redis://:hunter2@h:99999', /^is not a valid URL \(is the port 1 to 65535/],
    ['redis://:hunter2@h:0', /^has the port 0: a port is 1 to 65535/],
    ['redis://:hunter2@h:6379/x', /^has the path "\/x": the only path allowed is a database number/],
    ['redis://:hunter2@h:6379/1/2', /^has the path "\/1\/2"/],
    ['redis://:hunter2@h:6379/-1', /^has the path "\/-1"/],
    ['redis://:hunter2@h:6379/0?timeout=1', /^has a query/],
    ['redis://:hunter2@h:6379/0#x', /^has a fragment \(#...\): a # in a password must be written %23/],
    ['redis://:hunter%2@h:6379', /^has a password with a bad %-escape/],
    ['redis://user@h:6379', /^has a user name but no password/],
    ['redis://', /^has no host|^is not a valid URL/],
  ];
  for (const [url, message] of cases) {
    assert.throws(() => parseRedisUrl(url), (error: unknown) => {
      assert.ok(error instanceof Error);
      assert.match(error.message, message, url);
      assert.doesNotMatch(error.message, /hunter/, 'the password is never in the message');
      return true;
    }, url);
  }
});

test('describeRedisUrl: the URL for logs, password masked', () => {
  assert.equal(describeRedisUrl(parseRedisUrl('redis://:s3cret@h:6379/2')), 'redis://:***@h:6379/2');
  assert.equal(describeRedisUrl(parseRedisUrl('redis://chat:s3cret@h:7000')), 'redis://chat:***@h:7000');
  assert.equal(describeRedisUrl(parseRedisUrl('redis://[::1]')), 'redis://[::1]:6379');
});

test('RedisClient refuses a bad URL in its constructor', () => {
  assert.throws(() => new RedisClient({ url: 'redis://h:6379/x' }), /has the path/);
});

// ---------------------------------------------------------------------------------------------
// Backoff and blocking commands.

test('backoffDelay: equal jitter under a cap that doubles per attempt up to the maximum', () => {
  const low = (): number => 0;
  const high = (): number => 0.999999;
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8, 20, 1000].map((a) => backoffDelay(a, 100, 5000, low)), [50, 100, 200, 400, 800, 1600, 2500, 2500, 2500, 2500]);
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8, 20, 1000].map((a) => backoffDelay(a, 100, 5000, high)), [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000]);
  assert.equal(backoffDelay(3, 100, 5000, () => 0.5), 300);
});

test('isBlockingCommand: the B* list commands, WAIT, and XREAD / XREADGROUP with BLOCK before STREAMS', () => {
  assert.equal(isBlockingCommand(['XREAD', 'BLOCK', 0, 'STREAMS', 's', '$']), true);
  assert.equal(isBlockingCommand(['xread', 'count', 10, 'block', 5000, 'streams', 's', '0']), true);
  assert.equal(isBlockingCommand(['XREADGROUP', 'GROUP', 'g', 'c', 'BLOCK', 10, 'STREAMS', 's', '>']), true);
  assert.equal(isBlockingCommand(['XREAD', 'STREAMS', 'block', '0']), false, 'a stream named "block" is not the option');
  assert.equal(isBlockingCommand(['XREAD', 'COUNT', 1, 'STREAMS', 's', '0']), false);
  assert.equal(isBlockingCommand([Buffer.from('BLPOP'), 'q', 0]), true);
  assert.equal(isBlockingCommand(['WAIT', 1, 0]), true);
  assert.equal(isBlockingCommand(['GET', 'block']), false);
});

test('a client that was never connected refuses commands at once: not connected, not executed', async () => {
  const client = new RedisClient({ url: 'redis://127.0.0.1:1' });
  await rejectsWith(client.command(['PING']), 'REDIS_ERR_NOT_CONNECTED', false);
  await client.close();
  await rejectsWith(client.command(['PING']), 'REDIS_ERR_CLOSED', false);
});

test('connect() to a port where nothing listens rejects with the socket error, and the client keeps trying', async () => {
  const client = new RedisClient({ url: 'redis://127.0.0.1:1', reconnectInitialDelayMs: 10, reconnectMaxDelayMs: 20 });
  const counts = countEvents(client);
  await assert.rejects(client.connect(), (error: NodeJS.ErrnoException) => error.code === 'ECONNREFUSED');
  while (counts.reconnecting < 3) await once(client, 'reconnecting');
  assert.equal(counts.disconnected, 0, 'never connected: nothing to report as lost');
  await client.close();
});

/** A fake Redis on 127.0.0.1 that answers each chunk it reads with `answer(text)` (nothing if null). */
async function fakeRedis(answer: (text: string) => string | null): Promise<{ url: string; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('data', (chunk) => {
      const reply = answer(chunk.toString('latin1'));
      if (reply !== null) socket.write(reply);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `redis://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}

test('a server that accepts but never answers the handshake: connect() fails with REDIS_ERR_CONNECT_TIMEOUT', async () => {
  const fake = await fakeRedis(() => null);
  const client = new RedisClient({ url: fake.url, connectTimeoutMs: 100, reconnectInitialDelayMs: 1000 });
  await assert.rejects(client.connect(), (error: unknown) => error instanceof RedisConnectionError && error.code === 'REDIS_ERR_CONNECT_TIMEOUT');
  await client.close();
  await fake.close();
});

test('a reply that breaks RESP drops the connection: the commands in flight reject, the client reconnects', async () => {
  // The handshake's PING is answered; the first real command gets a byte that is no RESP type.
  let connections = 0;
  const fake = await fakeRedis((text) => {
    if (text.includes('PING')) { connections++; return '+PONG\r\n'; }
    return connections === 1 ? '?garbage\r\n' : '+fine\r\n';
  });
  const client = new RedisClient({ url: fake.url, reconnectInitialDelayMs: 10, reconnectMaxDelayMs: 20 });
  await client.connect();
  const lost = once(client, 'disconnected');
  const error = await rejectsWith(client.command(['GET', 'k']), 'REDIS_ERR_CONNECTION_LOST', true);
  assert.ok(error.cause instanceof RespProtocolError && error.cause.code === 'RESP_ERR_BAD_TYPE', String(error.cause));
  const [cause] = await lost;
  assert.ok(cause instanceof RespProtocolError);
  await once(client, 'connected');
  assert.equal(await client.command(['GET', 'k']), 'fine');
  await client.close();
  await fake.close();
});

// ---------------------------------------------------------------------------------------------
// Against a real redis-server.

const HAVE_REDIS = redisServerAvailable();

describe('RedisClient against redis-server', () => {
  let redis: RunningRedis;
  const clients: RedisClient[] = [];
  const open = async (options: Partial<RedisClientOptions> = {}): Promise<RedisClient> => {
    const client = new RedisClient({ url: redis.url, ...options });
    clients.push(client);
    await client.connect();
    return client;
  };

  before(async () => {
    if (HAVE_REDIS) redis = await startRedisServer();
  });
  after(async () => {
    for (const client of clients) await client.close();
    if (HAVE_REDIS) await redis.stop();
  });

  test('SET and GET, as strings or as Buffers', async (t) => {
    if (skipWithoutRedis(t)) return;
    const client = await open();
    assert.equal(await client.command(['SET', 'greeting', 'h€llo']), 'OK');
    assert.equal(await client.command(['GET', 'greeting']), 'h€llo');
    const binary = Buffer.from([0, 255, 13, 10, 128]);
    await client.command(['SET', 'binary', binary]);
    assert.deepEqual(await client.command(['GET', 'binary'], { buffers: true }), binary);
    assert.equal(await client.command(['GET', 'missing']), null);
    assert.equal(await client.command(['INCRBY', 'counter', 41]), 41);
  });

  test('pipelining: 1000 INCRs issued in one turn are written with one socket write and answered in order', async (t) => {
    if (skipWithoutRedis(t)) return;
    const client = await open();
    await client.command(['DEL', 'pipelined']);
    const writesBefore = client.stats.writes;
    const replies = Array.from({ length: 1000 }, () => client.command(['INCR', 'pipelined']));
    assert.equal(client.pendingCount, 1000);
    assert.deepEqual(await Promise.all(replies), Array.from({ length: 1000 }, (_, i) => i + 1));
    assert.equal(client.stats.writes - writesBefore, 1, 'one write for the whole turn');
  });

  test('an error reply rejects only its own command, with Redis\'s code and the command\'s name', async (t) => {
    if (skipWithoutRedis(t)) return;
    const client = await open();
    const set = client.command(['SET', 'a-string', 'x']);
    const wrong = client.command(['LPUSH', 'a-string', 'y']);
    const unknown = client.command(['NOSUCHCOMMAND']);
    const get = client.command(['GET', 'a-string']);
    assert.equal(await set, 'OK');
    await assert.rejects(wrong, (error: unknown) => error instanceof RedisReplyError && error.code === 'WRONGTYPE' && error.command === 'LPUSH');
    await assert.rejects(unknown, (error: unknown) => error instanceof RedisReplyError && error.code === 'ERR' && /unknown command/.test(error.message));
    assert.equal(await get, 'x');
    assert.equal(client.connected, true);
  });

  test('SELECT from the URL: a key set in db 3 is not in db 0', async (t) => {
    if (skipWithoutRedis(t)) return;
    const db3 = await open({ url: `${redis.url}/3` });
    const db0 = await open();
    await db3.command(['SET', 'only-in-3', 'yes']);
    assert.equal(await db3.command(['GET', 'only-in-3']), 'yes');
    assert.equal(await db0.command(['GET', 'only-in-3']), null);
    const bad = new RedisClient({ url: `${redis.url}/99` });
    await assert.rejects(bad.connect(), (error: unknown) => error instanceof RedisConnectionError && error.code === 'REDIS_ERR_HANDSHAKE' && /refused SELECT: ERR DB index is out of range/.test(error.message));
    await bad.close();
  });

  test('XADD and XRANGE round trip, field values as sent', async (t) => {
    if (skipWithoutRedis(t)) return;
    const client = await open();
    const id1 = await client.command(['XADD', 'room:1', '*', 'user', 'ann', 'text', 'h€llo']);
    const id2 = await client.command(['XADD', 'room:1', '*', 'user', 'bob', 'text', 'line\r\nbreak']);
    assert.match(String(id1), /^\d+-\d+$/);
    assert.deepEqual(await client.command(['XRANGE', 'room:1', '-', '+']), [
      [id1, ['user', 'ann', 'text', 'h€llo']],
      [id2, ['user', 'bob', 'text', 'line\r\nbreak']],
    ]);
    assert.deepEqual(await client.command(['XREVRANGE', 'room:1', '+', '-', 'COUNT', 1]), [[id2, ['user', 'bob', 'text', 'line\r\nbreak']]]);
  });

  test('RESP3 (HELLO 3): maps come as Map, the same commands work', async (t) => {
    if (skipWithoutRedis(t)) return;
    const client = await open({ protocol: 3 });
    await client.command(['HSET', 'h3', 'a', '1', 'b', '2']);
    assert.deepEqual(await client.command(['HGETALL', 'h3']), new Map([['a', '1'], ['b', '2']]));
    const id = await client.command(['XADD', 'room:3', '*', 'text', 'hi']);
    assert.deepEqual(await client.command(['XREAD', 'STREAMS', 'room:3', '0']), new Map([['room:3', [[id, ['text', 'hi']]]]]));
    assert.equal(await client.command(['GET', 'missing']), null);
  });

  test('a blocking XREAD on a second client is woken by an XADD from the first; its connection takes nothing else meanwhile', async (t) => {
    if (skipWithoutRedis(t)) return;
    const writer = await open();
    const reader = await open();
    const last = await writer.command(['XADD', 'room:blocking', '*', 'text', 'before']);
    const read = reader.command(['XREAD', 'BLOCK', 0, 'STREAMS', 'room:blocking', String(last)]);
    // The reader's connection is held by the XREAD: another command there is refused at once,
    // rather than left waiting behind it for as long as the BLOCK lasts.
    await rejectsWith(reader.command(['PING']), 'REDIS_ERR_BLOCKED', false);
    await sleep(50); // the XREAD is at the server, waiting
    const id = await writer.command(['XADD', 'room:blocking', '*', 'text', 'wake up']);
    assert.deepEqual(await read, [['room:blocking', [[id, ['text', 'wake up']]]]]);
    // Once answered, the connection takes commands again, in order.
    assert.equal(await reader.command(['PING']), 'PONG');
  });

  test('maxPending: commands beyond the bound are refused at once, the others answered', async (t) => {
    if (skipWithoutRedis(t)) return;
    const client = await open({ maxPending: 5 });
    const accepted = Array.from({ length: 5 }, (_, i) => client.command(['ECHO', String(i)]));
    await rejectsWith(client.command(['ECHO', 'one too many']), 'REDIS_ERR_TOO_MANY_PENDING', false);
    assert.deepEqual(await Promise.all(accepted), ['0', '1', '2', '3', '4']);
    assert.equal(await client.command(['ECHO', 'room again']), 'room again');
  });

  test('a command timeout rejects that command and remakes the connection, so no late reply is mismatched', async (t) => {
    if (skipWithoutRedis(t)) return;
    const client = await open({ reconnectInitialDelayMs: 10, reconnectMaxDelayMs: 20 });
    const counts = countEvents(client);
    const reconnected = once(client, 'connected');
    await rejectsWith(client.command(['BLPOP', 'never-filled', 0], { timeoutMs: 100 }), 'REDIS_ERR_COMMAND_TIMEOUT', true);
    await reconnected;
    assert.deepEqual({ connected: counts.connected, disconnected: counts.disconnected }, { connected: 1, disconnected: 1 });
    assert.equal(await client.command(['ECHO', 'after']), 'after');
  });

  test('close(): commands in flight reject with REDIS_ERR_CLOSED, later ones too, and nothing reconnects', async (t) => {
    if (skipWithoutRedis(t)) return;
    const client = new RedisClient({ url: redis.url });
    await client.connect();
    const counts = countEvents(client);
    // Expectations are attached at once: a rejection left unhandled across a turn fails the test run.
    const blocked = rejectsWith(client.command(['BLPOP', 'never-filled', 0]), 'REDIS_ERR_CLOSED', true);
    await sleep(20);
    await client.close();
    await blocked;
    await rejectsWith(client.command(['PING']), 'REDIS_ERR_CLOSED', false);
    await sleep(50);
    assert.deepEqual(counts, { connected: 0, disconnected: 0, reconnecting: 0 });
  });
});

describe('RedisClient and AUTH', () => {
  let redis: RunningRedis;
  const PASSWORD = 'correct horse:battery@staple';

  before(async () => {
    if (HAVE_REDIS) redis = await startRedisServer({ password: PASSWORD });
  });
  after(async () => {
    if (HAVE_REDIS) await redis.stop();
  });

  test('the right password (with or without the user name "default") connects', async (t) => {
    if (skipWithoutRedis(t)) return;
    for (const url of [redis.url, `redis://default:${encodeURIComponent(PASSWORD)}@127.0.0.1:${redis.port}`]) {
      for (const protocol of [2, 3] as const) {
        const client = new RedisClient({ url, protocol });
        await client.connect();
        assert.equal(await client.command(['PING']), 'PONG');
        await client.close();
      }
    }
  });

  test('a wrong password, or none, fails connect() with a clear error that does not show the password', async (t) => {
    if (skipWithoutRedis(t)) return;
    const cases: [string, 2 | 3, RegExp][] = [
      [`redis://:wrong-secret@127.0.0.1:${redis.port}`, 2, /refused AUTH: WRONGPASS invalid username-password pair or user is disabled\. \(check the user name and password in the URL\)$/],
      [`redis://:wrong-secret@127.0.0.1:${redis.port}`, 3, /refused HELLO: WRONGPASS .*\(check the user name and password in the URL\)$/],
      [`redis://127.0.0.1:${redis.port}`, 2, /refused PING: NOAUTH Authentication required\. \(the server requires a password, and the URL has none/],
    ];
    for (const [url, protocol, message] of cases) {
      const client = new RedisClient({ url, protocol });
      await assert.rejects(client.connect(), (error: unknown) => {
        assert.ok(error instanceof RedisConnectionError, String(error));
        assert.equal(error.code, 'REDIS_ERR_HANDSHAKE');
        assert.match(error.message, message);
        assert.match(error.message, new RegExp(`^redis://127\\.0\\.0\\.1:${redis.port} refused`));
        assert.doesNotMatch(error.message, /wrong-secret|horse/);
        return true;
      });
      assert.equal(client.connected, false);
      await rejectsWith(client.command(['PING']), 'REDIS_ERR_NOT_CONNECTED', false);
      await client.close();
    }
  });
});

describe('RedisClient when redis-server dies and comes back', () => {
  let redis: RunningRedis;
  before(async () => {
    if (HAVE_REDIS) redis = await startRedisServer({ appendonly: true });
  });
  after(async () => {
    if (HAVE_REDIS) await redis.stop();
  });

  test('kill -9 with commands in flight: they reject (may have run); commands while down reject at once; the client reconnects by itself, one event each way', async (t) => {
    if (skipWithoutRedis(t)) return;
    const options = { url: redis.url, reconnectInitialDelayMs: 20, reconnectMaxDelayMs: 80 };
    const control = new RedisClient(options);
    const worker = new RedisClient(options);
    const reader = new RedisClient(options);
    await Promise.all([control.connect(), worker.connect(), reader.connect()]);
    const counts = countEvents(worker);
    const readerCounts = countEvents(reader);
    try {
      // Hold every client's commands at the server, so that they are surely in flight at the kill.
      assert.equal(await control.command(['CLIENT', 'PAUSE', 30_000, 'ALL']), 'OK');
      // (Expectations attached at once: the two connections are lost in separate turns.)
      const inFlight = Array.from({ length: 10 }, () => rejectsWith(worker.command(['INCR', 'during-kill']), 'REDIS_ERR_CONNECTION_LOST', true));
      const blockedRead = rejectsWith(reader.command(['XREAD', 'BLOCK', 0, 'STREAMS', 'room:kill', '$']), 'REDIS_ERR_CONNECTION_LOST', true);
      await sleep(100); // written, and held by the pause
      const lost = once(worker, 'disconnected');
      await redis.kill9();
      await Promise.all(inFlight);
      await blockedRead;
      const [cause] = await lost;
      assert.ok(cause instanceof Error);

      // While Redis is down: refused at once, never queued. Let several attempts fail meanwhile.
      await rejectsWith(worker.command(['INCR', 'while-down']), 'REDIS_ERR_NOT_CONNECTED', false);
      while (counts.reconnecting < 3) await once(worker, 'reconnecting');
      await rejectsWith(worker.command(['INCR', 'while-down']), 'REDIS_ERR_NOT_CONNECTED', false);

      const back = [once(worker, 'connected'), once(reader, 'connected')];
      await redis.restart();
      await Promise.all(back);
      assert.equal(await worker.command(['ECHO', 'back']), 'back');
      assert.equal(await reader.command(['ECHO', 'back']), 'back');
      // One episode: one 'disconnected' and one 'connected', however many attempts failed between.
      assert.deepEqual({ connected: counts.connected, disconnected: counts.disconnected }, { connected: 1, disconnected: 1 });
      assert.deepEqual({ connected: readerCounts.connected, disconnected: readerCounts.disconnected }, { connected: 1, disconnected: 1 });
      assert.ok(counts.reconnecting >= 3);
    } finally {
      await Promise.all([control.close(), worker.close(), reader.close()]);
    }
  });
});
