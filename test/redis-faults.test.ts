// Faults of the multi-machine mode (CHAT_REDIS_URL), end to end: real server trees (`node
// dist/main.js --workers 2`, each its own process group) sharing a real redis-server, real
// WebSockets, and real kills:
//   - kill -9 of one whole tree while the other serves: the survivor keeps acknowledging and
//     delivering; the restarted tree (a new process, the same Redis) serves the same chat, and its
//     clients resume with `select_room` `since` and `/chat?since=` (recovered: true, exactly what
//     they missed); every acknowledged message is in the history once, in one order on both trees;
//   - Redis killed (-9) and restarted with its append-only file (appendfsync always) in the middle
//     of a burst: writes during the outage are answered `unavailable` (rooms) or get the error line
//     (lobby), connections stay open, and after the restart every acknowledged message is in the
//     history once and reached every member connection once; retried uuids are stored once;
//   - Redis down for a while: writes refused with the protocol's error, reads and /healthz served
//     from the tree's copy; Redis back: writes succeed again, with no restart of the trees;
//   - a tree paused (SIGSTOP) while the others write more than two snapshot intervals finds the
//     stream trimmed past it when it resumes, and exits 1 saying to restart it.
// The layers below (the RESP parser, the client, reconnects) have tests of their own
// (redis-resp.test.ts, redis-client.test.ts); this file checks that the trees keep the promises
// of src/shared-chat.ts ("Faults", "Bounded") and src/redis/shared-log.ts when processes and
// Redis die. Nothing here waits on a clock: each step waits for the event that ends the last one
// (an acknowledgement, a log line, a process exit); the few sleeps only pace a publisher.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { RedisClient } from '../src/redis/client.js';
import { ChatClient, closeAll, healthz, within, type ChatMessage } from './helpers/chat-client.js';
import { startRedisServer, skipWithoutRedis, type RunningRedis } from './helpers/redis-server.js';
import { RoomsConnection, closeConnections, messageOf, newSecret, newUuid, openSpread, sleep, type MessageObject } from './helpers/rooms-client.js';
import { startServer, type RunningServer } from './helpers/server.js';

/** The lines a tree logs when its commands connection to Redis is lost, and once it is back and caught up. */
const LOST_REDIS = /shared log: lost Redis at /g;
const BACK_AND_CAUGHT_UP = /shared log: Redis at \S+ is back and this tree has caught up/g;
/** A room write refused while Redis is away (rooms/service.ts; the protocol's `unavailable`). */
const ROOM_UNAVAILABLE = /^the message log cannot take writes now: nothing was stored; retry later with the same uuid$/;
/** The error line a lobby sender gets when the shared log cannot take its message (broadcast.ts). */
const LOBBY_REFUSED = { sender: 'server', error: 'the shared log (Redis) cannot take writes now: your message was not sent; send it again later' };

/** A chat shared through one Redis: the settings every tree of it runs with. */
interface SharedChatSetup {
  redis: RunningRedis;
  secret: string;
  env: NodeJS.ProcessEnv;
}

/**
 * A Redis for this test, removed after it. The history is long enough to hold everything a test
 * says (so `select_room` and a newcomer's lobby history are the whole conversation), and the rate
 * limit is out of the way (the publishers send as fast as they are answered).
 */
async function sharedChat(t: TestContext, redisOptions: Parameters<typeof startRedisServer>[0] = {}, env: NodeJS.ProcessEnv = {}): Promise<SharedChatSetup> {
  const redis = await startRedisServer(redisOptions);
  t.after(() => redis.stop());
  const secret = newSecret();
  return {
    redis,
    secret,
    env: {
      CHAT_SECRET: secret,
      CHAT_REDIS_URL: redis.url,
      CHAT_HISTORY_SIZE: '1000',
      CHAT_RATE_PER_SECOND: '1000000',
      CHAT_RATE_BURST: '1000000',
      ...env,
    },
  };
}

/** A `--workers 2` tree on the shared chat, in a process group of its own (killTree), killed after the test. */
async function startTree(t: TestContext, s: SharedChatSetup): Promise<RunningServer> {
  const tree = await startServer({ args: ['--workers', '2'], env: s.env, detached: true, timeoutMs: 30_000 });
  t.after(() => tree.killTree());
  return tree;
}

/**
 * Resolves once the tree's output holds `pattern` (a /g regex) at least `count` times: the event a
 * log line marks. Rejects if the tree exits first, or after `timeoutMs`, with what it said.
 */
function waitForOutput(tree: RunningServer, pattern: RegExp, count: number, what: string, timeoutMs = 30_000): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const check = (): void => {
      if ([...tree.output().matchAll(pattern)].length < count) return;
      stop();
      resolve();
    };
    const fail = (why: string): void => {
      stop();
      reject(new Error(`${why} before ${what}; the tree said:\n${tree.output().slice(-3000)}`));
    };
    const timer = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);
    const stop = (): void => {
      clearTimeout(timer);
      tree.proc.stdout!.off('data', check);
      tree.proc.stderr!.off('data', check);
    };
    // The helper's own listeners were added first, so output() already holds the chunk here.
    tree.proc.stdout!.on('data', check);
    tree.proc.stderr!.on('data', check);
    void tree.exited.then((code) => fail(`the tree exited (${code})`));
    check();
  });
}

/** The lobby messages a connection received (not the greeting, error lines or rooms frames). */
/**
 * Waits until `member` (a connection of a member of `room`) has received each of `messages`: its
 * tree has then applied them, and a read there includes them.
 */
