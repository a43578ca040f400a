// The hub's IPC batching (src/broadcast.ts, "Batching"): what a worker sends the primary in one
// turn of the event loop travels as one message, so a burst of publishes or a mass disconnect
// costs one IPC message, not one per client. Observed on the link the hub talks through.
import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { test } from 'node:test';
import { BroadcastLoop, Hub, type Outlet, type ToWorker } from '../src/broadcast.js';
import { readChatConfig } from '../src/config.js';

type Sent = { t: string; m?: string[]; n?: number; r?: number };

/** A hub whose link records what it sends and answers subscriptions with an empty history. */
function recordingHub(): { hub: Hub; sent: Sent[] } {
  const sent: Sent[] = [];
  const hub: Hub = new Hub(readChatConfig({}), {
    pending: 0,
    send(message: Sent) {
      sent.push(message);
      if (message.t === 'chat:sub') hub.receive({ t: 'chat:history', r: message.r!, m: [] });
    },
  } as never);
  return { hub, sent };
}

test('a mass disconnect sends one unsubscribe message with the count, per turn', async () => {
  const { hub, sent } = recordingHub();
  const subscriptions = await Promise.all(Array.from({ length: 100 }, () => hub.subscribe()));
  assert.equal(hub.subscriberCount, 100);
  sent.length = 0;
  for (const subscription of subscriptions.slice(0, 60)) subscription.close();
  subscriptions[0]!.close(); // closing twice counts once
  assert.deepEqual(sent, [], 'nothing is sent before the turn ends');
  await nextTurn();
  assert.deepEqual(sent, [{ t: 'chat:unsub', n: 60 }]);
  for (const subscription of subscriptions.slice(60)) subscription.close();
  await nextTurn();
  assert.deepEqual(sent, [{ t: 'chat:unsub', n: 60 }, { t: 'chat:unsub', n: 40 }]);
  assert.equal(hub.subscriberCount, 0);
});

test('publishes of one turn travel as one message, in order, beside that turn\'s unsubscribes', async () => {
  const { hub, sent } = recordingHub();
  const subscription = await hub.subscribe();
  sent.length = 0;
  hub.publish('"sender":"a","message":"1"}');
  hub.publish('"sender":"a","message":"2"}');
  subscription.close();
  await nextTurn();
  assert.deepEqual(sent, [
    { t: 'chat:pub', m: ['"sender":"a","message":"1"}', '"sender":"a","message":"2"}'], c: [0, 0] },
    { t: 'chat:unsub', n: 1 },
  ]);
});

test('detach still sends what was published before it, and nothing after', async () => {
  const { hub, sent } = recordingHub();
  const subscription = await hub.subscribe();
  sent.length = 0;
  hub.publish('"sender":"a","message":"1"}');
  hub.detach();
  hub.publish('"sender":"a","message":"2"}');
  subscription.close(); // detach closed it already: no unsubscribe to report
  await nextTurn();
  assert.deepEqual(sent, [{ t: 'chat:pub', m: ['"sender":"a","message":"1"}'], c: [0] }]);
});

test('after the first subscription and its mirror, subscribing sends nothing: history and resume come from the mirror', async () => {
  const sent: Array<{ t: string; r?: number; f?: true }> = [];
  const hub: Hub = new Hub(readChatConfig({ CHAT_HISTORY_SIZE: '2' }), {
    pending: 0,
    send(message: { t: string; r?: number; f?: true }) {
      sent.push(message);
      if (message.t !== 'chat:sub') return;
      // As the primary answers: the history, then (asked to follow) the mirror at the same point.
      hub.receive({ t: 'chat:history', r: message.r!, m: ['{"id":5,"ts":1,"x":1}'] });
      if (message.f) hub.receive({ t: 'chat:mirror', m: ['{"id":5,"ts":1,"x":1}'], ids: [5], trimmed: 4 });
    },
  } as never);
  const first = await hub.subscribe();
  assert.deepEqual(sent, [{ t: 'chat:sub', r: 1, f: true }], 'the first subscription asks to follow');
  assert.deepEqual(first.queue.takeAll(), ['{"id":5,"ts":1,"x":1}']);
  const second = await hub.subscribe();
  assert.deepEqual(second.queue.takeAll(), ['{"id":5,"ts":1,"x":1}'], 'seeded from the mirror');
  hub.receive({ t: 'chat:batch', m: ['{"id":6,"ts":2,"x":1}', '{"id":7,"ts":3,"x":1}'] });
  assert.deepEqual(second.queue.takeAll(), ['{"id":6,"ts":2,"x":1}', '{"id":7,"ts":3,"x":1}'], 'and live from then on');
  // The mirror trims as the history does (2 messages): 6 and 7 are left, 5 was trimmed away.
  const plain = await hub.subscribe();
  assert.deepEqual(plain.queue.takeAll(), ['{"id":6,"ts":2,"x":1}', '{"id":7,"ts":3,"x":1}']);
  const resumed = await hub.subscribe(undefined, 6);
  assert.deepEqual([resumed.queue.takeAll(), resumed.recovered], [['{"id":7,"ts":3,"x":1}'], true]);
  const upToDate = await hub.subscribe(undefined, 7);
  assert.deepEqual([upToDate.queue.takeAll(), upToDate.recovered], [null, true]);
  const gap = await hub.subscribe(undefined, 4);
  assert.deepEqual([gap.queue.takeAll(), gap.recovered], [['{"id":6,"ts":2,"x":1}', '{"id":7,"ts":3,"x":1}'], false], 'message 5 is gone: a gap');
  const unknown = await hub.subscribe(undefined, 99);
  assert.equal(unknown.recovered, false, 'an id this server never gave');
  assert.deepEqual(sent, [{ t: 'chat:sub', r: 1, f: true }], 'no more requests to the primary');
  assert.equal(hub.subscriberCount, 7);
});

test('the primary answers a follow with the mirror at the history\'s point, then sends a follower every batch', async () => {
  const loop = new BroadcastLoop(2);
  const received: ToWorker[] = [];
  const outlet: Outlet = { id: 1, subscribers: 0, pending: 0, deliver(message, flushed) { received.push(message); flushed(); } };
  loop.addOutlet(outlet);
  loop.handle(outlet, { t: 'chat:sub', r: 1 });
  loop.handle(outlet, { t: 'chat:pub', m: ['"sender":"a","message":"1"}'], c: [0] });
  loop.handle(outlet, { t: 'chat:sub', r: 2, f: true }); // flushes the pending message first
  const [history1, batch, history2, mirror] = received;
  assert.deepEqual(history1, { t: 'chat:history', r: 1, m: [] });
  assert.equal(batch!.t, 'chat:batch');
  const text = (batch as { m: string[] }).m[0]!;
  assert.deepEqual(history2, { t: 'chat:history', r: 2, m: [text] });
  assert.deepEqual(mirror, { t: 'chat:mirror', m: [text], ids: [JSON.parse(text).id], trimmed: (mirror as { trimmed: number }).trimmed });
  // Every subscriber it asked for is gone: a follower still gets the batches (its mirror needs them).
  loop.handle(outlet, { t: 'chat:unsub', n: 2 });
  loop.handle(outlet, { t: 'chat:pub', m: ['"sender":"a","message":"2"}'], c: [0] });
  await nextTurn();
  assert.equal(received.at(-1)!.t, 'chat:batch');
  assert.equal(received.length, 5);
});
