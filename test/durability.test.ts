// The message log's promises, end to end, through real server processes and real sockets (issue 9):
//   - kill -9 of the whole --workers 4 tree right after a burst of acknowledgements: after a
//     restart every acknowledged room message and every delivered lobby message is there, with
//     the same id and text, in the same order, once;
//   - a retried new_message (same uuid) after a kill -9 and a restart gets the original message;
//   - resume across a restart: the lobby's `/chat?since=` and the rooms' `select_room` with
//     `since`, without a gap (recovered: true, exactly what was missed) and with one (false);
//   - a torn tail (garbage after the last record, or the last record cut short) is cut with a
//     warning and the server starts with everything before it;
//   - a bad record in the middle of the log stops startup with exit 3 (one process and a
//     cluster), naming the file and the byte offset and saying how to repair;
//   - a real full disk (a small tmpfs): the writes that fail get `unavailable` / the lobby's error
//     line and reach nobody, one log line per episode, and writes resume by themselves once space
//     is freed; after a restart exactly the acknowledged messages are there;
//   - a second server on a data directory in use exits 3 and says so.
// The lower layers are tested on their own in log-message-log.test.ts and chat-log.test.ts; this
// file checks that the whole server keeps their promises when processes die.
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, readdirSync, rmSync, statfsSync, truncateSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ChatClient, closeAll, type ChatMessage } from './helpers/chat-client.js';
import { RoomsConnection, messageOf, newSecret, newUuid, type MessageObject } from './helpers/rooms-client.js';
import { freshDataDir, runMain, startServer, type RunningServer } from './helpers/server.js';
import { mountTmpfs } from './helpers/tmpfs.js';

/** The rate limit out of the way: these tests publish bursts from one connection. */
const NO_RATE_LIMIT = { CHAT_RATE_PER_SECOND: '1000000', CHAT_RATE_BURST: '1000000' };

interface Setup {
  dir: string;
  secret: string;
  env: NodeJS.ProcessEnv;
}

function setup(t: { after(fn: () => void): void }, env: NodeJS.ProcessEnv = {}): Setup {
  const dir = freshDataDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const secret = newSecret();
  return { dir, secret, env: { CHAT_SECRET: secret, CHAT_DATA_DIR: dir, ...NO_RATE_LIMIT, ...env } };
}

/** A server on the setup's data directory, in a process group of its own (killTree). */
function start(s: Setup, workers = 1): Promise<RunningServer> {
  return startServer({ args: ['--workers', String(workers)], env: s.env, detached: true, timeoutMs: 30_000 });
}

/** The lobby messages a connection received (not the greeting, not the rooms' frames). */
function lobbyMessages(received: readonly ChatMessage[]): ChatMessage[] {
  return received.filter((m) => typeof m.id === 'number' && m.action === undefined);
}

/**
 * Joins the lobby (with `since`, if given) and returns the greeting and the history: what arrived
 * before a marker this client publishes after joining (the marker is live, so the history is
 * everything before it).
 */
async function lobbyHistory(wsUrl: string, since?: number): Promise<{ greeting: ChatMessage; history: ChatMessage[] }> {
  const client = await ChatClient.connect(wsUrl, { path: since === undefined ? '/chat' : `/chat?since=${since}`, name: 'history reader' });
  try {
    const greeting = await client.next(5000, 'the greeting');
    const marker = `marker-${newUuid()}`;
    client.say('reader', marker);
    await client.waitFor((m) => m.message === marker, 10_000, 'the marker');
    const received = lobbyMessages(client.received);
    return { greeting, history: received.slice(0, received.findIndex((m) => m.message === marker)) };
  } finally {
    await closeAll([client]);
  }
}

/** The segment files of a data directory, oldest first, as full paths. */
function segmentFiles(dir: string): string[] {
  return readdirSync(dir).filter((name) => /^\d{20}\.log$/.test(name)).sort().map((name) => join(dir, name));
}

