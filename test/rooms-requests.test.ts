// Tests for src/rooms/requests.ts: parseRoomRequest on every action and every field rule of the
// protocol (chat-protocol.md, "Rooms"), with the exact error code of each refusal, and the answer
// builders' exact JSON text (field order included).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  answerBadRequest,
  answerError,
  answerRequestError,
  answerSuccess,
  isUserId,
  parseRoomRequest,
  type ErrorCode,
  type RequestLimits,
} from '../src/rooms/requests.js';

const LIMITS: RequestLimits = { maxMessageLength: 10, maxMembersPerRoom: 3 };

function parse(value: Record<string, unknown>, limits: RequestLimits = LIMITS): ReturnType<typeof parseRoomRequest> {
  return parseRoomRequest(value, limits);
}

/** Asserts a refusal with this code, and that it names the request's uuid and action. */
function refused(value: Record<string, unknown>, code: ErrorCode, pattern: RegExp): void {
  const result = parse(value);
  assert.ok('error' in result, `expected ${JSON.stringify(value).slice(0, 100)} to be refused, got ${JSON.stringify(result)}`);
  assert.equal(result.error, code);
  assert.match(result.message, pattern);
  assert.equal(result.uuid, value.uuid);
  assert.equal(result.action, value.action);
}

describe('isUserId', () => {
  test('accepts 1 to 64 characters without control characters', () => {
    for (const id of ['a', 'alice', 'x'.repeat(64), '😀'.repeat(64), 'Ünïcödé user', 'a b', 'user@example.com']) assert.equal(isUserId(id), true, id);
  });
  test('refuses the rest', () => {
    for (const id of ['', 'x'.repeat(65), '😀'.repeat(65), 'a\nb', 'a\tb', '\0', 'a\u007f', 'a\u0085', 'a\u009f', '\ud800', 5, null, undefined, ['a'], {}]) {
      assert.equal(isUserId(id), false, JSON.stringify(id));
    }
  });
});

describe('parseRoomRequest: uuid and action', () => {
  test('a request without a usable uuid is refused without uuid or action', () => {
    const bad: unknown[] = [undefined, null, 5, '', 'x'.repeat(65), 'has space', 'dot.ted', 'slash/', 'é', ['a'], {}];
    for (const uuid of bad) {
      const result = parse({ uuid, action: 'list_rooms' });
      assert.deepEqual(result, { error: 'bad_request', message: 'a request needs a "uuid": 1 to 64 characters from A-Z, a-z, 0-9, "_" and "-"' }, JSON.stringify(uuid));
    }
  });
  test('every uuid made of [A-Za-z0-9_-], 1 to 64 long, is usable', () => {
    for (const uuid of ['a', 'Z', '0', '_', '-', 'x'.repeat(64), 'aZ09_-', '550e8400-e29b-41d4-a716-446655440000']) {
      assert.deepEqual(parse({ uuid, action: 'list_rooms' }), { action: 'list_rooms', uuid });
    }
  });
  test('an action that is not a string is refused with the uuid and no action', () => {
    for (const action of [5, null, true, ['list_rooms'], {}]) {
      assert.deepEqual(parse({ uuid: 'u1', action }), { error: 'bad_request', message: '"action" must be a string', uuid: 'u1' });
    }
  });
  test('an unknown action is bad_request; it is echoed only if at most 64 long', () => {
    const result = parse({ uuid: 'u1', action: 'fly' });
    assert.ok('error' in result);
    assert.equal(result.error, 'bad_request');
    assert.equal(result.action, 'fly');
    assert.match(result.message, /unknown action/);
    for (const action of ['', 'error', 'Create_Room', 'x'.repeat(64)]) {
      const same = parse({ uuid: 'u1', action });
      assert.ok('error' in same && same.error === 'bad_request' && same.action === action, action);
    }
    const long = parse({ uuid: 'u1', action: 'x'.repeat(65) });
    assert.ok('error' in long);
    assert.equal(long.error, 'bad_request');
    assert.equal(long.uuid, 'u1');
    assert.equal('action' in long, false);
  });
  test('fields a request does not use are ignored', () => {
    assert.deepEqual(parse({ uuid: 'u1', action: 'list_rooms', room: 'nonsense', extra: [1] }), { action: 'list_rooms', uuid: 'u1' });
  });
});

