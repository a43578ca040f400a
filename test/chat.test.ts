// Tests of the bundled chat application (src/app.ts and the files it uses):
//   - unit tests of checkChatMessage (src/websocket.ts; readChatConfig has config.test.ts);
//   - the chat protocol against a real server process: the greeting, /chat only (403 elsewhere),
//     /healthz, invalid messages answered to their sender only and never broadcast, the server
//     rebuilding every broadcast (no extra or forged fields), binary messages closed with 1003;
//   - the late joiner (CHAT_HISTORY_SIZE=5, two workers): exactly the last 5 messages, then live
//     messages without gap or duplicate, even while messages are being published as it joins;
//   - startup fails with exit code 3, naming the variable, when a CHAT_* setting is malformed (one
//     process and --workers 2).
// The cluster tests (--workers 4, a killed worker) are in chat-cluster.test.ts and the slow
// consumer in chat-slow-consumer.test.ts; SubscriberQueue has its own file, subscriber-queue.test.ts,
// and the broadcast loop and hub broadcast.test.ts.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { readChatConfig, type ChatConfig } from '../src/config.js';
import { checkChatMessage } from '../src/websocket.js';
import { ChatClient, closeAll, healthz, within, type ChatMessage } from './helpers/chat-client.js';
import { MAIN_JS, PROJECT_ROOT, startServer, type RunningServer } from './helpers/server.js';

const DEFAULTS: ChatConfig = readChatConfig({ CHAT_DATA_DIR: '' });

// ---- unit: checkChatMessage ---------------------------------------------------------------------

describe('checkChatMessage', () => {
  const ok = (text: string, config: ChatConfig = DEFAULTS): Record<string, unknown> => {
    const result = checkChatMessage(text, config);
    assert.ok('tail' in result, `expected ${text.slice(0, 80)} to be accepted, got ${JSON.stringify(result)}`);
    // The tail is the end of the broadcast JSON: `"sender":…,"message":…}`.
    return JSON.parse(`{${result.tail}`) as Record<string, unknown>;
  };
  const rejected = (text: string, pattern: RegExp, config: ChatConfig = DEFAULTS): void => {
    const result = checkChatMessage(text, config);
    assert.ok('error' in result, `expected ${text.slice(0, 80)} to be rejected, got ${JSON.stringify(result)}`);
    assert.match(result.error, pattern);
  };

  test('a valid message becomes exactly sender and message; extra and forged fields are dropped', () => {
    assert.deepEqual(ok('{"sender":"ann","message":"hello"}'), { sender: 'ann', message: 'hello' });
    const rebuilt = ok('{"id":1,"ts":2,"sender":"ann","message":"hi","admin":true,"x":{"y":1}}');
    assert.deepEqual(rebuilt, { sender: 'ann', message: 'hi' });
  });

  test('text that would break the JSON it is spliced into is escaped', () => {
    const tricky = 'quote " backslash \\ brace } newline \n tab \t nul \u0000 "id":1,';
    assert.deepEqual(ok(JSON.stringify({ sender: 'a"b\\', message: tricky })), { sender: 'a"b\\', message: tricky });
  });

  const invalid: Array<[string, string, RegExp]> = [
    ['not JSON', 'hello', /JSON/],
    ['truncated JSON', '{"sender":"a","message":"b"', /JSON/],
    ['an array', '["a","b"]', /object/],
    ['null', 'null', /object/],
    ['a string', '"text"', /object/],
    ['a number', '42', /object/],
    ['sender not a string', '{"sender":1,"message":"b"}', /sender/],
    ['message not a string', '{"sender":"a","message":5}', /message/],
    ['missing message', '{"sender":"a"}', /message/],
    ['missing sender', '{"message":"b"}', /sender/],
    ['empty sender', '{"sender":"","message":"b"}', /sender/],
    ['blank sender', '{"sender":" \\t ","message":"b"}', /sender/],
    ['empty message', '{"sender":"a","message":""}', /message/],
    ['blank message', '{"sender":"a","message":" \\n "}', /message/],
    ['sender "server"', '{"sender":"server","message":"b"}', /server/],
  ];
  for (const [name, text, pattern] of invalid) {
    test(`rejects ${name}`, () => rejected(text, pattern));
  }

  test('length limits are inclusive and counted in characters (code points)', () => {
    ok(JSON.stringify({ sender: 's'.repeat(64), message: 'm'.repeat(4096) }));
    rejected(JSON.stringify({ sender: 's'.repeat(65), message: 'm' }), /sender.*64/);
    rejected(JSON.stringify({ sender: 's', message: 'm'.repeat(4097) }), /message.*4096/);
    // An emoji is one character (two UTF-16 units).
    ok(JSON.stringify({ sender: '😀'.repeat(64), message: '😀'.repeat(4096) }));
    rejected(JSON.stringify({ sender: '😀'.repeat(65), message: 'm' }), /sender/);
    rejected(JSON.stringify({ sender: 's', message: '😀'.repeat(4097) }), /message/);
  });

  test('the limits come from the config', () => {
    const small: ChatConfig = { ...DEFAULTS, maxSenderLength: 3, maxMessageLength: 5 };
    ok(JSON.stringify({ sender: 'abc', message: 'abcde' }), small);
    rejected(JSON.stringify({ sender: 'abcd', message: 'a' }), /sender.*3/, small);
    rejected(JSON.stringify({ sender: 'a', message: 'abcdef' }), /message.*5/, small);
  });
});

