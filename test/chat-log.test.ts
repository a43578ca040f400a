// Tests for src/chat-log.ts, src/chat-memory.ts and src/rooms/log-store.ts in one process, on real
// files in a temporary directory: what the lobby and the rooms write comes back after a reopen,
// checkpoints keep what must be kept and let old segments go, a failed flush is undone in memory
// and told to its publishers, and a directory held by a live server is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Outlet, ToWorker } from '../src/broadcast.js';
import { openChatMemory, type ChatMemory } from '../src/chat-memory.js';
import { readChatConfig, type ChatConfig } from '../src/config.js';
import { NODE_FILES, segmentFileName, type LogFiles } from '../src/log/message-log.js';
import { encodeRecord } from '../src/log/record.js';
import { hostname } from 'node:os';
import { StoreUnavailableError, isSharedStore, type ChatStore } from '../src/rooms/store.js';
import { setLogLevel } from '../src/server/logger.js';

/** The store's writes: the file log's store applies them at the call (not a shared store). */
function writesOf(memory: ChatMemory): ChatStore {
  assert.ok(!isSharedStore(memory.store), 'a local store');
  return memory.store;
}

setLogLevel('error'); // the log's warnings are expected here; the assertions say what matters

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'chat-log-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const config = (dir: string, overrides: Partial<ChatConfig> = {}): ChatConfig => ({ ...readChatConfig({ CHAT_DATA_DIR: dir }), historySize: 3, ...overrides });

/** A worker attached to the loop: everything the loop sends it is kept, in order. */
function worker(memory: ChatMemory): Outlet & { received: ToWorker[] } {
  const received: ToWorker[] = [];
  const outlet = { id: 1, subscribers: 1, pending: 0, received, deliver(message: ToWorker, flushed: () => void) { received.push(message); flushed(); } };
  memory.loop.addOutlet(outlet);
  return outlet;
}

const tail = (message: string): string => `"sender":"ann","message":${JSON.stringify(message)}}`;

