// Tests for src/rooms/memory-store.ts against the ChatStore contract (src/rooms/store.ts): ids,
// membership and room deletion, immutable snapshots, history bounds and messagesSince's
// `complete`, the bounded dedupe table, and writes that resolve in call order.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../src/rooms/memory-store.js';
import { DEFAULT_DEDUPE_LIMIT, DEFAULT_DEDUPE_WINDOW_MS, type Message } from '../src/rooms/store.js';

/** The tests' clock: messages are stamped with small times, all within the dedupe window. */
let now = 0;

function store(historyLimit = 5, dedupeLimit?: number): MemoryStore {
  now = 0;
  return new MemoryStore({ historyLimit, dedupeLimit, firstMessageId: 1000, firstRoomId: 1, clock: () => now });
}

const ids = (messages: readonly Message[]): number[] => messages.map((message) => message.id);

describe('rooms and members', () => {
  test('createRoom assigns increasing ids, keeps users in order without repeats, sets lastActivity', async () => {
    const s = store();
    const a = await s.createRoom('general', ['alice', 'bob', 'alice', 'carol'], 111);
    const b = await s.createRoom('random', ['bob'], 222);
    assert.deepEqual(a, { id: 1, name: 'general', users: ['alice', 'bob', 'carol'], lastActivity: 111 });
    assert.deepEqual(b, { id: 2, name: 'random', users: ['bob'], lastActivity: 222 });
    assert.equal(s.room(1), a);
    assert.equal(s.room(3), undefined);
    assert.deepEqual(s.roomsOf('bob').map((room) => room.id).sort(), [1, 2]);
    assert.deepEqual(s.roomsOf('alice'), [a]);
    assert.deepEqual(s.roomsOf('nobody'), []);
  });

  test('addUsers appends the new ones in order and skips members and repeats', async () => {
    const s = store();
    await s.createRoom('r', ['alice'], 0);
    const after = await s.addUsers(1, ['bob', 'alice', 'carol', 'bob']);
    assert.deepEqual(after.users, ['alice', 'bob', 'carol']);
    assert.deepEqual(s.roomsOf('carol'), [after]);
    const same = await s.addUsers(1, ['alice']);
    assert.equal(same, after, 'nothing added: the same snapshot');
  });

  test('removeUser removes one member; the last one out deletes the room and its history', async () => {
    const s = store();
    await s.createRoom('r', ['alice', 'bob'], 0);
    await s.appendMessage(1, 'alice', 'u1', 'hi', 5);
    const after = await s.removeUser(1, 'alice');
    assert.deepEqual(after.users, ['bob']);
    assert.deepEqual(s.roomsOf('alice'), []);
    assert.equal(s.room(1), after);
    const empty = await s.removeUser(1, 'bob');
    assert.deepEqual(empty.users, []);
    assert.equal(s.room(1), undefined);
    assert.deepEqual(s.roomsOf('bob'), []);
    assert.deepEqual(s.lastMessages(1, 10), []);
    assert.deepEqual(s.messagesSince(1, 0, 10), { messages: [], complete: true });
  });

  test('snapshots never change: a write replaces the room object', async () => {
    const s = store();
    const created = await s.createRoom('r', ['alice'], 10);
    const withBob = await s.addUsers(1, ['bob']);
    await s.appendMessage(1, 'bob', 'u1', 'hi', 20);
    const withoutAlice = await s.removeUser(1, 'alice');
    assert.deepEqual(created, { id: 1, name: 'r', users: ['alice'], lastActivity: 10 });
    assert.deepEqual(withBob, { id: 1, name: 'r', users: ['alice', 'bob'], lastActivity: 10 });
    assert.deepEqual(withoutAlice, { id: 1, name: 'r', users: ['bob'], lastActivity: 20 });
  });

  test('a write on a room that does not exist throws (the caller checks first)', () => {
    const s = store();
    assert.throws(() => s.addUsers(9, ['a']), /no room 9/);
    assert.throws(() => s.removeUser(9, 'a'), /no room 9/);
    assert.throws(() => s.appendMessage(9, 'a', 'u', 't', 0), /no room 9/);
  });

  test('default ids start from the clock in microseconds, so they grow across restarts', async () => {
    const before = Date.now() * 1000;
    const s = new MemoryStore({ historyLimit: 5 });
    const after = Date.now() * 1000;
    const room = await s.createRoom('r', ['a'], 0);
    const message = await s.appendMessage(room.id, 'a', 'u', 't', 0);
    for (const id of [room.id, message.id]) {
      assert.ok(id >= before && id <= after, `${id} in [${before}, ${after}]`);
      assert.ok(Number.isSafeInteger(id));
    }
  });

  test('bad options throw', () => {
    assert.throws(() => new MemoryStore({ historyLimit: -1 }), RangeError);
    assert.throws(() => new MemoryStore({ historyLimit: 1.5 }), RangeError);
    assert.throws(() => new MemoryStore({ historyLimit: 5, dedupeLimit: 0 }), RangeError);
  });
});

