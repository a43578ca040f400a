// The broadcast hub: every chat message published in any worker reaches every subscriber in every
// worker, exactly once, in one global order, after the recent history.
//
// The Python design this replaces: workers put chat text on a `multiprocessing.Manager().Queue()`,
// a loop in the main process copied every message into each subscriber's `manager.Queue()` (kept
// in a Manager dict), and each subscriber's consumer polled its queue from a thread with
// `asyncio.to_thread(queue.get, timeout=3)`. Here:
//   - Manager queue and dict → node:cluster IPC messages to the primary, which keeps the registry;
//   - polling with a 3 s timeout → events: an IPC message or a push wakes whoever waits, at once;
//   - one unbounded `manager.Queue()` per subscriber → a bounded SubscriberQueue in the
//     subscriber's own worker; the primary sends each message once per *worker*, not once per
//     subscriber, and the worker fans it out locally.
//
//   worker A: publish ──┐                        ┌──▶ worker A: queue per local subscriber ──▶ socket
//   worker B: publish ──┼─ IPC ─▶ primary loop ──┼──▶ worker B: queue per local subscriber ──▶ socket
//   worker C: publish ──┘   (id, ts, history)    └──▶ (only workers that have subscribers)
//
// One interface for both modes: with --workers 1 the loop runs in the same process and the "IPC"
// is a direct call (createHub builds that link); with --workers N it runs in the cluster primary
// (primary.ts) and the link is node:cluster's IPC channel.
//
// Theory of operation:
//   Order: only the primary assigns ids; it sends batches in id order over each worker's IPC
//     channel, which preserves order, so every subscriber sees the primary's order.
//   Batching: what arrives within one turn of the event loop travels as one IPC message, both
//     ways (flushed with setImmediate), so IPC costs per turn, not per message; unsubscribes too,
//     so that a mass disconnect costs one message with a count, not one per subscriber.
//   History without gap or duplicate: a worker asks the primary to subscribe; before answering
//     with the history, the primary flushes its pending batch. So every message with an id up to
//     the history's last one reached that worker *before* the answer (and is ignored for the
//     still-pending subscriber), and every later message comes *after* it.
//   Flow control: IPC channels buffer without bound, so each side counts its messages not yet
//     flushed; above IPC_HIGH the workers stop taking new chat messages from their clients (TCP
//     then pushes back on publishers) until every count is under IPC_LOW. Nothing accepted is dropped.
import cluster from 'node:cluster';
import { CHAT_LIMITS, type ChatConfig } from './config.js';
import { RoomsClient } from './rooms/client.js';
import type { RoomEvent, RoomsToPrimary, RoomsToWorker } from './rooms/ipc.js';
import { RoomRouter } from './rooms/router.js';
import { log } from './server/logger.js';
import { SubscriberQueue } from './subscriber-queue.js';

const IPC_HIGH = CHAT_LIMITS.ipcHighWater.value;
const IPC_LOW = CHAT_LIMITS.ipcLowWater.value;

// ---- the messages between a worker and the primary ---------------------------------------------

/**
 * Worker → primary. `pub` carries the tail of each message's JSON: `"sender":…,"message":…}`.
 * The rooms' messages (rooms/ipc.ts) travel the same channel.
 */
export type ToPrimary =
  | { t: 'chat:pub'; m: string[] }
  | { t: 'chat:sub'; r: number }
  | { t: 'chat:unsub'; n: number }
  | RoomsToPrimary;
/** Primary → worker. A batch holds the texts of consecutive ids, in order. */
export type ToWorker =
  | { t: 'chat:batch'; m: string[] }
  | { t: 'chat:history'; r: number; m: string[] }
  | { t: 'chat:flow'; paused: boolean }
  | RoomsToWorker;

/** How a worker's hub reaches the loop: over IPC, or by direct calls in a single process. */
interface PrimaryLink {
  send(message: ToPrimary): void;
  /** Messages handed to the link and not yet flushed to the other side. */
  readonly pending: number;
}

// ---- the primary's side: the broadcast loop ----------------------------------------------------