/** Publishes lobby messages as connection `conn` and waits for the loop's verdict on all of them. */
async function publish(memory: ChatMemory, outlet: ReturnType<typeof worker>, messages: string[], conn = 7): Promise<{ delivered: string[]; failed: number[] }> {
  const start = outlet.received.length;
  memory.loop.handle(outlet, { t: 'chat:pub', m: messages.map(tail), c: messages.map(() => conn) });
  for (;;) {
    const seen = outlet.received.slice(start);
    const delivered = seen.flatMap((m) => (m.t === 'chat:batch' ? m.m : []));
    const failed = seen.flatMap((m) => (m.t === 'chat:fail' ? m.c : []));
    if (delivered.length + failed.length >= messages.length) return { delivered, failed };
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** The history a new subscriber gets (with `since`, the resume answer). */
function history(memory: ChatMemory, outlet: ReturnType<typeof worker>, since?: number): { m: string[]; rec?: boolean } {
  memory.loop.handle(outlet, since === undefined ? { t: 'chat:sub', r: 1 } : { t: 'chat:sub', r: 1, s: since });
  const answer = outlet.received.at(-1)!;
  assert.equal(answer.t, 'chat:history');
  return answer as { m: string[]; rec?: boolean };
}

/** What a reopen must give back: the rooms, their histories, the dedupe table, the lobby. */
function stateOf(memory: ChatMemory, roomIds: number[], pairs: Array<[string, string]>, outlet: ReturnType<typeof worker>): unknown {
  return {
    rooms: roomIds.map((id) => memory.store.room(id) ?? null),
    histories: roomIds.map((id) => memory.store.lastMessages(id, 100)),
    sent: pairs.map(([user, uuid]) => memory.store.findMessage(user, uuid) ?? null),
    lobby: history(memory, outlet).m,
  };
}

test('rooms, members, messages, retries and the lobby come back after a reopen, and ids go on', async (t) => {
  const dir = tempDir(t);
  const first = await openChatMemory(config(dir));
  const outlet = worker(first);
  const room = await writesOf(first).createRoom('plans', ['alice', 'bob'], 1000);
  await writesOf(first).addUsers(room.id, ['carol', 'dave']);
  const other = await writesOf(first).createRoom('gone', ['erin'], 1001);
  const messages = [];
  for (let i = 0; i < 5; i++) messages.push(await writesOf(first).appendMessage(room.id, 'alice', `u${i}`, `text ${i}`, Date.now()));
  await writesOf(first).removeUser(room.id, 'dave');
  await writesOf(first).removeUser(other.id, 'erin'); // its last member: the room is deleted, with its history
  const { delivered } = await publish(first, outlet, ['one', 'two', 'three', 'four']);
  assert.equal(delivered.length, 4);
  const pairs: Array<[string, string]> = messages.map((_, i) => ['alice', `u${i}`]);
  const before = stateOf(first, [room.id, other.id], pairs, outlet);
  await first.chatLog!.close();

  const second = await openChatMemory(config(dir));
  const outlet2 = worker(second);
  assert.deepEqual(stateOf(second, [room.id, other.id], pairs, outlet2), before);
  assert.deepEqual(second.store.room(room.id)?.users, ['alice', 'bob', 'carol']);
  assert.equal(second.store.room(other.id), undefined);
  assert.equal(second.store.findMessage('alice', 'u0')?.id, messages[0].id, 'a retry of a message trimmed from the history is still recognised');
  // Ids go on above every id given before the restart, in rooms and in the lobby.
  const next = await writesOf(second).appendMessage(room.id, 'bob', 'v', 'after', Date.now());
  assert.ok(next.id > messages[4].id);
  const lobbyAfter = await publish(second, outlet2, ['five']);
  const lastBefore = JSON.parse(delivered[3]) as { id: number };
  assert.ok((JSON.parse(lobbyAfter.delivered[0]) as { id: number }).id > lastBefore.id);
  await second.chatLog!.close();
});

test('the lobby resumes after `since`: exactly what followed, or the last N with rec: false', async (t) => {
  const dir = tempDir(t);
  const memory = await openChatMemory(config(dir, { historySize: 3 }));
  const outlet = worker(memory);
  const { delivered } = await publish(memory, outlet, ['a', 'b', 'c', 'd', 'e']);
  const ids = delivered.map((text) => (JSON.parse(text) as { id: number }).id);
  assert.deepEqual(history(memory, outlet, ids[3]), { t: 'chat:history', r: 1, m: delivered.slice(4), rec: true });
  assert.deepEqual(history(memory, outlet, ids[1]), { t: 'chat:history', r: 1, m: delivered.slice(2), rec: true }, 'the last 3 are all after ids[1]');
  assert.deepEqual(history(memory, outlet, ids[0]), { t: 'chat:history', r: 1, m: delivered.slice(2), rec: false }, 'b was trimmed away: a gap');
  assert.deepEqual(history(memory, outlet, ids[4]), { t: 'chat:history', r: 1, m: [], rec: true }, 'nothing missed');
  assert.deepEqual(history(memory, outlet, ids[4] + 1000), { t: 'chat:history', r: 1, m: delivered.slice(2), rec: false }, 'an id this server never gave');
  await memory.chatLog!.close();
  // The same answers after a restart: the log holds them.
  const again = await openChatMemory(config(dir, { historySize: 3 }));
  assert.deepEqual(history(again, worker(again), ids[3]), { t: 'chat:history', r: 1, m: delivered.slice(4), rec: true });
  await again.chatLog!.close();
});

test('checkpoints keep what must be kept and delete the segments before them', async (t) => {
  const dir = tempDir(t);
  // A small segment, so that a few hundred messages make several checkpoints.
  const settings = config(dir, { logSegmentBytes: 4096, historySize: 5 });
  const memory = await openChatMemory(settings);
  const outlet = worker(memory);
  const rooms = [];
  for (let r = 0; r < 4; r++) rooms.push(await writesOf(memory).createRoom(`room ${r}`, ['alice', `user${r}`], Date.now()));
  const pairs: Array<[string, string]> = [];
  for (let i = 0; i < 240; i++) {
    const room = rooms[i % rooms.length];
    await writesOf(memory).appendMessage(room.id, 'alice', `m${i}`, `message ${i} `.repeat(3), Date.now());
    pairs.push(['alice', `m${i}`]);
    if (i % 40 === 0) await publish(memory, outlet, [`lobby ${i}`]);
  }
  await publish(memory, outlet, ['last']);
  // Let the last checkpoint finish (it spans turns) and its old segments be deleted.
  while (memory.chatLog!.checkpointInProgress) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(memory.chatLog!.checkpoints >= 2, `checkpoints: ${memory.chatLog!.checkpoints}`);
  const before = stateOf(memory, rooms.map((room) => room.id), pairs, outlet);
  await memory.chatLog!.close();
  const segments = readdirSync(dir).filter((name) => name.endsWith('.log'));
  const onDisk = segments.reduce((sum, name) => sum + statSync(join(dir, name)).size, 0);
  assert.ok(!segments.includes('00000000000000000001.log'), `the first segment was deleted: ${segments.join(', ')}`);
  assert.ok(onDisk < memory.chatLog!.stats.bytesFlushed / 2, `${onDisk} bytes kept of ${memory.chatLog!.stats.bytesFlushed} written`);

  const again = await openChatMemory(settings);
  assert.deepEqual(stateOf(again, rooms.map((room) => room.id), pairs, worker(again)), before);
  assert.equal(again.store.findMessage('alice', 'm0')?.text, 'message 0 '.repeat(3), 'the first message, long out of every history, is still recognised');
  await again.chatLog!.close();
});

test('a lobby message whose append starts a checkpoint is in that checkpoint (the old segments it was written to are deleted)', async (t) => {
  // The append that crosses the checkpoint threshold used to take the lobby's snapshot from inside
  // appendLobby, before the loop had noted the message as written: the checkpoint left it out,
  // and once the segments before the checkpoint were deleted, a delivered message was gone.
  const dir = tempDir(t);
  const settings = config(dir, { logSegmentBytes: 4096, historySize: 1000 });
  const memory = await openChatMemory(settings);
  const outlet = worker(memory);
  const texts: string[] = [];
  for (let i = 0; i < 150; i++) {
    texts.push(`lobby ${i} `.repeat(4));
    assert.equal((await publish(memory, outlet, [texts[i]])).delivered.length, 1);
  }
  while (memory.chatLog!.checkpointInProgress) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(memory.chatLog!.checkpoints >= 2, `checkpoints: ${memory.chatLog!.checkpoints}`);
  await memory.chatLog!.close();
  assert.ok(!readdirSync(dir).includes('00000000000000000001.log'), 'the first segment was deleted');

  const again = await openChatMemory(settings);
  const kept = history(again, worker(again)).m.map((text) => (JSON.parse(text) as { message: string }).message);
  assert.deepEqual(kept, texts);
  await again.chatLog!.close();
});

test('a flush that fails: the writes are undone, their clients told, and writes resume by themselves', async (t) => {
  const dir = tempDir(t);
  let failSyncs = 0;
  const files: LogFiles = {
    ...NODE_FILES,
    fdatasync: (fd, callback) => {
      if (failSyncs > 0) {
        failSyncs--;
        const error: NodeJS.ErrnoException = new Error('EIO: i/o error, fdatasync');
        error.code = 'EIO';
        setImmediate(() => callback(error));
        return;
      }
      NODE_FILES.fdatasync(fd, callback);
    },
  };
  const memory = await openChatMemory(config(dir), files);
  const outlet = worker(memory);
  const room = await writesOf(memory).createRoom('r', ['alice'], 1);
  const kept = await writesOf(memory).appendMessage(room.id, 'alice', 'kept', 'kept', Date.now());

  failSyncs = 1; // the next group's flush fails (its repair's flush then succeeds)
  const lost = writesOf(memory).appendMessage(room.id, 'alice', 'lost', 'lost', Date.now());
  const created = writesOf(memory).createRoom('never', ['alice'], 2);
  const lobby = publish(memory, outlet, ['not sent'], 42);
  assert.equal(memory.store.findMessage('alice', 'lost')?.text, 'lost', 'applied to memory at the call');
  await assert.rejects(lost, StoreUnavailableError);
  await assert.rejects(created, StoreUnavailableError);
  assert.deepEqual((await lobby).failed, [42], 'the lobby publisher is told');
  // Memory is what the disk holds again.
  assert.equal(memory.store.findMessage('alice', 'lost'), undefined);
  assert.deepEqual(memory.store.lastMessages(room.id, 10), [kept]);
  assert.deepEqual(memory.store.roomsOf('alice').map((r) => r.name), ['r']);
  assert.deepEqual(history(memory, outlet).m, []);

  while (!memory.chatLog!.healthy) await new Promise((resolve) => setTimeout(resolve, 10));
  const after = await writesOf(memory).appendMessage(room.id, 'alice', 'lost', 'again', Date.now());
  assert.equal(after.text, 'again', 'the retry with the same uuid is a new message: the first never existed');
  await memory.chatLog!.close();
  const reopened = await openChatMemory(config(dir));
  assert.deepEqual(reopened.store.lastMessages(room.id, 10).map((m) => m.text), ['kept', 'again']);
  await reopened.chatLog!.close();
});

test('a data directory in use by a live server is refused, one left by a dead one is taken over', async (t) => {
  const dir = tempDir(t);
  // Another live process holds the lock (as a running server's primary would).
  const holder = spawn('sleep', ['30'], { stdio: 'ignore' });
  t.after(() => holder.kill('SIGKILL'));
  writeFileSync(join(dir, 'LOCK'), `${holder.pid} ${hostname()}\n`);
  await assert.rejects(openChatMemory(config(dir)), new RegExp(`CHAT_DATA_DIR ${dir} is in use by process ${holder.pid}`));
  holder.kill('SIGKILL');
  await once(holder, 'exit');
  const memory = await openChatMemory(config(dir)); // the holder is gone: its lock is stale
  assert.equal(readFileSync(join(dir, 'LOCK'), 'utf8'), `${process.pid} ${hostname()}\n`);
  await memory.chatLog!.close();
  assert.equal(existsSync(join(dir, 'LOCK')), false, 'released at close');
  assert.deepEqual(readdirSync(dir).filter((name) => name.startsWith('LOCK')), [], 'nothing of the lock left behind');
});

test('a lock from another host is refused even if its pid is not running here: it cannot be checked from here', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'LOCK'), '999999999 some-other-host\n');
  await assert.rejects(openChatMemory(config(dir)), new RegExp(`CHAT_DATA_DIR ${dir} is in use by process 999999999 on host some-other-host`));
});