/** The records of a segment file: offset, and payload as text (record.ts: length, CRC-32, payload). */
function recordsOf(file: string): Array<{ offset: number; length: number; payload: string }> {
  const bytes = readFileSync(file);
  const records: Array<{ offset: number; length: number; payload: string }> = [];
  for (let offset = 0; offset + 8 <= bytes.length;) {
    const length = bytes.readUInt32BE(offset);
    records.push({ offset, length, payload: bytes.toString('utf8', offset + 8, offset + 8 + length) });
    offset += 8 + length;
  }
  return records;
}

function byId(a: { id: number }, b: { id: number }): number {
  return a.id - b.id;
}

test('kill -9 of the whole --workers 4 tree right after a burst: every acknowledged room message and every delivered lobby message comes back, once, in order', async (t) => {
  const s = setup(t, { CHAT_HISTORY_SIZE: '2000', CHAT_QUEUE_MAX_MESSAGES: '10000' });
  const server = await start(s, 4);
  t.after(() => server.killTree());
  const connections: RoomsConnection[] = [];
  t.after(() => closeAll(connections.map((c) => c.chat)));
  // Sequential connections: the cluster's round-robin puts them on different workers.
  for (const user of ['alice', 'bob', 'cara', 'alice']) connections.push(await RoomsConnection.signIn(server.wsUrl, s.secret, user, `${user}-${connections.length}`));
  const rooms: number[] = [];
  for (const name of ['one', 'two']) {
    const answer = await connections[0].ok('create_room', { name, users: ['bob', 'cara'] });
    rooms.push((answer.room as { id: number }).id);
  }
  const lobbyPublishers: ChatClient[] = [];
  t.after(() => closeAll(lobbyPublishers));
  for (let i = 0; i < 2; i++) lobbyPublishers.push(await ChatClient.join(server.wsUrl, `lobby-${i}`));

  // The burst: every rooms connection sends 60 new_message at once, alternating rooms, while the
  // lobby publishers send 150 each. The tree dies as soon as the last acknowledgement is here.
  const PER_CONNECTION = 60;
  const acks: Array<Promise<ChatMessage>> = [];
  connections.forEach((connection, c) => {
    for (let i = 0; i < PER_CONNECTION; i++) {
      acks.push(connection.request('new_message', { room: rooms[i % 2], text: `c${c}-m${i}` }, { timeoutMs: 20_000 }));
    }
  });
  lobbyPublishers.forEach((client, p) => {
    for (let i = 0; i < 150; i++) client.say(`p${p}`, `p${p}-m${i}`);
  });
  const answers = await Promise.all(acks);
  const killed = server.killTree(); // at once: nothing awaited since the last acknowledgement
  await killed;
  for (const answer of answers) assert.equal(answer.status, 'success', JSON.stringify(answer));

  // Delivered lobby messages: anything any connection received (a message is sent to anyone
  // only once it is durable). A connection's view must be in id order and without repeats.
  const delivered = new Map<number, ChatMessage>();
  for (const client of [...connections.map((c) => c.chat), ...lobbyPublishers]) {
    const seen = lobbyMessages(client.received);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i].id! > seen[i - 1].id!, `${client.name} saw lobby ids out of order`);
    for (const m of seen) delivered.set(m.id!, m);
  }
  assert.ok(delivered.size > 0, 'no lobby message was delivered before the kill');
  await closeAll([...connections.map((c) => c.chat), ...lobbyPublishers]);

  const restarted = await start(s, 4);
  t.after(() => restarted.killTree());
  const reader = await RoomsConnection.signIn(restarted.wsUrl, s.secret, 'alice');
  t.after(() => closeAll([reader.chat]));
  for (const room of rooms) {
    const acknowledged = answers.map((a) => messageOf(a)).filter((m) => m.room === room).sort(byId);
    assert.equal(acknowledged.length, PER_CONNECTION * connections.length / 2);
    const selected = await reader.ok('select_room', { room });
    // Every acknowledged message, same id, text, user and time, in id order, and nothing else
    // (every request of the burst was acknowledged, so nothing else may be there).
    assert.deepEqual(selected.room_messages, acknowledged);
  }
  const { history } = await lobbyHistory(restarted.wsUrl);
  const ids = history.map((m) => m.id!);
  assert.deepEqual(ids, [...new Set(ids)].sort((a, b) => a - b), 'the lobby history has a duplicate or is out of order');
  const historyById = new Map(history.map((m) => [m.id!, m]));
  for (const [id, m] of delivered) assert.deepEqual(historyById.get(id), m, `delivered lobby message ${id} is missing or changed after the restart`);
  await restarted.stop();
});