/** An outlet is one worker (or, in a single process, the process itself). */
export interface Outlet {
  /** The worker's cluster id (0 in a single process): the rooms' OutletId. */
  readonly id: number;
  subscribers: number;
  /** Messages sent to this outlet and not yet flushed to it. */
  pending: number;
  deliver(message: ToWorker, flushed: () => void): void;
}

export class BroadcastLoop {
  private readonly outlets = new Set<Outlet>();
  private readonly history: string[] = [];
  private readonly historySize: number;
  /**
   * Ids start from the start time in microseconds, so they keep increasing across restarts: a
   * page that dedupes by id never mistakes a new message for one it saw before a restart.
   */
  private nextId = Date.now() * 1000;
  private batch: string[] = [];
  private flushScheduled = false;
  private paused = false;

  constructor(historySize: number) {
    this.historySize = historySize;
  }

  addOutlet(outlet: Outlet): void {
    this.outlets.add(outlet);
  }

  /** A worker died: forget it and its subscribers. */
  removeOutlet(outlet: Outlet): void {
    this.outlets.delete(outlet);
    this.updateFlow();
  }

  handle(outlet: Outlet, message: ToPrimary): void {
    switch (message.t) {
      case 'room:in':
        return; // the rooms' router takes these (see primary.ts)
      case 'chat:pub':
        for (const tail of message.m) this.publish(tail);
        return;
      case 'chat:sub':
        outlet.subscribers++;
        this.flush(); // everything before the history's last id must reach the worker first
        this.send(outlet, { t: 'chat:history', r: message.r, m: this.history.slice() });
        return;
      case 'chat:unsub':
        outlet.subscribers = Math.max(0, outlet.subscribers - message.n);
        return;
    }
  }

  /** Assigns the next id and the server's time, and queues the message for this turn's batch. */
  private publish(tail: string): void {
    const id = this.nextId++;
    // The worker validated and serialized sender and message; the primary only prepends the
    // fields it owns. No parsing here, and a client cannot forge id, ts or extra fields.
    const text = `{"id":${id},"ts":${Date.now()},${tail}`;
    if (this.history.push(text) > this.historySize) this.history.shift();
    this.batch.push(text);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Sends this turn's batch once to every outlet that has subscribers. */
  private flush(): void {
    this.flushScheduled = false;
    if (this.batch.length === 0) return;
    const message: ToWorker = { t: 'chat:batch', m: this.batch };
    this.batch = [];
    for (const outlet of this.outlets) if (outlet.subscribers > 0) this.send(outlet, message);
  }

  /**
   * Sends to one worker, counting what is in flight for the flow control below. The rooms' router
   * sends through here too, so a backlog of room messages pauses publishers like the lobby's.
   */
  send(outlet: Outlet, message: ToWorker): void {
    outlet.pending++;
    outlet.deliver(message, () => {
      outlet.pending--;
      if (this.paused) this.updateFlow();
    });
    if (!this.paused && outlet.pending > IPC_HIGH) this.updateFlow();
  }

  /** Pauses publishers everywhere while any worker's channel is backlogged (see the top). */
  private updateFlow(): void {
    let worst = 0;
    for (const outlet of this.outlets) worst = Math.max(worst, outlet.pending);
    const paused = this.paused ? worst > IPC_LOW : worst > IPC_HIGH;
    if (paused === this.paused) return;
    this.paused = paused;
    log.warning(paused ? `IPC backlog of ${worst} messages: pausing publishers` : 'IPC backlog cleared: resuming publishers');
    for (const outlet of this.outlets) outlet.deliver({ t: 'chat:flow', paused }, () => {});
  }
}

// ---- the worker's side: the hub ------------------------------------------------------------------

/** A subscriber's handle: its queue (history first, then live messages) and a way out. */
export interface Subscription {
  readonly queue: SubscriberQueue;
  /** Unsubscribes and closes the queue; safe to call more than once. */
  close(): void;
}

const RESOLVED = Promise.resolve();

export class Hub {
  private readonly config: ChatConfig;
  private readonly link: PrimaryLink;
  /** Subscribers that receive live batches. */
  private readonly live = new Set<SubscriberQueue>();
  /** Subscribers waiting for their history, by request number. */
  private readonly pendingSubscriptions = new Map<number, (history: string[]) => void>();
  private nextRequest = 1;
  private outbox: string[] = [];
  /** Subscribers closed this turn, not yet reported to the primary (sent with the outbox). */
  private unsubscribed = 0;
  /** The rooms' events of this turn (rooms/client.ts), sent with the outbox. */
  private roomEvents: RoomEvent[] = [];
  private flushScheduled = false;
  private pausedByPrimary = false;
  private resumed: Promise<void> | null = null;
  private resume: (() => void) | null = null;
  private detached = false;
  /** Subscribers closed for falling behind (shown by /healthz and /metrics). */
  slowConsumers = 0;
  /** Lobby messages this worker published (metrics.ts). */
  published = 0;
  /**
   * Messages sent from the subscribers' queues to their connections: history, lobby and room
   * messages. The consumer (websocket.ts) counts them, one increment per message sent.
   */
  delivered = 0;
  /** With --workers 1, the loop and the rooms' router living in this process (for metrics.ts); else null. */
  inProcess: { readonly outlet: Outlet; readonly rooms: RoomRouter } | null = null;
  /** This worker's side of the rooms (rooms/client.ts), on the same link to the primary. */
  readonly rooms: RoomsClient;

