// Tests for src/shared-chat.ts, the replicated state machine behind CHAT_REDIS_URL, and for the
// stream-id helpers of src/redis/shared-log.ts.
//
// Most need no Redis. A SharedChat is fed hand-built log entries (applyEntries), in the record
// formats documented at the top of shared-chat.ts, through a SharedLog that is never connected;
// where a test needs this tree's own intents, a RecordingLog (a SharedLog that says it is connected
// and keeps what would have been appended) captures the records that submit() writes, and the test
// puts them into entries in the order it chooses: that is how two trees' conflicting intents are
// ordered by the log. A snapshot is checked twice: captured from storeSnapshot and loaded into
// another copy (no Redis), and end to end against a real redis-server (skipped locally without
// one, a failure in CI): stored at the right entry, loaded by a tree started with openSharedChat,
// the stream cut back, an older snapshot refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { TestContext } from 'node:test';
import { BroadcastLoop } from '../src/broadcast.js';
import { readChatConfig, type ChatConfig } from '../src/config.js';
import { RedisClient } from '../src/redis/client.js';
import { RedisConnectionError } from '../src/redis/errors.js';
import type { RespValue } from '../src/redis/resp.js';
import { compareStreamIds, SharedLog, streamIdTime, type LogEntry } from '../src/redis/shared-log.js';
import { parseRedisUrl } from '../src/redis/url.js';
import { MemoryStore } from '../src/rooms/memory-store.js';
import { StoreUnavailableError, type IntentResult, type RoomIntent, type SharedRoomEvent } from '../src/rooms/store.js';
import { openSharedChat, SharedChat } from '../src/shared-chat.js';
import { skipWithoutRedis, startRedisServer } from './helpers/redis-server.js';

/** The first entry's stream id is `${T}-0`: the first room, message and lobby ids are T × 1000. */
const T = 1_700_000_000_000;
const FIRST = T * 1000;
const DAY = 24 * 60 * 60 * 1000;
/** CHAT_DEDUPE_WINDOW of testConfig, in ms. */
const WINDOW = 60_000;

/** Small limits, so that every one of them is reached by a few records. */
function testConfig(overrides: Partial<ChatConfig> = {}): ChatConfig {
  return {
    ...readChatConfig({ CHAT_DATA_DIR: '' }),
    historySize: 3,
    maxRoomMembers: 3,
    maxRoomsPerUser: 2,
    dedupeWindow: WINDOW / 1000,
    dedupeMaxEntries: 100,
    // Not reached by the tests without Redis (a snapshot is stored in Redis: see the last tests).
    redisSnapshotEvery: 1_000_000,
    ...overrides,
  };
}

/** A tree's copy of the chat: what chat-memory.ts builds for CHAT_REDIS_URL. */
interface Replica {
  chat: SharedChat;
  memory: MemoryStore;
  loop: BroadcastLoop;
  /** What the listener was told (another tree's writes, as applied here). */
  events: SharedRoomEvent[];
}

function memoryFor(config: ChatConfig, clock?: () => number): MemoryStore {
  return new MemoryStore({
    historyLimit: config.historySize,
    dedupeLimit: config.dedupeMaxEntries,
    dedupeWindowMs: config.dedupeWindow * 1000,
    firstMessageId: 0,
    firstRoomId: 0,
    ...(clock ? { clock } : {}),
  });
}

/** `clock` is the MemoryStore's own clock: the state must never depend on it. */
function replica(config: ChatConfig, sharedLog: SharedLog, clock?: () => number): Replica {
  const memory = memoryFor(config, clock);
  const loop = new BroadcastLoop(config.historySize);
  const chat = new SharedChat(config, memory, loop, sharedLog);
  loop.useShared(chat);
  return { chat, memory, loop, events: [] };
}

/** Attaches a listener that records the events (and starts presence: stopped by the test). */
function listen(t: TestContext, r: Replica): void {
  r.chat.attach({ applied: (event) => r.events.push(event), presenceChanged: () => {}, localUsers: () => [] });
  t.after(() => r.chat.presence.stop());
}

/** Everything that is shared state, in a form deepEqual compares. */
function stateOf(r: Replica): unknown {
  const rooms = [...r.memory.roomRecords()]
    .map((record) => ({ room: record.room, history: [...record.history], trimmedUpTo: record.trimmedUpTo }))
    .sort((a, b) => a.room.id - b.room.id);
  const users = [...new Set(rooms.flatMap((record) => record.room.users))].sort();
  const lobby = r.loop.lobbySnapshot();
  return {
    nextIds: r.memory.nextIds,
    rooms,
    roomsOf: users.map((user) => [user, r.memory.roomsOf(user).map((room) => room.id).sort((a, b) => a - b)]),
    dedupe: [...r.memory.sentEntries()].map((entry) => ({ uuid: entry.uuid, message: entry.message })),
    // lobbySnapshot().nextId is left out: it is the loop's own counter (from its clock), which
    // the shared mode does not use (SharedChat gives the lobby's ids).
    lobby: { trimmedUpTo: lobby.trimmedUpTo, ids: [...lobby.ids], texts: [...lobby.texts] },
    skipped: r.chat.skippedRecords,
  };
}

