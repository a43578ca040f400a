// Tests for src/rooms/service.ts: the RoomService, driven with plain calls.
//
// A `World` stands in for the workers: it holds connections (outlet, connection id, user), tells
// the service when they open and close, and plays the worker's side of RoomOutput: a reply goes
// to one connection, a delivery to every open connection of the listed users on that outlet. Each
// connection keeps an inbox, so the tests can say exactly who received what, and that nobody else
// received anything. Every call to the output is also logged, to check that a text goes once per
// outlet, as one string object, and never to an outlet without a recipient.
//
// Time is a number the test moves; the presence scheduler is a list the test runs; a store whose
// writes the test settles by hand shows that answers leave in handling order whatever the store.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryReads, MemoryStore } from '../src/rooms/memory-store.js';
import type { ServiceRequest } from '../src/rooms/requests.js';
import {
  DEFAULT_MAX_MEMBERS_PER_ROOM,
  DEFAULT_MAX_ROOMS_PER_USER,
  DEFAULT_ROOM_LIMITS,
  MAX_QUEUED_OUTCOMES,
  PRESENCE_INTERVAL_MS,
  RoomService,
  type OutletId,
  type RoomLimits,
  type RoomOutput,
} from '../src/rooms/service.js';
import { StoreUnavailableError, type ChatStore, type Message, type Room } from '../src/rooms/store.js';

const T0 = 1_700_000_000_000;
const FIRST_ROOM = 1;
const FIRST_MESSAGE = 5000;
const UNAVAILABLE = 'the message log cannot take writes now: nothing was stored; retry later with the same uuid';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

interface Connection {
  outlet: OutletId;
  conn: number;
  user: string;
  open: boolean;
  /** Texts received, in order. */
  inbox: string[];
}

type OutputCall = { kind: 'reply'; outlet: OutletId; conn: number; text: string } | { kind: 'deliver'; outlet: OutletId; users: string[]; text: string };

/** A store whose writes are applied at the call (as the contract says) and settle when the test says. */
class ManualStore extends MemoryReads implements ChatStore {
  readonly pending: Array<{ resolve: () => void; reject: (error: Error) => void; what: string }> = [];
  /** When true, writes are refused (StoreUnavailableError thrown, nothing changed). */
  refuse = false;

  private hold<T>(what: string, apply: () => Promise<T>): Promise<T> {
    if (this.refuse) throw new StoreUnavailableError('the disk is full');
    const applied = apply();
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ what, resolve: () => void applied.then(resolve), reject });
    });
  }

  createRoom(name: string, users: readonly string[], ts: number): Promise<Room> {
    return this.hold('createRoom', () => this.memory.createRoom(name, users, ts));
  }
  addUsers(roomId: number, users: readonly string[]): Promise<Room> {
    return this.hold('addUsers', () => this.memory.addUsers(roomId, users));
  }
  removeUser(roomId: number, user: string): Promise<Room> {
    return this.hold('removeUser', () => this.memory.removeUser(roomId, user));
  }
  appendMessage(roomId: number, user: string, uuid: string, text: string, ts: number): Promise<Message> {
    return this.hold('appendMessage', () => this.memory.appendMessage(roomId, user, uuid, text, ts));
  }
}

class World implements RoomOutput {
  now = T0;
  readonly connections: Connection[] = [];
  readonly calls: OutputCall[] = [];
  /** Scheduled presence checks, run by runTimers(). */
  timers: Array<{ at: number; run: () => void }> = [];
  readonly memory: MemoryStore;
  readonly service: RoomService;
  private nextConn = 1;

  constructor(options: { limits?: Partial<RoomLimits>; store?: (memory: MemoryStore) => ChatStore } = {}) {
    this.memory = new MemoryStore({ historyLimit: 50, firstMessageId: FIRST_MESSAGE, firstRoomId: FIRST_ROOM, clock: () => this.now });
    const store = options.store ? options.store(this.memory) : this.memory;
    this.service = new RoomService(
      store,
      { ...DEFAULT_ROOM_LIMITS, ...options.limits },
      this,
      () => this.now,
      (delayMs, run) => void this.timers.push({ at: this.now + delayMs, run }),
    );
  }

  // ---- the workers' side ----

  connect(user: string, outlet: OutletId = 1): Connection {
    const connection: Connection = { outlet, conn: this.nextConn++, user, open: true, inbox: [] };
    this.connections.push(connection);
    this.service.connectionOpened(outlet, user);
    return connection;
  }

  disconnect(connection: Connection): void {
    connection.open = false;
    this.service.connectionClosed(connection.outlet, connection.user);
  }

  killOutlet(outlet: OutletId): void {
    for (const connection of this.connections) if (connection.outlet === outlet) connection.open = false;
    this.service.outletGone(outlet);
  }

  send(from: Connection, request: ServiceRequest): void {
    this.service.handle(from.outlet, from.conn, from.user, request);
  }

  reply(outlet: OutletId, conn: number, text: string): void {
    this.calls.push({ kind: 'reply', outlet, conn, text });
    const connection = this.connections.find((c) => c.outlet === outlet && c.conn === conn && c.open);
    connection?.inbox.push(text);
  }

  deliver(outlet: OutletId, users: readonly string[], text: string): void {
    this.calls.push({ kind: 'deliver', outlet, users: [...users], text });
    for (const connection of this.connections) if (connection.open && connection.outlet === outlet && users.includes(connection.user)) connection.inbox.push(text);
  }

  // ---- for the tests ----

  /** Everything handled so far has been sent. */
  async settle(): Promise<void> {
    await this.service.settled();
  }

  /** Runs the scheduled checks that are due at `now`, then lets their outcomes leave. */
  async runTimers(): Promise<void> {
    const due = this.timers.filter((timer) => timer.at <= this.now);
    this.timers = this.timers.filter((timer) => timer.at > this.now);
    for (const timer of due) timer.run();
    await this.settle();
  }

