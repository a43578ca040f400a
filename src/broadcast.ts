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
//   worker C: publish ──┘   (id, ts, history)    └──▶ (only workers that have subscribers or follow)
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
//   The history's mirror: the first subscription also asks to *follow*: with its answer the
//     primary sends the whole history (texts, ids, the trim point), at the same point, and from
//     then on every batch goes to that worker, subscribers or not. The worker applies each batch
//     to its copy as the primary applied it to the history, so the copy is always the primary's
//     history as of the last batch received; later subscribers are seeded from it and go live in
//     the same call, with no round trip: what the copy lacks is in a batch still to come, which
//     reaches the new queue. A handshake then costs no IPC message at all (two writes, two reads
//     and two wake-ups of another process, most of what a handshake cost beyond its socket).
//   Flow control: IPC channels buffer without bound, so each side counts its messages not yet
//     flushed; above IPC_HIGH the workers stop taking new chat messages from their clients (TCP
//     then pushes back on publishers) until every count is under IPC_LOW. Nothing accepted is dropped.
import cluster from 'node:cluster';
import type { ChatLog, LobbyMemory } from './chat-log.js';
import { openChatMemory } from './chat-memory.js';
import { CHAT_LIMITS, type ChatConfig } from './config.js';
import { LobbyHistory } from './lobby-history.js';
import { RoomsClient } from './rooms/client.js';
import type { RoomEvent, RoomsToPrimary, RoomsToWorker } from './rooms/ipc.js';
import { RoomRouter } from './rooms/router.js';
import { log } from './server/logger.js';
import type { SharedChat } from './shared-chat.js';
import { SubscriberQueue } from './subscriber-queue.js';

const IPC_HIGH = CHAT_LIMITS.ipcHighWater.value;
const RESUME_AHEAD_WAIT_MS = CHAT_LIMITS.resumeAheadWaitMs.value;
const IPC_LOW = CHAT_LIMITS.ipcLowWater.value;

// ---- the messages between a worker and the primary ---------------------------------------------

/**
 * Worker → primary. `pub` carries the tail of each message's JSON: `"sender":…,"message":…}`.
 * The rooms' messages (rooms/ipc.ts) travel the same channel.
 */
export type ToPrimary =
  /** `c[i]` names the connection that published `m[i]` (its worker's numbering; 0: nobody to tell). */
  | { t: 'chat:pub'; m: string[]; c: number[] }
  /**
   * `s`: resume after this lobby id (the `since` of /chat), if the client gave one. `f`: also
   * follow (send the history's mirror, then every batch: see the top).
   */
  | { t: 'chat:sub'; r: number; s?: number; f?: true }
  | { t: 'chat:unsub'; n: number }
  | RoomsToPrimary;
/** Primary → worker. A batch holds the texts of consecutive ids, in order. */
export type ToWorker =
  | { t: 'chat:batch'; m: string[] }
  /** `rec`, with a `since`: whether `m` is every message after it (else the last N: a gap). */
  | { t: 'chat:history'; r: number; m: string[]; rec?: boolean }
  /** The whole history for the worker's mirror: texts, their ids, the highest id trimmed away. */
  | { t: 'chat:mirror'; m: string[]; ids: number[]; trimmed: number }
  | { t: 'chat:flow'; paused: boolean }
  /** The messages these connections published were not accepted (the message log failed): `e` says why. */
  | { t: 'chat:fail'; c: number[]; e: string }
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
  /** Subscriptions it asked the primary for, less those it closed (not those its mirror served). */
  subscribers: number;
  /** It keeps a mirror of the history: it gets every batch, subscribers or not (see the top). */
  following?: boolean;
  /** Messages sent to this outlet and not yet flushed to it. */
  pending: number;
  deliver(message: ToWorker, flushed: () => void): void;
}

/** What the loop needs from the message log (chat-log.ts): a durable append, and word of it. */
export interface LobbyLog {
  /** Throws StoreUnavailableError when the log cannot take writes now (nothing written). */
  appendLobby(text: string): void;
  whenDurable(done: (error: Error | null) => void): void;
}

