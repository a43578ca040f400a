// The chat shared by several server trees through Redis (CHAT_REDIS_URL): each tree's primary keeps
// a copy of the whole chat (the rooms' MemoryStore, the lobby's history) and applies one shared
// log to it, in the log's order, exactly as every other tree does. Redis's I/O is in
// redis/shared-log.ts; who is online where, in shared-presence.ts.
//
//   tree A: RoomService.submit / BroadcastLoop.publish ─▶ records of this turn ─▶ XADD chat:log
//   tree B: the same                                   ─▶                      ─▶ XADD chat:log
//                                                                                   │ one order
//   every tree: XREAD BLOCK ─▶ apply each record, in order ─▶ its own copy of the chat
//                               │ this tree's record: the requester's outcome (service.ts)
//                               └ another tree's: deliveries to this tree's connections
//
// Theory of operation:
//
//   A replicated state machine. A tree does not change the state when a request arrives: it
//     appends an *intent* (create a room, add users, leave, post a message; a lobby message) and
//     changes the state when the log hands the intent back. Every tree applies the same records
//     in the same order with the same rules, so every tree computes the same state: the same
//     room and message ids (from counters in the state), the same decisions, the same lobby ids
//     and texts. What a tree knows early (its copy, read when a request is handled) only serves to
//     refuse obviously wrong requests at once; the decision is made again at apply time, against
//     the state at that point of the log, because another tree may have changed it in between
//     (the room was deleted, the user left, a limit was reached, the retry's original came first).
//     Determinism has three conditions, each kept here: the rules are the same code on every tree
//     (one version of the server per Redis); the settings that change a decision are the same
//     (checked at startup against chat:config); and nothing is read from the applying tree's own
//     clock or randomness: times come from the record (the dedupe window is measured from the
//     record's ts: MemoryStore.findMessageAt), and the first ids from the first entry's stream id.
//
//   Records. One line each, in a stream entry that holds a tree's records of one turn:
//       L<seq> <ts> <tail>                          a lobby message; tail as the worker gave it
//       C{"s","u","name","users","ts"}              create a room (users: the members, creator first)
//       A{"s","u","room","users"}                   add users
//       X{"s","u","room"}                           leave
//       M{"s","u","room","uuid","text","ts"}        post a message
//     `s` numbers the intents of the tree that wrote the entry, so that it can match a record to
//     its request when the record comes back; `u` is the requester, checked (membership) at apply.
//
//   What an acknowledgement means. A room message is answered, and a lobby message delivered, when
//     the record comes back from Redis: Redis has it and every tree will apply it. How durable
//     that is depends on Redis's configuration (README: appendonly yes, appendfsync always for
//     "acknowledged means on disk", everysec for at most a second lost if Redis itself crashes).
//
//   Faults. While Redis cannot be reached, submit throws StoreUnavailableError (the client gets
//     `unavailable`; the lobby sender an error line) and nothing is sent. When the connection for
//     appends comes back, this tree reads the log up to its end as it is then (afterCatchUp): every
//     intent submitted before the loss that is still not applied never will be (it did not reach
//     Redis, or Redis lost it in a crash), and is answered `unavailable`: a client is never told
//     "stored" for a message that is not, and a retry with the same uuid is safe either way (the
//     dedupe table is part of the shared state). The follower catches up from its last id.
//
//   Bounded. Every CHAT_REDIS_SNAPSHOT_EVERY entries the tree whose entry it is stores a snapshot
//     of the state as of that entry (all trees have the same state there, so any one can), and
//     Redis cuts the stream back to the previous snapshot (shared-log.ts). A tree that starts
//     loads the snapshot, then reads the entries after it.
import { randomBytes } from 'node:crypto';
import type { BroadcastLoop, SharedLobby } from './broadcast.js';
import type { ChatConfig } from './config.js';
import { RedisConnectionError } from './redis/errors.js';
import { SharedLog, SharedLogGapError, streamIdTime, type LogEntry } from './redis/shared-log.js';
import { MemoryReads, type MemoryStore } from './rooms/memory-store.js';
import type { IntentResult, Message, Room, RoomIntent, SharedRoomEvent, SharedRoomListener, SharedStore } from './rooms/store.js';
import { StoreUnavailableError } from './rooms/store.js';
import { log } from './server/logger.js';
import { SharedPresence } from './shared-presence.js';