async function untilReceived(member: RoomsConnection, room: number, messages: readonly MessageObject[], what: string): Promise<void> {
  const has = (): boolean => {
    const received = new Set(member.messages(room).map((m) => m.id));
    return messages.every((m) => received.has(m.id));
  };
  await member.seen(() => has(), what, 30_000);
}

function lobbyMessages(received: readonly ChatMessage[]): ChatMessage[] {
  return received.filter((m) => typeof m.id === 'number' && m.action === undefined);
}

function roomIdOf(answer: ChatMessage): number {
  return (answer.room as { id: number }).id;
}

/** Fails unless the ids are strictly increasing (one order, nothing twice). */
function assertIncreasing(ids: readonly number[], what: string): void {
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i] > ids[i - 1], `${what}: id ${ids[i]} follows ${ids[i - 1]} (position ${i})`);
}

/** How many times each value occurs. */
function counts<T>(values: Iterable<T>): Map<T, number> {
  const out = new Map<T, number>();
  for (const value of values) out.set(value, (out.get(value) ?? 0) + 1);
  return out;
}

/** Fails if a value occurs twice, naming the first such value. */
function assertUnique<T>(values: Iterable<T>, what: string): void {
  for (const [value, n] of counts(values)) assert.equal(n, 1, `${what}: ${String(value)} occurs ${n} times`);
}

/** A counter whose growth can be awaited (the publishers' acknowledgements). */
class Progress {
  private value = 0;
  private readonly waiters: Array<{ target: number; resolve: () => void }> = [];

  get count(): number {
    return this.value;
  }

  add(): void {
    this.value++;
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      if (this.value >= this.waiters[i].target) this.waiters.splice(i, 1)[0].resolve();
    }
  }

  /** Resolves once the count reaches `target` (bounded: names `what` on timeout). */
  reach(target: number, what: string, timeoutMs = 30_000): Promise<void> {
    if (this.value >= target) return Promise.resolve();
    return within(new Promise<void>((resolve) => this.waiters.push({ target, resolve })), timeoutMs, `${what} (${target}; there were ${this.value} when the wait began)`);
  }
}

/**
 * A room publisher as the page is one: one new_message at a time, each with its own uuid, the
 * next sent once the answer to the last is here. `run` sends until `stop()` says so or the
 * connection closes; the request left unanswered by a close is `inDoubt` (it may or may not
 * have reached the log: the page resends it with the same uuid after reconnecting).
 */
class RoomPublisher {
  readonly acked: MessageObject[] = [];
  readonly progress = new Progress();
  inDoubt: string | null = null;
  private next = 0;

  constructor(readonly connection: RoomsConnection, readonly room: number, readonly prefix: string) {}

  /** The uuid (also the text, so that the history shows which request stored each message) of the next message. */
  private uuid(): string {
    return `${this.prefix}-${this.next++}`;
  }

  async run(stop: () => boolean): Promise<void> {
    while (!stop()) {
      const uuid = this.uuid();
      let answer: ChatMessage;
      try {
        answer = await this.connection.request('new_message', { room: this.room, text: uuid }, { uuid, timeoutMs: 30_000 });
      } catch (error) {
        if (this.connection.chat.closeInfo === null) throw error;
        this.inDoubt = uuid; // the tree died with it unanswered
        return;
      }
      assert.equal(answer.status, 'success', `${this.prefix}: ${JSON.stringify(answer)}`);
      this.acked.push(messageOf(answer));
      this.progress.add();
    }
  }

  /** Sends `count` messages, one at a time, each of which must be acknowledged. */
  async send(count: number): Promise<void> {
    let sent = 0;
    await this.run(() => sent++ >= count);
    assert.equal(this.inDoubt, null, `${this.prefix}: the connection closed`);
  }
}

/**
 * A lobby publisher: one message at a time, each waiting for its own copy (its acknowledgement:
 * the lobby has no other) or the server's error line (it reached nobody). Texts are unique, so a
 * copy is recognised by its text. A message left unanswered by a close is `inDoubt` (it may or may
 * not have been delivered; the lobby has no uuid, so it is not resent).
 */
class LobbyPublisher {
  readonly acked: ChatMessage[] = [];
  readonly refused: string[] = [];
  readonly progress = new Progress();
  inDoubt: string | null = null;
  private next = 0;

  constructor(readonly client: ChatClient, readonly prefix: string) {}

  async run(stop: () => boolean, afterRefusal: () => Promise<void> = async () => {}): Promise<void> {
    while (!stop()) {
      const text = `${this.prefix}-${this.next++}`;
      this.client.say(this.prefix, text);
      let answer: ChatMessage;
      try {
        answer = await this.client.waitFor((m) => (m.action === undefined && m.message === text && typeof m.id === 'number') || (m.sender === 'server' && m.error !== undefined), 30_000, `the copy of ${text} or an error line`);
      } catch (error) {
        if (this.client.closeInfo === null) throw error;
        this.inDoubt = text;
        return;
      }
      if (answer.error !== undefined) {
        assert.deepEqual(answer, LOBBY_REFUSED, `${this.prefix}: ${text}`);
        this.refused.push(text);
        await afterRefusal();
        continue;
      }
      this.acked.push(answer);
      this.progress.add();
    }
  }

  async send(count: number): Promise<void> {
    let sent = 0;
    await this.run(() => sent++ >= count);
    assert.equal(this.inDoubt, null, `${this.prefix}: the connection closed`);
    assert.deepEqual(this.refused, [], `${this.prefix}: refused lobby messages`);
  }
}