// ---- the chat protocol, against a real server -----------------------------------------------------

/** The keys of a broadcast chat message, sorted. */
const CHAT_KEYS = ['id', 'message', 'sender', 'ts'];
const isChat = (m: ChatMessage): boolean => typeof m.id === 'number';

describe('chat protocol (one process, CHAT_HISTORY_SIZE=0)', () => {
  let server: RunningServer;
  const clients: ChatClient[] = [];
  const join = async (name: string): Promise<ChatClient> => {
    const client = await ChatClient.join(server.wsUrl, name);
    clients.push(client);
    return client;
  };

  before(async () => {
    // No history: each new client's first chat message is a live one.
    server = await startServer({ env: { CHAT_HISTORY_SIZE: '0' } });
  });
  after(async () => {
    await closeAll(clients);
    await server?.stop();
  });

  test('GET /healthz reports this process and its open chat connections', async () => {
    const before = await healthz(server.port);
    assert.deepEqual(Object.keys(before).sort(), ['connections', 'pid', 'slow_consumers_closed', 'status']);
    assert.equal(before.status, 'ok');
    assert.equal(before.pid, server.proc.pid, 'one process: the pid is the server process');
    assert.equal(before.slow_consumers_closed, 0);
    const a = await join('health-a');
    const b = await join('health-b');
    assert.equal((await healthz(server.port)).connections, before.connections + 2);
    a.close();
    b.close();
    await a.waitClosed();
    await b.waitClosed();
    // The server notices the close on its own schedule: poll, bounded.
    const deadline = Date.now() + 5000;
    let now = await healthz(server.port);
    while (now.connections !== before.connections && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      now = await healthz(server.port);
    }
    assert.equal(now.connections, before.connections, 'closed connections are no longer counted');
  });

  test('WebSocket paths other than /chat get HTTP 403 before any accept', async () => {
    for (const path of ['/', '/chat/', '/chats', '/healthz', '/other']) {
      const status = await new Promise<number>((resolve, reject) => {
        const req = request({
          host: '127.0.0.1', port: server.port, path, agent: false,
          headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' },
        });
        req.on('response', (res) => { res.resume(); resolve(res.statusCode!); });
        req.on('upgrade', (_res, socket) => { socket.destroy(); reject(new Error(`${path}: the server accepted the WebSocket`)); });
        req.on('error', reject);
        req.setTimeout(5000, () => req.destroy(new Error(`${path}: no answer within 5 s`)));
        req.end();
      });
      assert.equal(status, 403, `WebSocket to ${path}`);
    }
  });

  test('a client is greeted first, and its message comes back to everyone as id, ts, sender, message', async () => {
    const a = await join('greet-a'); // join() asserts the greeting is the first message
    const b = await join('greet-b');
    const before = Date.now();
    a.say('ann', 'hello, world');
    const atA = await a.waitFor(isChat, 5000, 'ann\'s message at ann');
    const atB = await b.waitFor(isChat, 5000, 'ann\'s message at bob');
    assert.deepEqual(atA, atB, 'everyone gets the same message');
    assert.deepEqual(Object.keys(atA).sort(), CHAT_KEYS);
    assert.equal(atA.sender, 'ann');
    assert.equal(atA.message, 'hello, world');
    assert.ok(Number.isSafeInteger(atA.id), `id ${atA.id} is an integer`);
    const arrived = Date.now();
    // Same machine, same clock: the server stamped it between our send and its arrival.
    assert.ok(typeof atA.ts === 'number' && atA.ts >= before && atA.ts <= arrived, `ts ${atA.ts} is the server's time in ms (${before}..${arrived})`);
    a.say('ann', 'second');
    const next = await b.waitFor(isChat, 5000, 'the second message');
    assert.equal(next.id, atA.id! + 1, 'ids increase by one');
    assert.ok(next.ts! >= atA.ts!);
  });

  test('invalid messages get an error to their sender only, and nothing is published', async () => {
    const sender = await join('invalid-sender');
    const other = await join('invalid-other');
    const cases: Array<[string, string]> = [
      ['not JSON', 'hello there'],
      ['a JSON array', '["ann","hi"]'],
      ['JSON null', 'null'],
      ['a JSON string', '"hi"'],
      ['a JSON number', '3'],
      ['sender not a string', JSON.stringify({ sender: 7, message: 'hi' })],
      ['message not a string', JSON.stringify({ sender: 'ann', message: { text: 'hi' } })],
      ['no message', JSON.stringify({ sender: 'ann' })],
      ['no sender', JSON.stringify({ message: 'hi' })],
      ['empty sender', JSON.stringify({ sender: '', message: 'hi' })],
      ['blank sender', JSON.stringify({ sender: '   ', message: 'hi' })],
      ['empty message', JSON.stringify({ sender: 'ann', message: '' })],
      ['blank message', JSON.stringify({ sender: 'ann', message: '\n\t ' })],
      ['sender "server"', JSON.stringify({ sender: 'server', message: 'I am the server' })],
      ['sender over 64 characters', JSON.stringify({ sender: 'x'.repeat(65), message: 'hi' })],
      ['message over 4096 characters', JSON.stringify({ sender: 'ann', message: 'y'.repeat(4097) })],
    ];
    for (const [i, [name, text]] of cases.entries()) {
      sender.sendText(text);
      const reply = await sender.next(5000, `the error reply to ${name}`);
      if (name === 'not JSON') {
        // Neither a lobby message nor a rooms request: the answer has both error shapes' fields.
        assert.deepEqual(Object.keys(reply).sort(), ['action', 'error', 'error_message', 'sender', 'status'], `${name}: reply ${JSON.stringify(reply)}`);
        assert.deepEqual([reply.action, reply.status, reply.error], ['error', 'error', 'bad_request']);
        assert.match(String(reply.error_message), /^not valid JSON/);
      } else {
        assert.deepEqual(Object.keys(reply).sort(), ['error', 'sender'], `${name}: reply ${JSON.stringify(reply)}`);
        assert.ok(typeof reply.error === 'string' && reply.error.length > 0, `${name}: the error says what is wrong`);
      }
      assert.equal(reply.sender, 'server', name);
      // A valid marker after it: it must be the next thing anyone sees, so the invalid one
      // reached nobody (messages from one client are broadcast in the order they were sent).
      const marker = `marker ${i} after ${name}`;
      sender.say('ann', marker);
      const seenByOther = await other.next(5000, `the marker after ${name}`);
      assert.equal(seenByOther.message, marker, `${name}: the other client saw ${JSON.stringify(seenByOther)} before the marker`);
      const seenBySender = await sender.next(5000, `the marker after ${name}, at its sender`);
      assert.equal(seenBySender.message, marker, `${name}: the sender saw ${JSON.stringify(seenBySender)} before the marker`);
    }
    // The limits are inclusive: exactly 64 and 4096 characters are accepted.
    sender.say('s'.repeat(64), 'm'.repeat(4096));
    const longest = await other.next(5000, 'the longest valid message');
    assert.equal(longest.sender, 's'.repeat(64));
    assert.equal(longest.message, 'm'.repeat(4096));
    assert.ok(sender.isOpen && other.isOpen, 'invalid messages do not close the connection');
  });

  test('extra fields and a forged id or ts are dropped from the broadcast', async () => {
    const sender = await join('forger');
    const other = await join('forger-other');
    sender.sendText(JSON.stringify({ id: 1, ts: 2, sender: 'mallory', message: 'forged', admin: true, html: '<b>x</b>' }));
    const got = await other.waitFor(isChat, 5000, 'the forged message');
    assert.deepEqual(Object.keys(got).sort(), CHAT_KEYS);
    assert.equal(got.sender, 'mallory');
    assert.equal(got.message, 'forged');
    assert.notEqual(got.id, 1, 'the server assigns the id');
    assert.ok(got.ts! > 1_000_000_000_000, `the server assigns ts (got ${got.ts})`);
    await sender.waitFor(isChat, 5000, 'the forged message back at its sender');
    // A field named like the greeting's cannot be smuggled in either.
    sender.sendText('{"sender":"mallory","message":"x","sender":"server"}');
    const reply = await sender.next(5000, 'a reply to a duplicated "sender" key');
    // JSON.parse keeps the last duplicate: the sender is "server", which is refused.
    assert.equal(reply.sender, 'server');
    assert.ok(typeof reply.error === 'string', `expected an error, got ${JSON.stringify(reply)}`);
  });

  test('a binary message closes the connection with 1003', async () => {
    const client = await join('binary');
    const other = await join('binary-other');
    client.sendBinary(new TextEncoder().encode(JSON.stringify({ sender: 'bin', message: 'as bytes' })));
    const close = await client.waitClosed(5000);
    assert.equal(close.code, 1003, `close code (reason ${JSON.stringify(close.reason)})`);
    // Nothing was published: the other client's next message is a later marker.
    other.say('carol', 'after the binary');
    const next = await other.next(5000, 'the marker after the binary message');
    assert.equal(next.message, 'after the binary');
  });
});

