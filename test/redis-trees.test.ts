// Several server trees sharing one chat through Redis (CHAT_REDIS_URL), end to end: real
// `node dist/main.js --workers 2` trees on their own ports, a real redis-server, real sockets.
// Each test starts its own Redis and trees and stops them.
//   1. a room shared by two trees has ONE order under concurrent senders on both: every member
//      connection, on either tree, gets every message once, in the same id order; every sender
//      gets its acknowledgement; select_room answers the same history on both trees;
//   2. the lobby across trees: one order for every subscriber on both trees, and a client that
//      resumes with `/chat?since=ID` on the other tree gets exactly what it missed (recovered);
//   3. presence across trees (`online`, `presence` pushes when a user's last connection on the
//      other tree closes and when it comes back), and membership changes made on one tree reach
//      the other's members as room_update, after which the added user can post there;
//   4. conflicts decided by the shared log: two trees creating a room for a user at the rooms
//      limit at once (exactly one wins, both trees agree), and retries of a new_message on the
//      other tree, after the original and at the same time (the original, stored once);
//   5. a tree that starts last serves the history (rooms and lobby) with the same ids, also when
//      it starts from a snapshot (CHAT_REDIS_SNAPSHOT_EVERY=10), while Redis keeps the stream short;
//   6. startup refusals: settings that differ from chat:config, Redis unreachable, a malformed
//      CHAT_REDIS_URL: exit 3 with a line that says which.
// The shared log's parts are tested on their own (redis-client.test.ts, redis-resp.test.ts); this
// file checks that whole trees keep the promises of the protocol when they share one chat.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { RedisClient } from '../src/redis/client.js';
import { ChatClient, closeAll, type ChatMessage } from './helpers/chat-client.js';
import { freePort, skipWithoutRedis, startRedisServer, type RunningRedis } from './helpers/redis-server.js';
import { RoomsConnection, closeConnections, messageOf, newSecret, newUuid, openSpread, type Frame, type RoomObject } from './helpers/rooms-client.js';
import { runMain, startServer, type RunningServer } from './helpers/server.js';

/** Workers per tree: the machine has two cores. */
const WORKERS = 2;
/** Every wait for an event is bounded by this (a loaded machine runs several trees at once). */
const WAIT_MS = 30_000;

/** Cleanups of one test, run in reverse order (connections, then trees, then Redis) after it. */
type Defer = (cleanup: () => unknown) => void;

function cleanups(t: TestContext): Defer {
  const stack: Array<() => unknown> = [];
  t.after(async () => {
    while (stack.length > 0) {
      try {
        await stack.pop()!();
      } catch (error) {
        t.diagnostic(`cleanup failed: ${(error as Error).message}`);
      }
    }
  });
  return (cleanup) => { stack.push(cleanup); };
}

/** One Redis, and trees that share it with the same settings. */
interface Shared {
  redis: RunningRedis;
  secret: string;
  env: NodeJS.ProcessEnv;
  defer: Defer;
  /** Starts one more tree on the shared Redis (stopped after the test). */
  tree(): Promise<RunningServer>;
  /** Signs `user` in on `tree` (closed after the test). */
  signIn(tree: RunningServer, user: string, name?: string): Promise<RoomsConnection>;
  /** `count` connections of `user` on `tree`, one per worker in turn (closed after the test). */
  spread(tree: RunningServer, user: string, count: number): Promise<RoomsConnection[]>;
  /** Joins the lobby on `tree`, with `/chat?since=` if given (closed after the test). */
  lobby(tree: RunningServer, name: string, since?: number): Promise<ChatClient>;
}

