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

export class Utf8Validator {
  /** Continuation bytes still owed by the current character (0: at a character boundary). */
  private pending = 0;
  /** Allowed range of the next continuation byte. */
  private low = 0x80;
  private high = 0xbf;

  /** Feeds `bytes`; returns false as soon as the input so far can no longer be valid UTF-8. */
  update(bytes: Uint8Array): boolean {
    let pending = this.pending;
    let low = this.low;
    let high = this.high;
    for (let i = 0; i < bytes.length; i++) {
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
