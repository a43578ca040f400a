// Tests for src/broadcast.ts: the BroadcastLoop and the Hub, in one process.
//
// Most tests go through createHub(config), which outside a cluster worker connects a Hub to a
// BroadcastLoop in this same process (the "--workers 1" mode); the IPC mode runs the same loop
// and hub code in separate processes and is tested end to end in chat.test.ts and
// chat-cluster.test.ts. Everything here is checked from a subscriber's side: what its queue
// receives, in what order, and when it is closed; never the messages the hub and the loop
// exchange, whose shapes are theirs to change.
//
// A subscriber here is a Reader: it drains its queue as soon as something is queued (the way the
// chat's consumer does, minus the socket), so it never falls behind; a subscriber that never
// drains stands for a client that stopped reading.
//
// The last tests build the loop and two hubs by hand and connect them with channels the test can
// hold, standing for IPC channels to two worker processes: that is the only way, in one process,
// to back up a channel and see the flow control pause and resume publishers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BroadcastLoop, Hub, createHub, type Subscription } from '../src/broadcast.js';
import { CHAT_LIMITS, readChatConfig, type ChatConfig } from '../src/config.js';
import { setLogLevel } from '../src/server/logger.js';

// The pause and resume of the flow control log warnings: expected here, so not shown.
setLogLevel('error');

const config = (overrides: Partial<ChatConfig> = {}): ChatConfig => ({
  ...readChatConfig({ CHAT_DATA_DIR: '' }),
  queueMaxMessages: 100_000,
  queueMaxBytes: 1024 * 1024 * 1024,
  ...overrides,
});

/** What a worker publishes: the tail of the broadcast JSON, as checkChatMessage builds it. */
const tail = (sender: string, message: string): string =>
  `"sender":${JSON.stringify(sender)},"message":${JSON.stringify(message)}}`;

interface Broadcast { id: number; ts: number; sender: string; message: string }

/** One turn of the event loop: what was scheduled with setImmediate before it has run. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Lets the event loop turn until `condition()` holds, at most `turns` times. Delivery in one
 * process takes two turns (the hub's batch, then the loop's), so the bound is generous; it counts
 * turns, not milliseconds, so a busy machine cannot make it fail.
 */
async function until(condition: () => boolean, what: () => string, turns = 1000): Promise<void> {
  for (let i = 0; i < turns; i++) {
    if (condition()) return;
    await turn();
  }
  if (!condition()) assert.fail(`not within ${turns} turns of the event loop: ${what()}`);
}

/** True if `promise` settles before the next turn of the event loop. */
async function settlesAtOnce(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  void promise.then(() => { settled = true; }, () => { settled = true; });
  await turn();
  return settled;
}

/** A subscriber that takes everything from its queue the moment it is queued. */
class Reader {
  readonly texts: string[] = [];
  readonly subscription: Subscription;

  constructor(subscription: Subscription, readonly name: string) {
    this.subscription = subscription;
    subscription.queue.onReady = () => this.drain();
    this.drain(); // the history, queued before the subscription was handed over
  }

  static async join(hub: Hub, name: string): Promise<Reader> {
    return new Reader(await hub.subscribe(), name);
  }

  private drain(): void {
    for (let texts = this.subscription.queue.takeAll(); texts !== null; texts = this.subscription.queue.takeAll()) {
      this.texts.push(...texts);
    }
  }

  get messages(): Broadcast[] {
    return this.texts.map((text) => JSON.parse(text) as Broadcast);
  }

  get words(): string[] {
    return this.messages.map((m) => m.message);
  }

  /** Waits until this reader holds `count` messages. */
  has(count: number): Promise<void> {
    return until(() => this.texts.length >= count, () => `${this.name} holds ${this.texts.length} of ${count} messages`);
  }
}

/** Asserts that `messages` have consecutive ids (no gap, no duplicate, in order). */
function assertConsecutive(messages: Broadcast[], who: string): void {
  for (let i = 1; i < messages.length; i++) {
    assert.equal(messages[i]!.id, messages[i - 1]!.id + 1, `${who}: id at position ${i} follows ${messages[i - 1]!.id}`);
  }
}

/** A subscriber that never reads: its queue only fills. */
async function stalled(hub: Hub): Promise<{ subscription: Subscription; slowCalls: () => number }> {
  let calls = 0;
  const subscription = await hub.subscribe(() => { calls++; });
  return { subscription, slowCalls: () => calls };
}

// ---- order ---------------------------------------------------------------------------------------