describe('messages', () => {
  test('appendMessage: ids increase across rooms, the object is the protocol\'s, lastActivity follows', async () => {
    const s = store();
    await s.createRoom('a', ['alice'], 0);
    await s.createRoom('b', ['alice'], 0);
    const m1 = await s.appendMessage(1, 'alice', 'u1', 'one', 100);
    const m2 = await s.appendMessage(2, 'alice', 'u2', 'two', 200);
    const m3 = await s.appendMessage(1, 'alice', 'u3', 'three', 300);
    assert.deepEqual(ids([m1, m2, m3]), [1000, 1001, 1002]);
    assert.equal(JSON.stringify(m1), '{"id":1000,"room":1,"user":"alice","text":"one","ts":100}');
    assert.equal(s.room(1)!.lastActivity, 300);
    assert.equal(s.room(2)!.lastActivity, 200);
    // A clock that steps back does not make a room look older than it was.
    await s.appendMessage(2, 'alice', 'u4', 'four', 150);
    assert.equal(s.room(2)!.lastActivity, 200);
  });

  test('history is bounded per room; lastMessages returns the last n, oldest first', async () => {
    const s = store(3);
    await s.createRoom('a', ['x'], 0);
    await s.createRoom('b', ['x'], 0);
    for (let i = 0; i < 5; i++) await s.appendMessage(1, 'x', `a${i}`, `a${i}`, i);
    await s.appendMessage(2, 'x', 'b0', 'b0', 0);
    assert.deepEqual(ids(s.lastMessages(1, 10)), [1002, 1003, 1004]);
    assert.deepEqual(ids(s.lastMessages(1, 2)), [1003, 1004]);
    assert.deepEqual(ids(s.lastMessages(1, 0)), []);
    assert.deepEqual(ids(s.lastMessages(2, 10)), [1005]);
    assert.deepEqual(ids(s.lastMessages(99, 10)), []);
  });

  test('messagesSince: complete when nothing after since was trimmed and all fit in n', async () => {
    const s = store(4);
    await s.createRoom('a', ['x'], 0);
    await s.createRoom('other', ['x'], 0);
    // Room 1 gets 1000, 1001, 1003, 1004, 1005, 1006 (1002 goes to room 2); it keeps the last 4.
    for (const [room, n] of [[1, 0], [1, 1], [2, 2], [1, 3], [1, 4], [1, 5], [1, 6]] as const) await s.appendMessage(room, 'x', `u${n}`, 't', n);
    assert.deepEqual(ids(s.lastMessages(1, 10)), [1003, 1004, 1005, 1006]); // 1000 and 1001 trimmed
    const since = (sinceId: number, n: number): [number[], boolean] => {
      const found = s.messagesSince(1, sinceId, n);
      return [ids(found.messages), found.complete];
    };
    assert.deepEqual(since(1004, 10), [[1005, 1006], true]);
    assert.deepEqual(since(1006, 10), [[], true]); // up to date
    assert.deepEqual(since(5000, 10), [[], true]); // ahead (another room's id): nothing after it
    assert.deepEqual(since(1001, 10), [[1003, 1004, 1005, 1006], true]); // the last trimmed one: nothing after it was lost
    assert.deepEqual(since(1002, 10), [[1003, 1004, 1005, 1006], true]); // another room's id between
    assert.deepEqual(since(1000, 10), [[1003, 1004, 1005, 1006], false]); // 1001 was trimmed: a gap
    assert.deepEqual(since(0, 10), [[1003, 1004, 1005, 1006], false]);
    assert.deepEqual(since(1003, 2), [[1005, 1006], false]); // three missing, two asked for: a gap
    assert.deepEqual(since(1003, 3), [[1004, 1005, 1006], true]);
    assert.deepEqual(since(1006, 0), [[], true]);
    assert.deepEqual(since(1005, 0), [[], false]);
    // A room with no trimming yet: since 0 is complete.
    assert.deepEqual(s.messagesSince(2, 0, 10), { messages: s.lastMessages(2, 10), complete: true });
  });
});

