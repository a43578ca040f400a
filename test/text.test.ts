// Tests for src/text.ts: characters() counts code points and refuses lone surrogates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { characters } from '../src/text.js';

test('characters counts code points, not UTF-16 units', () => {
  assert.equal(characters(''), 0);
  assert.equal(characters('abc'), 3);
  assert.equal(characters('é'), 1); // U+00E9, one unit
  assert.equal(characters('€'), 1); // U+20AC, one unit
  assert.equal(characters('😀'), 1); // U+1F600: a surrogate pair, one character
  assert.equal('😀'.length, 2);
  assert.equal(characters('a😀b😀'), 4);
  assert.equal(characters('\u{10FFFF}'), 1); // the last code point
  assert.equal(characters('\0'), 1); // NUL is a character (other checks refuse control characters)
});

test('characters returns null for a lone surrogate anywhere', () => {
  assert.equal(characters('\ud800'), null); // high, at the end
  assert.equal(characters('\udc00'), null); // low, alone
  assert.equal(characters('a\ud83db'), null); // high followed by a non-surrogate
  assert.equal(characters('\ude00\ud83d'), null); // the pair in the wrong order
  assert.equal(characters('😀\ud800'), null); // a good pair, then a lone high
  assert.equal(characters('\ud83d\ud83d\ude00'), null); // two highs, one low
});
