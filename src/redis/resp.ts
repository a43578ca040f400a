// RESP, the Redis serialization protocol, sans-I/O: an encoder (command → bytes) and an
// incremental reply parser (bytes in → replies out). No socket here, so every rule is testable
// with bytes alone (test/redis-resp.test.ts); src/redis/client.ts moves the bytes.
//
// The wire format (https://redis.io/docs/latest/develop/reference/protocol-spec/): every value
// starts with a type byte and a line ended by CR LF. RESP2 has five types; RESP3 (spoken after
// `HELLO 3`) adds eight. A length of -1 is RESP2's null.
//
//   RESP2  +OK\r\n                    simple string        -ERR unknown\r\n       error
//          :1000\r\n                  integer              $5\r\nhello\r\n     bulk string ($-1: null)
//          *2\r\n:1\r\n:2\r\n         array of 2 values (*-1: null)
//   RESP3  _\r\n                      null                 #t\r\n               boolean
//          ,3.14\r\n                  double (inf, -inf, nan)   (3492890328409238509324850943850943825024385\r\n   big number
//          !21\r\nSYNTAX invalid syntax\r\n   blob error   =15\r\ntxt:Some string\r\n   verbatim string
//          %2\r\n+a\r\n:1\r\n+b\r\n:2\r\n   map of 2 pairs     ~2\r\n...        set of 2 values
//          |1\r\n+ttl\r\n:3600\r\n<value>   attribute: a map about the value after it
//          >3\r\n+message\r\n...       push: out of band (pub/sub, tracking), never a command's reply
//
// A command is always sent as an array of bulk strings (`*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n`),
// which is binary-safe whatever the arguments hold.
//
// Theory of operation of the parser: bytes arrive in chunks split anywhere, one byte at a time
// included. The parser walks each chunk once, left to right, with an explicit state:
//
//   TYPE ──▶ LINE ──(CR)──▶ LINE_LF ──▶ value, or a header: ──($ ! = n)──▶ BULK ──▶ BULK_CR ──▶ BULK_LF ──▶ value
//                                                        └──(* % ~ | > n)──▶ push an aggregate ──▶ TYPE
//
// A line's end is found with indexOf(CR) from where the last search stopped, and the bytes of an
// unfinished line or bulk string are kept (not re-read) until the rest comes: every byte is
// looked at a constant number of times, so 1-byte chunks cost the same per byte as whole replies
// (no quadratic re-scan). A bulk string that lies inside one chunk is decoded straight from it; one
// that spans chunks is copied once into a buffer of its exact size, allocated when its header
// arrives (its length is bounded first).
//
// Aggregates are a stack of frames, each counting the elements it still expects; a completed value
// goes into the frame on top, and a frame that is full becomes a value itself. A reply is complete
// when the stack is empty.
//
// Bounds (ParserLimits), each a RespProtocolError with a stable code when exceeded: the length a
// bulk string may announce, the element count an aggregate may announce, the nesting depth, a
// line's length, and the bytes of one reply. The last one is what the parser holds at most: it
// keeps nothing but the reply in progress.
//
// Replies as JS values (RespValue):
//   simple string → string; bulk and verbatim strings → string (UTF-8), or Buffer when the reply
//   was asked for in buffers (bulkAsBuffer) — then each Buffer owns exactly its bytes, it is never
//   a view that would keep a whole socket chunk alive; integer → number (bigint beyond 2^53);
//   double → number; big number → bigint; boolean → boolean; null and RESP2's $-1 / *-1 → null;
//   array and set → array (a set as an array, so code reads SMEMBERS alike in RESP2 and RESP3);
//   map → Map; error and blob error → RedisReplyError (returned, not thrown); verbatim string →
//   its text without the 3-letter format and the colon; attribute → skipped (read, bounded, and
//   dropped: no Redis command we use sends one); push → given to onPush, not onReply.
import { RedisReplyError, RespProtocolError } from './errors.js';

