// The rooms' logic: who may do what, what each request answers, who hears about it, and in which
// order. It runs where the rooms live: in the cluster primary with --workers N, in the process
// itself with --workers 1. It does no I/O of its own: a ChatStore remembers (store.ts), a
// RoomOutput carries texts to the workers, a clock and a scheduler are passed in, so the tests
// drive it with plain calls.
//
//   worker: verify the token, check the request (requests.ts), take a token from the connection's
//           bucket (rate-limit.ts); then, over IPC, with the connection's outlet, id and user:
//                               │ handle(outlet, conn, user, request)
//                               ▼ connectionOpened / connectionClosed / outletGone
//   primary: RoomService ── store reads (sync) and writes (promises) ──▶ ChatStore
//                               │ output.reply(outlet, conn, text)      to the requesting connection
//                               ▼ output.deliver(outlet, users, text)  once per worker that holds a
//                                                                      connection of one of `users`
//   worker: sends `text` to the connection, or to every open connection of `users` it holds.
//
// Theory of operation:
//
//   Delivery: once per outlet. An outlet is a worker (OutletId: the wiring's choice, e.g. the
//     cluster worker id). The service counts, per user, the open authenticated connections on each
//     outlet; to reach a set of users it calls output.deliver once per outlet that holds at least
//     one of their connections, with the subset of users found there, and with the same string for
//     every outlet: the text is encoded once, crosses IPC once per worker, never to a worker without
//     a recipient, and each worker sends it to its local connections of those users. A user is
//     online while they have at least one open connection anywhere.
//
//   Order: requests are handled synchronously, in arrival order (check, then write), and what
//     each one sends, its *outcome*, leaves in that same order, once the writes it depends on are
//     durable. The store applies a write to its memory at the call and resolves its promise later
//     (store.ts); so each outcome waits for its own write and for every outcome queued before it.
//     Hence: every member sees a room's messages in id order (ids are assigned in handling order);
//     a membership change applies to every message handled after it, and that message is sent
//     after the change's answer and room_update; nobody hears of a write before it is durable.
//     A successful new_message sends no separate answer: the copy of the message that reaches the
//     requesting connection is its acknowledgement (the protocol says so).
//
//   What is read when: what the store says is read when the request is handled (that is the state
//     the request was checked against, and later writes may still fail); who is online is read
//     when the outcome leaves (the freshest answer; connections are not in the store). So a
//     new_message goes to the members *at its handling*, on the connections open *when it leaves*.
//
//   Failures: a write the store refuses outright (StoreUnavailableError thrown) is answered
//     `unavailable` and changed nothing. A write that was accepted and then failed is answered
//     `unavailable` too, and so is every outcome that was computed while it was pending: those
//     were computed from memory that held it, and the store has undone it (store.ts). A dropped
//     presence push is simply redone (see below).
//
//   Several server trees (a shared store: store.ts, shared-chat.ts). A write is submitted instead
//     of applied, and its outcome is queued when the shared log applies it, together with the
//     writes of the other trees, which this tree delivers to its own connections as they are
//     applied: so every tree sends a room's writes in the log's one order. Errors and reads are
//     queued when handled, as above, and answer from this tree's copy of the state as of then.
//     A user is online while they have a connection on any tree (shared-presence.ts).
//
//   Presence: when a user's first connection opens or last one closes, each of their rooms is
//     due for a check. A check runs through the scheduler, at once (delay 0: changes of the same
//     turn, such as a reconnect, coalesce) or, if the room had a presence push less than
//     PRESENCE_INTERVAL_MS ago, when that interval ends: at most one push per room per second, and
//     no polling. A check queues an outcome that, when it leaves, compares the room's online
//     members with the last online list its members were told (by a presence push, a room_update
//     or a new_message's room object) and pushes `presence` only if they differ.
import { CHAT_LIMITS, CHAT_SETTINGS } from '../config.js';
import type { ChatReads, ChatStore, IntentResult, Message, Room, RoomIntent, RoomStore, SharedRoomEvent, SharedWrites } from './store.js';
import { StoreUnavailableError, isSharedStore } from './store.js';
import type { ErrorCode, ServiceRequest } from './requests.js';
import { answerError, answerSuccess } from './requests.js';

