// Tests for src/rooms/rate-limit.ts: the token bucket, on a clock the test moves by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_RATE_BURST, DEFAULT_RATE_PER_SECOND, TokenBucket } from '../src/rooms/rate-limit.js';

/** How many take() succeed at `now`, trying `tries` times. */
function takes(bucket: TokenBucket, now: number, tries: number): number {
  let taken = 0;
  for (let i = 0; i < tries; i++) if (bucket.take(now)) taken++;
  return taken;
}

test('the defaults are the protocol\'s', () => {
  assert.equal(DEFAULT_RATE_PER_SECOND, 20);
  assert.equal(DEFAULT_RATE_BURST, 100);
});

test('a new bucket is full: burst requests at once, then none', () => {
  const bucket = new TokenBucket(20, 100, 1_000);
  assert.equal(takes(bucket, 1_000, 150), 100);
  assert.equal(bucket.take(1_000), false);
});

test('it refills at the rate: one token per 1000/rate ms, exactly', () => {
  const bucket = new TokenBucket(20, 100, 0);
  takes(bucket, 0, 100);
  assert.equal(bucket.take(49), false); // 49 ms × 20/s = 0.98 token
  assert.equal(bucket.take(50), true); // 1 token at 50 ms
  assert.equal(bucket.take(50), false);
  assert.equal(takes(bucket, 1_050, 100), 20); // one more second: 20 tokens
});

test('refills made of many 1 ms steps add up exactly (no float drift)', () => {
  const bucket = new TokenBucket(20, 1, 0);
  assert.equal(bucket.take(0), true);
  for (let now = 1; now < 50; now++) assert.equal(bucket.take(now), false, `at ${now} ms`);
  assert.equal(bucket.take(50), true); // 50 × 20 thousandths = exactly one token
});

test('it never holds more than burst', () => {
  const bucket = new TokenBucket(20, 5, 0);
  assert.equal(takes(bucket, 3_600_000, 100), 5); // an hour idle still gives 5
});

test('a refused request takes nothing: the next token comes when it would have anyway', () => {
  const bucket = new TokenBucket(10, 1, 0);
  assert.equal(bucket.take(0), true);
  for (let i = 0; i < 50; i++) assert.equal(bucket.take(60), false);
  assert.equal(bucket.take(100), true);
});

test('a clock that goes back adds nothing and does not count the same time twice', () => {
  const bucket = new TokenBucket(10, 2, 1_000);
  assert.equal(takes(bucket, 1_000, 2), 2);
  assert.equal(bucket.take(500), false); // back in time: no tokens
  assert.equal(bucket.take(1_099), false);
  assert.equal(bucket.take(1_100), true); // 100 ms after 1000 at 10/s: one token, once
  assert.equal(bucket.take(1_100), false);
});

test('sustained sending at the rate is never refused, above it is', () => {
  const bucket = new TokenBucket(20, 1, 0);
  let refused = 0;
  for (let now = 0; now < 10_000; now += 50) if (!bucket.take(now)) refused++;
  assert.equal(refused, 0);
  const fast = new TokenBucket(20, 1, 0);
  let accepted = 0;
  for (let now = 0; now < 10_000; now += 25) if (fast.take(now)) accepted++;
  assert.equal(accepted, 200); // 10 s at 20/s (40/s offered)
});

test('bad settings throw', () => {
  assert.throws(() => new TokenBucket(-1, 10, 0), RangeError);
  assert.throws(() => new TokenBucket(NaN, 10, 0), RangeError);
  assert.throws(() => new TokenBucket(Infinity, 10, 0), RangeError);
  assert.throws(() => new TokenBucket(10, 0, 0), RangeError);
  assert.throws(() => new TokenBucket(10, NaN, 0), RangeError);
  const never = new TokenBucket(0, 1, 0); // rate 0: the burst, then nothing ever
  assert.equal(never.take(0), true);
  assert.equal(never.take(1e12), false);
});
