// The rooms' refusals (chat-protocol.md, "Error codes") through the real server: every error code
// the protocol lists, produced for real — bad_request (text that is not JSON, no usable uuid, a
// malformed field), unauthenticated, bad_token and token_expired (wrong key, expired, alg none,
// alg HS512, oversized, malformed, nbf in the future...), already_authenticated, not_found,
// forbidden, too_long, limit_reached (members per room, rooms per user), rate_limited and
// unavailable (rooms disabled) — each with its exact answer, and each followed by a check that the
// connection is still open and that nothing changed: "An error never closes the connection and
// never changes any state."
//
// Three servers: the limits set small on 4 workers; a rate of 5 requests per second with a burst of
// 3 on one worker (the rate is per connection, so one worker shows it as well as four); and one
// without CHAT_SECRET.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { closeConnections, messageOf, newSecret, newUuid, RoomsConnection, sleep, tokenFor, type Frame, type RoomObject } from './helpers/rooms-client.js';
import { startServer, type RunningServer } from './helpers/server.js';

const TIMEOUT = { timeout: 30_000 };
const MAX_MESSAGE_LENGTH = 40;
const MAX_ROOM_MEMBERS = 4;
const MAX_ROOMS_PER_USER = 3;
const RATE_BURST = 3;
const RATE_PER_SECOND = 5;

/** The exact answer to a refused request. */
function refusal(uuid: string, action: string, error: string, answer: Frame): Record<string, unknown> {
  assert.equal(typeof answer.error_message, 'string', `an error_message: ${JSON.stringify(answer)}`);
  assert.ok((answer.error_message as string).length > 0);
  return { uuid, action, status: 'error', error, error_message: answer.error_message };
}

/** Sends a request and checks that it is refused with `error`, exactly; returns the answer. */
async function refused(connection: RoomsConnection, action: string, fields: Record<string, unknown>, error: string): Promise<Frame> {
  const uuid = newUuid('refused');
  const answer = await connection.request(action, fields, { uuid });
  assert.deepEqual(answer, refusal(uuid, action, error, answer), `${action} ${JSON.stringify(fields).slice(0, 120)}`);
  return answer;
}

/** Sends raw JSON (or text) and returns the next {"action": "error"} frame. */
async function unmatched(connection: RoomsConnection, text: string): Promise<Frame> {
  const answer = connection.next((m) => m.action === 'error', `the answer to ${JSON.stringify(text).slice(0, 80)}`);
  connection.chat.sendText(text);
  return answer;
}

const base64url = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value), 'utf8').toString('base64url');
/** A token with any header, signed with `algorithm` (an HMAC's hash) over the segments as written. */
function craftToken(header: unknown, claims: unknown, secret: string, hash: 'sha256' | 'sha512' | null): string {
  const input = `${base64url(header)}.${base64url(claims)}`;
  return `${input}.${hash === null ? '' : createHmac(hash, secret).update(input).digest('base64url')}`;
}

/** A valid token of exactly `length` characters (padded with an extra claim). */
function tokenOfLength(secret: string, user: string, length: number): string {
  // The length grows with the pad by 1 or 2 characters a byte (base64), so a pad may skip
  // `length`; a longer claim name shifts the steps by one.
  for (const key of ['p', 'pp', 'ppp']) {
    const make = (pad: number): string => tokenFor(secret, user, { [key]: 'x'.repeat(pad) });
    let low = 0;
    let high = length; // make(high) is surely longer
    while (low < high) {
      const middle = Math.floor((low + high) / 2);
      if (make(middle).length < length) low = middle + 1;
      else high = middle;
    }
    if (make(low).length === length) return make(low);
  }
  throw new Error(`no token of ${length} characters`);
}

const secret = newSecret();
/**
 * The three servers start together when the file's tests begin (each describe awaits its own), so
 * that the single-worker ones cost no time of their own.
 */