/** A reply, as the parser gives it (see the table above). */
export type RespValue = string | Buffer | number | bigint | boolean | null | RedisReplyError | RespValue[] | Map<RespValue, RespValue>;

/** An argument of a command: strings are sent as UTF-8, numbers in decimal, Buffers as they are. */
export type RedisArg = string | Buffer | number | bigint;

export interface ParserLimits {
  /** The longest bulk, verbatim or blob-error string a reply may announce, in bytes. */
  maxBulkBytes: number;
  /** The most elements an array, set or push may announce (a map: twice its pairs). */
  maxElements: number;
  /** How deep aggregates may nest (a top-level array is depth 1). */
  maxDepth: number;
  /** The longest line (simple string, error, number, length), in bytes, CR LF excluded. */
  maxLineBytes: number;
  /** The most bytes one reply may take: all the parser ever holds, as it keeps only that reply. */
  maxBufferedBytes: number;
}

/**
 * The defaults. The chat reads chat messages (4 KiB of text at most) a hundred or so at a time:
 * these are far above what it needs and far below what would hurt a server process. Redis's own
 * limit for a bulk string is 512 MiB (proto-max-bulk-len); we do not let one reply take that.
 */
export const DEFAULT_PARSER_LIMITS: Readonly<ParserLimits> = {
  maxBulkBytes: 16 * 1024 * 1024,
  maxElements: 1024 * 1024,
  maxDepth: 16,
  maxLineBytes: 64 * 1024,
  maxBufferedBytes: 64 * 1024 * 1024,
};

export interface ReplyParserOptions {
  limits?: Partial<ParserLimits>;
  /** Called with each complete reply, in order. */
  onReply: (reply: RespValue) => void;
  /** Called with each RESP3 push message (`>`): out-of-band data, not the reply to a command. */
  onPush?: (message: RespValue[]) => void;
  /**
   * Asked when a reply starts: true to get its bulk strings as Buffers (binary data, no UTF-8
   * decoding), false for strings. The client answers for the command whose reply comes next.
   */
  bulkAsBuffer?: () => boolean;
}

const CR = 13;
const LF = 10;

const enum State { TYPE, LINE, LINE_LF, BULK, BULK_CR, BULK_LF, HALTED }

/** The kind of an aggregate frame on the stack. */
const enum Kind { ARRAY, MAP, SET, ATTRIBUTE, PUSH }

interface Frame {
  kind: Kind;
  /** Elements still expected. */
  remaining: number;
  items: RespValue[];
}

/** The type bytes, by the character Redis documents them with. */
const T = {
  SIMPLE: 0x2b, // +
  ERROR: 0x2d, // -
  INTEGER: 0x3a, // :
  BULK: 0x24, // $
  ARRAY: 0x2a, // *
  NULL: 0x5f, // _
  BOOLEAN: 0x23, // #
  DOUBLE: 0x2c, // ,
  BIG_NUMBER: 0x28, // (
  BLOB_ERROR: 0x21, // !
  VERBATIM: 0x3d, // =
  MAP: 0x25, // %
  SET: 0x7e, // ~
  ATTRIBUTE: 0x7c, // |
  PUSH: 0x3e, // >
} as const;

const AGGREGATE_KIND: Record<number, Kind> = { [T.ARRAY]: Kind.ARRAY, [T.MAP]: Kind.MAP, [T.SET]: Kind.SET, [T.ATTRIBUTE]: Kind.ATTRIBUTE, [T.PUSH]: Kind.PUSH };
const INTEGER_TEXT = /^-?\d+$/;
const LENGTH_TEXT = /^(?:0|[1-9]\d*)$/;
/** RESP3 doubles: a decimal with optional fraction and exponent, or inf / -inf / nan. */
const DOUBLE_TEXT = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

