// What the rooms keep: rooms, their members, their messages, and the table that recognises a
// retried message. This file is the contract between the RoomService (src/rooms/service.ts), which
// decides, and a store, which remembers. MemoryStore (memory-store.ts) keeps everything in memory;
// LogStore (log-store.ts) adds the durable message log (chat-log.ts) behind it.
//
// Theory of operation:
//
//   Reads are synchronous; writes return promises.
//     The primary process keeps the rooms, their members and their recent history in memory with
//     every backend: memory is where requests are answered from. A durable log exists so that an
//     acknowledgement survives a restart, and later so that several machines can share rooms
//     through Redis; neither is read on the path of a request. So a read is a plain call on the
//     memory, and the service can check a request and act on it in one synchronous step: two
//     create_room requests from a user at 99 of 100 rooms cannot both pass the check, because no
//     await can come between a check and its write. (With promise-based reads every check would
//     need a lock, and a request would wait for I/O to learn what memory already knows.)
//
//   A write is applied to memory when it is called, and its promise resolves once it is durable.
//     The call assigns what the store assigns (a room's id, a message's id), changes the memory that
//     reads see, and starts the write; the promise resolves to the same value once the write would
//     survive a crash (for a file log: after fsync). Meanwhile the service holds every answer that
//     depends on the write (see service.ts), so nobody hears of a write before it is durable. A file
//     log can then make one fsync for all the writes called in one turn of the event loop (group
//     commit) instead of one each.
//
//   Write promises settle in call order.
//     A log is written in order, so a later write cannot be durable while an earlier one is not.
//
//   A write that cannot be taken fails without a trace, and takes the later ones with it.
//     - A store that knows it cannot take writes now (the disk is full, Redis is unreachable)
//       throws StoreUnavailableError from the call itself, having changed nothing.
//     - A write that was accepted but then failed to become durable rejects its promise with
//       StoreUnavailableError. The store undoes it in memory, and with it every later write that
//       has not settled yet (they reject too, in order): those were applied on top of it, and a log
//       cannot keep a later entry without the earlier one. A store that cannot know what reached
//       the disk (fsync failed: the page cache may or may not have written it) must not reject,
//       and must stop the process instead, as PostgreSQL does, so that recovery reads the log.
//     The client of a failed write gets `unavailable` (the protocol: "nothing was stored; retry
//     later with the same uuid").
//
//   Everything a store returns is immutable.
//     A write replaces a room's object instead of changing it, so an answer built from a Room later
//     says what was true when its request was handled (`readonly` in the types below says so to
//     the compiler; the stores keep the promise).

/** A room as the store keeps it. The protocol's room object is built from it by the service. */
export interface Room {
  /** A positive safe integer, never reused. */
  readonly id: number;
  /** 1 to 100 characters, as the client gave it. */
  readonly name: string;
  /**
   * The members, in the order they joined (the creator first, then the others in the order the
   * request listed them), without duplicates. Join order rather than sorted: it is what a person
   * expects to read ("who started this room, who came next"), and it needs no sort on every change.
   */
  readonly users: readonly string[];
  /** ms since the epoch: the room's creation or its latest message, whichever is later. */
  readonly lastActivity: number;
}

/**
 * A message, with exactly the fields of the protocol's message object (and in its order), so that
 * JSON.stringify(message) is the message object.
 */
export interface Message {
  /** Below 2^53, increasing within a room (a store uses one counter for all rooms), across restarts. */
  readonly id: number;
  /** The room's id. */
  readonly room: number;
  /** The author's user id. */
  readonly user: string;
  readonly text: string;
  /** ms since the epoch, from the server's clock. */
  readonly ts: number;
}

/** The answer of messagesSince. */
export interface MessagesSince {
  /** Oldest first: the messages with ids above `since`, or the last n of the room when !complete. */
  readonly messages: readonly Message[];
  /** True when `messages` holds every message of the room with an id above `since`. */
  readonly complete: boolean;
}

/** See the top of this file: the store cannot take writes now, and nothing was changed. */
export class StoreUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailableError';
  }
}

/**
 * Retried messages are recognised by (user, uuid) for DEFAULT_DEDUPE_WINDOW_MS (CHAT_DEDUPE_WINDOW),
 * also across restarts when the store is durable: a client that lost its connection, or whose
 * server crashed, may retry its unacknowledged messages minutes or hours later (a laptop that
 * slept), and must not post them twice.
 */
export const DEFAULT_DEDUPE_WINDOW_MS = 24 * 60 * 60 * 1000;

/**
 * ... and among the most recent DEFAULT_DEDUPE_LIMIT (CHAT_DEDUPE_MAX_ENTRIES) messages of all
 * rooms, whichever is fewer: the table must be bounded in memory whatever the traffic. Each entry
 * holds the original message (the retry gets it back), so the worst case is this many messages of
 * CHAT_MAX_MESSAGE_LENGTH (100,000 × 4,096 characters: about 0.4 to 1.6 GB); typical short
 * messages, most of which are also in a room's history, make it tens of MB. At the default rate
 * limit of 20 requests per second per connection, 100,000 messages are 5,000 connection-seconds of
 * flat-out sending: a busy server outruns the count before the window, and then a retry must come
 * within that much traffic (the README says so).
 */
export const DEFAULT_DEDUPE_LIMIT = 100_000;

/**
 * What every store answers: reads, synchronous, from memory (with ChatStore: including writes not
 * yet settled; with a shared store: as of the last entry of the shared log applied).
 */
export interface ChatReads {
  room(id: number): Room | undefined;

