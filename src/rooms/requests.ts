// The rooms protocol's requests and answers (/work/shared/chat-protocol.md, "Rooms"), as text.
//
// A worker reads a client's text frame, parses the JSON, and when the object has an "action" it is
// a rooms request: parseRoomRequest checks it field by field and returns either a typed request or
// what is wrong, with the protocol's error code. Only checked requests go on to the RoomService in
// the primary, which therefore never sees a malformed field. The answer builders write the exact
// JSON the protocol specifies, so every answer, from the worker or from the service, has the same
// shape: {"uuid", "action", "status", ...} and, on error, "error" then "error_message".
//
// The checks, as the protocol states them:
//   uuid    a string of 1–64 characters from [A-Za-z0-9_-]; without one, the answer is the
//           {"action": "error", ...} form, since nothing can tell the client which request failed
//   room    a room id: a positive safe integer
//   since   a message id: a non-negative safe integer; optional (absent or null)
//   name    1–100 characters (code points), well-formed Unicode, not only spaces
//   text    1–maxMessageLength characters, the same
//   users   an array of user ids (1–64 characters, no control characters), repeats dropped,
//           at most maxMembersPerRoom different ones (more could never fit in a room)
//   token   a non-empty string (its signature and claims are the token verifier's job)
// Where the protocol is silent, as the lobby does and as Slack would: a name or a text made only
// of white space is refused (`bad_request`), and fields a request does not use are ignored, so
// that a newer client can talk to an older server.
import { MAX_USER_ID_LENGTH, userIdProblem } from '../jwt.js';
import { characters } from '../text.js';

/** The protocol's error codes ("Error codes"). */
export type ErrorCode =
  | 'bad_request'
  | 'unauthenticated'
  | 'bad_token'
  | 'token_expired'
  | 'already_authenticated'
  | 'not_found'
  | 'forbidden'
  | 'too_long'
  | 'rate_limited'
  | 'limit_reached'
  | 'unavailable';

export const MAX_UUID_LENGTH = 64;
export const MAX_ROOM_NAME_LENGTH = 100;

export interface AuthenticateRequest { readonly action: 'authenticate'; readonly uuid: string; readonly token: string }
export interface CreateRoomRequest { readonly action: 'create_room'; readonly uuid: string; readonly name: string; readonly users: readonly string[] }
export interface AddUsersRequest { readonly action: 'add_users'; readonly uuid: string; readonly room: number; readonly users: readonly string[] }
export interface LeaveRoomRequest { readonly action: 'leave_room'; readonly uuid: string; readonly room: number }
export interface ListRoomsRequest { readonly action: 'list_rooms'; readonly uuid: string }
/** `since` is undefined when the client did not send it (the answer then has no `recovered`). */
export interface SelectRoomRequest { readonly action: 'select_room'; readonly uuid: string; readonly room: number; readonly since?: number }
export interface NewMessageRequest { readonly action: 'new_message'; readonly uuid: string; readonly room: number; readonly text: string }

export type RoomRequest =
  | AuthenticateRequest
  | CreateRoomRequest
  | AddUsersRequest
  | LeaveRoomRequest
  | ListRoomsRequest
  | SelectRoomRequest
  | NewMessageRequest;

/** What the RoomService handles: everything but `authenticate`, which the worker answers itself. */
export type ServiceRequest = Exclude<RoomRequest, AuthenticateRequest>;

export type Action = RoomRequest['action'];

/**
 * A refused request. `uuid` is absent when the request had no usable one (answer with the
 * {"action": "error"} form); `action` is absent when the request's was not a short string.
 * answerRequestError turns it into the answer text.
 */
export interface RequestError {
  readonly error: ErrorCode;
  /** A sentence for a person: the protocol's `error_message`. */
  readonly message: string;
  readonly uuid?: string;
  readonly action?: string;
}

/** What the checks need to know of the limits (the RoomService's RoomLimits has both). */
export interface RequestLimits {
  readonly maxMessageLength: number;
  readonly maxMembersPerRoom: number;
}

const UUID = /^[A-Za-z0-9_-]{1,64}$/;
/** An unknown action is echoed back in the answer only if it is this short (no amplification). */
const MAX_ECHOED_ACTION_LENGTH = 64;

/** A user id, as the protocol defines one: the same rule as a token's `sub` (jwt.ts). */
export function isUserId(value: unknown): value is string {
  return userIdProblem(value) === null;
}

/**
 * Checks one rooms request: `value` is the client's frame, parsed as JSON, an object with an
 * `action` field. Returns the typed request, or the error to answer (answerRequestError).
 */