/** Writes segment files by hand: each a list of record payloads. */
function writeSegments(dir: string, segments: string[][]): void {
  segments.forEach((payloads, i) => writeFileSync(join(dir, segmentFileName(i + 1)), Buffer.concat(payloads.map((payload) => encodeRecord(payload)))));
}

test('a checkpoint block cut short (a crash, or a failed flush followed by live records) is ignored: the older segments hold the state', async (t) => {
  const lobby = (id: number): string => JSON.stringify({ id, ts: 1, sender: 'ann', message: `m${id}` });
  const roomMessage = (id: number): string => JSON.stringify({ id, room: 7, user: 'a', text: `t${id}`, ts: Date.now() });
  const older = [
    'R' + JSON.stringify({ id: 7, name: 'seven', users: ['a'], ts: 1 }),
    ...[100, 101, 102, 103, 104].map((id) => `M{"uuid":"u${id}","message":${roomMessage(id)}}`),
    ...[1, 2, 3, 4, 5].map((id) => 'L' + lobby(id)),
  ];
  const cutShort = [
    'K{"seq":2}',
    'N{"room":8,"message":105,"lobby":6}',
    'l{"trimmedUpTo":0,"n":5}', 'h' + lobby(1), 'h' + lobby(2), // 3 of its 5 records missing
    'r' + JSON.stringify({ room: { id: 7, name: 'seven', users: ['a'], lastActivity: 1 }, trimmedUpTo: 0, n: 5 }),
    'H' + roomMessage(100), 'H' + roomMessage(101), // and 3 of these
  ];
  for (const [variant, tail] of [['at the end of the log', []], ['followed by live records', [`M{"uuid":"u105","message":${roomMessage(105)}}`, 'L' + lobby(6)]]] as const) {
    const dir = tempDir(t);
    writeSegments(dir, [older, [...cutShort, ...tail]]);
    const memory = await openChatMemory(config(dir, { historySize: 10 }));
    const live = tail.length > 0;
    assert.deepEqual(memory.store.lastMessages(7, 10).map((m) => m.id), [100, 101, 102, 103, 104, ...(live ? [105] : [])], variant);
    assert.deepEqual(memory.store.messagesSince(7, 101, 10).messages.map((m) => m.id), [102, 103, 104, ...(live ? [105] : [])], variant);
    const outlet = worker(memory);
    assert.deepEqual(history(memory, outlet, 1), { t: 'chat:history', r: 1, m: [2, 3, 4, 5, ...(live ? [6] : [])].map(lobby), rec: true }, variant);
    await memory.chatLog!.close();
  }
});

