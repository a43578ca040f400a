// The chat's append-only message log: records (record.ts) in segment files, made durable by group
// commit, read back in order at startup, and repaired by itself after a failed write.
//
// Theory of operation
//
// Files. A data directory holds segment files named by a 20-digit zero-padded sequence number:
//   00000000000000000001.log, 00000000000000000002.log, ... Each is a run of records; together, in
//   number order, they are the log. Only the last is written to. Any other file in the directory
//   is not ours: it is neither read nor touched. Old history goes by deleting whole segments
//   (rollSegment starts a new one, dropSegmentsBefore deletes those before it).
//
// Group commit. A record is acknowledged only once it is durable: written and fdatasync'ed. A flush
//   costs a disk round trip (a fraction of a millisecond on an SSD, far more on a disk or a busy
//   cloud volume), so one flush per record would cap the whole chat at a few thousand messages a
//   second and keep the event loop waiting. Instead:
//   - append() only encodes the record into the *open group*, a growing buffer, and returns. No
//     promise and no Buffer per record: the bytes are written straight into place.
//   - When the open group gets its first record and no write is in flight, a write is scheduled
//     with setImmediate: it runs after the I/O callbacks of this turn of the event loop, so every
//     record appended during the turn (every message of every socket that had data) joins the group.
//   - The flight: the group's bytes go to the file in ONE write (looping only if the kernel wrote
//     less) at the file's durable length, then ONE fdatasync; both are async fs calls, run on
//     libuv's thread pool, so the event loop goes on serving while the disk works.
//   - Meanwhile new appends fill the next open group. When the flight ends, the callbacks registered
//     with whenDurable for its records run, in order, and the next group (if it has anything) takes
//     off at once. At most one group is in flight, so a group is written only after the one before
//     it is durable: the file is always "durable prefix + at most one group being written".
//   Nothing ever waits on a timer: an idle log costs nothing, a lone record is flushed at once, and
//   under load each flush carries everything that arrived during the previous one, so the flush
//   rate adapts to the disk by itself (a slower disk means bigger groups, not a longer queue of
//   flushes). A group holds at most maxGroupBytes (a bigger one would delay its first record's
//   acknowledgement for the sake of its last); more records seal it and open the next, which waits
//   its turn. Two buffers (the open group's and the one in flight) are swapped and reused, so a
//   steady load allocates nothing.
//
// Segments. A group goes to the segment chosen when it opened: the current one, or a new one if
//   the current has reached segmentBytes or rollSegment asked for it. A new segment file is created
//   ('wx': never over an existing file) and the directory fsync'ed (so that the new name itself
//   survives a power loss) in the flight of its first group, before that group's write.
//
// Faults ("nothing is acknowledged that is not durable"). If a group's write or fdatasync fails
//   (ENOSPC, EIO, ...), or a new segment cannot be created:
//   - that group's records, and those of every group opened after it, are forgotten (never written
//     later), and their callbacks will get a LogUnavailableError (the cause attached), in order. Not
//     at once: a failed write may have left whole records in the file (a short write on a full disk
//     stops after some of them), and after a failed fdatasync their pages may still reach the disk
//     later. The error tells a client "not stored" (the chat's `unavailable`), and a crash before
//     the repair's cut would bring those records back at restart. So the callbacks are held until
//     the repair's first successful ftruncate + fdatasync (below) has made the cut durable, however
//     long the episode lasts; close() during an episode tries the cut once more, then calls them
//     with the error whatever happened, so that nobody waits forever.
//   - the log is *unhealthy* at once: append throws LogUnavailableError (changing nothing) until
//     repaired, and whenDurable's callbacks join the held ones. onHealthChange(false, cause) and one
//     warn line mark the start of the episode.
//   - Repair: the file is cut back to its durable length (ftruncate) and that is made durable
//     (fdatasync). Why not simply retry the fdatasync? Because after a failed fsync Linux may have
//     marked the failed dirty pages clean (they are dropped, or kept with contents that never
//     reached the disk), and a second fsync then reports success for data that is not on the disk
//     ("fsyncgate", PostgreSQL 2018). So a failed group's bytes are never trusted: they are cut off,
//     and a successful ftruncate + fdatasync leaves the file in a known state, exactly the
//     acknowledged records, with no unacknowledged byte that could come back after a crash. Only
//     then are the held callbacks called.
//   - Then a probe: as many zero bytes as the failed group had are written past the end, flushed,
//     and cut off again. Truncating frees space even on a full disk, so without the probe the log
//     would declare itself healthy at once and fail again with the next message, an "episode" per
//     message; with it the episode ends only when a group of that size can really be written.
//     (Zeros read as a bad record with no valid record after it, and the probe is at most
//     maxGroupBytes, even after a failed single record bigger than that, so a crash during the probe
//     leaves a torn tail that the next start cuts off; see below.)
//   - Each step that fails is retried with backoff (retryDelayMs, 50 ms doubling to 2 s): a timer
//     is fine here, it paces retries, it does not delay any commit. When all succeed the log is
//     healthy again: onHealthChange(true) and a "resumed" warn line.
//
// Recovery (openLog). Segments are read oldest first; each valid record goes to onRecord. Because
//   a group is written in one write, and only after the previous one is durable, a crash can damage
//   only the last group written: the end of the last segment, within one group (at most
//   maxGroupBytes, or a single record if it is bigger: such a record is a group by itself). What a
//   crash there leaves is a *torn tail*: the file is cut at the first bad or incomplete record (it
//   was never acknowledged), one warn line says so, and the log starts. Anything else is damage (a
//   disk, a person, a bug), and openLog refuses with LogCorruptionError, which names the file and
//   the byte offset and says how to repair, and changes nothing: a silent cut would lose records
//   that were acknowledged. The rule, for the first record of the last segment that is not valid:
//   - 'incomplete' (its length field runs past the end of the file): a torn tail, however far from
//     the end it starts, since it may be one big record being written;
//   - 'bad' (a CRC mismatch, a length of 0 or over maxRecordBytes): a torn tail only if it starts
//     within maxGroupBytes of the end, or is one whole record ending exactly at the end (a single
//     big record that was being written);
//   - in both cases, and only if no valid record can be found after it: every later offset up to
//     the end is tried as a record start (a plausible length, then the CRC; the CRC work is bounded
//     by TAIL_SCAN_CRC_BUDGET_BYTES, and an inconclusive scan refuses). Why a valid record after a
//     bad one means damage, not a tear: the bytes of the last group are written after everything
//     before them is durable, so a crash cannot leave a hole *followed by* good records; a bit flip
//     in an acknowledged record can (and a flipped length field can make a record seem to run past
//     the end of the file, hence the check for 'incomplete' too).
//   The residual case, said honestly: a power loss during the last group's write may persist a later
//   page of it but not an earlier one (the disk writes pages in any order). That tail then holds a
//   hole followed by valid records, and openLog refuses it although it is only a tear; the error
//   says where, and cutting the file there (truncate -s OFFSET FILE, as the message says) loses
//   nothing acknowledged, since the whole group was never acknowledged.
//   The last segment is fdatasync'ed before use: a process that crashed may have left
//   written-but-unflushed records in the page cache, and what is read back (and so acted upon) must
//   be durable.
import * as fs from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { RECORD_HEADER_BYTES, MAX_PAYLOAD_LENGTH_FIELD, describeBadRecord, encodeRecordInto, readRecord, recordSizeBound } from './record.js';