describe('dedupe table', () => {
  test('findMessage finds (user, uuid), not another user\'s same uuid', async () => {
    const s = store();
    await s.createRoom('a', ['alice', 'bob'], 0);
    const m = await s.appendMessage(1, 'alice', 'same', 'hi', 0);
    assert.equal(s.findMessage('alice', 'same'), m);
    assert.equal(s.findMessage('bob', 'same'), undefined);
    assert.equal(s.findMessage('alice', 'other'), undefined);
  });

  test('it is bounded by count, the oldest forgotten first, also after the history dropped them', async () => {
    const s = store(1, 3);
    await s.createRoom('a', ['alice'], 0);
    for (let i = 0; i < 5; i++) await s.appendMessage(1, 'alice', `u${i}`, `t${i}`, i);
    assert.equal(s.findMessage('alice', 'u0'), undefined);
    assert.equal(s.findMessage('alice', 'u1'), undefined);
    assert.equal(s.findMessage('alice', 'u2')?.text, 't2'); // trimmed from the history (1 kept), still recognised
    assert.equal(s.findMessage('alice', 'u4')?.text, 't4');
  });

  test('a user id and a uuid cannot combine into another pair\'s key', async () => {
    const s = store();
    await s.createRoom('a', ['a', 'a-b'], 0);
    await s.appendMessage(1, 'a', 'b-c', 't', 0);
    assert.equal(s.findMessage('a-b', 'c'), undefined);
  });

  test('the default limit is documented', () => {
    assert.equal(DEFAULT_DEDUPE_LIMIT, 100_000);
    assert.equal(DEFAULT_DEDUPE_WINDOW_MS, 86_400_000);
  });

  test('a pair is recognised for the window, and not after it', async () => {
    const s = new MemoryStore({ historyLimit: 5, dedupeWindowMs: 1000, clock: () => now, firstMessageId: 1, firstRoomId: 1 });
    now = 5000;
    await s.createRoom('a', ['alice'], now);
    await s.appendMessage(1, 'alice', 'u', 't', now);
    now = 5999;
    assert.equal(s.findMessage('alice', 'u')?.id, 1);
    now = 6000;
    assert.equal(s.findMessage('alice', 'u'), undefined, 'exactly one window later');
    // The same uuid again, past the window, is a new message, recognised from then on.
    const again = await s.appendMessage(1, 'alice', 'u', 't2', now);
    assert.equal(s.findMessage('alice', 'u')?.id, again.id);
  });
});

test('writes resolve in call order', async () => {
  const s = store();
  const order: string[] = [];
  const room = s.createRoom('a', ['alice'], 0).then(() => order.push('create'));
  const add = s.addUsers(1, ['bob']).then(() => order.push('add'));
  const message = s.appendMessage(1, 'bob', 'u', 't', 0).then(() => order.push('append'));
  const remove = s.removeUser(1, 'alice').then(() => order.push('remove'));
  await Promise.all([room, add, message, remove]);
  assert.deepEqual(order, ['create', 'add', 'append', 'remove']);
});

describe('undo (what a durable store calls when a write fails to reach the disk)', () => {
  test('undoing writes newest first gives back exactly the state before them', async () => {
    const s = store(2, 2);
    await s.createRoom('a', ['alice', 'bob'], 1);
    await s.appendMessage(1, 'alice', 'u1', 'one', 2);
    await s.appendMessage(1, 'alice', 'u2', 'two', 3);
    const before = { room: s.room(1), history: s.lastMessages(1, 10), since: s.messagesSince(1, 0, 10), u1: s.findMessage('alice', 'u1'), u2: s.findMessage('alice', 'u2') };
    const writes = [
      s.appendMessageNow(1, 'bob', 'u3', 'three', 4), // trims 'one' from the history and u1 from the table
      s.addUsersNow(1, ['carol']),
      s.removeUserNow(1, 'alice'),
      s.removeUserNow(1, 'bob'),
      s.removeUserNow(1, 'carol'), // the last member: the room is deleted
      s.createRoomNow('b', ['dave'], 5),
    ];
    assert.equal(s.room(1), undefined);
    assert.equal(s.findMessage('alice', 'u1'), undefined);
    for (const write of writes.reverse()) write.undo();
    assert.deepEqual({ room: s.room(1), history: s.lastMessages(1, 10), since: s.messagesSince(1, 0, 10), u1: s.findMessage('alice', 'u1'), u2: s.findMessage('alice', 'u2') }, before);
    assert.equal(s.findMessage('bob', 'u3'), undefined);
    assert.deepEqual(s.roomsOf('carol'), []);
    assert.deepEqual(s.roomsOf('dave'), []);
    assert.deepEqual(s.roomsOf('alice').map((room) => room.id), [1]);
    assert.deepEqual(s.roomsOf('bob').map((room) => room.id), [1]);
    // Ids are not given back: the next write gets a new one.
    assert.equal((await s.appendMessage(1, 'alice', 'u4', 'four', 6)).id, 1003);
  });
});

test('reads see a write as soon as it is called, before its promise settles', () => {
  const s = store();
  void s.createRoom('a', ['alice'], 0);
  assert.deepEqual(s.room(1)?.users, ['alice']);
  void s.appendMessage(1, 'alice', 'u', 't', 0);
  assert.equal(s.findMessage('alice', 'u')?.id, 1000);
});