async function shared(t: TestContext, env: NodeJS.ProcessEnv = {}): Promise<Shared> {
  const defer = cleanups(t);
  const redis = await startRedisServer();
  defer(() => redis.stop());
  const secret = newSecret();
  const treeEnv = { CHAT_SECRET: secret, CHAT_REDIS_URL: redis.url, ...env };
  const trees: RunningServer[] = [];
  const connections: RoomsConnection[] = [];
  const lobbyClients: ChatClient[] = [];
  // Run in reverse: the clients close, then the trees stop (SIGTERM), then Redis.
  defer(() => Promise.all(trees.map(async (tree) => {
    const code = await tree.stop();
    // A tree that stops on SIGTERM exits 0; anything else is worth seeing in the failure.
    if (code !== 0) t.diagnostic(`a tree exited ${code}:\n${tree.output().slice(-2000)}`);
  })));
  defer(async () => {
    await closeConnections(connections);
    await closeAll(lobbyClients);
  });
  return {
    redis,
    secret,
    env: treeEnv,
    defer,
    async tree() {
      const server = await startServer({ args: ['--workers', String(WORKERS)], env: treeEnv, timeoutMs: WAIT_MS });
      trees.push(server);
      return server;
    },
    async signIn(tree, user, name = user) {
      const connection = await RoomsConnection.signIn(tree.wsUrl, secret, user, name);
      connections.push(connection);
      return connection;
    },
    spread: (tree, user, count) => openSpread(tree.wsUrl, secret, user, count, connections),
    async lobby(tree, name, since) {
      const client = since === undefined
        ? await ChatClient.join(tree.wsUrl, name)
        : await ChatClient.connect(tree.wsUrl, { path: `/chat?since=${since}`, name });
      lobbyClients.push(client);
      return client;
    },
  };
}

/** The lobby messages a client received (not the greeting, not the rooms' frames), in order. */
function lobbyMessages(client: ChatClient): ChatMessage[] {
  return client.received.filter((m) => typeof m.id === 'number' && m.action === undefined);
}

/** Waits until `client` has received a lobby message with text `text`; returns its lobby messages up to it (excluded). */
async function lobbyUntil(client: ChatClient, text: string): Promise<ChatMessage[]> {
  await client.seen((m) => typeof m.id === 'number' && m.action === undefined && m.message === text, WAIT_MS, `the lobby message ${text}`);
  const received = lobbyMessages(client);
  return received.slice(0, received.findIndex((m) => m.message === text));
}

/** Ids strictly increasing (and therefore each once). */
function assertIncreasing(ids: readonly number[], what: string): void {
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i] > ids[i - 1], `${what}: id ${ids[i]} at ${i} follows ${ids[i - 1]}`);
}

/** The room's id in a create_room (or any room) answer. */
function roomOf(answer: Frame): RoomObject {
  return answer.room as RoomObject;
}

/** The online list a frame tells about room `room` (a room object's, or a presence push's), or null. */
function onlineOf(frame: Frame, room: number): readonly string[] | null {
  if (frame.action === 'presence' && frame.room === room) return frame.online as string[];
  const object = frame.room as RoomObject | undefined;
  if (typeof object === 'object' && object !== null && object.id === room) return object.online;
  return null;
}

/** A room_update of `room` whose members are `users`. */
function roomUpdateWith(room: number, users: readonly string[]): (frame: Frame) => boolean {
  return (frame) => frame.action === 'room_update' && roomOf(frame).id === room && JSON.stringify(roomOf(frame).users) === JSON.stringify(users);
}

/** A Redis client of the test's own, to look at the keys (closed after the test). */
async function redisClient(s: Shared): Promise<RedisClient> {
  const client = new RedisClient({ url: s.redis.url });
  await client.connect();
  s.defer(() => client.close());
  return client;
}