/** Names an outlet (a worker, or the process itself with --workers 1). */
export type OutletId = number;
/** Names a connection within its outlet (the worker's numbering). */
export type ConnectionId = number;

/** How the service's texts reach connections (the wiring: IPC to workers, or direct calls). */
export interface RoomOutput {
  /** Sends `text` to one connection: the answer to a request it made. */
  reply(outlet: OutletId, conn: ConnectionId, text: string): void;
  /**
   * Sends `text` to every open connection, on this outlet, of each of `users`. For one text it is
   * called once per outlet, always with the same string object, and only for outlets that hold a
   * connection of at least one of `users`.
   */
  deliver(outlet: OutletId, users: readonly string[], text: string): void;
}

/** Now, in ms since the epoch (Date.now in production). Message and room times come from it. */
export type Clock = () => number;
/**
 * Runs `run` once, `delayMs` from now (in production `(ms, run) => void setTimeout(run, ms)`; unref
 * the timer if the process must be free to exit). Used for presence coalescing only.
 */
export type Scheduler = (delayMs: number, run: () => void) => void;

export interface RoomLimits {
  /** CHAT_HISTORY_SIZE: the messages select_room returns (the store must keep at least this many). */
  readonly historySize: number;
  readonly maxMembersPerRoom: number;
  readonly maxRoomsPerUser: number;
  /** CHAT_MAX_MESSAGE_LENGTH: checked by the worker (parseRoomRequest), listed here so that one object configures both. */
  readonly maxMessageLength: number;
}

/**
 * 100 members per room. Every new_message answer carries the room object (the members and who of
 * them is online) to every member's connections, so a message costs about members × (id length)
 * bytes on top of its text, times the members who receive it: at 100 members of 16-character ids,
 * about 3.4 KB per copy. That is the size of a team's channel, and keeps a room's fan-out bounded.
 * Larger audiences are a broadcast (the lobby), not a room.
 */
export const DEFAULT_MAX_MEMBERS_PER_ROOM = CHAT_SETTINGS.maxRoomMembers.default;
/**
 * 100 rooms per user. A list_rooms answer holds all of a user's rooms with their last messages
 * (at most 100 × (room object + one message), well under a megabyte even at the limits), a
 * connection that opens or closes makes up to this many rooms due for a presence check, and
 * without a limit anyone could be added to rooms without end. A person follows a few dozen.
 */
export const DEFAULT_MAX_ROOMS_PER_USER = CHAT_SETTINGS.maxRoomsPerUser.default;
/** The defaults of every limit; historySize and maxMessageLength are CHAT_HISTORY_SIZE's and CHAT_MAX_MESSAGE_LENGTH's. */
export const DEFAULT_ROOM_LIMITS: RoomLimits = {
  historySize: CHAT_SETTINGS.historySize.default,
  maxMembersPerRoom: DEFAULT_MAX_MEMBERS_PER_ROOM,
  maxRoomsPerUser: DEFAULT_MAX_ROOMS_PER_USER,
  maxMessageLength: CHAT_SETTINGS.maxMessageLength.default,
};

/** At most one presence push per room per this many ms (the protocol's "one per room per second"). */
export const PRESENCE_INTERVAL_MS = CHAT_LIMITS.presenceCoalesceMs.value;

/**
 * Outcomes waiting to leave, at most. They wait for the store: if its writes stop settling (a disk
 * that hangs), every request would otherwise add one more, without end. Above this, a request is
 * answered `unavailable` at once and not handled. 10,000 is seconds of traffic at the default rate
 * limit for hundreds of busy connections, far beyond the few a healthy store keeps in flight.
 */
export const MAX_QUEUED_OUTCOMES = 10_000;

const UNAVAILABLE_MESSAGE = 'the message log cannot take writes now: nothing was stored; retry later with the same uuid';
const RESOLVED: Promise<void> = Promise.resolve();

/** The protocol's room object. `online` is read when the text is built (see the top). */
interface RoomObject {
  id: number;
  name: string;
  users: readonly string[];
  online: string[];
}

