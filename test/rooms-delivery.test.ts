// The rooms' delivery across worker processes (chat-protocol.md, "Rooms"), through the real server
// with --workers 4:
//   - a message reaches every connection of every member once, whichever worker holds it, and
//     nothing of a room (message, room_update, presence) reaches a non-member's connection;
//   - several members publishing at once from different workers: every member connection sees the
//     same sequence, in id order, exactly the acknowledged messages, each once;
//   - membership racing with a publisher: a user added while messages flow receives exactly those
//     handled after the addition, with no gap, none before the room_update that adds him; after
//     leave_room's answer he receives none; a connection that authenticates mid-stream receives
//     only messages after its authenticate answer, with no gap;
//   - presence: the exact online list to the members when it changes, and coalesced (at most one
//     push per room per second, counted against the time the test took, not against a deadline).
//
// Connections opened one after another go to the workers in turn (--worker-accept round-robin), so four
// consecutive ones land on four different workers; the first test checks that with /healthz.
// "Received nothing" is exact: after barrier() (a list_rooms round trip, see rooms-client.ts)
// everything the primary sent a connection before is there.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { healthz, type Health } from './helpers/chat-client.js';
import { closeConnections, messageOf, newSecret, newUuid, openSpread, RoomsConnection, sleep, tokenFor, type Frame, type MessageObject, type RoomObject } from './helpers/rooms-client.js';
import { startServer, type RunningServer } from './helpers/server.js';

const TIMEOUT = { timeout: 40_000 };
const WORKERS = 4;

/** /healthz `count` times on fresh connections: each worker's number of chat connections, by pid. */
async function connectionsByPid(port: number, count: number): Promise<Map<number, number>> {
  const byPid = new Map<number, number>();
  for (let i = 0; i < count; i++) {
    const health: Health = await healthz(port);
    byPid.set(health.pid, health.connections);
  }
  return byPid;
}

/** Asserts that `ids` strictly increase. */
function assertIncreasing(ids: number[], what: string): void {
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i]! > ids[i - 1]!, `${what}: id ${ids[i]} after ${ids[i - 1]} (position ${i})`);
}

/**
 * Publishes into a room continuously from some connections (one loop each, one message in flight
 * per loop) until stopped, retrying a rate_limited message with its uuid as a client should. The
 * acknowledged messages are in `acked`, in the order the acknowledgements arrived.
 */
class Publisher {
  readonly acked: MessageObject[] = [];
  private stopped = false;
  private readonly loops: Promise<void>[];
  private readonly waiters = new Set<() => void>();

  constructor(connections: RoomsConnection[], room: number, prefix: string) {
    let sent = 0;
    this.loops = connections.map(async (connection) => {
      while (!this.stopped) {
        const uuid = newUuid(prefix);
        const text = `${prefix} ${sent++}`;
        for (;;) {
          const answer = await connection.request('new_message', { room, text }, { uuid });
          if (answer.status === 'success') {
            this.acked.push(messageOf(answer));
            break;
          }
          assert.equal(answer.error, 'rate_limited', `${connection.name}: ${JSON.stringify(answer)}`);
          await sleep(100);
        }
        for (const waiter of [...this.waiters]) waiter();
        await sleep(10); // some pace, so that one loop does not use its connection's whole bucket at once
      }
    });
  }