test('a broadcast is exactly id, ts, then the published sender and message', async () => {
  const hub = await createHub(config({ historySize: 0 }));
  const reader = await Reader.join(hub, 'reader');
  const before = Date.now();
  hub.publish(tail('ann', 'quote " backslash \\ brace } ✓'));
  await reader.has(1);
  const after = Date.now();
  const [text] = reader.texts;
  assert.match(text!, /^\{"id":\d+,"ts":\d+,"sender":"ann","message":"quote \\" backslash \\\\ brace } ✓"\}$/);
  const message = reader.messages[0]!;
  assert.deepEqual(Object.keys(message), ['id', 'ts', 'sender', 'message']);
  assert.ok(Number.isSafeInteger(message.id), `id ${message.id}`);
  assert.ok(message.ts >= before && message.ts <= after, `ts ${message.ts} is the time of publishing (${before}..${after})`);
  assert.equal(message.message, 'quote " backslash \\ brace } ✓');
});

test('ids increase by one, and every subscriber sees the same messages in the order published', async () => {
  const hub = await createHub(config({ historySize: 0 }));
  const readers = await Promise.all(['r0', 'r1', 'r2', 'r3'].map((name) => Reader.join(hub, name)));
  assert.equal(hub.subscriberCount, 4);
  // 300 messages from three senders, interleaved: some turns publish nothing, some one, some many.
  const published: string[] = [];
  for (let t = 0; t < 60; t++) {
    for (let i = 0; i < t % 11; i++) {
      const word = `s${(t + i) % 3} t${t} m${i}`;
      published.push(word);
      hub.publish(tail(`sender ${(t + i) % 3}`, word));
    }
    await turn();
  }
  assert.equal(published.length, 285);
  for (const reader of readers) {
    await reader.has(published.length);
    assert.deepEqual(reader.words, published, `${reader.name}: every message once, in the order published`);
    assertConsecutive(reader.messages, reader.name);
    assert.deepEqual(reader.texts, readers[0]!.texts, `${reader.name} received exactly what r0 received`);
  }
  await turn();
  await turn();
  assert.equal(readers[0]!.texts.length, published.length, 'and nothing more');
});

test('ids keep increasing across a restart (they start from the start time in microseconds)', async () => {
  const first = await createHub(config({ historySize: 0 }));
  const a = await Reader.join(first, 'before the restart');
  for (let i = 0; i < 10; i++) first.publish(tail('ann', `m${i}`));
  await a.has(10);
  first.detach();
  // A restart takes far longer than a millisecond; wait at least one, so the clock has moved.
  const stopped = Date.now();
  while (Date.now() === stopped) await new Promise((resolve) => setTimeout(resolve, 1));
  const second = await createHub(config({ historySize: 0 }));
  const b = await Reader.join(second, 'after the restart');
  second.publish(tail('ann', 'after'));
  await b.has(1);
  const lastBefore = a.messages[9]!.id;
  assert.ok(b.messages[0]!.id > lastBefore, `the first id after the restart (${b.messages[0]!.id}) is above the last one before (${lastBefore})`);
});

// ---- history -------------------------------------------------------------------------------------

test('a newcomer gets exactly the last CHAT_HISTORY_SIZE messages, then live ones', async () => {
  const hub = await createHub(config({ historySize: 5 }));
  const first = await Reader.join(hub, 'first');
  for (let i = 1; i <= 8; i++) hub.publish(tail('ann', `early ${i}`));
  await first.has(8);
  const late = await Reader.join(hub, 'late');
  assert.deepEqual(late.texts, first.texts.slice(3), 'the last 5 messages, exactly as broadcast, oldest first');
  hub.publish(tail('ann', 'live'));
  await late.has(6);
  assert.equal(late.messages[5]!.message, 'live');
  assert.equal(late.messages[5]!.id, late.messages[4]!.id + 1);
  assert.deepEqual(late.texts, first.texts.slice(3), 'the same live message as everyone');
});

test('the history never holds more than CHAT_HISTORY_SIZE, nor more than was published', async () => {
  for (const [historySize, published, expected] of [[3, 10, 3], [5, 3, 3], [0, 4, 0], [1, 1, 1]] as const) {
    const hub = await createHub(config({ historySize }));
    const first = await Reader.join(hub, 'first');
    for (let i = 0; i < published; i++) hub.publish(tail('ann', `m${i}`));
    await first.has(published);
    const late = await Reader.join(hub, 'late');
    assert.deepEqual(late.words, first.words.slice(published - expected),
      `history size ${historySize} after ${published} messages: the last ${expected}`);
  }
});

test('joining while messages flow: history then live, without gap or duplicate', async () => {
  const historySize = 5;
  const hub = await createHub(config({ historySize }));
  const reference = await Reader.join(hub, 'reference');
  let published = 0;
  let publishing = true;
  // Every turn publishes 0 to 3 messages, so joiners subscribe at every stage of a message's way.
  const publisher = (async () => {
    for (let t = 0; t < 400; t++) {
      for (let i = 0; i < (t * 7) % 4; i++) hub.publish(tail('streamer', `m${published++}`));
      await turn();
    }
    publishing = false;
  })();
  await reference.has(historySize); // a full history from the first joiner on
  const joiners: Array<{ reader: Reader; delivered: number; publishedBefore: number }> = [];
  for (let j = 0; publishing; j++) {
    for (let k = 0; k < j % 4; k++) await turn();
    // Messages the reference already holds were in the loop before this subscription; messages
    // published after subscribe() returned come after it. In between is the history.
    const delivered = reference.texts.length;
    const subscription = await hub.subscribe();
    joiners.push({ reader: new Reader(subscription, `joiner ${j}`), delivered, publishedBefore: published });
  }
  await publisher;
  assert.ok(joiners.length >= 50, `${joiners.length} joiners subscribed while messages flowed`);
  const total = published;
  await reference.has(total);
  assert.deepEqual(reference.words, Array.from({ length: total }, (_, i) => `m${i}`));
  for (const { reader, delivered, publishedBefore } of joiners) {
    await reader.has(Math.min(historySize, delivered) + (total - publishedBefore));
    await turn();
    // Everything the joiner got is one unbroken stretch of what everyone got, up to the end.
    const start = total - reader.texts.length;
    assert.deepEqual(reader.texts, reference.texts.slice(start), `${reader.name}: a gap, a duplicate or another order`);
    // ... and it starts CHAT_HISTORY_SIZE messages before the first live one: after the last one
    // delivered before it subscribed, before the first one published after.
    assert.ok(start >= Math.max(0, delivered - historySize) && start <= Math.max(0, publishedBefore - historySize),
      `${reader.name}: starts at message ${start}; it subscribed with ${delivered} delivered and ${publishedBefore} published`);
  }
});

// ---- unsubscribing -------------------------------------------------------------------------------

test('an unsubscribed queue receives nothing more; close() twice is the same as once', async () => {
  const hub = await createHub(config({ historySize: 0 }));
  const stays = await Reader.join(hub, 'stays');
  const leaves = await Reader.join(hub, 'leaves');
  let readyCalls = 0;
  hub.publish(tail('ann', 'both'));
  await leaves.has(1);
  leaves.subscription.queue.onReady = () => { readyCalls++; };
  leaves.subscription.close();
  // A second close must not unsubscribe anyone else: were it counted again, the loop would think
  // this process has no subscriber left and `stays` would receive nothing.
  leaves.subscription.close();
  assert.equal(hub.subscriberCount, 1);
  hub.publish(tail('ann', 'only stays'));
  await stays.has(2);
  await turn();
  await turn();
  assert.deepEqual(stays.words, ['both', 'only stays']);
  assert.equal(readyCalls, 0, 'the closed queue was never woken');
  assert.equal(leaves.subscription.queue.takeAll(), null, 'the closed queue holds nothing');
  assert.deepEqual(leaves.words, ['both']);
});

test('many subscribers leaving in one turn: the one that stays receives everything', async () => {
  const hub = await createHub(config({ historySize: 3 }));
  const stays = await Reader.join(hub, 'stays');
  const leaving = await Promise.all(Array.from({ length: 200 }, (_, i) => Reader.join(hub, `leaving ${i}`)));
  assert.equal(hub.subscriberCount, 201);
  for (const reader of leaving) reader.subscription.close();
  for (const reader of leaving.slice(0, 50)) reader.subscription.close(); // again, by mistake
  assert.equal(hub.subscriberCount, 1);
  for (let i = 0; i < 10; i++) hub.publish(tail('ann', `after ${i}`));
  await stays.has(10);
  assert.deepEqual(stays.words, Array.from({ length: 10 }, (_, i) => `after ${i}`));
  assert.ok(leaving.every((reader) => reader.texts.length === 0), 'nobody who left received anything');
});

test('everyone leaving and someone joining in the same turn: the newcomer receives live messages', async () => {
  const hub = await createHub(config({ historySize: 3 }));
  const leaving = await Promise.all(Array.from({ length: 20 }, (_, i) => Reader.join(hub, `leaving ${i}`)));
  hub.publish(tail('ann', 'before'));
  await leaving[0]!.has(1);
  for (const reader of leaving) reader.subscription.close();
  const newcomer = await Reader.join(hub, 'newcomer');
  assert.equal(hub.subscriberCount, 1);
  hub.publish(tail('ann', 'after'));
  await newcomer.has(2);
  assert.deepEqual(newcomer.words, ['before', 'after'], 'the history, then the live message');
  assertConsecutive(newcomer.messages, 'newcomer');
});

// ---- slow consumers ------------------------------------------------------------------------------

test('a subscriber that stops reading overflows its queue: it is closed and told, the others get everything', async () => {
  const hub = await createHub(config({ historySize: 0, queueMaxMessages: 10 }));
  const fast = await Reader.join(hub, 'fast');
  const slow = await stalled(hub);
  assert.equal(hub.subscriberCount, 2);
  // Five per turn: the reader drains every turn, the stalled queue holds 10 and overflows at 11.
  const published: string[] = [];
  for (let t = 0; t < 8; t++) {
    for (let i = 0; i < 5; i++) {
      published.push(`t${t} m${i}`);
      hub.publish(tail('ann', `t${t} m${i}`));
    }
    await fast.has(published.length);
    if (t === 1) assert.equal(slow.slowCalls(), 0, '10 messages fit a queue of 10');
  }
  assert.equal(slow.slowCalls(), 1, 'onSlowConsumer was called once');
  assert.equal(hub.slowConsumers, 1, 'and counted (shown by /healthz)');
  assert.equal(hub.subscriberCount, 1, 'the slow consumer is no longer subscribed');
  assert.equal(slow.subscription.queue.takeAll(), null, 'its queue is closed and holds nothing');
  // The chat handler closes the subscription again when the connection ends: that must not
  // unsubscribe anyone else.
  slow.subscription.close();
  hub.publish(tail('ann', 'last'));
  published.push('last');
  await fast.has(published.length);
  assert.deepEqual(fast.words, published, 'the reader got every message, in order');
  assertConsecutive(fast.messages, 'fast');
  assert.equal(slow.subscription.queue.takeAll(), null);
});

test('a queue overflows by bytes too, and a history larger than the byte bound is queued whole', async () => {
  // A history of 4 messages of ~1,000 bytes each, in a queue bounded at 2,000 bytes: the newcomer
  // still gets all of it, and only live messages that pile up make it overflow.
  const big = 'x'.repeat(1000);
  const hub = await createHub(config({ historySize: 4, queueMaxBytes: 2000 }));
  const fast = await Reader.join(hub, 'fast');
  for (let i = 0; i < 4; i++) {
    hub.publish(tail('ann', `h${i} ${big}`));
    await fast.has(i + 1); // one per turn: each fits the reader's queue
  }
  let slowCalls = 0;
  const subscription = await hub.subscribe(() => { slowCalls++; });
  assert.equal(subscription.queue.length, 4, 'the whole history is queued, over the byte bound');
  const history = subscription.queue.takeAll()!;
  assert.deepEqual(history, fast.texts, 'the history is the four messages, exactly as broadcast');
  hub.publish(tail('ann', `l0 ${big}`));
  await fast.has(5);
  assert.equal(slowCalls, 0, 'one live message of ~1 KB fits 2,000 bytes');
  hub.publish(tail('ann', `l1 ${big}`));
  await fast.has(6);
  assert.equal(slowCalls, 1, 'the second one does not');
  assert.equal(subscription.queue.takeAll(), null);
  assert.equal(hub.slowConsumers, 1);
  assert.equal(hub.subscriberCount, 1);
});

// ---- flow control and detach ---------------------------------------------------------------------

test('ready() resolves at once when nothing is backlogged, also right after a large burst', async () => {
  const hub = await createHub(config({ historySize: 0 }));
  assert.equal(await settlesAtOnce(hub.ready()), true, 'idle');
  const reader = await Reader.join(hub, 'reader');
  for (let i = 0; i < 5000; i++) hub.publish(tail('ann', `m${i}`));
  assert.equal(await settlesAtOnce(hub.ready()), true, 'with 5,000 messages just published');
  await reader.has(5000);
  assert.equal(await settlesAtOnce(hub.ready()), true, 'after they were delivered');
});

test('detach: every queue is closed, nothing more is published or delivered, ready() resolves', async () => {
  const hub = await createHub(config({ historySize: 5 }));
  const reader = await Reader.join(hub, 'reader');
  const other = await stalled(hub);
  hub.publish(tail('ann', 'before'));
  await reader.has(1);
  hub.publish(tail('ann', 'in flight')); // published, not yet delivered
  hub.detach();
  assert.equal(hub.subscriberCount, 0);
  assert.equal(reader.subscription.queue.takeAll(), null, 'closed');
  assert.equal(other.subscription.queue.takeAll(), null, 'closed, queued messages dropped');
  hub.publish(tail('ann', 'after'));
  for (let i = 0; i < 10; i++) await turn();
  assert.deepEqual(reader.words, ['before'], 'nothing was delivered after detach');
  assert.equal(other.slowCalls(), 0, 'detaching is not a slow consumer');
  assert.equal(hub.slowConsumers, 0);
  assert.equal(await settlesAtOnce(hub.ready()), true);
  // Subscribing after detach gives a closed, empty queue at once (a connection accepted during
  // shutdown gets nothing, and waits for nothing).
  const late = await hub.subscribe();
  assert.equal(late.queue.takeAll(), null);
  assert.equal(hub.subscriberCount, 0);
  late.close();
});

// ---- two workers over channels the test holds -------------------------------------------------------

type Outlet = Parameters<BroadcastLoop['addOutlet']>[0];
type Link = ConstructorParameters<typeof Hub>[1];
type ToWorker = Parameters<Hub['receive']>[0];

/**
 * One direction of an IPC channel from the primary to a worker: in order, and, while `hold`
 * is set, holding everything sent (a worker busy elsewhere, a full pipe). Its "flushed" callbacks
 * run on delivery, as node's do once the message is written.
 */
class Channel {
  private readonly held: Array<() => void> = [];
  hold = false;

  carry(deliver: () => void): void {
    // While anything is held, later messages queue behind it: a channel never reorders.
    if (this.hold || this.held.length > 0) this.held.push(deliver);
    else deliver();
  }

  release(): void {
    this.hold = false;
    while (this.held.length > 0) this.held.shift()!();
  }

  get backlog(): number {
    return this.held.length;
  }
}

/** A loop and `count` worker hubs, each reached through its own Channel (worker → loop is direct). */
function cluster(count: number, chat: ChatConfig): { hubs: Hub[]; channels: Channel[] } {
  const loop = new BroadcastLoop(chat.historySize);
  const hubs: Hub[] = [];
  const channels: Channel[] = [];
  for (let w = 0; w < count; w++) {
    const channel = new Channel();
    const outlet: Outlet = {
      id: w + 1,
      subscribers: 0,
      pending: 0,
      deliver: (message: ToWorker, flushed: () => void) => channel.carry(() => { hub.receive(message); flushed(); }),
    };
    loop.addOutlet(outlet);
    const link: Link = { pending: 0, send: (message) => loop.handle(outlet, message) };
    const hub = new Hub(chat, link);
    hubs.push(hub);
    channels.push(channel);
  }
  return { hubs, channels };
}

test('a backlogged worker channel pauses publishers on the other workers until it drains; nothing is lost', async () => {
  const { hubs: [a, b], channels: [toA] } = cluster(2, config({ historySize: 0 }));
  const readerA = await Reader.join(a!, 'reader on A');
  const readerB = await Reader.join(b!, 'reader on B');
  toA!.hold = true;
  // B publishes one message per turn, each its own batch, while nothing reaches A.
  let published = 0;
  let readyPromise: Promise<void> = Promise.resolve();
  while (published < 10_000) {
    b!.publish(tail('bob', `m${published++}`));
    await turn();
    await turn();
    readyPromise = b!.ready();
    if (!(await settlesAtOnce(readyPromise))) break;
  }
  assert.ok(published < 10_000, 'B was never paused: the backlog to A grows without bound');
  assert.ok(toA!.backlog > 100, `paused with ${toA!.backlog} messages held for A`);
  assert.equal(readerA.texts.length, 0, 'A received nothing yet');
  assert.equal(readerB.texts.length, published, 'B, whose channel is free, received everything');
  for (let i = 0; i < 20; i++) await turn();
  assert.equal(await settlesAtOnce(readyPromise), false, 'B stays paused while A is backlogged');

  toA!.release();
  assert.equal(await settlesAtOnce(readyPromise), true, 'B may publish again once A caught up');
  assert.equal(await settlesAtOnce(a!.ready()), true, 'and so may A');
  const words = Array.from({ length: published }, (_, i) => `m${i}`);
  await readerA.has(published);
  assert.deepEqual(readerA.words, words, 'A received everything, in order, once');
  assert.deepEqual(readerA.texts, readerB.texts, 'in the same order as B');
  assertConsecutive(readerA.messages, 'A');
});

test('detach resolves a subscription still waiting for its history, with a closed queue', async () => {
  const { hubs: [a], channels: [toA] } = cluster(1, config({ historySize: 5 }));
  toA!.hold = true;
  const pending = a!.subscribe();
  assert.equal(await settlesAtOnce(pending), false, 'the history has not arrived');
  a!.detach();
  const subscription = await pending;
  assert.equal(subscription.queue.takeAll(), null, 'closed');
  assert.equal(a!.subscriberCount, 0);
  toA!.release(); // the history arrives late and is dropped
  assert.equal(subscription.queue.takeAll(), null);
  assert.equal(a!.subscriberCount, 0);
});

/** A lobby text as the loop writes it, for a hub fed by hand. */
const lobbyText = (id: number): string => `{"id":${id},"ts":1,${tail('s', `m${id}`)}`;

test('a resume from an id the worker\'s mirror has not reached yet waits for it, then gets exactly what follows it', async () => {
  const hub = new Hub(config({ historySize: 10 }), { pending: 0, send: () => {} });
  hub.receive({ t: 'chat:mirror', m: [lobbyText(10), lobbyText(11)], ids: [10, 11], trimmed: 9 });
  // The client saw 13 elsewhere (another worker, another server tree) before this mirror did.
  const pending = hub.subscribe(undefined, 13);
  assert.equal(await settlesAtOnce(pending), false, 'it waits for 13 rather than report a gap');
  hub.receive({ t: 'chat:batch', m: [lobbyText(12)] });
  assert.equal(await settlesAtOnce(pending), false, '12 is not 13 yet');
  hub.receive({ t: 'chat:batch', m: [lobbyText(13)] });
  const subscription = await pending;
  assert.equal(subscription.recovered, true);
  assert.equal(subscription.queue.takeAll(), null, 'nothing queued: the client has everything up to 13');
  hub.receive({ t: 'chat:batch', m: [lobbyText(14)] });
  assert.deepEqual(subscription.queue.takeAll(), [lobbyText(14)], 'then live, from 14 on');
  hub.detach();
});

test('a resume from an id that never comes is a gap once the wait is over', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const hub = new Hub(config({ historySize: 10 }), { pending: 0, send: () => {} });
  hub.receive({ t: 'chat:mirror', m: [lobbyText(10), lobbyText(11)], ids: [10, 11], trimmed: 9 });
  const pending = hub.subscribe(undefined, 500);
  assert.equal(await settlesAtOnce(pending), false);
  t.mock.timers.tick(CHAT_LIMITS.resumeAheadWaitMs.value);
  const subscription = await pending;
  assert.equal(subscription.recovered, false);
  assert.deepEqual(subscription.queue.takeAll(), [lobbyText(10), lobbyText(11)], 'the history, as for an id this server never gave');
  hub.detach();
});

test('with several trees, the loop answers a resume from an id it has not applied yet once it has, and only then', async () => {
  const loop = new BroadcastLoop(10);
  loop.useShared({ submitLobby: () => {} });
  const sent: unknown[] = [];
  const outlet = { id: 1, subscribers: 0, pending: 0, deliver: (message: unknown, flushed: () => void) => { sent.push(message); flushed(); } };
  loop.addOutlet(outlet);
  const base = Date.now() * 1000 + 1_000_000;
  loop.resetLobby(base);
  loop.deliverApplied(base + 1, lobbyText(base + 1));
  loop.handle(outlet, { t: 'chat:sub', r: 7, s: base + 3 });
  loop.deliverApplied(base + 2, lobbyText(base + 2));
  assert.deepEqual(sent, [], 'not answered before base + 3 is applied');
  loop.deliverApplied(base + 3, lobbyText(base + 3));
  assert.deepEqual(sent, [
    { t: 'chat:batch', m: [lobbyText(base + 1), lobbyText(base + 2), lobbyText(base + 3)] },
    { t: 'chat:history', r: 7, m: [], rec: true },
  ], 'the batch up to it first, then the answer: nothing missed, nothing after since yet');
});