/** Per room: what its members were last told of who is online, and the coalescing state. */
interface PresenceState {
  /** The online list of the last presence, room_update or new_message that went to the members. */
  told: readonly string[];
  /** When the last presence push left (ms; -Infinity before the first). */
  lastPushAt: number;
  /** A check is scheduled and has not run yet. */
  scheduled: boolean;
}

export class RoomService {
  /** The store's reads (either kind of store). */
  private readonly store: ChatReads;
  /** The store's writes when they apply at the call (memory, the file log), else null. */
  private readonly local: ChatStore | null;
  private readonly limits: RoomLimits;
  private readonly output: RoomOutput;
  private readonly clock: Clock;
  private readonly schedule: Scheduler;
  /** The store's shared writes when several server trees share it (see the top), else null. */
  private readonly shared: SharedWrites | null;
  /** user → outlet → open authenticated connections there. A user with none has no entry. */
  private readonly connections = new Map<string, Map<OutletId, number>>();
  private readonly presence = new Map<number, PresenceState>();
  /** The last queued outcome: each new one is chained after it (see "Order" at the top). */
  private tail: Promise<void> = RESOLVED;
  /** Outcomes queued and not yet left (bounded by MAX_QUEUED_OUTCOMES). */
  private queued = 0;
  /** Outcomes whose own write failed, counted as they leave (see "Failures" at the top). */
  private failedWrites = 0;
  private closed = false;

  constructor(store: RoomStore, limits: RoomLimits, output: RoomOutput, clock: Clock, schedule: Scheduler) {
    this.store = store;
    this.local = isSharedStore(store) ? null : store;
    this.limits = limits;
    this.output = output;
    this.clock = clock;
    this.schedule = schedule;
    this.shared = isSharedStore(store) ? store : null;
    this.shared?.attach({
      applied: (event) => this.remoteApplied(event),
      presenceChanged: (user) => this.onlineChanged(user),
      localUsers: () => this.connections.keys(),
    });
  }

  // ---- connections ------------------------------------------------------------------------------

  /** A connection of `user` on `outlet` authenticated. Call before handing on any of its requests. */
  connectionOpened(outlet: OutletId, user: string): void {
    let outlets = this.connections.get(user);
    const wasOnline = outlets !== undefined;
    if (!outlets) this.connections.set(user, (outlets = new Map()));
    outlets.set(outlet, (outlets.get(outlet) ?? 0) + 1);
    if (!wasOnline) this.localOnlineChanged(user, true);
  }

  /** An authenticated connection closed. A call with no matching open is ignored. */
  connectionClosed(outlet: OutletId, user: string): void {
    const outlets = this.connections.get(user);
    const count = outlets?.get(outlet);
    if (outlets === undefined || count === undefined) return; // never opened: counting below zero would lie
    if (count > 1) {
      outlets.set(outlet, count - 1);
      return;
    }
    outlets.delete(outlet);
    if (outlets.size > 0) return;
    this.connections.delete(user);
    this.localOnlineChanged(user, false);
  }

  /** A worker is gone (it exited): all its connections are. */
  outletGone(outlet: OutletId): void {
    for (const [user, outlets] of this.connections) {
      // Deleting the entry being visited is safe in a Map iteration.
      if (outlets.delete(outlet) && outlets.size === 0) {
        this.connections.delete(user);
        this.localOnlineChanged(user, false);
      }
    }
  }

  /** Whether `user` has an open connection anywhere (on any tree, with a shared store). */
  isOnline(user: string): boolean {
    return this.connections.has(user) || (this.shared !== null && this.shared.remoteOnline(user));
  }

  /** Users with at least one open authenticated connection on this tree (for metrics). */
  get usersOnline(): number {
    return this.connections.size;
  }

  /** Outcomes waiting for the store (bounded by MAX_QUEUED_OUTCOMES; for metrics). */
  get outcomesQueued(): number {
    return this.queued;
  }

  // ---- requests ---------------------------------------------------------------------------------