test('two trees share a room in one order under concurrent senders on both: every member connection gets every message once, in the same id order', async (t) => {
  if (skipWithoutRedis(t)) return;
  const HISTORY = 50;
  const s = await shared(t, { CHAT_HISTORY_SIZE: String(HISTORY) });
  const [a, b] = [await s.tree(), await s.tree()];
  // Two users per tree, each with a connection on each of its tree's workers.
  const users = { ann: a, abe: a, bea: b, bo: b };
  const connections: RoomsConnection[] = [];
  for (const [user, tree] of Object.entries(users)) connections.push(...await s.spread(tree, user, WORKERS));
  const created = await connections[0].ok('create_room', { name: 'one order', users: ['abe', 'bea', 'bo'] });
  const room = roomOf(created).id;
  // Every connection knows the room once its tree applied the creation (the room_update).
  await Promise.all(connections.map((c) => c.seen((f) => f.action === 'room_update' && roomOf(f).id === room, 'the room_update', WAIT_MS)));

  // 4 senders (one connection of each user, alternating workers) × 25 messages, all at once.
  const PER_SENDER = 25;
  const senders = [connections[0], connections[3], connections[4], connections[7]];
  const expected: Array<{ user: string; text: string; uuid: string }> = [];
  const acks: Array<Promise<Frame>> = [];
  for (let i = 0; i < PER_SENDER; i++) {
    for (const sender of senders) {
      const uuid = newUuid('conc');
      const text = `${sender.name} says ${i}`;
      expected.push({ user: sender.user!, text, uuid });
      acks.push(sender.request('new_message', { room, text }, { uuid, timeoutMs: WAIT_MS }));
    }
  }
  const answers = await Promise.all(acks);
  const total = senders.length * PER_SENDER;

  // Every connection, on both trees, has all of them; after a barrier nothing more can be on its way.
  await Promise.all(connections.map((c) => c.waitForMessages(room, total, WAIT_MS)));
  await Promise.all(connections.map((c) => c.barrier()));
  const sequence = connections[0].messages(room);
  assert.equal(sequence.length, total);
  assertIncreasing(sequence.map((m) => m.id), connections[0].name);
  for (const c of connections) assert.deepEqual(c.messages(room), sequence, `${c.name} saw the same messages in the same order`);
  // Every copy carries its sender's uuid, on the sender's tree and on the other alike.
  const uuidOf = new Map(answers.map((answer) => [messageOf(answer).id, answer.uuid]));
  for (const c of connections) {
    for (const frame of c.messageFrames(room)) assert.equal(frame.uuid, uuidOf.get(messageOf(frame).id), `${c.name}: the uuid of message ${messageOf(frame).id}`);
  }
  assert.deepEqual(
    sequence.map((m) => `${m.user}|${m.text}`).sort(),
    expected.map((e) => `${e.user}|${e.text}`).sort(),
    'exactly the messages sent',
  );
  // Each sender's acknowledgement: its uuid, its text, the message as everyone received it.
  answers.forEach((answer, i) => {
    assert.equal(answer.status, 'success', JSON.stringify(answer));
    const message = messageOf(answer);
    assert.equal(message.text, expected[i].text);
    assert.equal(message.user, expected[i].user);
    assert.deepEqual(sequence.find((m) => m.id === message.id), message);
  });

  // select_room answers the same history on either tree: the last HISTORY of that one order.
  for (const c of [connections[1], connections[5]]) {
    const selected = await c.ok('select_room', { room });
    assert.deepEqual(selected.room_messages, sequence.slice(-HISTORY), `select_room on ${c.name}`);
    assert.deepEqual(roomOf(selected).users, ['ann', 'abe', 'bea', 'bo']);
  }
  // And with `since` (on tree B): exactly what follows that id.
  const since = sequence[total - 20].id;
  const resumed = await connections[4].ok('select_room', { room, since });
  assert.equal(resumed.recovered, true);
  assert.deepEqual(resumed.room_messages, sequence.slice(total - 19));
});

test('the lobby across trees: one order for every subscriber on both trees, and a resume with ?since= on the other tree gets exactly what was missed', async (t) => {
  if (skipWithoutRedis(t)) return;
  const s = await shared(t);
  const [a, b] = [await s.tree(), await s.tree()];
  // Two subscribers per tree, one per worker (sequential joins); all four publish.
  const clients: ChatClient[] = [];
  for (const [tree, name] of [[a, 'a0'], [a, 'a1'], [b, 'b0'], [b, 'b1']] as const) clients.push(await s.lobby(tree, name));
  const PER_PUBLISHER = 15;
  const expected: string[] = [];
  for (let i = 0; i < PER_PUBLISHER; i++) {
    for (const client of clients) {
      const text = `${client.name}-m${i}`;
      expected.push(`${client.name}|${text}`);
      client.say(client.name, text);
    }
  }
  // A marker from one subscriber once it has everything: in the one order, it comes after all of
  // them for everyone, so what precedes it is exactly what each subscriber got of the burst.
  await clients[3].seen(() => lobbyMessages(clients[3]).length >= expected.length, WAIT_MS, 'the whole burst');
  clients[3].say('b1', 'marker-1');
  const seen = await Promise.all(clients.map((c) => lobbyUntil(c, 'marker-1')));
  const sequence = seen[0];
  assert.equal(sequence.length, expected.length);
  assertIncreasing(sequence.map((m) => m.id!), 'a0');
  for (let i = 1; i < clients.length; i++) assert.deepEqual(seen[i], sequence, `${clients[i].name} saw the same lobby in the same order`);
  assert.deepEqual(sequence.map((m) => `${m.sender}|${m.message}`).sort(), expected.sort());

  // a1 (tree A) leaves after the marker; the others go on; a1 comes back on tree B with ?since=.
  const resumer = clients[1];
  const lastSeen = lobbyMessages(resumer).at(-1)!;
  assert.equal(lastSeen.message, 'marker-1');
  await closeAll([resumer]);
  for (let i = 0; i < 10; i++) {
    clients[0].say('a0', `a0-late${i}`);
    clients[2].say('b0', `b0-late${i}`);
  }
  await clients[3].seen(() => lobbyMessages(clients[3]).length >= expected.length + 1 + 20, WAIT_MS, 'the late burst');
  clients[3].say('b1', 'marker-2');
  const missed = (await lobbyUntil(clients[3], 'marker-2')).slice(expected.length + 1);
  assert.equal(missed.length, 20);
  const marker2 = lobbyMessages(clients[3]).find((m) => m.message === 'marker-2')!;

  const back = await s.lobby(b, 'a1 again', lastSeen.id);
  const greeting = await back.next(5000, 'the greeting');
  assert.deepEqual(greeting, { sender: 'server', message: 'You are connected', recovered: true });
  back.say('a1', 'marker-3');
  const resumed = await lobbyUntil(back, 'marker-3');
  assert.deepEqual(resumed, [...missed, marker2], 'exactly the messages after ?since=, in the same order, with the same ids');
});

