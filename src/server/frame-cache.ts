// Frame once, send many: a small cache from text to its encoded WebSocket frame.
//
// A broadcast hands the same string to every subscriber's `send`. Encoding it (UTF-8 plus a
// header) once per subscriber would cost O(subscribers × bytes); with this cache the first send
// encodes and every other send reuses the same Buffer, which the sockets then write as is. A Map
// keyed by the string is cheap here: V8 caches a string's hash inside the string, and the same
// string object compares equal by pointer.
//
// The cache is bounded in entries and bytes and evicts the oldest entry first (a Map iterates in
// insertion order), which fits broadcast traffic: a text is hot while it fans out, then never again.
import { encodeTextFrame } from './frames.js';
import { SERVER_LIMITS } from './limits.js';

export class FrameCache {
  private readonly frames = new Map<string, Buffer>();
  private bytes = 0;
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  /** How a text becomes its frame (a compressed one for permessage-deflate, deflate-codec.ts). */
  private readonly encode: (text: string) => Buffer;

  /** The bounds default to the declared ones (limits.ts); tests choose small ones. */
  constructor(
    maxEntries: number = SERVER_LIMITS.frameCacheEntries.value,
    maxBytes: number = SERVER_LIMITS.frameCacheBytes.value,
    encode: (text: string) => Buffer = encodeTextFrame,
  ) {
    this.maxEntries = maxEntries;
    this.maxBytes = maxBytes;
    this.encode = encode;
  }

  /** The frame for `text`, encoded now or reused. The Buffer is shared: never modify it. */
  textFrame(text: string): Buffer {
    const cached = this.frames.get(text);
    if (cached !== undefined) return cached;
    let frame = this.encode(text);
    // A text too large to share much would only evict the useful entries.
    if (frame.length > this.maxBytes >>> 4) return frame;
    frame = ownMemory(frame);
    this.frames.set(text, frame);
    this.bytes += frame.length;
    while (this.frames.size > this.maxEntries || this.bytes > this.maxBytes) {
      const oldest = this.frames.keys().next().value as string;
      this.bytes -= this.frames.get(oldest)!.length;
      this.frames.delete(oldest);
    }
    return frame;
  }
}

/**
 * `frame`, or a copy of it that owns exactly its bytes. A short frame from Buffer.allocUnsafe is a
 * slice of node's shared 8 KiB pool, and a slice keeps its whole pool alive: 4096 cached frames of
 * 50 bytes, each from a pool that other allocations had filled meanwhile, pinned 32 MiB, not the
 * 200 KiB the byte bound counts (measured while looking for what grows under the fuzzer). One copy
 * per cached text, not per send, makes the bound count what is really kept.
 */
function ownMemory(frame: Buffer): Buffer {
  if (frame.byteOffset === 0 && frame.buffer.byteLength === frame.length) return frame;
  const own = Buffer.allocUnsafeSlow(frame.length);
  frame.copy(own);
  return own;
}