/**
 * Intents submitted and not yet applied, at most: beyond, a write is refused `unavailable` at once.
 * They wait for Redis, which may be slow or gone; 10,000 is the room service's own bound
 * (MAX_QUEUED_OUTCOMES) and far more than a healthy Redis keeps in flight (a round trip's worth).
 */
export const MAX_PENDING_INTENTS = 10_000;

const UNAVAILABLE = 'the shared log (Redis) cannot take writes now: nothing was stored; retry later with the same uuid';
const LOST = 'the shared log (Redis) was lost before this write was confirmed, and it is not in the log: nothing was stored; retry with the same uuid';

/** The settings that change what applying a record decides: every tree sharing Redis must agree. */
function sharedSettings(config: ChatConfig): string {
  return JSON.stringify({
    version: 1,
    historySize: config.historySize,
    maxRoomMembers: config.maxRoomMembers,
    maxRoomsPerUser: config.maxRoomsPerUser,
    dedupeWindow: config.dedupeWindow,
    dedupeMaxEntries: config.dedupeMaxEntries,
    redisSnapshotEvery: config.redisSnapshotEvery,
  });
}

/** A snapshot of the state, as stored in chat:snapshot (JSON). */
interface SnapshotState {
  v: 1;
  next: { room: number; message: number; lobby: number };
  lobby: { trimmedUpTo: number; ids: readonly number[]; texts: readonly string[] };
  rooms: Array<{ room: Room; history: readonly Message[]; trimmedUpTo: number }>;
  sent: Array<{ uuid: string; message: Message }>;
}

/** Reads are this tree's copy, as of the last entry applied (MemoryReads). */
export class SharedChat extends MemoryReads implements SharedStore, SharedLobby {
  readonly log: SharedLog;
  readonly presence: SharedPresence;
  private readonly config: ChatConfig;
  private readonly loop: BroadcastLoop;
  private listener: SharedRoomListener | null = null;
  /** This tree's intents waiting for the log, by number: what to tell when it applies (or loses) them. */
  private readonly pending = new Map<number, (result: IntentResult) => void>();
  private nextSeq = 1;
  /** This turn's records, appended as one entry at the end of the turn. */
  private turn: string[] = [];
  private turnSeqs: number[] = [];
  private flushQueued = false;
  /** Entries applied since the stream began (the snapshot's `n`). */
  private applied = 0;
  /** The state has its first ids (from a snapshot or the first entry: see seed). */
  private seeded = false;
  private nextLobbyId = 0;
  /** Redis was lost and has not been caught up with yet (logged once per episode). */
  private outage = false;
  /** Records skipped because they could not be read (another program writing to chat:log?). */
  skippedRecords = 0;
  snapshotsStored = 0;

  constructor(config: ChatConfig, memory: MemoryStore, loop: BroadcastLoop, sharedLog: SharedLog) {
    super(memory);
    this.config = config;
    this.loop = loop;
    this.log = sharedLog;
    this.presence = new SharedPresence(sharedLog);
  }

  /** This tree's writes sent and not yet back from the log (metrics). */
  get pendingCount(): number {
    return this.pending.size;
  }

  // ---- writes (SharedWrites, SharedLobby) --------------------------------------------------------