  constructor(config: ChatConfig, link: PrimaryLink) {
    this.config = config;
    this.link = link;
    this.rooms = new RoomsClient((event) => {
      this.roomEvents.push(event);
      this.scheduleFlush();
    });
  }

  /** Local WebSocket subscribers (shown by /healthz). */
  get subscriberCount(): number {
    return this.live.size;
  }

  /**
   * The longest subscriber queue now, in messages. Walked when asked (a scrape of /metrics), so
   * that a broadcast's push costs nothing more for the metrics' sake.
   */
  get queueDepthMax(): number {
    let max = 0;
    for (const queue of this.live) if (queue.length > max) max = queue.length;
    return max;
  }

  /** Messages to the primary handed to the IPC channel and not yet flushed (0 in one process). */
  get ipcPending(): number {
    return this.link.pending;
  }

  /** Publishes one validated message; `tail` is `"sender":…,"message":…}` (see BroadcastLoop). */
  publish(tail: string): void {
    if (this.detached) return;
    this.published++;
    this.outbox.push(tail);
    this.scheduleFlush();
  }

  /**
   * Resolves when publishers may go on: at once unless an IPC channel is backlogged. The chat
   * handler awaits it before reading the next client message, so a backlog pushes back through
   * TCP on the clients that publish, instead of growing a buffer.
   */
  ready(): Promise<void> {
    if (!this.pausedByPrimary && this.link.pending <= IPC_HIGH) return RESOLVED;
    if (!this.resumed) this.resumed = new Promise((resolve) => { this.resume = resolve; });
    return this.resumed;
  }

  /**
   * Subscribes: resolves once the history is queued; live messages follow it. `onSlowConsumer`
   * is called if the queue overflows (the subscription is closed by then).
   */
  subscribe(onSlowConsumer?: () => void): Promise<Subscription> {
    const queue = new SubscriberQueue(this.config.queueMaxMessages, this.config.queueMaxBytes);
    let subscribed = true;
    const close = (): void => {
      if (!subscribed) return;
      subscribed = false;
      this.live.delete(queue);
      queue.close();
      if (this.detached) return;
      this.unsubscribed++;
      this.scheduleFlush();
    };
    queue.onOverflow = () => {
      this.slowConsumers++;
      close();
      onSlowConsumer?.();
    };
    return new Promise((resolve) => {
      // Going live happens right here, when the history arrives, and not after an `await`:
      // Node delivers IPC messages in nextTick callbacks, so a batch read together with the
      // history would be handled before an await's continuation and missed by this queue.
      this.pendingSubscriptions.set(this.nextRequest, (history) => {
        queue.seed(history);
        if (this.detached) queue.close();
        else this.live.add(queue);
        resolve({ queue, close });
      });
      this.link.send({ t: 'chat:sub', r: this.nextRequest++ });
    });
  }