  /** The user's rooms, in no particular order (the caller sorts what it shows). */
  roomsOf(user: string): readonly Room[];

  /** The message `user` sent with `uuid`, if it is still in the dedupe table (see DEFAULT_DEDUPE_WINDOW_MS). */
  findMessage(user: string, uuid: string): Message | undefined;

  /** The room's last n messages, oldest first (fewer if it has fewer; none for an unknown room). */
  lastMessages(roomId: number, n: number): readonly Message[];

  /**
   * The room's messages with ids above `sinceId`, oldest first, if the store still has all of
   * them and they are at most n; otherwise the last n, with complete = false, so that the client
   * knows it has a gap.
   */
  messagesSince(roomId: number, sinceId: number, n: number): MessagesSince;
}

/**
 * The store. Callers (the service) check existence, membership and limits before writing: a write
 * on a room that does not exist is a bug in the caller and throws an Error (not a rejection).
 */
export interface ChatStore extends ChatReads {
  // ---- writes: applied to memory at the call, settled in call order once durable ----------------

  /**
   * Creates a room whose members are `users` (in that order; repeats are kept once) and whose
   * lastActivity is `ts`. Assigns the id.
   */
  createRoom(name: string, users: readonly string[], ts: number): Promise<Room>;

  /** Adds the users who are not members yet, at the end, in the order given. Resolves to the room after. */
  addUsers(roomId: number, users: readonly string[]): Promise<Room>;

  /**
   * Removes a member; resolves to the room after (its `users` without them). A room whose last
   * member leaves is deleted with its history: only members can add users, so nobody could ever
   * reach it again, and keeping it would let memory and the log grow for nothing.
   */
  removeUser(roomId: number, user: string): Promise<Room>;

  /**
   * Appends a message; assigns its id (above every id given before, in any room) and sets the
   * room's lastActivity to `ts`. Records (user, uuid) for findMessage.
   */
  appendMessage(roomId: number, user: string, uuid: string, text: string, ts: number): Promise<Message>;
}

// ---- a store shared by several server trees (the Redis log: shared-chat.ts) ---------------------
//
// With several server trees, writes cannot be applied to memory at the call: another tree may
// write first, and only the shared log says who did. So a shared store offers writes of another
// kind: the service *submits* an intent, and learns its result when the shared log applies it, in
// the log's order, on every tree alike; the checks that decide it (membership, limits, the dedupe
// table) are made again there, against the state every tree has at that point of the log. Reads
// stay synchronous, from this tree's copy, which is the state as of the last entry applied.

/** A write the service asks of a shared store; `user` is the requester. */
export type RoomIntent =
  | { readonly k: 'create'; readonly user: string; readonly name: string; readonly users: readonly string[]; readonly ts: number }
  | { readonly k: 'add'; readonly user: string; readonly room: number; readonly users: readonly string[] }
  | { readonly k: 'leave'; readonly user: string; readonly room: number }
  | { readonly k: 'message'; readonly user: string; readonly room: number; readonly uuid: string; readonly text: string; readonly ts: number };

/** What a submitted intent came to, when the shared log applied it (or could not take it). */
export type IntentResult =
  /**
   * Applied: `room` is the room after it (a leave: with the leaver removed; `users` empty when the
   * room was deleted). `changed` is false when nothing was written (add_users of members only, or
   * a retried message: then `message` is the original and `duplicate` is true).
   */
  | { readonly ok: true; readonly room: Room; readonly changed: boolean; readonly message?: Message; readonly duplicate?: boolean }
  /** Refused by the checks at that point of the log; nothing was written. */
  | { readonly ok: false; readonly code: 'not_found' | 'forbidden' | 'limit_reached' | 'unavailable'; readonly error: string };

/** A write of another tree, as the shared log applied it here. */
export type SharedRoomEvent =
  /** room_update to `recipients` (a leave: the members after it and the leaver). */
  | { readonly k: 'room'; readonly room: Room; readonly recipients: readonly string[] }
  /** A new message, with the uuid its sender gave, to the room's members. */
  | { readonly k: 'message'; readonly room: Room; readonly uuid: string; readonly message: Message };

/** What the shared store tells the service (service.ts). */
export interface SharedRoomListener {
  /** Another tree's write was applied: deliver it to this tree's connections. */
  applied(event: SharedRoomEvent): void;
  /** A user came online or went offline on another tree. */
  presenceChanged(user: string): void;
  /** The users with a connection on this tree now. */
  localUsers(): Iterable<string>;
}

export interface SharedWrites {
  /**
   * Submits a write. `done` is called once, when the shared log applies it or when it is known
   * it never will be (`unavailable`). Throws StoreUnavailableError, having sent nothing, when the
   * shared log cannot take writes now.
   */
  submit(intent: RoomIntent, done: (result: IntentResult) => void): void;
  attach(listener: SharedRoomListener): void;
  /** Whether `user` has a connection on another tree. */
  remoteOnline(user: string): boolean;
  /** `user`'s first connection on this tree opened (true) or their last one closed (false). */
  localPresence(user: string, online: boolean): void;
}

/** A store shared by several server trees: the same reads, and writes that are submitted. */
export interface SharedStore extends ChatReads, SharedWrites {}

/** What the room service runs on: a store whose writes apply at the call, or a shared one. */
export type RoomStore = ChatStore | SharedStore;

/** Whether the store is shared (its writes are submitted: see above). */
export function isSharedStore(store: RoomStore): store is SharedStore {
  return typeof (store as Partial<SharedWrites>).submit === 'function';
}