  submit(intent: RoomIntent, done: (result: IntentResult) => void): void {
    const seq = this.take();
    let record: string;
    switch (intent.k) {
      case 'create':
        record = 'C' + JSON.stringify({ s: seq, u: intent.user, name: intent.name, users: intent.users, ts: intent.ts });
        break;
      case 'add':
        record = 'A' + JSON.stringify({ s: seq, u: intent.user, room: intent.room, users: intent.users });
        break;
      case 'leave':
        record = 'X' + JSON.stringify({ s: seq, u: intent.user, room: intent.room });
        break;
      case 'message':
        record = 'M' + JSON.stringify({ s: seq, u: intent.user, room: intent.room, uuid: intent.uuid, text: intent.text, ts: intent.ts });
        break;
    }
    this.queue(seq, record, done);
  }

  submitLobby(ts: number, tail: string, failed: () => void): void {
    const seq = this.take();
    this.queue(seq, `L${seq} ${ts} ${tail}`, (result) => {
      if (!result.ok) failed();
    });
  }

  /** The next intent number, or StoreUnavailableError when no write can be taken now. */
  private take(): number {
    if (!this.log.connected) throw new StoreUnavailableError(UNAVAILABLE);
    if (this.pending.size >= MAX_PENDING_INTENTS) throw new StoreUnavailableError(`${MAX_PENDING_INTENTS} writes already wait for Redis: ${UNAVAILABLE}`);
    return this.nextSeq++;
  }

  private queue(seq: number, record: string, done: (result: IntentResult) => void): void {
    this.pending.set(seq, done);
    this.turn.push(record);
    this.turnSeqs.push(seq);
    if (this.flushQueued) return;
    this.flushQueued = true;
    setImmediate(() => this.flush());
  }

  /** This turn's records, as one entry: one XADD per turn, however many requests it held. */
  private flush(): Promise<void> {
    this.flushQueued = false;
    const records = this.turn;
    const seqs = this.turnSeqs;
    this.turn = [];
    this.turnSeqs = [];
    if (records.length === 0) return Promise.resolve();
    return this.log.append(records).then(() => {}, (error: unknown) => {
      // Not in the log, for sure: refused, or never written (not connected). If the connection
      // broke after the write, Redis may have it: that is settled after the reconnect (see the
      // top, "Faults"), once the log is read up to its end.
      if (error instanceof RedisConnectionError && error.mayHaveExecuted) return;
      for (const seq of seqs) this.fail(seq, UNAVAILABLE);
    });
  }

  private fail(seq: number, message: string): void {
    const done = this.pending.get(seq);
    if (!done) return;
    this.pending.delete(seq);
    done({ ok: false, code: 'unavailable', error: message });
  }

  // ---- applying the log ------------------------------------------------------------------------------

  /** Entries of the log, in order (at startup and while following). */
  applyEntries(entries: readonly LogEntry[]): void {
    for (const entry of entries) {
      if (!this.seeded) this.seed(streamIdTime(entry.id));
      const own = entry.tree === this.log.tree;
      for (const record of entry.records) {
        try {
          this.applyRecord(record, own);
        } catch (error) {
          // The same on every tree (the same record, the same code): skipping keeps them alike.
          this.skippedRecords++;
          log.warning(`shared log: skipped a record of entry ${entry.id} that cannot be applied (${(error as Error).message}): ${record.slice(0, 80)}`);
        }
      }
      this.applied++;
      if (own && this.applied % this.config.redisSnapshotEvery === 0) this.storeSnapshot(entry.id);
    }
  }

  /**
   * The first ids, from the time Redis added the first entry, in microseconds (as for a single
   * server: ids keep increasing even if Redis is emptied and the chat starts over). The lobby's
   * history starts there: a resume from an earlier id has a gap.
   */
  private seed(ms: number): void {
    this.seeded = true;
    const first = ms * 1000;
    this.memory.restoreNextIds(first, first);
    this.nextLobbyId = first;
    this.loop.resetLobby(first - 1);
  }