test('a whole checkpoint block replaces what came before it', async (t) => {
  const dir = tempDir(t);
  const lobby = (id: number): string => JSON.stringify({ id, ts: 1, sender: 'ann', message: `m${id}` });
  const roomMessage = (id: number): string => JSON.stringify({ id, room: 7, user: 'a', text: `t${id}`, ts: Date.now() });
  writeSegments(dir, [[
    'l{"trimmedUpTo":40,"n":2}', 'h' + lobby(41), 'h' + lobby(42),
    'r' + JSON.stringify({ room: { id: 7, name: 'seven', users: ['a', 'b'], lastActivity: 1 }, trimmedUpTo: 99, n: 2 }),
    'H' + roomMessage(100), 'H' + roomMessage(101),
    'E{"seq":1}',
  ]]);
  const memory = await openChatMemory(config(dir, { historySize: 10 }));
  assert.deepEqual(memory.store.room(7)?.users, ['a', 'b']);
  assert.equal(memory.store.messagesSince(7, 98, 10).complete, false, '99 was trimmed before the checkpoint');
  assert.deepEqual(memory.store.messagesSince(7, 99, 10).messages.map((m) => m.id), [100, 101]);
  const outlet = worker(memory);
  assert.deepEqual(history(memory, outlet, 40), { t: 'chat:history', r: 1, m: [lobby(41), lobby(42)], rec: true });
  assert.equal(history(memory, outlet, 39).rec, false);
  await memory.chatLog!.close();
});

test('a new log marks the lobby\'s start: a resume from an id given before it has a gap, also after a restart', async (t) => {
  const dir = tempDir(t);
  const before = Date.now() * 1000 - 5; // an id a previous server (or a wiped directory) gave
  for (let start = 0; start < 2; start++) {
    const memory = await openChatMemory(config(dir));
    const outlet = worker(memory);
    assert.equal(history(memory, outlet, before).rec, false, `start ${start}`);
    await memory.chatLog!.close();
  }
});
