// The durable ChatStore: the rooms' memory (memory-store.ts) with the message log (chat-log.ts)
// behind it. Reads are the memory's. A write is applied to memory at the call, its record is
// appended to the log, and its promise resolves when the log says the record is durable, which is
// when the service lets anyone hear of it (store.ts, service.ts).
//
// When the log fails a group (the disk is full, an I/O error), it fails every record after it as
// well, in order; this store then undoes, newest first, every write whose promise has not settled,
// so that memory is again exactly what the disk holds, and rejects them all, oldest first, with
// StoreUnavailableError (their clients get `unavailable`). While the log is failing, a write is
// refused at the call, having changed nothing.
import type { ChatLog } from '../chat-log.js';
import { MemoryReads, type Applied, type MemoryStore } from './memory-store.js';
import type { ChatStore, Message, Room } from './store.js';
import { StoreUnavailableError } from './store.js';

/** A write applied to memory and appended to the log, waiting for the log to say it is durable. */
interface Unsettled {
  readonly applied: Applied<unknown>;
  readonly reject: (error: Error) => void;
  settled: boolean;
}

const REFUSED = 'the message log cannot take writes now (see the server\'s log)';

/** The reads are the memory's (MemoryReads); the writes go to the memory and the log. */
export class LogStore extends MemoryReads implements ChatStore {
  private readonly log: ChatLog;
  /** Oldest first: the log settles them in this order. */
  private unsettled: Unsettled[] = [];

  constructor(memory: MemoryStore, log: ChatLog) {
    super(memory);
    this.log = log;
  }

  // ---- writes ------------------------------------------------------------------------------------

  createRoom(name: string, users: readonly string[], ts: number): Promise<Room> {
    return this.write(() => this.memory.createRoomNow(name, users, ts), (room) => this.log.appendRoomCreated(room));
  }

  addUsers(roomId: number, users: readonly string[]): Promise<Room> {
    // The record lists the users asked for: at replay, addUsersNow skips the members again.
    return this.write(() => this.memory.addUsersNow(roomId, users), () => this.log.appendUsersAdded(roomId, users));
  }

  removeUser(roomId: number, user: string): Promise<Room> {
    return this.write(() => this.memory.removeUserNow(roomId, user), () => this.log.appendUserRemoved(roomId, user));
  }

  appendMessage(roomId: number, user: string, uuid: string, text: string, ts: number): Promise<Message> {
    return this.write(() => this.memory.appendMessageNow(roomId, user, uuid, text, ts), (message) => this.log.appendMessage(uuid, message));
  }

  private write<T>(apply: () => Applied<T>, record: (value: T) => void): Promise<T> {
    if (!this.log.healthy) throw new StoreUnavailableError(REFUSED);
    const applied = apply();
    try {
      record(applied.value);
    } catch (error) {
      applied.undo(); // nothing was written: take the write back before anyone can see it
      throw error;
    }
    return new Promise<T>((resolve, reject) => {
      const entry: Unsettled = { applied, reject, settled: false };
      this.unsettled.push(entry);
      this.log.whenDurable((error) => {
        if (entry.settled) return; // rejected already, with an earlier write that failed
        if (error) return this.rollBack(error);
        entry.settled = true;
        this.unsettled.shift(); // the log settles in order: this is the oldest
        resolve(applied.value);
      });
    });
  }

  /** A write failed: undo every unsettled write, newest first, and reject them, oldest first. */
  private rollBack(cause: Error): void {
    const failed = this.unsettled;
    this.unsettled = [];
    for (let i = failed.length - 1; i >= 0; i--) failed[i].applied.undo();
    for (const entry of failed) {
      entry.settled = true;
      entry.reject(new StoreUnavailableError(REFUSED, { cause }));
    }
  }
}