  private applyRecord(record: string, own: boolean): void {
    const kind = record[0];
    if (kind === 'L') {
      const space1 = record.indexOf(' ');
      const space2 = record.indexOf(' ', space1 + 1);
      if (space1 < 0 || space2 < 0) throw new Error('a lobby record without its fields');
      const seq = Number(record.slice(1, space1));
      // The ts goes into the text as it is: anything but the decimal ms submitLobby writes would
      // make every tree deliver an invalid message ("ts":NaN) or a time nobody gave.
      const tsField = record.slice(space1 + 1, space2);
      if (!/^\d{1,15}$/.test(tsField)) throw new Error('a lobby record whose ts is not a time in ms');
      const ts = Number(tsField);
      const id = this.nextLobbyId++;
      this.loop.deliverApplied(id, `{"id":${id},"ts":${ts},${record.slice(space2 + 1)}`);
      if (own) this.pending.delete(seq);
      return;
    }
    const r = JSON.parse(record.slice(1)) as { s: number; u: string; room: number; users: string[]; name: string; uuid: string; text: string; ts: number };
    if (typeof r.u !== 'string') throw new Error('a record without its user');
    let outcome: { result: IntentResult; event: SharedRoomEvent | null };
    switch (kind) {
      case 'C':
        outcome = this.applyCreate(r.u, r.name, r.users, r.ts);
        break;
      case 'A':
        outcome = this.applyAdd(r.u, r.room, r.users);
        break;
      case 'X':
        outcome = this.applyLeave(r.u, r.room);
        break;
      case 'M':
        outcome = this.applyMessage(r.u, r.room, r.uuid, r.text, r.ts);
        break;
      default:
        throw new Error(`unknown record type ${JSON.stringify(kind)}`);
    }
    const done = own ? this.pending.get(r.s) : undefined;
    if (done) {
      this.pending.delete(r.s);
      done(outcome.result);
    } else if (outcome.event) {
      this.listener?.applied(outcome.event);
    }
  }

  // The rules, as the room service checks them (rooms/service.ts), made again at this point of the log.

  private applyCreate(user: string, name: string, users: readonly string[], ts: number): { result: IntentResult; event: SharedRoomEvent | null } {
    if (typeof name !== 'string' || !Array.isArray(users) || !Number.isFinite(ts)) throw new Error('a malformed create record');
    const members = [...new Set([user, ...users])];
    if (members.length > this.config.maxRoomMembers) return refused('limit_reached', `a room holds at most ${this.config.maxRoomMembers} members`);
    const full = this.roomsFull(user, members);
    if (full) return refused('limit_reached', full);
    const room = this.memory.createRoomNow(name, members, ts).value;
    return { result: { ok: true, room, changed: true }, event: { k: 'room', room, recipients: room.users } };
  }

  private applyAdd(user: string, roomId: number, users: readonly string[]): { result: IntentResult; event: SharedRoomEvent | null } {
    if (!Array.isArray(users)) throw new Error('a malformed add record');
    const checked = this.memberRoom(user, roomId);
    if ('refused' in checked) return checked.refused;
    const room = checked.room;
    const added = [...new Set(users)].filter((u) => !room.users.includes(u));
    if (added.length === 0) return { result: { ok: true, room, changed: false }, event: null };
    if (room.users.length + added.length > this.config.maxRoomMembers) return refused('limit_reached', `room ${roomId} would have more than ${this.config.maxRoomMembers} members`);
    const full = this.roomsFull(user, added);
    if (full) return refused('limit_reached', full);
    const after = this.memory.addUsersNow(roomId, added).value;
    return { result: { ok: true, room: after, changed: true }, event: { k: 'room', room: after, recipients: after.users } };
  }

  private applyLeave(user: string, roomId: number): { result: IntentResult; event: SharedRoomEvent | null } {
    const checked = this.memberRoom(user, roomId);
    if ('refused' in checked) return checked.refused;
    const after = this.memory.removeUserNow(roomId, user).value;
    return { result: { ok: true, room: after, changed: true }, event: { k: 'room', room: after, recipients: [...after.users, user] } };
  }