// Records, in the formats of the top of shared-chat.ts.
const create = (s: number, u: string, name: string, users: string[], ts: number): string => 'C' + JSON.stringify({ s, u, name, users, ts });
const add = (s: number, u: string, room: number, users: string[]): string => 'A' + JSON.stringify({ s, u, room, users });
const leave = (s: number, u: string, room: number): string => 'X' + JSON.stringify({ s, u, room });
const say = (s: number, u: string, room: number, uuid: string, text: string, ts: number): string => 'M' + JSON.stringify({ s, u, room, uuid, text, ts });
const lobby = (s: number, ts: number, sender: string, message: string): string => `L${s} ${ts} ${lobbyTail(sender, message)}`;
/** What a worker sends for a lobby message (broadcast.ts: `"sender":…,"message":…}`). */
const lobbyTail = (sender: string, message: string): string => `"sender":${JSON.stringify(sender)},"message":${JSON.stringify(message)}}`;

const entry = (id: string, tree: string, ...records: string[]): LogEntry => ({ id, tree, records });
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A TCP server that only counts connections: the URL of a SharedLog that must never connect. */
async function countingServer(t: TestContext): Promise<{ port: number; connections(): number }> {
  let connections = 0;
  const server = createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return { port: address.port, connections: () => connections };
}

/** Never dialled: the logs built on it are never connected. */
const NOWHERE = parseRedisUrl('redis://127.0.0.1:1');

/**
 * A SharedLog that says it is connected and keeps what would have been appended (one array of
 * records per XADD, i.e. per turn), so that a test can put this tree's own records into entries.
 */
class RecordingLog extends SharedLog {
  private appended: string[][] = [];
  /** When set, append() rejects with it (Redis refused the write, or was lost). */
  appendError: Error | null = null;

  constructor(tree: string) {
    super(NOWHERE, tree);
  }

  override get connected(): boolean {
    return true;
  }

  override append(records: readonly string[]): Promise<RespValue> {
    this.appended.push([...records]);
    return this.appendError ? Promise.reject(this.appendError) : Promise.resolve(null);
  }

  /** The entries' records appended since the last call, after the turn that writes them. */
  async takeAppended(): Promise<string[][]> {
    await nextTurn();
    const taken = this.appended;
    this.appended = [];
    return taken;
  }
}

/** A submitted intent's callback: its results (there must be exactly one, in the end). */
function submit(chat: SharedChat, intent: RoomIntent): IntentResult[] {
  const results: IntentResult[] = [];
  chat.submit(intent, (result) => results.push(result));
  return results;
}

// ---------------------------------------------------------------------------------------------
// Determinism: the same entries, the same state.