export function parseRoomRequest(value: Readonly<Record<string, unknown>>, limits: RequestLimits): RoomRequest | RequestError {
  const { uuid, action } = value;
  if (typeof uuid !== 'string' || !UUID.test(uuid)) {
    return { error: 'bad_request', message: `a request needs a "uuid": 1 to ${MAX_UUID_LENGTH} characters from A-Z, a-z, 0-9, "_" and "-"` };
  }
  if (typeof action !== 'string') {
    return { error: 'bad_request', message: '"action" must be a string', uuid };
  }
  const fail = (error: ErrorCode, message: string): RequestError => ({ error, message, uuid, action });
  switch (action) {
    case 'authenticate': {
      if (typeof value.token !== 'string' || value.token === '') return fail('bad_request', '"token" must be a non-empty string');
      return { action, uuid, token: value.token };
    }
    case 'create_room': {
      const name = checkText(value.name, 'name', MAX_ROOM_NAME_LENGTH);
      if (typeof name !== 'string') return fail(name.error, name.message);
      const users = checkUsers(value.users, limits.maxMembersPerRoom);
      if (!Array.isArray(users)) return fail(users.error, users.message);
      return { action, uuid, name, users };
    }
    case 'add_users': {
      const room = checkId(value.room, 'room', 1);
      if (typeof room !== 'number') return fail('bad_request', room);
      const users = checkUsers(value.users, limits.maxMembersPerRoom);
      if (!Array.isArray(users)) return fail(users.error, users.message);
      if (users.length === 0) return fail('bad_request', '"users" must name at least one user to add');
      return { action, uuid, room, users };
    }
    case 'leave_room': {
      const room = checkId(value.room, 'room', 1);
      if (typeof room !== 'number') return fail('bad_request', room);
      return { action, uuid, room };
    }
    case 'list_rooms':
      return { action, uuid };
    case 'select_room': {
      const room = checkId(value.room, 'room', 1);
      if (typeof room !== 'number') return fail('bad_request', room);
      // null is "no since" too: clients in languages with a null (None, nil) often send it for "absent".
      if (value.since === undefined || value.since === null) return { action, uuid, room };
      const since = checkId(value.since, 'since', 0);
      if (typeof since !== 'number') return fail('bad_request', since);
      return { action, uuid, room, since };
    }
    case 'new_message': {
      const room = checkId(value.room, 'room', 1);
      if (typeof room !== 'number') return fail('bad_request', room);
      const text = checkText(value.text, 'text', limits.maxMessageLength);
      if (typeof text !== 'string') return fail(text.error, text.message);
      return { action, uuid, room, text };
    }
    default:
      return {
        error: 'bad_request',
        message: `unknown action: expected one of authenticate, create_room, add_users, leave_room, list_rooms, select_room, new_message`,
        uuid,
        ...(action.length <= MAX_ECHOED_ACTION_LENGTH ? { action } : {}),
      };
  }
}

/** A room id (min 1) or a message id (min 0): a safe integer; else what is wrong. */
function checkId(value: unknown, field: string, min: 0 | 1): number | string {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= min) return value;
  return `"${field}" must be a ${min === 1 ? 'positive' : 'non-negative'} whole number`;
}

/** A name or a message text: the string, or the error. */
function checkText(value: unknown, field: string, max: number): string | { error: ErrorCode; message: string } {
  if (typeof value !== 'string') return { error: 'bad_request', message: `"${field}" must be a string` };
  const length = characters(value);
  if (length === null) return { error: 'bad_request', message: `"${field}" must be well-formed Unicode (no lone surrogates)` };
  if (value.trim() === '') return { error: 'bad_request', message: `"${field}" must not be empty` };
  if (length > max) return { error: 'too_long', message: `"${field}" is longer than ${max} characters` };
  return value;
}

/** A list of user ids: without repeats (first kept), or the error. */
function checkUsers(value: unknown, maxMembersPerRoom: number): string[] | { error: ErrorCode; message: string } {
  if (!Array.isArray(value)) return { error: 'bad_request', message: '"users" must be an array of user ids' };
  const users = new Set<string>();
  for (const user of value) {
    if (!isUserId(user)) {
      return { error: 'bad_request', message: `"users" must hold user ids: strings of 1 to ${MAX_USER_ID_LENGTH} characters without control characters` };
    }
    users.add(user);
  }
  if (users.size > maxMembersPerRoom) return { error: 'limit_reached', message: `a room holds at most ${maxMembersPerRoom} members` };
  return [...users];
}

// ---- answers -----------------------------------------------------------------------------------------

/** `{"uuid","action","status":"success",...fields}`, fields in the order given. */
export function answerSuccess(uuid: string, action: string, fields: Readonly<Record<string, unknown>>): string {
  return JSON.stringify({ uuid, action, status: 'success', ...fields });
}

/** `{"uuid","action","status":"error","error":code,"error_message":message}`. */
export function answerError(uuid: string, action: string, code: ErrorCode, message: string): string {
  return JSON.stringify({ uuid, action, status: 'error', error: code, error_message: message });
}

/**
 * The answer to a frame with no usable uuid (or not valid JSON), which no request can be matched
 * to: `{"action":"error","status":"error","error":"bad_request","error_message":message}`.
 */
export function answerBadRequest(message: string): string {
  return JSON.stringify({ action: 'error', status: 'error', error: 'bad_request', error_message: message });
}

/** The answer to what parseRoomRequest refused (or to any RequestError the worker builds). */
export function answerRequestError(error: RequestError): string {
  if (error.uuid === undefined) return answerBadRequest(error.message);
  return answerError(error.uuid, error.action ?? 'error', error.error, error.message);
}
