// The thin I/O layer under the sans-I/O WebSocketConnection: it moves bytes between a TCP socket
// and the state machine, and owns the timers (heartbeat, closing-handshake timeout) and the
// socket's backpressure. Nothing here knows about frames or ASGI.
import type { Socket } from 'node:net';
import { ConnectionState, WebSocketConnection, type ConnectionOptions } from './connection.js';
import { endSocket } from './sockets.js';

export interface TransportOptions extends ConnectionOptions {
  /** Milliseconds between heartbeat pings (0: no heartbeat). */
  pingIntervalMs: number;
  /** Milliseconds a peer may stay silent after a ping before it is dropped (0: never). */
  pingTimeoutMs: number;
  /** Milliseconds to wait for the peer's Close after ours before destroying the socket. */
  closeTimeoutMs: number;
}

export interface TransportEvents {
  onMessage(data: string | Buffer): void;
  onClose(code: number, reason: string): void;
}

/**
 * Bytes a socket may hold in user space before `send` waits for 'drain'. Above it the peer is not
 * reading fast enough, and waiting is what keeps memory bounded and pushes back on the app.
 */
export const SEND_HIGH_WATER_MARK = 64 * 1024;

const PING_PAYLOAD = Buffer.from('heartbeat');

export class WebSocketTransport {
  readonly connection: WebSocketConnection;
  private readonly socket: Socket;
  private readonly options: TransportOptions;
  private readonly events: TransportEvents;
  private heartbeat: NodeJS.Timeout | null = null;
  private closeTimer: NodeJS.Timeout | null = null;
  /** Did the peer send anything since our last ping? (any frame proves it is alive) */
  private heardSincePing = true;
  private corked = false;
  /** One promise shared by every `send` waiting for 'drain', not one listener each. */
  private drained: Promise<void> | null = null;
  private resolveDrained: (() => void) | null = null;
  private rejectDrained: ((error: Error) => void) | null = null;

  constructor(socket: Socket, options: TransportOptions, events: TransportEvents) {
    this.socket = socket;
    this.options = options;
    this.events = events;
    this.connection = new WebSocketConnection({
      onWrite: (bytes) => this.write(bytes),
      onMessage: (data) => events.onMessage(data),
      onActivity: () => { this.heardSincePing = true; },
      onClose: (code, reason) => this.handleClose(code, reason),
      onEndTransport: () => this.endTransport(),
    }, options);
  }

  /** Called once the 101 is written: start reading frames and the heartbeat. */
  start(bufferedBeforeAccept: Buffer[]): void {
    const socket = this.socket;
    this.connection.accept();
    // Small frames should leave at once, not wait for Nagle's algorithm to coalesce them.
    socket.setNoDelay(true);
    for (const chunk of bufferedBeforeAccept) this.connection.receiveData(chunk);
    socket.on('data', (chunk: Buffer) => this.connection.receiveData(chunk));
    socket.on('drain', () => this.settleDrain(null));
    if (this.options.pingIntervalMs > 0) this.scheduleHeartbeat(this.options.pingIntervalMs);
  }

  /** A socket error, the socket closing, or a timeout: 1006 unless the close had completed. */
  lost(): void {
    this.connection.receiveEof();
    this.socket.destroy();
  }

  /**
   * The peer's FIN. node:http created the socket with allowHalfOpen, so without this a client
   * that ends TCP without a Close frame would leave the connection half-open for ever: report
   * 1006 (unless the closing handshake completed) and end our side too, after what is queued.
   */
  peerEnded(): void {
    this.connection.receiveEof();
    endSocket(this.socket, this.options.closeTimeoutMs);
  }

  /**
   * Writes a frame. Writes made in the same tick are corked and leave in one writev() syscall:
   * a subscriber with many queued broadcasts gets them in one write, not one write each.
   */
  write(bytes: Buffer): void {
    const socket = this.socket;
    if (socket.destroyed) return;
    if (!this.corked) {
      this.corked = true;
      socket.cork();
      // nextTick runs after the current chain of promise jobs, so every send that the app
      // makes in this turn (an async consumer loop included) joins the batch.
      process.nextTick(uncork, this);
    }
    socket.write(bytes);
  }

  /** A promise to wait on when the socket holds more than the high-water mark, else null. */
  backpressure(): Promise<void> | null {
    return this.socket.writableLength > SEND_HIGH_WATER_MARK ? this.waitForDrain() : null;
  }

  uncork(): void {
    this.corked = false;
    this.socket.uncork();
  }

  /** Starts the closing handshake, bounded by closeTimeoutMs (§7.1.1: then we just close TCP). */
  close(code: number, reason: string): void {
    if (this.connection.state !== ConnectionState.OPEN) return;
    this.connection.close(code, reason);
    this.closeTimer = setTimeout(() => this.lost(), this.options.closeTimeoutMs);
    this.closeTimer.unref();
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

  private settleDrain(error: Error | null): void {
    if (!this.drained) return;
    if (error) this.rejectDrained!(error);
    else this.resolveDrained!();
    this.drained = this.resolveDrained = this.rejectDrained = null;
  }

  /** Heartbeat: ping every interval; a peer that stays silent pingTimeoutMs after it is dropped. */
  private scheduleHeartbeat(delay: number): void {
    this.heartbeat = setTimeout(() => {
      if (this.connection.state !== ConnectionState.OPEN) return;
      if (!this.heardSincePing) {
        this.lost(); // silent since our ping for pingTimeoutMs: 1006 to the app
        return;
      }
      this.heardSincePing = false;
      this.connection.ping(PING_PAYLOAD);
      const timeout = this.options.pingTimeoutMs;
      if (timeout > 0) {
        // Check for an answer after the timeout, then wait out the rest of the interval.
        this.heartbeat = setTimeout(() => {
          if (this.connection.state !== ConnectionState.OPEN) return;
          if (!this.heardSincePing) this.lost();
          else this.scheduleHeartbeat(Math.max(0, this.options.pingIntervalMs - timeout));
        }, timeout);
        this.heartbeat.unref();
      } else {
        this.heardSincePing = true; // no timeout: pings only keep intermediaries from idling out
        this.scheduleHeartbeat(this.options.pingIntervalMs);
      }
    }, delay);
    this.heartbeat.unref();
  }

  private handleClose(code: number, reason: string): void {
    if (this.heartbeat) clearTimeout(this.heartbeat);
    if (this.closeTimer) clearTimeout(this.closeTimer);
    this.settleDrain(new Error('the WebSocket connection is closed'));
    this.events.onClose(code, reason);
  }

  /** §7.1.1: after the closing handshake (or a failure) the server closes TCP first. */
  private endTransport(): void {
    if (this.corked) this.uncork();
    endSocket(this.socket, this.options.closeTimeoutMs);
  }
}

function uncork(transport: WebSocketTransport): void {
  transport.uncork();
}
