// The in-memory ChatStore (the contract is in store.ts): everything is gone when the process
// stops, and every write is "durable" at once, so its promise is already resolved when returned.
// It is also the memory part of the durable stores to come, which add a log behind it.
//
// Bounds: each room keeps its last `historyLimit` messages; the dedupe table the entries of the
// last `dedupeWindowMs`, at most `dedupeLimit` of them (store.ts says why both); a room whose last
// member leaves is deleted.
import type { ChatReads, ChatStore, Message, MessagesSince, Room } from './store.js';
import { DEFAULT_DEDUPE_LIMIT, DEFAULT_DEDUPE_WINDOW_MS } from './store.js';

export interface MemoryStoreOptions {
  /** Messages kept per room, oldest dropped first: at least CHAT_HISTORY_SIZE. */
  historyLimit: number;
  /** Entries of the dedupe table at most (default DEFAULT_DEDUPE_LIMIT). */
  dedupeLimit?: number;
  /** How long a (user, uuid) pair is recognised, in ms (default DEFAULT_DEDUPE_WINDOW_MS). */
  dedupeWindowMs?: number;
  /** Now, in ms (default Date.now): when an entry of the dedupe table has passed the window. */
  clock?: () => number;
  /**
   * The first message id (default Date.now() × 1000). Starting from the clock in microseconds keeps
   * ids increasing across restarts, as long as the store gave out fewer than 1,000 ids per
   * millisecond on average since it started (the broadcast loop's ids do the same). Tests pass a
   * fixed value to compare exact JSON.
   */
  firstMessageId?: number;
  /** The first room id (default Date.now() × 1000): the same reasoning, so that no room id is reused. */
  firstRoomId?: number;
}

/** A write applied to memory: what it produced, and how to take it back. */
export interface Applied<T> {
  readonly value: T;
  undo(): void;
}

/** An entry of the dedupe table: the message a (user, uuid) pair made. */
export interface SentEntry {
  readonly uuid: string;
  readonly message: Message;
}

/** One room's memory: the immutable Room snapshot, its bounded history and what was trimmed. */
export interface RoomRecord {
  room: Room;
  /** Oldest first; at most historyLimit long. */
  history: Message[];
  /** The highest id dropped from history (0 if none): messagesSince is complete from here on. */
  trimmedUpTo: number;
}

export class MemoryStore implements ChatStore {
  private readonly historyLimit: number;
  private readonly dedupeLimit: number;
  private readonly rooms = new Map<number, RoomRecord>();
  /** user → the ids of their rooms. A user with no room has no entry. */
  private readonly roomIdsByUser = new Map<string, Set<number>>();
  /** `${user}\0${uuid}` → entry, oldest first (a Map iterates in insertion order). */
  private readonly sent = new Map<string, SentEntry>();
  private readonly dedupeWindowMs: number;
  private readonly clock: () => number;
  private nextMessageId: number;
  private nextRoomId: number;

  constructor(options: MemoryStoreOptions) {
    if (!Number.isSafeInteger(options.historyLimit) || options.historyLimit < 0) throw new RangeError('historyLimit must be a whole number ≥ 0');
    this.historyLimit = options.historyLimit;
    this.dedupeLimit = options.dedupeLimit ?? DEFAULT_DEDUPE_LIMIT;
    if (!Number.isSafeInteger(this.dedupeLimit) || this.dedupeLimit < 1) throw new RangeError('dedupeLimit must be a whole number ≥ 1');
    this.dedupeWindowMs = options.dedupeWindowMs ?? DEFAULT_DEDUPE_WINDOW_MS;
    if (!Number.isSafeInteger(this.dedupeWindowMs) || this.dedupeWindowMs < 1) throw new RangeError('dedupeWindowMs must be a whole number ≥ 1');
    this.clock = options.clock ?? Date.now;
    this.nextMessageId = options.firstMessageId ?? Date.now() * 1000;
    this.nextRoomId = options.firstRoomId ?? Date.now() * 1000;
  }

