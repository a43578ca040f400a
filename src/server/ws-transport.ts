// The I/O layer of one WebSocket connection, from the moment node:http hands over the upgraded
// socket: it answers the handshake (the 101, a refusal, or the application's own HTTP response,
// with the bytes handshake.ts and http-messages.ts build), then moves bytes between the socket and
// the sans-I/O WebSocketConnection, and owns the timers (heartbeat, closing-handshake timeout) and
// the socket's backpressure. It is the only code that writes to the socket of a WebSocket request
// (server.ts answers other Upgrades, h2c and the like, as plain HTTP through node's
// ServerResponse); nothing here knows about frame layouts or ASGI.
//
// Theory of operation:
//
//   new WebSocketTransport(socket, head)     bytes that came with the request (`head`) and any
//        │                                   that follow are kept, bounded, unparsed
//        ├── accept(key, subprotocol, headers)      queues the 101 ahead of the turn's frames,
//        │                                          feeds the kept bytes to the codec, starts
//        │                                          the heartbeat: frames flow
//        ├── refuse(status, message)                a plain-text response, then the end of TCP
//        └── respond(status, headers), respondBody(body, more)
//                                                   the app's denial response; the last body
//                                                   ends TCP
//
// refuseUpgrade() answers a request that never gets a transport (an invalid handshake, or any
// upgrade during shutdown). The TCP connection is ended exactly once, by end() below, whoever
// asks: the codec once it reaches CLOSED (after the peer's Close, a protocol error, the peer's
// FIN), a refusal, the end of a denial response. abort() destroys it without a word.
//
// Memory per connection matters when a process holds tens of thousands of them, so, as `ws`
// does, the transport hangs itself on its socket under a symbol and the socket's listeners are
// shared module-level functions that find it there: no closures allocated per connection. For
// the same reason the transport is itself the connection's handler (it has the methods of
// ConnectionHandler) instead of wrapping each callback in a closure, and timers get module-level
// callbacks with the transport as their argument.
import type { Socket } from 'node:net';
import type { Headers } from './asgi-types.js';
import { ConnectionState, WebSocketConnection, type ConnectionHandler, type ConnectionOptions } from './connection.js';
import type { PerMessageDeflate } from './deflate-codec.js';
import type { ProtocolError } from './errors.js';
import { acceptResponse } from './handshake.js';
import { plainResponse, plainResponseHead } from './http-messages.js';
import { SERVER_LIMITS } from './limits.js';
import { log } from './logger.js';
import { countRefusedHandshake, serverMetrics } from './metrics.js';
import { endSocket, ignoreErrors } from './sockets.js';

export interface TransportOptions extends ConnectionOptions {
  /** Milliseconds between heartbeat pings (0: no heartbeat). */
  pingIntervalMs: number;
  /** Milliseconds a peer may stay silent after a ping before it is dropped (0: never). */
  pingTimeoutMs: number;
  /** Milliseconds to wait for the peer's Close after ours before destroying the socket. */
  closeTimeoutMs: number;
}

/** What the transport reports to its owner (the ASGI session). */
export interface TransportEvents {
  onMessage(data: string | Buffer): void;
  onClose(code: number, reason: string): void;
}

/**
 * Bytes a socket may hold in user space before `send` waits for 'drain'. Above it the peer is not
 * reading fast enough, and waiting is what keeps memory bounded and pushes back on the app.
 * (Declared with the other limits in limits.ts; read once here, for the hot path.)
 */
export const SEND_HIGH_WATER_MARK = SERVER_LIMITS.sendHighWaterBytes.value;
/** Bytes a client may send before the handshake completes (a well-behaved client sends none). */
const MAX_EARLY_BYTES = SERVER_LIMITS.earlyBytes.value;
const PING_PAYLOAD = Buffer.from('heartbeat');

const kTransport = Symbol('transport');
type TransportSocket = Socket & { [kTransport]: WebSocketTransport };