test('a new_message retried after kill -9 and a restart is answered with the original message and stored once', async (t) => {
  const s = setup(t);
  const server = await start(s, 2);
  t.after(() => server.killTree());
  const alice = await RoomsConnection.signIn(server.wsUrl, s.secret, 'alice');
  const room = ((await alice.ok('create_room', { name: 'retry', users: [] })).room as { id: number }).id;
  const original = await alice.say(room, 'said once', 'retry-uuid-1');
  await server.killTree();
  await closeAll([alice.chat]);

  const restarted = await start(s, 2);
  t.after(() => restarted.killTree());
  const again = await RoomsConnection.signIn(restarted.wsUrl, s.secret, 'alice');
  t.after(() => closeAll([again.chat]));
  const answer = await again.request('new_message', { room, text: 'said once' }, { uuid: 'retry-uuid-1' });
  assert.deepEqual(answer, { uuid: 'retry-uuid-1', action: 'new_message', status: 'success', room: answer.room, message: original });
  const selected = await again.ok('select_room', { room });
  assert.deepEqual(selected.room_messages, [original]);
  await restarted.stop();
});

test('resume across a restart: the lobby and select_room give exactly what was missed (recovered: true), or the last N (recovered: false) after a gap', async (t) => {
  const HISTORY = 3;
  const s = setup(t, { CHAT_HISTORY_SIZE: String(HISTORY) });
  const server = await start(s);
  t.after(() => server.killTree());
  const alice = await RoomsConnection.signIn(server.wsUrl, s.secret, 'alice');
  const room = ((await alice.ok('create_room', { name: 'resume', users: [] })).room as { id: number }).id;
  await alice.say(room, 'm1');
  const lastSeenInRoom = (await alice.say(room, 'm2')).id;
  alice.chat.say('alice', 'l1');
  alice.chat.say('alice', 'l2');
  const lastSeenInLobby = (await alice.chat.waitFor((m) => m.message === 'l2', 5000, 'l2')).id!;
  await server.killTree();
  await closeAll([alice.chat]);

  const restarted = await start(s);
  t.after(() => restarted.killTree());
  const other = await RoomsConnection.signIn(restarted.wsUrl, s.secret, 'alice', 'alice-2');
  t.after(() => closeAll([other.chat]));
  // Missed while away, within the history: resumed exactly.
  const m3 = await other.say(room, 'm3');
  const m4 = await other.say(room, 'm4');
  other.chat.say('alice', 'l3');
  other.chat.say('alice', 'l4');
  await other.chat.waitFor((m) => m.message === 'l4', 5000, 'l4');
  const resumedRoom = await other.ok('select_room', { room, since: lastSeenInRoom });
  assert.equal(resumedRoom.recovered, true);
  assert.deepEqual(resumedRoom.room_messages, [m3, m4]);
  const resumedLobby = await lobbyHistory(restarted.wsUrl, lastSeenInLobby);
  assert.deepEqual(resumedLobby.greeting, { sender: 'server', message: 'You are connected', recovered: true });
  assert.deepEqual(resumedLobby.history.map((m) => m.message), ['l3', 'l4']);

  // More than the history holds since then: a gap, and the last N instead. (The marker that
  // lobbyHistory published counts as one of the lobby's messages.)
  const later: MessageObject[] = [];
  for (const text of ['m5', 'm6', 'm7']) later.push(await other.say(room, text));
  for (const text of ['l5', 'l6', 'l7']) other.chat.say('alice', text);
  await other.chat.waitFor((m) => m.message === 'l7', 5000, 'l7');
  const gapRoom = await other.ok('select_room', { room, since: lastSeenInRoom });
  assert.equal(gapRoom.recovered, false);
  assert.deepEqual(gapRoom.room_messages, later);
  const gapLobby = await lobbyHistory(restarted.wsUrl, lastSeenInLobby);
  assert.deepEqual(gapLobby.greeting, { sender: 'server', message: 'You are connected', recovered: false });
  assert.deepEqual(gapLobby.history.map((m) => m.message), ['l5', 'l6', 'l7']);
  await restarted.stop();
});