test('presence across trees, and membership changes made on one tree reach the members on the other', async (t) => {
  if (skipWithoutRedis(t)) return;
  const s = await shared(t);
  const [a, b] = [await s.tree(), await s.tree()];
  const alice = await s.signIn(a, 'alice');
  const [bob0, bob1] = await s.spread(b, 'bob', 2); // one on each of tree B's workers
  const dave = await s.signIn(b, 'dave');
  const created = await alice.ok('create_room', { name: 'presence', users: ['bob'] });
  const room = roomOf(created).id;
  await Promise.all([bob0, bob1].map((c) => c.seen((f) => f.action === 'room_update' && roomOf(f).id === room, 'the room_update', WAIT_MS)));

  // Each tree tells its member that both are online once it has heard of the other tree's user
  // (in the answer or room_update, or in a presence push after it); then select_room says so too.
  const both = JSON.stringify(['alice', 'bob']);
  for (const c of [alice, bob0]) await c.seen((f) => JSON.stringify(onlineOf(f, room)) === both, 'both online', WAIT_MS);
  for (const c of [alice, bob0]) assert.deepEqual(roomOf(await c.ok('select_room', { room })).online, ['alice', 'bob'], `online on ${c.name}'s tree`);

  // bob's connections close, one after the other: only the last one makes him offline, and alice
  // (on the other tree) hears of it in the next presence push of the room.
  const offline = alice.next((f) => f.action === 'presence' && f.room === room, 'the presence push without bob', WAIT_MS);
  await bob0.closeAndWait();
  await bob1.closeAndWait();
  assert.deepEqual(await offline, { action: 'presence', room, online: ['alice'] });
  assert.deepEqual(roomOf(await alice.ok('select_room', { room })).online, ['alice']);

  // He comes back (on tree B): the next push says so.
  const online = alice.next((f) => f.action === 'presence' && f.room === room, 'the presence push with bob', WAIT_MS);
  const bob = await s.signIn(b, 'bob', 'bob again');
  assert.deepEqual(await online, { action: 'presence', room, online: ['alice', 'bob'] });

  // add_users on tree A reaches the members on tree B (the added one included) as room_update...
  const added = await alice.ok('add_users', { room, users: ['dave'] });
  assert.deepEqual(roomOf(added).users, ['alice', 'bob', 'dave']);
  for (const c of [bob, dave]) await c.seen(roomUpdateWith(room, ['alice', 'bob', 'dave']), 'the room_update adding dave', WAIT_MS);
  // ...and the one added can post from tree B as soon as it has arrived; alice on tree A gets it.
  const posted = await dave.say(room, 'dave here, from tree B');
  assert.deepEqual(messageOf(await alice.seen((f) => f.action === 'new_message' && messageOf(f).id === posted.id, 'dave\'s message', WAIT_MS)), posted);

  // leave_room on tree B reaches the member on tree A as room_update; the leaver can no longer post.
  const left = await bob.ok('leave_room', { room });
  assert.deepEqual(roomOf(left).users, ['alice', 'dave']);
  await alice.seen(roomUpdateWith(room, ['alice', 'dave']), 'the room_update without bob', WAIT_MS);
  const refused = await bob.request('new_message', { room, text: 'still here?' });
  assert.equal(refused.error, 'forbidden', JSON.stringify(refused));
});

