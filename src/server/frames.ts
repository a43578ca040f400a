// RFC 6455 §5 framing, sans-I/O: a parser (bytes in → frames out) and an encoder (frame → bytes).
// No socket here, so every framing rule is testable with bytes alone (test/frames.test.ts).
//
// The base framing protocol (§5.2):
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-------+-+-------------+-------------------------------+
//   |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//   |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//   |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//   | |1|2|3|       |K|             |                               |
//   +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//   |     Extended payload length continued, if payload len == 127  |
//   + - - - - - - - - - - - - - - - +-------------------------------+
//   |                               |Masking-key, if MASK set to 1  |
//   +-------------------------------+-------------------------------+
//   | Masking-key (continued)       |          Payload Data         |
//   +-------------------------------- - - - - - - - - - - - - - - - +
//
// Theory of operation of the parser: bytes arrive in chunks of any size, split anywhere (one
// byte at a time included). The parser keeps the chunks in a list without joining them and walks
// an explicit state machine, like `ws`'s receiver:
//
//   HEADER ──(len 126)──▶ LENGTH_16 ─┐
//     │   ──(len 127)──▶ LENGTH_64 ─┤
//     └──────(len ≤ 125)────────────┴──▶ MASK_KEY ──▶ PAYLOAD ──▶ (frame out) ──▶ HEADER
//
// Each state waits until the bytes it needs are buffered. A payload that lies inside one chunk is
// returned as a view of it (no copy); only one that spans chunks is copied, once, into a buffer of
// its exact size: the total work stays linear in the bytes received, however they are split.
//
// A large data frame arrives over many chunks. While its payload is incomplete, each chunk's share
// of it is unmasked at once and shown to `onPayloadPart`, so a rule about the payload's content
// (UTF-8 in a text message, §8.1) can fail after the first bad bytes instead of after the whole
// frame; the frame is still delivered whole by onFrame, its first parts already unmasked.
//
// The states are a hand-written switch, not a transition table like the dispatcher's
// (websocket-phases.ts), for speed: this loop runs for every frame of every connection, the hot
// path the benchmark measures, and a table would add a lookup and an indirect call to each step
// of five states whose transitions fit on a line each.
import { randomFillSync } from 'node:crypto';
import { ProtocolError } from './errors.js';

/** Frame opcodes (§5.2, §11.8). 0x3-0x7 and 0xB-0xF are reserved. */
export const Opcode = {
  CONTINUATION: 0x0,
  TEXT: 0x1,
  BINARY: 0x2,
  CLOSE: 0x8,
  PING: 0x9,
  PONG: 0xa,
} as const;

/** Control frames (close, ping, pong) have the high bit of the opcode set (§5.5). */
export const isControlOpcode = (opcode: number): boolean => (opcode & 0x8) !== 0;

export interface Frame {
  fin: boolean;
  /** RSV1: "Per-Message Compressed" when permessage-deflate is negotiated (RFC 7692 §6). */
  rsv1: boolean;
  opcode: number;
  /** Unmasked payload. Often a view into a received chunk: copy it to keep it past the callback. */
  payload: Buffer;
}

export interface FrameParserOptions {
  /** A server requires masked frames from clients; a client requires unmasked ones (§5.1). */
  expectMasked: boolean;
  /**
   * RSV1 may be set on the first frame of a data message: an extension that gives it a meaning
   * (permessage-deflate, RFC 7692 §6) was negotiated. RSV2 and RSV3 never may.
   */
  rsv1Allowed?: boolean;
  /**
   * Called with each frame header before its payload is buffered, so that a size or sequence rule
   * fails as soon as the header arrives, not after megabytes of payload. May throw ProtocolError.
   */
  onHeader?: (fin: boolean, opcode: number, payloadLength: number, rsv1: boolean) => void;
  /**
   * Called, for a data frame whose payload is still incomplete, with the unmasked payload bytes
   * that arrived in this chunk, in order; a view valid during the call only. The frame's onFrame
   * later carries the whole payload again, these bytes included. May throw ProtocolError.
   */
  onPayloadPart?: (part: Buffer) => void;
  /** Called with each complete, unmasked frame. May throw ProtocolError. */
  onFrame: (frame: Frame) => void;
}