/**
 * What the loop needs from a log shared by several server trees (shared-chat.ts): there the id and
 * the text are given when the shared log applies the message (deliverApplied), on every tree alike.
 */
export interface SharedLobby {
  /**
   * Submits a message. `failed` is called if it will never be applied. Throws
   * StoreUnavailableError, having sent nothing, when the shared log cannot take writes now.
   */
  submitLobby(ts: number, tail: string, failed: () => void): void;
}

/** The texts of one turn, written to the log and waiting for it to say they are durable. */
interface AwaitingGroup {
  ids: number[];
  texts: string[];
  /** Who published each, to tell them if the log fails it. */
  outlets: Outlet[];
  conns: number[];
}

const LOG_FAILED = 'the message log cannot take writes now: your message was not sent; send it again later';
const SHARED_FAILED = 'the shared log (Redis) cannot take writes now: your message was not sent; send it again later';

export class BroadcastLoop implements LobbyMemory {
  private readonly outlets = new Set<Outlet>();
  /** The last historySize messages delivered (lobby-history.ts). */
  private readonly history: LobbyHistory;
  private readonly historySize: number;
  /** The message log, or null (memory only: a message is delivered as soon as it is published). */
  private readonly log: LobbyLog | null;
  /**
   * Ids start from the start time in microseconds, so they keep increasing across restarts even
   * without the log: a page that dedupes by id never mistakes a new message for one it saw
   * before a restart. With the log, replay raises it past every id the log holds.
   */
  private nextId = Date.now() * 1000;
  private batch: string[] = [];
  private flushScheduled = false;
  /** This turn's messages written to the log, sealed at the end of the turn (see publish). */
  private writing: AwaitingGroup | null = null;
  /** Sealed groups waiting for the log, oldest first (for a checkpoint's snapshot). */
  private readonly awaiting: AwaitingGroup[] = [];
  private paused = false;
  /** The log shared by several server trees, or null (see useShared). */
  private shared: SharedLobby | null = null;
  /** Subscriptions resuming from an id not applied yet, with several trees (see handle). */
  private readonly aheadOfHistory = new Set<{ since: number; answer: () => void }>();

  constructor(historySize: number, log: LobbyLog | null = null) {
    this.historySize = historySize;
    this.log = log;
    // Without a log, whatever came before this process is gone: a resume from any earlier id has
    // a gap. With one, replay sets it from the log (resetLobby) or leaves it at 0 (all is there).
    this.history = new LobbyHistory(historySize, log ? 0 : this.nextId - 1);
  }

  addOutlet(outlet: Outlet): void {
    this.outlets.add(outlet);
  }

  /**
   * Several server trees share the lobby through `shared`: a message is submitted there, and
   * delivered (deliverApplied) when the shared log applies it, wherever it was published.
   */
  useShared(shared: SharedLobby): void {
    this.shared = shared;
  }