/** The log cannot take or make durable writes now (a failed write or flush, being repaired, or closed). */
export class LogUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LogUnavailableError';
  }
}

/** A bad record where a crash cannot have put it: the log refuses to start (see "Recovery"). */
export class LogCorruptionError extends Error {
  /** The segment file, as dir/name. */
  readonly file: string;
  /** The byte offset of the first bad record in it. */
  readonly offset: number;
  constructor(file: string, offset: number, reason: string, laterSegments: readonly string[]) {
    const later = laterSegments.length === 0 ? '' : ` and remove the segment files after it (${laterSegments.join(', ')})`;
    super(
      `the message log is corrupt at ${file} byte ${offset}: ${reason}. Nothing was changed. ` +
        `To start anyway, keep a copy of the directory, then cut the file at that offset ` +
        `(truncate -s ${offset} ${file})${later}; the records from that point on are lost.`,
    );
    this.name = 'LogCorruptionError';
    this.file = file;
    this.offset = offset;
  }
}

type Callback<T> = (error: NodeJS.ErrnoException | null, value: T) => void;
type Done = (error: NodeJS.ErrnoException | null) => void;

/**
 * The file operations the log uses once open (and for the directory syncs at open), in node:fs's
 * callback form (numbers for descriptors).
 * All of them run on libuv's thread pool. Tests wrap NODE_FILES to count calls or inject failures.
 */
export interface LogFiles {
  open(path: string, flags: string, mode: number, callback: Callback<number>): void;
  write(fd: number, buffer: Buffer, offset: number, length: number, position: number, callback: Callback<number>): void;
  fdatasync(fd: number, callback: Done): void;
  /** Used on directories: at open, and after a segment file is created. */
  fsync(fd: number, callback: Done): void;
  ftruncate(fd: number, length: number, callback: Done): void;
  close(fd: number, callback: Done): void;
  unlink(path: string, callback: Done): void;
}

/** The real files. */
export const NODE_FILES: LogFiles = {
  open: (path, flags, mode, callback) => fs.open(path, flags, mode, callback),
  write: (fd, buffer, offset, length, position, callback) => fs.write(fd, buffer, offset, length, position, callback),
  fdatasync: (fd, callback) => fs.fdatasync(fd, callback),
  fsync: (fd, callback) => fs.fsync(fd, callback),
  ftruncate: (fd, length, callback) => fs.ftruncate(fd, length, callback),
  close: (fd, callback) => fs.close(fd, callback),
  unlink: (path, callback) => fs.unlink(path, callback),
};

