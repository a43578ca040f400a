// permessage-deflate's compression (RFC 7692 §7.2), sans-I/O: payload bytes in, payload bytes out.
// permessage-deflate.ts negotiates the parameters; the connection (connection.ts) calls this layer
// for the messages whose first frame has RSV1 set, and for the messages it sends; the application
// never sees it.
//
// Theory of operation. A compressed message is the DEFLATE stream (RFC 1951) of its payload, cut
// at a block boundary by a sync flush, minus the 4 octets `00 00 ff ff` the flush always ends
// with (the LEN and NLEN of an empty stored block):
//
//   send (§7.2.1)     deflate(payload), Z_SYNC_FLUSH ──▶ … 00 00 ff ff ──strip──▶ frame, RSV1 set
//   receive (§7.2.2)  frames' payloads joined ──append 00 00 ff ff──▶ inflate, Z_SYNC_FLUSH ──▶ payload
//
// "Hello" compresses to `f2 48 cd c9 c9 07 00` (§7.2.3.1). With *context takeover* (§7.2.3.2) the
// compressor keeps its LZ77 window from one message to the next, so a second "Hello" can be
// `f2 00 11 00 00`: "copy 5 bytes from 5 back", back into the previous message.
//
// Why node:zlib's synchronous one-shot functions, not its streams. The streams run in libuv's
// threadpool, so each message would cost a hop to a thread and back (measured: 3-5 × the CPU of a
// one-shot call for a 128-byte message), and every message received after a compressed one would
// have to wait for it, to keep them in order. One-shot calls run on the event loop, in order, with
// nothing to wait for, and this layer stays testable with bytes alone. What they cost, and why it
// is bounded:
// - They hold the event loop while they run. Inflating is capped by `--ws-max-size` (zlib stops
//   within one 16 KiB output chunk of `maxOutputLength`: a 20 MiB "bomb" of one repeated byte,
//   20 KB on the wire, costs the server the limit, not 20 MiB); deflating costs what the message
//   the application chose to send costs, once per process for a shared text (below).
// - Only one zlib context exists at a time in a process (each call creates and frees its own),
//   which bounds zlib's memory across connections better than any semaphore over async work could.
// - A one-shot call cannot keep a context between messages. The server never needs one: it
//   declares server_no_context_takeover (see permessage-deflate.ts), so each message it sends is
//   compressed on its own, and compresses to the same bytes for every connection with the same
//   window: a broadcast text is compressed once per process and its frame shared (sharedTextFrame).
//   A client may use context takeover; its window is given back to zlib as a preset dictionary
//   (RFC 1951 allows back-references into a raw stream's dictionary): the last 2^windowBits
//   inflated bytes, kept per connection (at most 32 KiB, grown only as the client sends).
// Messages under COMPRESSION_THRESHOLD bytes are sent uncompressed (RSV1 clear is always allowed):
// deflate saves almost nothing on them (measured: 3 % at 60 bytes, 14 % at 100, 45 % at 300 for
// chat-like JSON), for a fixed cost per call.
import { constants, deflateRawSync, inflateRawSync } from 'node:zlib';
import { ProtocolError } from './errors.js';
import { FrameCache } from './frame-cache.js';
import { Opcode, encodeFrame } from './frames.js';
import { SERVER_LIMITS } from './limits.js';
import type { DeflateParameters, Negotiated } from './permessage-deflate.js';

/** §7.2.1, §7.2.2: how every sync-flushed DEFLATE stream ends (an empty stored block's LEN, NLEN). */
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

/** Messages shorter than this many bytes are sent uncompressed (declared, with its reason, in limits.ts). */
export const COMPRESSION_THRESHOLD = SERVER_LIMITS.deflateThresholdBytes.value;

/** The RSV1 bit of a frame's first byte: "Per-Message Compressed" (§6). */
const RSV1 = 0x40;

/** §7.2.1: the compressed payload of a message, compressed on its own (no context takeover). */
export function compressPayload(data: Uint8Array | string, windowBits: number): Buffer {
  const flushed = deflateRawSync(data, { windowBits, finishFlush: constants.Z_SYNC_FLUSH });
  return flushed.subarray(0, flushed.length - TAIL.length);
}

/** A whole data frame (FIN, RSV1 set) carrying `data` compressed (§6: RSV1 on the first frame). */
export function compressedFrame(opcode: number, data: Uint8Array | string, windowBits: number): Buffer {
  const frame = encodeFrame(opcode, compressPayload(data, windowBits));
  frame[0] = frame[0]! | RSV1;
  return frame;
}