test('a torn tail (garbage after the last record, or the last record cut short) is cut with a warning, and everything before it is there', async (t) => {
  const s = setup(t);
  const server = await start(s);
  t.after(() => server.killTree());
  const alice = await RoomsConnection.signIn(server.wsUrl, s.secret, 'alice');
  const room = ((await alice.ok('create_room', { name: 'torn', users: [] })).room as { id: number }).id;
  for (const text of ['l1', 'l2']) alice.chat.say('alice', text);
  await alice.chat.waitFor((m) => m.message === 'l2', 5000, 'l2');
  const said: MessageObject[] = [];
  for (let i = 1; i <= 4; i++) said.push(await alice.say(room, `m${i}`));
  await closeAll([alice.chat]);
  assert.equal(await server.stop(), 0);
  const segments = segmentFiles(s.dir);
  const last = segments[segments.length - 1];

  // 1. Garbage after the last record, as a crash in the middle of a group's write leaves.
  const size = readFileSync(last).length;
  appendFileSync(last, Buffer.from('this is not a record, it is what a crash left behind'));
  const second = await start(s);
  t.after(() => second.killTree());
  assert.match(second.output(), new RegExp(`log: cut a torn tail of 52 bytes at ${escape(last)} offset ${size} `));
  const reader = await RoomsConnection.signIn(second.wsUrl, s.secret, 'alice');
  assert.deepEqual((await reader.ok('select_room', { room })).room_messages, said);
  assert.deepEqual((await lobbyHistory(second.wsUrl)).history.map((m) => m.message), ['l1', 'l2']);
  await reader.say(room, 'm5'); // the last record now (after the reader's lobby marker)
  await closeAll([reader.chat]);
  assert.equal(await second.stop(), 0);

  // 2. The last record cut in the middle (a write that reached the disk only in part).
  const records = recordsOf(last);
  const lastRecord = records[records.length - 1];
  assert.match(lastRecord.payload, /^M.*"text":"m5"/, 'the last record is m5\'s');
  truncateSync(last, lastRecord.offset + 8 + Math.floor(lastRecord.length / 2));
  const third = await start(s);
  t.after(() => third.killTree());
  assert.match(third.output(), new RegExp(`log: cut a torn tail of \\d+ bytes at ${escape(last)} offset ${lastRecord.offset} `));
  const reader3 = await RoomsConnection.signIn(third.wsUrl, s.secret, 'alice');
  t.after(() => closeAll([reader3.chat]));
  assert.deepEqual((await reader3.ok('select_room', { room })).room_messages, said); // all but m5
  await third.stop();
});