export class WebSocketTransport implements ConnectionHandler {
  readonly connection: WebSocketConnection;
  private readonly socket: TransportSocket;
  private readonly options: TransportOptions;
  private readonly events: TransportEvents;
  /** Bytes received before the 101 (fed to the codec at start), or null once started. */
  private early: Buffer[] | null = [];
  private earlyBytes = 0;
  private heartbeat: NodeJS.Timeout | null = null;
  /** The heartbeat's ping is out and its timeout is running. */
  private awaitingPong = false;
  /** Did the peer send anything since our last ping? (any bytes prove it is alive) */
  private heardSincePing = true;
  private closeTimer: NodeJS.Timeout | null = null;
  // Reading is paused while the app has not taken what it was given (the owner says so), or while
  // more than the high-water mark of our output waits to be sent: a peer that does not read what
  // we write (a ping flood never reading its pongs, a subscriber not reading broadcasts) does not
  // get to make us read, and so write, more.
  private appBacklog = false;
  private outputBacklog = false;
  private readingPaused = false;
  /**
   * Frames written this turn, not yet handed to the socket (see onWrite), and their size: the
   * first in `pendingFirst`, any more in `pending`. A turn with one frame for this socket (a
   * broadcast at a moderate rate) then allocates no array.
   */
  private pendingFirst: Buffer | null = null;
  private pending: Buffer[] | null = null;
  private pendingBytes = 0;
  /** Bytes of the 101 among the pending ones: not frames, so not in the bytes-sent metric. */
  private headBytes = 0;
  /** One promise shared by every `send` waiting for 'drain', not one listener each. */
  private drained: Promise<void> | null = null;
  private resolveDrained: (() => void) | null = null;
  private rejectDrained: ((error: Error) => void) | null = null;

  constructor(socket: Socket, head: Buffer, options: TransportOptions, events: TransportEvents, deflate: PerMessageDeflate | null = null) {
    this.socket = socket as TransportSocket;
    this.socket[kTransport] = this;
    this.options = options;
    this.events = events;
    this.connection = new WebSocketConnection(this, options, deflate);
    socket.on('data', socketOnData);
    // The peer's FIN (node:http sockets allow half-open connections), an error, or the socket
    // closing all mean the peer is gone.
    socket.on('end', socketOnEnd);
    socket.on('error', socketOnLost);
    socket.on('close', socketOnLost);
    socket.on('drain', socketOnDrain);
    if (head.length > 0) this.receive(head);
  }

  // ---- the handshake's answer (before the 101, the socket speaks HTTP) ------------------------

  /**
   * Completes the handshake: writes the 101 (§4.2.2), then frames flow and the heartbeat starts.
   * The caller has validated the subprotocol and headers.
   */
  accept(key: string, subprotocol: string | null, headers: Headers): void {
    // permessage-deflate, when negotiated, is in use from the 101 that says so (RFC 7692 §5).
    const deflate = this.connection.deflate;
    if (deflate !== null) headers = [...headers, ['Sec-WebSocket-Extensions', deflate.response]];
    // The 101 joins this turn's frames (onWrite): an app that greets the client on accept, as
    // the chat does, gets its 101 and its first frames to the client in one write. Each write to
    // a TCP socket is a system call that also runs the peer's side of loopback: one write less
    // per handshake was a measurable share of a handshake's CPU (README, Performance).
    const head = Buffer.from(acceptResponse(key, subprotocol, headers), 'latin1');
    this.headBytes = head.length;
    this.onWrite(head);
    this.connection.accept();
    serverMetrics.websocketsAccepted++;
    serverMetrics.websocketsOpen++; // until onClose
    // Small frames should leave at once, not wait for Nagle's algorithm to coalesce them.
    this.socket.setNoDelay(true);
    const early = this.early!;
    this.early = null;
    for (const chunk of early) this.connection.receiveData(chunk);
    if (this.options.pingIntervalMs > 0) this.armHeartbeat(this.options.pingIntervalMs);
  }