/**
 * §7.2.2: the message whose compressed payload is `parts` (its frames' payloads, in order),
 * inflated with a `windowBits` window and, for a client using context takeover, its previous
 * messages' last bytes as the window to start from. Throws ProtocolError: 1009 as soon as the
 * output passes `maxSize` (the rest is never inflated), 1007 when the data is not valid DEFLATE.
 */
export function inflatePayload(parts: readonly Uint8Array[], maxSize: number, windowBits: number, window: Buffer | null = null): Buffer {
  const input = Buffer.concat([...parts, TAIL]);
  try {
    return inflateRawSync(input, {
      windowBits,
      finishFlush: constants.Z_SYNC_FLUSH,
      maxOutputLength: maxSize,
      ...(window !== null && window.length > 0 ? { dictionary: window } : {}),
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ERR_BUFFER_TOO_LARGE') {
      throw new ProtocolError('WS_ERR_MESSAGE_TOO_BIG', `compressed message inflates to more than the ${maxSize}-byte limit`);
    }
    // zlib's own errors (Z_DATA_ERROR: "invalid block type", "invalid distance too far back"...).
    if (typeof code === 'string' && code.startsWith('Z_')) {
      throw new ProtocolError('WS_ERR_INVALID_COMPRESSED_DATA', `invalid compressed data: ${(error as Error).message}`);
    }
    throw error;
  }
}

/** Compressed text frames shared by every connection of the process, one cache per window size. */
const sharedFrames = new Map<number, FrameCache>();

/**
 * The compressed frame of `text` for connections compressing with `windowBits`, compressed for
 * the first of them and reused by the others (a broadcast). The Buffer is shared: never modify it.
 */
export function sharedTextFrame(text: string, windowBits: number): Buffer {
  let cache = sharedFrames.get(windowBits);
  if (cache === undefined) {
    cache = new FrameCache(undefined, undefined, (uncached) => compressedFrame(Opcode.TEXT, uncached, windowBits));
    sharedFrames.set(windowBits, cache);
  }
  return cache.textFrame(text);
}

/**
 * permessage-deflate as negotiated for one connection: what the connection calls to send and
 * receive compressed messages, and the client's window when it uses context takeover.
 */
export class PerMessageDeflate {
  readonly parameters: DeflateParameters;
  /** The Sec-WebSocket-Extensions value of the 101 that accepts the offer. */
  readonly response: string;
  /**
   * The client's LZ77 window, for context takeover: the last inflated bytes, at most
   * 2^clientMaxWindowBits of them. Null until the first compressed message arrives, and always
   * with client_no_context_takeover.
   */
  private window: Buffer | null = null;

  constructor(negotiated: Negotiated) {
    this.parameters = negotiated.parameters;
    this.response = negotiated.response;
  }

  /** A received message's payload (§7.2.2), from its frames' payloads. Throws ProtocolError. */
  inflate(parts: readonly Uint8Array[], maxSize: number): Buffer {
    const { clientMaxWindowBits, clientNoContextTakeover } = this.parameters;
    const output = inflatePayload(parts, maxSize, clientMaxWindowBits, this.window);
    if (!clientNoContextTakeover) this.remember(output);
    return output;
  }

  /** The compressed frame for a binary or text message, or null to send it uncompressed. */
  frame(opcode: number, data: Uint8Array): Buffer | null {
    if (data.length < COMPRESSION_THRESHOLD) return null;
    return compressedFrame(opcode, data, this.parameters.serverMaxWindowBits);
  }

  /** The compressed frame for a text, shared with every connection of the same window; or null. */
  textFrame(text: string): Buffer | null {
    // Cheap first: a string of n UTF-16 units encodes to at least n bytes.
    if (text.length < COMPRESSION_THRESHOLD && Buffer.byteLength(text) < COMPRESSION_THRESHOLD) return null;
    return sharedTextFrame(text, this.parameters.serverMaxWindowBits);
  }

  /** Slides the client's window over `output` (copying: the window never holds a message alive). */
  private remember(output: Buffer): void {
    const size = 1 << this.parameters.clientMaxWindowBits;
    const kept = this.window;
    const keptLength = kept === null ? 0 : kept.length;
    if (output.length === 0) return;
    if (output.length >= size) {
      this.window = Buffer.from(output.subarray(output.length - size));
    } else if (keptLength === size) {
      // Full: slide in place, no allocation (the steady state of a chatty client).
      kept!.copyWithin(0, output.length);
      output.copy(kept!, size - output.length);
    } else {
      // Still growing: only as large as what the client has sent so far.
      const grown = Buffer.allocUnsafe(Math.min(size, keptLength + output.length));
      const fromKept = grown.length - output.length;
      if (fromKept > 0) kept!.copy(grown, 0, keptLength - fromKept);
      output.copy(grown, fromKept);
      this.window = grown;
    }
  }
}