let starting: Record<'limits' | 'rate' | 'disabled', Promise<RunningServer>>;
before(() => {
  starting = {
    limits: startServer({
      args: ['--workers', '4'],
      env: {
        CHAT_SECRET: secret,
        CHAT_MAX_MESSAGE_LENGTH: String(MAX_MESSAGE_LENGTH),
        CHAT_MAX_ROOM_MEMBERS: String(MAX_ROOM_MEMBERS),
        CHAT_MAX_ROOMS_PER_USER: String(MAX_ROOMS_PER_USER),
      },
    }),
    rate: startServer({ args: ['--workers', '1'], env: { CHAT_SECRET: secret, CHAT_RATE_PER_SECOND: String(RATE_PER_SECOND), CHAT_RATE_BURST: String(RATE_BURST) } }),
    disabled: startServer({ args: ['--workers', '1'], env: { CHAT_SECRET: '' } }),
  };
  // Awaited by the describes' before hooks; this only keeps a failure from being reported twice.
  for (const started of Object.values(starting)) started.catch(() => {});
});

describe('rooms refusals on 4 workers (small limits)', () => {
  let server: RunningServer;
  const connections: RoomsConnection[] = [];
  const open = async (name: string): Promise<RoomsConnection> => {
    const connection = await RoomsConnection.open(server.wsUrl, name);
    connections.push(connection);
    return connection;
  };
  const signIn = async (user: string): Promise<RoomsConnection> => {
    const connection = await RoomsConnection.signIn(server.wsUrl, secret, user);
    connections.push(connection);
    return connection;
  };
  before(async () => {
    server = await starting.limits;
  });
  after(async () => {
    await closeConnections(connections);
    await server?.stop();
  });

  test('text that is not JSON: {"action": "error", "status": "error", "error": "bad_request", "error_message", "sender": "server"}', TIMEOUT, async () => {
    const ann = await signIn('ann');
    for (const text of ['{not json', '', 'hello', '{"uuid": "a", "action": ', '[1, 2']) {
      const answer = await unmatched(ann, text);
      assert.deepEqual(answer, { action: 'error', status: 'error', error: 'bad_request', error_message: answer.error_message, sender: 'server' }, JSON.stringify(text));
      assert.match(answer.error_message as string, /JSON/);
    }
    assert.ok(ann.chat.isOpen);
    await ann.ok('create_room', { name: 'still here', users: [] });
  });

  test('a request without a usable uuid: {"action": "error", "status": "error", "error": "bad_request", "error_message"}', TIMEOUT, async () => {
    const bea = await signIn('bea');
    const before = await bea.ok('list_rooms');
    const bad: unknown[] = [undefined, '', 'x'.repeat(65), 'has space', 'é', 'a.b', 42, null, ['a']];
    for (const uuid of bad) {
      for (const request of [{ action: 'list_rooms' }, { action: 'create_room', name: 'never', users: [] }]) {
        const answer = await unmatched(bea, JSON.stringify(uuid === undefined ? request : { uuid, ...request }));
        assert.deepEqual(answer, { action: 'error', status: 'error', error: 'bad_request', error_message: answer.error_message }, `uuid ${JSON.stringify(uuid)}`);
        assert.match(answer.error_message as string, /uuid/);
      }
    }
    assert.deepEqual((await bea.ok('list_rooms')).rooms, before.rooms, 'no room was created');
    assert.deepEqual(before.rooms, []);
    // The longest uuid the protocol allows is fine.
    const longest = 'A-z_0'.repeat(13).slice(0, 64);
    assert.equal((await bea.ok('list_rooms', {}, longest)).uuid, longest);
  });

  test('a malformed field: bad_request with the request\'s uuid and action, and nothing changed', TIMEOUT, async () => {
    const cyd = await signIn('cyd');
    const room = (await cyd.ok('create_room', { name: 'Fields', users: ['dot'] })).room as RoomObject;
    const listed = await cyd.ok('list_rooms');
    const cases: Array<[string, Record<string, unknown>]> = [
      ['authenticate', {}], // even signed in: the fields are checked first
      ['authenticate', { token: '' }],
      ['authenticate', { token: 7 }],
      ['create_room', { users: [] }],
      ['create_room', { name: '', users: [] }],
      ['create_room', { name: ' \t ', users: [] }],
      ['create_room', { name: 5, users: [] }],
      ['create_room', { name: 'lone \ud800 surrogate', users: [] }],
      ['create_room', { name: 'ok' }],
      ['create_room', { name: 'ok', users: 'dot' }],
      ['create_room', { name: 'ok', users: [''] }],
      ['create_room', { name: 'ok', users: [5] }],
      ['create_room', { name: 'ok', users: ['a\u0000b'] }],
      ['create_room', { name: 'ok', users: ['a\u0085b'] }],
      ['create_room', { name: 'ok', users: ['x'.repeat(65)] }],
      ['add_users', { room: String(room.id), users: ['eli'] }],
      ['add_users', { room: 0, users: ['eli'] }],
      ['add_users', { room: -room.id, users: ['eli'] }],
      ['add_users', { room: room.id + 0.5, users: ['eli'] }],
      ['add_users', { room: 2 ** 53, users: ['eli'] }],
      ['add_users', { room: room.id, users: [] }],
      ['add_users', { room: room.id }],
      ['leave_room', {}],
      ['leave_room', { room: null }],
      ['select_room', { room: room.id, since: -1 }],
      ['select_room', { room: room.id, since: '0' }],
      ['select_room', { room: room.id, since: 1.5 }],
      ['new_message', { room: room.id }],
      ['new_message', { room: room.id, text: '' }],
      ['new_message', { room: room.id, text: '   ' }],
      ['new_message', { room: room.id, text: 5 }],
      ['new_message', { room: room.id, text: 'lone \udfff' }],
      ['new_message', { text: 'where?' }],
      ['delete_room', { room: room.id }], // an unknown action is named back
    ];
    for (const [action, fields] of cases) await refused(cyd, action, fields, 'bad_request');
    // An action that is not a string cannot be named back: the answer's action is "error".
    const uuid = newUuid();
    const answer = cyd.next((m) => m.uuid === uuid, 'the answer to a numeric action');
    cyd.send({ uuid, action: 7 });
    assert.deepEqual(await answer, refusal(uuid, 'error', 'bad_request', await answer));
    // Nor is an unknown action longer than 64 characters: the answer does not amplify what was sent.
    const longUuid = newUuid();
    const longAnswer = cyd.next((m) => m.uuid === longUuid, 'the answer to a long unknown action');
    cyd.send({ uuid: longUuid, action: 'x'.repeat(65) });
    assert.deepEqual(await longAnswer, refusal(longUuid, 'error', 'bad_request', await longAnswer));

    assert.ok(cyd.chat.isOpen);
    assert.deepEqual((await cyd.ok('list_rooms')).rooms, listed.rooms, 'nothing changed');
    const history = await cyd.ok('select_room', { room: room.id });
    assert.deepEqual(history.room_messages, []);
    assert.deepEqual(history.room, room);
  });

  test('unauthenticated: every room action before authenticate; the lobby works, and authenticate then does', TIMEOUT, async () => {
    const guest = await open('guest');
    const cases: Array<[string, Record<string, unknown>]> = [
      ['create_room', { name: 'early', users: [] }],
      ['add_users', { room: 1, users: ['x'] }],
      ['leave_room', { room: 1 }],
      ['list_rooms', {}],
      ['select_room', { room: 1 }],
      ['new_message', { room: 1, text: 'early' }],
    ];
    for (const [action, fields] of cases) {
      const answer = await refused(guest, action, fields, 'unauthenticated');
      assert.match(answer.error_message as string, /authenticate/);
    }
    guest.chat.say('guest', 'lobby still open');
    await guest.seen((m) => m.sender === 'guest' && m.message === 'lobby still open' && typeof m.id === 'number', 'the lobby message back');
    const answer = await guest.request('authenticate', { token: tokenFor(secret, 'gil') });
    assert.equal(answer.status, 'success');
    assert.deepEqual((await guest.ok('list_rooms')).rooms, [], 'the early create_room made nothing');
  });

  test('already_authenticated: a second authenticate, even for another user, changes nothing', TIMEOUT, async () => {
    const hal = await signIn('hal');
    for (const user of ['ivo', 'hal']) {
      const answer = await refused(hal, 'authenticate', { token: tokenFor(secret, user) }, 'already_authenticated');
      assert.match(answer.error_message as string, /new connection/);
    }
    const created = await hal.ok('create_room', { name: 'whose?', users: [] });
    assert.deepEqual((created.room as RoomObject).users, ['hal'], 'still hal');
  });

  test('bad_token and token_expired: each bad token refused, the connection left unauthenticated, then a good one accepted', TIMEOUT, async () => {
    const tom = await open('tom');
    const now = Math.floor(Date.now() / 1000);
    const good = tokenFor(secret, 'tom');
    const [header, payload, signature] = good.split('.') as [string, string, string];
    const cases: Array<[string, unknown, string]> = [
      ['signed with another key', tokenFor(newSecret(), 'tom'), 'bad_token'],
      ['claims altered after signing', `${header}.${base64url({ sub: 'admin' })}.${signature}`, 'bad_token'],
      ['expired a minute ago', tokenFor(secret, 'tom', { exp: now - 60 }), 'token_expired'],
      ['expiring this very second (exp <= now)', tokenFor(secret, 'tom', { exp: now }), 'token_expired'],
      ['alg none, unsigned', craftToken({ alg: 'none', typ: 'JWT' }, { sub: 'tom' }, secret, null), 'bad_token'],
      ['alg none, with a valid HS256 signature', craftToken({ alg: 'none', typ: 'JWT' }, { sub: 'tom' }, secret, 'sha256'), 'bad_token'],
      ['alg HS512, signed with the right secret', craftToken({ alg: 'HS512', typ: 'JWT' }, { sub: 'tom' }, secret, 'sha512'), 'bad_token'],
      ['no alg', craftToken({ typ: 'JWT' }, { sub: 'tom' }, secret, 'sha256'), 'bad_token'],
      ['crit', craftToken({ alg: 'HS256', crit: ['b64'], b64: false }, { sub: 'tom' }, secret, 'sha256'), 'bad_token'],
      ['oversized (4097 characters), though correctly signed', tokenOfLength(secret, 'tom', 4097), 'bad_token'],
      ['malformed: one segment', 'not-a-token', 'bad_token'],
      ['malformed: two segments', `${header}.${payload}`, 'bad_token'],
      ['malformed: four segments', `${good}.${signature}`, 'bad_token'],
      ['malformed: empty segments', '..', 'bad_token'],
      ['malformed: base64 padding', `${header}=.${payload}.${signature}`, 'bad_token'],
      ['malformed: characters outside base64url', `${header}.${payload}.${signature.slice(0, -1)}+`, 'bad_token'],
      ['malformed: a header that is not JSON', craftToken('hello', { sub: 'tom' }, secret, 'sha256'), 'bad_token'],
      ['nbf in the future', tokenFor(secret, 'tom', { nbf: now + 3600 }), 'bad_token'],
      ['no sub', craftToken({ alg: 'HS256', typ: 'JWT' }, { name: 'tom' }, secret, 'sha256'), 'bad_token'],
      ['sub empty', tokenFor(secret, ''), 'bad_token'],
      ['sub of 65 characters', tokenFor(secret, 'x'.repeat(65)), 'bad_token'],
      ['sub with a control character', tokenFor(secret, 'to\nm'), 'bad_token'],
      ['sub a number', craftToken({ alg: 'HS256', typ: 'JWT' }, { sub: 42 }, secret, 'sha256'), 'bad_token'],
      ['exp not a number', tokenFor(secret, 'tom', { exp: 'tomorrow' }), 'bad_token'],
      ['an audience', tokenFor(secret, 'tom', { aud: 'chat' }), 'bad_token'],
    ];
    for (const [what, token, error] of cases) {
      const uuid = newUuid('token');
      const answer = await tom.request('authenticate', { token }, { uuid });
      assert.deepEqual(answer, refusal(uuid, 'authenticate', error, answer), what);
    }
    assert.match((await refused(tom, 'authenticate', { token: tokenOfLength(secret, 'tom', 4097) }, 'bad_token')).error_message as string, /4096/);
    await refused(tom, 'list_rooms', {}, 'unauthenticated'); // none of them signed it in
    assert.ok(tom.chat.isOpen);

    // The bounds are exact: 4096 characters, an nbf in the past and an exp in the future are fine.
    for (const token of [tokenOfLength(secret, 'tom', 4096), tokenFor(secret, 'tom', { nbf: now - 5, exp: now + 3600, iat: now })]) {
      const connection = await open('tom, again');
      const answer = await connection.request('authenticate', { token }, { uuid: 'good-token' });
      assert.deepEqual(answer, { uuid: 'good-token', action: 'authenticate', status: 'success', user: 'tom' });
    }
    const answer = await tom.request('authenticate', { token: good }, { uuid: 'finally' });
    assert.deepEqual(answer, { uuid: 'finally', action: 'authenticate', status: 'success', user: 'tom' });
  });

  test('not_found: a room that does not exist, for every action that names one', TIMEOUT, async () => {
    const ida = await signIn('ida');
    const room = (await ida.ok('create_room', { name: 'Real', users: [] })).room as RoomObject;
    const listed = await ida.ok('list_rooms');
    for (const missing of [1, room.id + 1_000_000_000]) {
      for (const [action, fields] of [['select_room', {}], ['select_room', { since: 0 }], ['new_message', { text: 'hello?' }], ['add_users', { users: ['jo'] }], ['leave_room', {}]] as const) {
        const answer = await refused(ida, action, { room: missing, ...fields }, 'not_found');
        assert.match(answer.error_message as string, new RegExp(String(missing)));
      }
    }
    assert.deepEqual((await ida.ok('list_rooms')).rooms, listed.rooms, 'nothing changed');
  });

  test('forbidden: a room the requester is not a member of; the members hear nothing of it', TIMEOUT, async () => {
    const kai = await signIn('kai');
    const lia = await signIn('lia');
    const mal = await signIn('mal');
    const room = (await kai.ok('create_room', { name: 'Private', users: ['lia'] })).room as RoomObject;
    await kai.say(room.id, 'secret plans');
    const before = await kai.ok('select_room', { room: room.id });
    for (const [action, fields] of [['select_room', {}], ['select_room', { since: 0 }], ['new_message', { text: 'let me in' }], ['add_users', { users: ['mal'] }], ['leave_room', {}]] as const) {
      await refused(mal, action, { room: room.id, ...fields }, 'forbidden');
    }
    for (const connection of [kai, lia, mal]) await connection.barrier();
    const afterwards = await kai.ok('select_room', { room: room.id });
    assert.deepEqual({ ...afterwards, uuid: '' }, { ...before, uuid: '' }, 'the room and its messages unchanged');
    assert.deepEqual((await mal.ok('list_rooms')).rooms, [], 'mal was not added');
    assert.equal(kai.roomUpdates(room.id).length, 1, 'kai: only the creation');
    assert.equal(lia.roomUpdates(room.id).length, 1, 'lia: only the creation');
    assert.equal(lia.messages(room.id).length, 1, 'lia: only kai\'s message');
    assert.deepEqual(mal.received.filter((m) => JSON.stringify(m).includes('secret plans')), []);
  });

  test(`too_long: a text over CHAT_MAX_MESSAGE_LENGTH (${MAX_MESSAGE_LENGTH}) characters, a name over 100; characters are code points`, TIMEOUT, async () => {
    const ned = await signIn('ned');
    const room = (await ned.ok('create_room', { name: 'Lengths', users: [] })).room as RoomObject;
    const tooLong = await refused(ned, 'new_message', { room: room.id, text: 'x'.repeat(MAX_MESSAGE_LENGTH + 1) }, 'too_long');
    assert.match(tooLong.error_message as string, new RegExp(String(MAX_MESSAGE_LENGTH)));
    await refused(ned, 'new_message', { room: room.id, text: '🙂'.repeat(MAX_MESSAGE_LENGTH + 1) }, 'too_long');
    const full = await ned.say(room.id, 'x'.repeat(MAX_MESSAGE_LENGTH));
    const emoji = await ned.say(room.id, '🙂'.repeat(MAX_MESSAGE_LENGTH)); // 80 UTF-16 units, 40 characters
    // Nothing was kept under a refused request's uuid: the same uuid with a shorter text is a new message.
    const uuid = newUuid('long');
    assert.equal((await ned.request('new_message', { room: room.id, text: 'y'.repeat(MAX_MESSAGE_LENGTH + 1) }, { uuid })).error, 'too_long');
    const shorter = await ned.say(room.id, 'y', uuid);
    assert.deepEqual((await ned.ok('select_room', { room: room.id })).room_messages, [full, emoji, shorter]);

    const longName = await refused(ned, 'create_room', { name: 'n'.repeat(101), users: [] }, 'too_long');
    assert.match(longName.error_message as string, /100/);
    const named = await ned.ok('create_room', { name: 'é'.repeat(100), users: [] });
    assert.equal((named.room as RoomObject).name, 'é'.repeat(100));
    assert.equal(((await ned.ok('list_rooms')).rooms as unknown[]).length, 2);
  });

  test(`limit_reached: more than CHAT_MAX_ROOM_MEMBERS (${MAX_ROOM_MEMBERS}) members; nothing changed`, TIMEOUT, async () => {
    const ora = await signIn('ora');
    const others = ['pam', 'quinn', 'ruth', 'sol', 'ted'];
    // Five others: refused by the worker's check; four others and the requester: by the primary's.
    await refused(ora, 'create_room', { name: 'Crowd', users: others }, 'limit_reached');
    const full = await refused(ora, 'create_room', { name: 'Crowd', users: others.slice(0, 4) }, 'limit_reached');
    assert.match(full.error_message as string, new RegExp(String(MAX_ROOM_MEMBERS)));
    assert.deepEqual((await ora.ok('list_rooms')).rooms, []);

    const room = (await ora.ok('create_room', { name: 'Four', users: others.slice(0, 3) })).room as RoomObject;
    assert.equal(room.users.length, MAX_ROOM_MEMBERS);
    await refused(ora, 'add_users', { room: room.id, users: ['ted'] }, 'limit_reached');
    await ora.barrier();
    assert.equal(ora.roomUpdates(room.id).length, 1, 'no room_update for the refused addition');
    const history = await ora.ok('select_room', { room: room.id });
    assert.deepEqual((history.room as RoomObject).users, ['ora', 'pam', 'quinn', 'ruth']);
  });

  test(`limit_reached: more than CHAT_MAX_ROOMS_PER_USER (${MAX_ROOMS_PER_USER}) rooms, for the requester or for a user added`, TIMEOUT, async () => {
    const rex = await signIn('rex');
    const sue = await signIn('sue');
    for (let i = 1; i <= MAX_ROOMS_PER_USER; i++) await rex.ok('create_room', { name: `rex ${i}`, users: [] });
    const listed = await rex.ok('list_rooms');
    const own = await refused(rex, 'create_room', { name: 'one too many', users: [] }, 'limit_reached');
    assert.match(own.error_message as string, /you are in the most rooms allowed \(3\)/);

    // sue may not put rex in a fourth room, neither at creation nor by adding him.
    const byCreation = await refused(sue, 'create_room', { name: 'with rex', users: ['rex'] }, 'limit_reached');
    assert.match(byCreation.error_message as string, /"rex" is in the most rooms allowed/);
    const room = (await sue.ok('create_room', { name: 'without rex', users: [] })).room as RoomObject;
    await refused(sue, 'add_users', { room: room.id, users: ['uma', 'rex'] }, 'limit_reached');
    assert.deepEqual(((await sue.ok('select_room', { room: room.id })).room as RoomObject).users, ['sue'], 'uma was not added either');
    assert.deepEqual((await rex.ok('list_rooms')).rooms, listed.rooms, 'rex\'s rooms unchanged');
    await rex.barrier();
    assert.equal(rex.roomUpdates(room.id).length, 0);
  });
});