/**
 * Joins the lobby and returns its history: what arrived before a marker this client publishes
 * once the greeting is here (the marker is live, so the history is everything before it).
 */
async function lobbyHistory(wsUrl: string): Promise<{ history: ChatMessage[]; marker: string }> {
  const client = await ChatClient.join(wsUrl, 'history reader');
  try {
    const marker = `marker-${newUuid()}`;
    client.say('reader', marker);
    await client.waitFor((m) => m.message === marker, 10_000, 'the marker');
    const received = lobbyMessages(client.received);
    return { history: received.slice(0, received.findIndex((m) => m.message === marker)), marker };
  } finally {
    await closeAll([client]);
  }
}

test('kill -9 of one tree while the other serves: the survivor goes on, the restarted tree catches up, clients resume exactly, and every acknowledged message is in the history once', async (t) => {
  if (skipWithoutRedis(t)) return;
  const s = await sharedChat(t);
  const treeA = await startTree(t, s);
  const treeB = await startTree(t, s);
  const connections: RoomsConnection[] = [];
  t.after(() => closeConnections(connections));
  const lobbyClients: ChatClient[] = [];
  t.after(() => closeAll(lobbyClients));

  // Sequential connections land on both workers of their tree (round-robin): ann on A, ben on B,
  // one of each publishing and one only listening; and a lobby publisher on each tree.
  const [annPub, annListener] = await openSpread(treeA.wsUrl, s.secret, 'ann', 2, connections);
  const [benPub, benListener] = await openSpread(treeB.wsUrl, s.secret, 'ben', 2, connections);
  const lobbyA = await ChatClient.join(treeA.wsUrl, 'lobby-A');
  const lobbyB = await ChatClient.join(treeB.wsUrl, 'lobby-B');
  lobbyClients.push(lobbyA, lobbyB);
  const room = roomIdOf(await annPub.ok('create_room', { name: 'across', users: ['ben'] }));
  // Tree B has applied the creation once ben's connections hear of it: ben may post from then on.
  for (const ben of [benPub, benListener]) await ben.seen((m) => m.action === 'room_update' && roomIdOf(m) === room, 'the room_update of the new room');

  // Traffic on both trees, all the time: two room publishers and two lobby publishers.
  const annRoom = new RoomPublisher(annPub, room, 'ann');
  const benRoom = new RoomPublisher(benPub, room, 'ben');
  const annLobby = new LobbyPublisher(lobbyA, 'lobbyA');
  const benLobby = new LobbyPublisher(lobbyB, 'lobbyB');
  let stopB = false;
  const running = [annRoom.run(() => false), annLobby.run(() => false), benRoom.run(() => stopB), benLobby.run(() => stopB)];
  await Promise.all([annRoom.progress.reach(10, 'ann\'s acknowledgements'), benRoom.progress.reach(10, 'ben\'s acknowledgements'),
    annLobby.progress.reach(10, 'lobby A\'s copies'), benLobby.progress.reach(10, 'lobby B\'s copies')]);

  // kill -9 of tree A, mid-traffic: its publishers stop at the close, each with one request in doubt.
  await treeA.killTree();
  await Promise.all([running[0], running[1]]);
  assert.notEqual(annRoom.inDoubt, null, 'ann\'s publisher was sending when tree A died');
  const annAckedBeforeKill = annRoom.acked.length;

  // Tree B serves on: ten more acknowledged messages in the room and in the lobby from its side.
  const benBeforeKill = benRoom.acked.length;
  await Promise.all([benRoom.progress.reach(benRoom.progress.count + 10, 'ben\'s acknowledgements after the kill'),
    benLobby.progress.reach(benLobby.progress.count + 10, 'lobby B\'s copies after the kill')]);
  stopB = true;
  await Promise.all([running[2], running[3]]);
  assert.ok(benRoom.acked.length >= benBeforeKill + 10);
  // Everything the primary of B sent ben's listener before this round trip is here.
  await benListener.barrier();
  const roomSoFar = benListener.messages(room);
  for (const message of benRoom.acked.slice(benBeforeKill)) {
    assert.deepEqual(roomSoFar.find((m) => m.id === message.id), message, `ben's listener got ${message.text}, acknowledged after the kill`);
  }

  // Tree A again: a new process on the same Redis. ann's connections come back and ask for what
  // they missed since the last message each one saw.
  const treeA2 = await startTree(t, s);
  const annAgain = await openSpread(treeA2.wsUrl, s.secret, 'ann', 2, connections);
  for (const [i, before] of [annPub, annListener].entries()) {
    const seen = before.messages(room);
    const lastSeen = seen[seen.length - 1].id;
    const resumed = await annAgain[i].ok('select_room', { room, since: lastSeen });
    assert.equal(resumed.recovered, true, `${before.name}: recovered`);
    assert.deepEqual(resumed.room_messages, roomSoFar.filter((m) => m.id > lastSeen), `${before.name}: exactly the messages after ${lastSeen}`);
  }
  // The lobby: resume from the last lobby message lobby A saw.
  const lobbySeenOnA = lobbyMessages(lobbyA.received);
  const lastLobbySeen = lobbySeenOnA[lobbySeenOnA.length - 1].id!;
  const resumedLobby = await ChatClient.connect(treeA2.wsUrl, { path: `/chat?since=${lastLobbySeen}`, name: 'lobby-A resumed' });
  lobbyClients.push(resumedLobby);
  assert.deepEqual(await resumedLobby.next(5000, 'the greeting'), { sender: 'server', message: 'You are connected', recovered: true });
  const resumeMarker = `resumed-${newUuid()}`;
  resumedLobby.say('lobbyA', resumeMarker);
  await resumedLobby.waitFor((m) => m.message === resumeMarker, 10_000, 'the marker of the resumed lobby client');
  await benListener.chat.seen((m) => m.message === resumeMarker, 10_000, 'the marker, on tree B');
  const lobbyOnB = lobbyMessages(benListener.received);
  const missed = lobbyOnB.slice(0, lobbyOnB.findIndex((m) => m.message === resumeMarker)).filter((m) => m.id! > lastLobbySeen);
  const resumedLobbyReceived = lobbyMessages(resumedLobby.received);
  assert.deepEqual(resumedLobbyReceived.slice(0, resumedLobbyReceived.findIndex((m) => m.message === resumeMarker)), missed, 'the resumed lobby client got exactly what it missed');

  // The page resends what was never answered, with the same uuid: stored once, whether or not it
  // reached the log before the kill.
  const resent = await annAgain[0].request('new_message', { room, text: annRoom.inDoubt! }, { uuid: annRoom.inDoubt! });
  assert.equal(resent.status, 'success', JSON.stringify(resent));
  const storedBeforeKill = roomSoFar.some((m) => m.text === annRoom.inDoubt);
  if (storedBeforeKill) assert.deepEqual(messageOf(resent), roomSoFar.find((m) => m.text === annRoom.inDoubt), 'the resend is answered with the original');

  // Both trees serve the room and the lobby again, from both sides.
  const annRoom2 = new RoomPublisher(annAgain[0], room, 'ann2');
  const benRoom2 = new RoomPublisher(benPub, room, 'ben2');
  const annLobby2 = new LobbyPublisher(resumedLobby, 'lobbyA2');
  const benLobby2 = new LobbyPublisher(lobbyB, 'lobbyB2');
  await Promise.all([annRoom2.send(10), benRoom2.send(10), annLobby2.send(5), benLobby2.send(5)]);

  // The room's history, from both trees: the same messages in the same order; each request's
  // text (its uuid) once; and exactly the acknowledged messages, each as acknowledged. A tree
  // answers a read from what it has applied, and the last acknowledgements came from both trees:
  // first each tree's member connection must have received them (applied there, hence readable).
  await untilReceived(annAgain[1], room, [...annRoom2.acked, ...benRoom2.acked], 'tree A applied the last messages');
  await untilReceived(benListener, room, [...annRoom2.acked, ...benRoom2.acked], 'tree B applied the last messages');
  const historyA = (await annAgain[1].ok('select_room', { room })).room_messages as MessageObject[];
  const historyB = (await benListener.ok('select_room', { room })).room_messages as MessageObject[];
  assert.deepEqual(historyA, historyB, 'the room\'s history on tree A and on tree B');
  assertIncreasing(historyA.map((m) => m.id), 'the room\'s history');
  assertUnique(historyA.map((m) => m.text), 'the room\'s history');
  const acknowledged = [...annRoom.acked, ...benRoom.acked, messageOf(resent), ...annRoom2.acked, ...benRoom2.acked];
  const byId = new Map(historyA.map((m) => [m.id, m]));
  for (const message of acknowledged) assert.deepEqual(byId.get(message.id), message, `acknowledged ${message.text} is in the history, as acknowledged`);
  assert.deepEqual(historyA.map((m) => m.text).sort(), acknowledged.map((m) => m.text).sort(), 'the history holds the acknowledged messages and nothing else');
  // ben's listener, connected throughout on the surviving tree, got every message once, in order.
  await benListener.barrier();
  assert.deepEqual(benListener.messages(room), historyA, 'ben\'s listener received the whole history, once, in order');

  // The lobby's history, from both trees: the same, in the same order, each message once, and
  // every acknowledged lobby message in it as it was delivered.
  const lobbyA2 = await lobbyHistory(treeA2.wsUrl);
  const lobbyB2 = await lobbyHistory(treeB.wsUrl);
  assert.deepEqual(lobbyB2.history.slice(0, -1), lobbyA2.history, 'the lobby on tree A and on tree B');
  assert.equal(lobbyB2.history[lobbyB2.history.length - 1].message, lobbyA2.marker);
  assertIncreasing(lobbyB2.history.map((m) => m.id!), 'the lobby\'s history');
  assertUnique(lobbyB2.history.map((m) => m.message), 'the lobby\'s history');
  const lobbyById = new Map(lobbyB2.history.map((m) => [m.id!, m]));
  const lobbyAcked = [...annLobby.acked, ...benLobby.acked, ...annLobby2.acked, ...benLobby2.acked];
  for (const m of lobbyAcked) assert.deepEqual(lobbyById.get(m.id!), m, `lobby message ${m.message} is in the history, as delivered`);
  // Nothing else but the two markers, and the message in doubt at the kill if it reached the log.
  const inDoubtDelivered = lobbyB2.history.some((m) => m.message === annLobby.inDoubt);
  const expectedTexts = [...lobbyAcked.map((m) => m.message), resumeMarker, lobbyA2.marker, ...(inDoubtDelivered ? [annLobby.inDoubt] : [])];
  assert.deepEqual(lobbyB2.history.map((m) => m.message).sort(), expectedTexts.sort(), 'the lobby holds the acknowledged messages and nothing else');
  // ben's listener, connected throughout, saw the lobby exactly as the history has it.
  await benListener.chat.seen((m) => m.message === lobbyB2.marker, 10_000, 'the last marker, on ben\'s listener');
  const lobbyOnListener = lobbyMessages(benListener.received);
  assert.deepEqual(lobbyOnListener.slice(0, -1), lobbyB2.history, 'ben\'s listener received the whole lobby, once, in order');
  assert.equal(lobbyOnListener[lobbyOnListener.length - 1].message, lobbyB2.marker);

  t.diagnostic(`room: ${acknowledged.length} acknowledged (ann ${annAckedBeforeKill} before the kill, ben ${benRoom.acked.length}, after the restart ${annRoom2.acked.length + benRoom2.acked.length} + 1 resent), in doubt at the kill: ${annRoom.inDoubt} (${storedBeforeKill ? 'had reached the log' : 'had not reached the log'}); history ${historyA.length}, lost 0, duplicated 0`);
  t.diagnostic(`lobby: ${lobbyAcked.length} acknowledged, in doubt at the kill: ${annLobby.inDoubt} (${inDoubtDelivered ? 'delivered' : 'not delivered'}), resumed with ${missed.length} missed messages`);
  await Promise.all([treeA2.stop(), treeB.stop()]);
});