  /** Resolves once `count` messages in all were acknowledged. */
  async waitForAcks(count: number, timeoutMs = 15_000): Promise<void> {
    if (this.acked.length >= count) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms with ${this.acked.length} of ${count} acknowledgements`));
      }, timeoutMs);
      const check = (): void => {
        if (this.acked.length < count) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      this.waiters.add(check);
    });
  }

  /** Stops every loop after its message in flight; resolves with all acknowledged ids, sorted. */
  async stop(): Promise<number[]> {
    this.stopped = true;
    await Promise.all(this.loops);
    return this.acked.map((m) => m.id).sort((a, b) => a - b);
  }
}

/** The frames of `connection` from index `from` (inclusive) up to `to` (exclusive). */
function between(connection: RoomsConnection, from: Frame, to: Frame | null): Frame[] {
  const start = connection.received.indexOf(from);
  assert.ok(start >= 0);
  const end = to === null ? connection.received.length : connection.received.indexOf(to);
  assert.ok(end >= start, 'in order');
  return connection.received.slice(start + 1, end);
}

describe('rooms delivery on 4 workers', () => {
  const secret = newSecret();
  let server: RunningServer;
  const connections: RoomsConnection[] = [];
  const spread = (user: string, count = WORKERS): Promise<RoomsConnection[]> => openSpread(server.wsUrl, secret, user, count, connections);
  const signIn = async (user: string, name = user): Promise<RoomsConnection> => {
    const connection = await RoomsConnection.signIn(server.wsUrl, secret, user, name);
    connections.push(connection);
    return connection;
  };
  before(async () => {
    server = await startServer({ args: ['--workers', String(WORKERS), '--worker-accept', 'round-robin'], env: { CHAT_SECRET: secret } });
  });
  after(async () => {
    await closeConnections(connections);
    await server?.stop();
  });

  test('four connections opened one after another land on the four workers, one each', TIMEOUT, async () => {
    const before = await connectionsByPid(server.port, 2 * WORKERS);
    assert.equal(before.size, WORKERS, 'every worker answered /healthz');
    const ann = await spread('ann');
    const afterwards = await connectionsByPid(server.port, 2 * WORKERS);
    for (const [pid, count] of afterwards) assert.equal(count, before.get(pid)! + 1, `worker ${pid} got one of them`);
    await ann[0]!.barrier();
  });

  test('a message reaches every connection of every member once, on every worker; nothing of the room reaches a non-member', TIMEOUT, async () => {
    const alice = await spread('alice');
    const bob = await spread('bob');
    const mallory = await spread('mallory'); // signed in, in no room of theirs
    const guests: RoomsConnection[] = [];
    for (let i = 0; i < WORKERS; i++) {
      const guest = await RoomsConnection.open(server.wsUrl, `guest#${i}`); // lobby only
      guests.push(guest);
      connections.push(guest);
    }
    const room = (await alice[0]!.ok('create_room', { name: 'Members only', users: ['bob', 'dave'] })).room as RoomObject;
    // dave comes and goes meanwhile: presence pushes for the members, none for mallory.
    const dave = await signIn('dave');
    await alice[0]!.seen((m) => m.action === 'presence' && m.room === room.id && (m.online as string[]).includes('dave'), 'presence with dave');

    // alice and bob publish 20 messages each, all at once, spread over their four connections.
    const sent: Array<Promise<MessageObject>> = [];
    for (let i = 0; i < 20; i++) {
      sent.push(alice[i % WORKERS]!.say(room.id, `alice ${i}`));
      sent.push(bob[i % WORKERS]!.say(room.id, `bob ${i}`));
    }
    const acked = (await Promise.all(sent)).map((m) => m.id).sort((a, b) => a - b);
    assert.equal(new Set(acked).size, 40, 'forty different ids');
    await dave.closeAndWait();
    await alice[0]!.seen((m) => m.action === 'presence' && m.room === room.id && !(m.online as string[]).includes('dave'), 'presence without dave');