  /** Refuses the handshake with a short plain-text response, then ends TCP. */
  refuse(status: number, message: string): void {
    countRefusedHandshake(status);
    this.end(plainResponse(status, message));
  }

  /**
   * Starts the application's own HTTP response instead of a 101 (the denial response); the caller
   * has validated the status and headers. Close-delimited: the socket ends after the last body.
   */
  respond(status: number, headers: Headers): void {
    serverMetrics.refused.appResponse++;
    this.socket.write(plainResponseHead(status, headers), 'latin1');
  }

  /** A part of the denial response's body; the last one (`more` false) ends TCP. */
  respondBody(body: Uint8Array | undefined, more: boolean): void {
    if (body !== undefined && body.length > 0) this.socket.write(body);
    if (!more) this.end();
  }

  /** Drops the connection at once, without a word (an unfinished denial response, shutdown). */
  abort(): void {
    this.socket.destroy();
  }

  // ---- bytes in ------------------------------------------------------------------------------

  /** Bytes from the socket: to the codec, or kept (bounded) until the handshake completes. */
  receive(chunk: Buffer): void {
    if (this.early === null) {
      this.heardSincePing = true; // any bytes prove the peer alive, not only a complete frame
      this.connection.receiveData(chunk);
      if (!this.outputBacklog && this.outputBytes() > SEND_HIGH_WATER_MARK) {
        this.outputBacklog = true;
        this.updateReading();
      }
      return;
    }
    this.earlyBytes += chunk.length;
    if (this.earlyBytes > MAX_EARLY_BYTES) this.lost(); // flooding before the handshake completed
    else this.early.push(chunk);
  }

  /** A socket error, the socket closing, or a timeout: 1006 unless the close had completed. */
  lost(): void {
    this.connection.receiveEof();
    this.socket.destroy();
  }

  /**
   * The peer's FIN. node:http created the socket with allowHalfOpen, so without this a client
   * that ends TCP without a Close frame would leave the connection half-open for ever. The codec
   * reports 1006 (unless the closing handshake completed) and asks us to end our side
   * (onEndTransport), after what is queued; if it had already reached CLOSED, it had asked then.
   */
  peerEnded(): void {
    this.connection.receiveEof();
  }

  /**
   * Ends TCP after what is queued and `lastBytes`, once: the first caller ends the socket and arms
   * its destroy timer (sockets.ts), later ones find it ended. No flag is needed for that: this
   * transport is the only writer of the socket, so `writableEnded` says whether it did.
   */
  private end(lastBytes?: string): void {
    if (this.socket.writableEnded) return;
    endSocket(this.socket, this.options.closeTimeoutMs, lastBytes);
  }

  /**
   * Writes a frame (ConnectionHandler). Frames written during one turn of the event loop are
   * collected and handed to the socket together, once the turn's promise jobs have run (see
   * flushWrites below): a subscriber with many queued broadcasts costs one socket write, not one
   * write per message.
   */
  onWrite(bytes: Buffer): void {
    if (this.socket.destroyed) return;
    if (this.pendingFirst === null) {
      this.pendingFirst = bytes;
      scheduleFlush(this);
    } else if (this.pending === null) {
      this.pending = [this.pendingFirst, bytes];
    } else {
      this.pending.push(bytes);
    }
    this.pendingBytes += bytes.length;
  }

  /**
   * A promise to wait on when more than the high-water mark is waiting to be sent (pending
   * here or queued in the socket), else null. It settles in flush() or on the socket's 'drain'.
   */
  backpressure(): Promise<void> | null {
    return this.outputBytes() > SEND_HIGH_WATER_MARK ? this.waitForDrain() : null;
  }

  /** The owner's inbox is full (true) or has room again (false): pause or resume reading. */
  setAppBacklog(full: boolean): void {
    this.appBacklog = full;
    this.updateReading();
  }

  private outputBytes(): number {
    return this.socket.writableLength + this.pendingBytes;
  }