test('a bad record in the middle of the log stops startup with exit 3, naming the file and the offset, with one process and with four', async (t) => {
  const s = setup(t, { CHAT_LOG_SEGMENT_BYTES: String(64 * 1024) });
  const server = await start(s);
  t.after(() => server.killTree());
  const client = await ChatClient.join(server.wsUrl, 'filler');
  t.after(() => closeAll([client]));
  // 2 KB messages until the log has at least three segments (a segment is 64 KiB here).
  const text = 'x'.repeat(2000);
  for (let batch = 0; segmentFiles(s.dir).length < 3; batch++) {
    assert.ok(batch < 100, `still ${segmentFiles(s.dir).length} segment(s) after ${batch * 20} messages`);
    for (let i = 0; i < 20; i++) client.say('filler', `${batch}-${i}-${text}`);
    await client.waitFor((m) => typeof m.message === 'string' && m.message.startsWith(`${batch}-19-`), 10_000, `batch ${batch}`);
  }
  await closeAll([client]);
  assert.equal(await server.stop(), 0);

  // Flip one byte in the payload of the second record of the oldest segment that has one, before
  // the last segment (once, under load, the oldest held fewer than two records; why is not known).
  const segments = segmentFiles(s.dir);
  assert.ok(segments.length >= 2);
  const file = segments.slice(0, -1).find((segment) => recordsOf(segment).length >= 2);
  assert.ok(file !== undefined, `a segment before the last with two records: ${segments.map((f) => `${f}: ${recordsOf(f).length}`).join(', ')}`);
  const victim = recordsOf(file)[1];
  const bytes = readFileSync(file);
  bytes[victim.offset + 8 + 1] ^= 0x20;
  writeFileSync(file, bytes);

  for (const workers of ['1', '4']) {
    const run = await runMain(['--workers', workers, '--port', '0', '--host', '127.0.0.1'], 20_000, s.env);
    const output = run.stdout + run.stderr;
    assert.equal(run.code, 3, `--workers ${workers}: ${output}`);
    assert.match(output, new RegExp(`the message log is corrupt at ${escape(file)} byte ${victim.offset}: `), `--workers ${workers}`);
    assert.match(output, new RegExp(`truncate -s ${victim.offset} ${escape(file)}`), `--workers ${workers}: the repair`);
    assert.doesNotMatch(output, /listening on/);
  }
  // Refusing changed nothing: the file is as it was left.
  assert.deepEqual(readFileSync(file), bytes);
});

