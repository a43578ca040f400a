// The chat's durable memory: what the lobby and the rooms write to the message log (log/), how it
// is read back at startup, and how old log is dropped. The log itself knows bytes and flushes; this
// file knows what the bytes mean.
//
//   primary: BroadcastLoop ─ appendLobby ─┐                      ┌─ replay at startup ─▶ lobby history
//            LogStore ── appendRoomWrite ─┼─▶ ChatLog ─▶ MessageLog (segments, group commit, fsync)
//            whenDurable(done) ◀──────────┘               └─ checkpoint, then drop old segments
//
// Theory of operation:
//
//   Records. Each record is one letter and, mostly, JSON. The letter says what to do when it is
//     read back; the JSON is what the protocol already speaks, so a record costs no other format:
//       L {"id","ts","sender","message"}  a lobby message: exactly the text every subscriber got
//       R {"id","name","users","ts"}      a room created
//       A {"room","users"}                users added to a room
//       X {"room","user"}                 a user left (the last one deletes the room)
//       M {"uuid","message":{…}}          a room message, with the uuid that dedupes its retries
//     and, in a checkpoint (below):
//       K {"seq"}                         a checkpoint begins, in segment `seq`
//       N {"room","message","lobby"}      the next ids
//       l {"trimmedUpTo","n"}             the lobby's whole history: the n h records that follow
//       h {"id","ts","sender","message"}  a message of that history
//       r {"room":{…},"trimmedUpTo","n"}  a room's whole state, with the n H records that follow
//       H {message}                       a message of that room's history
//       d {"uuid","message"}              an entry of the dedupe table
//       E {"seq"}                         the checkpoint is complete
//
//   Startup (`openChatLog`): every record is applied in order to the same memory the server then
//     serves from (MemoryStore, the lobby's history), before the port is open. The log module
//     cuts a torn tail (a crash mid-write) and refuses corruption anywhere else.
//
//   Retention by checkpoint. A log only grows; what must be kept is small: each room with its
//     members and last CHAT_HISTORY_SIZE messages, the dedupe table's window, the lobby's history.
//     So after CHAT_LOG_SEGMENT_BYTES of new log (or twice the last checkpoint, if that is more:
//     then rewriting what is kept costs at most as much as the traffic did), the chat starts a new
//     segment and writes into it a checkpoint: everything kept, as records, a few hundred per turn
//     of the event loop so that it never stalls the chat. Live records go on meanwhile,
//     interleaved. When the checkpoint's end is durable, the new segment holds all that matters
//     and the segments before it are deleted (off the event loop).
//
//     Why interleaving is safe: each checkpoint record is made from memory *when it is written*,
//     and memory already holds every record written before it. So a checkpoint record says
//     everything about its room up to that point, and replay lets it replace what came before;
//     a live record about a room whose checkpoint record comes later in the segment, once the
//     older segments are gone, names a room that does not exist yet at replay, and is skipped:
//     the later checkpoint record includes it. (A skipped M still records its uuid: the dedupe
//     table does not depend on the room.) A crash before E leaves the older segments in place,
//     and replaying them and then the partial checkpoint gives the same state.
//
//     Blocks. A room's r record and its H records, and the lobby's l record and its h records,
//     are appended in one go and so lie together in the log; each block is applied only once all
//     its n records are read. A block cut short (a crash mid-write, or a failed flush followed by
//     live records) is ignored: it was part of a checkpoint that never completed, so the older
//     segments it would have replaced are still there, and replaying them gives the state the
//     block described. Applied half-way, it would replace a room's history with part of it.
import { linkSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { LogUnavailableError, openLog, type LogFiles, type MessageLog } from './log/message-log.js';
import type { MemoryStore } from './rooms/memory-store.js';
import type { Message, Room } from './rooms/store.js';
import { StoreUnavailableError } from './rooms/store.js';
import { log } from './server/logger.js';

/**
 * A record's size at most: a room's record lists its members (CHAT_MAX_ROOM_MEMBERS up to 100,000
 * ids of up to 64 characters: about 26 MB as JSON in the worst case); anything longer is garbage.
 */
export const MAX_RECORD_BYTES = 32 * 1024 * 1024;

/** Checkpoint records written per turn of the event loop (a room counts its history's records). */
const CHECKPOINT_RECORDS_PER_TURN = 500;

/** What the log needs from the lobby's broadcast loop (broadcast.ts). */
export interface LobbyMemory {
  /** At replay: a lobby message, in id order. */
  restoreLobby(id: number, text: string): void;
  /** At replay: the lobby's history restarts (a checkpoint's `l` record). */
  resetLobby(trimmedUpTo: number): void;
  /** For a checkpoint: every lobby message kept, with those written but not yet durable. */
  lobbySnapshot(): { trimmedUpTo: number; ids: readonly number[]; texts: readonly string[]; nextId: number };
  /** At replay: raises the next lobby id. */
  restoreNextLobbyId(id: number): void;
}

export interface ChatLogOptions {
  dir: string;
  segmentBytes: number;
  /** The rooms' memory, and the dedupe window (ms): a checkpoint keeps the entries within it. */
  rooms: MemoryStore;
  dedupeWindowMs: number;
  lobby: LobbyMemory;
  /** The file operations (tests inject faults; default: node:fs). */
  files?: LogFiles;
}

export class ChatLog {
  private readonly log: MessageLog;
  private readonly options: ChatLogOptions;
  private readonly lockPath: string;
  /** bytesFlushed when the last checkpoint began, and what that checkpoint cost. */
  private checkpointStartedAt = 0;
  private lastCheckpointBytes = 0;
  private checkpointing = false;
  /** A checkpoint is to start in a microtask (see append). */
  private checkpointQueued = false;
  /** Checkpoints completed since startup (metrics, tests). */
  checkpoints = 0;

  /** Whether a checkpoint is being written (or its old segments deleted) now. */
  get checkpointInProgress(): boolean {
    return this.checkpointing;
  }

  constructor(messageLog: MessageLog, options: ChatLogOptions, lockPath: string) {
    this.log = messageLog;
    this.options = options;
    this.lockPath = lockPath;
  }

  /** False during a failure episode (the disk is full): every write is refused until it ends. */
  get healthy(): boolean {
    return this.log.healthy;
  }

  /** Flushes, bytes and records since startup (the benchmark and /metrics show them). */
  get stats(): MessageLog['stats'] {
    return this.log.stats;
  }

  /** The segment files now, oldest first. */
  get segments(): readonly number[] {
    return this.log.segments;
  }

  /** A lobby message; throws StoreUnavailableError when the log cannot take it (nothing written). */
  appendLobby(text: string): void {
    this.append('L' + text);
  }

  /** A room write (see the records above); throws StoreUnavailableError like appendLobby. */
  appendRoomCreated(room: Room): void {
    this.append('R' + JSON.stringify({ id: room.id, name: room.name, users: room.users, ts: room.lastActivity }));
  }

  appendUsersAdded(roomId: number, users: readonly string[]): void {
    this.append('A' + JSON.stringify({ room: roomId, users }));
  }

  appendUserRemoved(roomId: number, user: string): void {
    this.append('X' + JSON.stringify({ room: roomId, user }));
  }

  appendMessage(uuid: string, message: Message): void {
    this.append(`M{"uuid":${JSON.stringify(uuid)},"message":${JSON.stringify(message)}}`);
  }

  /** Calls `done` once everything appended so far is durable, or with the error if it never will be. */
  whenDurable(done: (error: Error | null) => void): void {
    this.log.whenDurable(done);
  }

  /** Flushes what is pending, closes the log and releases the directory. */
  async close(): Promise<void> {
    await this.log.close();
    rmSync(this.lockPath, { force: true });
  }

  private append(payload: string): void {
    try {
      this.log.append(payload);
    } catch (error) {
      if (error instanceof LogUnavailableError) throw new StoreUnavailableError(error.message, { cause: error });
      throw error;
    }
    // Two subtractions and a comparison per record: cheap enough to ask every time.
    if (!this.checkpointing && !this.checkpointQueued && this.log.flushedBytes - this.checkpointStartedAt > Math.max(this.options.segmentBytes, 2 * this.lastCheckpointBytes)) {
      // Not now: in a microtask, once the caller has returned. The caller notes its record in
      // memory only after this append returns (the lobby's loop adds it to its group awaiting
      // the flush), and the checkpoint takes its snapshot from memory: started from in here, it
      // would leave out this very record, already written to a segment the checkpoint deletes
      // (a delivered lobby message lost after a restart; the crash loop found it).
      this.checkpointQueued = true;
      queueMicrotask(() => {
        this.checkpointQueued = false;
        this.startCheckpoint();
      });
    }
  }

  // ---- retention ---------------------------------------------------------------------------------

  /** Starts a checkpoint in a new segment (see the top); returns at once, the work goes on over turns. */
  startCheckpoint(): void {
    if (this.checkpointing || !this.log.healthy) return;
    this.checkpointing = true;
    const startBytes = this.log.flushedBytes;
    this.checkpointStartedAt = startBytes;
    const { rooms, lobby, dedupeWindowMs } = this.options;
    const seq = this.log.rollSegment();
    // What to write, fixed now: the rooms and dedupe entries as they are at the start. Rooms made
    // later are R records in this segment already; a room gone by its turn is skipped.
    const roomIds = [...rooms.roomRecords()].map((record) => record.room.id);
    const oldest = Date.now() - dedupeWindowMs;
    const sent = [...rooms.sentEntries()].filter((entry) => entry.message.ts > oldest);
    let nextRoom = 0;
    let nextSent = 0;
    const giveUp = (error: unknown): void => {
      // The log is failing: give up; the older segments stay, and a later checkpoint tries again.
      // (The log's health changes only between turns, so no block is ever left half-appended.)
      this.checkpointing = false;
      if (!(error instanceof LogUnavailableError)) throw error;
    };
    const step = (): void => {
      try {
        let written = 0;
        while (nextRoom < roomIds.length && written < CHECKPOINT_RECORDS_PER_TURN) {
          const record = rooms.roomRecord(roomIds[nextRoom++]);
          if (!record) continue;
          this.log.append('r' + JSON.stringify({ room: record.room, trimmedUpTo: record.trimmedUpTo, n: record.history.length }));
          for (const message of record.history) this.log.append('H' + JSON.stringify(message));
          written += 1 + record.history.length;
        }
        while (nextRoom >= roomIds.length && nextSent < sent.length && written < CHECKPOINT_RECORDS_PER_TURN) {
          const entry = sent[nextSent++];
          this.log.append(`d{"uuid":${JSON.stringify(entry.uuid)},"message":${JSON.stringify(entry.message)}}`);
          written++;
        }
        if (nextRoom < roomIds.length || nextSent < sent.length) {
          setImmediate(step);
          return;
        }
        this.log.append('E' + JSON.stringify({ seq }));
      } catch (error) {
        giveUp(error);
        return;
      }
      this.log.whenDurable((error) => {
        if (error) {
          this.checkpointing = false;
          return;
        }
        this.lastCheckpointBytes = this.log.flushedBytes - startBytes;
        this.checkpoints++;
        this.log.dropSegmentsBefore(seq).then(
          () => { this.checkpointing = false; },
          (dropError: unknown) => {
            this.checkpointing = false;
            log.warning(`message log: could not delete old segments: ${(dropError as Error).message}`);
          },
        );
      });
    };
    try {
      this.log.append('K' + JSON.stringify({ seq }));
      const ids = rooms.nextIds;
      const snapshot = lobby.lobbySnapshot();
      this.log.append('N' + JSON.stringify({ room: ids.room, message: ids.message, lobby: snapshot.nextId }));
      // The lobby's part in one go, so that no live lobby record falls between its records.
      this.log.append('l' + JSON.stringify({ trimmedUpTo: snapshot.trimmedUpTo, n: snapshot.texts.length }));
      for (const text of snapshot.texts) this.log.append('h' + text);
    } catch (error) {
      giveUp(error);
      return;
    }
    setImmediate(step);
  }
}

/**
 * Opens the log in `options.dir` (creating it), takes the directory's lock, and applies every
 * record to the lobby and the rooms' memory. Throws (the server exits 3) on corruption, on a
 * directory another live server holds, or on a record it cannot read.
 */
export async function openChatLog(options: ChatLogOptions): Promise<ChatLog> {
  mkdirSync(options.dir, { recursive: true });
  const lockPath = takeLock(options.dir);
  const started = Date.now();
  let records = 0;
  let replayer: Replayer;
  try {
    replayer = new Replayer(options);
    const messageLog = await openLog({
      dir: options.dir,
      maxRecordBytes: MAX_RECORD_BYTES,
      segmentBytes: options.segmentBytes,
      files: options.files,
      // The log says when a failure episode starts and ends (once each) and when it cut a torn tail.
      warn: (line) => log.warning(line),
    }, (payload) => {
      records++;
      replayer.apply(payload);
    });
    replayer.abandonBlocks();
    if (replayer.ignoredBlocks > 0) log.warning(`message log: ignored ${replayer.ignoredBlocks} checkpoint block(s) cut short by a crash or a failed write (the older segments they were to replace hold the same state)`);
    const chatLog = new ChatLog(messageLog, options, lockPath);
    if (records === 0) {
      // A new log: whatever lobby ids a client saw before came from elsewhere (a wiped
      // directory, another server), so a resume from any id before now has a gap. Recorded, so
      // that the next start knows it too.
      const trimmedUpTo = options.lobby.lobbySnapshot().nextId - 1;
      options.lobby.resetLobby(trimmedUpTo);
      messageLog.append('l' + JSON.stringify({ trimmedUpTo, n: 0 }));
    }
    log.info(`message log: ${options.dir}, ${messageLog.segments.length} segment(s), ${records} records read back in ${Date.now() - started} ms`);
    return chatLog;
  } catch (error) {
    rmSync(lockPath, { force: true });
    throw error;
  }
}

/**
 * One server per data directory: two primaries appending to the same files would overwrite each
 * other's records. The lock is a file, LOCK, holding the owner's pid and host name.
 *   - It is created atomically (written aside, then hard-linked into place: link fails if LOCK
 *     exists), so two servers starting at once cannot both take it.
 *   - A lock left by a process that is gone (a crash, kill -9) on this host is taken over: renamed
 *     away first, which only one of two racing servers can do. So is a lock with this process's
 *     own pid: in a container the server may well get the same pid after every restart.
 *   - A lock from another host (a directory on shared storage, or another container with its
 *     own pid numbering) cannot be checked from here, so it is refused: the operator removes LOCK
 *     once sure that server is gone.
 */
function takeLock(dir: string): string {
  const path = join(dir, 'LOCK');
  const me = `${process.pid} ${hostname()}\n`;
  const aside = join(dir, `LOCK.${process.pid}.new`);
  writeFileSync(aside, me);
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        linkSync(aside, path);
        return path;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      let owner: string;
      try {
        owner = readFileSync(path, 'utf8');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue; // released meanwhile
        throw error;
      }
      const [pidText, host] = owner.trim().split(' ');
      const pid = Number.parseInt(pidText, 10);
      const stale = host === hostname() && Number.isSafeInteger(pid) && pid > 0 && (pid === process.pid || !processAlive(pid));
      if (!stale) {
        throw new Error(`CHAT_DATA_DIR ${dir} is in use by process ${pidText}${host && host !== hostname() ? ` on host ${host}` : ''} (${path}); stop that server first, or remove the file if no server uses the directory`);
      }
      const doomed = join(dir, `LOCK.${process.pid}.stale`);
      try {
        renameSync(path, doomed); // only one racer gets this; the other finds the new LOCK next time
        rmSync(doomed, { force: true });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
    }
    throw new Error(`CHAT_DATA_DIR ${dir}: could not take the lock ${path}`);
  } finally {
    rmSync(aside, { force: true });
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Applies records read back at startup (the table at the top of this file). */
class Replayer {
  private readonly rooms: MemoryStore;
  private readonly lobby: LobbyMemory;
  /** A block being read: a room's (r, then n H) or the lobby's (l, then n h), applied when whole. */
  private roomBlock: { room: Room; trimmedUpTo: number; n: number; history: Message[] } | null = null;
  private lobbyBlock: { trimmedUpTo: number; n: number; ids: number[]; texts: string[] } | null = null;
  /** Blocks ignored because they were cut short (see "Blocks" at the top). */
  ignoredBlocks = 0;

  constructor(options: ChatLogOptions) {
    this.rooms = options.rooms;
    this.lobby = options.lobby;
  }

  apply(payload: Buffer): void {
    const kind = String.fromCharCode(payload[0]);
    const json = payload.toString('utf8', 1);
    if (kind === 'H' && this.roomBlock) return this.addToRoomBlock(message(JSON.parse(json) as Message));
    if (kind === 'h' && this.lobbyBlock) return this.addToLobbyBlock(json);
    this.abandonBlocks(); // any other record ends a block before it was whole
    switch (kind) {
      case 'L': {
        const message = JSON.parse(json) as { id: number };
        this.lobby.restoreLobby(message.id, json);
        return;
      }
      case 'R': {
        const r = JSON.parse(json) as { id: number; name: string; users: string[]; ts: number };
        if (this.rooms.room(r.id)) throw new Error(`message log: room ${r.id} created twice`);
        this.rooms.createRoomNow(r.name, r.users, r.ts, r.id);
        return;
      }
      case 'A': {
        const r = JSON.parse(json) as { room: number; users: string[] };
        if (this.rooms.room(r.room)) this.rooms.addUsersNow(r.room, r.users);
        return;
      }
      case 'X': {
        const r = JSON.parse(json) as { room: number; user: string };
        if (this.rooms.room(r.room)) this.rooms.removeUserNow(r.room, r.user);
        return;
      }
      case 'M': {
        const r = JSON.parse(json) as { uuid: string; message: Message };
        const m = r.message;
        if (this.rooms.room(m.room)) this.rooms.appendMessageNow(m.room, m.user, r.uuid, m.text, m.ts, m.id);
        else this.rooms.restoreSent(r.uuid, message(m)); // see the top: its room's checkpoint comes later
        return;
      }
      case 'K':
      case 'E':
        return;
      case 'N': {
        const r = JSON.parse(json) as { room: number; message: number; lobby: number };
        this.rooms.restoreNextIds(r.room, r.message);
        this.lobby.restoreNextLobbyId(r.lobby);
        return;
      }
      case 'l': {
        const r = JSON.parse(json) as { trimmedUpTo: number; n: number };
        this.lobbyBlock = { trimmedUpTo: r.trimmedUpTo, n: r.n, ids: [], texts: [] };
        if (r.n === 0) this.addToLobbyBlock(null);
        return;
      }
      case 'r': {
        const r = JSON.parse(json) as { room: Room; trimmedUpTo: number; n: number };
        const room: Room = { id: r.room.id, name: r.room.name, users: r.room.users, lastActivity: r.room.lastActivity };
        this.roomBlock = { room, trimmedUpTo: r.trimmedUpTo, n: r.n, history: [] };
        if (r.n === 0) this.addToRoomBlock(null);
        return;
      }
      case 'H':
      case 'h':
        // A history record with no block open: its block's head was lost with a torn group, or
        // the block already had its n records. Either way it belongs to an ignored block.
        return;
      case 'd': {
        const r = JSON.parse(json) as { uuid: string; message: Message };
        this.rooms.restoreSent(r.uuid, message(r.message));
        return;
      }
      default:
        throw new Error(`message log: unknown record type ${JSON.stringify(kind)}`);
    }
  }

  /** Adds a message to the room block (null: none, for an empty history); applies it when whole. */
  private addToRoomBlock(entry: Message | null): void {
    const block = this.roomBlock!;
    if (entry) block.history.push(entry);
    if (block.history.length < block.n) return;
    this.roomBlock = null;
    this.rooms.restoreRoom(block.room, block.history, block.trimmedUpTo);
  }

  private addToLobbyBlock(json: string | null): void {
    const block = this.lobbyBlock!;
    if (json !== null) {
      block.ids.push((JSON.parse(json) as { id: number }).id);
      block.texts.push(json);
    }
    if (block.texts.length < block.n) return;
    this.lobbyBlock = null;
    this.lobby.resetLobby(block.trimmedUpTo);
    for (let i = 0; i < block.ids.length; i++) this.lobby.restoreLobby(block.ids[i], block.texts[i]);
  }

  /** At any other record, and at the end of the log: a block still open was cut short. */
  abandonBlocks(): void {
    if (this.roomBlock) this.ignoredBlocks++;
    if (this.lobbyBlock) this.ignoredBlocks++;
    this.roomBlock = null;
    this.lobbyBlock = null;
  }
}

/** A message with the protocol's fields in the protocol's order, whatever the JSON's order was. */
function message(m: Message): Message {
  return { id: m.id, room: m.room, user: m.user, text: m.text, ts: m.ts };
}