test('conflicts are decided by the shared log: one room of two created at once at the limit, and retries on the other tree get the original', async (t) => {
  if (skipWithoutRedis(t)) return;
  const s = await shared(t, { CHAT_MAX_ROOMS_PER_USER: '1' });
  const [a, b] = [await s.tree(), await s.tree()];

  // zed, allowed one room, asks for two at the same time, one on each tree.
  const zedA = await s.signIn(a, 'zed', 'zed on A');
  const zedB = await s.signIn(b, 'zed', 'zed on B');
  const answers = await Promise.all([
    zedA.request('create_room', { name: 'from A', users: [] }, { timeoutMs: WAIT_MS }),
    zedB.request('create_room', { name: 'from B', users: [] }, { timeoutMs: WAIT_MS }),
  ]);
  const won = answers.filter((answer) => answer.status === 'success');
  const lost = answers.filter((answer) => answer.status === 'error');
  assert.equal(won.length, 1, JSON.stringify(answers));
  assert.equal(lost.length, 1, JSON.stringify(answers));
  assert.equal(lost[0].error, 'limit_reached', JSON.stringify(lost[0]));
  const winner = roomOf(won[0]);
  // Both trees agree: once each connection has the winner's room_update, list_rooms on either
  // tree lists that room alone.
  for (const c of [zedA, zedB]) await c.seen((f) => f.action === 'room_update' && roomOf(f).id === winner.id, 'the winner\'s room_update', WAIT_MS);
  for (const c of [zedA, zedB]) {
    const listed = (await c.ok('list_rooms')).rooms as Array<RoomObject & { last_message: unknown }>;
    assert.deepEqual(listed.map((r) => ({ id: r.id, name: r.name, users: r.users })), [{ id: winner.id, name: winner.name, users: ['zed'] }], `list_rooms on ${c.name}`);
  }

  // yan is on both trees, xia on tree A; a room of the two.
  const yanA = await s.signIn(a, 'yan', 'yan on A');
  const yanB = await s.signIn(b, 'yan', 'yan on B');
  const xia = await s.signIn(a, 'xia');
  const room = roomOf(await yanA.ok('create_room', { name: 'retries', users: ['xia'] })).id;
  await yanB.seen((f) => f.action === 'room_update' && roomOf(f).id === room, 'the room_update', WAIT_MS);

  // A retry on tree B of a message acknowledged on tree A: the original, not a second message.
  const uuid1 = newUuid('retry');
  const original = await yanA.say(room, 'hello', uuid1);
  await yanB.seen((f) => f.uuid === uuid1 && f.action === 'new_message', 'the original on tree B', WAIT_MS);
  const retried = await yanB.request('new_message', { room, text: 'hello' }, { uuid: uuid1, timeoutMs: WAIT_MS });
  assert.equal(retried.status, 'success', JSON.stringify(retried));
  assert.deepEqual(messageOf(retried), original);

  // The same uuid sent on both trees at once: one message, and both answers are it.
  const uuid2 = newUuid('retry');
  const [onA, onB] = await Promise.all([
    yanA.request('new_message', { room, text: 'twice?' }, { uuid: uuid2, timeoutMs: WAIT_MS }),
    yanB.request('new_message', { room, text: 'twice?' }, { uuid: uuid2, timeoutMs: WAIT_MS }),
  ]);
  assert.equal(onA.status, 'success', JSON.stringify(onA));
  assert.equal(onB.status, 'success', JSON.stringify(onB));
  const once = messageOf(onA);
  assert.deepEqual(messageOf(onB), once);

  // Delivered once: xia, after a later message, has exactly the three.
  const after = await yanB.say(room, 'after the retries');
  await xia.waitForMessages(room, 3, WAIT_MS);
  await xia.barrier();
  assert.deepEqual(xia.messages(room), [original, once, after]);
});