  /** Handles a message from the primary (or the in-process loop). */
  receive(message: ToWorker): void {
    switch (message.t) {
      case 'chat:batch': {
        const texts = message.m;
        const sizes = texts.map((text) => Buffer.byteLength(text)); // once per message, not per subscriber
        // The same string objects go into every queue: the server encodes each WebSocket frame
        // once (server/frame-cache.ts) and writes the same bytes to every socket. Each queue gets
        // the whole batch before its consumer runs, so the batch leaves in one socket write.
        for (const queue of this.live) queue.pushAll(texts, sizes);
        return;
      }
      case 'chat:history': {
        const resolve = this.pendingSubscriptions.get(message.r);
        this.pendingSubscriptions.delete(message.r);
        resolve?.(message.m);
        return;
      }
      case 'chat:flow':
        this.pausedByPrimary = message.paused;
        this.maybeResume();
        return;
      case 'room:out':
        this.rooms.receive(message.m);
        return;
    }
  }

  /** Lifespan shutdown: close every subscription; nothing more is published or delivered. */
  detach(): void {
    this.detached = true;
    for (const queue of this.live) queue.close();
    this.live.clear();
    for (const resolve of this.pendingSubscriptions.values()) resolve([]);
    this.pendingSubscriptions.clear();
    this.maybeResume();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flushOutbox());
  }

  /** This turn's publishes, unsubscribes and rooms events, one IPC message each at most. */
  private flushOutbox(): void {
    this.flushScheduled = false;
    if (this.outbox.length > 0) {
      const m = this.outbox;
      this.outbox = [];
      this.link.send({ t: 'chat:pub', m });
    }
    if (this.unsubscribed > 0) {
      const n = this.unsubscribed;
      this.unsubscribed = 0;
      this.link.send({ t: 'chat:unsub', n });
    }
    if (this.roomEvents.length > 0) {
      const m = this.roomEvents;
      this.roomEvents = [];
      this.link.send({ t: 'room:in', m });
    }
  }

  /** Called when the link flushed a message or the primary lifted its pause. */
  maybeResume(): void {
    if (!this.resume) return;
    if (!this.detached && (this.pausedByPrimary || this.link.pending > IPC_LOW)) return;
    const resume = this.resume;
    this.resume = null;
    this.resumed = null;
    resume();
  }
}

/** Connects a hub to the loop: over IPC in a cluster worker, else to a loop in this process. */
export function createHub(config: ChatConfig): Hub {
  if (cluster.isWorker) {
    let pending = 0;
    const link: PrimaryLink = {
      get pending() { return pending; },
      send(message) {
        pending++;
        process.send!(message, undefined, undefined, () => {
          pending--;
          hub.maybeResume();
        });
      },
    };
    const hub = new Hub(config, link);
    const onMessage = (message: ToWorker): void => {
      if (typeof message?.t === 'string' && (message.t.startsWith('chat:') || message.t.startsWith('room:'))) hub.receive(message);
    };
    process.on('message', onMessage);
    return hub;
  }
  // One process: the loop and the rooms' router live here and the link is a direct call. Delivery
  // still goes through their batching (setImmediate), so both modes behave the same.
  const loop = new BroadcastLoop(config.historySize);
  const rooms = new RoomRouter(config, (_id, message) => loop.send(outlet, message));
  const outlet: Outlet = {
    id: 0,
    subscribers: 0,
    pending: 0,
    deliver: (message, flushed) => {
      hub.receive(message);
      flushed();
    },
  };
  loop.addOutlet(outlet);
  const link: PrimaryLink = {
    pending: 0,
    send: (message) => (message.t === 'room:in' ? rooms.handle(outlet.id, message) : loop.handle(outlet, message)),
  };
  const hub = new Hub(config, link);
  hub.inProcess = { outlet, rooms };
  return hub;
}
