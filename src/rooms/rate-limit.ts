// The per-connection rate limit for rooms requests: a token bucket (chat-protocol.md, "Limits").
//
// Theory of operation: a bucket holds up to `burst` tokens and gains `ratePerSecond` tokens per
// second; each request takes one, and a request that finds less than one is refused
// (`rate_limited`) and changes nothing. So a client may send `burst` requests at once after a
// pause, and `ratePerSecond` per second for as long as it likes. There is no timer: the bucket
// refills lazily, by the time elapsed since it was last looked at, on the clock the caller passes
// (ms, e.g. Date.now() or performance.now()), so a test moves time by passing numbers. One small
// object per connection, and nothing at all while the connection is idle.
//
// The arithmetic is in thousandths of a token, so with whole milliseconds and a whole rate it is
// exact: 1 ms at 20 requests per second adds 20 thousandths, and fifty of those make exactly one
// token (in fractions of a token, 0.02 added fifty times is 0.9999999999999999: one request short).

import { CHAT_SETTINGS } from '../config.js';

/** CHAT_RATE_PER_SECOND's default (declared, with its reason, in config.ts). */
export const DEFAULT_RATE_PER_SECOND = CHAT_SETTINGS.ratePerSecond.default;
/** CHAT_RATE_BURST's default (declared, with its reason, in config.ts). */
export const DEFAULT_RATE_BURST = CHAT_SETTINGS.rateBurst.default;

const MILLI = 1000;

export class TokenBucket {
  private readonly rate: number;
  private readonly capacity: number;
  /** Thousandths of a token. */
  private level: number;
  private updatedAt: number;

  /** A full bucket: a new connection may send `burst` requests at once. `now` in ms. */
  constructor(ratePerSecond: number, burst: number, now: number) {
    if (!(ratePerSecond >= 0) || !Number.isFinite(ratePerSecond)) throw new RangeError(`ratePerSecond must be a finite number ≥ 0, got ${ratePerSecond}`);
    if (!(burst >= 1) || !Number.isFinite(burst)) throw new RangeError(`burst must be a finite number ≥ 1, got ${burst}`);
    this.rate = ratePerSecond;
    this.capacity = burst * MILLI;
    this.level = this.capacity;
    this.updatedAt = now;
  }

  /** Takes one token if there is one (true: go ahead), else changes nothing and returns false. */
  take(now: number): boolean {
    // A clock that goes back (a test, or a wall clock set back) adds nothing and does not move the
    // reference back, so the same time is never counted twice.
    if (now > this.updatedAt) {
      // ms × tokens/s = thousandths of a token: the units of `level` (see the top).
      this.level = Math.min(this.capacity, this.level + (now - this.updatedAt) * this.rate);
      this.updatedAt = now;
    }
    if (this.level < MILLI) return false;
    this.level -= MILLI;
    return true;
  }
}