describe(`rooms rate limit: CHAT_RATE_PER_SECOND=${RATE_PER_SECOND}, CHAT_RATE_BURST=${RATE_BURST}`, () => {
  let server: RunningServer;
  const connections: RoomsConnection[] = [];
  before(async () => {
    server = await starting.rate;
  });
  after(async () => {
    await closeConnections(connections);
    await server?.stop();
  });

  /** The most requests a bucket can let through in `elapsedMs`: its size, and what refills meanwhile. */
  const allowedIn = (elapsedMs: number): number => RATE_BURST + Math.floor((elapsedMs * RATE_PER_SECOND) / 1000);

  /** Sends the request again every 100 ms while it is answered rate_limited (a refused one costs no token). */
  async function whenAllowed(connection: RoomsConnection, action: string, fields: Record<string, unknown>, uuid?: string): Promise<Frame> {
    for (let attempt = 0; attempt < 100; attempt++) {
      const answer = await connection.request(action, fields, uuid === undefined ? {} : { uuid });
      if (answer.error !== 'rate_limited') return answer;
      await sleep(100);
    }
    throw new Error(`${action} still rate_limited after 100 attempts`);
  }

  /**
   * Sends `requests` in one go, each with its own uuid, and resolves with their answers, in order,
   * and the milliseconds from the first send to the last answer.
   */
  async function burst(connection: RoomsConnection, prefix: string, requests: Array<Record<string, unknown>>): Promise<{ answers: Frame[]; uuids: string[]; elapsedMs: number }> {
    const uuids = requests.map((_, i) => `${prefix}-${i}`);
    const answered = Promise.all(uuids.map((uuid) => connection.next((m) => m.uuid === uuid, `the answer to ${uuid}`)));
    const start = Date.now();
    for (const [i, request] of requests.entries()) connection.send({ uuid: uuids[i], ...request });
    const answers = await answered;
    return { answers, uuids, elapsedMs: Date.now() - start };
  }

  test('requests over the bucket are answered rate_limited and change nothing; malformed ones cost a token too; the lobby is not limited', TIMEOUT, async () => {
    const vic = await RoomsConnection.signIn(server.wsUrl, secret, 'vic');
    connections.push(vic);
    const room = (await whenAllowed(vic, 'create_room', { name: 'Burst', users: [] })).room as RoomObject;
    assert.ok(room, 'created');

    // Ten at once. The bucket never holds more than 3 tokens and gains 5 per second, so at most
    // 3 + 5 × (seconds the burst took) can pass: 3 unless the burst took 200 ms, and the rest are refused.
    const a = await burst(vic, 'burst-a', Array.from({ length: 10 }, (_, i) => ({ action: 'new_message', room: room.id, text: `burst ${i}` })));
    const limited = a.uuids.filter((_, i) => a.answers[i]!.error === 'rate_limited');
    const accepted = a.answers.filter((answer) => answer.status === 'success');
    assert.equal(limited.length + accepted.length, 10, 'each answered success or rate_limited');
    assert.ok(accepted.length <= allowedIn(a.elapsedMs), `${accepted.length} passed in ${a.elapsedMs} ms`);
    assert.ok(limited.length >= 1, `some were over the rate (the ten took ${a.elapsedMs} ms)`);
    for (const [i, answer] of a.answers.entries()) {
      if (answer.status === 'success') continue;
      assert.deepEqual(answer, refusal(a.uuids[i]!, 'new_message', 'rate_limited', answer));
      assert.match(answer.error_message as string, new RegExp(`more than ${RATE_PER_SECOND} requests per second`));
    }

    // Lobby messages are not rate-limited: five at once, with the bucket empty, all come back.
    for (let i = 0; i < 5; i++) vic.chat.say('vic', `lobby ${i}`);
    await vic.seen((m) => m.sender === 'vic' && m.message === 'lobby 4' && typeof m.id === 'number', 'the fifth lobby message back');
    assert.equal(vic.received.filter((m) => m.sender === 'vic' && typeof m.id === 'number').length, 5);

    // Five malformed requests, then five good ones: refusing costs a token as well, so the
    // malformed ones alone use up the bucket, and at most what refilled meanwhile passes.
    await whenAllowed(vic, 'list_rooms', {});
    const b = await burst(vic, 'burst-b', [
      ...Array.from({ length: 5 }, () => ({ action: 'new_message', room: room.id, text: '' })),
      ...Array.from({ length: 5 }, (_, i) => ({ action: 'new_message', room: room.id, text: `second burst ${i}` })),
    ]);
    for (const [i, answer] of b.answers.entries()) {
      const expected = answer.error === 'rate_limited' ? 'rate_limited' : i < 5 ? 'bad_request' : 'success';
      if (expected === 'success') assert.equal(answer.status, 'success', JSON.stringify(answer));
      else assert.deepEqual(answer, refusal(b.uuids[i]!, 'new_message', expected, answer));
    }
    const notLimited = b.answers.filter((answer) => answer.error !== 'rate_limited').length;
    assert.ok(notLimited <= allowedIn(b.elapsedMs), `${notLimited} were not rate_limited in ${b.elapsedMs} ms`);
    accepted.push(...b.answers.filter((answer) => answer.status === 'success'));

    const stored = (await whenAllowed(vic, 'select_room', { room: room.id })).room_messages as unknown[];
    assert.deepEqual(stored, accepted.map(messageOf), 'exactly the accepted messages, in order');
    // A refused message was not stored under its uuid: retried, it is a new message.
    const retried = await whenAllowed(vic, 'new_message', { room: room.id, text: 'burst again' }, limited[0]);
    assert.equal(retried.status, 'success', JSON.stringify(retried));
    assert.equal(messageOf(retried).text, 'burst again');
    assert.ok(vic.chat.isOpen);
  });
});

