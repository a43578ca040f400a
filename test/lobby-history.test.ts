// Tests for src/lobby-history.ts: the bounded history the primary keeps and each worker mirrors,
// and its answer to a new subscriber with and without `since`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LobbyHistory } from '../src/lobby-history.js';

function filled(size: number, ids: number[], trimmedUpTo = 0): LobbyHistory {
  const history = new LobbyHistory(size, trimmedUpTo);
  for (const id of ids) history.add(id, `t${id}`);
  return history;
}

test('keeps the last `size` messages and remembers the highest id trimmed away', () => {
  const history = filled(3, [10, 11, 12, 13, 14]);
  assert.deepEqual(history.texts, ['t12', 't13', 't14']);
  assert.deepEqual(history.ids, [12, 13, 14]);
  assert.equal(history.trimmedUpTo, 11);
  assert.deepEqual(filled(0, [1, 2]).texts, [], 'size 0 keeps nothing');
});

test('after(): all without since; exactly what followed, or all with recovered false after a gap', () => {
  const history = filled(3, [10, 11, 12, 13, 14]);
  assert.deepEqual(history.after(undefined), { texts: ['t12', 't13', 't14'] });
  assert.deepEqual(history.after(13), { texts: ['t14'], recovered: true });
  assert.deepEqual(history.after(11), { texts: ['t12', 't13', 't14'], recovered: true }, 'nothing after 11 was trimmed');
  assert.deepEqual(history.after(14), { texts: [], recovered: true });
  assert.deepEqual(history.after(10), { texts: ['t12', 't13', 't14'], recovered: false }, '11 is gone');
  assert.deepEqual(history.after(15), { texts: ['t12', 't13', 't14'], recovered: false }, 'an id never given here');
  const copy = history.after(undefined).texts;
  copy.push('x');
  assert.equal(history.texts.length, 3, 'the answer is a copy');
});

test('reset(): empty, knowing nothing before the given id', () => {
  const history = filled(3, [10, 11]);
  history.reset(50);
  assert.deepEqual(history.after(undefined), { texts: [] });
  assert.deepEqual(history.after(49), { texts: [], recovered: false });
  assert.deepEqual(history.after(50), { texts: [], recovered: true });
});
