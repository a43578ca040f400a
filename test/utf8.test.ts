// Tests for src/server/utf8.ts: the incremental UTF-8 validator (Utf8Validator) that checks text
// messages fragment by fragment (RFC 6455 §8.1, RFC 3629 §4).
//
// One table of valid, invalid and truncated sequences (RFC 3629 and Markus Kuhn's UTF-8 decoder
// stress test), each fed whole, byte by byte and split at every point; every verdict must agree
// with Node's own `isUtf8`. Invalid cases name the byte at which the validator must already say
// "no" (fail fast), and a seeded random comparison against `isUtf8` covers what the table misses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { Utf8Validator } from '../src/server/utf8.js';

function hex(text: string): Buffer {
  const clean = text.replace(/\s+/g, '');
  assert.match(clean, /^([0-9a-fA-F]{2})*$/, `bad hex fixture: ${text}`);
  return Buffer.from(clean, 'hex');
}

type Verdict = 'valid' | 'invalid' | 'truncated';

/** Feeds `bytes` cut at `cuts`; 'invalid' if any update() says no, 'truncated' if it ends mid-character. */
function validate(bytes: Uint8Array, cuts: number[] = []): Verdict {
  const validator = new Utf8Validator();
  let start = 0;
  for (const cut of [...cuts, bytes.length]) {
    if (!validator.update(bytes.subarray(start, cut))) return 'invalid';
    start = cut;
  }
  return validator.atBoundary ? 'valid' : 'truncated';
}

interface Case {
  name: string;
  hex: string;
  expect: Verdict;
  /** For 'invalid': index of the first byte that cannot continue any valid sequence. */
  failAt?: number;
}

