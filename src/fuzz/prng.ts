// A small seeded pseudo-random generator for the fuzzer, so that a run can be repeated: the same
// seed gives every attacker the same sequence of attacks, byte for byte.
//
// Math.random() cannot be seeded, and node:crypto's generator is not meant to be; neither would
// let a failing run be replayed. This is sfc32 (Chris Doty-Humphrey's "small fast counting"
// generator, public domain): four 32-bit words of state, a few adds, shifts and rotates per
// number, a period of at least 2^32 and good statistical quality, all in 32-bit integer
// arithmetic that V8 keeps unboxed. The seed's bits are spread over the state by splitmix32
// first, so nearby seeds (1, 2, 3...) still start far apart.
//
// Streams: `derive(seed, a, b)` gives an independent generator for attacker `a`'s connection
// `b`. Each attack is planned from its own stream, so what one attacker does never depends on how
// the others were scheduled: `--show A:B` can print connection B of attacker A on its own.
//
// Not for secrets (it is predictable by design); the fuzzer's masking keys need no secrecy.

/** One step of splitmix32: a well-mixed 32-bit value from a counter. */
function splitmix32(state: number): number {
  let z = (state + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /** A generator from one or more 32-bit integers (a seed, then stream labels). */
  constructor(...words: number[]) {
    let h = 0x243f6a88; // any fixed start: the first digits of pi
    for (const word of words) h = splitmix32(h ^ splitmix32(word >>> 0));
    this.a = splitmix32(h);
    this.b = splitmix32(this.a);
    this.c = splitmix32(this.b);
    this.d = 1; // sfc32's counter
    for (let i = 0; i < 12; i++) this.next(); // the authors' recommended warm-up
  }

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** A uniform float in [0, 1). */
  float(): number {
    return this.next() / 0x100000000;
  }

  /** A uniform integer in [0, n) for 0 < n ≤ 2^32. */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }

  /** A uniform integer in [min, max], both included. */
  range(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.float() < p;
  }

  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  /**
   * An index chosen with the given weights (non-negative, at least one positive): weights
   * [3, 1] give 0 three times as often as 1.
   */
  weighted(weights: readonly number[]): number {
    let total = 0;
    for (const w of weights) total += w;
    let x = this.float() * total;
    for (let i = 0; i < weights.length; i++) {
      x -= weights[i]!;
      if (x < 0) return i;
    }
    return weights.length - 1;
  }

  /**
   * A size from 0 to max, most of them small: each power of two up to max is as likely as the
   * next, so 1-byte and 1000-byte cases both come up often, as fuzzing wants.
   */
  size(max: number): number {
    if (max <= 0) return 0;
    const bits = 32 - Math.clz32(max);
    const ceiling = Math.min(max, 2 ** this.int(bits + 1) - 1);
    return this.int(ceiling + 1);
  }

  /** `n` random bytes. */
  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let i = 0;
    for (; i + 4 <= n; i += 4) out.writeUInt32LE(this.next(), i);
    if (i < n) {
      const last = this.next();
      for (let shift = 0; i < n; i++, shift += 8) out[i] = (last >>> shift) & 0xff;
    }
    return out;
  }
}

/** A fresh seed for a run that was not given one: a 32-bit integer, printed so it can be reused. */
export function randomSeed(): number {
  return (Math.random() * 0x100000000) >>> 0;
}