describe('parseRoomRequest: each action', () => {
  test('authenticate needs a non-empty string token', () => {
    assert.deepEqual(parse({ uuid: 'u1', action: 'authenticate', token: 'a.b.c' }), { action: 'authenticate', uuid: 'u1', token: 'a.b.c' });
    for (const token of [undefined, '', 5, null, ['a']]) refused({ uuid: 'u1', action: 'authenticate', token }, 'bad_request', /"token" must be a non-empty string/);
  });

  test('create_room: name and users', () => {
    assert.deepEqual(parse({ uuid: 'u1', action: 'create_room', name: 'general', users: ['bob', 'carol'] }), {
      action: 'create_room',
      uuid: 'u1',
      name: 'general',
      users: ['bob', 'carol'],
    });
    // Repeats are dropped (the first kept, in order); an empty list is a room of one.
    assert.deepEqual(parse({ uuid: 'u1', action: 'create_room', name: 'n', users: ['bob', 'carol', 'bob', 'carol', 'dave'] }), {
      action: 'create_room',
      uuid: 'u1',
      name: 'n',
      users: ['bob', 'carol', 'dave'],
    });
    assert.deepEqual(parse({ uuid: 'u1', action: 'create_room', name: 'n', users: [] }), { action: 'create_room', uuid: 'u1', name: 'n', users: [] });
    // Names: 1 to 100 code points.
    const longest = '😀'.repeat(100);
    const ok = parse({ uuid: 'u1', action: 'create_room', name: longest, users: [] });
    assert.ok(!('error' in ok) && ok.action === 'create_room' && ok.name === longest);
    refused({ uuid: 'u1', action: 'create_room', name: 'x'.repeat(101), users: [] }, 'too_long', /"name" is longer than 100 characters/);
    refused({ uuid: 'u1', action: 'create_room', name: '😀'.repeat(101), users: [] }, 'too_long', /"name" is longer than 100 characters/);
    refused({ uuid: 'u1', action: 'create_room', name: '', users: [] }, 'bad_request', /"name" must not be empty/);
    refused({ uuid: 'u1', action: 'create_room', name: ' \t\n ', users: [] }, 'bad_request', /"name" must not be empty/);
    refused({ uuid: 'u1', action: 'create_room', name: 'a\ud800', users: [] }, 'bad_request', /"name" must be well-formed Unicode/);
    refused({ uuid: 'u1', action: 'create_room', users: [] }, 'bad_request', /"name" must be a string/);
    refused({ uuid: 'u1', action: 'create_room', name: 5, users: [] }, 'bad_request', /"name" must be a string/);
    // Users.
    refused({ uuid: 'u1', action: 'create_room', name: 'n' }, 'bad_request', /"users" must be an array of user ids/);
    refused({ uuid: 'u1', action: 'create_room', name: 'n', users: 'bob' }, 'bad_request', /"users" must be an array of user ids/);
    for (const user of ['', 'x'.repeat(65), 'a\nb', 5, null]) {
      refused({ uuid: 'u1', action: 'create_room', name: 'n', users: ['bob', user] }, 'bad_request', /"users" must hold user ids/);
    }
    // More different users than a room holds (LIMITS: 3) could never fit; repeats do not count.
    refused({ uuid: 'u1', action: 'create_room', name: 'n', users: ['a', 'b', 'c', 'd'] }, 'limit_reached', /a room holds at most 3 members/);
    assert.deepEqual(parse({ uuid: 'u1', action: 'create_room', name: 'n', users: ['a', 'b', 'c', 'a', 'b', 'c'] }), {
      action: 'create_room',
      uuid: 'u1',
      name: 'n',
      users: ['a', 'b', 'c'],
    });
  });

  test('add_users: room and a non-empty users', () => {
    assert.deepEqual(parse({ uuid: 'u1', action: 'add_users', room: 7, users: ['bob', 'bob'] }), { action: 'add_users', uuid: 'u1', room: 7, users: ['bob'] });
    refused({ uuid: 'u1', action: 'add_users', room: 7, users: [] }, 'bad_request', /"users" must name at least one user/);
    refused({ uuid: 'u1', action: 'add_users', room: 7 }, 'bad_request', /"users" must be an array/);
    refused({ uuid: 'u1', action: 'add_users', room: 7, users: ['a', 'b', 'c', 'd'] }, 'limit_reached', /at most 3 members/);
    refused({ uuid: 'u1', action: 'add_users', users: ['bob'] }, 'bad_request', /"room" must be a positive whole number/);
  });

  test('room: a positive safe integer, wherever it is asked for', () => {
    for (const action of ['add_users', 'leave_room', 'select_room', 'new_message']) {
      const base = { uuid: 'u1', action, users: ['bob'], text: 'hi' };
      for (const room of [undefined, null, 0, -1, 1.5, '7', Number.MAX_SAFE_INTEGER + 1, Infinity, NaN, [7], {}]) {
        refused({ ...base, room }, 'bad_request', /"room" must be a positive whole number/);
      }
      const ok = parse({ ...base, room: Number.MAX_SAFE_INTEGER });
      assert.ok(!('error' in ok), `${action} with the largest safe room id: ${JSON.stringify(ok)}`);
    }
  });

  test('leave_room and list_rooms', () => {
    assert.deepEqual(parse({ uuid: 'u1', action: 'leave_room', room: 1 }), { action: 'leave_room', uuid: 'u1', room: 1 });
    assert.deepEqual(parse({ uuid: 'u1', action: 'list_rooms' }), { action: 'list_rooms', uuid: 'u1' });
  });

  test('select_room: since is optional (absent or null), else a non-negative safe integer', () => {
    assert.deepEqual(parse({ uuid: 'u1', action: 'select_room', room: 3 }), { action: 'select_room', uuid: 'u1', room: 3 });
    assert.deepEqual(parse({ uuid: 'u1', action: 'select_room', room: 3, since: null }), { action: 'select_room', uuid: 'u1', room: 3 });
    assert.deepEqual(parse({ uuid: 'u1', action: 'select_room', room: 3, since: 0 }), { action: 'select_room', uuid: 'u1', room: 3, since: 0 });
    assert.deepEqual(parse({ uuid: 'u1', action: 'select_room', room: 3, since: 1_700_000_000_000_000 }), {
      action: 'select_room',
      uuid: 'u1',
      room: 3,
      since: 1_700_000_000_000_000,
    });
    for (const since of [-1, 0.5, '5', Number.MAX_SAFE_INTEGER + 1, true, [1]]) {
      refused({ uuid: 'u1', action: 'select_room', room: 3, since }, 'bad_request', /"since" must be a non-negative whole number/);
    }
  });

  test('new_message: text of 1 to maxMessageLength code points', () => {
    assert.deepEqual(parse({ uuid: 'u1', action: 'new_message', room: 3, text: 'hello' }), { action: 'new_message', uuid: 'u1', room: 3, text: 'hello' });
    const longest = '😀'.repeat(10); // 20 UTF-16 units, 10 characters: the limit
    assert.deepEqual(parse({ uuid: 'u1', action: 'new_message', room: 3, text: longest }), { action: 'new_message', uuid: 'u1', room: 3, text: longest });
    assert.deepEqual(parse({ uuid: 'u1', action: 'new_message', room: 3, text: ' x ' }), { action: 'new_message', uuid: 'u1', room: 3, text: ' x ' });
    refused({ uuid: 'u1', action: 'new_message', room: 3, text: 'x'.repeat(11) }, 'too_long', /"text" is longer than 10 characters/);
    refused({ uuid: 'u1', action: 'new_message', room: 3, text: '' }, 'bad_request', /"text" must not be empty/);
    refused({ uuid: 'u1', action: 'new_message', room: 3, text: '   ' }, 'bad_request', /"text" must not be empty/);
    refused({ uuid: 'u1', action: 'new_message', room: 3, text: '\udc00' }, 'bad_request', /"text" must be well-formed Unicode/);
    refused({ uuid: 'u1', action: 'new_message', room: 3 }, 'bad_request', /"text" must be a string/);
    refused({ uuid: 'u1', action: 'new_message', room: 3, text: { a: 1 } }, 'bad_request', /"text" must be a string/);
  });
});