  /**
   * Handles a request checked by parseRoomRequest, from connection `conn` of `user` on `outlet`.
   * Everything it sends leaves later, through `output`, in handling order (settled() waits for it),
   * with one exception: when MAX_QUEUED_OUTCOMES are waiting for the store, the request is not
   * handled and `unavailable` is replied at once, from within this call (it changed nothing, so it
   * needs no place in the order).
   */
  handle(outlet: OutletId, conn: ConnectionId, user: string, request: ServiceRequest): void {
    if (this.closed) return;
    const requester: Requester = { outlet, conn, user, uuid: request.uuid, action: request.action };
    if (this.queued >= MAX_QUEUED_OUTCOMES) return this.replyUnavailable(requester);
    switch (request.action) {
      case 'create_room':
        return this.createRoom(requester, request.name, request.users);
      case 'add_users':
        return this.addUsers(requester, request.room, request.users);
      case 'leave_room':
        return this.leaveRoom(requester, request.room);
      case 'list_rooms':
        return this.listRooms(requester);
      case 'select_room':
        return this.selectRoom(requester, request.room, request.since);
      case 'new_message':
        return this.newMessage(requester, request.room, request.text);
    }
  }

  /** Resolves once everything handled so far has been sent (for tests and for shutdown). */
  settled(): Promise<void> {
    return this.tail;
  }

  /** Stops: later requests and presence checks are ignored; what is queued still leaves (settled()). */
  close(): void {
    this.closed = true;
  }

  private createRoom(requester: Requester, name: string, users: readonly string[]): void {
    const members = [...new Set([requester.user, ...users])]; // the requester first, always a member
    if (members.length > this.limits.maxMembersPerRoom) {
      return this.fail(requester, 'limit_reached', `a room holds at most ${this.limits.maxMembersPerRoom} members`);
    }
    if (!this.roomsLeft(requester, members)) return;
    const local = this.local;
    if (local === null) return this.submit(requester, { k: 'create', user: requester.user, name, users: members, ts: this.clock() }, (result) => this.announce(requester, result.room, result.room.users));
    const write = this.write(requester, () => local.createRoom(name, members, this.clock()));
    if (write) this.enqueue(write, (room) => this.announce(requester, room, room.users), () => this.replyUnavailable(requester));
  }

  private addUsers(requester: Requester, roomId: number, users: readonly string[]): void {
    const room = this.memberRoom(requester, roomId);
    if (!room) return;
    const added = users.filter((user) => !room.users.includes(user));
    if (added.length === 0) {
      // Nothing changes, so nothing is written or pushed; the answer is the room as it is.
      return this.enqueue(RESOLVED, () => this.reply(requester, answerSuccess(requester.uuid, requester.action, { room: this.roomObject(room) })), () => this.replyUnavailable(requester));
    }
    if (room.users.length + added.length > this.limits.maxMembersPerRoom) {
      return this.fail(requester, 'limit_reached', `room ${roomId} would have more than ${this.limits.maxMembersPerRoom} members`);
    }
    if (!this.roomsLeft(requester, added)) return;
    const local = this.local;
    if (local === null) {
      return this.submit(requester, { k: 'add', user: requester.user, room: roomId, users: added }, (result) => {
        // Members only by the time it was applied (another tree added them first): nothing changed.
        if (result.changed) this.announce(requester, result.room, result.room.users);
        else this.reply(requester, answerSuccess(requester.uuid, requester.action, { room: this.roomObject(result.room) }));
      });
    }
    const write = this.write(requester, () => local.addUsers(roomId, added));
    if (write) this.enqueue(write, (after) => this.announce(requester, after, after.users), () => this.replyUnavailable(requester));
  }

  private leaveRoom(requester: Requester, roomId: number): void {
    if (!this.memberRoom(requester, roomId)) return;
    const local = this.local;
    if (local === null) return this.submit(requester, { k: 'leave', user: requester.user, room: roomId }, (result) => this.announce(requester, result.room, [...result.room.users, requester.user]));
    const write = this.write(requester, () => local.removeUser(roomId, requester.user));
    // The leaver hears the room_update too ("every user who is or was a member").
    if (write) this.enqueue(write, (after) => this.announce(requester, after, [...after.users, requester.user]), () => this.replyUnavailable(requester));
  }

