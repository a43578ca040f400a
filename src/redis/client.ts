// A Redis client on node:net: one TCP connection, commands pipelined over it, replies matched to
// commands in order, and reconnection with capped, jittered backoff. The bytes are RESP, encoded
// and parsed by src/redis/resp.ts; this file only moves them and keeps the bookkeeping.
//
// Theory of operation.
//
// Pipelining. Redis answers the commands of one connection in the order it received them, so
// the client needs no ids: it keeps a FIFO of the commands waiting for a reply (`pending`), and
// each reply settles the oldest. A command is never written on its own: `command()` appends it to
// an outbox, and a microtask queued by the first command of the turn encodes the whole outbox into
// one buffer (encodeCommands) and writes it with one socket write. A loop that issues 1000 INCRs
// thus costs one write and, at Redis, one read; their replies stream back in one or a few chunks.
//
// States:
//
//   idle ──connect()──▶ connecting ──(TCP up, handshake answered)──▶ ready
//                          ▲   │                                        │
//                          │   └──(fails, or connectTimeoutMs)──┐       │ (socket lost, protocol
//                          │                                    ▼       │  error, command timeout)
//                          └────────(backoff delay)────────── waiting ◀─┘
//   any ──close()──▶ closed
//
// Only `ready` accepts commands. In every other state a command is refused at once with a
// RedisConnectionError (REDIS_ERR_NOT_CONNECTED): commands never queue while Redis is away, so
// nothing grows without bound and a caller learns at once that it must answer "unavailable".
//
// The handshake: on TCP connect the client writes, in one write, `HELLO 3` (with AUTH inside it,
// when protocol 3 is asked for) or `AUTH [user] password`, then `SELECT db` (when db is not 0), then
// `PING`. The PING makes a server that wants a password the URL lacks say NOAUTH now, at connect,
// rather than to the first real command. Any error reply fails the attempt with
// REDIS_ERR_HANDSHAKE, naming the command Redis refused (never the password).
//
// Losing the connection. Every command in `pending` is rejected with REDIS_ERR_CONNECTION_LOST.
// Those already written may or may not have been executed by Redis (its reply may be what was
// lost): `mayHaveExecuted` is true for them, false for those still in the outbox. Then the client
// waits backoffDelay() and tries again, for ever, until close(). Events tell the owner about each
// episode once: 'disconnected' when a ready connection is lost, 'connected' when a handshake
// completes; every failed attempt in between emits only 'reconnecting' (for debug logs).
//
// Blocking commands (XREAD BLOCK, BLPOP, WAIT...). Redis answers nothing else on a connection
// while a blocking command waits there, so anything pipelined behind it would wait too, for as
// long as the BLOCK lasts. The owner therefore creates a second RedisClient for blocking reads,
// and this client guards the rule: while a blocking command is in flight, other commands are
// refused at once (REDIS_ERR_BLOCKED) instead of silently waiting behind it. Blocking commands are
// recognised by name (isBlockingCommand()), and are exempt from the default command timeout (an
// explicit `timeoutMs` still applies: give it BLOCK plus a margin).
import { EventEmitter } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { RedisConnectionError, RedisReplyError, type RedisConnectionErrorCode } from './errors.js';
import { ReplyParser, encodeCommands, type ParserLimits, type RedisArg, type RespValue } from './resp.js';
import { describeRedisUrl, parseRedisUrl, type RedisUrl } from './url.js';

export interface RedisClientOptions {
  /** `redis://[[user]:password@]host:port[/db]`, or one already parsed. */
  url: string | RedisUrl;
  /** 2 (the default) or 3: `HELLO 3` is sent, and replies use RESP3's types (maps as Map). */
  protocol?: 2 | 3;
  /** How long TCP connect plus the handshake may take, in ms. */
  connectTimeoutMs?: number;
  /** How long a command may wait for its reply, in ms; 0: no limit. Blocking commands are exempt. */
  commandTimeoutMs?: number;
  /** The most commands waiting for their replies (written or not); beyond, refused at once. */
  maxPending?: number;
  /** The first reconnect delay's cap, in ms; it doubles per failed attempt up to reconnectMaxDelayMs. */
  reconnectInitialDelayMs?: number;
  reconnectMaxDelayMs?: number;
  /** Bounds on the replies (see src/redis/resp.ts `DEFAULT_PARSER_LIMITS`). */
  limits?: Partial<ParserLimits>;
  /** A source of randomness in [0, 1) for the jitter (tests make it fixed). */
  random?: () => number;
}