test('two copies fed the same entries end in the same state, whatever tree they are and whenever they apply them', async (t) => {
  const redis = await countingServer(t);
  const config = testConfig();
  const url = parseRedisUrl(`redis://127.0.0.1:${redis.port}`);
  // Tree A applies each entry as it comes; tree B reads the same stream 30 days later. Their
  // MemoryStores' clocks say so: a decision taken from the clock would differ between them.
  const a = replica(config, new SharedLog(url, 'A'), () => T + 10);
  const b = replica(config, new SharedLog(url, 'B'), () => T + 30 * DAY);
  const R = FIRST; // the first room's id, and the first message's, and the first lobby message's
  const entries: LogEntry[] = [
    entry(`${T}-0`, 'A', create(1, 'alice', 'r1', ['alice', 'bob'], T), lobby(2, T, 'alice', 'hi')),
    // Two creates with alice at 1 of her 2 rooms: both passed their tree's early check; the log
    // puts A's first, so B's is refused (limit_reached) on every tree.
    entry(`${T + 1}-0`, 'A', create(3, 'alice', 'r2', ['alice'], T + 1)),
    entry(`${T + 1}-1`, 'B', create(1, 'alice', 'r3', ['alice', 'carol'], T + 1)),
    // Two add_users on r1 (2 members, at most 3): each alone fits; B's comes first, A's is refused.
    entry(`${T + 2}-0`, 'B', add(2, 'bob', R, ['carol'])),
    entry(`${T + 2}-1`, 'A', add(4, 'alice', R, ['dave'])),
    // bob leaves on B; his message sent on A before that reached the log: forbidden.
    entry(`${T + 3}-0`, 'B', leave(3, 'bob', R)),
    entry(`${T + 3}-1`, 'A', say(5, 'bob', R, 'b-1', 'too late', T + 3)),
    // alice, r2's only member, leaves: r2 is deleted, and a message to it is not_found.
    entry(`${T + 4}-0`, 'A', leave(6, 'alice', R + 1)),
    entry(`${T + 4}-1`, 'B', say(4, 'alice', R + 1, 'a-0', 'into the void', T + 4)),
    // A message, its retry through the other tree, a retry just inside the window (measured from
    // the records' ts), and one exactly at its end, which is a new message.
    entry(`${T + 5}-0`, 'A', say(7, 'alice', R, 'a-1', 'hello', T + 5)),
    entry(`${T + 6}-0`, 'B', say(5, 'alice', R, 'a-1', 'hello', T + 6)),
    entry(`${T + 7}-0`, 'B', say(6, 'alice', R, 'a-1', 'hello', T + 5 + WINDOW - 1)),
    entry(`${T + 8}-0`, 'A', say(8, 'alice', R, 'a-1', 'hello again', T + 5 + WINDOW)),
    // Records that cannot be applied are skipped, and the valid one after them is applied.
    entry(`${T + 9}-0`, 'B',
      'M{not json',
      'Q{"s":7,"u":"alice"}', // an unknown record type
      'C{"s":7}', // no user
      'M{"s":8,"u":"alice","room":' + R + ',"uuid":"a-2","text":42,"ts":' + (T + 9) + '}', // text is no string
      'L9', // a lobby record without its fields
      `L10 soon ${lobbyTail('mallory', 'no time')}`, // a lobby record whose ts is no number
      say(11, 'carol', R, 'c-1', 'still here', T + 9)),
    entry(`${T + 10}-0`, 'A', say(9, 'carol', R, 'c-2', 'two', T + 10), say(10, 'carol', R, 'c-3', 'three', T + 10), lobby(11, T + 10, 'carol', 'bye')),
  ];
  // How the entries are sliced into reads does not matter either.
  a.chat.applyEntries(entries.slice(0, 4));
  a.chat.applyEntries(entries.slice(4));
  b.chat.applyEntries(entries);

  assert.deepEqual(stateOf(b), stateOf(a));
  // And that state is the one the rules give.
  const message = (id: number, user: string, text: string, ts: number): object => ({ id, room: R, user, text, ts });
  assert.deepEqual(stateOf(a), {
    nextIds: { room: R + 2, message: FIRST + 5 },
    rooms: [{
      room: { id: R, name: 'r1', users: ['alice', 'carol'], lastActivity: T + 5 + WINDOW },
      // historySize 3: the two oldest were dropped.
      history: [message(FIRST + 2, 'carol', 'still here', T + 9), message(FIRST + 3, 'carol', 'two', T + 10), message(FIRST + 4, 'carol', 'three', T + 10)],
      trimmedUpTo: FIRST + 1,
    }],
    roomsOf: [['alice', [R]], ['carol', [R]]],
    dedupe: [
      { uuid: 'a-1', message: message(FIRST + 1, 'alice', 'hello again', T + 5 + WINDOW) },
      { uuid: 'c-1', message: message(FIRST + 2, 'carol', 'still here', T + 9) },
      { uuid: 'c-2', message: message(FIRST + 3, 'carol', 'two', T + 10) },
      { uuid: 'c-3', message: message(FIRST + 4, 'carol', 'three', T + 10) },
    ],
    lobby: {
      trimmedUpTo: FIRST - 1, // nothing before the first entry: a resume from before it has a gap
      ids: [FIRST, FIRST + 1],
      texts: [
        `{"id":${FIRST},"ts":${T},"sender":"alice","message":"hi"}`,
        `{"id":${FIRST + 1},"ts":${T + 10},"sender":"carol","message":"bye"}`,
      ],
    },
    skipped: 6,
  });
  assert.equal(a.memory.roomsOf('bob').length, 0);
  assert.equal(a.memory.roomsOf('dave').length, 0, 'the add that came second in the log was refused');
  // No record needs a connection: neither SharedLog ever connected.
  await nextTurn();
  assert.equal(redis.connections(), 0);
  assert.equal(a.chat.log.connected, false);
});

test('the first ids come from the first entry\'s stream id (ms × 1000), not from the clock', () => {
  const config = testConfig();
  const r = replica(config, new SharedLog(NOWHERE, 'Z'), () => 5);
  const ms = 1_234_567_890_123;
  r.chat.applyEntries([entry(`${ms}-7`, 'A', create(1, 'alice', 'r', ['alice'], 1), say(2, 'alice', ms * 1000, 'u', 'x', 2), lobby(3, 3, 'alice', 'x'))]);
  assert.deepEqual(r.memory.room(ms * 1000), { id: ms * 1000, name: 'r', users: ['alice'], lastActivity: 2 });
  assert.deepEqual(r.memory.lastMessages(ms * 1000, 1).map((m) => m.id), [ms * 1000]);
  assert.deepEqual(r.loop.lobbySnapshot().ids, [ms * 1000]);
  // Later entries do not seed again.
  r.chat.applyEntries([entry(`${ms + 5000}-0`, 'A', create(4, 'bob', 'r2', ['bob'], 4))]);
  assert.deepEqual(r.memory.roomsOf('bob').map((room) => room.id), [ms * 1000 + 1]);
});

