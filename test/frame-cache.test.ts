// Tests for src/server/frame-cache.ts: FrameCache, the "frame once, send many" cache of encoded
// text frames. What it promises, seen from outside:
//   - the same text gives back the same Buffer object (that is what saves the work), and its
//     bytes are exactly what encodeTextFrame produces;
//   - it is bounded in entries and in bytes, and evicts the oldest entry first;
//   - a text larger than a sixteenth of the byte bound is encoded but never kept;
//   - a cached frame owns exactly its bytes, so the byte bound is what the cache really keeps.
// Whether a text is cached shows as object identity: a cached text comes back as the very same
// Buffer, an uncached one as a new Buffer with the same bytes. Note that asking for a text that
// is not cached caches it (and may evict another), so each test asks for the survivors first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameCache } from '../src/server/frame-cache.js';
import { encodeTextFrame } from '../src/server/frames.js';
import { hex } from './helpers/bytes.js';

/** A text of `n` ASCII characters, distinct for each `tag`, whose frame has a 2-byte header. */
const text = (tag: string, n: number): string => `${tag}:`.padEnd(n, '.');

/** Asserts that `cache` still holds `texts` (same Buffer as `frames[i]`) without changing it. */
function assertCached(cache: FrameCache, texts: string[], frames: Buffer[], why: string): void {
  texts.forEach((t, i) => assert.equal(cache.textFrame(t), frames[i], `${why}: ${JSON.stringify(t.slice(0, 12))} is cached`));
}

test('the same text gives the same Buffer object, also from an equal string built separately', () => {
  const cache = new FrameCache();
  const first = cache.textFrame('hello');
  assert.equal(cache.textFrame('hello'), first);
  // Map keys compare strings by value: a string built at run time finds the same entry.
  const built = ['he', 'llo'].join('');
  assert.equal(cache.textFrame(built), first);
  assert.notEqual(cache.textFrame('hello!'), first, 'another text, another frame');
});

test('the frame is exactly the RFC 6455 §5.7 encoding of the text', () => {
  const cache = new FrameCache();
  // §5.7: "A single-frame unmasked text message" containing "Hello".
  assert.deepEqual(cache.textFrame('Hello'), hex('81 05 48656c6c6f'));
  assert.deepEqual(cache.textFrame(''), hex('81 00'));
});

test('the bytes equal encodeTextFrame for every payload-length form and for multi-byte UTF-8', () => {
  const cache = new FrameCache();
  const texts = [
    '',
    'a'.repeat(125), // the longest 7-bit length
    'a'.repeat(126), // the shortest 16-bit length
    'a'.repeat(65535), // the longest 16-bit length
    'a'.repeat(65536), // the shortest 64-bit length
    'café ✓ 😀', // 2-, 3- and 4-byte UTF-8: the length counts bytes, not characters
    '€'.repeat(42), // 126 bytes from 42 characters: a 16-bit length
  ];
  for (const t of texts) {
    const frame = cache.textFrame(t);
    assert.deepEqual(frame, encodeTextFrame(t), `text of ${t.length} characters`);
    assert.equal(cache.textFrame(t), frame, `text of ${t.length} characters is cached`);
  }
});

test('bounded in entries: the oldest entry is evicted first', () => {
  const cache = new FrameCache(3, 1024 * 1024);
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((tag) => text(tag, 10));
  const frames = [a, b, c].map((t) => cache.textFrame(t!));
  assertCached(cache, [a!, b!, c!], frames, 'three entries fit a bound of three');
  const frameD = cache.textFrame(d!);
  // d evicted a, the oldest; b, c and d are still there.
  assertCached(cache, [b!, c!, d!], [frames[1]!, frames[2]!, frameD], 'after a fourth entry');
  const againA = cache.textFrame(a!);
  assert.notEqual(againA, frames[0], 'a was evicted: it is encoded anew');
  assert.deepEqual(againA, frames[0], 'with the same bytes');
  // Taking a back in evicted b, now the oldest.
  assertCached(cache, [c!, d!, a!], [frames[2]!, frameD, againA], 'after a came back');
  assert.notEqual(cache.textFrame(b!), frames[1], 'b was evicted');
});

test('bounded in bytes: the oldest entries are evicted until the total fits', () => {
  // A 1600-byte bound keeps frames of up to 1600 / 16 = 100 bytes: 98 characters + 2 header bytes.
  const cache = new FrameCache(1000, 1600);
  const texts = Array.from({ length: 16 }, (_, i) => text(`t${i}`, 98));
  const frames = texts.map((t) => cache.textFrame(t));
  assert.ok(frames.every((f) => f.length === 100));
  assertCached(cache, texts, frames, '16 frames of 100 bytes fit 1600 bytes exactly');

  // 10 more bytes: 1610 > 1600, so the oldest (100 bytes) goes, and only it.
  const small = text('small', 8);
  const smallFrame = cache.textFrame(small);
  assert.equal(smallFrame.length, 10);
  assertCached(cache, [...texts.slice(1), small], [...frames.slice(1), smallFrame], 'after 10 more bytes');
  assert.notEqual(cache.textFrame(texts[0]!), frames[0], 'the oldest frame was evicted');
  // Taking t0 back (100 bytes) made 1610 again: t1 went, the oldest; t2 stays.
  assert.equal(cache.textFrame(texts[2]!), frames[2]);
  assert.notEqual(cache.textFrame(texts[1]!), frames[1], 't1 was evicted');
});

test('a frame larger than a sixteenth of the byte bound is returned but not cached, and evicts nothing', () => {
  const cache = new FrameCache(1000, 1600);
  const kept = text('kept', 98); // 100 bytes: exactly the largest frame that is cached
  const keptFrame = cache.textFrame(kept);
  const large = text('large', 99); // 101 bytes: one byte over
  const first = cache.textFrame(large);
  const second = cache.textFrame(large);
  assert.deepEqual(first, encodeTextFrame(large));
  assert.notEqual(second, first, 'a large text is encoded on every call');
  assert.deepEqual(second, first);
  assert.equal(cache.textFrame(kept), keptFrame, 'the 100-byte frame was cached and is still there');
});

test('with the default bounds, a 1 MiB text is not cached (it is over 8 MiB / 16)', () => {
  const cache = new FrameCache();
  const big = 'x'.repeat(1024 * 1024);
  const first = cache.textFrame(big);
  assert.deepEqual(first, encodeTextFrame(big));
  assert.notEqual(cache.textFrame(big), first);
  const half = 'y'.repeat(512 * 1024 - 10); // a 512 KiB frame with its 10-byte header: cached
  assert.equal(cache.textFrame(half), cache.textFrame(half));
});

test('a cached frame owns exactly its bytes: it keeps no shared 8 KiB pool of node\'s alive', () => {
  // encodeTextFrame's short frames are slices of node's Buffer pool (Buffer.poolSize, 8 KiB), and
  // a slice keeps its whole pool in memory: cached, they would hold far more than they count.
  assert.ok(encodeTextFrame('hi').buffer.byteLength > 4, 'a short frame is a slice of a larger pool');
  const cache = new FrameCache();
  for (const t of ['hi', 'a'.repeat(125), 'a'.repeat(3000), 'a'.repeat(70_000)]) {
    const frame = cache.textFrame(t);
    assert.equal(frame.buffer.byteLength, frame.length, `the frame of ${t.length} characters owns its memory`);
    assert.equal(frame.byteOffset, 0);
    assert.deepEqual(frame, encodeTextFrame(t));
    assert.equal(cache.textFrame(t), frame, 'and it is the cached one');
  }
});