export interface CommandOptions {
  /** Bulk strings of the reply as Buffers (binary data) instead of UTF-8 strings. */
  buffers?: boolean;
  /** This command's timeout in ms (overrides commandTimeoutMs; applies to blocking commands too). */
  timeoutMs?: number;
}

export interface ReconnectInfo {
  /** 1 for the first retry after a loss (or after the first failed attempt). */
  attempt: number;
  delayMs: number;
  /** Why the last attempt or the connection failed. */
  error: Error;
}

export interface RedisClientEvents {
  /** A handshake completed: the client accepts commands (once per episode). */
  connected: [];
  /** A ready connection was lost (once per episode, however many attempts fail after it). */
  disconnected: [error: Error];
  /** The next attempt is scheduled after `delayMs`. */
  reconnecting: [info: ReconnectInfo];
  /** A RESP3 push message (pub/sub, client tracking): never the reply to a command. */
  push: [message: RespValue[]];
}

/** Defaults, each with its reason. */
export const REDIS_CLIENT_DEFAULTS = {
  /** A Redis on the same network answers in a millisecond; 5 s tells a dead host from a slow one. */
  connectTimeoutMs: 5000,
  /** No limit by default: a timeout drops the connection (see command()), which the caller must want. */
  commandTimeoutMs: 0,
  /**
   * 10,000 commands in flight: far more than a turn of the chat issues (a publish is one EVALSHA),
   * and at a few hundred bytes each a bounded few MiB of memory.
   */
  maxPending: 10_000,
  /** First retry within 100 ms (a restart of Redis is quick), then 200, 400... */
  reconnectInitialDelayMs: 100,
  /** ...capped at 5 s: an outage is noticed within seconds of its end, and Redis is not hammered. */
  reconnectMaxDelayMs: 5000,
} as const;

/**
 * The delay before reconnect attempt `attempt` (1, 2, ...): "equal jitter". The cap doubles per
 * attempt from `initialMs` up to `maxMs`, and the delay is half the cap plus a random share of
 * the other half. The fixed half makes the backoff really grow (a Redis that is down is not
 * hammered); the random half spreads the server trees that lost the same Redis at the same
 * instant, so they do not all come back in the same instant.
 */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  const cap = Math.min(maxMs, initialMs * 2 ** Math.min(Math.max(attempt - 1, 0), 30));
  return Math.round(cap / 2 + random() * (cap / 2));
}

/** Commands that block their connection until data arrives or their timeout passes. */
const BLOCKING = new Set(['BLPOP', 'BRPOP', 'BRPOPLPUSH', 'BLMOVE', 'BLMPOP', 'BZPOPMIN', 'BZPOPMAX', 'BZMPOP', 'WAIT', 'WAITAOF']);

/** Whether `args` is a blocking command: one of BLOCKING, or XREAD / XREADGROUP with BLOCK. */
export function isBlockingCommand(args: readonly RedisArg[]): boolean {
  const name = argText(args[0]).toUpperCase();
  if (BLOCKING.has(name)) return true;
  if (name !== 'XREAD' && name !== 'XREADGROUP') return false;
  // BLOCK is an option before STREAMS; after STREAMS come key names, which may be "block".
  for (let i = 1; i < args.length; i++) {
    const word = argText(args[i]).toUpperCase();
    if (word === 'STREAMS') return false;
    if (word === 'BLOCK') return true;
  }
  return false;
}

function argText(arg: RedisArg | undefined): string {
  return arg === undefined ? '' : Buffer.isBuffer(arg) ? arg.toString('latin1') : String(arg);
}

type State = 'idle' | 'connecting' | 'ready' | 'waiting' | 'closed';

/** A command waiting for its reply. */
interface Pending {
  /** Its name, upper case, for error messages (never its arguments: AUTH carries a password). */
  name: string;
  buffers: boolean;
  blocking: boolean;
  timer: NodeJS.Timeout | null;
  resolve: (reply: RespValue) => void;
  reject: (error: Error) => void;
}