// ---- the late joiner --------------------------------------------------------------------------------

describe('late joiner (CHAT_HISTORY_SIZE=5, --workers 2)', () => {
  let server: RunningServer;
  const clients: ChatClient[] = [];
  before(async () => {
    server = await startServer({ args: ['--workers', '2'], env: { CHAT_HISTORY_SIZE: '5' } });
  });
  after(async () => {
    await closeAll(clients);
    await server?.stop();
  });

  test('gets exactly the last 5 messages, then live ones without gap or duplicate', async () => {
    const publisher = await ChatClient.join(server.wsUrl, 'publisher');
    clients.push(publisher);
    const published: ChatMessage[] = [];
    for (let i = 1; i <= 8; i++) publisher.say('pub', `early ${i}`);
    for (let i = 1; i <= 8; i++) published.push(await publisher.waitFor(isChat, 5000, `early ${i} at the publisher`));
    assert.deepEqual(published.map((m) => m.message), [1, 2, 3, 4, 5, 6, 7, 8].map((i) => `early ${i}`));

    const late = await ChatClient.join(server.wsUrl, 'late'); // the greeting comes first
    clients.push(late);
    const history: ChatMessage[] = [];
    for (let i = 0; i < 5; i++) history.push(await late.next(5000, `history message ${i + 1} of 5`));
    assert.deepEqual(history, published.slice(3), 'the history is the last 5 messages, exactly as broadcast');
    // Nothing more until something is published: the next message is a live one.
    publisher.say('pub', 'live 1');
    const live = await late.next(5000, 'the first live message');
    assert.equal(live.message, 'live 1');
    assert.equal(live.id, history[4]!.id! + 1);
  });

  test('joining while messages are being published: consecutive ids from the history on', async () => {
    const publisher = await ChatClient.join(server.wsUrl, 'streamer');
    clients.push(publisher);
    // Publish in small bursts for as long as it takes the joiners to join, two bursts in flight
    // (a burst goes out when the one before the last came back), so that messages are always on
    // their way while a joiner subscribes; then stop and note the last id.
    let stop = false;
    let count = 0;
    const publishing = (async () => {
      let previous = 0;
      while (!stop || count < 40) {
        for (let i = 0; i < 5; i++) publisher.say('streamer', `stream ${++count}`);
        if (previous > 0) {
          const wanted = `stream ${previous}`;
          await publisher.seen((m) => m.message === wanted, 5000, `${wanted} back at the publisher`);
        }
        previous = count;
      }
    })();
    await publisher.seen((m) => m.message === 'stream 10', 5000, 'the stream to get going');
    // Several joiners, one after another: with two workers they land on both, and each joins
    // with messages in flight.
    const joiners: ChatClient[] = [];
    for (let j = 0; j < 8; j++) {
      const joiner = await ChatClient.join(server.wsUrl, `joiner ${j}`);
      joiners.push(joiner);
      clients.push(joiner);
    }
    stop = true;
    await within(publishing, 10000, 'the publisher to finish');
    const last = await publisher.seen((m) => m.message === `stream ${count}`, 5000, 'the last message at the publisher');
    for (const joiner of joiners) {
      await joiner.waitFor((m) => m.id === last.id, 5000, `${joiner.name}: the last message (id ${last.id})`);
      const ids = joiner.received.slice(1).map((m) => m.id);
      assert.ok(ids.length >= 5, `${joiner.name}: at least the 5 history messages`);
      for (let i = 1; i < ids.length; i++) {
        assert.equal(ids[i], ids[i - 1]! + 1, `${joiner.name}: id ${ids[i]} follows ${ids[i - 1]} (position ${i}); gap or duplicate`);
      }
      assert.equal(ids[ids.length - 1], last.id, `${joiner.name}: ends with the last message published`);
      assert.ok(joiner.received.slice(1).every((m) => isChat(m)), `${joiner.name}: only chat messages after the greeting`);
    }
  });
});