test('every lobby message the log applies is valid JSON with the id and ts it was given', () => {
  const r = replica(testConfig(), new SharedLog(NOWHERE, 'Z'));
  // The ts field is written by submitLobby as a whole number of ms, in decimal: anything else is
  // a malformed record (skipped), not a text with "ts":NaN or a ts the sender never gave.
  const tail = lobbyTail('x', 'y');
  r.chat.applyEntries([entry(`${T}-0`, 'A', `L1 soon ${tail}`, `L2  ${tail}`, `L3 -5 ${tail}`, `L4 1e3 ${tail}`, `L5 12.5 ${tail}`, lobby(6, T, 'a b', 'spaces, "quotes" and \\ in it'))]);
  const texts = r.loop.lobbySnapshot().texts;
  assert.deepEqual(texts.map((text) => JSON.parse(text)), [{ id: FIRST, ts: T, sender: 'a b', message: 'spaces, "quotes" and \\ in it' }]);
  assert.equal(r.chat.skippedRecords, 5);
});

// ---------------------------------------------------------------------------------------------
// This tree's intents and the others'.

test('own records settle their intents; another tree\'s are delivered as events; both trees decide alike', async (t) => {
  const config = testConfig();
  const logA = new RecordingLog('A');
  const logB = new RecordingLog('B');
  const a = replica(config, logA);
  const b = replica(config, logB);
  const z = replica(config, new SharedLog(NOWHERE, 'Z')); // a third tree that only reads
  listen(t, a);
  listen(t, b);
  let ms = T;
  /** The log: appends an entry of `tree`'s records to every tree's copy. */
  const log = (tree: string, records: string[]): void => {
    const e = entry(`${ms++}-0`, tree, ...records);
    for (const r of [a, b, z]) r.chat.applyEntries([e]);
  };
  const R = FIRST;

  // A create: A's outcome goes to its callback, B hears of it as a room_update to the members.
  const created = submit(a.chat, { k: 'create', user: 'alice', name: 'r1', users: ['alice', 'bob'], ts: T });
  const [c1] = await logA.takeAppended();
  assert.deepEqual(c1, [create(1, 'alice', 'r1', ['alice', 'bob'], T)], 'the record submit() wrote');
  assert.deepEqual(created, [], 'nothing is decided before the log hands the record back');
  log('A', c1);
  const r1 = { id: R, name: 'r1', users: ['alice', 'bob'], lastActivity: T };
  assert.deepEqual(created, [{ ok: true, room: r1, changed: true }]);
  assert.deepEqual(b.events, [{ k: 'room', room: r1, recipients: ['alice', 'bob'] }]);
  assert.deepEqual(a.events, [], 'a tree\'s own write is not an event to it');

  // B's first intent: bob adds alice, a member already. Nothing changes, and nobody is told.
  const noop = submit(b.chat, { k: 'add', user: 'bob', room: R, users: ['alice'] });
  log('B', (await logB.takeAppended())[0]);
  assert.deepEqual(noop, [{ ok: true, room: r1, changed: false }]);
  assert.deepEqual(a.events, []);

  // Two creates with alice at 1 of 2 rooms, submitted on both trees; the log puts B's first. Both
  // are their tree's intent number 2: only A's own records settle A's intents.
  const fromA = submit(a.chat, { k: 'create', user: 'alice', name: 'r2', users: ['alice'], ts: T + 1 });
  const fromB = submit(b.chat, { k: 'create', user: 'carol', name: 'r3', users: ['carol', 'alice'], ts: T + 1 });
  const [c2] = await logA.takeAppended();
  const [c3] = await logB.takeAppended();
  assert.match(c2[0], /^C\{"s":2,/);
  assert.match(c3[0], /^C\{"s":2,/);
  log('B', c3);
  assert.deepEqual(fromA, [], 'B\'s record with s = 2 is not A\'s intent 2');
  log('A', c2);
  const r3 = { id: R + 1, name: 'r3', users: ['carol', 'alice'], lastActivity: T + 1 };
  assert.deepEqual(fromB, [{ ok: true, room: r3, changed: true }]);
  assert.deepEqual(fromA, [{ ok: false, code: 'limit_reached', error: 'you are in the most rooms allowed (2)' }]);
  assert.deepEqual(a.events.at(-1), { k: 'room', room: r3, recipients: ['carol', 'alice'] });
  assert.equal(b.events.length, 1, 'a refused write is no event');

  // Two add_users on r1 (2 members, at most 3): A's comes first; B's would make 4.
  const addA = submit(a.chat, { k: 'add', user: 'alice', room: R, users: ['dave'] });
  const addB = submit(b.chat, { k: 'add', user: 'bob', room: R, users: ['erin', 'alice'] });
  const [a1] = await logA.takeAppended();
  const [b1] = await logB.takeAppended();
  log('A', a1);
  log('B', b1);
  const r1WithDave = { ...r1, users: ['alice', 'bob', 'dave'] };
  assert.deepEqual(addA, [{ ok: true, room: r1WithDave, changed: true }]);
  assert.deepEqual(addB, [{ ok: false, code: 'limit_reached', error: `room ${R} would have more than 3 members` }]);
  assert.deepEqual(b.events.at(-1), { k: 'room', room: r1WithDave, recipients: ['alice', 'bob', 'dave'] });

  // bob leaves through B; his message through A reaches the log after: forbidden. The leave's
  // room_update goes to the members after it and to the leaver.
  const left = submit(b.chat, { k: 'leave', user: 'bob', room: R });
  const late = submit(a.chat, { k: 'message', user: 'bob', room: R, uuid: 'b-1', text: 'too late', ts: T + 3 });
  const [x1] = await logB.takeAppended();
  const [m1] = await logA.takeAppended();
  log('B', x1);
  log('A', m1);
  const r1WithoutBob = { ...r1, users: ['alice', 'dave'] };
  assert.deepEqual(left, [{ ok: true, room: r1WithoutBob, changed: true }]);
  assert.deepEqual(a.events.at(-1), { k: 'room', room: r1WithoutBob, recipients: ['alice', 'dave', 'bob'] });
  assert.deepEqual(late, [{ ok: false, code: 'forbidden', error: `you are not a member of room ${R}` }]);

  // r3 loses alice, then carol (its last member: deleted), while carol's message through A is on
  // its way: not_found.
  const aliceLeft = submit(a.chat, { k: 'leave', user: 'alice', room: R + 1 });
  log('A', (await logA.takeAppended())[0]);
  assert.deepEqual(aliceLeft, [{ ok: true, room: { ...r3, users: ['carol'] }, changed: true }]);
  const carolLeft = submit(b.chat, { k: 'leave', user: 'carol', room: R + 1 });
  const void1 = submit(a.chat, { k: 'message', user: 'carol', room: R + 1, uuid: 'c-0', text: 'anyone?', ts: T + 4 });
  const [x2] = await logB.takeAppended();
  const [m2] = await logA.takeAppended();
  log('B', x2);
  log('A', m2);
  assert.deepEqual(carolLeft, [{ ok: true, room: { ...r3, users: [] }, changed: true }]);
  assert.deepEqual(a.events.at(-1), { k: 'room', room: { ...r3, users: [] }, recipients: ['carol'] });
  assert.equal(a.memory.room(R + 1), undefined);
  assert.deepEqual(void1, [{ ok: false, code: 'not_found', error: `there is no room ${R + 1}` }]);

  // A message through A, and its retry (same user, same uuid) through B: B's answer is the
  // original, and nothing new reaches A's connections.
  const sent = submit(a.chat, { k: 'message', user: 'alice', room: R, uuid: 'a-1', text: 'hello', ts: T + 5 });
  log('A', (await logA.takeAppended())[0]);
  const hello = { id: FIRST, room: R, user: 'alice', text: 'hello', ts: T + 5 };
  const r1AtHello = { ...r1WithoutBob, lastActivity: T + 5 };
  assert.deepEqual(sent, [{ ok: true, room: r1AtHello, changed: true, message: hello }]);
  assert.deepEqual(b.events.at(-1), { k: 'message', room: r1AtHello, uuid: 'a-1', message: hello }, 'with the uuid and the room as of the apply');
  const eventsOfA = a.events.length;
  const retry = submit(b.chat, { k: 'message', user: 'alice', room: R, uuid: 'a-1', text: 'hello', ts: T + 6 });
  log('B', (await logB.takeAppended())[0]);
  assert.deepEqual(retry, [{ ok: true, room: r1AtHello, changed: false, message: hello, duplicate: true }]);
  assert.equal(a.events.length, eventsOfA, 'a retry is no event');

  // A lobby message: the same id and text on every tree; its sender is not told of a failure.
  let lobbyFailed = 0;
  a.chat.submitLobby(T + 7, lobbyTail('alice', 'hi all'), () => lobbyFailed++);
  const [l1] = await logA.takeAppended();
  assert.deepEqual(l1, [`L${8} ${T + 7} ${lobbyTail('alice', 'hi all')}`]);
  log('A', l1);
  for (const r of [a, b, z]) assert.deepEqual(r.loop.lobbySnapshot().texts, [`{"id":${FIRST},"ts":${T + 7},"sender":"alice","message":"hi all"}`]);
  assert.equal(lobbyFailed, 0);

  // Every callback was called exactly once (the arrays above hold one result each), and all three
  // trees have the same state.
  for (const results of [created, noop, fromA, fromB, addA, addB, left, late, aliceLeft, carolLeft, void1, sent, retry]) assert.equal(results.length, 1);
  assert.deepEqual(stateOf(a), stateOf(z));
  assert.deepEqual(stateOf(b), stateOf(z));
});

test('several intents of one turn are one entry, whose records are applied in order', async (t) => {
  const logA = new RecordingLog('A');
  const a = replica(testConfig(), logA);
  listen(t, a);
  const created = submit(a.chat, { k: 'create', user: 'alice', name: 'r', users: ['alice'], ts: T });
  // The room's id is not known yet: the message names the id the create will get (the client
  // would have had it from the answer; here the test knows it).
  const said = submit(a.chat, { k: 'message', user: 'alice', room: FIRST, uuid: 'u', text: 'x', ts: T });
  const entries = await logA.takeAppended();
  assert.equal(entries.length, 1);
  assert.equal(entries[0].length, 2);
  a.chat.applyEntries([entry(`${T}-0`, 'A', ...entries[0])]);
  assert.equal(created[0]?.ok, true);
  assert.deepEqual(said, [{ ok: true, room: { id: FIRST, name: 'r', users: ['alice'], lastActivity: T }, changed: true, message: { id: FIRST, room: FIRST, user: 'alice', text: 'x', ts: T } }]);
});

test('a log that cannot take writes: submit throws having queued nothing; a refused append answers unavailable', async (t) => {
  // Never connected: refused at the call.
  const offline = replica(testConfig(), new SharedLog(NOWHERE, 'A'));
  assert.throws(() => offline.chat.submit({ k: 'leave', user: 'alice', room: 1 }, () => assert.fail('no callback for a refused submit')), StoreUnavailableError);
  assert.throws(() => offline.chat.submitLobby(T, lobbyTail('a', 'b'), () => assert.fail('no callback for a refused submit')), StoreUnavailableError);

  // The append is refused without being written (not connected any more): every intent of the
  // entry is answered unavailable, and a lobby sender is told.
  const logA = new RecordingLog('A');
  const a = replica(testConfig(), logA);
  listen(t, a);
  logA.appendError = new RedisConnectionError('REDIS_ERR_NOT_CONNECTED', 'not connected');
  const refused = submit(a.chat, { k: 'leave', user: 'alice', room: 1 });
  let lobbyFailed = 0;
  a.chat.submitLobby(T, lobbyTail('a', 'b'), () => lobbyFailed++);
  await logA.takeAppended();
  await nextTurn(); // the rejection's callbacks
  assert.equal(refused.length, 1);
  assert.equal(refused[0].ok ? 'ok' : refused[0].code, 'unavailable');
  assert.equal(lobbyFailed, 1);

  // Lost with the write in flight: Redis may have it, so nothing is said yet (settled once the
  // log is read to its end after the reconnect); if it comes back in the log, it is applied.
  logA.appendError = new RedisConnectionError('REDIS_ERR_CONNECTION_LOST', 'lost');
  const unknown = submit(a.chat, { k: 'create', user: 'alice', name: 'r', users: ['alice'], ts: T });
  const [records] = await logA.takeAppended();
  await nextTurn();
  assert.equal(unknown.length, 0, "not settled yet");
  a.chat.applyEntries([entry(`${T}-0`, 'A', ...records)]);
  assert.equal(unknown.length, 1);
  assert.equal(unknown[0].ok, true);
});

// ---------------------------------------------------------------------------------------------
// Snapshots: a tree that starts from one is in the state of the tree that stored it.

/** A never-connected SharedLog that keeps the snapshots the chat would store. */
class SnapshotLog extends SharedLog {
  readonly snapshots: Array<{ entries: number; pos: string; state: string }> = [];

  constructor(tree: string) {
    super(NOWHERE, tree);
  }

  override storeSnapshot(entries: number, pos: string, state: string): Promise<RespValue> {
    this.snapshots.push({ entries, pos, state });
    return Promise.resolve(1);
  }
}

test('a snapshot loaded by another tree gives the same state, and the same decisions after it', () => {
  // Trees' clocks differ, so records' ts are not in log order; with the dedupe table at its bound
  // (3 entries), which entries it keeps depends on the order of appends and their ts: a tree
  // loading the snapshot must keep exactly those.
  const config = testConfig({ dedupeMaxEntries: 3, redisSnapshotEvery: 5 });
  const snapshotLog = new SnapshotLog('A');
  const stored = replica(config, snapshotLog);
  const R = FIRST;
  const entries = [
    entry(`${T}-0`, 'A', create(1, 'alice', 'r', ['alice', 'bob'], T), lobby(2, T, 'alice', 'one'), lobby(3, T, 'alice', 'two')),
    entry(`${T + 1}-0`, 'B', say(1, 'alice', R, 'u-0', 'from a clock ahead', T + 59_000)),
    entry(`${T + 2}-0`, 'B', say(2, 'bob', R, 'u-j', 'from a clock behind', T)),
    entry(`${T + 3}-0`, 'A', say(4, 'alice', R, 'u-k', 'later', T + WINDOW), lobby(5, T + 3, 'bob', 'three'), lobby(6, T + 3, 'bob', 'four')),
    entry(`${T + 4}-0`, 'A', say(7, 'bob', R, 'u-m', 'behind again', T + 1000)),
  ];
  stored.chat.applyEntries(entries);
  assert.equal(snapshotLog.snapshots.length, 1, 'the 5th entry is this tree\'s: it stores the snapshot');
  const [snapshot] = snapshotLog.snapshots;
  assert.equal(snapshot.entries, 5);
  assert.equal(snapshot.pos, `${T + 4}-0`);

  const loaded = replica(config, new SharedLog(NOWHERE, 'C'));
  loaded.chat.loadSnapshot(snapshot.state, snapshot.entries);
  assert.deepEqual(stateOf(loaded), stateOf(stored));

  // The same entries after the snapshot, the same outcomes: bob's retry of u-j (still in the table
  // of the tree that applied every entry) is a duplicate on both, and the ids go on alike.
  const after = [
    entry(`${T + 5}-0`, 'B', say(4, 'bob', R, 'u-j', 'from a clock behind', T + 2), lobby(5, T + 5, 'bob', 'five')),
    entry(`${T + 6}-0`, 'B', create(6, 'bob', 'r2', ['bob'], T + 6), say(7, 'bob', R, 'u-n', 'new', T + 6)),
  ];
  stored.chat.applyEntries(after);
  loaded.chat.applyEntries(after);
  assert.deepEqual(stateOf(loaded), stateOf(stored));
  assert.deepEqual(stored.memory.lastMessages(R, 10).map((message) => message.id), [FIRST + 2, FIRST + 3, FIRST + 4], 'the retry added nothing');
});

// ---------------------------------------------------------------------------------------------
// Snapshots, with a real Redis.

/**
 * Cleanups run last registered, first run (the trees close before the Redis they use stops): one
 * t.after runs them all, whatever order node:test runs its hooks in.
 */
function cleanups(t: TestContext): (cleanup: () => Promise<void>) => void {
  const stack: Array<() => Promise<void>> = [];
  t.after(async () => {
    while (stack.length > 0) await stack.pop()!();
  });
  return (cleanup) => stack.push(cleanup);
}

/** A tree as openChatMemory builds it for CHAT_REDIS_URL, with a listener attached. */
async function openTree(config: ChatConfig, cleanup: (run: () => Promise<void>) => void): Promise<Replica> {
  const memory = memoryFor(config);
  const loop = new BroadcastLoop(config.historySize);
  const chat = await openSharedChat(config, memory, loop);
  loop.useShared(chat);
  const r: Replica = { chat, memory, loop, events: [] };
  chat.attach({ applied: (event) => r.events.push(event), presenceChanged: () => {}, localUsers: () => [] });
  cleanup(() => chat.close());
  return r;
}

/** Waits until `ready()` (bounded: a failure names what it waited for). */
async function until(what: string, ready: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!ready()) {
    if (Date.now() > deadline) assert.fail(`waited 10 s for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

test('snapshots: stored every N entries, then loaded by a new tree with the entries after it', async (t) => {
  if (skipWithoutRedis(t)) return;
  const cleanup = cleanups(t);
  const redis = await startRedisServer();
  cleanup(() => redis.stop());
  const config = testConfig({ redisSnapshotEvery: 10, redisUrl: parseRedisUrl(redis.url) });
  const probe = new RedisClient({ url: redis.url });
  await probe.connect();
  cleanup(() => probe.close());
  const streamIds = async (): Promise<string[]> => ((await probe.command(['XRANGE', 'chat:log', '-', '+'])) as Array<[string, unknown]>).map(([id]) => id);
  const snapshot = async (): Promise<Array<string | null>> => (await probe.command(['HMGET', 'chat:snapshot', 'n', 'pos'])) as Array<string | null>;

  const first = await openTree(config, cleanup);
  /** One entry: a message in the first room (and a lobby message in the same turn every third). */
  let written = 0;
  const write = async (): Promise<void> => {
    written++;
    const results = written === 1
      ? submit(first.chat, { k: 'create', user: 'alice', name: 'r', users: ['alice', 'bob'], ts: Date.now() })
      : submit(first.chat, { k: 'message', user: written % 2 === 0 ? 'alice' : 'bob', room: first.memory.roomsOf('alice')[0].id, uuid: `u-${written}`, text: `message ${written}`, ts: Date.now() });
    if (written % 3 === 0) first.chat.submitLobby(Date.now(), lobbyTail('carol', `lobby ${written}`), () => assert.fail('a lobby message was refused'));
    await until(`entry ${written} to be applied`, () => results.length === 1);
    assert.equal(results[0].ok, true);
  };

  while (written < 9) await write();
  assert.deepEqual(await snapshot(), [null, null], 'no snapshot before the 10th entry');
  await write();
  await until('the first snapshot', () => first.chat.snapshotsStored === 1);
  const ids10 = await streamIds();
  assert.equal(ids10.length, 10);
  assert.deepEqual(await snapshot(), ['10', ids10[9]]);
  assert.equal(await probe.command(['GET', 'chat:trimmed']), null, 'nothing is cut at the first snapshot');

  while (written < 20) await write();
  await until('the second snapshot', () => first.chat.snapshotsStored === 2);
  const ids20 = await streamIds();
  assert.deepEqual(await snapshot(), ['20', ids20.at(-1)!]);
  // Cut back to the previous snapshot's position (XTRIM MINID keeps that entry itself).
  assert.equal(ids20[0], ids10[9]);
  assert.equal(ids20.length, 11);
  assert.equal(await probe.command(['GET', 'chat:trimmed']), ids10[9]);

  while (written < 23) await write();
  // A tree that starts now reads the snapshot of 20 entries and the 3 after it.
  const second = await openTree(config, cleanup);
  assert.equal(second.chat.log.stats.entriesRead, 3, 'it read the snapshot and the 3 entries after it, no more');
  assert.deepEqual(stateOf(second), stateOf(first));
  assert.equal(first.memory.lastMessages(first.memory.roomsOf('alice')[0].id, 10).length, 3, 'the history was trimmed to CHAT_HISTORY_SIZE');
  assert.equal(first.loop.lobbySnapshot().ids.length, 3);

  // Both follow on: a write through the second is applied by both, to the same state.
  const results = submit(second.chat, { k: 'add', user: 'bob', room: second.memory.roomsOf('bob')[0].id, users: ['dave'] });
  await until('the second tree\'s write', () => results.length === 1);
  assert.equal(results[0].ok, true);
  await until('the first tree to apply it', () => first.memory.roomsOf('dave').length === 1);
  assert.deepEqual(stateOf(second), stateOf(first));
  assert.deepEqual(first.events.at(-1), { k: 'room', room: first.memory.roomsOf('dave')[0], recipients: ['alice', 'bob', 'dave'] });

  // STORE_SNAPSHOT stores only a snapshot that covers more entries than the stored one.
  const stored = await snapshot();
  const state = await probe.command(['HGET', 'chat:snapshot', 'state']);
  const streamBefore = await streamIds();
  assert.equal(await second.chat.log.storeSnapshot(20, streamBefore.at(-1)!, '{"v":1}'), 0, 'the same n');
  assert.equal(await second.chat.log.storeSnapshot(19, streamBefore.at(-1)!, '{"v":1}'), 0, 'a smaller n');
  assert.deepEqual(await snapshot(), stored);
  assert.equal(await probe.command(['HGET', 'chat:snapshot', 'state']), state);
  assert.deepEqual(await streamIds(), streamBefore);
  assert.equal(await probe.command(['GET', 'chat:trimmed']), ids10[9]);
  // A newer one is stored, and the stream is cut back to the one it replaces.
  assert.equal(await second.chat.log.storeSnapshot(24, streamBefore.at(-1)!, state as string), 1);
  assert.deepEqual(await snapshot(), ['24', streamBefore.at(-1)!]);
  assert.equal(await probe.command(['GET', 'chat:trimmed']), ids20.at(-1)!);
  assert.deepEqual(await streamIds(), streamBefore.slice(streamBefore.indexOf(ids20.at(-1)!)));
});

// ---------------------------------------------------------------------------------------------
// Stream ids.

test('compareStreamIds orders ids as Redis does: by ms, then by sequence, as numbers', () => {
  assert.ok(compareStreamIds('1-0', '2-0') < 0);
  assert.ok(compareStreamIds('2-0', '1-0') > 0);
  assert.equal(compareStreamIds('5-3', '5-3'), 0);
  assert.equal(compareStreamIds('0-0', '0-0'), 0);
  assert.ok(compareStreamIds('5-10', '5-9') > 0, 'numbers, not strings');
  assert.ok(compareStreamIds('10-0', '9-99') > 0, 'numbers, not strings');
  assert.ok(compareStreamIds('0-0', '1-0') < 0);
  assert.ok(compareStreamIds('1700000000000-0', '1700000000000-1') < 0);
  assert.ok(compareStreamIds('1700000000001-0', '1700000000000-4294967295') > 0);
  const ids = ['10-1', '9-5', '10-0', '9-10', '0-1', '1700000000000-2', '1700000000000-10'];
  assert.deepEqual(ids.sort(compareStreamIds), ['0-1', '9-5', '9-10', '10-0', '10-1', '1700000000000-2', '1700000000000-10']);
});

test('streamIdTime is the ms part of a stream id', () => {
  assert.equal(streamIdTime('1700000000000-0'), 1_700_000_000_000);
  assert.equal(streamIdTime('1700000000000-42'), 1_700_000_000_000);
  assert.equal(streamIdTime('0-1'), 0);
});