/** A FIFO with O(1) shift: an array and a head index, compacted when half of it is dead. */
class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;
  get size(): number { return this.items.length - this.head; }
  push(item: T): void { this.items.push(item); }
  peek(): T | undefined { return this.items[this.head]; }
  shift(): T | undefined {
    if (this.head === this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
  /** Removes and returns everything, oldest first. */
  drain(): T[] {
    const all = this.items.slice(this.head) as T[];
    this.items = [];
    this.head = 0;
    return all;
  }
}

export class RedisClient extends EventEmitter<RedisClientEvents> {
  readonly url: RedisUrl;
  /** Counters for tests and metrics: socket writes made, commands written. */
  readonly stats = { writes: 0, commands: 0 };
  private readonly options: Required<Omit<RedisClientOptions, 'url' | 'limits'>> & { limits: Partial<ParserLimits> };
  /** "redis://host:port/db" with no password, for messages. */
  private readonly where: string;
  private state: State = 'idle';
  private socket: Socket | null = null;
  private parser: ReplyParser | null = null;
  private readonly pending = new Fifo<Pending>();
  /** Commands of this turn not written yet: the last outbox.length entries of `pending`. */
  private outbox: RedisArg[][] = [];
  private flushQueued = false;
  private blockingInFlight = 0;
  private attempt = 0;
  private connectTimer: NodeJS.Timeout | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  /** connect() callers waiting for the outcome of the current attempt. */
  private attemptWaiters: { resolve: () => void; reject: (error: Error) => void }[] = [];

  constructor(options: RedisClientOptions) {
    super();
    this.url = typeof options.url === 'string' ? parseRedisUrl(options.url) : options.url;
    this.where = describeRedisUrl({ ...this.url, password: null, username: null });
    this.options = {
      protocol: options.protocol ?? 2,
      connectTimeoutMs: options.connectTimeoutMs ?? REDIS_CLIENT_DEFAULTS.connectTimeoutMs,
      commandTimeoutMs: options.commandTimeoutMs ?? REDIS_CLIENT_DEFAULTS.commandTimeoutMs,
      maxPending: options.maxPending ?? REDIS_CLIENT_DEFAULTS.maxPending,
      reconnectInitialDelayMs: options.reconnectInitialDelayMs ?? REDIS_CLIENT_DEFAULTS.reconnectInitialDelayMs,
      reconnectMaxDelayMs: options.reconnectMaxDelayMs ?? REDIS_CLIENT_DEFAULTS.reconnectMaxDelayMs,
      random: options.random ?? Math.random,
      limits: options.limits ?? {},
    };
  }

  /** Whether commands are accepted now. */
  get connected(): boolean {
    return this.state === 'ready';
  }

  /** Commands waiting for their replies. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /**
   * Starts the client (the first call) and resolves once a connection is ready, or rejects with
   * the reason the current attempt failed (REDIS_ERR_HANDSHAKE for a wrong password, ECONNREFUSED...).
   * After a rejection the client keeps trying in the background, with backoff, until close():
   * a caller that wants to give up calls close().
   */
  connect(): Promise<void> {
    if (this.state === 'ready') return Promise.resolve();
    if (this.state === 'closed') return Promise.reject(this.refusal('REDIS_ERR_CLOSED', 'the client is closed'));
    const outcome = new Promise<void>((resolve, reject) => this.attemptWaiters.push({ resolve, reject }));
    if (this.state === 'idle') this.open();
    return outcome;
  }

  /**
   * Sends one command; resolves with its reply, rejects with the RedisReplyError Redis answered
   * (that command only: the connection and the other commands are unaffected), or with a
   * RedisConnectionError when there is no answer (see its `mayHaveExecuted`).
   *
   * Commands issued in the same turn are written together, in order, with one socket write.
   * With a timeout (options.timeoutMs or commandTimeoutMs), a command unanswered in time is
   * rejected with REDIS_ERR_COMMAND_TIMEOUT and the connection is dropped and remade: a reply
   * that arrives late would otherwise be matched to the next command.
   */
  command(args: readonly RedisArg[], options: CommandOptions = {}): Promise<RespValue> {
    if (args.length === 0) return Promise.reject(new TypeError('a Redis command needs at least its name'));
    for (const arg of args) {
      const ok = typeof arg === 'string' || Buffer.isBuffer(arg) || typeof arg === 'bigint' || (typeof arg === 'number' && Number.isFinite(arg));
      if (!ok) return Promise.reject(new TypeError(`a Redis argument must be a string, a Buffer, a finite number or a bigint, not ${String(arg)}`));
    }
    const name = argText(args[0]).toUpperCase();
    if (this.state === 'closed') return Promise.reject(this.refusal('REDIS_ERR_CLOSED', `${name} refused: the client is closed`));
    if (this.state !== 'ready') return Promise.reject(this.refusal('REDIS_ERR_NOT_CONNECTED', `${name} refused: not connected to ${this.where}`));
    if (this.blockingInFlight > 0) {
      return Promise.reject(this.refusal('REDIS_ERR_BLOCKED', `${name} refused: a blocking command holds this connection; use a second RedisClient for blocking reads`));
    }
    if (this.pending.size >= this.options.maxPending) {
      return Promise.reject(this.refusal('REDIS_ERR_TOO_MANY_PENDING', `${name} refused: ${this.options.maxPending} commands already wait for replies from ${this.where}`));
    }
    const blocking = isBlockingCommand(args);
    const timeoutMs = options.timeoutMs ?? (blocking ? 0 : this.options.commandTimeoutMs);
    return this.enqueue([...args], name, options.buffers === true, blocking, timeoutMs);
  }

  /**
   * Stops for good: no more reconnects, every command waiting is rejected with REDIS_ERR_CLOSED
   * (one already written may have run), and the socket is closed. Resolves once it is.
   */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    const socket = this.socket;
    const closed = socket === null || socket.closed ? Promise.resolve() : new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const error = new RedisConnectionError('REDIS_ERR_CLOSED', 'the client is closed');
    this.dropConnection(error, 'REDIS_ERR_CLOSED'); // destroys the socket
    this.settleWaiters(error);
    await closed;
  }

  // -------------------------------------------------------------------------------------------

  private refusal(code: RedisConnectionErrorCode, message: string): RedisConnectionError {
    return new RedisConnectionError(code, message, { mayHaveExecuted: false });
  }

  private enqueue(args: RedisArg[], name: string, buffers: boolean, blocking: boolean, timeoutMs: number): Promise<RespValue> {
    return new Promise<RespValue>((resolve, reject) => {
      const entry: Pending = { name, buffers, blocking, timer: null, resolve, reject };
      if (timeoutMs > 0) {
        entry.timer = setTimeout(() => {
          entry.timer = null;
          const error = new RedisConnectionError('REDIS_ERR_COMMAND_TIMEOUT', `${name}: no reply from ${this.where} within ${timeoutMs} ms; the connection is dropped, and the command may or may not have been executed`);
          reject(error);
          this.lose(this.socket, error);
        }, timeoutMs);
      }
      if (blocking) this.blockingInFlight++;
      this.pending.push(entry);
      this.outbox.push(args);
      if (!this.flushQueued) {
        this.flushQueued = true;
        queueMicrotask(this.flush);
      }
    });
  }

  /** Writes the turn's commands, encoded into one buffer, with one socket write. */
  private readonly flush = (): void => {
    this.flushQueued = false;
    const socket = this.socket;
    if (socket === null || this.outbox.length === 0) return;
    const batch = this.outbox;
    this.outbox = [];
    socket.write(encodeCommands(batch));
    this.stats.writes++;
    this.stats.commands += batch.length;
  };

  private open(): void {
    this.state = 'connecting';
    const socket = netConnect({ host: this.url.host, port: this.url.port });
    this.socket = socket;
    // We batch writes ourselves (one per turn): Nagle's delay would only add latency.
    socket.setNoDelay(true);
    this.parser = new ReplyParser({
      limits: this.options.limits,
      onReply: (reply) => this.onReply(reply),
      onPush: (message) => this.emit('push', message),
      bulkAsBuffer: () => this.pending.peek()?.buffers ?? false,
    });
    const parser = this.parser;
    this.connectTimer = setTimeout(() => {
      this.lose(socket, new RedisConnectionError('REDIS_ERR_CONNECT_TIMEOUT', `no connection to ${this.where} within ${this.options.connectTimeoutMs} ms`));
    }, this.options.connectTimeoutMs);
    socket.on('connect', () => {
      // Keep-alive probes find a peer that vanished without a FIN (a host down, a cable cut).
      socket.setKeepAlive(true, 10_000);
      this.handshake();
    });
    socket.on('data', (chunk: Buffer) => {
      if (socket !== this.socket) return;
      try {
        parser.push(chunk);
      } catch (error) {
        this.lose(socket, error as Error);
      }
    });
    socket.on('error', (error) => this.lose(socket, error));
    socket.on('close', () => this.lose(socket, new Error('the connection was closed')));
  }

  /** Sends AUTH / HELLO, SELECT and PING in one write; the last answer makes the client ready. */
  private handshake(): void {
    const { username, password, db } = this.url;
    const steps: RedisArg[][] = [];
    if (this.options.protocol === 3) {
      steps.push(password === null ? ['HELLO', 3] : ['HELLO', 3, 'AUTH', username ?? 'default', password]);
    } else if (password !== null) {
      steps.push(username === null ? ['AUTH', password] : ['AUTH', username, password]);
    }
    if (db !== 0) steps.push(['SELECT', db]);
    steps.push(['PING']);
    const socket = this.socket;
    let answered = 0;
    for (const args of steps) {
      const name = argText(args[0]).toUpperCase();
      this.enqueue(args, name, false, false, 0).then(() => {
        if (++answered === steps.length && socket === this.socket) this.becomeReady();
      }, (error: Error) => {
        if (!(error instanceof RedisReplyError) || socket !== this.socket) return; // the connection's own failure is handled by lose()
        this.lose(socket, new RedisConnectionError('REDIS_ERR_HANDSHAKE', `${this.where} refused ${name}: ${error.message}${handshakeHint(error, password !== null)}`, { cause: error }));
      });
    }
  }

  private becomeReady(): void {
    if (this.connectTimer !== null) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    this.state = 'ready';
    this.attempt = 0;
    const waiters = this.attemptWaiters;
    this.attemptWaiters = [];
    for (const waiter of waiters) waiter.resolve();
    this.emit('connected');
  }

  private onReply(reply: RespValue): void {
    const entry = this.pending.shift();
    if (entry === undefined) {
      // Nothing asked for it: the stream is out of step, and nothing after it can be trusted.
      throw new RedisConnectionError('REDIS_ERR_CONNECTION_LOST', `a reply from ${this.where} arrived with no command waiting for it`);
    }
    if (entry.timer !== null) clearTimeout(entry.timer);
    if (entry.blocking) this.blockingInFlight--;
    if (reply instanceof RedisReplyError) {
      reply.command = entry.name;
      entry.reject(reply);
    } else {
      entry.resolve(reply);
    }
  }

  /** The connection `socket` failed (if it is still ours): reject what waits, and plan the next attempt. */
  private lose(socket: Socket | null, cause: Error): void {
    if (socket === null || socket !== this.socket || this.state === 'closed') return;
    const wasReady = this.state === 'ready';
    this.dropConnection(cause, 'REDIS_ERR_CONNECTION_LOST');
    if (wasReady) this.emit('disconnected', cause);
    else this.settleWaiters(cause);
    this.attempt++;
    const delayMs = backoffDelay(this.attempt, this.options.reconnectInitialDelayMs, this.options.reconnectMaxDelayMs, this.options.random);
    this.state = 'waiting';
    this.emit('reconnecting', { attempt: this.attempt, delayMs, error: cause });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.state === 'waiting') this.open();
    }, delayMs);
  }

  /** Forgets the socket and rejects every command waiting, each told whether it was written. */
  private dropConnection(cause: Error, code: 'REDIS_ERR_CONNECTION_LOST' | 'REDIS_ERR_CLOSED'): void {
    const socket = this.socket;
    this.socket = null;
    if (socket !== null) {
      socket.destroy();
    }
    this.parser?.halt();
    this.parser = null;
    if (this.connectTimer !== null) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    const entries = this.pending.drain();
    const written = entries.length - this.outbox.length;
    this.outbox = [];
    this.blockingInFlight = 0;
    const why = code === 'REDIS_ERR_CLOSED' ? 'the client was closed' : `the connection to ${this.where} was lost (${cause.message})`;
    entries.forEach((entry, index) => {
      if (entry.timer !== null) clearTimeout(entry.timer);
      const sent = index < written;
      const message = sent
        ? `${entry.name}: ${why} before its reply came; it may or may not have been executed`
        : `${entry.name}: ${why} before it was written; it was not executed`;
      entry.reject(new RedisConnectionError(code, message, { cause, mayHaveExecuted: sent }));
    });
  }

  private settleWaiters(error: Error): void {
    const waiters = this.attemptWaiters;
    this.attemptWaiters = [];
    for (const waiter of waiters) waiter.reject(error);
  }
}

/** What to check, after Redis's own words, when it refuses the handshake. */
function handshakeHint(error: RedisReplyError, hasPassword: boolean): string {
  if (error.code === 'NOAUTH' && !hasPassword) return ' (the server requires a password, and the URL has none: redis://:password@host:port)';
  if (error.code === 'WRONGPASS') return ' (check the user name and password in the URL)';
  return '';
}