  private applyMessage(user: string, roomId: number, uuid: string, text: string, ts: number): { result: IntentResult; event: SharedRoomEvent | null } {
    if (typeof uuid !== 'string' || typeof text !== 'string' || !Number.isFinite(ts)) throw new Error('a malformed message record');
    const original = this.memory.findMessageAt(user, uuid, ts);
    if (original) {
      // A retry: the original, if the requester may still see its room (as the service does).
      const checked = this.memberRoom(user, original.room);
      if ('refused' in checked) return checked.refused;
      return { result: { ok: true, room: checked.room, changed: false, message: original, duplicate: true }, event: null };
    }
    const checked = this.memberRoom(user, roomId);
    if ('refused' in checked) return checked.refused;
    const message = this.memory.appendMessageNow(roomId, user, uuid, text, ts).value;
    // The members at this point of the log receive it; the room object shows them.
    const room = this.memory.room(roomId)!;
    return { result: { ok: true, room, changed: true, message }, event: { k: 'message', room, uuid, message } };
  }

  private memberRoom(user: string, roomId: number): { room: Room } | { refused: { result: IntentResult; event: null } } {
    const room = Number.isSafeInteger(roomId) ? this.memory.room(roomId) : undefined;
    if (!room) return { refused: refused('not_found', `there is no room ${roomId}`) };
    if (!room.users.includes(user)) return { refused: refused('forbidden', `you are not a member of room ${roomId}`) };
    return { room };
  }

  /** The error if one of `users` is in the most rooms allowed, else null. */
  private roomsFull(requester: string, users: readonly string[]): string | null {
    const max = this.config.maxRoomsPerUser;
    const full = users.find((user) => this.memory.roomsOf(user).length >= max);
    if (full === undefined) return null;
    return full === requester ? `you are in the most rooms allowed (${max})` : `${JSON.stringify(full)} is in the most rooms allowed (${max})`;
  }

  // ---- snapshots ---------------------------------------------------------------------------------

  /** The state as of the entry just applied, stored in Redis (see the top, "Bounded"). */
  private storeSnapshot(pos: string): void {
    const lobby = this.loop.lobbySnapshot();
    const ids = this.memory.nextIds;
    const state: SnapshotState = {
      v: 1,
      next: { room: ids.room, message: ids.message, lobby: this.nextLobbyId },
      lobby: { trimmedUpTo: lobby.trimmedUpTo, ids: lobby.ids, texts: lobby.texts },
      rooms: [...this.memory.roomRecords()].map((record) => ({ room: record.room, history: record.history, trimmedUpTo: record.trimmedUpTo })),
      sent: [...this.memory.sentEntries()].map((entry) => ({ uuid: entry.uuid, message: entry.message })),
    };
    this.log.storeSnapshot(this.applied, pos, JSON.stringify(state)).then(
      () => { this.snapshotsStored++; },
      // The next interval's tree tries again; meanwhile the stream is simply longer.
      (error: unknown) => log.warning(`shared log: could not store a snapshot at ${pos}: ${(error as Error).message}`),
    );
  }

  /** At startup, before any entry: the state of a snapshot covering `entries` entries. */
  loadSnapshot(text: string, entries: number): void {
    const state = JSON.parse(text) as SnapshotState;
    if (state.v !== 1) throw new Error(`the snapshot in Redis has version ${String(state.v)}, which this server does not know`);
    this.memory.restoreNextIds(state.next.room, state.next.message);
    for (const record of state.rooms) this.memory.restoreRoom(record.room, record.history, record.trimmedUpTo);
    // As it was, not replayed (memory-store.ts says why): every tree must keep the same entries.
    this.memory.restoreSentTable(state.sent);
    this.loop.resetLobby(state.lobby.trimmedUpTo);
    for (let i = 0; i < state.lobby.ids.length; i++) this.loop.restoreLobby(state.lobby.ids[i], state.lobby.texts[i]);
    this.nextLobbyId = state.next.lobby;
    this.applied = entries;
    this.seeded = true;
  }

  // ---- presence and the service ---------------------------------------------------------------------