  // ---- writes --------------------------------------------------------------------------------------
  // Each write has two forms: the ChatStore method (a promise, already resolved: memory is all
  // there is), and an `…Now` method that returns the value with an `undo` that takes the write
  // back. A durable store (log-store.ts) applies a write with the `…Now` form at once, as the
  // contract says, and calls `undo` if the write then fails to reach the disk: later writes are
  // undone first, so each undo finds memory exactly as its write left it.

  createRoom(name: string, users: readonly string[], ts: number): Promise<Room> {
    return Promise.resolve(this.createRoomNow(name, users, ts).value);
  }

  addUsers(roomId: number, users: readonly string[]): Promise<Room> {
    return Promise.resolve(this.addUsersNow(roomId, users).value);
  }

  removeUser(roomId: number, user: string): Promise<Room> {
    return Promise.resolve(this.removeUserNow(roomId, user).value);
  }

  appendMessage(roomId: number, user: string, uuid: string, text: string, ts: number): Promise<Message> {
    return Promise.resolve(this.appendMessageNow(roomId, user, uuid, text, ts).value);
  }

  /** createRoom, applied now. `id` is given when the log is read back (chat-log.ts). */
  createRoomNow(name: string, users: readonly string[], ts: number, id = this.nextRoomId): Applied<Room> {
    this.nextRoomId = Math.max(this.nextRoomId, id + 1);
    const room: Room = { id, name, users: [...new Set(users)], lastActivity: ts };
    this.rooms.set(room.id, { room, history: [], trimmedUpTo: 0 });
    for (const user of room.users) this.index(user, room.id);
    return {
      value: room,
      undo: () => {
        this.rooms.delete(room.id);
        for (const user of room.users) this.unindex(user, room.id);
      },
    };
  }

  addUsersNow(roomId: number, users: readonly string[]): Applied<Room> {
    const record = this.record(roomId);
    const before = record.room;
    const members = new Set(before.users);
    const added: string[] = [];
    for (const user of users) {
      if (members.has(user)) continue; // a member already, or a repeat within `users`
      members.add(user);
      added.push(user);
    }
    if (added.length > 0) {
      record.room = { ...before, users: [...before.users, ...added] };
      for (const user of added) this.index(user, roomId);
    }
    return {
      value: record.room,
      undo: () => {
        record.room = before;
        for (const user of added) this.unindex(user, roomId);
      },
    };
  }

  removeUserNow(roomId: number, user: string): Applied<Room> {
    const record = this.record(roomId);
    const before = record.room;
    const wasMember = before.users.includes(user);
    record.room = { ...before, users: before.users.filter((member) => member !== user) };
    this.unindex(user, roomId);
    const deleted = record.room.users.length === 0;
    if (deleted) this.rooms.delete(roomId); // nobody can reach it again: see store.ts
    return {
      value: record.room,
      undo: () => {
        record.room = before;
        if (deleted) this.rooms.set(roomId, record); // with its history, as it was
        if (wasMember) this.index(user, roomId);
      },
    };
  }

  /** appendMessage, applied now. `id` is given when the log is read back (chat-log.ts). */
  appendMessageNow(roomId: number, user: string, uuid: string, text: string, ts: number, id = this.nextMessageId): Applied<Message> {
    this.nextMessageId = Math.max(this.nextMessageId, id + 1);
    const record = this.record(roomId);
    const roomBefore = record.room;
    const trimmedBefore = record.trimmedUpTo;
    // Field order = the protocol's message object, so JSON.stringify(message) is that object.
    const message: Message = { id, room: roomId, user, text, ts };
    let trimmed: Message | undefined;
    if (record.history.push(message) > this.historyLimit) {
      // shift() is cheap at these sizes (CHAT_HISTORY_SIZE is at most 10,000): V8 copies a short
      // array's elements and, for a longer one, moves the start of its backing store instead.
      trimmed = record.history.shift()!;
      record.trimmedUpTo = trimmed.id;
    }
    record.room = { ...roomBefore, lastActivity: Math.max(roomBefore.lastActivity, ts) };
    const key = dedupeKey(user, uuid);
    const replaced = this.sent.get(key); // an entry past the window, still in the table
    const forgotten = this.remember(key, { uuid, message }, ts);
    return {
      value: message,
      undo: () => {
        if (trimmed) record.history.unshift(trimmed);
        record.history.pop();
        record.trimmedUpTo = trimmedBefore;
        record.room = roomBefore;
        this.sent.delete(key);
        // What this write pushed out of the table goes back (at the end: the order of the table
        // only decides which entry is forgotten first, so this errs towards remembering).
        if (replaced) this.sent.set(key, replaced);
        for (const [oldKey, entry] of forgotten) this.sent.set(oldKey, entry);
      },
    };
  }