test('a tree that starts last serves the rooms\' and the lobby\'s history with the same ids, and goes on from there', async (t) => {
  if (skipWithoutRedis(t)) return;
  const s = await shared(t);
  const a = await s.tree();
  const alice = await s.signIn(a, 'alice');
  const room = roomOf(await alice.ok('create_room', { name: 'before B', users: ['bob'] })).id;
  const COUNT = 20;
  await Promise.all(Array.from({ length: COUNT }, (_, i) => alice.say(room, `early ${i}`)));
  const roomHistory = await alice.waitForMessages(room, COUNT, WAIT_MS);
  const publisher = await s.lobby(a, 'publisher on A');
  for (let i = 0; i < COUNT; i++) publisher.say('p', `lobby ${i}`);
  publisher.say('p', 'end of the burst');
  const lobbyHistory = [...await lobbyUntil(publisher, 'end of the burst'), lobbyMessages(publisher).at(-1)!];
  assert.equal(lobbyHistory.length, COUNT + 1);

  const b = await s.tree();
  const bob = await s.signIn(b, 'bob');
  const selected = await bob.ok('select_room', { room });
  assert.deepEqual(selected.room_messages, roomHistory, 'the room\'s history on tree B');
  const resumed = await bob.ok('select_room', { room, since: roomHistory[COUNT - 6].id });
  assert.deepEqual([resumed.recovered, resumed.room_messages], [true, roomHistory.slice(COUNT - 5)], 'select_room with since on tree B');
  // Tree B learns who is online on tree A (its hello is answered with a snap): bob is told alice is.
  await bob.seen((f) => JSON.stringify(onlineOf(f, room)) === JSON.stringify(['alice', 'bob']), 'alice online, as tree B learns', WAIT_MS);
  const reader = await s.lobby(b, 'reader on B');
  reader.say('r', 'reader marker');
  assert.deepEqual(await lobbyUntil(reader, 'reader marker'), lobbyHistory, 'the lobby\'s history in the greeting on tree B');

  // Tree B goes on with the same ids as tree A: its next message follows, and reaches alice.
  const next = await bob.say(room, 'first from tree B');
  assert.ok(next.id > roomHistory.at(-1)!.id, `${next.id} follows ${roomHistory.at(-1)!.id}`);
  assert.deepEqual(messageOf(await alice.seen((f) => f.action === 'new_message' && messageOf(f).id === next.id, 'bob\'s message', WAIT_MS)), next);
});