const enum ParserState { HEADER, LENGTH_16, LENGTH_64, MASK_KEY, PAYLOAD, HALTED }

export class FrameParser {
  private readonly options: FrameParserOptions;
  /** Received bytes not consumed yet: chunks[0] from `offset`, then the later chunks whole. */
  private chunks: Buffer[] = [];
  private offset = 0;
  private buffered = 0;
  private state = ParserState.HEADER;
  // The frame being parsed.
  private fin = false;
  private rsv1 = false;
  private opcode = 0;
  private masked = false;
  private payloadLength = 0;
  /** Payload bytes of this frame already unmasked and shown to onPayloadPart. */
  private payloadSeen = 0;
  // The masking key as four numbers, not a Buffer: a Buffer per connection costs far more memory.
  private mask0 = 0;
  private mask1 = 0;
  private mask2 = 0;
  private mask3 = 0;

  constructor(options: FrameParserOptions) {
    this.options = options;
  }

  /**
   * Feeds received bytes; calls onFrame for each frame completed. Throws ProtocolError.
   * Payloads are unmasked in place, inside `chunk`: the caller hands the chunk over for good.
   */
  push(chunk: Buffer): void {
    if (this.state === ParserState.HALTED || chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    try {
      this.run();
    } catch (error) {
      this.halt();
      throw error;
    }
  }

  /** Stops parsing for good and drops what is buffered (after a close frame, or an error). */
  halt(): void {
    this.state = ParserState.HALTED;
    this.chunks = [];
    this.buffered = 0;
    this.offset = 0;
    this.payloadSeen = 0;
  }

  private run(): void {
    for (;;) {
      switch (this.state) {
        case ParserState.HEADER:
          if (this.buffered < 2) return;
          this.readHeader();
          break;
        case ParserState.LENGTH_16:
          if (this.buffered < 2) return;
          this.setPayloadLength(this.readBytes(2).readUInt16BE(0), 126);
          break;
        case ParserState.LENGTH_64: {
          if (this.buffered < 8) return;
          const bytes = this.readBytes(8);
          const high = bytes.readUInt32BE(0);
          // §5.2: "the most significant bit MUST be 0". (Lengths above 2^53 lose precision as JS
          // numbers, but they are far beyond any size limit, which onHeader enforces next.)
          if (high & 0x80000000) throw new ProtocolError('WS_ERR_LENGTH_MSB_SET', 'the 64-bit payload length has its most significant bit set');
          this.setPayloadLength(high * 0x100000000 + bytes.readUInt32BE(4), 65536);
          break;
        }
        case ParserState.MASK_KEY:
          if (this.buffered < 4) return;
        {
          const key = this.readBytes(4);
          this.mask0 = key[0]!;
          this.mask1 = key[1]!;
          this.mask2 = key[2]!;
          this.mask3 = key[3]!;
          this.state = ParserState.PAYLOAD;
        }
          break;
        case ParserState.PAYLOAD: {
          if (this.buffered < this.payloadLength) {
            if (this.options.onPayloadPart !== undefined && !isControlOpcode(this.opcode)) this.showPart();
            return;
          }
          const payload = this.payloadLength === 0 ? EMPTY : this.readPayload(this.payloadLength);
          const seen = this.payloadSeen;
          this.payloadSeen = 0;
          if (this.masked) {
            // The first `seen` bytes were unmasked as they arrived (showPart): only the rest now,
            // with the key turned to where it stopped.
            if (seen === 0) unmaskWith(payload, this.mask0, this.mask1, this.mask2, this.mask3);
            else unmaskAt(payload.subarray(seen), seen, this.mask0, this.mask1, this.mask2, this.mask3);
          }
          this.state = ParserState.HEADER;
          this.options.onFrame({ fin: this.fin, rsv1: this.rsv1, opcode: this.opcode, payload });
          break; // onFrame may have halted us: the loop re-checks the state
        }
        case ParserState.HALTED:
          return;
      }
    }
  }

  private readHeader(): void {
    const bytes = this.readBytes(2);
    const first = bytes[0]!;
    const second = bytes[1]!;
    this.fin = (first & 0x80) !== 0;
    this.rsv1 = (first & 0x40) !== 0;
    this.opcode = first & 0x0f;
    this.masked = (second & 0x80) !== 0;
    const length7 = second & 0x7f;

    // §5.2: RSV1-3 "MUST be 0 unless an extension is negotiated that defines meanings for
    // non-zero values"; the only one we negotiate, permessage-deflate, defines RSV1 alone.
    const reserved = first & (this.options.rsv1Allowed === true ? 0x30 : 0x70);
    if (reserved) throw new ProtocolError('WS_ERR_RSV_BITS_SET', `reserved bits set (0x${reserved.toString(16)}) that no negotiated extension defines`);
    // §5.2: opcodes 0x3-0x7 and 0xB-0xF are "reserved for further ... frames".
    if (this.opcode > Opcode.BINARY && this.opcode < Opcode.CLOSE || this.opcode > Opcode.PONG) {
      throw new ProtocolError('WS_ERR_RESERVED_OPCODE', `reserved opcode 0x${this.opcode.toString(16)}`);
    }
    if (this.rsv1) {
      // RFC 7692 §6.1: RSV1 marks a compressed *message*, so it is set on its first frame only;
      // a control frame or a continuation carrying it fails the connection.
      if (isControlOpcode(this.opcode)) throw new ProtocolError('WS_ERR_RSV1_ON_CONTROL_FRAME', 'RSV1 (compressed) set on a control frame');
      if (this.opcode === Opcode.CONTINUATION) throw new ProtocolError('WS_ERR_RSV1_ON_CONTINUATION', 'RSV1 (compressed) set on a continuation frame');
    }
    if (isControlOpcode(this.opcode)) {
      // §5.5: "All control frames MUST have a payload length of 125 bytes or less and MUST NOT be fragmented."
      if (!this.fin) throw new ProtocolError('WS_ERR_FRAGMENTED_CONTROL_FRAME', 'a control frame must not be fragmented');
      if (length7 > 125) throw new ProtocolError('WS_ERR_CONTROL_FRAME_TOO_LONG', 'a control frame payload must be at most 125 bytes');
    }
    // §5.1: a server MUST close the connection on an unmasked client frame (and vice versa).
    if (this.masked !== this.options.expectMasked) {
      if (this.options.expectMasked) throw new ProtocolError('WS_ERR_UNMASKED_FRAME', 'client frames must be masked');
      throw new ProtocolError('WS_ERR_MASKED_FRAME', 'server frames must not be masked');
    }
    if (length7 === 126) this.state = ParserState.LENGTH_16;
    else if (length7 === 127) this.state = ParserState.LENGTH_64;
    else this.setPayloadLength(length7, 0);
  }

  /** Records the payload length once known, checking it was encoded minimally (§5.2). */
  private setPayloadLength(length: number, minimum: number): void {
    // §5.2: "the minimal number of bytes MUST be used to encode the length".
    if (length < minimum) throw new ProtocolError('WS_ERR_NON_MINIMAL_LENGTH', `payload length ${length} not encoded in the minimal number of bytes`);
    this.payloadLength = length;
    this.options.onHeader?.(this.fin, this.opcode, length, this.rsv1);
    this.state = this.masked ? ParserState.MASK_KEY : ParserState.PAYLOAD;
  }

  /**
   * Consumes `n` ≤ 8 header bytes: a view when they lie in one chunk, else copied to SCRATCH.
   * Callers read the result at once, before any other parser runs, so one scratch is enough.
   */
  private readBytes(n: number): Buffer {
    const head = this.chunks[0]!;
    if (head.length - this.offset >= n) {
      const view = head.subarray(this.offset, this.offset + n);
      this.advance(n);
      return view;
    }
    this.copyOut(SCRATCH, n);
    return SCRATCH;
  }

  /** Consumes an `n`-byte payload: a view of the chunk when possible, else one exact-size copy. */
  private readPayload(n: number): Buffer {
    const head = this.chunks[0]!;
    if (head.length - this.offset >= n) {
      const view = head.subarray(this.offset, this.offset + n);
      this.advance(n);
      return view;
    }
    const out = Buffer.allocUnsafe(n);
    this.copyOut(out, n);
    return out;
  }

  /**
   * The payload is incomplete and every buffered byte belongs to it: unmask, in place, the bytes
   * not shown yet (those of the chunk just pushed, at the end of the list) and show them to
   * onPayloadPart. Each byte is unmasked once, here or when the frame completes.
   */
  private showPart(): void {
    const unseen = this.buffered - this.payloadSeen;
    if (unseen === 0) return;
    // The unseen bytes are the last `unseen` buffered ones: find the chunk where they start.
    let index = this.chunks.length - 1;
    let skip = this.chunks[index]!.length - unseen; // bytes of that chunk before them
    while (skip < 0) skip += this.chunks[--index]!.length;
    const start = this.payloadSeen;
    this.payloadSeen = this.buffered;
    for (let at = start; index < this.chunks.length; index++, skip = 0) {
      const part = this.chunks[index]!.subarray(skip);
      if (this.masked) unmaskAt(part, at, this.mask0, this.mask1, this.mask2, this.mask3);
      at += part.length;
      this.options.onPayloadPart!(part);
    }
  }

  /** Moves past `n` bytes that lie within chunks[0]. */
  private advance(n: number): void {
    this.offset += n;
    this.buffered -= n;
    if (this.offset === this.chunks[0]!.length) {
      this.chunks.shift();
      this.offset = 0;
    }
  }

  /** Copies the next `n` buffered bytes into `target`, consuming the chunks they came from. */
  private copyOut(target: Buffer, n: number): void {
    let copied = 0;
    let used = 0; // whole chunks consumed, removed in one splice: linear even for 1-byte chunks
    while (copied < n) {
      const chunk = this.chunks[used]!;
      const take = Math.min(chunk.length - this.offset, n - copied);
      chunk.copy(target, copied, this.offset, this.offset + take);
      copied += take;
      if (this.offset + take === chunk.length) { used++; this.offset = 0; }
      else this.offset += take;
    }
    if (used > 0) this.chunks.splice(0, used);
    this.buffered -= n;
  }
}

const EMPTY = Buffer.alloc(0);
/** Header bytes that straddle chunks are gathered here (see readBytes). */
const SCRATCH = Buffer.alloc(8);

/** XORs `data` in place with the 4-byte masking key (§5.3). */
export function unmask(data: Buffer, key: Buffer): void {
  unmaskWith(data, key[0]!, key[1]!, key[2]!, key[3]!);
}

/**
 * The unmasking loop. Hot path: four bytes a step with the key's bytes in locals, which V8
 * compiles to tight code without allocating.
 */
function unmaskWith(data: Buffer, k0: number, k1: number, k2: number, k3: number): void {
  const length = data.length;
  const whole = length & ~3;
  let i = 0;
  for (; i < whole; i += 4) {
    data[i] ^= k0;
    data[i + 1] ^= k1;
    data[i + 2] ^= k2;
    data[i + 3] ^= k3;
  }
  if (i < length) data[i] ^= k0;
  if (i + 1 < length) data[i + 1] ^= k1;
  if (i + 2 < length) data[i + 2] ^= k2;
}

/** Unmasks `data`, which starts `position` bytes into its payload: the key turned to match. */
function unmaskAt(data: Buffer, position: number, k0: number, k1: number, k2: number, k3: number): void {
  switch (position & 3) {
    case 0: unmaskWith(data, k0, k1, k2, k3); break;
    case 1: unmaskWith(data, k1, k2, k3, k0); break;
    case 2: unmaskWith(data, k2, k3, k0, k1); break;
    case 3: unmaskWith(data, k3, k0, k1, k2); break;
  }
}

/** Size of a frame header for a payload of `length` bytes (§5.2), without a masking key. */
function headerSize(length: number): number {
  return length < 126 ? 2 : length < 65536 ? 4 : 10;
}

/**
 * Writes a frame header (FIN, opcode, MASK bit, length in the minimal form of §5.2, no masking
 * key) at the start of `target`, which must have room for it (up to 10 bytes); returns its size.
 * Exported so that the 64-bit form can be tested with lengths too large to allocate.
 */
export function writeHeader(target: Buffer, opcode: number, fin: boolean, length: number, masked: boolean): number {
  target[0] = (fin ? 0x80 : 0) | opcode;
  const maskBit = masked ? 0x80 : 0;
  if (length < 126) {
    target[1] = maskBit | length;
    return 2;
  }
  if (length < 65536) {
    target[1] = maskBit | 126;
    target.writeUInt16BE(length, 2);
    return 4;
  }
  target[1] = maskBit | 127;
  target.writeUInt32BE(Math.floor(length / 0x100000000), 2);
  target.writeUInt32BE(length >>> 0, 6);
  return 10;
}

/**
 * Encodes one server-to-client frame (unmasked, §5.1) into a single Buffer. A single Buffer is
 * what lets a broadcaster build a frame once and write the same bytes to many sockets.
 */
export function encodeFrame(opcode: number, payload: Uint8Array, fin = true): Buffer {
  const size = headerSize(payload.length);
  const frame = Buffer.allocUnsafe(size + payload.length);
  writeHeader(frame, opcode, fin, payload.length, false);
  frame.set(payload, size);
  return frame;
}

/** Encodes a text frame straight from a string: one allocation, the UTF-8 written in place. */
export function encodeTextFrame(text: string): Buffer {
  const length = Buffer.byteLength(text);
  const size = headerSize(length);
  const frame = Buffer.allocUnsafe(size + length);
  writeHeader(frame, Opcode.TEXT, true, length, false);
  frame.write(text, size);
  return frame;
}

/**
 * Encodes a client-to-server frame, masked with a fresh random key (§5.3: the key "MUST be
 * derived from a strong source of entropy"). Used by the benchmark's load generator.
 */
export function encodeMaskedFrame(opcode: number, payload: Uint8Array, fin = true): Buffer {
  const size = headerSize(payload.length);
  const frame = Buffer.allocUnsafe(size + 4 + payload.length);
  writeHeader(frame, opcode, fin, payload.length, true);
  if (maskKeyOffset === MASK_KEY_POOL.length) {
    randomFillSync(MASK_KEY_POOL); // one call to the CSPRNG per 2048 keys, not one per frame
    maskKeyOffset = 0;
  }
  const key = frame.subarray(size, size + 4);
  MASK_KEY_POOL.copy(key, 0, maskKeyOffset, maskKeyOffset + 4);
  maskKeyOffset += 4;
  const body = frame.subarray(size + 4);
  body.set(payload);
  unmask(body, key); // masking and unmasking are the same XOR
  return frame;
}

/** Random bytes for masking keys, drawn from the CSPRNG in bulk; every key is used once. */
const MASK_KEY_POOL = Buffer.allocUnsafe(8192);
let maskKeyOffset = MASK_KEY_POOL.length;

/** The payload of a Close frame (§5.5.1): a 2-byte code then a UTF-8 reason, or nothing. */
export function encodeClosePayload(code: number | null, reason = ''): Buffer {
  if (code === null) return EMPTY;
  const payload = Buffer.allocUnsafe(2 + Buffer.byteLength(reason));
  payload.writeUInt16BE(code, 0);
  payload.write(reason, 2);
  return payload;
}