  private listRooms(requester: Requester): void {
    // Most recently active first; among equals the newer room (higher id) first.
    const rooms = [...this.store.roomsOf(requester.user)].sort((a, b) => b.lastActivity - a.lastActivity || b.id - a.id);
    const lastMessages = rooms.map((room) => this.store.lastMessages(room.id, 1)[0] ?? null);
    this.enqueue(RESOLVED, () => {
      const listed = rooms.map((room, i) => ({ ...this.roomObject(room), last_message: lastMessages[i] }));
      this.reply(requester, answerSuccess(requester.uuid, requester.action, { rooms: listed }));
    }, () => this.replyUnavailable(requester));
  }

  private selectRoom(requester: Requester, roomId: number, since: number | undefined): void {
    const room = this.memberRoom(requester, roomId);
    if (!room) return;
    const n = this.limits.historySize;
    const found = since === undefined ? { messages: this.store.lastMessages(roomId, n) } : this.store.messagesSince(roomId, since, n);
    this.enqueue(RESOLVED, () => {
      const fields = { room: this.roomObject(room), room_messages: found.messages };
      // `recovered` only answers a `since`: without one there is nothing to recover.
      const answer = 'complete' in found ? { ...fields, recovered: found.complete } : fields;
      this.reply(requester, answerSuccess(requester.uuid, requester.action, answer));
    }, () => this.replyUnavailable(requester));
  }

  private newMessage(requester: Requester, roomId: number, text: string): void {
    // A retry (same user, same uuid) gets the original back, to the requester alone, and nothing
    // is stored or delivered again. The original's room is the one that counts, and the requester
    // must still be its member: the answer shows the room, which is not for a former member's eyes.
    const original = this.store.findMessage(requester.user, requester.uuid);
    if (original) {
      const room = this.memberRoom(requester, original.room);
      if (room) this.enqueue(RESOLVED, () => this.reply(requester, this.messageAnswer(requester, room, original).text), () => this.replyUnavailable(requester));
      return;
    }
    const room = this.memberRoom(requester, roomId);
    if (!room) return;
    const local = this.local;
    if (local === null) {
      return this.submit(requester, { k: 'message', user: requester.user, room: roomId, uuid: requester.uuid, text, ts: this.clock() }, (result) => {
        const message = result.message!;
        // A retry that reached the log before its original was applied here: the original, to
        // the requester alone, as above.
        if (result.duplicate) return this.reply(requester, this.messageAnswer(requester, result.room, message).text);
        const { text: answer, online } = this.messageAnswer(requester, result.room, message);
        this.deliverTo(result.room.users, answer);
        this.told(result.room.id, online);
      });
    }
    const write = this.write(requester, () => local.appendMessage(roomId, requester.user, requester.uuid, text, this.clock()));
    if (!write) return;
    this.enqueue(write, (message) => {
      // To the members at handling time (`room` is that snapshot); the requester's copy is its answer.
      const { text: answer, online } = this.messageAnswer(requester, room, message);
      this.deliverTo(room.users, answer);
      this.told(roomId, online);
    }, () => this.replyUnavailable(requester));
  }

  // ---- helpers for requests ---------------------------------------------------------------------

  /** The room, if it exists and the requester is a member; otherwise the error is queued and undefined returned. */
  private memberRoom(requester: Requester, roomId: number): Room | undefined {
    const room = this.store.room(roomId);
    if (!room) {
      this.fail(requester, 'not_found', `there is no room ${roomId}`);
      return undefined;
    }
    if (!room.users.includes(requester.user)) {
      this.fail(requester, 'forbidden', `you are not a member of room ${roomId}`);
      return undefined;
    }
    return room;
  }

  /** Whether each of `users` may join one more room; if not, the error is queued. */
  private roomsLeft(requester: Requester, users: readonly string[]): boolean {
    const max = this.limits.maxRoomsPerUser;
    const full = users.find((user) => this.store.roomsOf(user).length >= max);
    if (full === undefined) return true;
    this.fail(requester, 'limit_reached', full === requester.user ? `you are in the most rooms allowed (${max})` : `${JSON.stringify(full)} is in the most rooms allowed (${max})`);
    return false;
  }