  /** Takes and parses a connection's inbox. */
  take(connection: Connection): Json[] {
    return connection.inbox.splice(0).map((text) => JSON.parse(text) as Json);
  }

  /** Takes every inbox; asserts that the ones not named are empty. */
  takeAll(): Map<Connection, Json[]> {
    const all = new Map<Connection, Json[]>();
    for (const connection of this.connections) all.set(connection, this.take(connection));
    return all;
  }

  takeCalls(): OutputCall[] {
    return this.calls.splice(0);
  }

  /** Creates a room through the service and returns its id, emptying every inbox. */
  async room(owner: Connection, name: string, users: string[]): Promise<number> {
    this.send(owner, { action: 'create_room', uuid: `create-${name}`, name, users });
    await this.settle();
    const answer = this.take(owner)[0];
    assert.equal(answer.status, 'success', JSON.stringify(answer));
    this.takeAll();
    this.takeCalls();
    return answer.room.id as number;
  }

  /** Posts a message and returns it (from the requester's copy), emptying every inbox. */
  async post(from: Connection, room: number, text: string, uuid = `m-${text}`): Promise<Json> {
    this.send(from, { action: 'new_message', uuid, room, text });
    await this.settle();
    const copy = this.take(from)[0];
    assert.equal(copy.status, 'success', JSON.stringify(copy));
    this.takeAll();
    this.takeCalls();
    return copy.message as Json;
  }
}

/** A world whose store's writes settle when the test says. */
function manualWorld(): { world: World; store: ManualStore } {
  let store: ManualStore | undefined;
  const world = new World({ store: (memory) => (store = new ManualStore(memory)) });
  return { world, store: store! };
}

/** Sends one request and returns the requester's answer (asserting there was exactly one). */
async function ask(world: World, from: Connection, request: ServiceRequest): Promise<Json> {
  world.send(from, request);
  await world.settle();
  const inbox = world.take(from);
  assert.equal(inbox.length, 1, `one answer expected, got ${JSON.stringify(inbox)}`);
  return inbox[0];
}

/** The exact error answer, as an object. */
function error(uuid: string, action: string, code: string, message: string): Json {
  return { uuid, action, status: 'error', error: code, error_message: message };
}

/** Asserts every connection's inbox is empty (nobody received anything). */
function assertSilence(world: World): void {
  for (const connection of world.connections) assert.deepEqual(connection.inbox, [], `connection ${connection.conn} of ${connection.user} received something`);
}

describe('defaults', () => {
  test('the limits and the presence interval', () => {
    assert.equal(DEFAULT_MAX_MEMBERS_PER_ROOM, 100);
    assert.equal(DEFAULT_MAX_ROOMS_PER_USER, 100);
    assert.deepEqual(DEFAULT_ROOM_LIMITS, { historySize: 50, maxMembersPerRoom: 100, maxRoomsPerUser: 100, maxMessageLength: 4096 });
    assert.equal(PRESENCE_INTERVAL_MS, 1000);
    assert.equal(MAX_QUEUED_OUTCOMES, 10_000);
  });
});

describe('create_room', () => {
  test('answers the requester with the room object and pushes room_update to every member connection', async () => {
    const world = new World();
    const alice = world.connect('alice', 1);
    const alice2 = world.connect('alice', 2);
    const bob = world.connect('bob', 2);
    const carol = world.connect('carol', 3); // not invited
    world.send(alice, { action: 'create_room', uuid: 'c1', name: 'general', users: ['bob', 'dave', 'alice'] });
    assertSilence(world); // nothing leaves during handle()
    await world.settle();
    const room = { id: FIRST_ROOM, name: 'general', users: ['alice', 'bob', 'dave'], online: ['alice', 'bob'] };
    // Exact text, field order included.
    assert.equal(alice.inbox[0], JSON.stringify({ uuid: 'c1', action: 'create_room', status: 'success', room }));
    assert.equal(alice.inbox[0], `{"uuid":"c1","action":"create_room","status":"success","room":{"id":${FIRST_ROOM},"name":"general","users":["alice","bob","dave"],"online":["alice","bob"]}}`);
    const update = { action: 'room_update', room };
    assert.deepEqual(world.take(alice), [{ uuid: 'c1', action: 'create_room', status: 'success', room }, update]);
    assert.deepEqual(world.take(alice2), [update]);
    assert.deepEqual(world.take(bob), [update]);
    assert.deepEqual(world.take(carol), []);
    // One reply, one delivery per outlet holding a member; outlet 3 (carol only) gets nothing.
    const calls = world.takeCalls();
    assert.deepEqual(calls.map((call) => (call.kind === 'reply' ? ['reply', call.outlet, call.conn] : ['deliver', call.outlet, call.users])), [
      ['reply', 1, alice.conn],
      ['deliver', 1, ['alice']],
      ['deliver', 2, ['alice', 'bob']],
    ]);
    assert.equal(calls[1].text, calls[2].text);
    assert.equal(world.memory.room(FIRST_ROOM)?.name, 'general');
  });

  test('the requester is always a member, even with an empty users list', async () => {
    const world = new World();
    const alice = world.connect('alice');
    world.send(alice, { action: 'create_room', uuid: 'c1', name: 'me', users: [] });
    await world.settle();
    assert.deepEqual(world.take(alice)[0].room, { id: FIRST_ROOM, name: 'me', users: ['alice'], online: ['alice'] });
  });

  test('limit_reached: more members than a room holds', async () => {
    const world = new World({ limits: { maxMembersPerRoom: 3 } });
    const alice = world.connect('alice');
    assert.deepEqual(await ask(world, alice, { action: 'create_room', uuid: 'c1', name: 'r', users: ['b', 'c', 'd'] }), error('c1', 'create_room', 'limit_reached', 'a room holds at most 3 members'));
    // The requester in the list counts once.
    world.send(alice, { action: 'create_room', uuid: 'c2', name: 'r', users: ['b', 'alice', 'c'] });
    await world.settle();
    assert.deepEqual(world.take(alice)[0].room.users, ['alice', 'b', 'c']);
  });

  test('limit_reached: the requester, or someone invited, is in as many rooms as allowed', async () => {
    const world = new World({ limits: { maxRoomsPerUser: 2 } });
    const alice = world.connect('alice');
    const bob = world.connect('bob');
    await world.room(alice, 'one', []);
    await world.room(alice, 'two', ['bob']);
    assert.deepEqual(await ask(world, alice, { action: 'create_room', uuid: 'c3', name: 'three', users: [] }), error('c3', 'create_room', 'limit_reached', 'you are in the most rooms allowed (2)'));
    await world.room(bob, 'bobs', []);
    const carol = world.connect('carol');
    assert.deepEqual(await ask(world, carol, { action: 'create_room', uuid: 'c4', name: 'x', users: ['bob'] }), error('c4', 'create_room', 'limit_reached', '"bob" is in the most rooms allowed (2)'));
    assertSilence(world); // no room_update for refused requests
    assert.equal(world.memory.roomsOf('carol').length, 0); // nothing changed
  });
});

