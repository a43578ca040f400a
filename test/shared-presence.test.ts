// Tests for src/shared-presence.ts: who is online on the other server trees, from the entries of
// chat:presence. The presence is driven through receive() with entries of trees B and C, the
// clock and the beat through node:test's mock timers (setInterval and Date), and what this tree
// writes is captured by a fake SharedLog: only `tree` and `appendPresence` are used by the class,
// and the fake has exactly those (no Redis here).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import type { PresenceEntry, SharedLog } from '../src/redis/shared-log.js';
import { BEAT_MS, GONE_AFTER_MS, SharedPresence } from '../src/shared-presence.js';

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

interface Harness {
  presence: SharedPresence;
  /** What this tree appended to chat:presence: [kind, users]. */
  written: Array<[string, string[]]>;
  /** presenceChanged calls, in order. */
  changed: string[];
  /** This tree's own users (localUsers). */
  local: Set<string>;
}

/** A presence for tree 'A', started, with the clock and the beat mocked from 0. */
function harness(t: TestContext): Harness {
  t.mock.timers.enable({ apis: ['setInterval', 'Date'], now: 0 });
  const written: Array<[string, string[]]> = [];
  const fakeLog = { tree: 'A', appendPresence: (kind: string, users: readonly string[]) => written.push([kind, [...users]]) };
  const presence = new SharedPresence(fakeLog as unknown as SharedLog);
  const changed: string[] = [];
  const local = new Set<string>();
  presence.start({ localUsers: () => local, presenceChanged: (user) => changed.push(user) });
  t.after(() => presence.stop());
  return { presence, written, changed, local };
}

const from = (tree: string, kind: string, ...users: string[]): PresenceEntry => ({ tree, kind, users });

/** Who of `users` is online elsewhere. */
const online = (h: Harness, ...users: string[]): string[] => users.filter((user) => h.presence.isOnline(user));

test('start says hello and what this tree has, then beats', (t) => {
  const h = harness(t);
  assert.deepEqual(h.written, [['hello', []], ['snap', []]]);
  h.written.length = 0;
  t.mock.timers.tick(BEAT_MS - 1);
  assert.deepEqual(h.written, []);
  t.mock.timers.tick(1);
  assert.deepEqual(h.written, [['beat', []]]);
  t.mock.timers.tick(BEAT_MS);
  assert.deepEqual(h.written, [['beat', []], ['beat', []]]);
  h.presence.stop();
  t.mock.timers.tick(10 * BEAT_MS);
  assert.deepEqual(h.written, [['beat', []], ['beat', []], ['bye', []]], 'stop says bye, and the beats stop');
});

test('on/off from two trees: online while at least one other tree lists the user; presenceChanged exactly at the turns', (t) => {
  const h = harness(t);
  h.presence.receive([from('B', 'on', 'u1'), from('C', 'on', 'u1')]);
  assert.deepEqual(h.changed, ['u1'], 'the second tree listing u1 changes nothing');
  assert.deepEqual(online(h, 'u1'), ['u1']);
  h.presence.receive([from('B', 'on', 'u1')]);
  assert.deepEqual(h.changed, ['u1'], 'a repeated on is not counted twice');
  h.presence.receive([from('B', 'off', 'u1')]);
  assert.deepEqual(h.changed, ['u1']);
  assert.deepEqual(online(h, 'u1'), ['u1'], 'C still lists u1');
  h.presence.receive([from('B', 'off', 'u1')]);
  assert.deepEqual(online(h, 'u1'), ['u1'], 'an off for a user B no longer lists does not take C\'s away');
  h.presence.receive([from('C', 'off', 'u1', 'nobody')]);
  assert.deepEqual(h.changed, ['u1', 'u1']);
  assert.deepEqual(online(h, 'u1', 'nobody'), []);
  assert.equal(h.presence.otherTrees, 2);
});

test('snap replaces what a tree said; hello forgets it and is answered with a snap; bye forgets the tree', async (t) => {
  const h = harness(t);
  h.presence.receive([from('B', 'snap', 'u1', 'u2'), from('C', 'snap', 'u2')]);
  assert.deepEqual(h.changed, ['u1', 'u2']);
  h.presence.receive([from('B', 'snap', 'u2', 'u3')]);
  assert.deepEqual(h.changed, ['u1', 'u2', 'u1', 'u3'], 'u1 gone from B (listed by none), u3 new; u2 still listed');
  assert.deepEqual(online(h, 'u1', 'u2', 'u3'), ['u2', 'u3']);

  // B restarted (or came back after losing Redis): what it said before is void, and this tree
  // tells it who is here, at the end of the turn.
  h.local.add('mine');
  h.written.length = 0;
  h.presence.receive([from('B', 'hello')]);
  assert.deepEqual(h.changed.slice(4), ['u3'], 'u3 was listed by B only; u2 is still listed by C');
  assert.deepEqual(online(h, 'u1', 'u2', 'u3'), ['u2']);
  assert.deepEqual(h.written, []);
  await nextTurn();
  assert.deepEqual(h.written, [['snap', ['mine']]]);

  h.presence.receive([from('C', 'bye')]);
  assert.deepEqual(h.changed.slice(5), ['u2']);
  assert.deepEqual(online(h, 'u1', 'u2', 'u3'), []);
  assert.equal(h.presence.otherTrees, 1, 'C is forgotten; B (heard from) is still known');
});