  attach(listener: SharedRoomListener): void {
    this.listener = listener;
    this.presence.start({ localUsers: () => listener.localUsers(), presenceChanged: (user) => listener.presenceChanged(user) });
  }

  remoteOnline(user: string): boolean {
    return this.presence.isOnline(user);
  }

  localPresence(user: string, online: boolean): void {
    this.presence.localChanged(user, online);
  }

  // ---- the connection's life ---------------------------------------------------------------------

  /** Follows the log from where startup left it, and watches the connection for outages. */
  startFollowing(): void {
    this.log.onCommandsLost(() => {
      if (this.outage) return;
      this.outage = true;
      log.warning(`shared log: lost Redis at ${this.log.where}: writes are answered "unavailable" until it is back`);
    });
    this.log.onCommandsConnected(() => {
      // Every intent submitted so far was submitted before the loss (none are taken during it).
      const upTo = this.nextSeq - 1;
      this.log.afterCatchUp(() => {
        let lost = 0;
        for (const seq of [...this.pending.keys()]) {
          if (seq > upTo) continue;
          lost++;
          this.fail(seq, LOST);
        }
        if (this.outage) log.info(`shared log: Redis at ${this.log.where} is back and this tree has caught up${lost > 0 ? `; ${lost} write(s) sent before the loss are not in the log and were answered "unavailable"` : ''}`);
        this.outage = false;
      });
    });
    this.log.follow({
      entries: (entries) => this.applyEntries(entries),
      presence: (entries) => this.presence.receive(entries),
      reconnected: () => this.presence.reconnected(),
      fatal: (message) => {
        log.error(`shared log: ${message}`);
        // A tree whose copy can no longer follow the log must not go on serving it.
        process.exit(1);
      },
    });
  }

  /** Says bye, appends what this turn holds, and closes the connections once Redis has both. */
  async close(): Promise<void> {
    await Promise.all([this.presence.stop(), this.flush()]);
    await this.log.close();
  }
}

function refused(code: 'not_found' | 'forbidden' | 'limit_reached', error: string): { result: IntentResult; event: null } {
  return { result: { ok: false, code, error }, event: null };
}

/**
 * Connects to Redis, checks the settings, loads the snapshot and every entry after it into
 * `memory` and `loop`, and starts following. Throws (the server exits 3) when Redis cannot be
 * reached or the settings differ from those of the trees already sharing it.
 */
export async function openSharedChat(config: ChatConfig, memory: MemoryStore, loop: BroadcastLoop): Promise<SharedChat> {
  const sharedLog = new SharedLog(config.redisUrl!, randomBytes(6).toString('hex'));
  await sharedLog.connect();
  const started = Date.now();
  const chat = new SharedChat(config, memory, loop, sharedLog);
  try {
    const mine = sharedSettings(config);
    const stored = await sharedLog.checkConfig(mine);
    if (stored !== null) {
      throw new Error(`CHAT_REDIS_URL: every server tree sharing Redis must run with the same settings (they decide what each write does). Redis has ${stored} from the first tree; this one has ${mine}. Set the same values, or, to change them for all, stop every tree and delete the key chat:config`);
    }
    const snapshot = await sharedLog.readSnapshot();
    if (snapshot.state !== null) chat.loadSnapshot(snapshot.state, snapshot.entries);
    let entries = 0;
    await sharedLog.catchUp((read) => {
      entries += read.length;
      chat.applyEntries(read);
    });
    log.info(`shared log: Redis at ${sharedLog.where}, this tree is ${sharedLog.tree}; read ${snapshot.state === null ? 'no snapshot' : `a snapshot of ${snapshot.entries} entries`} and ${entries} entries after it in ${Date.now() - started} ms`);
  } catch (error) {
    await sharedLog.close();
    if (error instanceof SharedLogGapError) throw new Error(`${error.message} (it happened during startup: start again)`);
    throw error;
  }
  chat.startFollowing();
  return chat;
}