describe('add_users', () => {
  test('adds, answers with the room, and pushes room_update to every member, the new ones included', async () => {
    const world = new World();
    const alice = world.connect('alice', 1);
    const bob = world.connect('bob', 1);
    const carol = world.connect('carol', 2);
    const dave = world.connect('dave', 3); // not added
    const id = await world.room(alice, 'r', ['bob']);
    world.send(alice, { action: 'add_users', uuid: 'a1', room: id, users: ['carol', 'bob', 'erin'] });
    await world.settle();
    const room = { id, name: 'r', users: ['alice', 'bob', 'carol', 'erin'], online: ['alice', 'bob', 'carol'] };
    assert.deepEqual(world.take(alice), [{ uuid: 'a1', action: 'add_users', status: 'success', room }, { action: 'room_update', room }]);
    assert.deepEqual(world.take(bob), [{ action: 'room_update', room }]);
    assert.deepEqual(world.take(carol), [{ action: 'room_update', room }]);
    assert.deepEqual(world.take(dave), []);
    const deliveries = world.takeCalls().filter((call) => call.kind === 'deliver');
    assert.deepEqual(deliveries.map((call) => call.kind === 'deliver' && [call.outlet, call.users]), [
      [1, ['alice', 'bob']],
      [2, ['carol']],
    ]);
  });

  test('users who are all members already: success, nothing written or pushed', async () => {
    const world = new World();
    const alice = world.connect('alice');
    const bob = world.connect('bob');
    const id = await world.room(alice, 'r', ['bob']);
    const before = world.memory.room(id);
    assert.deepEqual(await ask(world, alice, { action: 'add_users', uuid: 'a1', room: id, users: ['bob', 'alice'] }), {
      uuid: 'a1',
      action: 'add_users',
      status: 'success',
      room: { id, name: 'r', users: ['alice', 'bob'], online: ['alice', 'bob'] },
    });
    assert.equal(world.memory.room(id), before);
    assert.deepEqual(world.take(bob), []);
  });

  test('not_found and forbidden', async () => {
    const world = new World();
    const alice = world.connect('alice');
    const mallory = world.connect('mallory');
    const id = await world.room(alice, 'r', []);
    assert.deepEqual(await ask(world, alice, { action: 'add_users', uuid: 'a1', room: 999, users: ['bob'] }), error('a1', 'add_users', 'not_found', 'there is no room 999'));
    assert.deepEqual(await ask(world, mallory, { action: 'add_users', uuid: 'a2', room: id, users: ['mallory'] }), error('a2', 'add_users', 'forbidden', `you are not a member of room ${id}`));
    assert.deepEqual(world.memory.room(id)?.users, ['alice']);
    assertSilence(world);
  });

  test('limit_reached: members per room, rooms per user', async () => {
    const world = new World({ limits: { maxMembersPerRoom: 3, maxRoomsPerUser: 1 } });
    const alice = world.connect('alice');
    const id = await world.room(alice, 'r', ['bob']);
    assert.deepEqual(await ask(world, alice, { action: 'add_users', uuid: 'a1', room: id, users: ['carol', 'dave'] }), error('a1', 'add_users', 'limit_reached', `room ${id} would have more than 3 members`));
    const erin = world.connect('erin');
    await world.room(erin, 'erins', []);
    assert.deepEqual(await ask(world, alice, { action: 'add_users', uuid: 'a2', room: id, users: ['erin'] }), error('a2', 'add_users', 'limit_reached', '"erin" is in the most rooms allowed (1)'));
    assert.deepEqual(world.memory.room(id)?.users, ['alice', 'bob']);
    assertSilence(world);
  });
});

