// The hub's IPC batching (src/broadcast.ts, "Batching"): what a worker sends the primary in one
// turn of the event loop travels as one message, so a burst of publishes or a mass disconnect
// costs one IPC message, not one per client. Observed on the link the hub talks through.
import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { test } from 'node:test';
import { Hub } from '../src/broadcast.js';
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