export class ReplyParser {
  private readonly limits: ParserLimits;
  private readonly options: ReplyParserOptions;
  private state = State.TYPE;
  /** The type byte of the line or bulk string being read. */
  private type = 0;
  /** The unfinished line: its parts so far (usually none: a line mostly lies in one chunk). */
  private lineParts: Buffer[] = [];
  private lineLength = 0;
  /** The bulk string being read across chunks: its exact-size buffer and how much is filled. */
  private bulk: Buffer | null = null;
  private bulkLength = 0;
  private bulkFilled = 0;
  /** Whether this reply's bulk strings are Buffers (asked once per reply). */
  private asBuffer = false;
  private stack: Frame[] = [];
  /** Bytes of the reply in progress consumed so far (bounded by maxBufferedBytes). */
  private replyBytes = 0;

  constructor(options: ReplyParserOptions) {
    this.options = options;
    this.limits = { ...DEFAULT_PARSER_LIMITS, ...options.limits };
  }

  /** Feeds received bytes; calls onReply for each reply completed. Throws RespProtocolError. */
  push(chunk: Buffer): void {
    if (this.state === State.HALTED) return;
    try {
      this.run(chunk);
    } catch (error) {
      this.halt();
      throw error;
    }
  }

  /** Stops parsing for good and drops what is held (after an error, or when the socket is gone). */
  halt(): void {
    this.state = State.HALTED;
    this.lineParts = [];
    this.bulk = null;
    this.stack = [];
  }

  /** Whether part of a reply is held, waiting for more bytes. */
  get inReply(): boolean {
    return this.state !== State.TYPE || this.stack.length > 0;
  }

  private run(chunk: Buffer): void {
    let pos = 0;
    const end = chunk.length;
    while (pos < end) {
      switch (this.state) {
        case State.TYPE: {
          if (this.stack.length === 0) {
            this.replyBytes = 0;
            this.asBuffer = this.options.bulkAsBuffer?.() ?? false;
          }
          this.type = chunk[pos++]!;
          this.count(1);
          if (!isTypeByte(this.type)) throw new RespProtocolError('RESP_ERR_BAD_TYPE', `a reply may not start with byte 0x${this.type.toString(16).padStart(2, '0')}`);
          this.state = State.LINE;
          break;
        }
        case State.LINE: {
          const cr = chunk.indexOf(CR, pos);
          const stop = cr === -1 ? end : cr;
          if (this.lineLength + stop - pos > this.limits.maxLineBytes) {
            throw new RespProtocolError('RESP_ERR_LINE_TOO_LONG', `a line longer than ${this.limits.maxLineBytes} bytes`);
          }
          if (stop > pos) {
            this.lineParts.push(chunk.subarray(pos, stop));
            this.lineLength += stop - pos;
            this.count(stop - pos);
          }
          if (cr === -1) return;
          pos = cr + 1;
          this.count(1);
          this.state = State.LINE_LF;
          break;
        }
        case State.LINE_LF: {
          if (chunk[pos++] !== LF) throw new RespProtocolError('RESP_ERR_MISSING_CRLF', 'a CR in a line is not followed by LF');
          this.count(1);
          const line = this.takeLine();
          this.state = State.TYPE;
          this.onLine(line);
          break;
        }
        case State.BULK: {
          const want = this.bulkLength - this.bulkFilled;
          const have = end - pos;
          if (this.bulk === null && have >= want) {
            // The whole string lies in this chunk: decode it from there, no copy to gather it.
            const value = this.bulkValue(chunk.subarray(pos, pos + want), false);
            pos += want;
            this.count(want);
            this.finishBulk(value);
            break;
          }
          // It spans chunks: copy this chunk's share into the exact-size buffer.
          // Unpooled when it is to be returned as it is (see bulkValue); pooled when decoded to a string.
          this.bulk ??= this.asBuffer && this.type === T.BULK ? Buffer.allocUnsafeSlow(this.bulkLength) : Buffer.allocUnsafe(this.bulkLength);
          const take = Math.min(want, have);
          chunk.copy(this.bulk, this.bulkFilled, pos, pos + take);
          this.bulkFilled += take;
          pos += take;
          this.count(take);
          if (this.bulkFilled === this.bulkLength) {
            const value = this.bulkValue(this.bulk, true);
            this.bulk = null;
            this.finishBulk(value);
          }
          break;
        }
        case State.BULK_CR:
          if (chunk[pos++] !== CR) throw new RespProtocolError('RESP_ERR_MISSING_CRLF', `a bulk string of ${this.bulkLength} bytes is not followed by CR LF`);
          this.count(1);
          this.state = State.BULK_LF;
          break;
        case State.BULK_LF: {
          if (chunk[pos++] !== LF) throw new RespProtocolError('RESP_ERR_MISSING_CRLF', `a bulk string of ${this.bulkLength} bytes is not followed by CR LF`);
          this.count(1);
          const value = this.pendingBulk;
          this.pendingBulk = null;
          this.state = State.TYPE;
          this.complete(value);
          break;
        }
        case State.HALTED:
          return;
      }
    }
  }