describe('leave_room', () => {
  test('answers with the room without the leaver; room_update to the members and to the leaver', async () => {
    const world = new World();
    const alice = world.connect('alice', 1);
    const bob = world.connect('bob', 2);
    const bob2 = world.connect('bob', 3);
    const carol = world.connect('carol', 1);
    const id = await world.room(alice, 'r', ['bob']);
    world.send(bob, { action: 'leave_room', uuid: 'l1', room: id });
    await world.settle();
    const room = { id, name: 'r', users: ['alice'], online: ['alice'] };
    assert.deepEqual(world.take(bob), [{ uuid: 'l1', action: 'leave_room', status: 'success', room }, { action: 'room_update', room }]);
    assert.deepEqual(world.take(bob2), [{ action: 'room_update', room }]);
    assert.deepEqual(world.take(alice), [{ action: 'room_update', room }]);
    assert.deepEqual(world.take(carol), []);
    // Bob is out: the room is forbidden to him, and its messages no longer reach him.
    assert.deepEqual(await ask(world, bob, { action: 'select_room', uuid: 's1', room: id }), error('s1', 'select_room', 'forbidden', `you are not a member of room ${id}`));
    await world.post(alice, id, 'after');
    world.send(alice, { action: 'new_message', uuid: 'm2', room: id, text: 'again' });
    await world.settle();
    assert.deepEqual(world.take(bob), []);
    assert.deepEqual(world.take(bob2), []);
  });

  test('the last member out deletes the room: not_found afterwards', async () => {
    const world = new World();
    const alice = world.connect('alice');
    const id = await world.room(alice, 'r', []);
    world.send(alice, { action: 'leave_room', uuid: 'l1', room: id });
    await world.settle();
    const room = { id, name: 'r', users: [], online: [] };
    assert.deepEqual(world.take(alice), [{ uuid: 'l1', action: 'leave_room', status: 'success', room }, { action: 'room_update', room }]);
    assert.deepEqual(await ask(world, alice, { action: 'select_room', uuid: 's1', room: id }), error('s1', 'select_room', 'not_found', `there is no room ${id}`));
  });

  test('not_found and forbidden', async () => {
    const world = new World();
    const alice = world.connect('alice');
    const bob = world.connect('bob');
    const id = await world.room(alice, 'r', []);
    assert.deepEqual(await ask(world, alice, { action: 'leave_room', uuid: 'l1', room: 12345 }), error('l1', 'leave_room', 'not_found', 'there is no room 12345'));
    assert.deepEqual(await ask(world, bob, { action: 'leave_room', uuid: 'l2', room: id }), error('l2', 'leave_room', 'forbidden', `you are not a member of room ${id}`));
    assert.deepEqual(world.memory.room(id)?.users, ['alice']);
  });
});

describe('list_rooms', () => {
  test('the requester\'s rooms, most recently active first, each with last_message or null', async () => {
    const world = new World();
    const alice = world.connect('alice');
    const bob = world.connect('bob');
    world.now = T0 + 1;
    const quiet = await world.room(alice, 'quiet', []);
    world.now = T0 + 2;
    const busy = await world.room(alice, 'busy', ['bob']);
    world.now = T0 + 3;
    const newest = await world.room(alice, 'newest', []);
    world.now = T0 + 4;
    const message = await world.post(bob, busy, 'latest');
    await world.room(bob, 'not-alices', []);
    world.disconnect(bob);
    const answer = await ask(world, alice, { action: 'list_rooms', uuid: 'l1' });
    assert.deepEqual(answer, {
      uuid: 'l1',
      action: 'list_rooms',
      status: 'success',
      rooms: [
        { id: busy, name: 'busy', users: ['alice', 'bob'], online: ['alice'], last_message: message },
        { id: newest, name: 'newest', users: ['alice'], online: ['alice'], last_message: null },
        { id: quiet, name: 'quiet', users: ['alice'], online: ['alice'], last_message: null },
      ],
    });
    assert.deepEqual(message, { id: FIRST_MESSAGE, room: busy, user: 'bob', text: 'latest', ts: T0 + 4 });
    const carol = world.connect('carol');
    assert.deepEqual(await ask(world, carol, { action: 'list_rooms', uuid: 'l2' }), { uuid: 'l2', action: 'list_rooms', status: 'success', rooms: [] });
  });

  test('rooms equally active: the newer first', async () => {
    const world = new World();
    const alice = world.connect('alice');
    const a = await world.room(alice, 'a', []);
    const b = await world.room(alice, 'b', []);
    const answer = await ask(world, alice, { action: 'list_rooms', uuid: 'l1' });
    assert.deepEqual(answer.rooms.map((room: Json) => room.id), [b, a]);
    assert.equal(JSON.stringify(answer.rooms[0]), `{"id":${b},"name":"b","users":["alice"],"online":["alice"],"last_message":null}`);
  });
});

describe('select_room', () => {
  test('without since: the last historySize messages, oldest first, and no "recovered"', async () => {
    const world = new World({ limits: { historySize: 3 } });
    const alice = world.connect('alice');
    const id = await world.room(alice, 'r', ['bob']);
    const posted: Json[] = [];
    for (let i = 0; i < 5; i++) posted.push(await world.post(alice, id, `m${i}`));
    world.send(alice, { action: 'select_room', uuid: 's1', room: id });
    await world.settle();
    assert.equal(
      alice.inbox[0],
      JSON.stringify({ uuid: 's1', action: 'select_room', status: 'success', room: { id, name: 'r', users: ['alice', 'bob'], online: ['alice'] }, room_messages: posted.slice(2) }),
    );
  });

  test('with since: the messages after it and recovered true, or the last ones and recovered false', async () => {
    const world = new World({ limits: { historySize: 3 } });
    const alice = world.connect('alice');
    const id = await world.room(alice, 'r', []);
    const posted: Json[] = [];
    for (let i = 0; i < 5; i++) posted.push(await world.post(alice, id, `m${i}`));
    const select = async (since: number): Promise<Json> => ask(world, alice, { action: 'select_room', uuid: 's', room: id, since });
    const recent = await select(posted[3].id);
    assert.deepEqual(recent.room_messages, [posted[4]]);
    assert.equal(recent.recovered, true);
    const upToDate = await select(posted[4].id);
    assert.deepEqual(upToDate.room_messages, []);
    assert.equal(upToDate.recovered, true);
    const gap = await select(posted[0].id); // 4 missing, 3 returned
    assert.deepEqual(gap.room_messages, posted.slice(2));
    assert.equal(gap.recovered, false);
    assert.deepEqual(Object.keys(gap), ['uuid', 'action', 'status', 'room', 'room_messages', 'recovered']);
    const all = await select(posted[1].id);
    assert.deepEqual(all.room_messages, posted.slice(2));
    assert.equal(all.recovered, true);
  });

  test('not_found and forbidden', async () => {
    const world = new World();
    const alice = world.connect('alice');
    const bob = world.connect('bob');
    const id = await world.room(alice, 'r', []);
    assert.deepEqual(await ask(world, alice, { action: 'select_room', uuid: 's1', room: id + 1 }), error('s1', 'select_room', 'not_found', `there is no room ${id + 1}`));
    assert.deepEqual(await ask(world, bob, { action: 'select_room', uuid: 's2', room: id, since: 0 }), error('s2', 'select_room', 'forbidden', `you are not a member of room ${id}`));
  });
});