/**
 * A room publisher through an outage, as the page is one: one new_message at a time, each with
 * its own uuid; an `unavailable` answer is noted and the uuid kept to be sent again, with the
 * same uuid, once `back` resolves (the page retries later; here, once Redis is back).
 */
class BurstPublisher {
  /** uuid → the acknowledged message. */
  readonly acked = new Map<string, MessageObject>();
  /** Every `unavailable` answer, in order (a uuid may be there more than once). */
  readonly unavailable: string[] = [];
  /** The uuids that were answered `unavailable` and then acknowledged. */
  readonly retried = new Set<string>();
  readonly progress = new Progress();

  constructor(readonly connection: RoomsConnection, readonly room: number, readonly prefix: string) {}

  /** Sends `count` new messages, then the ones answered `unavailable` again once `back` resolves. */
  async run(count: number, back: Promise<void>): Promise<void> {
    const again: string[] = [];
    for (let i = 0; i < count; i++) {
      const uuid = `${this.prefix}-${i}`;
      if (!(await this.attempt(uuid))) {
        again.push(uuid);
        await sleep(20); // a page's pause before its next message; not a wait for an event
      }
    }
    await back;
    for (let tries = 0; again.length > 0; tries++) {
      assert.ok(tries < 200, `${this.prefix}: still unavailable after ${tries} retries: ${again.join(', ')}`);
      const uuid = again.shift()!;
      if (await this.attempt(uuid)) this.retried.add(uuid);
      else {
        again.push(uuid);
        await sleep(50);
      }
    }
  }

