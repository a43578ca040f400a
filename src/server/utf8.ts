// Incremental UTF-8 validation (RFC 3629 §4), for text messages that arrive in fragments.
//
// RFC 6455 §8.1 makes invalid UTF-8 in a text message fatal (close 1007), and fragments may split
// a character anywhere. Waiting for the whole message to validate it would let a peer stream
// megabytes of garbage first, so the validator is fed each fragment as it arrives and says "no"
// at the first byte that can no longer start or continue a valid sequence.
//
// Theory of operation: between characters the validator wants a lead byte; a lead byte says how
// many continuation bytes follow and, for the first of them only, a narrower range than the usual
// 0x80-0xBF. The narrow ranges are what rule out overlong forms, UTF-16 surrogates and code points
// above U+10FFFF (RFC 3629 §4, the "UTF8-2/3/4" productions):
//
//   lead byte   continuation bytes  first continuation   excludes
//   00-7F       0                   -                    -
//   C2-DF       1                   80-BF                (C0, C1 are overlong 2-byte forms)
//   E0          2                   A0-BF                overlong 3-byte forms
//   E1-EC,EE-EF 2                   80-BF                -
//   ED          2                   80-9F                surrogates U+D800-U+DFFF
//   F0          3                   90-BF                overlong 4-byte forms
//   F1-F3       3                   80-BF                -
//   F4          3                   80-8F                above U+10FFFF
//   80-C1,F5-FF invalid as lead bytes
//
// Speed: that byte-by-byte loop runs in JavaScript, about 40 × slower than Node's native `isUtf8`.
// So update() gives the loop only the bytes at the edges of each piece (those finishing a
// character left open by the previous piece, and an unfinished character at the end, at most 3
// bytes each) and hands everything between, which starts and ends on character boundaries, to
// `isUtf8`: a large text frame checked chunk by chunk costs about what checking it whole does.
import { isUtf8 } from 'node:buffer';

export class Utf8Validator {
  /** Continuation bytes still owed by the current character (0: at a character boundary). */
  private pending = 0;
  /** Allowed range of the next continuation byte. */
  private low = 0x80;
  private high = 0xbf;

  /** Feeds `bytes`; returns false as soon as the input so far can no longer be valid UTF-8. */
  update(bytes: Uint8Array): boolean {
    // Finish the character the previous piece left open, byte by byte.
    let start = 0;
    while (this.pending > 0 && start < bytes.length) {
      if (!this.scan(bytes, start, start + 1)) return false;
      start++;
    }
    if (start === bytes.length) return true;
    // The middle, from a boundary to the last boundary, natively; the unfinished end by hand.
    const end = lastBoundary(bytes, start);
    if (end > start && !isUtf8(bytes.subarray(start, end))) return this.fail();
    return this.scan(bytes, end, bytes.length);
  }

  /** The byte-by-byte validator over bytes[from, to), carrying its state across calls. */
  private scan(bytes: Uint8Array, from: number, to: number): boolean {
    let pending = this.pending;
    let low = this.low;
    let high = this.high;
    for (let i = from; i < to; i++) {
      const byte = bytes[i]!;
      if (pending === 0) {
        if (byte < 0x80) continue; // ASCII, the common case
        if (byte >= 0xc2 && byte <= 0xdf) { pending = 1; low = 0x80; high = 0xbf; }
        else if (byte === 0xe0) { pending = 2; low = 0xa0; high = 0xbf; }
        else if (byte === 0xed) { pending = 2; low = 0x80; high = 0x9f; }
        else if (byte >= 0xe1 && byte <= 0xef) { pending = 2; low = 0x80; high = 0xbf; }
        else if (byte === 0xf0) { pending = 3; low = 0x90; high = 0xbf; }
        else if (byte === 0xf4) { pending = 3; low = 0x80; high = 0x8f; }
        else if (byte >= 0xf1 && byte <= 0xf3) { pending = 3; low = 0x80; high = 0xbf; }
        else return this.fail();
      } else {
        if (byte < low || byte > high) return this.fail();
        pending--;
        low = 0x80; // only the first continuation byte has a narrow range
        high = 0xbf;
      }
    }
    this.pending = pending;
    this.low = low;
    this.high = high;
    return true;
  }

  /** True when everything fed so far ends on a character boundary (a message may end here). */
  get atBoundary(): boolean {
    return this.pending === 0;
  }

  reset(): void {
    this.pending = 0;
    this.low = 0x80;
    this.high = 0xbf;
  }

  private fail(): false {
    this.reset();
    return false;
  }
}

/**
 * Where the character that `bytes` may end in the middle of begins: the index of a lead byte in
 * the last 4 bytes whose sequence runs past the end; else bytes.length. Only lengths are looked
 * at: whether the bytes are valid is for the validator to say.
 */
function lastBoundary(bytes: Uint8Array, start: number): number {
  const length = bytes.length;
  let i = length - 1;
  // Back over up to 3 continuation bytes (10xxxxxx) to the byte that starts their character.
  while (i > start && i > length - 4 && (bytes[i]! & 0xc0) === 0x80) i--;
  const lead = bytes[i]!;
  const size = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  return i + size > length ? i : length;
}