describe('new_message', () => {
  test('goes to every connection of every member, the requester\'s copy being its only answer', async () => {
    const world = new World();
    const alice = world.connect('alice', 1);
    const alice2 = world.connect('alice', 2);
    const bob = world.connect('bob', 2);
    const bob2 = world.connect('bob', 2);
    const carol = world.connect('carol', 3); // member, on an outlet of her own
    const mallory = world.connect('mallory', 1); // not a member, on alice's outlet
    const eve = world.connect('eve', 4); // not a member, on an outlet with no member
    const id = await world.room(alice, 'r', ['bob', 'carol', 'dave']); // dave: member, offline
    world.now = T0 + 42;
    world.send(alice, { action: 'new_message', uuid: 'n1', room: id, text: 'hello' });
    await world.settle();
    const expected = `{"uuid":"n1","action":"new_message","status":"success","room":{"id":${id},"name":"r","users":["alice","bob","carol","dave"],"online":["alice","bob","carol"]},"message":{"id":${FIRST_MESSAGE},"room":${id},"user":"alice","text":"hello","ts":${T0 + 42}}}`;
    for (const connection of [alice, alice2, bob, bob2, carol]) assert.deepEqual(connection.inbox.splice(0), [expected], connection.user);
    assert.deepEqual(mallory.inbox, []);
    assert.deepEqual(eve.inbox, []);
    // No reply call (the delivery is the answer); one deliver per outlet with members, one text object.
    const calls = world.takeCalls();
    assert.deepEqual(calls.map((call) => call.kind === 'deliver' && [call.outlet, call.users]), [
      [1, ['alice']],
      [2, ['alice', 'bob']],
      [3, ['carol']],
    ]);
    assert.ok(calls.every((call) => call.text === calls[0].text), 'the same string for every outlet');
  });

  test('ids increase in handling order; every member sees them in that order', async () => {
    const world = new World();
    const alice = world.connect('alice', 1);
    const bob = world.connect('bob', 2);
    const id = await world.room(alice, 'r', ['bob']);
    for (let i = 0; i < 5; i++) world.send(i % 2 ? bob : alice, { action: 'new_message', uuid: `n${i}`, room: id, text: `t${i}` });
    await world.settle();
    const seen = (connection: Connection): number[] => world.take(connection).map((answer) => answer.message.id);
    const expected = [0, 1, 2, 3, 4].map((i) => FIRST_MESSAGE + i);
    assert.deepEqual(seen(alice), expected);
    assert.deepEqual(seen(bob), expected);
  });

  test('not_found and forbidden, and a non-member never receives anything', async () => {
    const world = new World();
    const alice = world.connect('alice');
    const mallory = world.connect('mallory');
    const id = await world.room(alice, 'r', []);
    assert.deepEqual(await ask(world, alice, { action: 'new_message', uuid: 'n1', room: 77, text: 'x' }), error('n1', 'new_message', 'not_found', 'there is no room 77'));
    assert.deepEqual(await ask(world, mallory, { action: 'new_message', uuid: 'n2', room: id, text: 'x' }), error('n2', 'new_message', 'forbidden', `you are not a member of room ${id}`));
    assert.deepEqual(world.memory.lastMessages(id, 10), []);
    await world.post(alice, id, 'private');
    assert.deepEqual(mallory.inbox, []);
  });

  test('a retry (same user, same uuid) is stored and delivered once; the retry gets the original, alone', async () => {
    const world = new World();
    const alice = world.connect('alice', 1);
    const alice2 = world.connect('alice', 2);
    const bob = world.connect('bob', 2);
    const id = await world.room(alice, 'r', ['bob']);
    world.now = T0 + 10;
    world.send(alice, { action: 'new_message', uuid: 'same', room: id, text: 'first' });
    await world.settle();
    const original = world.take(alice)[0];
    world.takeAll();
    world.takeCalls();
    world.now = T0 + 20;
    world.send(alice2, { action: 'new_message', uuid: 'same', room: id, text: 'changed text' });
    await world.settle();
    assert.deepEqual(world.take(alice2), [original]); // to the retrying connection only
    assert.deepEqual(world.take(alice), []);
    assert.deepEqual(world.take(bob), []);
    assert.deepEqual(world.takeCalls().map((call) => call.kind), ['reply']);
    assert.deepEqual(world.memory.lastMessages(id, 10).map((m) => m.text), ['first']);
    // Another user's same uuid is another message.
    world.send(bob, { action: 'new_message', uuid: 'same', room: id, text: 'bob' });
    await world.settle();
    assert.equal(world.take(bob)[0].message.text, 'bob');
    assert.equal(world.memory.lastMessages(id, 10).length, 2);
  });

  test('a retry by someone no longer a member is forbidden (the answer would show the room)', async () => {
    const world = new World();
    const alice = world.connect('alice');
    const bob = world.connect('bob');
    const id = await world.room(alice, 'r', ['bob']);
    await world.post(bob, id, 'hi', 'b1');
    world.send(bob, { action: 'leave_room', uuid: 'l1', room: id });
    await world.settle();
    world.takeAll();
    assert.deepEqual(await ask(world, bob, { action: 'new_message', uuid: 'b1', room: id, text: 'hi' }), error('b1', 'new_message', 'forbidden', `you are not a member of room ${id}`));
  });
});