  /** Starts a store write; if the store refuses it, queues `unavailable` and returns null. */
  private write<T>(requester: Requester, start: () => Promise<T>): Promise<T> | null {
    try {
      return start();
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) throw error; // a bug: let it be seen
      this.fail(requester, 'unavailable', UNAVAILABLE_MESSAGE);
      return null;
    }
  }

  /**
   * Submits a write to a shared store (see the top). Its outcome is queued when the shared log
   * applies it, so that it leaves in the log's order; a write refused there gets its error.
   */
  private submit(requester: Requester, intent: RoomIntent, send: (result: IntentResult & { ok: true }) => void): void {
    try {
      this.shared!.submit(intent, (result) => {
        if (result.ok) this.enqueue(RESOLVED, () => send(result), () => this.replyUnavailable(requester));
        else this.fail(requester, result.code, result.code === 'unavailable' ? UNAVAILABLE_MESSAGE : result.error);
      });
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) throw error; // a bug: let it be seen
      this.fail(requester, 'unavailable', UNAVAILABLE_MESSAGE);
    }
  }

  /**
   * Another tree's write, applied here: delivered to this tree's connections, queued now so that
   * it leaves in the log's order with this tree's own (see the top).
   */
  private remoteApplied(event: SharedRoomEvent): void {
    if (this.closed) return;
    this.enqueue(RESOLVED, () => {
      if (event.k === 'room') {
        const object = this.roomObject(event.room);
        this.deliverTo(event.recipients, JSON.stringify({ action: 'room_update', room: object }));
        if (event.room.users.length === 0) this.presence.delete(event.room.id);
        else this.told(event.room.id, object.online);
        return;
      }
      const object = this.roomObject(event.room);
      this.deliverTo(event.room.users, answerSuccess(event.uuid, 'new_message', { room: object, message: event.message }));
      this.told(event.room.id, object.online);
    }, () => {});
  }

  /** The answer to create_room, add_users and leave_room, and the room_update to `recipients`. */
  private announce(requester: Requester, room: Room, recipients: readonly string[]): void {
    const object = this.roomObject(room);
    this.reply(requester, answerSuccess(requester.uuid, requester.action, { room: object }));
    this.deliverTo(recipients, JSON.stringify({ action: 'room_update', room: object }));
    if (room.users.length === 0) this.presence.delete(room.id); // the store deleted the room
    else this.told(room.id, object.online);
  }

  /**
   * The new_message answer: {"uuid","action","status","room","message"}, and the online list in it.
   * `room` is the room object, as `room` is in every other answer of the protocol's table (the
   * message object already carries the room's id): a page that shows all rooms can update a
   * room's members and presence from any message.
   */
  private messageAnswer(requester: Requester, room: Room, message: Message): { text: string; online: readonly string[] } {
    const object = this.roomObject(room);
    return { text: answerSuccess(requester.uuid, 'new_message', { room: object, message }), online: object.online };
  }

  /** Queues an error answer (it leaves in order, like everything else). */
  private fail(requester: Requester, code: ErrorCode, message: string): void {
    this.enqueue(RESOLVED, () => this.reply(requester, answerError(requester.uuid, requester.action, code, message)), () => this.replyUnavailable(requester));
  }

  /** Answers `unavailable` now (as an outcome leaves, or when too many wait). */
  private replyUnavailable(requester: Requester): void {
    this.reply(requester, answerError(requester.uuid, requester.action, 'unavailable', UNAVAILABLE_MESSAGE));
  }

  /**
   * Sends `text` to one connection once every outcome queued before it has left: the answer to an
   * `authenticate`, which the worker takes as the moment the connection starts receiving room
   * messages (client.ts), so it must come after every message handled before it.
   */
  replyInOrder(outlet: OutletId, conn: ConnectionId, text: string): void {
    const send = (): void => this.output.reply(outlet, conn, text);
    this.enqueue(RESOLVED, send, send);
  }

  private reply(requester: Requester, text: string): void {
    this.output.reply(requester.outlet, requester.conn, text);
  }

  // ---- the outcome queue ------------------------------------------------------------------------

  /**
   * Queues an outcome: `send(value)` runs once `write` resolved and every outcome queued before has
   * left; `failed()` runs instead if `write` rejected, or if an outcome queued before this one and
   * still pending when this one was queued turned out to have a failed write (this one was computed
   * from memory that held that write: see "Failures" at the top).
   */
  private enqueue<T>(write: Promise<T>, send: (value: T) => void, failed: () => void): void {
    const failedBefore = this.failedWrites;
    this.queued++;
    // Handlers go on the write now: a rejection with no handler yet is reported by Node as unhandled.
    const settled = write.then((value) => ({ value }), () => null);
    this.tail = this.tail
      .then(() => settled)
      .then((result) => {
        this.queued--;
        if (result === null) {
          this.failedWrites++;
          failed();
        } else if (this.failedWrites > failedBefore) {
          failed();
        } else {
          send(result.value);
        }
      })
      // An exception here is a bug in the output (or here): report it as uncaught, as a throwing
      // event listener would be, but keep the queue going, or every later outcome would be lost.
      .catch((error: unknown) => queueMicrotask(() => { throw error; }));
  }

  // ---- delivery and presence --------------------------------------------------------------------

  /** Sends `text` to every open connection of `users`: one deliver() per outlet holding some (see the top). */
  private deliverTo(users: readonly string[], text: string): void {
    const byOutlet = new Map<OutletId, string[]>();
    for (const user of users) {
      const outlets = this.connections.get(user);
      if (!outlets) continue;
      for (const outlet of outlets.keys()) {
        const here = byOutlet.get(outlet);
        if (here) here.push(user);
        else byOutlet.set(outlet, [user]);
      }
    }
    for (const [outlet, here] of byOutlet) this.output.deliver(outlet, here, text);
  }

  /** The protocol's room object, with who is online now, in the order of `users`. */
  private roomObject(room: Room): RoomObject {
    return { id: room.id, name: room.name, users: room.users, online: room.users.filter((user) => this.isOnline(user)) };
  }

  /** The members of `roomId` were just told that `online` are online. */
  private told(roomId: number, online: readonly string[]): void {
    this.presenceOf(roomId).told = online;
  }

  private presenceOf(roomId: number): PresenceState {
    let state = this.presence.get(roomId);
    // Before any report, members were told nobody is online: true of a room loaded at start-up,
    // when no connection is open yet.
    if (!state) this.presence.set(roomId, (state = { told: [], lastPushAt: -Infinity, scheduled: false }));
    return state;
  }

  /** `user`'s first connection on this tree opened, or their last one closed. */
  private localOnlineChanged(user: string, online: boolean): void {
    this.shared?.localPresence(user, online);
    this.onlineChanged(user);
  }

  /** `user` came online or went offline: each of their rooms is due for a presence check. */
  private onlineChanged(user: string): void {
    for (const room of this.store.roomsOf(user)) this.presenceDue(room.id);
  }

  private presenceDue(roomId: number): void {
    if (this.closed) return;
    const state = this.presenceOf(roomId);
    if (state.scheduled) return; // the check already scheduled will see this change too
    state.scheduled = true;
    const delay = Math.max(0, state.lastPushAt + PRESENCE_INTERVAL_MS - this.clock());
    this.schedule(delay, () => this.checkPresence(roomId));
  }

  private checkPresence(roomId: number): void {
    const state = this.presence.get(roomId);
    if (!state) return; // the room was deleted after the check was scheduled
    state.scheduled = false;
    const room = this.store.room(roomId);
    if (!room) {
      this.presence.delete(roomId); // its last member left: nobody to tell
      return;
    }
    if (this.closed) return;
    // The members at check time are the recipients; who is online is read when it leaves.
    this.enqueue(RESOLVED, () => {
      const online = this.roomObject(room).online;
      if (sameList(online, state.told)) return; // back to what the members know: nothing to say
      const now = this.clock();
      if (now < state.lastPushAt + PRESENCE_INTERVAL_MS) return this.presenceDue(roomId); // left late (behind a slow write): keep the spacing
      state.lastPushAt = now;
      state.told = online;
      this.deliverTo(room.users, JSON.stringify({ action: 'presence', room: roomId, online }));
    }, () => this.presenceDue(roomId)); // computed from a failed write's memory: check again
  }
}

/** Who made the request being handled, and how to answer them. */
interface Requester {
  readonly outlet: OutletId;
  readonly conn: ConnectionId;
  readonly user: string;
  readonly uuid: string;
  readonly action: ServiceRequest['action'];
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((item, i) => item === b[i]);
}
