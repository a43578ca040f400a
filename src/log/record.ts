// The message log's record framing, pure: bytes in, bytes out, no files (message-log.ts does I/O).
//
// A record on disk:
//
//    0               4               8
//   +---------------+---------------+-------------------------------+
//   | payload length| CRC-32 of the | payload (length bytes)        |
//   | uint32 BE     | payload,      |                               |
//   | 1..max        | uint32 BE     |                               |
//   +---------------+---------------+-------------------------------+
//
// The length says where the next record starts; the CRC-32 (the zlib/PNG/Ethernet polynomial, as
// computed by node:zlib's crc32) says whether these bytes are the ones that were written. Together
// they let the reader tell a complete record from one that a crash cut short or left as garbage:
// - 'incomplete': the bytes end before the header or the payload does (a write cut short, or the
//   reader's buffer holds only part of the file so far);
// - 'bad': a length of 0 (never written: a payload is never empty, so zeros, which a file extended
//   by a crash but never filled reads as, are recognised at once), a length above the limit (no
//   writer produced it, and a reader must not trust it to size a buffer), or a CRC that does not
//   match the payload.
// What a bad or incomplete record means (torn tail or corruption) depends on where it is, which
// only the reader of the whole directory knows (message-log.ts, "Recovery").
import { crc32 } from 'node:zlib';

/** Bytes before each payload: its length and its CRC-32, both uint32 big-endian. */
export const RECORD_HEADER_BYTES = 8;

/** The largest length field can say: payloads are bounded far below this by maxRecordBytes. */
export const MAX_PAYLOAD_LENGTH_FIELD = 0xffff_ffff;

/**
 * An upper bound of the bytes a record of `payload` takes, found without encoding it: a UTF-16 code
 * unit becomes at most 3 UTF-8 bytes (a surrogate pair, two units, becomes 4; a lone surrogate
 * becomes U+FFFD, 3). The writer reserves this much room and learns the exact size by encoding,
 * which saves a pass over every string (Buffer.byteLength) on the hot path.
 */
export function recordSizeBound(payload: string): number {
  return RECORD_HEADER_BYTES + payload.length * 3;
}

/** The exact bytes a record of `payload` takes (one pass over the string). */
export function recordSize(payload: string): number {
  return RECORD_HEADER_BYTES + Buffer.byteLength(payload, 'utf8');
}

/**
 * Writes the record of `payload` (its UTF-8 bytes) into `buffer` at `offset`, straight into place:
 * no Buffer of its own per record. Returns the offset after it. The caller has made room (see
 * recordSizeBound); if there may not be enough, the exact size is checked and a RangeError thrown
 * before anything is written. An empty payload is refused (RangeError): its length field would
 * read as 'bad'.
 */
export function encodeRecordInto(buffer: Buffer, offset: number, payload: string): number {
  if (payload.length === 0) throw new RangeError('a log record cannot be empty');
  const start = offset + RECORD_HEADER_BYTES;
  const room = buffer.length - start;
  if (room < payload.length * 3 && room < Buffer.byteLength(payload, 'utf8')) {
    throw new RangeError(`no room for a ${Buffer.byteLength(payload, 'utf8')}-byte record at offset ${offset} of a ${buffer.length}-byte buffer`);
  }
  // buffer.write encodes in place and returns the byte count; with room checked above it never
  // truncates (it would silently stop at a character boundary otherwise).
  const length = buffer.write(payload, start, room, 'utf8');
  buffer.writeUInt32BE(length, offset);
  // The CRC is computed over the bytes just written, through a view (subarray shares the memory;
  // it is a small object, not a copy): hashing the string instead would encode it a second time.
  buffer.writeUInt32BE(crc32(buffer.subarray(start, start + length)), offset + 4);
  return start + length;
}

/** The record of `payload` in a Buffer of its own (for tests and tools; the log uses encodeRecordInto). */
export function encodeRecord(payload: string | Uint8Array): Buffer {
  if (typeof payload === 'string') {
    const out = Buffer.allocUnsafe(recordSize(payload));
    encodeRecordInto(out, 0, payload);
    return out;
  }
  if (payload.length === 0) throw new RangeError('a log record cannot be empty');
  const out = Buffer.allocUnsafe(RECORD_HEADER_BYTES + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.writeUInt32BE(crc32(payload), 4);
  out.set(payload, RECORD_HEADER_BYTES);
  return out;
}

/** A record read: its payload (a view into the reader's buffer, valid while that is) and where the next starts. */
export interface DecodedRecord {
  payload: Buffer;
  next: number;
}

/**
 * Reads the record at `offset` of `buffer`, whose bytes up to `end` (default: its length) are valid.
 * Returns the record, 'incomplete' (more bytes are needed to decide), or 'bad' (these bytes are
 * not a record: see the top of this file; describeBadRecord says why). The length is checked
 * against the limit before the payload is awaited, so a garbage length never makes a reader wait
 * for (or allocate) gigabytes: a reader whose buffer holds RECORD_HEADER_BYTES + maxRecordBytes
 * always gets a decision.
 */
export function readRecord(buffer: Buffer, offset: number, maxRecordBytes: number, end = buffer.length): DecodedRecord | 'incomplete' | 'bad' {
  if (end - offset < RECORD_HEADER_BYTES) return 'incomplete';
  const length = buffer.readUInt32BE(offset);
  if (length === 0 || length > maxRecordBytes) return 'bad';
  const start = offset + RECORD_HEADER_BYTES;
  const next = start + length;
  if (next > end) return 'incomplete';
  const payload = buffer.subarray(start, next);
  if (crc32(payload) !== buffer.readUInt32BE(offset + 4)) return 'bad';
  return { payload, next };
}

/** Why readRecord said 'bad' for the record at `offset` (for error messages). */
export function describeBadRecord(buffer: Buffer, offset: number, maxRecordBytes: number, end = buffer.length): string {
  const length = buffer.readUInt32BE(offset);
  if (length === 0) return 'a record with length 0 (never written: payloads are not empty)';
  if (length > maxRecordBytes) return `a record length of ${length} bytes, over the limit of ${maxRecordBytes}`;
  const start = offset + RECORD_HEADER_BYTES;
  const actual = crc32(buffer.subarray(start, Math.min(start + length, end)));
  return `a CRC-32 mismatch in a ${length}-byte record (stored ${hex8(buffer.readUInt32BE(offset + 4))}, computed ${hex8(actual)})`;
}

function hex8(value: number): string {
  return value.toString(16).padStart(8, '0');
}