describe('order with a store that settles later', () => {
  test('nothing leaves before its write is durable, and outcomes leave in handling order', async () => {
    const { world, store } = manualWorld();
    const alice = world.connect('alice', 1);
    const bob = world.connect('bob', 2);
    world.send(alice, { action: 'create_room', uuid: 'c1', name: 'r', users: [] });
    world.send(alice, { action: 'select_room', uuid: 's0', room: FIRST_ROOM }); // a read, behind a pending write
    world.send(alice, { action: 'add_users', uuid: 'a1', room: FIRST_ROOM, users: ['bob'] });
    world.send(alice, { action: 'new_message', uuid: 'n1', room: FIRST_ROOM, text: 'one' });
    world.send(bob, { action: 'new_message', uuid: 'n2', room: FIRST_ROOM, text: 'two' }); // bob is a member from a1 on
    world.send(alice, { action: 'list_rooms', uuid: 'l1' });
    assert.deepEqual(store.pending.map((p) => p.what), ['createRoom', 'addUsers', 'appendMessage', 'appendMessage']);
    await new Promise(setImmediate);
    assertSilence(world);
    // Settle the later writes first: still nothing may leave before the first one.
    store.pending[3].resolve();
    store.pending[2].resolve();
    store.pending[1].resolve();
    await new Promise(setImmediate);
    assertSilence(world);
    store.pending[0].resolve();
    await world.settle();
    const a = world.take(alice).map((m) => m.action + (m.status ? `:${m.uuid}` : `:${m.room.users.join('+')}`));
    assert.deepEqual(a, [
      'create_room:c1',
      'room_update:alice',
      'select_room:s0',
      'add_users:a1',
      'room_update:alice+bob',
      'new_message:n1',
      'new_message:n2',
      'list_rooms:l1',
    ]);
    // Bob hears of his membership before the first message sent after it.
    const b = world.take(bob).map((m) => m.action + (m.uuid ? `:${m.uuid}` : ''));
    assert.deepEqual(b, ['room_update', 'new_message:n1', 'new_message:n2']);
  });

  test('a message leaves only when durable, and later ones wait for it', async () => {
    const { world, store } = manualWorld();
    const alice = world.connect('alice');
    world.send(alice, { action: 'create_room', uuid: 'c1', name: 'r', users: [] });
    store.pending[0].resolve();
    await world.settle();
    world.takeAll();
    world.send(alice, { action: 'new_message', uuid: 'n1', room: FIRST_ROOM, text: 'one' });
    world.send(alice, { action: 'new_message', uuid: 'n2', room: FIRST_ROOM, text: 'two' });
    await new Promise(setImmediate);
    assert.deepEqual(alice.inbox, []);
    store.pending[1].resolve();
    // Let the first leave without waiting for everything (settled() would wait for n2 too).
    await new Promise(setImmediate);
    assert.deepEqual(world.take(alice).map((m) => m.uuid), ['n1']);
    store.pending[2].resolve();
    await world.settle();
    assert.deepEqual(world.take(alice).map((m) => m.uuid), ['n2']);
  });
});

describe('unavailable', () => {
  test('a write the store refuses: unavailable, nothing changed, nothing delivered; a later retry works', async () => {
    const { world, store } = manualWorld();
    const alice = world.connect('alice');
    const bob = world.connect('bob');
    world.send(alice, { action: 'create_room', uuid: 'c1', name: 'r', users: ['bob'] });
    store.pending[0].resolve();
    await world.settle();
    world.takeAll();
    store.refuse = true;
    for (const request of [
      { action: 'create_room', uuid: 'c2', name: 'x', users: [] },
      { action: 'add_users', uuid: 'a1', room: FIRST_ROOM, users: ['carol'] },
      { action: 'leave_room', uuid: 'l1', room: FIRST_ROOM },
      { action: 'new_message', uuid: 'n1', room: FIRST_ROOM, text: 'hi' },
    ] as const) {
      assert.deepEqual(await ask(world, alice, request), error(request.uuid, request.action, 'unavailable', UNAVAILABLE));
    }
    assert.deepEqual(world.take(bob), []);
    assert.deepEqual(world.memory.room(FIRST_ROOM)?.users, ['alice', 'bob']);
    assert.deepEqual(world.memory.lastMessages(FIRST_ROOM, 10), []);
    assert.equal(world.memory.roomsOf('alice').length, 1);
    // Reads still work.
    assert.equal((await ask(world, alice, { action: 'select_room', uuid: 's1', room: FIRST_ROOM })).status, 'success');
    store.refuse = false;
    world.send(alice, { action: 'new_message', uuid: 'n1', room: FIRST_ROOM, text: 'hi' });
    store.pending[1].resolve();
    await world.settle();
    assert.equal(world.take(alice)[0].message.text, 'hi');
    assert.equal(world.take(bob)[0].message.text, 'hi');
  });

  test('a write that fails after it was accepted: unavailable for it and for what was computed on top of it', async () => {
    const { world, store } = manualWorld();
    const alice = world.connect('alice');
    const bob = world.connect('bob');
    world.send(alice, { action: 'create_room', uuid: 'c1', name: 'r', users: ['bob'] });
    store.pending[0].resolve();
    await world.settle();
    world.takeAll();
    world.send(alice, { action: 'new_message', uuid: 'n1', room: FIRST_ROOM, text: 'lost' }); // will fail
    world.send(bob, { action: 'select_room', uuid: 's1', room: FIRST_ROOM }); // read memory that held n1
    world.send(alice, { action: 'new_message', uuid: 'n1', room: FIRST_ROOM, text: 'lost' }); // retry while pending: found n1
    // The store rejects n1 (and, as the contract says, would undo it).
    store.pending[1].reject(new StoreUnavailableError('fsync failed'));
    await world.settle();
    assert.deepEqual(world.take(alice), [error('n1', 'new_message', 'unavailable', UNAVAILABLE), error('n1', 'new_message', 'unavailable', UNAVAILABLE)]);
    assert.deepEqual(world.take(bob), [error('s1', 'select_room', 'unavailable', UNAVAILABLE)]);
    // Handled after the failure has left: answered normally.
    assert.equal((await ask(world, bob, { action: 'list_rooms', uuid: 'l1' })).status, 'success');
  });
});