  /**
   * Adds a (user, uuid) entry and forgets the entries past the window or over the count; returns
   * what was forgotten (for undo). A Map iterates in insertion order, so the oldest come first.
   */
  private remember(key: string, entry: SentEntry, now: number): Array<[string, SentEntry]> {
    this.sent.delete(key); // so that set() puts it at the end, as the newest
    this.sent.set(key, entry);
    const forgotten: Array<[string, SentEntry]> = [];
    for (const [oldKey, old] of this.sent) {
      if (this.sent.size <= this.dedupeLimit && old.message.ts > now - this.dedupeWindowMs) break;
      this.sent.delete(oldKey);
      forgotten.push([oldKey, old]);
    }
    return forgotten;
  }

  // ---- what the log reads back and writes in a checkpoint (chat-log.ts) ---------------------------

  /** Sets a room's whole state, as a checkpoint recorded it (replacing what memory had). */
  restoreRoom(room: Room, history: readonly Message[], trimmedUpTo: number): void {
    const old = this.rooms.get(room.id);
    if (old) for (const user of old.room.users) this.unindex(user, room.id);
    const kept = this.historyLimit === 0 ? [] : history.slice(-this.historyLimit);
    const dropped = history.length - kept.length;
    this.rooms.set(room.id, { room, history: kept, trimmedUpTo: dropped > 0 ? Math.max(trimmedUpTo, history[dropped - 1].id) : trimmedUpTo });
    for (const user of room.users) this.index(user, room.id);
    this.nextRoomId = Math.max(this.nextRoomId, room.id + 1);
    for (const message of history) this.nextMessageId = Math.max(this.nextMessageId, message.id + 1);
  }

  /** Records a (user, uuid) pair read back from the log, even for a room memory no longer has. */
  restoreSent(uuid: string, message: Message): void {
    this.remember(dedupeKey(message.user, uuid), { uuid, message }, message.ts);
    this.nextMessageId = Math.max(this.nextMessageId, message.id + 1);
  }

  /**
   * Sets the dedupe table to `entries`, oldest first, exactly as a snapshot of it recorded them
   * (shared-chat.ts). Unlike restoreSent, nothing is forgotten on the way: which entries a table
   * keeps depends on the order and the times of every append that shaped it (records stamped by
   * clocks that disagree come out of time order), so replaying only the survivors with their own
   * times can forget one the table kept, and a tree started from the snapshot would then take a
   * retry for a new message where the others answer the original. Still bounded by dedupeLimit.
   */
  restoreSentTable(entries: Iterable<SentEntry>): void {
    this.sent.clear();
    for (const entry of entries) {
      this.sent.set(dedupeKey(entry.message.user, entry.uuid), { uuid: entry.uuid, message: entry.message });
      this.nextMessageId = Math.max(this.nextMessageId, entry.message.id + 1);
    }
    for (const key of this.sent.keys()) {
      if (this.sent.size <= this.dedupeLimit) break;
      this.sent.delete(key);
    }
  }

  /** Raises the next ids (a checkpoint records them, so that no id is given twice). */
  restoreNextIds(nextRoomId: number, nextMessageId: number): void {
    this.nextRoomId = Math.max(this.nextRoomId, nextRoomId);
    this.nextMessageId = Math.max(this.nextMessageId, nextMessageId);
  }

  /** Everything a checkpoint must keep: each room with its history, and the dedupe table. */
  roomRecords(): IterableIterator<Readonly<RoomRecord>> {
    return this.rooms.values();
  }