export interface OpenLogOptions {
  /** The data directory; created (with its parents) if missing. */
  dir: string;
  /** The largest payload in bytes: a bigger append throws RangeError; a bigger length field read is 'bad'. */
  maxRecordBytes: number;
  /** The most bytes one group (one write) holds, default 4 MiB; a bigger single record is a group by itself. */
  maxGroupBytes?: number;
  /** When the current segment has reached this many bytes (default 64 MiB), the next group starts a new one. */
  segmentBytes?: number;
  /** The file operations used after open (default NODE_FILES): tests inject faults here. */
  files?: LogFiles;
  /** One line per event: a torn tail cut, a failure episode started or ended. Default: console.warn. */
  warn?: (line: string) => void;
  /** The repair's retry delays: from `first` ms, doubling up to `max` ms (default 50 to 2000). */
  retryDelayMs?: { first: number; max: number };
}

export const DEFAULT_MAX_GROUP_BYTES = 4 * 1024 * 1024;
export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
const DEFAULT_RETRY_DELAY_MS = { first: 50, max: 2000 };
/** A group buffer's first size; it grows (doubling) to what a turn appends, and is reused. */
const INITIAL_GROUP_BUFFER_BYTES = 64 * 1024;
/** The reader's buffer: at least this, and at least one whole record. */
const READ_CHUNK_BYTES = 1024 * 1024;
const SEGMENT_NAME = /^(\d{20})\.log$/;
/**
 * The most payload bytes recovery CRC-checks while looking for a valid record after a bad one in
 * the last segment (see "Recovery"): a tail of random bytes could otherwise cost quadratic time.
 * 256 MiB is a fraction of a second of CRC-32; real tails (zeros, or text) need almost none of it.
 */
const TAIL_SCAN_CRC_BUDGET_BYTES = 256 * 1024 * 1024;

/** A segment's file name: its sequence number, zero-padded to 20 digits (so names sort as numbers). */
export function segmentFileName(seq: number): string {
  return `${String(seq).padStart(20, '0')}.log`;
}

/** One group: records encoded back to back, the segment they go to, and who waits for them. */
interface Group {
  buffer: Buffer;
  length: number;
  segment: number;
  callbacks: Array<(error: Error | null) => void>;
}

/**
 * Reads every segment in order, calls onRecord for each valid record (the payload is a view into
 * the reader's buffer, valid only during the call: copy or decode it), cuts a torn tail (with a
 * warn line), then returns the log ready for appends. Rejects with LogCorruptionError on a bad
 * record anywhere else, changing nothing. Reading uses synchronous fs: it runs before the server
 * serves, and it is simpler to reason about.
 */
export async function openLog(options: OpenLogOptions, onRecord: (payload: Buffer) => void): Promise<MessageLog> {
  const maxRecordBytes = options.maxRecordBytes;
  const maxGroupBytes = options.maxGroupBytes ?? DEFAULT_MAX_GROUP_BYTES;
  const segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
  checkWholeNumber('maxRecordBytes', maxRecordBytes, 1, MAX_PAYLOAD_LENGTH_FIELD);
  checkWholeNumber('maxGroupBytes', maxGroupBytes, 1, Number.MAX_SAFE_INTEGER);
  checkWholeNumber('segmentBytes', segmentBytes, 1, Number.MAX_SAFE_INTEGER);
  const warn = options.warn ?? ((line: string) => console.warn(line));
  const dir = options.dir;

  const files = options.files ?? NODE_FILES;
  // The data directory's own entry must survive a power loss, whoever created it (the caller may
  // have, just before, and not synced its parent): fsync its parent at every open (one cheap
  // fsync), and the parent of every other directory created here.
  const firstCreated = fs.mkdirSync(dir, { recursive: true });
  const top = resolve(firstCreated ?? dir);
  for (let created = resolve(dir); ; created = dirname(created)) {
    await syncParent(files, created, warn);
    if (created === top || created === dirname(created)) break;
  }
  const segments = listSegments(dir);
  let fd: number;
  if (segments.length === 0) {
    segments.push(1);
    fd = fs.openSync(join(dir, segmentFileName(1)), 'wx+', 0o644);
    syncDirectory(dir);
  } else {
    for (let i = 0; i < segments.length - 1; i++) {
      const file = join(dir, segmentFileName(segments[i]!));
      const readFd = fs.openSync(file, 'r');
      try {
        const damage = readSegment(readFd, maxRecordBytes, onRecord);
        if (damage) throw new LogCorruptionError(file, damage.offset, damage.reason, segments.slice(i + 1).map(segmentFileName));
      } finally {
        fs.closeSync(readFd);
      }
    }
    const file = join(dir, segmentFileName(segments[segments.length - 1]!));
    fd = fs.openSync(file, 'r+');
    try {
      const damage = readSegment(fd, maxRecordBytes, onRecord);
      if (damage) {
        const size = fs.fstatSync(fd).size;
        const refusal = judgeTail(fd, size, damage, maxRecordBytes, maxGroupBytes);
        if (refusal !== null) throw new LogCorruptionError(file, damage.offset, refusal, []);
        fs.ftruncateSync(fd, damage.offset);
        fs.fsyncSync(fd);
        warn(`log: cut a torn tail of ${size - damage.offset} bytes at ${file} offset ${damage.offset} (a write interrupted by a crash; it was never acknowledged)`);
      }
      // What was read back must be durable before anything acts on it (see "Recovery").
      fs.fdatasyncSync(fd);
    } catch (error) {
      fs.closeSync(fd);
      throw error;
    }
  }
  const durableLength = fs.fstatSync(fd).size;
  return new MessageLog({
    dir,
    fd,
    segments,
    durableLength,
    maxRecordBytes,
    maxGroupBytes,
    segmentBytes,
    files,
    warn,
    retryDelayMs: options.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS,
  });
}