const cases: Case[] = [
  // Valid (RFC 3629 §4; Kuhn 1, 2.1-2.3, 5.3).
  { name: 'empty', hex: '', expect: 'valid' },
  { name: 'ASCII "Hello"', hex: '48656c6c6f', expect: 'valid' },
  { name: 'U+0000 NUL', hex: '00', expect: 'valid' },
  { name: 'U+007F, last 1-byte', hex: '7f', expect: 'valid' },
  { name: 'U+0080, first 2-byte', hex: 'c2 80', expect: 'valid' },
  { name: 'U+00E9 é', hex: 'c3 a9', expect: 'valid' },
  { name: 'U+07FF, last 2-byte', hex: 'df bf', expect: 'valid' },
  { name: 'U+0800, first 3-byte', hex: 'e0 a0 80', expect: 'valid' },
  { name: 'U+20AC €', hex: 'e2 82 ac', expect: 'valid' },
  { name: 'U+D7FF, just below the surrogates', hex: 'ed 9f bf', expect: 'valid' },
  { name: 'U+E000, just above the surrogates', hex: 'ee 80 80', expect: 'valid' },
  { name: 'U+FFFD replacement character', hex: 'ef bf bd', expect: 'valid' },
  { name: 'U+FFFE noncharacter (valid UTF-8)', hex: 'ef bf be', expect: 'valid' },
  { name: 'U+FFFF, last 3-byte', hex: 'ef bf bf', expect: 'valid' },
  { name: 'U+10000, first 4-byte', hex: 'f0 90 80 80', expect: 'valid' },
  { name: 'U+1F600 😀', hex: 'f0 9f 98 80', expect: 'valid' },
  { name: 'U+40000 (F1 lead)', hex: 'f1 80 80 80', expect: 'valid' },
  { name: 'U+FFFFF (F3 lead)', hex: 'f3 bf bf bf', expect: 'valid' },
  { name: 'U+100000 (F4 lead)', hex: 'f4 80 80 80', expect: 'valid' },
  { name: 'U+10FFFF, the last code point', hex: 'f4 8f bf bf', expect: 'valid' },
  { name: 'Kuhn 1: Greek "κόσμε"', hex: 'ce ba e1 bd b9 cf 83 ce bc ce b5', expect: 'valid' },
  { name: 'mixed ASCII, 2-, 3- and 4-byte', hex: '41 c3a9 42 e282ac 43 f09f9880 44', expect: 'valid' },

  // Lone and unexpected continuation bytes (Kuhn 3.1).
  { name: 'lone continuation 80', hex: '80', expect: 'invalid', failAt: 0 },
  { name: 'lone continuation bf', hex: 'bf', expect: 'invalid', failAt: 0 },
  { name: 'continuation after ASCII', hex: '41 80', expect: 'invalid', failAt: 1 },
  { name: 'extra continuation after a complete 2-byte char', hex: 'c3 a9 80', expect: 'invalid', failAt: 2 },
  { name: 'two continuations', hex: '80 bf', expect: 'invalid', failAt: 0 },

  // Lead bytes followed by something other than a continuation (Kuhn 3.2, 3.3).
  { name: '2-byte lead then ASCII', hex: 'c3 41', expect: 'invalid', failAt: 1 },
  { name: '2-byte lead then another lead', hex: 'c2 c2', expect: 'invalid', failAt: 1 },
  { name: '3-byte lead then ASCII at the 3rd byte', hex: 'e2 82 41', expect: 'invalid', failAt: 2 },
  { name: '3-byte: 3rd byte C0', hex: 'e1 80 c0', expect: 'invalid', failAt: 2 },
  { name: '4-byte: 4th byte ASCII', hex: 'f1 80 80 7f', expect: 'invalid', failAt: 3 },

  // Overlong forms (Kuhn 4.1, 4.2): C0/C1 leads, E0 80-9F, F0 80-8F.
  { name: 'C0 80 overlong U+0000', hex: 'c0 80', expect: 'invalid', failAt: 0 },
  { name: 'C0 AF overlong "/"', hex: 'c0 af', expect: 'invalid', failAt: 0 },
  { name: 'C1 BF overlong U+007F', hex: 'c1 bf', expect: 'invalid', failAt: 0 },
  { name: 'E0 80 80 overlong U+0000', hex: 'e0 80 80', expect: 'invalid', failAt: 1 },
  { name: 'E0 80 AF overlong "/"', hex: 'e0 80 af', expect: 'invalid', failAt: 1 },
  { name: 'E0 9F BF overlong U+07FF', hex: 'e0 9f bf', expect: 'invalid', failAt: 1 },
  { name: 'F0 80 80 80 overlong U+0000', hex: 'f0 80 80 80', expect: 'invalid', failAt: 1 },
  { name: 'F0 8F BF BF overlong U+FFFF', hex: 'f0 8f bf bf', expect: 'invalid', failAt: 1 },

  // UTF-16 surrogates (Kuhn 5.1, 5.2): ED A0-BF.
  { name: 'ED A0 80 surrogate U+D800', hex: 'ed a0 80', expect: 'invalid', failAt: 1 },
  { name: 'ED BF BF surrogate U+DFFF', hex: 'ed bf bf', expect: 'invalid', failAt: 1 },
  { name: 'CESU-8 surrogate pair for U+10000', hex: 'ed a0 80 ed b0 80', expect: 'invalid', failAt: 1 },
  { name: 'surrogate after valid text', hex: '48 69 ed a0 80', expect: 'invalid', failAt: 3 },

  // Above U+10FFFF and bytes that never appear (Kuhn 3.5, RFC 3629 §1).
  { name: 'F4 90 80 80 is U+110000', hex: 'f4 90 80 80', expect: 'invalid', failAt: 1 },
  { name: 'F4 BF BF BF above max', hex: 'f4 bf bf bf', expect: 'invalid', failAt: 1 },
  { name: 'F5 lead', hex: 'f5 80 80 80', expect: 'invalid', failAt: 0 },
  { name: 'F7 BF BF BF (old 4-byte max)', hex: 'f7 bf bf bf', expect: 'invalid', failAt: 0 },
  { name: 'F8 5-byte lead', hex: 'f8 88 80 80 80', expect: 'invalid', failAt: 0 },
  { name: 'FC 6-byte lead', hex: 'fc 84 80 80 80 80', expect: 'invalid', failAt: 0 },
  { name: 'FE', hex: 'fe', expect: 'invalid', failAt: 0 },
  { name: 'FF', hex: 'ff', expect: 'invalid', failAt: 0 },
  { name: 'FF after valid text', hex: 'ce ba ff 41 42', expect: 'invalid', failAt: 2 },

  // Truncated: every byte so far could still become valid, but the input ends mid-character.
  { name: 'truncated 2-byte', hex: 'c2', expect: 'truncated' },
  { name: 'truncated 3-byte after 1 byte', hex: 'e2', expect: 'truncated' },
  { name: 'truncated 3-byte after 2 bytes', hex: 'e2 82', expect: 'truncated' },
  { name: 'truncated E0 A0', hex: 'e0 a0', expect: 'truncated' },
  { name: 'truncated ED 9F', hex: 'ed 9f', expect: 'truncated' },
  { name: 'truncated 4-byte after 3 bytes', hex: 'f0 90 80', expect: 'truncated' },
  { name: 'truncated F4 8F BF', hex: 'f4 8f bf', expect: 'truncated' },
  { name: 'truncated after valid text', hex: '41 c3a9 e2 82', expect: 'truncated' },
];