  /** Output went out: lift the output backlog and wake senders once under the high-water mark. */
  private outputSent(): void {
    if (this.outputBytes() > SEND_HIGH_WATER_MARK) return;
    if (this.drained !== null) this.settleDrain(null);
    if (this.outputBacklog) {
      this.outputBacklog = false;
      this.updateReading();
    }
  }

  /**
   * Reads while OPEN unless a backlog says otherwise. Once the connection is closing we always
   * read: data frames are discarded then, and the peer's Close must get through.
   */
  private updateReading(): void {
    const pause = (this.appBacklog || this.outputBacklog) && this.connection.state === ConnectionState.OPEN;
    if (pause === this.readingPaused) return;
    this.readingPaused = pause;
    if (pause) this.socket.pause();
    else this.socket.resume();
  }

  /** Hands this turn's frames to the socket: one write, of a Buffer shared when possible. */
  flush(): void {
    const first = this.pendingFirst;
    if (first === null) return;
    const frames = this.pending;
    this.pendingFirst = null;
    this.pending = null;
    const bytes = this.pendingBytes;
    this.pendingBytes = 0;
    if (this.socket.destroyed) return;
    serverMetrics.bytesSent += bytes - this.headBytes;
    this.headBytes = 0;
    if (frames === null) this.socket.write(first);
    else if (bytes <= MAX_JOINED_BYTES) this.socket.write(joined(frames, bytes));
    else {
      // Large runs: let the socket gather them in one writev() instead of copying them.
      this.socket.cork();
      for (const frame of frames) this.socket.write(frame);
      this.socket.uncork();
    }
    // Senders waiting on bytes that were only pending here: if the socket took them (a write
    // that completes at once emits no 'drain'), they may go on now; otherwise 'drain' will come.
    this.outputSent();
  }

  /** Starts the closing handshake, bounded by closeTimeoutMs (§7.1.1: then we just close TCP). */
  close(code: number, reason: string): void {
    if (this.connection.state !== ConnectionState.OPEN) return;
    this.connection.close(code, reason);
    this.updateReading(); // CLOSING: read again, so the peer's Close is not stuck behind a pause
    this.closeTimer = setTimeout(transportLost, this.options.closeTimeoutMs, this);
    this.closeTimer.unref();
  }

  // ---- ConnectionHandler -------------------------------------------------------------------

  onMessage(data: string | Buffer): void {
    this.events.onMessage(data);
  }

  onActivity(): void {
    this.heardSincePing = true;
  }

  /** The peer broke the protocol: the codec is failing the connection with the error's close code. */
  onProtocolError(error: ProtocolError): void {
    log.debug(`closing ${error.closeCode} ${error.code}: ${error.message}`);
  }

  onClose(code: number, reason: string): void {
    if (this.heartbeat) clearTimeout(this.heartbeat);
    if (this.closeTimer) clearTimeout(this.closeTimer);
    this.settleDrain(new Error('the WebSocket connection is closed'));
    // The codec reaches CLOSED exactly once, accepted or not; `early` is null only once accept() ran.
    if (this.early === null) serverMetrics.websocketsOpen--;
    this.events.onClose(code, reason);
  }

  /** §7.1.1: after the closing handshake (or a failure) the server closes TCP first. */
  onEndTransport(): void {
    this.flush(); // the close frame and anything before it go out first
    this.end();
  }

  // ---- heartbeat and drain -------------------------------------------------------------------

  /**
   * Heartbeat: every pingIntervalMs send a ping; if the peer then stays silent for pingTimeoutMs
   * (no pong, no frame at all), drop it: the app sees 1006. Alternates two waits on one timer.
   */
  heartbeatTick(): void {
    if (this.connection.state !== ConnectionState.OPEN) return;
    const { pingIntervalMs, pingTimeoutMs } = this.options;
    if (this.awaitingPong) {
      // Silent for the whole timeout: drop it, unless we were the ones not reading.
      if (!this.heardSincePing && !this.readingPaused) return this.lost();
      this.awaitingPong = false;
      this.armHeartbeat(Math.max(0, pingIntervalMs - pingTimeoutMs));
      return;
    }
    this.heardSincePing = false;
    this.connection.ping(PING_PAYLOAD);
    if (pingTimeoutMs > 0) {
      this.awaitingPong = true;
      this.armHeartbeat(pingTimeoutMs);
    } else {
      this.armHeartbeat(pingIntervalMs); // no timeout: pings only keep intermediaries from idling out
    }
  }

