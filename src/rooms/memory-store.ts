// The in-memory ChatStore (the contract is in store.ts): everything is gone when the process
// stops, and every write is "durable" at once, so its promise is already resolved when returned.
// It is also the memory part of the durable stores to come, which add a log behind it.
//
// Bounds: each room keeps its last `historyLimit` messages; the dedupe table its last
// `dedupeLimit` entries (store.ts says why a count); a room whose last member leaves is deleted.
import type { ChatStore, Message, MessagesSince, Room } from './store.js';
import { DEFAULT_DEDUPE_LIMIT } from './store.js';

export interface MemoryStoreOptions {
  /** Messages kept per room, oldest dropped first: at least CHAT_HISTORY_SIZE. */
  historyLimit: number;
  /** Entries of the dedupe table (default DEFAULT_DEDUPE_LIMIT). */
  dedupeLimit?: number;
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

/** One room's memory: the immutable Room snapshot, its bounded history and what was trimmed. */
interface RoomRecord {
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
  /** `${user}\0${uuid}` → message, oldest first (a Map iterates in insertion order). */
  private readonly sent = new Map<string, Message>();
  private nextMessageId: number;
  private nextRoomId: number;

  constructor(options: MemoryStoreOptions) {
    if (!Number.isSafeInteger(options.historyLimit) || options.historyLimit < 0) throw new RangeError('historyLimit must be a whole number ≥ 0');
    this.historyLimit = options.historyLimit;
    this.dedupeLimit = options.dedupeLimit ?? DEFAULT_DEDUPE_LIMIT;
    if (!Number.isSafeInteger(this.dedupeLimit) || this.dedupeLimit < 1) throw new RangeError('dedupeLimit must be a whole number ≥ 1');
    this.nextMessageId = options.firstMessageId ?? Date.now() * 1000;
    this.nextRoomId = options.firstRoomId ?? Date.now() * 1000;
  }

  // ---- writes --------------------------------------------------------------------------------------

  createRoom(name: string, users: readonly string[], ts: number): Promise<Room> {
    const room: Room = { id: this.nextRoomId++, name, users: [...new Set(users)], lastActivity: ts };
    this.rooms.set(room.id, { room, history: [], trimmedUpTo: 0 });
    for (const user of room.users) this.index(user, room.id);
    return Promise.resolve(room);
  }

  addUsers(roomId: number, users: readonly string[]): Promise<Room> {
    const record = this.record(roomId);
    const members = new Set(record.room.users);
    const added: string[] = [];
    for (const user of users) {
      if (members.has(user)) continue; // a member already, or a repeat within `users`
      members.add(user);
      added.push(user);
    }
    if (added.length > 0) {
      record.room = { ...record.room, users: [...record.room.users, ...added] };
      for (const user of added) this.index(user, roomId);
    }
    return Promise.resolve(record.room);
  }

  removeUser(roomId: number, user: string): Promise<Room> {
    const record = this.record(roomId);
    record.room = { ...record.room, users: record.room.users.filter((member) => member !== user) };
    const ids = this.roomIdsByUser.get(user);
    ids?.delete(roomId);
    if (ids?.size === 0) this.roomIdsByUser.delete(user);
    if (record.room.users.length === 0) this.rooms.delete(roomId); // nobody can reach it again: see store.ts
    return Promise.resolve(record.room);
  }

  appendMessage(roomId: number, user: string, uuid: string, text: string, ts: number): Promise<Message> {
    const record = this.record(roomId);
    // Field order = the protocol's message object, so JSON.stringify(message) is that object.
    const message: Message = { id: this.nextMessageId++, room: roomId, user, text, ts };
    if (record.history.push(message) > this.historyLimit) {
      // shift() is cheap at these sizes (CHAT_HISTORY_SIZE is at most 10,000): V8 copies a short
      // array's elements and, for a longer one, moves the start of its backing store instead.
      record.trimmedUpTo = record.history.shift()!.id;
    }
    record.room = { ...record.room, lastActivity: Math.max(record.room.lastActivity, ts) };
    this.sent.set(dedupeKey(user, uuid), message);
    if (this.sent.size > this.dedupeLimit) this.sent.delete(this.sent.keys().next().value!);
    return Promise.resolve(message);
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
    return this.sent.get(dedupeKey(user, uuid));
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
}

/** User ids hold no control characters, so NUL cannot occur in one: the key is unambiguous. */
function dedupeKey(user: string, uuid: string): string {
  return `${user}\0${uuid}`;
}