  /** The value of a bulk string, kept until its CR LF arrives. */
  private pendingBulk: RespValue = null;

  private finishBulk(value: RespValue): void {
    this.pendingBulk = value;
    this.state = State.BULK_CR;
  }

  /** Counts bytes of the reply in progress against maxBufferedBytes. */
  private count(n: number): void {
    this.replyBytes += n;
    if (this.replyBytes > this.limits.maxBufferedBytes) {
      throw new RespProtocolError('RESP_ERR_REPLY_TOO_BIG', `a reply larger than ${this.limits.maxBufferedBytes} bytes`);
    }
  }

  private takeLine(): string {
    const parts = this.lineParts;
    const text = parts.length === 0 ? '' : parts.length === 1 ? parts[0]!.toString('utf8') : Buffer.concat(parts, this.lineLength).toString('utf8');
    this.lineParts = [];
    this.lineLength = 0;
    return text;
  }

  /** A line is complete: a whole value (+ - : _ # , (), or the header of a bulk string or aggregate. */
  private onLine(line: string): void {
    switch (this.type) {
      case T.SIMPLE: return this.complete(line);
      case T.ERROR: return this.complete(new RedisReplyError(line));
      case T.INTEGER: return this.complete(parseInteger(line));
      case T.NULL:
        if (line !== '') throw new RespProtocolError('RESP_ERR_BAD_VALUE', `a null (_) with content ${JSON.stringify(line)}`);
        return this.complete(null);
      case T.BOOLEAN:
        if (line !== 't' && line !== 'f') throw new RespProtocolError('RESP_ERR_BAD_VALUE', `a boolean must be t or f, not ${JSON.stringify(line)}`);
        return this.complete(line === 't');
      case T.DOUBLE: return this.complete(parseDouble(line));
      case T.BIG_NUMBER:
        if (!INTEGER_TEXT.test(line)) throw new RespProtocolError('RESP_ERR_BAD_VALUE', `a big number must be decimal digits, not ${JSON.stringify(line)}`);
        return this.complete(BigInt(line));
      case T.BULK: case T.BLOB_ERROR: case T.VERBATIM: {
        // RESP2's null bulk string is $-1; RESP3 servers send _ instead, but -1 is harmless to accept.
        if (line === '-1' && this.type === T.BULK) return this.complete(null);
        const length = parseLength(line, this.limits.maxBulkBytes, 'RESP_ERR_BULK_TOO_LONG', 'bulk string');
        if (this.replyBytes + length + 2 > this.limits.maxBufferedBytes) {
          // Refused on the header, before megabytes arrive or a buffer is allocated for them.
          throw new RespProtocolError('RESP_ERR_REPLY_TOO_BIG', `a reply larger than ${this.limits.maxBufferedBytes} bytes`);
        }
        this.bulkLength = length;
        this.bulkFilled = 0;
        this.state = State.BULK;
        // A zero-length string has no bytes to wait for: the BULK state would never run on an
        // empty remainder, so its value is settled here.
        if (length === 0) this.finishBulk(this.bulkValue(EMPTY, false));
        return;
      }
      default: {
        // An aggregate: * % ~ | >
        if (line === '-1' && this.type === T.ARRAY) return this.complete(null);
        const kind = AGGREGATE_KIND[this.type]!;
        const pairs = kind === Kind.MAP || kind === Kind.ATTRIBUTE;
        const length = parseLength(line, pairs ? this.limits.maxElements / 2 : this.limits.maxElements, 'RESP_ERR_TOO_MANY_ELEMENTS', 'aggregate');
        if (kind === Kind.PUSH && this.stack.length > 0) throw new RespProtocolError('RESP_ERR_NESTED_PUSH', 'a push message inside another reply');
        if (this.stack.length + 1 > this.limits.maxDepth) throw new RespProtocolError('RESP_ERR_TOO_DEEP', `aggregates nested deeper than ${this.limits.maxDepth}`);
        const frame: Frame = { kind, remaining: pairs ? length * 2 : length, items: [] };
        if (frame.remaining === 0) return this.completeFrame(frame);
        this.stack.push(frame);
        return;
      }
    }
  }

