// Tests for src/subscriber-queue.ts: SubscriberQueue, one subscriber's bounded queue of chat
// messages. What it promises: bounds in messages and in bytes, at which it closes itself and calls
// onOverflow once; onReady when a push finds no consumer running; takeAll() hands over everything
// at once; a batch goes in whole (one onReady) or not at all; the history (seed) goes in whole,
// however large, so that a newcomer is never refused for the room's recent messages.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SubscriberQueue } from '../src/subscriber-queue.js';

describe('SubscriberQueue', () => {
  test('overflow by count calls onOverflow once and closes the queue', () => {
    const queue = new SubscriberQueue(3, 1_000_000);
    let overflows = 0;
    queue.onOverflow = () => { overflows++; };
    queue.pushAll(['a'], [1]);
    queue.pushAll(['b'], [1]);
    queue.pushAll(['c'], [1]);
    assert.equal(overflows, 0, 'three messages fit a bound of three');
    queue.pushAll(['d'], [1]);
    assert.equal(overflows, 1);
    queue.pushAll(['e'], [1]);
    queue.pushAll(['f'], [1]);
    assert.equal(overflows, 1, 'onOverflow is called once');
    assert.equal(queue.takeAll(), null, 'a closed queue yields null');
  });

  test('overflow by bytes calls onOverflow once and closes the queue', () => {
    const queue = new SubscriberQueue(1000, 10);
    let overflows = 0;
    queue.onOverflow = () => { overflows++; };
    queue.pushAll(['abcd'], [4]);
    queue.pushAll(['efghij'], [6]); // exactly 10 bytes: fits
    assert.equal(overflows, 0);
    queue.pushAll(['k'], [1]);
    assert.equal(overflows, 1);
    queue.pushAll(['l'], [1]);
    assert.equal(overflows, 1);
    assert.equal(queue.takeAll(), null);
  });

  test('takeAll() returns everything queued, at once, and frees the bounds', () => {
    const queue = new SubscriberQueue(3, 1000);
    let overflows = 0;
    queue.onOverflow = () => { overflows++; };
    queue.pushAll(['a'], [1]);
    queue.pushAll(['b'], [1]);
    queue.pushAll(['c'], [1]);
    assert.equal(queue.length, 3);
    assert.deepEqual(queue.takeAll(), ['a', 'b', 'c']);
    assert.equal(queue.length, 0);
    queue.pushAll(['d'], [1]);
    queue.pushAll(['e'], [1]);
    queue.pushAll(['f'], [1]);
    assert.equal(overflows, 0, 'the bound counts what is queued now, not what was ever queued');
    assert.deepEqual(queue.takeAll(), ['d', 'e', 'f']);
  });

  test('a push into an idle queue calls onReady; pushes while a consumer runs do not', () => {
    const queue = new SubscriberQueue(10, 1000);
    let ready = 0;
    queue.onReady = () => { ready++; };
    queue.pushAll(['x'], [1]);
    assert.equal(ready, 1, 'the first push starts a consumer');
    queue.pushAll(['y'], [1]);
    assert.equal(ready, 1, 'the consumer is still running: no second start');
    assert.deepEqual(queue.takeAll(), ['x', 'y']);
    queue.pushAll(['z'], [1]);
    assert.equal(ready, 1, 'until the consumer finds the queue empty, it is still running');
    assert.deepEqual(queue.takeAll(), ['z']);
    assert.equal(queue.takeAll(), null, 'empty: the consumer stops and the queue is idle');
    queue.pushAll(['w'], [1]);
    assert.equal(ready, 2, 'the next push starts a consumer again');
  });

  test('close() empties the queue; pushes after close are ignored', () => {
    const queue = new SubscriberQueue(10, 1000);
    let overflows = 0;
    let ready = 0;
    queue.onOverflow = () => { overflows++; };
    queue.onReady = () => { ready++; };
    queue.pushAll(['a'], [1]);
    queue.close();
    assert.equal(queue.takeAll(), null);
    for (let i = 0; i < 20; i++) queue.pushAll(['x'], [100]);
    assert.equal(overflows, 0);
    assert.equal(ready, 1);
    assert.equal(queue.length, 0);
    assert.equal(queue.takeAll(), null);
  });

  test('a batch goes in with one onReady, and comes out whole', () => {
    const queue = new SubscriberQueue(10, 1000);
    let ready = 0;
    queue.onReady = () => { ready++; };
    queue.pushAll(['a', 'b', 'c'], [1, 1, 1]);
    assert.equal(ready, 1, 'one start for the whole batch');
    assert.equal(queue.length, 3);
    assert.deepEqual(queue.takeAll(), ['a', 'b', 'c']);
  });

  test('the consumer started by onReady finds the whole batch already queued', () => {
    const queue = new SubscriberQueue(10, 1000);
    const taken: string[][] = [];
    queue.onReady = () => {
      for (let texts = queue.takeAll(); texts !== null; texts = queue.takeAll()) taken.push([...texts]);
    };
    queue.pushAll(['a', 'b', 'c'], [1, 1, 1]);
    queue.pushAll(['d'], [1]);
    assert.deepEqual(taken, [['a', 'b', 'c'], ['d']], 'one takeAll per batch, each batch whole');
  });

  test('takeAll() alternates between two arrays of its own: a delivery allocates none', () => {
    const queue = new SubscriberQueue(10, 1000);
    queue.push('a', 1);
    const first = queue.takeAll()!;
    assert.deepEqual(first, ['a']);
    queue.push('b', 1);
    const second = queue.takeAll()!;
    assert.notEqual(second, first, 'pushes made while the consumer reads `first` go to the other array');
    assert.deepEqual(second, ['b']);
    queue.push('c', 1);
    const third = queue.takeAll()!;
    assert.equal(third, first, 'the array handed out two takes ago is reused');
    assert.deepEqual(third, ['c'], 'emptied before it was reused');
  });

  test('a batch that does not fit overflows: nothing of it is delivered, and no onReady', () => {
    const queue = new SubscriberQueue(4, 1000);
    let overflows = 0;
    let ready = 0;
    queue.onOverflow = () => { overflows++; };
    queue.onReady = () => { ready++; };
    queue.pushAll(['a', 'b'], [1, 1]);
    assert.equal(ready, 1);
    queue.pushAll(['c', 'd', 'e'], [1, 1, 1]); // 2 + 3 > 4
    assert.equal(overflows, 1);
    assert.equal(ready, 1, 'a closed queue starts no consumer');
    assert.equal(queue.length, 0, 'closing dropped what was queued');
    assert.equal(queue.takeAll(), null);
  });

  test('onOverflow finds the queue already closed', () => {
    const queue = new SubscriberQueue(1, 1000);
    let seen: string[] | null | undefined;
    queue.onOverflow = () => { seen = queue.takeAll(); };
    queue.pushAll(['a', 'b'], [1, 1]);
    assert.equal(seen, null);
  });

  test('seed() queues the whole history, beyond both bounds, and starts the consumer', () => {
    const queue = new SubscriberQueue(3, 10);
    let overflows = 0;
    let ready = 0;
    queue.onOverflow = () => { overflows++; };
    queue.onReady = () => { ready++; };
    const history = ['h1 is longer than ten bytes', 'h2', 'h3', 'h4', 'h5'];
    queue.seed(history);
    assert.equal(overflows, 0, 'five messages and 35 bytes of history in a queue of 3 messages and 10 bytes');
    assert.equal(ready, 1);
    assert.deepEqual(queue.takeAll(), history);
    // Once taken, the history leaves the bounds whole for live messages.
    queue.pushAll(['a', 'b', 'c'], [3, 3, 4]);
    assert.equal(overflows, 0);
    assert.deepEqual(queue.takeAll(), ['a', 'b', 'c']);
  });

  test('seed() of an empty history leaves nothing to take', () => {
    const queue = new SubscriberQueue(3, 10);
    queue.seed([]);
    assert.equal(queue.length, 0);
    assert.equal(queue.takeAll(), null);
  });
});