    for (const connection of [...alice, ...bob, ...mallory]) await connection.barrier();
    for (const connection of [...alice, ...bob]) {
      const ids = connection.messages(room.id).map((m) => m.id);
      assert.deepEqual(ids, acked, `${connection.name}: every message once, in id order`);
    }
    for (const connection of mallory) {
      // The greeting, then only the answers to mallory's own requests (authenticate, list_rooms).
      const others = connection.received.slice(1).filter((m) => !(typeof m.uuid === 'string' && m.uuid.startsWith('authenticate-')) && m.action !== 'list_rooms');
      assert.deepEqual(others, [], `${connection.name} received nothing of the room`);
      for (const answer of connection.received.filter((m) => m.action === 'list_rooms')) assert.deepEqual(answer.rooms, []);
    }
    for (const guest of guests) {
      assert.deepEqual(guest.received, [{ sender: 'server', message: 'You are connected' }], `${guest.name}: only the lobby's greeting`);
    }
  });

  test('members publishing at once from different workers: every member connection sees the same sequence, in id order, each acknowledged message once', TIMEOUT, async () => {
    const users = ['pub1', 'pub2', 'pub3', 'pub4'];
    const byUser = new Map<string, RoomsConnection[]>();
    for (const user of users) byUser.set(user, await spread(user, 2)); // 8 in turn: two per worker
    const members = [...byUser.values()].flat();
    const room = (await byUser.get('pub1')![0]!.ok('create_room', { name: 'Busy', users: users.slice(1) })).room as RoomObject;
    for (const connection of members) await connection.seen((m) => m.action === 'room_update' && (m.room as RoomObject).id === room.id, `${connection.name}: the room`);

    // Each member sends 25 messages without waiting, from their first connection; all four at once.
    const perUser = 25;
    const acks = await Promise.all(users.map((user) => {
      const publisher = byUser.get(user)![0]!;
      return Promise.all(Array.from({ length: perUser }, (_, i) => publisher.say(room.id, `${user} #${i}`)));
    }));
    const acked = acks.flat().map((m) => m.id).sort((a, b) => a - b);
    assert.equal(new Set(acked).size, users.length * perUser);

    for (const connection of members) await connection.waitForMessages(room.id, acked.length);
    for (const connection of members) await connection.barrier();
    const reference = members[0]!.messages(room.id);
    assertIncreasing(reference.map((m) => m.id), members[0]!.name);
    assert.deepEqual(reference.map((m) => m.id), acked, 'exactly the acknowledged messages: no gap, no duplicate');
    for (const connection of members) assert.deepEqual(connection.messages(room.id), reference, `${connection.name}: the same sequence`);
    // Each publisher's own messages keep the order in which it sent them.
    for (const user of users) {
      assert.deepEqual(reference.filter((m) => m.user === user).map((m) => m.text), Array.from({ length: perUser }, (_, i) => `${user} #${i}`));
    }
  });

  test('a user added while messages flow gets exactly those after the addition, from the room_update on; after leave_room\'s answer, none', TIMEOUT, async () => {
    const alice = await spread('alice2', 2);
    const carol = await signIn('carol2');
    const bob = await spread('bob2', 2);
    const room = (await alice[0]!.ok('create_room', { name: 'Racing', users: ['carol2'] })).room as RoomObject;
    await carol.seen((m) => m.action === 'room_update', 'carol: the room');

    const publisher = new Publisher(alice, room.id, 'race');
    await publisher.waitForAcks(10);
    const added = await carol.ok('add_users', { room: room.id, users: ['bob2'] });
    // Some messages surely handled after the addition: sent after its answer came back.
    await publisher.waitForAcks(publisher.acked.length + 8);
    const left = await bob[0]!.ok('leave_room', { room: room.id });
    await publisher.waitForAcks(publisher.acked.length + 8);
    const acked = await publisher.stop();
    for (const connection of [...alice, carol, ...bob]) await connection.barrier();

    // carol, a member throughout, has them all; her stream splits them at the addition and the leave.
    const carolIds = carol.messages(room.id).map((m) => m.id);
    assert.deepEqual(carolIds, acked, 'carol: every acknowledged message, in id order');
    const leaveUpdate = carol.roomUpdates(room.id).find((m) => !(m.room as RoomObject).users.includes('bob2') && (m.room as RoomObject).users.length === 2 && carol.received.indexOf(m) > carol.received.indexOf(added))!;
    assert.ok(leaveUpdate, 'carol heard of the leave');
    const whileMember = between(carol, added, leaveUpdate).filter((m) => m.action === 'new_message').map((m) => messageOf(m).id);
    assert.ok(whileMember.length >= 5, `messages while bob was a member: ${whileMember.length}`);
    assert.ok(whileMember[0]! > carolIds[0]! && whileMember.at(-1)! < carolIds.at(-1)!, 'the add and the leave both fell amid the messages');

    for (const connection of bob) {
      const joined = connection.roomUpdates(room.id).find((m) => (m.room as RoomObject).users.includes('bob2'))!;
      const removed = connection.roomUpdates(room.id).find((m) => !(m.room as RoomObject).users.includes('bob2'))!;
      assert.deepEqual(joined, { action: 'room_update', room: added.room }, `${connection.name}: the room_update of the addition`);
      assert.deepEqual(removed, { action: 'room_update', room: left.room }, `${connection.name}: the room_update of the leave`);
      const ids = connection.messages(room.id).map((m) => m.id);
      assert.deepEqual(ids, whileMember, `${connection.name}: exactly the messages handled while a member, no gap`);
      const inOrder = between(connection, joined, removed).filter((m) => m.action === 'new_message').map((m) => messageOf(m).id);
      assert.deepEqual(inOrder, ids, `${connection.name}: all after the room_update that added him, none after the one that removed him`);
    }
    const leaveAnswerAt = bob[0]!.received.indexOf(left);
    assert.deepEqual(bob[0]!.received.slice(leaveAnswerAt).filter((m) => m.action === 'new_message'), [], 'none after the leave\'s answer');
  });

  test('connections that authenticate while messages flow receive only those after their answer, with no gap', TIMEOUT, async () => {
    const dan = await spread('dan3', 2);
    // eve has a connection on every worker, so each late one shares its worker with one of hers,
    // to which the messages of the room are on their way while the late one signs in.
    const eve = await spread('eve3');
    const room = (await dan[0]!.ok('create_room', { name: 'Late', users: ['eve3'] })).room as RoomObject;
    for (const connection of eve) await connection.seen((m) => m.action === 'room_update', `${connection.name}: the room`);
    const late: RoomsConnection[] = [];
    for (let i = 0; i < WORKERS; i++) {
      const connection = await RoomsConnection.open(server.wsUrl, `eve3 (late #${i})`); // one per worker
      late.push(connection);
      connections.push(connection);
    }
    const before = await Promise.all(Array.from({ length: 10 }, (_, i) => dan[i % 2]!.say(room.id, `before ${i}`)));
    // Forty messages sent at once, and the four late connections authenticating amid them.
    const amid: Array<Promise<MessageObject>> = [];
    const signedIn: Array<Promise<Frame>> = [];
    for (const [i, connection] of late.entries()) {
      for (let j = 0; j < 10; j++) amid.push(dan[j % 2]!.say(room.id, `amid ${i}.${j}`));
      signedIn.push(connection.request('authenticate', { token: tokenFor(secret, 'eve3') }));
    }
    const answers = await Promise.all(signedIn);
    for (const answer of answers) assert.equal(answer.status, 'success');
    const afterwards = await Promise.all(Array.from({ length: 5 }, (_, i) => dan[i % 2]!.say(room.id, `after ${i}`)));
    const acked = [...before, ...(await Promise.all(amid)), ...afterwards].map((m) => m.id).sort((a, b) => a - b);
    for (const connection of [...dan, ...eve, ...late]) await connection.barrier();

    for (const connection of eve) assert.deepEqual(connection.messages(room.id).map((m) => m.id), acked, `${connection.name}: all of them`);
    for (const connection of late) {
      const authenticated = connection.received.findIndex((m) => m.action === 'authenticate');
      assert.deepEqual(connection.received.slice(0, authenticated), [{ sender: 'server', message: 'You are connected' }], `${connection.name}: nothing of the rooms before the answer`);
      const ids = connection.messages(room.id).map((m) => m.id);
      assert.ok(ids.length >= 5, `${connection.name} receives what follows: ${ids.length}`);
      const first = acked.indexOf(ids[0]!);
      assert.ok(first >= 10, `${connection.name}: not what came before its authentication`);
      assert.deepEqual(ids, acked.slice(first), `${connection.name}: every message from its first on`);
    }
  });

  test('presence: the exact online list to the members when it changes, and not when it does not', TIMEOUT, async () => {
    const quinn = await signIn('quinn');
    const room = (await quinn.ok('create_room', { name: 'Who is here', users: ['rosa', 'sam'] })).room as RoomObject;
    assert.deepEqual(room.online, ['quinn']);

    const rosa = await signIn('rosa');
    const online = { action: 'presence', room: room.id, online: ['quinn', 'rosa'] };
    assert.deepEqual(await quinn.seen((m) => m.action === 'presence', 'quinn: rosa online'), online);
    assert.deepEqual(await rosa.seen((m) => m.action === 'presence', 'rosa: herself online'), online);

    // quinn's second connection changes nothing: quinn was online already.
    const quinnAgain = await signIn('quinn', 'quinn (second)');
    await quinnAgain.closeAndWait();
    await rosa.closeAndWait();
    const offline = { action: 'presence', room: room.id, online: ['quinn'] };
    await quinn.seen((m) => m.action === 'presence' && (m.online as string[]).length === 1, 'quinn: rosa offline');
    await quinn.barrier();
    assert.deepEqual(quinn.presence(room.id), [online, offline], 'one push per change, none for the second connection');
  });

  test('presence is coalesced: many changes in a short time make at most one push per room per second, ending with the true list', TIMEOUT, async () => {
    const uma = await signIn('uma');
    const room = (await uma.ok('create_room', { name: 'Flicker', users: ['vera', 'wes'] })).room as RoomObject;
    const start = Date.now();
    const toggles = 10;
    for (let i = 0; i < toggles; i++) {
      const vera = await signIn('vera', `vera#${i}`);
      await vera.closeAndWait();
    }
    await signIn('wes');
    const last = { action: 'presence', room: room.id, online: ['uma', 'wes'] };
    await uma.seen((m) => m.action === 'presence' && JSON.stringify(m) === JSON.stringify(last), 'the push saying wes is online, vera not', 15_000);
    const elapsedMs = Date.now() - start;

    const pushes = uma.presence(room.id);
    assert.deepEqual(pushes.at(-1), last);
    // Sent at least a second apart, within the elapsed time: at most 1 + elapsed/1 s of them,
    // where one per change would make 2 × toggles + 1.
    assert.ok(pushes.length <= 1 + Math.floor(elapsedMs / 1000), `${pushes.length} pushes in ${elapsedMs} ms`);
    assert.ok(pushes.length < 2 * toggles + 1, `coalesced: ${pushes.length} pushes for ${2 * toggles + 1} changes`);
    let told = ['uma']; // what the room_update of the creation said
    for (const push of pushes) {
      const list = push.online as string[];
      assert.notDeepEqual(list, told, 'a push only when the list changed');
      assert.deepEqual(list, room.users.filter((user) => list.includes(user)), 'in the room\'s order');
      assert.ok(list.includes('uma'));
      told = list;
    }
  });
});