describe('a store that stops settling', () => {
  test('beyond MAX_QUEUED_OUTCOMES waiting, requests are answered unavailable at once and not handled', async () => {
    const { world, store } = manualWorld();
    const alice = world.connect('alice');
    world.send(alice, { action: 'create_room', uuid: 'c1', name: 'r', users: [] });
    for (let i = 1; i < MAX_QUEUED_OUTCOMES; i++) world.send(alice, { action: 'new_message', uuid: `n${i}`, room: FIRST_ROOM, text: 'x' });
    assert.equal(store.pending.length, MAX_QUEUED_OUTCOMES);
    assert.deepEqual(alice.inbox, []);
    world.send(alice, { action: 'new_message', uuid: 'over', room: FIRST_ROOM, text: 'x' });
    world.send(alice, { action: 'list_rooms', uuid: 'over2' });
    // Synchronously, from within handle(), and nothing stored.
    assert.deepEqual(world.take(alice), [error('over', 'new_message', 'unavailable', UNAVAILABLE), error('over2', 'list_rooms', 'unavailable', UNAVAILABLE)]);
    assert.equal(store.pending.length, MAX_QUEUED_OUTCOMES);
    assert.equal(world.memory.findMessage('alice', 'over'), undefined);
    // Once the store catches up, requests are handled again.
    for (const write of store.pending) write.resolve();
    await world.settle();
    assert.equal(world.take(alice).length, 1 + MAX_QUEUED_OUTCOMES); // the answer, the room_update, the messages
    assert.equal((await ask(world, alice, { action: 'list_rooms', uuid: 'l1' })).status, 'success');
  });
});

describe('connections and delivery', () => {
  test('several connections of a user on one outlet: the user is listed once; closing one keeps them online', async () => {
    const world = new World();
    const alice = world.connect('alice', 1);
    const bob1 = world.connect('bob', 1);
    const bob2 = world.connect('bob', 1);
    const id = await world.room(alice, 'r', ['bob']);
    world.send(alice, { action: 'new_message', uuid: 'n1', room: id, text: 'x' });
    await world.settle();
    const calls = world.takeCalls();
    assert.deepEqual(calls.map((call) => call.kind === 'deliver' && call.users), [['alice', 'bob']]);
    assert.equal(world.take(bob1).length, 1);
    assert.equal(world.take(bob2).length, 1);
    world.disconnect(bob1);
    assert.equal(world.service.isOnline('bob'), true);
    world.disconnect(bob2);
    assert.equal(world.service.isOnline('bob'), false);
    world.send(alice, { action: 'new_message', uuid: 'n2', room: id, text: 'y' });
    await world.settle();
    assert.deepEqual(world.takeCalls().map((call) => call.kind === 'deliver' && call.users), [['alice']]);
  });

  test('a close that was never opened is ignored (counts never go below zero)', async () => {
    const world = new World();
    const alice = world.connect('alice', 1);
    world.service.connectionClosed(2, 'alice'); // wrong outlet
    world.service.connectionClosed(1, 'nobody');
    assert.equal(world.service.isOnline('alice'), true);
    world.disconnect(alice);
    world.service.connectionClosed(1, 'alice'); // twice
    world.connect('alice', 1);
    assert.equal(world.service.isOnline('alice'), true);
  });

  test('an outlet that goes away takes its connections with it, and only those', async () => {
    const world = new World();
    const alice = world.connect('alice', 1);
    world.connect('bob', 2);
    const bob3 = world.connect('bob', 3);
    world.connect('carol', 2);
    const id = await world.room(alice, 'r', ['bob', 'carol']);
    world.killOutlet(2);
    assert.equal(world.service.isOnline('bob'), true); // still on outlet 3
    assert.equal(world.service.isOnline('carol'), false);
    world.send(alice, { action: 'new_message', uuid: 'n1', room: id, text: 'x' });
    await world.settle();
    const deliveries = world.takeCalls().filter((call) => call.kind === 'deliver');
    assert.deepEqual(deliveries.map((call) => call.kind === 'deliver' && [call.outlet, call.users]), [
      [1, ['alice']],
      [3, ['bob']],
    ]);
    assert.equal(world.take(bob3)[0].room.online.join(), 'alice,bob');
  });

  test('the recipients of a message are the members when it was handled, on the connections open when it leaves', async () => {
    const { world, store } = manualWorld();
    const alice = world.connect('alice', 1);
    const bob = world.connect('bob', 1);
    world.send(alice, { action: 'create_room', uuid: 'c1', name: 'r', users: ['bob'] });
    store.pending[0].resolve();
    await world.settle();
    world.takeAll();
    world.send(alice, { action: 'new_message', uuid: 'n1', room: FIRST_ROOM, text: 'x' });
    world.send(bob, { action: 'leave_room', uuid: 'l1', room: FIRST_ROOM }); // after n1: bob still gets n1
    const bobLater = world.connect('bob', 2); // opens before n1 leaves: gets it too
    store.pending[1].resolve();
    store.pending[2].resolve();
    await world.settle();
    assert.deepEqual(world.take(bob).map((m) => m.action), ['new_message', 'leave_room', 'room_update']);
    assert.deepEqual(world.take(bobLater).map((m) => m.action), ['new_message', 'room_update']);
  });
});