describe('rooms without CHAT_SECRET', () => {
  let server: RunningServer;
  const connections: RoomsConnection[] = [];
  before(async () => {
    server = await starting.disabled;
  });
  after(async () => {
    await closeConnections(connections);
    await server?.stop();
  });

  test('every rooms request answers unavailable, saying how to enable rooms; the lobby works', TIMEOUT, async () => {
    const wyn = await RoomsConnection.open(server.wsUrl, 'wyn');
    connections.push(wyn);
    const answer = await refused(wyn, 'authenticate', { token: tokenFor(newSecret(), 'wyn') }, 'unavailable');
    assert.match(answer.error_message as string, /CHAT_SECRET/);
    // Not "unauthenticated": signing in cannot help here, and the answer says what can.
    const listed = await refused(wyn, 'list_rooms', {}, 'unavailable');
    assert.equal(listed.error_message, answer.error_message);
    wyn.chat.say('wyn', 'the lobby needs no secret');
    await wyn.seen((m) => m.message === 'the lobby needs no secret' && typeof m.id === 'number', 'the lobby message back');
    assert.ok(wyn.chat.isOpen);
  });
});

describe('a token\'s exp ends the session it opened', () => {
  let server: RunningServer;
  const connections: RoomsConnection[] = [];
  before(async () => {
    server = await startServer({ args: ['--workers', '2'], env: { CHAT_SECRET: secret } });
  });
  after(async () => {
    await closeConnections(connections);
    await server?.stop();
  });

  test('after exp: no more room messages, requests answer token_expired, and a new token signs in again', TIMEOUT, async () => {
    const rae = await RoomsConnection.signIn(server.wsUrl, secret, 'rae');
    const sid = await RoomsConnection.open(server.wsUrl, 'sid');
    connections.push(rae, sid);
    const expiresAt = Math.ceil(Date.now() / 1000) + 2;
    const signedIn = await sid.request('authenticate', { token: tokenFor(secret, 'sid', { exp: expiresAt }) });
    assert.equal(signedIn.status, 'success');
    const room = (await rae.ok('create_room', { name: 'short-lived', users: ['sid'] })).room as { id: number };
    await sid.seen((m) => m.action === 'room_update' && (m.room as { id: number }).id === room.id, 'sid hears of the room');
    const before = await rae.say(room.id, 'before exp');
    await sid.seen((m) => m.action === 'new_message' && messageOf(m).id === before.id, 'sid gets the message sent before exp');

    // Past exp (the token's second, plus a margin for the timer): the session is over.
    while (Date.now() < expiresAt * 1000 + 300) await sleep(100);
    const late = await rae.say(room.id, 'after exp');
    await rae.barrier();
    const expired = await refused(sid, 'list_rooms', {}, 'token_expired');
    assert.match(expired.error_message as string, /expired/);
    assert.equal(sid.messages(room.id).some((m) => m.id === late.id), false, 'nothing said after exp reached sid');
    assert.ok(sid.chat.isOpen, 'the connection stays open: the lobby is still there');

    const again = await sid.request('authenticate', { token: tokenFor(secret, 'sid') });
    assert.equal(again.status, 'success', JSON.stringify(again));
    const history = await sid.ok('select_room', { room: room.id, since: before.id });
    assert.deepEqual((history.room_messages as Array<{ id: number }>).map((m) => m.id), [late.id], 'what it missed, with since');
  });
});