  private bulkValue(bytes: Buffer, owned: boolean): RespValue {
    if (this.type === T.BLOB_ERROR) return new RedisReplyError(bytes.toString('utf8'));
    if (this.type === T.VERBATIM) {
      // =LEN\r\nfmt:text — three bytes of format (txt, mkd), a colon, then the text.
      if (bytes.length < 4 || bytes[3] !== 0x3a) throw new RespProtocolError('RESP_ERR_BAD_VALUE', 'a verbatim string must start with a 3-byte format and a colon');
      bytes = bytes.subarray(4);
    }
    if (!this.asBuffer) return bytes.toString('utf8');
    // A Buffer reply owns exactly its bytes: a view would keep the whole socket chunk alive, and
    // a small Buffer.from() copy would be a slice of node's shared 8 KiB pool, which keeps the
    // pool alive the same way. So: an unpooled buffer of the exact size.
    if (owned && bytes.byteOffset === 0 && bytes.length === bytes.buffer.byteLength) return bytes;
    const copy = Buffer.allocUnsafeSlow(bytes.length);
    bytes.copy(copy);
    return copy;
  }

  /** A value is complete: into the aggregate on top of the stack, or out as a reply. */
  private complete(value: RespValue): void {
    for (;;) {
      const top = this.stack[this.stack.length - 1];
      if (top === undefined) {
        this.options.onReply(value);
        return;
      }
      top.items.push(value);
      if (--top.remaining > 0) return;
      this.stack.pop();
      if (top.kind === Kind.ATTRIBUTE) return; // it describes the next value: dropped, counts for nothing
      if (top.kind === Kind.PUSH) {
        this.options.onPush?.(top.items);
        return; // top-level only (checked on its header)
      }
      value = frameValue(top);
    }
  }

  /** An aggregate announced with no elements is complete on its header. */
  private completeFrame(frame: Frame): void {
    if (frame.kind === Kind.ATTRIBUTE) return;
    if (frame.kind === Kind.PUSH) {
      this.options.onPush?.(frame.items);
      return;
    }
    this.complete(frameValue(frame));
  }
}

const EMPTY = Buffer.alloc(0);

function isTypeByte(byte: number): boolean {
  return byte === T.SIMPLE || byte === T.ERROR || byte === T.INTEGER || byte === T.BULK || byte === T.ARRAY
    || byte === T.NULL || byte === T.BOOLEAN || byte === T.DOUBLE || byte === T.BIG_NUMBER || byte === T.BLOB_ERROR
    || byte === T.VERBATIM || byte === T.MAP || byte === T.SET || byte === T.ATTRIBUTE || byte === T.PUSH;
}