for (const c of cases) {
  const bytes = hex(c.hex);

  test(`${c.expect}: ${c.name} [${c.hex}] agrees with isUtf8`, () => {
    assert.equal(isUtf8(bytes), c.expect === 'valid', 'fixture disagrees with node:buffer isUtf8');
  });

  test(`${c.expect}: ${c.name} [${c.hex}] whole`, () => {
    assert.equal(validate(bytes), c.expect);
  });

  test(`${c.expect}: ${c.name} [${c.hex}] byte by byte`, () => {
    assert.equal(validate(bytes, Array.from({ length: Math.max(0, bytes.length - 1) }, (_, i) => i + 1)), c.expect);
  });

  test(`${c.expect}: ${c.name} [${c.hex}] split at every point and pair of points`, () => {
    for (let i = 0; i <= bytes.length; i++) {
      assert.equal(validate(bytes, [i]), c.expect, `cut at ${i}`);
      for (let j = i; j <= bytes.length; j++) assert.equal(validate(bytes, [i, j]), c.expect, `cuts at ${i}, ${j}`);
    }
  });

  if (c.failAt !== undefined) {
    const failAt = c.failAt;
    test(`fail fast: ${c.name} [${c.hex}] is rejected at byte ${failAt}, not later`, () => {
      // The prefix before the bad byte is fine...
      const validator = new Utf8Validator();
      assert.equal(validator.update(bytes.subarray(0, failAt)), true, 'the prefix alone must pass');
      // ...and the chunk that ends with the bad byte already fails, with more bytes still to come.
      assert.equal(validator.update(bytes.subarray(failAt, failAt + 1)), false);
      // Same verdict when the bad byte ends the first chunk fed to a fresh validator.
      assert.equal(new Utf8Validator().update(bytes.subarray(0, failAt + 1)), false);
      // And "valid prefix + bad byte + more": still false on that chunk, whatever follows.
      const withMore = Buffer.concat([hex('48 c3a9'), bytes.subarray(0, failAt + 1)]);
      assert.equal(new Utf8Validator().update(withMore), false);
    });
  }
}

test('truncated sequences: update() says yes but atBoundary is false until the character completes', () => {
  const validator = new Utf8Validator();
  assert.equal(validator.atBoundary, true);
  assert.equal(validator.update(hex('f0')), true);
  assert.equal(validator.atBoundary, false);
  assert.equal(validator.update(hex('9f')), true);
  assert.equal(validator.atBoundary, false);
  assert.equal(validator.update(hex('98')), true);
  assert.equal(validator.atBoundary, false);
  assert.equal(validator.update(hex('80')), true);
  assert.equal(validator.atBoundary, true);
  assert.equal(validator.update(new Uint8Array(0)), true, 'an empty chunk is fine');
  assert.equal(validator.atBoundary, true);
});

test('the narrow first-continuation range survives a chunk boundary (E0 | 80 is overlong)', () => {
  const validator = new Utf8Validator();
  assert.equal(validator.update(hex('e0')), true);
  assert.equal(validator.update(hex('80')), false);
  const surrogate = new Utf8Validator();
  assert.equal(surrogate.update(hex('41 ed')), true);
  assert.equal(surrogate.update(hex('a0')), false);
  const aboveMax = new Utf8Validator();
  assert.equal(aboveMax.update(hex('f4')), true);
  assert.equal(aboveMax.update(hex('90')), false);
});

test('only the first continuation byte has the narrow range (ED 9F BF, F4 8F BF BF)', () => {
  // After ED 9F the next byte may be anything in 80-BF again, not just 80-9F.
  assert.equal(validate(hex('ed 9f bf'), [1, 2]), 'valid');
  assert.equal(validate(hex('f0 90 bf bf'), [1, 2, 3]), 'valid');
});