describe('answers', () => {
  test('answerSuccess: uuid, action, status, then the fields in order', () => {
    assert.equal(answerSuccess('u1', 'authenticate', { user: 'alice' }), '{"uuid":"u1","action":"authenticate","status":"success","user":"alice"}');
    assert.equal(
      answerSuccess('u2', 'select_room', { room: { id: 1 }, room_messages: [], recovered: true }),
      '{"uuid":"u2","action":"select_room","status":"success","room":{"id":1},"room_messages":[],"recovered":true}',
    );
  });
  test('answerError: uuid, action, status "error", error, error_message', () => {
    assert.equal(
      answerError('u1', 'new_message', 'forbidden', 'you are not a member of room 5'),
      '{"uuid":"u1","action":"new_message","status":"error","error":"forbidden","error_message":"you are not a member of room 5"}',
    );
  });
  test('answerBadRequest: the form for a request with no usable uuid', () => {
    assert.equal(answerBadRequest('not valid JSON'), '{"action":"error","status":"error","error":"bad_request","error_message":"not valid JSON"}');
  });
  test('answerRequestError picks the form from what the request had', () => {
    const noUuid = parse({ action: 'list_rooms' });
    assert.ok('error' in noUuid);
    assert.equal(answerRequestError(noUuid), answerBadRequest(noUuid.message));
    const withUuid = parse({ uuid: 'u9', action: 'new_message', room: 1, text: '' });
    assert.ok('error' in withUuid);
    assert.equal(answerRequestError(withUuid), '{"uuid":"u9","action":"new_message","status":"error","error":"bad_request","error_message":"\\"text\\" must not be empty"}');
    const noAction = parse({ uuid: 'u9', action: 5 });
    assert.ok('error' in noAction);
    assert.equal(answerRequestError(noAction), '{"uuid":"u9","action":"error","status":"error","error":"bad_request","error_message":"\\"action\\" must be a string"}');
    // The worker's own codes go through the same builder.
    assert.equal(
      answerRequestError({ error: 'rate_limited', message: 'slow down', uuid: 'u3', action: 'list_rooms' }),
      '{"uuid":"u3","action":"list_rooms","status":"error","error":"rate_limited","error_message":"slow down"}',
    );
  });
  test('a lone surrogate in an echoed action still makes valid JSON', () => {
    const result = parse({ uuid: 'u1', action: 'a\ud800' });
    assert.ok('error' in result);
    const text = answerRequestError(result);
    assert.equal(JSON.parse(text).action, 'a\ud800');
    assert.ok(!/[\ud800-\udfff]/.test(text.replace(/\\u[0-9a-f]{4}/g, '')), 'the surrogate is escaped, not raw');
  });
});