function frameValue(frame: Frame): RespValue {
  if (frame.kind !== Kind.MAP) return frame.items;
  const map = new Map<RespValue, RespValue>();
  for (let i = 0; i < frame.items.length; i += 2) map.set(frame.items[i]!, frame.items[i + 1]!);
  return map;
}

/** An integer reply: a number, or a bigint when it is beyond 2^53 (Redis integers are 64-bit). */
function parseInteger(line: string): number | bigint {
  if (!INTEGER_TEXT.test(line)) throw new RespProtocolError('RESP_ERR_BAD_VALUE', `an integer must be decimal digits, not ${JSON.stringify(line)}`);
  const value = Number(line);
  return Number.isSafeInteger(value) ? value : BigInt(line);
}

function parseDouble(line: string): number {
  if (line === 'inf') return Infinity;
  if (line === '-inf') return -Infinity;
  if (line === 'nan') return NaN;
  if (!DOUBLE_TEXT.test(line)) throw new RespProtocolError('RESP_ERR_BAD_VALUE', `a double must be a decimal number, inf, -inf or nan, not ${JSON.stringify(line)}`);
  return Number(line);
}

/** A length header: decimal digits, no sign, no leading zero, at most `max`. */
function parseLength(line: string, max: number, tooBig: 'RESP_ERR_BULK_TOO_LONG' | 'RESP_ERR_TOO_MANY_ELEMENTS', what: string): number {
  if (!LENGTH_TEXT.test(line)) throw new RespProtocolError('RESP_ERR_BAD_LENGTH', `a ${what} length must be decimal digits, not ${JSON.stringify(line)}`);
  const length = Number(line);
  if (length > max) throw new RespProtocolError(tooBig, `a ${what} of ${line} is more than the limit of ${Math.floor(max)}`);
  return length;
}

// ---------------------------------------------------------------------------------------------
// The encoder.

/** The wire form of one command: an array of bulk strings. See encodeCommands. */
export function encodeCommand(args: readonly RedisArg[]): Buffer {
  return encodeCommands([args]);
}

/**
 * The wire form of several commands, back to back in ONE buffer: the client encodes all the
 * commands of a turn together and writes them with one socket write. Two passes: the first sizes
 * every argument (so the buffer is allocated once, at its exact size), the second writes them.
 */
export function encodeCommands(commands: readonly (readonly RedisArg[])[]): Buffer {
  let total = 0;
  // Strings and numbers are sized once and their lengths kept for the second pass.
  const sizes: number[] = [];
  for (const args of commands) {
    if (args.length === 0) throw new TypeError('a Redis command needs at least its name');
    total += 3 + decimalLength(args.length); // *N\r\n
    for (const arg of args) {
      const size = argSize(arg);
      sizes.push(size);
      total += 5 + decimalLength(size) + size; // $LEN\r\n DATA \r\n
    }
  }
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  let index = 0;
  for (const args of commands) {
    at += out.write(`*${args.length}\r\n`, at, 'latin1');
    for (const arg of args) {
      const size = sizes[index++]!;
      at += out.write(`$${size}\r\n`, at, 'latin1');
      if (Buffer.isBuffer(arg)) at += arg.copy(out, at);
      else at += out.write(typeof arg === 'string' ? arg : String(arg), at, 'utf8');
      out[at++] = CR;
      out[at++] = LF;
    }
  }
  return out;
}

function argSize(arg: RedisArg): number {
  if (typeof arg === 'string') return Buffer.byteLength(arg, 'utf8');
  if (Buffer.isBuffer(arg)) return arg.length;
  if (typeof arg === 'bigint') return String(arg).length;
  if (typeof arg === 'number' && Number.isFinite(arg)) return String(arg).length;
  throw new TypeError(`a Redis argument must be a string, a Buffer, a finite number or a bigint, not ${String(arg)}`);
}

function decimalLength(n: number): number {
  return n < 10 ? 1 : n < 100 ? 2 : n < 1000 ? 3 : String(n).length;
}