test('reset() drops a pending character', () => {
  const validator = new Utf8Validator();
  assert.equal(validator.update(hex('e2 82')), true);
  assert.equal(validator.atBoundary, false);
  validator.reset();
  assert.equal(validator.atBoundary, true);
  assert.equal(validator.update(hex('41')), true, 'ASCII is a fresh start, not a bad continuation');
  assert.equal(validator.atBoundary, true);
});

test('a validator used for one message and reset validates the next one from scratch', () => {
  const validator = new Utf8Validator();
  assert.equal(validator.update(hex('ff')), false);
  validator.reset();
  assert.equal(validator.update(hex('c3 a9')), true);
  assert.equal(validator.atBoundary, true);
});

test('every code point encoded by Buffer validates (one per 64 across U+0000-U+10FFFF, minus surrogates)', () => {
  for (let cp = 0; cp <= 0x10ffff; cp += 64) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    const bytes = Buffer.from(String.fromCodePoint(cp));
    assert.equal(validate(bytes), 'valid', `U+${cp.toString(16)}`);
    assert.equal(validate(bytes, [1]), 'valid', `U+${cp.toString(16)} split`);
  }
});

test('every single byte and every 2-byte string agrees with isUtf8', () => {
  const pair = Buffer.alloc(2);
  for (let a = 0; a < 256; a++) {
    assert.equal(validate(Buffer.from([a])) === 'valid', isUtf8(Buffer.from([a])), `byte ${a.toString(16)}`);
    for (let b = 0; b < 256; b++) {
      pair[0] = a; pair[1] = b;
      const expected = isUtf8(pair);
      assert.equal(validate(pair) === 'valid', expected, `bytes ${pair.toString('hex')}`);
      assert.equal(validate(pair, [1]) === 'valid', expected, `bytes ${pair.toString('hex')} split`);
    }
  }
});

test('randomized: 20000 seeded byte strings agree with isUtf8, whole, split and byte by byte', () => {
  // A 32-bit LCG (Numerical Recipes constants): the same strings on every run.
  let seed = 0x6455;
  const next = (n: number): number => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return Math.floor((seed / 2 ** 32) * n);
  };
  // Strings built mostly from valid characters with occasional bad or interesting bytes, so that
  // both verdicts are common (uniform random bytes would almost always be invalid).
  const interesting = [0x80, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff, 0x9f, 0xa0, 0x8f, 0x90];
  const piece = (): number[] => {
    switch (next(6)) {
      case 0: return [next(0x80)];
      case 1: return [...Buffer.from(String.fromCodePoint(0x80 + next(0x780)))];
      case 2: { const cp = 0x800 + next(0xf800); return cp >= 0xd800 && cp <= 0xdfff ? [0x41] : [...Buffer.from(String.fromCodePoint(cp))]; }
      case 3: return [...Buffer.from(String.fromCodePoint(0x10000 + next(0x100000)))];
      case 4: return [interesting[next(interesting.length)]!];
      default: return [next(256)];
    }
  };
  let valid = 0;
  for (let n = 0; n < 20000; n++) {
    const bytes: number[] = [];
    const pieces = next(12);
    for (let p = 0; p < pieces; p++) {
      const chunk = piece();
      // Sometimes drop a byte from a multi-byte character to make truncations and misfits.
      if (chunk.length > 1 && next(8) === 0) chunk.splice(next(chunk.length), 1);
      bytes.push(...chunk);
    }
    const buffer = Buffer.from(bytes);
    const expected = isUtf8(buffer);
    if (expected) valid++;
    const label = buffer.toString('hex');
    assert.equal(validate(buffer) === 'valid', expected, `whole: ${label}`);
    const a = next(buffer.length + 1);
    const b = a + next(buffer.length - a + 1);
    assert.equal(validate(buffer, [a, b]) === 'valid', expected, `cuts ${a},${b}: ${label}`);
    if (n % 10 === 0) {
      assert.equal(validate(buffer, Array.from({ length: Math.max(0, buffer.length - 1) }, (_, i) => i + 1)) === 'valid', expected, `byte by byte: ${label}`);
    }
  }
  // The generator must exercise both verdicts to prove anything.
  assert.ok(valid > 2000 && valid < 18000, `only ${valid} of 20000 strings were valid`);
});