  roomRecord(id: number): Readonly<RoomRecord> | undefined {
    return this.rooms.get(id);
  }

  sentEntries(): IterableIterator<SentEntry> {
    return this.sent.values();
  }

  get nextIds(): { room: number; message: number } {
    return { room: this.nextRoomId, message: this.nextMessageId };
  }

  // ---- reads ---------------------------------------------------------------------------------------

  room(id: number): Room | undefined {
    return this.rooms.get(id)?.room;
  }

  roomsOf(user: string): readonly Room[] {
    const ids = this.roomIdsByUser.get(user);
    if (!ids) return [];
    return [...ids].map((id) => this.rooms.get(id)!.room);
  }

  findMessage(user: string, uuid: string): Message | undefined {
    return this.findMessageAt(user, uuid, this.clock());
  }

  /**
   * findMessage as of `now` (ms). The shared log (shared-chat.ts) asks as of the time written in
   * the record it applies, not its own clock, so that every tree decides alike, whenever it applies it.
   */
  findMessageAt(user: string, uuid: string, now: number): Message | undefined {
    const entry = this.sent.get(dedupeKey(user, uuid));
    // Past the window, an entry no longer counts even if it is still in the table (it is
    // forgotten at the next append): the window is a promise about time, not about traffic.
    if (!entry || entry.message.ts <= now - this.dedupeWindowMs) return undefined;
    return entry.message;
  }

  lastMessages(roomId: number, n: number): readonly Message[] {
    const history = this.rooms.get(roomId)?.history ?? [];
    return n <= 0 ? [] : history.slice(-n);
  }

  messagesSince(roomId: number, sinceId: number, n: number): MessagesSince {
    const record = this.rooms.get(roomId);
    if (!record) return { messages: [], complete: true };
    const history = record.history;
    // The history is sorted by id: find the first one above sinceId from the end (the usual
    // resume asks for the last few).
    let first = history.length;
    while (first > 0 && history[first - 1].id > sinceId) first--;
    const missing = history.length - first;
    // Complete if no message above sinceId was trimmed away and all of them fit in n.
    if (sinceId >= record.trimmedUpTo && missing <= n) return { messages: history.slice(first), complete: true };
    return { messages: this.lastMessages(roomId, n), complete: false };
  }

  // ---- helpers -------------------------------------------------------------------------------------

  private record(roomId: number): RoomRecord {
    const record = this.rooms.get(roomId);
    if (!record) throw new Error(`MemoryStore: no room ${roomId} (the caller must check first)`);
    return record;
  }

  private index(user: string, roomId: number): void {
    let ids = this.roomIdsByUser.get(user);
    if (!ids) this.roomIdsByUser.set(user, (ids = new Set()));
    ids.add(roomId);
  }

  private unindex(user: string, roomId: number): void {
    const ids = this.roomIdsByUser.get(user);
    ids?.delete(roomId);
    if (ids?.size === 0) this.roomIdsByUser.delete(user);
  }
}

/** User ids hold no control characters, so NUL cannot occur in one: the key is unambiguous. */
function dedupeKey(user: string, uuid: string): string {
  return `${user}\0${uuid}`;
}

/**
 * The reads of a store that keeps what it serves in a MemoryStore and adds a log behind it: the
 * file log (log-store.ts) and the shared log in Redis (shared-chat.ts). Reads never touch the log.
 */
export class MemoryReads implements ChatReads {
  protected readonly memory: MemoryStore;

  constructor(memory: MemoryStore) {
    this.memory = memory;
  }

  room(id: number): Room | undefined {
    return this.memory.room(id);
  }

  roomsOf(user: string): readonly Room[] {
    return this.memory.roomsOf(user);
  }

  findMessage(user: string, uuid: string): Message | undefined {
    return this.memory.findMessage(user, uuid);
  }

  lastMessages(roomId: number, n: number): readonly Message[] {
    return this.memory.lastMessages(roomId, n);
  }

  messagesSince(roomId: number, sinceId: number, n: number): MessagesSince {
    return this.memory.messagesSince(roomId, sinceId, n);
  }
}