  /** A message the shared log applied (see useShared), with the id and text it gave it. */
  deliverApplied(id: number, text: string): void {
    this.deliverSoon(id, text);
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
        for (let i = 0; i < message.m.length; i++) this.publish(message.m[i], outlet, message.c[i]);
        return;
      case 'chat:sub':
        outlet.subscribers++;
        // With several trees, a client may resume from an id another tree delivered a moment
        // before this one applied it: wait for it (as the workers' mirrors do, in Hub.subscribe).
        // A single tree gives every id itself, so an id above its newest was never given.
        if (this.shared && message.s !== undefined && message.s > this.history.newestId) return this.answerWhenApplied(outlet, message);
        return this.answerSubscription(outlet, message);
      case 'chat:unsub':
        outlet.subscribers = Math.max(0, outlet.subscribers - message.n);
        return;
    }
  }

  /** Answers a subscription: its history, and the whole history for the mirror if it follows. */
  private answerSubscription(outlet: Outlet, message: ToPrimary & { t: 'chat:sub' }): void {
    this.flush(); // everything before the history's last id must reach the worker first
    this.send(outlet, this.historyAnswer(message.r, message.s));
    if (message.f) {
      outlet.following = true;
      this.send(outlet, { t: 'chat:mirror', m: this.history.texts.slice(), ids: this.history.ids.slice(), trimmed: this.history.trimmedUpTo });
    }
  }

  /** Answers once the shared log has applied `since` (deliverSoon), or after the wait: then a gap. */
  private answerWhenApplied(outlet: Outlet, message: ToPrimary & { t: 'chat:sub' }): void {
    const waiter = {
      since: message.s!,
      answer: () => {
        clearTimeout(timer);
        this.aheadOfHistory.delete(waiter);
        if (this.outlets.has(outlet)) this.answerSubscription(outlet, message); // else its worker is gone
      },
    };
    const timer = setTimeout(waiter.answer, RESUME_AHEAD_WAIT_MS);
    timer.unref(); // a shutdown does not wait for it
    this.aheadOfHistory.add(waiter);
  }

  /**
   * Assigns the next id and the server's time. Without a log, the message joins this turn's batch
   * at once; with one, it is appended to the log and joins a batch only once the log says it is
   * durable: a lobby message is delivered to nobody before it would survive a crash.
   */
  private publish(tail: string, outlet: Outlet, conn: number): void {
    if (this.shared) return this.publishShared(tail, outlet, conn);
    const id = this.nextId++;
    // The worker validated and serialized sender and message; the primary only prepends the
    // fields it owns. No parsing here, and a client cannot forge id, ts or extra fields.
    const text = `{"id":${id},"ts":${Date.now()},${tail}`;
    if (!this.log) return this.deliverSoon(id, text);
    try {
      this.log.appendLobby(text);
    } catch {
      // The log refuses writes now (it logged why, once): tell the sender; nothing was written.
      this.send(outlet, { t: 'chat:fail', c: [conn], e: LOG_FAILED });
      return;
    }
    if (!this.writing) {
      this.writing = { ids: [], texts: [], outlets: [], conns: [] };
      // Sealed at the end of this turn, so that one log callback covers everything this turn
      // wrote (all of it joins one group commit: see log/message-log.ts).
      setImmediate(() => this.seal());
    }
    const group = this.writing;
    group.ids.push(id);
    group.texts.push(text);
    group.outlets.push(outlet);
    group.conns.push(conn);
  }

  private publishShared(tail: string, outlet: Outlet, conn: number): void {
    const failed = (): void => {
      if (this.outlets.has(outlet)) this.send(outlet, { t: 'chat:fail', c: [conn], e: SHARED_FAILED });
    };
    try {
      this.shared!.submitLobby(Date.now(), tail, failed);
    } catch {
      failed(); // refused at once: nothing was sent (shared-chat.ts logged why)
    }
  }

  /** Asks the log to call back when this turn's messages are durable (or failed). */
  private seal(): void {
    const group = this.writing!;
    this.writing = null;
    this.awaiting.push(group);
    this.log!.whenDurable((error) => {
      // The log calls back in order: this group is the oldest awaiting.
      this.awaiting.shift();
      if (!error) {
        for (let i = 0; i < group.ids.length; i++) this.deliverSoon(group.ids[i], group.texts[i]);
        return;
      }
      // Not durable, and never will be: tell each publisher; their messages reached nobody.
      const byOutlet = new Map<Outlet, number[]>();
      for (let i = 0; i < group.conns.length; i++) {
        const conns = byOutlet.get(group.outlets[i]) ?? [];
        conns.push(group.conns[i]);
        byOutlet.set(group.outlets[i], conns);
      }
      for (const [outlet, c] of byOutlet) if (this.outlets.has(outlet)) this.send(outlet, { t: 'chat:fail', c, e: LOG_FAILED });
    });
  }

  /** Adds a message to the history and to this turn's batch. */
  private deliverSoon(id: number, text: string): void {
    this.history.add(id, text);
    this.batch.push(text);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    if (this.aheadOfHistory.size > 0) for (const waiter of this.aheadOfHistory) if (waiter.since <= id) waiter.answer();
  }

  /**
   * A new subscriber's history. Without `since`: the last historySize messages. With it: the
   * messages after `since` if the history still holds all of them (rec: true), else the last
   * historySize (rec: false: the client has a gap). An id above the newest one is a gap too: the
   * client saw messages this server does not have (its log was lost, or it ran memory-only).
   */
  private historyAnswer(request: number, since: number | undefined): ToWorker {
    const { texts, recovered } = this.history.after(since);
    return recovered === undefined ? { t: 'chat:history', r: request, m: texts } : { t: 'chat:history', r: request, m: texts, rec: recovered };
  }

  // ---- the message log's side (LobbyMemory, chat-log.ts) ----------------------------------------

  restoreLobby(id: number, text: string): void {
    this.history.add(id, text);
    this.nextId = Math.max(this.nextId, id + 1);
  }

  resetLobby(trimmedUpTo: number): void {
    this.history.reset(trimmedUpTo);
  }

  restoreNextLobbyId(id: number): void {
    this.nextId = Math.max(this.nextId, id);
  }

  lobbySnapshot(): { trimmedUpTo: number; ids: readonly number[]; texts: readonly string[]; nextId: number } {
    // The history and everything written after it: a checkpoint must hold every lobby record
    // written before it (chat-log.ts), durable yet or not.
    const ids = [...this.history.ids];
    const texts = [...this.history.texts];
    for (const group of [...this.awaiting, ...(this.writing ? [this.writing] : [])]) {
      ids.push(...group.ids);
      texts.push(...group.texts);
    }
    const drop = Math.max(0, texts.length - this.historySize);
    const trimmedUpTo = this.history.trimmedUpTo;
    return { trimmedUpTo: drop > 0 ? Math.max(trimmedUpTo, ids[drop - 1]) : trimmedUpTo, ids: ids.slice(drop), texts: texts.slice(drop), nextId: this.nextId };
  }

  /** Sends this turn's batch once to every outlet that has subscribers. */
  private flush(): void {
    this.flushScheduled = false;
    if (this.batch.length === 0) return;
    const message: ToWorker = { t: 'chat:batch', m: this.batch };
    this.batch = [];
    for (const outlet of this.outlets) if (outlet.subscribers > 0 || outlet.following) this.send(outlet, message);
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
  /** With a `since`: whether the history queued is every lobby message after it (else a gap). */
  readonly recovered?: boolean;
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
  private readonly pendingSubscriptions = new Map<number, (history: string[], recovered?: boolean) => void>();
  private nextRequest = 1;
  /** The primary's history, kept current by the batches (see the top); null until it arrives. */
  private mirror: LobbyHistory | null = null;
  /** Resumes from an id the mirror has not reached yet, waiting for it (see subscribe). */
  private readonly aheadOfMirror = new Set<{ since: number; go: () => void }>();
  private followAsked = false;
  private outbox: string[] = [];
  /** Who published each outbox message (publisher numbers, see addPublisher). */
  private outboxPublishers: number[] = [];
  /** Publishers to tell when the primary could not accept their message, by number. */
  private readonly publishers = new Map<number, (error: string) => void>();
  private nextPublisher = 1;
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
  inProcess: { readonly outlet: Outlet; readonly rooms: RoomRouter; readonly chatLog: ChatLog | null; readonly shared: SharedChat | null; close(): Promise<void> } | null = null;
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

  /**
   * Publishes one validated message; `tail` is `"sender":…,"message":…}` (see BroadcastLoop).
   * `publisher` (from addPublisher) is told if the message is not accepted; 0 tells nobody.
   */
  publish(tail: string, publisher = 0): void {
    if (this.detached) return;
    this.published++;
    this.outbox.push(tail);
    this.outboxPublishers.push(publisher);
    this.scheduleFlush();
  }

  /** Registers a connection that publishes: `onRejected` gets the reason a message was refused. */
  addPublisher(onRejected: (error: string) => void): number {
    const id = this.nextPublisher++;
    this.publishers.set(id, onRejected);
    return id;
  }

  removePublisher(id: number): void {
    this.publishers.delete(id);
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
  subscribe(onSlowConsumer?: () => void, since?: number): Promise<Subscription> {
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
    if (this.mirror !== null) {
      // Seeded from the mirror and live in the same call: no batch can come in between.
      const fromMirror = (): Subscription => {
        const { texts, recovered } = this.mirror!.after(since);
        queue.seed(texts);
        if (this.detached) queue.close();
        else this.live.add(queue);
        return { queue, close, recovered };
      };
      if (since === undefined || since <= this.mirror.newestId || this.detached) return Promise.resolve(fromMirror());
      // The client saw `since` elsewhere (another worker, another server tree sharing Redis) a
      // moment before this worker's mirror got it: wait for the batch that brings it, rather
      // than report a gap that is not one. An id that does not come within the wait is a gap.
      return new Promise((resolve) => {
        const waiter = {
          since,
          go: () => {
            clearTimeout(timer);
            this.aheadOfMirror.delete(waiter);
            resolve(fromMirror());
          },
        };
        const timer = setTimeout(waiter.go, RESUME_AHEAD_WAIT_MS);
        this.aheadOfMirror.add(waiter);
      });
    }
    const follow = !this.followAsked;
    this.followAsked = true;
    return new Promise((resolve) => {
      // Going live happens right here, when the history arrives, and not after an `await`:
      // Node delivers IPC messages in nextTick callbacks, so a batch read together with the
      // history would be handled before an await's continuation and missed by this queue.
      this.pendingSubscriptions.set(this.nextRequest, (history, recovered) => {
        queue.seed(history);
        if (this.detached) queue.close();
        else this.live.add(queue);
        resolve({ queue, close, recovered });
      });
      const request: ToPrimary = since === undefined ? { t: 'chat:sub', r: this.nextRequest++ } : { t: 'chat:sub', r: this.nextRequest++, s: since };
      if (follow) request.f = true;
      this.link.send(request);
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
        if (this.mirror !== null) this.applyToMirror(texts);
        // Waiting resumes go live only now, after the whole batch is in the mirror and in the live
        // queues: seeded from the mirror, each gets exactly what follows its id, and none twice.
        if (this.aheadOfMirror.size > 0) for (const waiter of this.aheadOfMirror) if (waiter.since <= this.mirror!.newestId) waiter.go();
        return;
      }
      case 'chat:mirror':
        this.mirror = new LobbyHistory(this.config.historySize, message.trimmed, message.m, message.ids);
        return;
      case 'chat:history': {
        const resolve = this.pendingSubscriptions.get(message.r);
        this.pendingSubscriptions.delete(message.r);
        resolve?.(message.m, message.rec);
        return;
      }
      case 'chat:fail':
        for (const publisher of message.c) this.publishers.get(publisher)?.(message.e);
        return;
      case 'chat:flow':
        this.pausedByPrimary = message.paused;
        this.maybeResume();
        return;
      case 'room:out':
        this.rooms.receive(message.m);
        return;
    }
  }

  /**
   * Lifespan shutdown: close every subscription; nothing more is published or delivered. In one
   * process, the message log is then flushed and closed (the returned promise).
   */
  detach(): Promise<void> {
    this.detached = true;
    for (const queue of this.live) queue.close();
    this.live.clear();
    for (const resolve of this.pendingSubscriptions.values()) resolve([]);
    this.pendingSubscriptions.clear();
    for (const waiter of this.aheadOfMirror) waiter.go();
    this.maybeResume();
    if (!this.inProcess) return RESOLVED;
    this.inProcess.rooms.service.close();
    return this.inProcess.close();
  }

  /** A batch, applied to the mirror as the primary applied it to the history. */
  private applyToMirror(texts: string[]): void {
    const mirror = this.mirror!;
    // Every lobby text starts with its id, written by the primary: `{"id":123,"ts":…`.
    for (const text of texts) mirror.add(Number(text.slice(6, text.indexOf(',', 6))), text);
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
      const c = this.outboxPublishers;
      this.outbox = [];
      this.outboxPublishers = [];
      this.link.send({ t: 'chat:pub', m, c });
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

/**
 * Connects a hub to the loop: over IPC in a cluster worker, else to a loop in this process (with
 * the message log read back first: see chat-memory.ts).
 */
export async function createHub(config: ChatConfig): Promise<Hub> {
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
  const { loop, store, chatLog, shared, close } = await openChatMemory(config);
  const rooms = new RoomRouter(config, (_id, message) => loop.send(outlet, message), store);
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
  hub.inProcess = { outlet, rooms, chatLog, shared, close };
  return hub;
}