describe('presence', () => {
  test('a member coming online is pushed to the online members at once (delay 0), then not again', async () => {
    const world = new World();
    const alice = world.connect('alice', 1);
    const id = await world.room(alice, 'r', ['bob', 'carol']);
    const outsider = world.connect('zed', 1);
    assert.equal(world.timers.length, 0); // zed has no rooms: nothing due
    const bob = world.connect('bob', 2);
    assert.deepEqual(world.timers.map((timer) => timer.at), [T0]);
    assertSilence(world); // a check runs through the scheduler, never inside connectionOpened
    await world.runTimers();
    const push = { action: 'presence', room: id, online: ['alice', 'bob'] };
    assert.deepEqual(world.take(alice), [push]);
    assert.deepEqual(world.take(bob), [push]);
    assert.deepEqual(world.take(outsider), []);
    assert.equal(alice.inbox.length, 0);
    await world.runTimers();
    assertSilence(world);
  });

  test('coalesced: at most one push per room per second, carrying the latest set', async () => {
    const world = new World();
    const alice = world.connect('alice');
    const id = await world.room(alice, 'r', ['bob', 'carol', 'dave']);
    const bob = world.connect('bob');
    await world.runTimers();
    assert.deepEqual(world.take(alice), [{ action: 'presence', room: id, online: ['alice', 'bob'] }]);
    world.now += 100;
    world.connect('carol');
    world.now += 100;
    world.connect('dave');
    world.now += 100;
    world.disconnect(bob);
    assert.deepEqual(world.timers.map((timer) => timer.at), [T0 + PRESENCE_INTERVAL_MS]); // one check, a second after the push
    await world.runTimers();
    assert.deepEqual(world.take(alice), []);
    world.now = T0 + PRESENCE_INTERVAL_MS - 1;
    await world.runTimers();
    assert.deepEqual(world.take(alice), []);
    world.now = T0 + PRESENCE_INTERVAL_MS;
    await world.runTimers();
    assert.deepEqual(world.take(alice), [{ action: 'presence', room: id, online: ['alice', 'carol', 'dave'] }]);
    assert.equal(world.timers.length, 0);
  });

  test('a change undone before the check (a reconnect) pushes nothing', async () => {
    const world = new World();
    const alice = world.connect('alice');
    await world.room(alice, 'r', ['bob']);
    const bob = world.connect('bob');
    await world.runTimers();
    world.takeAll();
    world.disconnect(bob);
    world.connect('bob');
    world.now += PRESENCE_INTERVAL_MS; // the check is due a second after the last push
    assert.equal(world.timers.length, 1);
    await world.runTimers();
    assert.equal(world.timers.length, 0);
    assertSilence(world);
  });

  test('going offline is pushed to the members still online; nobody online, nothing sent', async () => {
    const world = new World();
    const alice = world.connect('alice', 1);
    const id = await world.room(alice, 'r', ['bob']);
    const bob = world.connect('bob', 2);
    await world.runTimers();
    world.takeAll();
    world.now += PRESENCE_INTERVAL_MS;
    world.disconnect(bob);
    await world.runTimers();
    assert.deepEqual(world.take(alice), [{ action: 'presence', room: id, online: ['alice'] }]);
    world.takeCalls();
    world.now += PRESENCE_INTERVAL_MS;
    world.disconnect(alice);
    await world.runTimers();
    assert.deepEqual(world.takeCalls(), []); // no outlet holds a member
  });

  test('each of the user\'s rooms gets its own push, to its own members', async () => {
    const world = new World();
    const alice = world.connect('alice', 1);
    const carol = world.connect('carol', 2);
    const one = await world.room(alice, 'one', ['bob']);
    const two = await world.room(carol, 'two', ['bob']);
    world.connect('bob', 3);
    await world.runTimers();
    assert.deepEqual(world.take(alice), [{ action: 'presence', room: one, online: ['alice', 'bob'] }]);
    assert.deepEqual(world.take(carol), [{ action: 'presence', room: two, online: ['carol', 'bob'] }]);
  });

  test('no push repeats what a room_update or a message just told the members', async () => {
    const world = new World();
    const alice = world.connect('alice');
    const bob = world.connect('bob');
    const id = await world.room(alice, 'r', []); // the room_update said: online alice
    await world.runTimers();
    world.takeAll();
    // Bob is added while online: the room_update says so; no check is due.
    world.send(alice, { action: 'add_users', uuid: 'a1', room: id, users: ['bob'] });
    await world.settle();
    assert.deepEqual(world.take(bob), [{ action: 'room_update', room: { id, name: 'r', users: ['alice', 'bob'], online: ['alice', 'bob'] } }]);
    world.takeAll();
    world.now += PRESENCE_INTERVAL_MS;
    const carol = world.connect('carol'); // not a member: no check for this room
    assert.equal(world.timers.length, 0);
    // A message carries the online list too.
    world.disconnect(bob);
    assert.equal(world.timers.length, 1);
    await world.post(alice, id, 'bye'); // its room object says: online alice
    await world.runTimers();
    assert.equal(world.timers.length, 0);
    assertSilence(world);
    assert.deepEqual(carol.inbox, []);
  });

  test('an outlet that goes away is a change of presence', async () => {
    const world = new World();
    const alice = world.connect('alice', 1);
    const id = await world.room(alice, 'r', ['bob']);
    world.connect('bob', 2);
    await world.runTimers();
    world.takeAll();
    world.now += PRESENCE_INTERVAL_MS;
    world.killOutlet(2);
    await world.runTimers();
    assert.deepEqual(world.take(alice), [{ action: 'presence', room: id, online: ['alice'] }]);
  });

  test('a check for a room deleted meanwhile does nothing', async () => {
    const world = new World();
    const alice = world.connect('alice');
    const id = await world.room(alice, 'r', ['bob']);
    world.connect('bob');
    world.send(alice, { action: 'leave_room', uuid: 'l1', room: id });
    const bobsLeave = world.connections[1];
    world.send(bobsLeave, { action: 'leave_room', uuid: 'l2', room: id });
    await world.settle();
    world.takeAll();
    world.takeCalls();
    await world.runTimers();
    assert.deepEqual(world.takeCalls(), []);
  });
});

describe('close', () => {
  test('after close() requests and presence checks are ignored; queued outcomes still leave', async () => {
    const world = new World();
    const alice = world.connect('alice');
    const id = await world.room(alice, 'r', ['bob']);
    world.send(alice, { action: 'new_message', uuid: 'n1', room: id, text: 'queued' });
    world.connect('bob');
    world.service.close();
    world.send(alice, { action: 'new_message', uuid: 'n2', room: id, text: 'ignored' });
    await world.settle();
    await world.runTimers();
    assert.deepEqual(world.take(alice).map((m) => m.uuid ?? m.action), ['n1']);
    assert.deepEqual(world.memory.lastMessages(id, 10).map((m) => m.text), ['queued']);
  });
});