  /** One request: true if acknowledged, false if answered `unavailable`; anything else fails. */
  private async attempt(uuid: string): Promise<boolean> {
    // The answer to a request in flight when Redis died comes once Redis is back (shared-chat.ts:
    // after the catch-up, it is either in the log or answered `unavailable`): allow for that.
    const answer = await this.connection.request('new_message', { room: this.room, text: uuid }, { uuid, timeoutMs: 60_000 });
    if (answer.status === 'success') {
      const message = messageOf(answer);
      assert.equal(message.text, uuid);
      assert.equal(this.acked.has(uuid), false, `${uuid} acknowledged twice`);
      this.acked.set(uuid, message);
      this.progress.add();
      return true;
    }
    assert.equal(answer.error, 'unavailable', `${this.prefix}: ${JSON.stringify(answer)}`);
    assert.match(answer.error_message as string, ROOM_UNAVAILABLE);
    this.unavailable.push(uuid);
    return false;
  }
}

test('Redis killed (-9) and restarted with its AOF in the middle of a burst: writes in the outage are refused, connections stay open, and every acknowledged message is stored and delivered once', async (t) => {
  if (skipWithoutRedis(t)) return;
  const s = await sharedChat(t, { appendonly: true, args: ['--appendfsync', 'always'] });
  const treeA = await startTree(t, s);
  const treeB = await startTree(t, s);
  const connections: RoomsConnection[] = [];
  t.after(() => closeConnections(connections));
  const lobbyClients: ChatClient[] = [];
  t.after(() => closeAll(lobbyClients));

  // Four publishers (two per tree, one per worker) and an observer per tree, all members of one
  // room; and a lobby publisher per tree. Every connection is a lobby subscriber too.
  const sign = async (tree: RunningServer, user: string): Promise<RoomsConnection> => {
    const connection = await RoomsConnection.signIn(tree.wsUrl, s.secret, user);
    connections.push(connection);
    return connection;
  };
  const publishers = [await sign(treeA, 'p0'), await sign(treeA, 'p1'), await sign(treeB, 'p2'), await sign(treeB, 'p3')];
  const observerA = await sign(treeA, 'obsA');
  const observerB = await sign(treeB, 'obsB');
  const lobbyA = await ChatClient.join(treeA.wsUrl, 'lobby-A');
  const lobbyB = await ChatClient.join(treeB.wsUrl, 'lobby-B');
  lobbyClients.push(lobbyA, lobbyB);
  const room = roomIdOf(await publishers[0].ok('create_room', { name: 'burst', users: ['p1', 'p2', 'p3', 'obsA', 'obsB'] }));
  for (const member of connections.slice(1)) await member.seen((m) => m.action === 'room_update' && roomIdOf(m) === room, `${member.name}: the room_update of the new room`);

  let redisBack!: () => void;
  const back = new Promise<void>((resolve) => { redisBack = resolve; });
  const PER_PUBLISHER = 40;
  const burst = publishers.map((connection, i) => new BurstPublisher(connection, room, `p${i}`));
  const lobbyPublishers = [new LobbyPublisher(lobbyA, 'lobbyA'), new LobbyPublisher(lobbyB, 'lobbyB')];
  const LOBBY_COUNT = 30;
  const running = [
    ...burst.map((publisher) => publisher.run(PER_PUBLISHER, back)),
    ...lobbyPublishers.map((publisher) => {
      let sent = 0;
      return publisher.run(() => sent++ >= LOBBY_COUNT, () => sleep(20));
    }),
  ];
  await Promise.all([...burst.map((p) => p.progress.reach(8, `${p.prefix}'s acknowledgements`)), ...lobbyPublishers.map((p) => p.progress.reach(5, `${p.prefix}'s copies`))]);

  // Redis dies in the middle of the burst (SIGKILL: no shutdown), and both trees notice.
  await s.redis.kill9();
  await Promise.all([waitForOutput(treeA, LOST_REDIS, 1, 'tree A losing Redis'), waitForOutput(treeB, LOST_REDIS, 1, 'tree B losing Redis')]);
  // A write now is refused at once, with the protocol's error, on either tree; a lobby message
  // gets the error line and reaches nobody.
  for (const observer of [observerA, observerB]) {
    const uuid = `outage-${observer.user}`;
    const answer = await observer.request('new_message', { room, text: uuid }, { uuid });
    assert.deepEqual(answer, { uuid, action: 'new_message', status: 'error', error: 'unavailable', error_message: answer.error_message });
    assert.match(answer.error_message as string, ROOM_UNAVAILABLE);
    const text = `outage-lobby-${observer.user}`;
    observer.chat.say(observer.user!, text);
    assert.deepEqual(await observer.next((m) => m.sender === 'server' && m.error !== undefined, 'the lobby\'s error line'), LOBBY_REFUSED);
  }
  const allClients = [...connections.map((c) => c.chat), ...lobbyClients];
  for (const client of allClients) assert.equal(client.isOpen, true, `${client.name} is open during the outage`);

  // Redis again, from its append-only file; both trees reconnect and catch up by themselves.
  await s.redis.restart();
  await Promise.all([waitForOutput(treeA, BACK_AND_CAUGHT_UP, 1, 'tree A back and caught up'), waitForOutput(treeB, BACK_AND_CAUGHT_UP, 1, 'tree B back and caught up')]);
  redisBack();
  const observersAcked: MessageObject[] = [];
  for (const observer of [observerA, observerB]) {
    const uuid = `outage-${observer.user}`;
    observersAcked.push(await observer.say(room, uuid, uuid));
  }
  await Promise.all(running);
  for (const client of allClients) assert.equal(client.isOpen, true, `${client.name} is open after the outage`);

  // The room's history, from both trees: the same, in order, every request's uuid once, and
  // exactly the acknowledged messages, as acknowledged (read once each tree has applied them all:
  // its observer, a member, received them).
  const acknowledged = [...burst.flatMap((p) => [...p.acked.values()]), ...observersAcked];
  for (const observer of [observerA, observerB]) await untilReceived(observer, room, acknowledged, `${observer.name}'s tree applied every acknowledged message`);
  const historyA = (await observerA.ok('select_room', { room })).room_messages as MessageObject[];
  const historyB = (await observerB.ok('select_room', { room })).room_messages as MessageObject[];
  assert.deepEqual(historyA, historyB, 'the room\'s history on tree A and on tree B');
  assertIncreasing(historyA.map((m) => m.id), 'the room\'s history');
  assertUnique(historyA.map((m) => m.text), 'the room\'s history');
  assert.equal(acknowledged.length, PER_PUBLISHER * burst.length + 2, 'every request was acknowledged in the end');
  const byId = new Map(historyA.map((m) => [m.id, m]));
  for (const message of acknowledged) assert.deepEqual(byId.get(message.id), message, `acknowledged ${message.text} is in the history, as acknowledged`);
  assert.equal(historyA.length, acknowledged.length, 'the history holds the acknowledged messages and nothing else');
  // Every member connection got every message once, in id order (a duplicate would show as an
  // id twice: e.g. a uuid answered `unavailable` although stored, then retried).
  for (const member of connections) {
    await member.barrier();
    assert.deepEqual(member.messages(room).map((m) => m.id), historyA.map((m) => m.id), `${member.name} received every message once, in order`);
  }

  // The lobby: every connection, on either tree, saw the same messages in the same order, each
  // once; every acknowledged one is there and no refused one.
  const marker = `end-${newUuid()}`;
  lobbyA.say('lobbyA', marker);
  for (const client of allClients) await client.seen((m) => m.message === marker, 10_000, 'the end marker');
  const lobbyViews = allClients.map((client) => lobbyMessages(client.received));
  for (const [i, view] of lobbyViews.entries()) assert.deepEqual(view, lobbyViews[0], `${allClients[i].name} saw the lobby as ${allClients[0].name} did`);
  assertIncreasing(lobbyViews[0].map((m) => m.id!), 'the lobby');
  assertUnique(lobbyViews[0].map((m) => m.message), 'the lobby');
  const lobbyById = new Map(lobbyViews[0].map((m) => [m.id!, m]));
  const lobbyAcked = lobbyPublishers.flatMap((p) => p.acked);
  for (const m of lobbyAcked) assert.deepEqual(lobbyById.get(m.id!), m, `lobby message ${m.message} reached everyone`);
  const refused = [...lobbyPublishers.flatMap((p) => p.refused), 'outage-lobby-obsA', 'outage-lobby-obsB'];
  for (const text of refused) assert.equal(lobbyViews[0].some((m) => m.message === text), false, `refused lobby message ${text} reached nobody`);
  assert.equal(lobbyViews[0].length, lobbyAcked.length + 1, 'the lobby holds the acknowledged messages and the marker, nothing else');

  const unavailable = burst.reduce((n, p) => n + p.unavailable.length, 0) + 2;
  const retried = burst.reduce((n, p) => n + p.retried.size, 0) + 2;
  // The trees say how many writes in flight at the kill were settled, after the catch-up, as not in the log.
  const settledLost = [treeA, treeB].reduce((n, tree) => n + Number(/(\d+) write\(s\) sent before the loss are not in the log/.exec(tree.output())?.[1] ?? 0), 0);
  t.diagnostic(`room: ${acknowledged.length} acknowledged, ${unavailable} answered unavailable (2 by the observers; ${settledLost} room or lobby writes in flight at the kill were answered after the catch-up), ${retried} uuids retried and stored once; history ${historyA.length}: lost 0, duplicated 0`);
  t.diagnostic(`lobby: ${lobbyAcked.length} acknowledged, ${refused.length} refused with the error line (2 by the observers)`);
  await Promise.all([treeA.stop(), treeB.stop()]);
});