test('snapshots every 10 entries: Redis keeps the stream short, and a tree started afterwards serves the whole history from the snapshot', async (t) => {
  if (skipWithoutRedis(t)) return;
  const EVERY = 10;
  const s = await shared(t, { CHAT_REDIS_SNAPSHOT_EVERY: String(EVERY), CHAT_HISTORY_SIZE: '200', CHAT_RATE_PER_SECOND: '1000', CHAT_RATE_BURST: '1000' });
  const redis = await redisClient(s);
  const [a, b] = [await s.tree(), await s.tree()];
  const alice = await s.signIn(a, 'alice');
  const bob = await s.signIn(b, 'bob');
  const room = roomOf(await alice.ok('create_room', { name: 'snapshots', users: ['bob'] })).id;
  await bob.seen((f) => f.action === 'room_update' && roomOf(f).id === room, 'the room_update', WAIT_MS);
  const lobbyA = await s.lobby(a, 'lobby on A');
  const lobbyB = await s.lobby(b, 'lobby on B');

  // One entry per write: each waits for the one before (a tree appends one entry per turn).
  // Redis keeps the entries after the snapshot before last, so about two intervals, plus the
  // entries appended while the newest snapshot is on its way (a tree stores it after applying
  // its entry): with one write in flight at a time, never a third interval. After every 10
  // writes, XLEN must be within 3 intervals plus the entry a MINID cut keeps (the snapshot's own).
  const MESSAGES = 120;
  const BOUND = 3 * EVERY + 1;
  let written = 1; // entries of chat:log so far: the create_room
  let longest = 0;
  for (let i = 0; i < MESSAGES; i++) {
    await (i % 2 === 0 ? alice : bob).say(room, `m${i}`);
    written++;
    if (i % 10 === 9) {
      const lobby = i % 20 === 9 ? lobbyA : lobbyB;
      lobby.say(lobby.name, `lobby ${i}`);
      await lobby.seen((m) => m.message === `lobby ${i}` && typeof m.id === 'number', WAIT_MS, `lobby ${i}`);
      written++;
      const length = Number(await redis.command(['XLEN', 'chat:log']));
      longest = Math.max(longest, length);
      assert.ok(length <= BOUND, `XLEN chat:log is ${length} after ${written} entries (bound ${BOUND})`);
    }
  }
  const [n, pos] = await redis.command(['HMGET', 'chat:snapshot', 'n', 'pos']) as [string | null, string | null];
  assert.ok(n !== null && pos !== null, 'chat:snapshot exists');
  assert.equal(Number(n) % EVERY, 0, `a snapshot is taken every ${EVERY} entries (n = ${n})`);
  assert.ok(Number(n) >= 100, `several snapshots were stored (the last covers ${n} of ${written} entries)`);
  const trimmed = await redis.command(['GET', 'chat:trimmed']) as string | null;
  assert.ok(trimmed !== null, 'chat:trimmed exists: the stream was cut');
  const first = await redis.command(['XRANGE', 'chat:log', '-', '+', 'COUNT', 1]) as Array<[string, unknown]>;
  assert.equal(first[0][0], trimmed, 'the stream starts at the cut (the previous snapshot\'s entry)');
  assert.ok(longest < written / 3, `XLEN stayed at most ${longest}, well below the ${written} entries written`);
  t.diagnostic(`XLEN chat:log was at most ${longest} while ${written} entries were written; the last snapshot covers ${n}`);

  // A tree started now loads the snapshot and the entries after it, and serves everything.
  const roomHistory = alice.messages(room);
  assert.equal(roomHistory.length, MESSAGES);
  lobbyA.say('a', 'before C');
  const lobbyHistory = [...await lobbyUntil(lobbyA, 'before C'), lobbyMessages(lobbyA).at(-1)!];
  const c = await s.tree();
  assert.match(c.output(), /read a snapshot of \d+ entries/);
  const aliceOnC = await s.signIn(c, 'alice', 'alice on C');
  const selected = await aliceOnC.ok('select_room', { room });
  assert.deepEqual(selected.room_messages, roomHistory, 'the room\'s whole history on tree C');
  const reader = await s.lobby(c, 'reader on C');
  reader.say('r', 'reader marker');
  assert.deepEqual(await lobbyUntil(reader, 'reader marker'), lobbyHistory, 'the lobby\'s history on tree C');
  // And tree C's ids go on from the snapshot's: its message follows and reaches bob on tree B.
  const next = await aliceOnC.say(room, 'from tree C');
  assert.ok(next.id > roomHistory.at(-1)!.id);
  assert.deepEqual(messageOf(await bob.seen((f) => f.action === 'new_message' && messageOf(f).id === next.id, 'the message from tree C', WAIT_MS)), next);
});

test('startup: settings that differ from chat:config, an unreachable Redis and a malformed CHAT_REDIS_URL exit 3 saying which', async (t) => {
  const args = ['--workers', String(WORKERS), '--port', '0', '--host', '127.0.0.1'];

  await t.test('settings that differ from those stored by the first tree', async (t) => {
    if (skipWithoutRedis(t)) return;
    const s = await shared(t, { CHAT_MAX_ROOM_MEMBERS: '100' });
    await s.tree();
    const second = await runMain(args, WAIT_MS, { ...s.env, CHAT_MAX_ROOM_MEMBERS: '50' });
    assert.equal(second.code, 3, second.stdout + second.stderr);
    assert.match(second.stdout + second.stderr, /chat:config/);
    // The first tree's settings stay.
    const redis = await redisClient(s);
    assert.match(String(await redis.command(['GET', 'chat:config'])), /"maxRoomMembers":100/);
  });

  await t.test('Redis unreachable', async () => {
    const port = await freePort();
    const run = await runMain(args, WAIT_MS, { CHAT_REDIS_URL: `redis://127.0.0.1:${port}` });
    assert.equal(run.code, 3, run.stdout + run.stderr);
    assert.match(run.stdout + run.stderr, /cannot reach Redis/);
  });

  await t.test('a malformed CHAT_REDIS_URL (and its password is not printed)', async () => {
    const run = await runMain(args, WAIT_MS, { CHAT_REDIS_URL: 'redis://:hunter2secret@127.0.0.1:6379/not-a-db' });
    assert.equal(run.code, 3, run.stdout + run.stderr);
    assert.match(run.stdout + run.stderr, /CHAT_REDIS_URL/);
    assert.ok(!(run.stdout + run.stderr).includes('hunter2secret'), run.stdout + run.stderr);
  });
});
