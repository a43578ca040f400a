// The rooms (chat-protocol.md, "Rooms") through the real server with --workers 4: the success
// answer of every action with its exact fields, the pushes each one makes (room_update to every
// connection of every member, the requester included), select_room's history and recovery, the
// acknowledgement of new_message and its copy on every member connection, a retried new_message;
// the Origin rule of /chat on the raw handshake; and a CHAT_SECRET shorter than 32 bytes stopping
// startup with exit 3.
//
// Errors, tokens and limits are in rooms-guards.test.ts; delivery, order and presence across
// workers in rooms-delivery.test.ts. Each test uses its own users, so that the tests sharing the
// server cannot see each other's rooms.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connectRaw, Op } from './helpers/raw-ws.js';
import { closeConnections, isRoomId, messageOf, newSecret, openSpread, RoomsConnection, sleep, tokenFor, type MessageObject, type RoomObject } from './helpers/rooms-client.js';
import { runMain, startServer, type RunningServer } from './helpers/server.js';

const TIMEOUT = { timeout: 30_000 };
const HISTORY_SIZE = 5;
const ALLOWED_ORIGIN = 'http://allowed.example:8080';

describe('rooms on 4 workers: every action answered', () => {
  const secret = newSecret();
  let server: RunningServer;
  const connections: RoomsConnection[] = [];
  const signIn = async (user: string, name = user): Promise<RoomsConnection> => {
    const connection = await RoomsConnection.signIn(server.wsUrl, secret, user, name);
    connections.push(connection);
    return connection;
  };
  before(async () => {
    server = await startServer({
      args: ['--workers', '4'],
      env: { CHAT_SECRET: secret, CHAT_HISTORY_SIZE: String(HISTORY_SIZE), CHAT_ALLOWED_ORIGINS: ALLOWED_ORIGIN },
    });
  });
  after(async () => {
    await closeConnections(connections);
    await server?.stop();
  });

  test('authenticate: {"uuid", "action", "status": "success", "user"}, for any user id the protocol allows', TIMEOUT, async () => {
    // Names that are special somewhere (an object's prototype keys) are plain user ids here.
    for (const user of ['ann', 'Zoë Ünïcode 🙂', 'x'.repeat(64), '__proto__', 'constructor']) {
      const connection = await RoomsConnection.open(server.wsUrl, user);
      connections.push(connection);
      const answer = await connection.request('authenticate', { token: tokenFor(secret, user) }, { uuid: 'Auth_1-z' });
      assert.deepEqual(answer, { uuid: 'Auth_1-z', action: 'authenticate', status: 'success', user });
      const created = await connection.ok('create_room', { name: `${user}'s`, users: ['hasOwnProperty'] });
      assert.deepEqual((created.room as RoomObject).users, [user, 'hasOwnProperty']);
    }
  });

  test('create_room: the room object to the requester, and a room_update to every connection of every member', TIMEOUT, async () => {
    const cara = await openSpread(server.wsUrl, secret, 'cara', 2, connections); // two workers
    const dan = await signIn('dan');
    const eve = await signIn('eve-create'); // not a member: hears nothing
    const answer = await cara[0]!.ok('create_room', { name: 'Plans', users: ['dan', 'eva', 'dan'] }, 'create-1');
    const room = answer.room as RoomObject;
    assert.ok(isRoomId(room.id), `a large integer id: ${room.id}`);
    assert.deepEqual(answer, {
      uuid: 'create-1', action: 'create_room', status: 'success',
      // The requester first, then the others in the order given, each once; online: those connected.
      room: { id: room.id, name: 'Plans', users: ['cara', 'dan', 'eva'], online: ['cara', 'dan'] },
    });
    for (const connection of [...cara, dan]) {
      await connection.seen((m) => m.action === 'room_update', `${connection.name}: the room_update`);
      await connection.barrier();
      assert.deepEqual(connection.roomUpdates(room.id), [{ action: 'room_update', room: answer.room }], `${connection.name}: exactly one room_update`);
    }
    await eve.barrier();
    assert.deepEqual(eve.roomUpdates(room.id), []);

    // eva was offline: she finds the room when she comes (online now includes her).
    const eva = await signIn('eva');
    const listed = await eva.ok('list_rooms');
    assert.deepEqual(listed.rooms, [{ ...room, online: ['cara', 'dan', 'eva'], last_message: null }]);
  });

  test('add_users: the room with the new members at the end; a room_update to old and new members; adding members is a no-op', TIMEOUT, async () => {
    const fay = await signIn('fay');
    const gus = await signIn('gus');
    const hal = await signIn('hal');
    const room = (await fay.ok('create_room', { name: 'Adds', users: ['gus'] })).room as RoomObject;
    await gus.seen((m) => m.action === 'room_update', 'gus: the creation');

    const answer = await fay.ok('add_users', { room: room.id, users: ['hal', 'gus', 'ida', 'hal'] }, 'add-1');
    const after: RoomObject = { id: room.id, name: 'Adds', users: ['fay', 'gus', 'hal', 'ida'], online: ['fay', 'gus', 'hal'] };
    assert.deepEqual(answer, { uuid: 'add-1', action: 'add_users', status: 'success', room: after });
    for (const connection of [fay, gus, hal]) {
      await connection.seen((m) => m.action === 'room_update' && (m.room as RoomObject).users.length === 4, `${connection.name}: the room_update of the addition`);
    }

    // Only members: nothing changes, the answer is the room as it is, nobody is told anything.
    const again = await gus.ok('add_users', { room: room.id, users: ['fay', 'hal'] }, 'add-2');
    assert.deepEqual(again, { uuid: 'add-2', action: 'add_users', status: 'success', room: after });
    for (const connection of [fay, gus, hal]) await connection.barrier();
    assert.deepEqual(fay.roomUpdates(room.id).map((m) => (m.room as RoomObject).users), [['fay', 'gus'], ['fay', 'gus', 'hal', 'ida']]);
    assert.deepEqual(gus.roomUpdates(room.id).map((m) => (m.room as RoomObject).users), [['fay', 'gus'], ['fay', 'gus', 'hal', 'ida']]);
    assert.deepEqual(hal.roomUpdates(room.id), [{ action: 'room_update', room: after }], 'hal hears of the room when added, once');
  });

  test('leave_room: the room without the leaver, a room_update to the members and to the leaver; the last to leave deletes the room', TIMEOUT, async () => {
    const jan = await signIn('jan');
    const kit = await signIn('kit');
    const room = (await jan.ok('create_room', { name: 'Leaving', users: ['kit'] })).room as RoomObject;
    await kit.seen((m) => m.action === 'room_update', 'kit: the creation');

    const answer = await kit.ok('leave_room', { room: room.id }, 'leave-1');
    const after: RoomObject = { id: room.id, name: 'Leaving', users: ['jan'], online: ['jan'] };
    assert.deepEqual(answer, { uuid: 'leave-1', action: 'leave_room', status: 'success', room: after });
    for (const connection of [jan, kit]) {
      await connection.seen((m) => m.action === 'room_update' && (m.room as RoomObject).users.length === 1, `${connection.name}: the room_update of the leave`);
      await connection.barrier();
      assert.deepEqual(connection.roomUpdates(room.id).at(-1), { action: 'room_update', room: after });
      assert.equal(connection.roomUpdates(room.id).length, 2, 'the creation and the leave');
    }
    assert.deepEqual((await kit.ok('list_rooms')).rooms, [], 'kit has no room left');
    const forbidden = await kit.request('select_room', { room: room.id });
    assert.equal(forbidden.error, 'forbidden', 'a former member cannot read the room');

    // The last member leaves: the room is gone for everyone, its former members included.
    const last = await jan.ok('leave_room', { room: room.id }, 'leave-2');
    assert.deepEqual(last, { uuid: 'leave-2', action: 'leave_room', status: 'success', room: { id: room.id, name: 'Leaving', users: [], online: [] } });
    await jan.seen((m) => m.action === 'room_update' && (m.room as RoomObject).users.length === 0, 'jan: the room_update of the last leave');
    for (const [action, fields] of [['select_room', {}], ['new_message', { text: 'anyone?' }], ['leave_room', {}], ['add_users', { users: ['jan'] }]] as const) {
      for (const connection of [jan, kit]) {
        const refused = await connection.request(action, { room: room.id, ...fields });
        assert.equal(refused.error, 'not_found', `${connection.name} ${action} on a deleted room: ${JSON.stringify(refused)}`);
      }
    }
    assert.deepEqual((await jan.ok('list_rooms')).rooms, []);
  });

  test('list_rooms: the requester\'s rooms, most recently active first, each with last_message or null', TIMEOUT, async () => {
    const lou = await signIn('lou');
    const empty = await lou.ok('list_rooms', {}, 'list-0');
    assert.deepEqual(empty, { uuid: 'list-0', action: 'list_rooms', status: 'success', rooms: [] });

    const one = (await lou.ok('create_room', { name: 'One', users: ['max'] })).room as RoomObject;
    const two = (await lou.ok('create_room', { name: 'Two', users: [] })).room as RoomObject;
    const three = (await lou.ok('create_room', { name: 'Three', users: ['max'] })).room as RoomObject;
    assert.ok(one.id < two.id && two.id < three.id, 'room ids increase');
    // Let the clock pass the creations' millisecond, so that the message makes One strictly the latest.
    await sleep(5);
    const message = await lou.say(one.id, 'first in One');
    const listed = await lou.ok('list_rooms', {}, 'list-1');
    assert.deepEqual(listed, {
      uuid: 'list-1', action: 'list_rooms', status: 'success',
      rooms: [
        { id: one.id, name: 'One', users: ['lou', 'max'], online: ['lou'], last_message: message },
        // Two and Three may share a creation millisecond: among equals the newer room comes first.
        { id: three.id, name: 'Three', users: ['lou', 'max'], online: ['lou'], last_message: null },
        { id: two.id, name: 'Two', users: ['lou'], online: ['lou'], last_message: null },
      ],
    });
    await sleep(5);
    const later = await lou.say(two.id, 'now Two');
    const relisted = await lou.ok('list_rooms');
    assert.deepEqual((relisted.rooms as Array<RoomObject & { last_message: MessageObject | null }>).map((r) => [r.name, r.last_message]), [['Two', later], ['One', message], ['Three', null]]);
  });

  test(`select_room: the last CHAT_HISTORY_SIZE (${HISTORY_SIZE}) messages; with since, those above it and whether they are all of them`, TIMEOUT, async () => {
    const moe = await signIn('moe');
    const room = (await moe.ok('create_room', { name: 'History', users: ['ned'] })).room as RoomObject;
    const object: RoomObject = { ...room, online: ['moe'] };
    const none = await moe.ok('select_room', { room: room.id }, 'select-0');
    assert.deepEqual(none, { uuid: 'select-0', action: 'select_room', status: 'success', room: object, room_messages: [] });
    const emptySince = await moe.ok('select_room', { room: room.id, since: 0 }, 'select-00');
    assert.deepEqual(emptySince, { uuid: 'select-00', action: 'select_room', status: 'success', room: object, room_messages: [], recovered: true });

    const m: MessageObject[] = [];
    for (let i = 1; i <= 7; i++) m.push(await moe.say(room.id, `message ${i}`));
    // m[0] and m[1] are trimmed: the history holds m[2]..m[6].
    const kept = m.slice(2);

    const last = await moe.ok('select_room', { room: room.id }, 'select-1');
    assert.deepEqual(last, { uuid: 'select-1', action: 'select_room', status: 'success', room: object, room_messages: kept }, 'no `recovered` without since');
    const withNull = await moe.ok('select_room', { room: room.id, since: null }, 'select-2');
    assert.deepEqual(withNull, { uuid: 'select-2', action: 'select_room', status: 'success', room: object, room_messages: kept }, 'since: null is no since');

    const since = async (sinceId: number) => {
      const answer = await moe.ok('select_room', { room: room.id, since: sinceId });
      return { room_messages: answer.room_messages, recovered: answer.recovered, keys: Object.keys(answer).sort() };
    };
    const keys = ['action', 'recovered', 'room', 'room_messages', 'status', 'uuid'];
    assert.deepEqual(await since(m[3]!.id), { room_messages: m.slice(4), recovered: true, keys }, 'the three above message 4');
    assert.deepEqual(await since(m[1]!.id), { room_messages: kept, recovered: true, keys }, 'above message 2: none was trimmed away');
    assert.deepEqual(await since(m[0]!.id), { room_messages: kept, recovered: false, keys }, 'message 2 was trimmed: a gap');
    assert.deepEqual(await since(0), { room_messages: kept, recovered: false, keys }, 'everything since the start: a gap');
    assert.deepEqual(await since(m[6]!.id), { room_messages: [], recovered: true, keys }, 'up to date');
  });

  test('new_message: the same answer to every connection of every member, the requester\'s copy being its acknowledgement', TIMEOUT, async () => {
    const kim = await openSpread(server.wsUrl, secret, 'kim', 2, connections);
    const lee = await signIn('lee');
    const ned = await signIn('ned-not-member');
    const room = (await kim[0]!.ok('create_room', { name: 'Talk', users: ['lee', 'mia'] })).room as RoomObject;
    await lee.seen((m) => m.action === 'room_update', 'lee: the creation');

    const before = Date.now();
    const ack = await kim[0]!.request('new_message', { room: room.id, text: 'hello 🙂' }, { uuid: 'msg-1' });
    const afterAck = Date.now();
    const message = messageOf(ack);
    assert.ok(isRoomId(message.id), `a large integer id: ${message.id}`);
    assert.ok(message.ts >= before && message.ts <= afterAck, `ts ${message.ts} is the server's time of the message, between ${before} and ${afterAck}`);
    assert.deepEqual(ack, {
      uuid: 'msg-1', action: 'new_message', status: 'success',
      room: { id: room.id, name: 'Talk', users: ['kim', 'lee', 'mia'], online: ['kim', 'lee'] },
      message: { id: message.id, room: room.id, user: 'kim', text: 'hello 🙂', ts: message.ts },
    });
    for (const connection of [kim[1]!, lee]) {
      const copy = await connection.seen((m) => m.action === 'new_message', `${connection.name}: the message`);
      assert.deepEqual(copy, ack, `${connection.name} gets the very answer, uuid included`);
    }
    for (const connection of [...kim, lee, ned]) await connection.barrier();
    for (const connection of [...kim, lee]) assert.equal(connection.messageFrames(room.id).length, 1, `${connection.name}: once`);
    assert.deepEqual(ned.messageFrames(room.id), [], 'not to a non-member');

    const second = await lee.say(room.id, 'hi kim');
    assert.ok(second.id > message.id, 'ids increase within a room');
  });

  test('a retried new_message (same user, same uuid) gets the original back, to the requester alone; nothing is stored or delivered again', TIMEOUT, async () => {
    const ola = await openSpread(server.wsUrl, secret, 'ola', 2, connections);
    const pia = await signIn('pia');
    const room = (await ola[0]!.ok('create_room', { name: 'Retries', users: ['pia'] })).room as RoomObject;
    await pia.seen((m) => m.action === 'room_update', 'pia: the creation');
    const original = await ola[0]!.request('new_message', { room: room.id, text: 'once' }, { uuid: 'retry-1' });
    assert.equal(original.status, 'success');
    for (const connection of [ola[1]!, pia]) await connection.seen((m) => m.uuid === 'retry-1', `${connection.name}: the original`);

    // The same connection retries, with another text even: the original comes back.
    const retried = await ola[0]!.request('new_message', { room: room.id, text: 'twice?' }, { uuid: 'retry-1' });
    assert.deepEqual(retried, original);
    // Another connection of the same user, after a reconnect say: the same.
    const fromOther = await ola[1]!.request('new_message', { room: room.id, text: 'thrice?' }, { uuid: 'retry-1' });
    assert.deepEqual(fromOther, original);

    for (const connection of [...ola, pia]) await connection.barrier();
    assert.deepEqual(ola[0]!.messageFrames(room.id), [original, original], 'ola#0: its acknowledgement, then its retry\'s answer');
    assert.deepEqual(ola[1]!.messageFrames(room.id), [original, original], 'ola#1: the delivery, then its retry\'s answer');
    assert.deepEqual(pia.messageFrames(room.id), [original], 'pia: delivered once');
    const history = await pia.ok('select_room', { room: room.id });
    assert.deepEqual(history.room_messages, [original.message], 'stored once');

    // The uuid is the client's, per user: pia's request with the same uuid is her own message.
    const hers = await pia.say(room.id, 'mine', 'retry-1');
    assert.notEqual(hers.id, messageOf(original).id);
    assert.equal(hers.user, 'pia');
  });

  describe('the Origin rule: refused with 403 before the upgrade, unless the page\'s own or listed', () => {
    const cases: Array<[string, (port: number) => string | null, number]> = [
      ['another site', () => 'http://evil.example', 403],
      ['the same host on another port', (port) => `http://127.0.0.1:${port + 1}`, 403],
      ['another name for the host (Host says 127.0.0.1)', (port) => `http://localhost:${port}`, 403],
      ['"null" (a sandboxed page, a file)', () => 'null', 403],
      ['equal to the Host header', (port) => `http://127.0.0.1:${port}`, 101],
      ['listed in CHAT_ALLOWED_ORIGINS', () => ALLOWED_ORIGIN, 101],
      ['absent (not a browser)', () => null, 101],
    ];
    for (const [what, origin, status] of cases) {
      test(`Origin ${what}: ${status}`, TIMEOUT, async () => {
        const value = origin(server.port);
        const ws = await connectRaw(server.port, { path: '/chat', headers: value === null ? {} : { Origin: value } });
        try {
          assert.equal(ws.status, status, `${ws.response.statusLine} for Origin ${value}`);
          if (status === 101) {
            const greeting = await ws.nextFrame();
            assert.equal(greeting.opcode, Op.TEXT);
            assert.deepEqual(JSON.parse(greeting.payload.toString('utf8')), { sender: 'server', message: 'You are connected' });
          }
        } finally {
          ws.destroy();
        }
      });
    }
  });
});

describe('CHAT_SECRET shorter than 32 bytes', () => {
  for (const workers of ['1', '4']) {
    test(`stops startup with --workers ${workers}: exit 3 and one ERROR line naming CHAT_SECRET, without showing it`, TIMEOUT, async () => {
      const secret = 'short-secret-'.padEnd(31, 'z');
      const run = await runMain(['--workers', workers, '--port', '0', '--host', '127.0.0.1'], 20_000, { CHAT_SECRET: secret });
      assert.equal(run.code, 3, run.stderr);
      const output = run.stdout + run.stderr;
      const errors = output.split('\n').filter((line) => line.startsWith('ERROR:'));
      assert.equal(errors.length, 1, output);
      assert.match(errors[0]!, /CHAT_SECRET must be at least 32 bytes long, got 31/);
      assert.ok(!output.includes(secret), 'the secret is not printed');
      assert.doesNotMatch(output, /listening on/);
    });
  }
});