function checkWholeNumber(name: string, value: number, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) throw new RangeError(`${name} must be a whole number from ${min} to ${max}, not ${value}`);
}

/** The sequence numbers of the segment files in `dir`, oldest first. */
function listSegments(dir: string): number[] {
  const segments: number[] = [];
  for (const name of fs.readdirSync(dir)) {
    const match = SEGMENT_NAME.exec(name);
    if (!match) continue;
    const seq = Number(match[1]);
    if (!Number.isSafeInteger(seq)) throw new Error(`the message log's segment ${join(dir, name)} has a number too large to be ours; move it out of the directory`);
    segments.push(seq);
  }
  return segments.sort((a, b) => a - b);
}

/**
 * fsync the directory holding `path`, so that its entry survives a power loss. A parent we may not
 * read (EACCES, EPERM: opening a directory needs read permission) is not a reason to refuse to
 * start: one warn line says what is not guaranteed.
 */
async function syncParent(files: LogFiles, path: string, warn: (line: string) => void): Promise<void> {
  const parent = dirname(path);
  try {
    const fd = await call<number>((done) => files.open(parent, 'r', 0, done));
    try {
      await call<void>((done) => files.fsync(fd, done));
    } finally {
      files.close(fd, () => {});
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM') throw error;
    warn(`log: cannot fsync ${parent} (${code}): if ${path} was just created, its entry may not survive a power loss`);
  }
}

/** fsync a directory, so that names created or removed in it survive a power loss. */
function syncDirectory(path: string): void {
  const fd = fs.openSync(path, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Reads the records of one segment file from its start, through a buffer that always holds a whole
 * record (so memory is bounded by the chunk size and maxRecordBytes, not by the file). Returns the
 * first bad or incomplete record's offset, or null if every byte belongs to a valid record.
 */
function readSegment(fd: number, maxRecordBytes: number, onRecord: (payload: Buffer) => void): Damage | null {
  const buffer = Buffer.allocUnsafe(Math.max(READ_CHUNK_BYTES, RECORD_HEADER_BYTES + maxRecordBytes));
  let base = 0; // the file offset of buffer[0]
  let start = 0; // the next record's offset in buffer
  let end = 0; // valid bytes in buffer
  for (;;) {
    const read = fs.readSync(fd, buffer, end, buffer.length - end, base + end);
    if (read === 0) break;
    end += read;
    for (;;) {
      const record = readRecord(buffer, start, maxRecordBytes, end);
      if (record === 'incomplete') break;
      if (record === 'bad') return { offset: base + start, reason: describeBadRecord(buffer, start, maxRecordBytes, end), incomplete: false, lengthField: buffer.readUInt32BE(start) };
      onRecord(record.payload);
      start = record.next;
    }
    // Move the incomplete rest to the front; the buffer holds a whole record, so there is room.
    buffer.copy(buffer, 0, start, end);
    base += start;
    end -= start;
    start = 0;
  }
  if (end === 0) return null;
  const reason = end < RECORD_HEADER_BYTES ? `a record header cut short (${end} of ${RECORD_HEADER_BYTES} bytes)` : `a ${buffer.readUInt32BE(0)}-byte record cut short (${end - RECORD_HEADER_BYTES} bytes of payload)`;
  return { offset: base, reason, incomplete: true, lengthField: end < RECORD_HEADER_BYTES ? 0 : buffer.readUInt32BE(0) };
}

/** The first record of a segment that is not valid: where, why, and what kind (see "Recovery"). */
interface Damage {
  offset: number;
  reason: string;
  /** True if the bytes end before the record does; false if the record is 'bad'. */
  incomplete: boolean;
  /** The record's length field (0 if the header itself is cut short). */
  lengthField: number;
}

/**
 * Decides whether the damage in the last segment (`size` bytes) is a torn tail (returns null) or
 * corruption (returns the reason to refuse with), by the rule in "Recovery".
 */
function judgeTail(fd: number, size: number, damage: Damage, maxRecordBytes: number, maxGroupBytes: number): string | null {
  const tailBytes = size - damage.offset;
  if (!damage.incomplete) {
    const wholeRecordToEnd = damage.lengthField > 0 && damage.lengthField <= maxRecordBytes && RECORD_HEADER_BYTES + damage.lengthField === tailBytes;
    if (tailBytes > maxGroupBytes && !wholeRecordToEnd) {
      return `${damage.reason}, ${tailBytes} bytes from the end of the last segment: further than one group (${maxGroupBytes} bytes), so not a write that a crash interrupted`;
    }
  }
  // Bounded: an incomplete record is shorter than its length field says (at most maxRecordBytes),
  // and a bad one is within a group of the end or one record long.
  const tail = Buffer.allocUnsafe(tailBytes);
  let filled = 0;
  while (filled < tailBytes) {
    const read = fs.readSync(fd, tail, filled, tailBytes - filled, damage.offset + filled);
    if (read === 0) break;
    filled += read;
  }
  const found = findValidRecord(tail.subarray(0, filled), 1, maxRecordBytes, TAIL_SCAN_CRC_BUDGET_BYTES);
  if (found === null) return null;
  if (found === 'budget') {
    return `${damage.reason}; whether a valid record follows it could not be decided within ${TAIL_SCAN_CRC_BUDGET_BYTES} bytes of CRC checks, so it is not taken for a torn write`;
  }
  return (
    `${damage.reason}, followed by a valid record at byte ${damage.offset + found}: a crash tears only the end of the last write, ` +
    `so this is damage (or, rarely, a power loss that kept a later page of the last write but not this one; ` +
    `then nothing from this offset on was acknowledged, and cutting the file here loses nothing)`
  );
}

/**
 * The offset of the first valid record starting at or after `from` in `bytes` (a plausible length
 * that fits, then a matching CRC), null if there is none, or 'budget' if more than `crcBudget`
 * payload bytes would have to be CRC-checked to know.
 */
function findValidRecord(bytes: Buffer, from: number, maxRecordBytes: number, crcBudget: number): number | null | 'budget' {
  let budget = crcBudget;
  for (let offset = from; offset + RECORD_HEADER_BYTES < bytes.length; offset++) {
    const length = bytes.readUInt32BE(offset);
    if (length === 0 || length > maxRecordBytes || offset + RECORD_HEADER_BYTES + length > bytes.length) continue;
    budget -= length;
    if (budget < 0) return 'budget';
    if (readRecord(bytes, offset, maxRecordBytes) !== 'bad') return offset;
  }
  return null;
}

interface MessageLogState {
  dir: string;
  fd: number;
  segments: number[];
  durableLength: number;
  maxRecordBytes: number;
  maxGroupBytes: number;
  segmentBytes: number;
  files: LogFiles;
  warn: (line: string) => void;
  retryDelayMs: { first: number; max: number };
}

/** The log, open for appends. Made by openLog. */
export class MessageLog {
  private readonly dir: string;
  private readonly files: LogFiles;
  private readonly warn: (line: string) => void;
  private readonly maxRecordBytes: number;
  private readonly maxGroupBytes: number;
  private readonly segmentLimit: number;
  private readonly retryDelayMs: { first: number; max: number };
  private readonly segmentList: number[];

  // The file being written: the last segment, its descriptor and how much of it is durable.
  private fd: number;
  private currentSeq: number;
  private durableLength: number;
  /** The next segment number to give out (never reused, even if a roll failed). */
  private nextSeq: number;

  // Where appends go: the open group (null until the first record after a seal), the sealed groups
  // waiting for their flight, and the one in flight.
  private open: Group | null = null;
  private readonly sealed: Group[] = [];
  private inFlight: Group | null = null;
  /** A setImmediate is pending to start a flight. */
  private scheduled = false;
  /** rollSegment was called with no open group: the next group opens this segment. */
  private pendingRoll: number | null = null;
  /** The segment the last group goes to, and the bytes it will hold once everything pending is durable. */
  private tailSeq: number;
  private tailBytes: number;
  /** Group buffers done with, for reuse (at most two are ever needed in a steady state). */
  private readonly spareBuffers: Buffer[] = [];

  private flushes = 0;
  private bytesFlushed = 0;
  private records = 0;

  private isHealthy = true;
  private closing = false;
  private closed: Promise<void> | null = null;
  /** A new segment created by a flight that then failed: the repair removes it. */
  private halfCreated: { path: string; fd: number } | null = null;
  private repairing: Promise<void> | null = null;
  /** The callbacks of a failed flight's groups, until the repair's cut is durable (see "Faults"). */
  private held: { error: LogUnavailableError; callbacks: Array<(error: Error | null) => void> } | null = null;
  private wakeRepair: (() => void) | null = null;

  /** Called with false when a failure episode starts (with its cause) and true when writes work again. */
  onHealthChange: ((healthy: boolean, cause?: Error) => void) | null = null;

  /** @internal Use openLog. */
  constructor(state: MessageLogState) {
    this.dir = state.dir;
    this.files = state.files;
    this.warn = state.warn;
    this.maxRecordBytes = state.maxRecordBytes;
    this.maxGroupBytes = state.maxGroupBytes;
    this.segmentLimit = state.segmentBytes;
    this.retryDelayMs = state.retryDelayMs;
    this.segmentList = state.segments;
    this.fd = state.fd;
    this.currentSeq = state.segments[state.segments.length - 1]!;
    this.nextSeq = this.currentSeq + 1;
    this.durableLength = state.durableLength;
    this.tailSeq = this.currentSeq;
    this.tailBytes = state.durableLength;
  }

  /** The sequence numbers of the segment files present, oldest first (the last is being written). */
  get segments(): readonly number[] {
    return this.segmentList;
  }

  /** Since open: groups flushed, their bytes, records appended; and the bytes of the current segment (durable + pending). */
  /** Bytes made durable since open: stats.bytesFlushed without building the stats object (read per record). */
  get flushedBytes(): number {
    return this.bytesFlushed;
  }

  get stats(): { flushes: number; bytesFlushed: number; records: number; segmentBytes: number } {
    return { flushes: this.flushes, bytesFlushed: this.bytesFlushed, records: this.records, segmentBytes: this.tailBytes };
  }

  /** False from a failed write until the repair succeeds (appends throw meanwhile), and after close. */
  get healthy(): boolean {
    return this.isHealthy && !this.closing;
  }

  /**
   * Queues a record (the UTF-8 of `payload`) in the open group. Throws LogUnavailableError, changing
   * nothing, while the log is broken or closing; RangeError if the payload is empty or over
   * maxRecordBytes. Durability is learnt through whenDurable.
   */
  append(payload: string): void {
    if (!this.healthy) throw this.unavailable();
    if (payload.length === 0) throw new RangeError('a log record cannot be empty');
    // The cheap bound first (see recordSizeBound); the exact size only when the bound is not enough
    // to decide, which for chat-sized payloads is only at a group's end.
    let size = recordSizeBound(payload);
    const open = this.open;
    if (size - RECORD_HEADER_BYTES > this.maxRecordBytes || (open !== null && open.length + size > this.maxGroupBytes)) {
      const bytes = Buffer.byteLength(payload, 'utf8');
      if (bytes > this.maxRecordBytes) throw new RangeError(`a log record of ${bytes} bytes is over the limit of ${this.maxRecordBytes}`);
      size = RECORD_HEADER_BYTES + bytes;
      if (open !== null && open.length + size > this.maxGroupBytes) this.seal();
    }
    const group = this.open ?? this.openGroup();
    if (group.length + size > group.buffer.length) this.grow(group, size);
    const end = encodeRecordInto(group.buffer, group.length, payload);
    this.tailBytes += end - group.length;
    group.length = end;
    this.records++;
    if (!this.scheduled && this.inFlight === null) {
      this.scheduled = true;
      setImmediate(this.startFlight);
    }
  }

  /**
   * Calls `done(null)` once every record appended so far is durable, or `done(error)` (a
   * LogUnavailableError with the cause) if they never will be. Callbacks run in the order
   * registered. With nothing pending, `done` is called on a later tick: with null, or with a
   * LogUnavailableError while the log is broken or closed (records appended before were lost).
   */
  whenDurable(done: (error: Error | null) => void): void {
    const last = this.open ?? this.sealed[this.sealed.length - 1] ?? this.inFlight;
    if (last !== null) last.callbacks.push(done);
    else if (this.held !== null) this.held.callbacks.push(done); // after the failed ones, in order
    else process.nextTick(done, this.healthy ? null : this.unavailable());
  }

  /**
   * Makes the next group start a new segment file, and returns its sequence number. Records
   * appended before this call stay in the current segment; the file is created when the first group
   * after it is written (until then `segments` does not list it). Called again before any append,
   * it returns the same number.
   */
  rollSegment(): number {
    if (this.pendingRoll !== null) return this.pendingRoll;
    if (this.open !== null) this.seal();
    this.pendingRoll = this.nextSeq++;
    return this.pendingRoll;
  }

  /**
   * Deletes the segment files numbered below `seq`, never the one being written, with async unlink
   * (off the event loop). Resolves when done. The caller makes sure first that whatever must
   * survive is durable in a later segment (whenDurable). A deletion a crash undoes brings back only
   * old records, which replay before the newer ones.
   */
  async dropSegmentsBefore(seq: number): Promise<void> {
    const doomed = this.segmentList.filter((s) => s < seq && s < this.currentSeq);
    for (const s of doomed) {
      try {
        await call<void>((done) => this.files.unlink(join(this.dir, segmentFileName(s)), done));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
      const index = this.segmentList.indexOf(s);
      if (index !== -1) this.segmentList.splice(index, 1);
    }
  }

  /** Flushes what is pending (calling the callbacks), stops a repair, then closes the file. */
  close(): Promise<void> {
    this.closed ??= this.closeNow();
    return this.closed;
  }

  private async closeNow(): Promise<void> {
    this.closing = true;
    if (this.open !== null || this.sealed.length > 0 || this.inFlight !== null) {
      await new Promise<void>((resolve) => {
        const last = (this.open ?? this.sealed[this.sealed.length - 1] ?? this.inFlight)!;
        last.callbacks.push(() => resolve());
      });
    }
    this.wakeRepair?.();
    await this.repairing;
    await call<void>((done) => this.files.close(this.fd, done)).catch(() => {});
  }

  // ---- group commit --------------------------------------------------------------------------------

  private openGroup(): Group {
    let segment = this.pendingRoll;
    if (segment === null) segment = this.tailBytes >= this.segmentLimit ? this.nextSeq++ : this.tailSeq;
    this.pendingRoll = null;
    if (segment !== this.tailSeq) {
      this.tailSeq = segment;
      this.tailBytes = 0;
    }
    const buffer = this.spareBuffers.pop() ?? Buffer.allocUnsafe(INITIAL_GROUP_BUFFER_BYTES);
    this.open = { buffer, length: 0, segment, callbacks: [] };
    return this.open;
  }

  private seal(): void {
    if (this.open === null) return;
    this.sealed.push(this.open);
    this.open = null;
  }

  /** Makes room for `size` more bytes: a bigger buffer (doubling, so a turn's growth costs O(n) copies). */
  private grow(group: Group, size: number): void {
    const bigger = Buffer.allocUnsafe(Math.max(group.buffer.length * 2, group.length + size));
    group.buffer.copy(bigger, 0, 0, group.length);
    group.buffer = bigger;
  }

  private recycle(group: Group): void {
    if (this.spareBuffers.length < 2) this.spareBuffers.push(group.buffer);
  }

  /** Starts the next group's flight unless one is in flight (an arrow function: it is setImmediate's callback). */
  private readonly startFlight = (): void => {
    this.scheduled = false;
    if (this.inFlight !== null || !this.isHealthy) return;
    this.seal();
    const group = this.sealed.shift();
    if (group === undefined) return;
    this.inFlight = group;
    void this.fly(group);
  };

  /** One group's flight: a new segment if it needs one, ONE write (looping on a short count), ONE fdatasync. */
  private async fly(group: Group): Promise<void> {
    try {
      if (group.segment !== this.currentSeq) await this.startSegment(group.segment);
      await this.writeAll(group.buffer, group.length, this.durableLength);
      await call<void>((done) => this.files.fdatasync(this.fd, done));
    } catch (error) {
      this.fail(group, error as Error);
      return;
    }
    this.durableLength += group.length;
    this.flushes++;
    this.bytesFlushed += group.length;
    this.inFlight = null;
    this.recycle(group);
    // The callbacks first, so that what they append joins the next group, then that group's flight.
    const thrown = runCallbacks(group.callbacks, null);
    this.startFlight();
    rethrowLater(thrown);
  }

  /** Writes bytes [0, length) of `buffer` at file `position`: a short write (a full disk may cause one) continues where it stopped. */
  private async writeAll(buffer: Buffer, length: number, position: number): Promise<void> {
    let written = 0;
    while (written < length) {
      const count = await call<number>((done) => this.files.write(this.fd, buffer, written, length - written, position + written, done));
      // A write of 0 bytes that is not an error would loop forever: treat it as one.
      if (count === 0) throw Object.assign(new Error('write wrote 0 bytes'), { code: 'EIO' });
      written += count;
    }
  }

  /** Creates segment `seq` ('wx': never over an existing file), makes its name durable, and switches to it. */
  private async startSegment(seq: number): Promise<void> {
    const path = join(this.dir, segmentFileName(seq));
    const fd = await call<number>((done) => this.files.open(path, 'wx', 0o644, done));
    this.halfCreated = { path, fd };
    await this.syncDirectory();
    this.halfCreated = null;
    this.files.close(this.fd, () => {}); // the old segment is durable; nothing is lost if its close fails
    this.fd = fd;
    this.currentSeq = seq;
    this.durableLength = 0;
    this.segmentList.push(seq);
  }

  /** fsync the data directory, so that a segment's creation or removal survives a power loss. */
  private async syncDirectory(): Promise<void> {
    const dirFd = await call<number>((done) => this.files.open(this.dir, 'r', 0, done));
    try {
      await call<void>((done) => this.files.fsync(dirFd, done));
    } finally {
      this.files.close(dirFd, () => {});
    }
  }

  // ---- faults ----------------------------------------------------------------------------------------

  /** A flight failed: fail its group and every later one, in order, and start an episode and its repair. */
  private fail(group: Group, cause: Error): void {
    this.isHealthy = false;
    const error = new LogUnavailableError(`the message log cannot write: ${cause.message}`, { cause });
    const failed = [group, ...this.sealed];
    if (this.open !== null) failed.push(this.open);
    this.inFlight = null;
    this.sealed.length = 0;
    this.open = null;
    this.pendingRoll = null;
    this.tailSeq = this.currentSeq;
    this.tailBytes = this.durableLength;
    const thrown: unknown[] = [];
    try {
      this.warn(`log: writes are failing (${cause.message}); nothing is acknowledged until they work again`);
      this.onHealthChange?.(false, cause);
    } catch (e) {
      thrown.push(e);
    }
    // Held, not called: their bytes may still come back until the repair's cut is durable.
    const held: Array<(error: Error | null) => void> = [];
    for (const g of failed) {
      this.recycle(g);
      held.push(...g.callbacks);
    }
    this.held = { error, callbacks: held };
    this.repairing = this.repair(group.length, Date.now());
    rethrowLater(thrown);
  }

  /** Cuts the file back to its durable length, syncs, probes; retried with backoff until it all works. */
  private async repair(probeBytes: number, since: number): Promise<void> {
    let delay = this.retryDelayMs.first;
    // At most a group's bytes, so that zeros a crash leaves behind are within recovery's torn-tail window.
    const zeros = Buffer.alloc(Math.min(probeBytes, this.maxGroupBytes));
    for (;;) {
      if (this.closing) return this.giveUp();
      try {
        await this.repairOnce(zeros);
        break;
      } catch {
        // The episode goes on; the next attempt starts over from the truncation.
      }
      if (this.closing) return this.giveUp();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.wakeRepair = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeRepair = null;
      delay = Math.min(delay * 2, this.retryDelayMs.max);
    }
    this.repairing = null;
    this.isHealthy = true;
    try {
      this.warn(`log: writes work again; resumed after ${Date.now() - since} ms`);
      this.onHealthChange?.(true);
    } catch (error) {
      rethrowLater([error]);
    }
  }

  /** Closing during an episode: one more try at the cut, then the held callbacks get their error anyway. */
  private async giveUp(): Promise<void> {
    if (this.held === null) return;
    try {
      await this.cutBack();
    } catch {
      // Nothing more can be done before the process goes; the callbacks must not wait forever.
    }
    this.releaseHeld();
  }

  /** Calls the held callbacks with the episode's error, in order (once the cut is durable, or at close). */
  private releaseHeld(): void {
    const held = this.held;
    if (held === null) return;
    this.held = null;
    rethrowLater(runCallbacks(held.callbacks, held.error));
  }

  private async repairOnce(zeros: Buffer): Promise<void> {
    await this.cutBack();
    // The failed records can no longer come back: now their callbacks may hear so.
    this.releaseHeld();
    if (zeros.length > 0) {
      try {
        await this.writeAll(zeros, zeros.length, this.durableLength);
        await call<void>((done) => this.files.fdatasync(this.fd, done));
      } finally {
        // Also when the probe failed: the file stays at its durable length between attempts.
        await this.truncateToDurable();
      }
    }
  }

  /** Removes a half-created segment and cuts the current one back to its durable length, durably. */
  private async cutBack(): Promise<void> {
    if (this.halfCreated !== null) {
      const half = this.halfCreated;
      const path = half.path;
      if (half.fd >= 0) {
        // Closed once only: a second close could hit a descriptor number the process reused since.
        const fd = half.fd;
        half.fd = -1;
        await call<void>((done) => this.files.close(fd, done)).catch(() => {});
      }
      await call<void>((done) => this.files.unlink(path, done)).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw error;
      });
      // The removal must be durable before the probe below writes past the end of the current
      // segment: a crash that brought the empty new segment back would make that segment the last
      // one, and the probe's zeros in the one before it would then read as corruption.
      await this.syncDirectory();
      this.halfCreated = null;
    }
    await this.truncateToDurable();
  }

  private async truncateToDurable(): Promise<void> {
    await call<void>((done) => this.files.ftruncate(this.fd, this.durableLength, done));
    await call<void>((done) => this.files.fdatasync(this.fd, done));
  }

  private unavailable(): LogUnavailableError {
    return new LogUnavailableError(this.closing ? 'the message log is closed' : 'the message log cannot write now (a write failed; it is being repaired)');
  }
}

/** A node-style call as a promise (used once or a few times per group, never per record). */
function call<T>(start: (callback: (error: NodeJS.ErrnoException | null, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => start((error, value) => (error ? reject(error) : resolve(value as T))));
}

/** Calls each callback in order; one that throws does not stop the others. Returns what was thrown. */
function runCallbacks(callbacks: ReadonlyArray<(error: Error | null) => void>, error: Error | null): unknown[] {
  const thrown: unknown[] = [];
  for (const callback of callbacks) {
    try {
      callback(error);
    } catch (e) {
      thrown.push(e);
    }
  }
  return thrown;
}

/** A callback's exception surfaces as an uncaught exception, as from any callback, once the log's state is consistent. */
function rethrowLater(thrown: readonly unknown[]): void {
  for (const error of thrown) {
    process.nextTick(() => {
      throw error;
    });
  }
}