test('a real full disk: failed writes get unavailable or the lobby error and reach nobody, one log line per episode, writes resume by themselves, and exactly the acknowledged ones survive', async (t) => {
  const mounted = mountTmpfs(1024 * 1024);
  if ('skip' in mounted) {
    t.skip(mounted.skip);
    return;
  }
  t.after(() => mounted.unmount());
  const dir = join(mounted.dir, 'data');
  mkdirSync(dir);
  const secret = newSecret();
  const env = { CHAT_SECRET: secret, CHAT_DATA_DIR: dir, CHAT_HISTORY_SIZE: '500', ...NO_RATE_LIMIT };
  const server = await startServer({ args: ['--workers', '2'], env, detached: true });
  t.after(() => server.killTree());
  const alice = await RoomsConnection.signIn(server.wsUrl, secret, 'alice');
  const bob = await RoomsConnection.signIn(server.wsUrl, secret, 'bob'); // an observer, on the other worker
  t.after(() => closeAll([alice.chat, bob.chat]));
  const room = ((await alice.ok('create_room', { name: 'full', users: ['bob'] })).room as { id: number }).id;

  // The filler leaves about 40 KiB free.
  const filler = join(mounted.dir, 'filler');
  const free = (): number => { const st = statfsSync(mounted.dir); return st.bavail * st.bsize; };
  writeFileSync(filler, Buffer.alloc(free() - 40 * 1024));

  const acknowledged: MessageObject[] = [];
  const failedTexts: string[] = [];
  let failedUuid = '';
  const text = (i: number): string => `${i}-${'y'.repeat(1000)}`;
  // Publish until the disk is full: the first refused message ends the loop.
  for (let i = 0; ; i++) {
    assert.ok(i < 200, 'the disk never filled');
    const uuid = newUuid('full');
    const answer = await alice.request('new_message', { room, text: text(i) }, { uuid });
    if (answer.status === 'success') {
      acknowledged.push(messageOf(answer));
      continue;
    }
    assert.equal(answer.error, 'unavailable', JSON.stringify(answer));
    failedTexts.push(text(i));
    failedUuid = uuid;
    break;
  }
  // While it is full: more requests refused, and a lobby message gets the error line.
  const refused = await alice.request('new_message', { room, text: 'while full' });
  assert.equal(refused.error, 'unavailable');
  failedTexts.push('while full');
  alice.chat.say('alice', 'lobby while full');
  const lobbyError = await alice.chat.waitFor((m) => m.sender === 'server' && m.error !== undefined, 5000, 'the lobby error line');
  assert.match(lobbyError.error!, /message log cannot take writes now/);
  assert.deepEqual(Object.keys(lobbyError).sort(), ['error', 'sender']);
  failedTexts.push('lobby while full');

  // Space again: the server finds out by itself; the failed message, retried with its uuid, goes.
  rmSync(filler);
  let resumed: ChatMessage | null = null;
  for (let attempt = 0; attempt < 100 && resumed === null; attempt++) {
    const answer = await alice.request('new_message', { room, text: failedTexts[0] }, { uuid: failedUuid });
    if (answer.status === 'success') resumed = answer;
    else await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.ok(resumed, 'writes did not resume within 10 s of freeing the disk');
  acknowledged.push(messageOf(resumed));
  failedTexts.shift(); // it went through after all
  acknowledged.push(await alice.say(room, 'after'));
  alice.chat.say('alice', 'lobby after');
  await bob.chat.waitFor((m) => m.message === 'lobby after', 5000, 'the lobby message after');
  await bob.barrier();
  await alice.barrier();

  for (const connection of [alice, bob]) {
    for (const frame of connection.received) {
      const seen = frame.action === 'new_message' && frame.status === 'success' ? messageOf(frame).text : frame.message;
      assert.ok(!failedTexts.includes(seen as string), `${connection.name} received a message that failed: ${String(seen).slice(0, 40)}`);
    }
  }
  assert.deepEqual(bob.messages(room), acknowledged, 'the observer saw exactly the acknowledged messages');
  const output = server.output();
  assert.equal(output.match(/log: writes are failing/g)?.length, 1, output);
  assert.equal(output.match(/log: writes work again/g)?.length, 1, output);

  await closeAll([alice.chat, bob.chat]);
  assert.equal(await server.stop(), 0);
  const restarted = await startServer({ args: ['--workers', '2'], env, detached: true });
  t.after(() => restarted.killTree());
  const reader = await RoomsConnection.signIn(restarted.wsUrl, secret, 'bob');
  t.after(() => closeAll([reader.chat]));
  assert.deepEqual((await reader.ok('select_room', { room })).room_messages, acknowledged);
  assert.deepEqual((await lobbyHistory(restarted.wsUrl)).history.map((m) => m.message), ['lobby after']);
  await restarted.stop();
});

test('a second server on a data directory in use exits 3 and says the directory is in use', async (t) => {
  const s = setup(t);
  const first = await start(s);
  t.after(() => first.killTree());
  const second = await runMain(['--port', '0', '--host', '127.0.0.1'], 15_000, s.env);
  const output = second.stdout + second.stderr;
  assert.equal(second.code, 3, output);
  assert.match(output, new RegExp(`CHAT_DATA_DIR ${escape(s.dir)} is in use by process ${first.proc.pid} `));
  // The first one is untouched and still serves.
  const client = await ChatClient.join(first.wsUrl, 'still there');
  await closeAll([client]);
  assert.equal(await first.stop(), 0);
});

/** A string as a literal in a RegExp. */
function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