test('Redis down for a while: writes are answered unavailable, reads and /healthz are served from the tree\'s copy; Redis back: writes succeed again, no restart', async (t) => {
  if (skipWithoutRedis(t)) return;
  const s = await sharedChat(t, { appendonly: true, args: ['--appendfsync', 'always'] });
  const treeA = await startTree(t, s);
  const treeB = await startTree(t, s);
  const connections: RoomsConnection[] = [];
  t.after(() => closeConnections(connections));
  const alice = await RoomsConnection.signIn(treeA.wsUrl, s.secret, 'alice');
  const bob = await RoomsConnection.signIn(treeB.wsUrl, s.secret, 'bob');
  connections.push(alice, bob);
  const room = roomIdOf(await alice.ok('create_room', { name: 'steady', users: ['bob'] }));
  await bob.seen((m) => m.action === 'room_update' && roomIdOf(m) === room, 'the room_update of the new room');
  const m1 = await alice.say(room, 'm1');
  const m2 = await bob.say(room, 'm2');
  await alice.waitForMessages(room, 2);
  alice.chat.say('alice', 'l1');
  const l1 = await bob.chat.seen((m) => m.message === 'l1', 10_000, 'l1 on tree B');
  const pids = [treeA.proc.pid, treeB.proc.pid];

  await s.redis.kill9();
  await Promise.all([waitForOutput(treeA, LOST_REDIS, 1, 'tree A losing Redis'), waitForOutput(treeB, LOST_REDIS, 1, 'tree B losing Redis')]);

  /** Every kind of write, on both trees: refused with `unavailable`, nothing changed. */
  const writesRefused = async (round: string): Promise<void> => {
    for (const [who, other] of [[alice, 'carol'], [bob, 'dave']] as const) {
      const requests: Array<[string, Record<string, unknown>]> = [
        ['new_message', { room, text: `refused-${round}` }],
        ['create_room', { name: `refused-${round}`, users: [] }],
        ['add_users', { room, users: [other] }],
        ['leave_room', { room }],
      ];
      for (const [action, fields] of requests) {
        const uuid = `${action}-${who.user}-${round}`;
        const answer = await who.request(action, fields, { uuid });
        assert.deepEqual(answer, { uuid, action, status: 'error', error: 'unavailable', error_message: answer.error_message }, `${who.user} ${action}`);
        assert.match(answer.error_message as string, ROOM_UNAVAILABLE);
      }
      who.chat.say(who.user!, `refused-lobby-${round}`);
      assert.deepEqual(await who.next((m) => m.sender === 'server' && m.error !== undefined, 'the lobby\'s error line'), LOBBY_REFUSED);
    }
  };
  /** The reads, on both trees, answered from the tree's copy as it was when Redis went. */
  const readsServed = async (): Promise<void> => {
    for (const who of [alice, bob]) {
      const listed = await who.ok('list_rooms');
      const rooms = listed.rooms as Array<{ id: number; last_message: MessageObject | null }>;
      assert.deepEqual(rooms.map((r) => [r.id, r.last_message]), [[room, m2]], `${who.user}: list_rooms`);
      assert.deepEqual((await who.ok('select_room', { room })).room_messages, [m1, m2], `${who.user}: select_room`);
      const since = await who.ok('select_room', { room, since: m1.id });
      assert.deepEqual([since.recovered, since.room_messages], [true, [m2]], `${who.user}: select_room since m1`);
    }
    for (const tree of [treeA, treeB]) {
      // Two requests, each on a new connection (the cluster hands them to its workers).
      const answers = [await healthz(tree.port), await healthz(tree.port)];
      for (const health of answers) assert.equal(health.status, 'ok');
    }
  };
  await writesRefused('1');
  await readsServed();
  // Still down a while later, after the trees' reconnect attempts have failed a few times.
  await sleep(1500); // lets the clients' backoff grow; not a wait for an event
  await writesRefused('2');
  await readsServed();
  for (const who of [alice, bob]) assert.equal(who.chat.isOpen, true, `${who.user}'s connection stays open`);

  await s.redis.restart();
  await Promise.all([waitForOutput(treeA, BACK_AND_CAUGHT_UP, 1, 'tree A back and caught up'), waitForOutput(treeB, BACK_AND_CAUGHT_UP, 1, 'tree B back and caught up')]);
  // The same trees (no restart) take writes again: the refused message, retried with its uuid,
  // is stored now (once), and each tree's write reaches the other tree's member.
  const m3 = await alice.say(room, 'refused-1', 'new_message-alice-1');
  const m4 = await bob.say(room, 'm4');
  assert.deepEqual(await bob.waitForMessages(room, 4), [m1, m2, m3, m4]);
  assert.deepEqual(await alice.waitForMessages(room, 4), [m1, m2, m3, m4]);
  for (const who of [alice, bob]) assert.deepEqual((await who.ok('select_room', { room })).room_messages, [m1, m2, m3, m4], `${who.user}: select_room after the outage`);
  bob.chat.say('bob', 'l2');
  const l2 = await alice.chat.seen((m) => m.message === 'l2', 10_000, 'l2 on tree A');
  await bob.chat.seen((m) => m.message === 'l2', 10_000, 'l2 on tree B');
  // l1 and l2 everywhere, and none of the refused lobby messages.
  assert.deepEqual(lobbyMessages(alice.chat.received), [l1, l2], 'the lobby on tree A');
  assert.deepEqual(lobbyMessages(bob.chat.received), [l1, l2], 'the lobby on tree B');
  assert.deepEqual([treeA.proc.pid, treeB.proc.pid, treeA.proc.exitCode, treeB.proc.exitCode], [...pids, null, null], 'the same trees, still running');
  await Promise.all([treeA.stop(), treeB.stop()]);
});