// ---- startup with a malformed setting -----------------------------------------------------------

/** Runs the server with `env`, expecting it to exit on its own; its exit code and output. */
async function runUntilExit(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 15000): Promise<{ code: number | string; output: string }> {
  const proc = spawn(process.execPath, [MAIN_JS, '--port', '0', '--host', '127.0.0.1', ...args], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, CHAT_DATA_DIR: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  proc.stdout.setEncoding('utf8').on('data', (s: string) => { output += s; });
  proc.stderr.setEncoding('utf8').on('data', (s: string) => { output += s; });
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  const [code, signal] = await once(proc, 'exit');
  clearTimeout(timer);
  return { code: (code ?? signal) as number | string, output };
}

describe('startup with a malformed CHAT_* setting', () => {
  const cases: Array<[string, NodeJS.ProcessEnv, string]> = [
    ['CHAT_HISTORY_SIZE=abc', { CHAT_HISTORY_SIZE: 'abc' }, 'CHAT_HISTORY_SIZE'],
    ['CHAT_QUEUE_MAX_BYTES=10 (below its minimum)', { CHAT_QUEUE_MAX_BYTES: '10' }, 'CHAT_QUEUE_MAX_BYTES'],
    ['CHAT_MAX_MESSAGE_LENGTH=-5', { CHAT_MAX_MESSAGE_LENGTH: '-5' }, 'CHAT_MAX_MESSAGE_LENGTH'],
    ['a history larger than the queue', { CHAT_HISTORY_SIZE: '20', CHAT_QUEUE_MAX_MESSAGES: '10' }, 'CHAT_HISTORY_SIZE'],
  ];
  for (const workers of ['1', '2']) {
    for (const [name, env, variable] of cases) {
      test(`--workers ${workers}, ${name}: exit code 3, naming ${variable}`, async () => {
        const { code, output } = await runUntilExit(['--workers', workers], env);
        // A bad setting is a startup failure (chat protocol, "Limits"; README, "Running"): exit 3.
        assert.equal(code, 3, `exit code; output:\n${output}`);
        assert.ok(output.includes(variable), `the output names ${variable}:\n${output}`);
        assert.doesNotMatch(output, /listening on/, 'it never announced that it was listening');
      });
    }
  }
});