  private armHeartbeat(delay: number): void {
    this.heartbeat = setTimeout(heartbeatTick, delay, this);
    this.heartbeat.unref();
  }

  private waitForDrain(): Promise<void> {
    if (!this.drained) {
      this.drained = new Promise<void>((resolve, reject) => {
        this.resolveDrained = resolve;
        this.rejectDrained = reject;
      });
    }
    return this.drained;
  }

  /** The socket's 'drain': what it held went out. */
  drain(): void {
    this.outputSent();
  }

  settleDrain(error: Error | null): void {
    if (!this.drained) return;
    if (error) this.rejectDrained!(error);
    else this.resolveDrained!();
    this.drained = this.resolveDrained = this.rejectDrained = null;
  }
}

/**
 * Refuses an upgrade that gets no transport (an invalid handshake, or any upgrade during
 * shutdown): a short plain-text response with `headers`, then the end of TCP.
 */
export function refuseUpgrade(socket: Socket, status: number, message: string, headers: Headers | undefined, closeTimeoutMs: number): void {
  countRefusedHandshake(status);
  ignoreErrors(socket); // nobody else listens for this socket's errors any more
  endSocket(socket, closeTimeoutMs, plainResponse(status, message, headers));
}

// Write coalescing, shared by all connections of the process.
//
// Transports with frames pending this turn wait in one list, flushed by a single nextTick. A
// nextTick runs after the current chain of promise jobs, so everything an app sends in this turn
// (an async consumer loop included) is collected first. A broadcast hands every subscriber the
// same frame Buffers (the frame cache) in the same order, so consecutive transports usually hold
// identical runs of frames: the run is joined into one Buffer once, and that same Buffer is
// written to every socket, as a hand-written fan-out would do. Frames are compared by identity,
// so the check costs one comparison per frame and can never mistake different bytes.
const MAX_JOINED_BYTES = SERVER_LIMITS.maxJoinedBytes.value;
let dirty: WebSocketTransport[] = [];
let lastRun: Buffer[] = [];
let lastJoined: Buffer | null = null;

function scheduleFlush(transport: WebSocketTransport): void {
  if (dirty.length === 0) process.nextTick(flushWrites);
  dirty.push(transport);
}

function flushWrites(): void {
  const transports = dirty;
  dirty = [];
  for (const transport of transports) transport.flush();
  lastRun = []; // the next turn brings new frames: drop the reference to this one's
  lastJoined = null;
}

/** The frames of `run` as one Buffer, reusing the previous socket's if it is the same run. */
function joined(run: Buffer[], bytes: number): Buffer {
  if (lastJoined !== null && run.length === lastRun.length) {
    let same = true;
    for (let i = 0; i < run.length; i++) {
      if (run[i] !== lastRun[i]) { same = false; break; }
    }
    if (same) return lastJoined;
  }
  lastRun = run;
  lastJoined = Buffer.concat(run, bytes);
  return lastJoined;
}

// Shared listeners and timer callbacks: `this` is the socket, which carries its transport.
function socketOnData(this: TransportSocket, chunk: Buffer): void { this[kTransport].receive(chunk); }
function socketOnEnd(this: TransportSocket): void { this[kTransport].peerEnded(); }
function socketOnLost(this: TransportSocket): void { this[kTransport].lost(); }
function socketOnDrain(this: TransportSocket): void { this[kTransport].drain(); }
function heartbeatTick(transport: WebSocketTransport): void { transport.heartbeatTick(); }
function transportLost(transport: WebSocketTransport): void { transport.lost(); }