test('a tree paused while the others write more than two snapshot intervals finds the stream cut past it when it resumes, and exits 1 saying to restart it', async (t) => {
  if (skipWithoutRedis(t)) return;
  // A snapshot every 10 entries (the least allowed): each of bob's messages is one entry, so
  // 30 of them store three snapshots, and the stream is cut back to the second to last.
  const s = await sharedChat(t, {}, { CHAT_REDIS_SNAPSHOT_EVERY: '10' });
  const treeA = await startTree(t, s);
  const treeB = await startTree(t, s);
  const connections: RoomsConnection[] = [];
  t.after(() => closeConnections(connections));
  const alice = await RoomsConnection.signIn(treeA.wsUrl, s.secret, 'alice');
  const bob = await RoomsConnection.signIn(treeB.wsUrl, s.secret, 'bob');
  connections.push(alice, bob);
  const room = roomIdOf(await bob.ok('create_room', { name: 'ahead', users: ['alice'] }));
  // Tree A applied the creation (the last entry of the stream) once alice hears of it.
  await alice.seen((m) => m.action === 'room_update' && roomIdOf(m) === room, 'the room_update of the new room');
  const redis = new RedisClient({ url: s.redis.url });
  await redis.connect();
  t.after(() => redis.close());
  const [[appliedByA]] = await redis.command(['XREVRANGE', 'chat:log', '+', '-', 'COUNT', 1]) as Array<[string, unknown]>;

  // SIGSTOP to tree A's process group: it keeps its connections (to Redis too) and does nothing.
  process.kill(-treeA.proc.pid!, 'SIGSTOP');
  t.after(() => { try { process.kill(-treeA.proc.pid!, 'SIGCONT'); } catch { /* gone */ } });
  for (let i = 0; i < 30; i++) await bob.say(room, `while A sleeps ${i}`);
  // Tree B stores its snapshots after applying its own entries: wait until the cut has passed
  // the last entry tree A applied (it is then no longer in the stream).
  for (let tries = 0; ; tries++) {
    const trimmed = await redis.command(['GET', 'chat:trimmed']) as string | null;
    const stillThere = await redis.command(['XRANGE', 'chat:log', appliedByA, appliedByA]) as unknown[];
    if (trimmed !== null && stillThere.length === 0) break;
    assert.ok(tries < 200, `the stream was not cut past ${appliedByA} (chat:trimmed: ${trimmed})`);
    await sleep(50); // polls Redis for the snapshot's cut, which the test cannot be told of
  }

  process.kill(-treeA.proc.pid!, 'SIGCONT');
  assert.equal(await within(treeA.exited, 30_000, 'tree A to exit'), 1, treeA.output());
  assert.match(treeA.output(), /ERROR: +\[\d+\] shared log: this tree read the shared log up to \S+, and Redis cut it back to \S+ meanwhile \(the tree was cut off, or stalled, for longer than a snapshot interval\): restart it, and it starts from the snapshot/);
  // Tree B serves on, and a new tree A starts from the snapshot with everything.
  const treeA2 = await startTree(t, s);
  const alice2 = await RoomsConnection.signIn(treeA2.wsUrl, s.secret, 'alice', 'alice-2');
  connections.push(alice2);
  const last = await bob.say(room, 'after the restart');
  const history = (await alice2.ok('select_room', { room })).room_messages as MessageObject[];
  assert.deepEqual(history, (await bob.ok('select_room', { room })).room_messages);
  assert.deepEqual(history.map((m) => m.text), [...Array.from({ length: 30 }, (_, i) => `while A sleeps ${i}`), 'after the restart']);
  assert.deepEqual(history[history.length - 1], last);
  await Promise.all([treeA2.stop(), treeB.stop()]);
});