test('this tree\'s own entries are ignored', (t) => {
  const h = harness(t);
  h.presence.receive([from('A', 'on', 'me'), from('A', 'snap', 'me', 'you'), from('A', 'hello')]);
  assert.deepEqual(online(h, 'me', 'you'), []);
  assert.deepEqual(h.changed, []);
  assert.equal(h.presence.otherTrees, 0);
});

test('a tree silent for GONE_AFTER_MS is forgotten with its users, at the next beat', (t) => {
  assert.equal(GONE_AFTER_MS, 3 * BEAT_MS);
  const h = harness(t);
  h.presence.receive([from('B', 'snap', 'b1', 'both'), from('C', 'snap', 'c1', 'both')]);
  t.mock.timers.tick(1);
  h.presence.receive([from('D', 'on', 'd1')]); // heard 1 ms later than B and C
  h.changed.length = 0;
  // B keeps beating; C and D say nothing more. An unknown kind (a newer version's) also counts as
  // a sign of life.
  t.mock.timers.tick(BEAT_MS - 1); // 5000
  h.presence.receive([from('B', 'beat')]);
  t.mock.timers.tick(BEAT_MS); // 10000
  h.presence.receive([from('B', 'future-kind', 'ignored')]);
  assert.deepEqual(online(h, 'b1', 'c1', 'd1', 'both', 'ignored'), ['b1', 'c1', 'd1', 'both']);
  t.mock.timers.tick(BEAT_MS - 1); // 14999: the beat at 15000 has not come
  assert.equal(h.presence.otherTrees, 3);
  t.mock.timers.tick(1); // 15000: C silent for 15000 ms, D for 14999
  assert.deepEqual(h.changed, ['c1'], '"both" is still listed by B');
  assert.deepEqual(online(h, 'b1', 'c1', 'd1', 'both'), ['b1', 'd1', 'both']);
  assert.equal(h.presence.otherTrees, 2);
  h.presence.receive([from('B', 'beat')]);
  t.mock.timers.tick(BEAT_MS); // 20000
  assert.deepEqual(h.changed, ['c1', 'd1']);
  assert.deepEqual(online(h, 'b1', 'd1', 'both'), ['b1', 'both']);
  assert.equal(h.presence.otherTrees, 1);
});

test('after Redis comes back, every other tree gets three fresh beats, and this tree says hello and snap', (t) => {
  const h = harness(t);
  h.presence.receive([from('B', 'snap', 'b1')]);
  t.mock.timers.tick(2 * BEAT_MS); // 10000: B silent (Redis was gone)
  h.local.add('mine');
  h.written.length = 0;
  h.presence.reconnected();
  assert.deepEqual(h.written, [['hello', []], ['snap', ['mine']]]);
  t.mock.timers.tick(BEAT_MS); // 15000: silent for 5000 since the reconnect
  assert.deepEqual(online(h, 'b1'), ['b1']);
  t.mock.timers.tick(2 * BEAT_MS); // 25000: 15000 since the reconnect
  assert.deepEqual(online(h, 'b1'), []);
});

test('local changes of one turn are written as one on and one off; a user who came and went writes nothing', async (t) => {
  const h = harness(t);
  h.written.length = 0;
  h.presence.localChanged('flicker', true);
  h.presence.localChanged('flicker', false);
  await nextTurn();
  assert.deepEqual(h.written, [], 'came and went in one turn');

  h.presence.localChanged('u1', true);
  h.presence.localChanged('u2', true);
  h.presence.localChanged('gone', false);
  h.presence.localChanged('u1', true); // a second connection's news: still one on
  assert.deepEqual(h.written, [], 'nothing before the end of the turn');
  await nextTurn();
  assert.deepEqual(h.written, [['on', ['u1', 'u2']], ['off', ['gone']]]);

  // Went and came back within a turn (the last connection closed, a new one opened): no change.
  h.written.length = 0;
  h.presence.localChanged('u1', false);
  h.presence.localChanged('u1', true);
  await nextTurn();
  assert.deepEqual(h.written, []);
  // The next turn starts afresh.
  h.presence.localChanged('u2', false);
  await nextTurn();
  assert.deepEqual(h.written, [['off', ['u2']]]);
});
