// The ASGI dispatcher for WebSocket connections: turns an HTTP upgrade into a `websocket` scope
// and the connection's life into ASGI events (ASGI "HTTP & WebSocket" spec, WebSocket section),
// and checks that the application sends its messages in an order the spec allows.
//
// Theory of operation. node:http hands us the socket at its 'upgrade' event. We check the
// handshake (handshake.ts), then run the application. Its `send` moves a session through:
//
//   CONNECTING ──websocket.accept──────────────▶ ACCEPTED ──websocket.close──▶ CLOSING
//       │      ──websocket.close / app returns─▶ 403, DONE                        │
//       │      ──websocket.http.response.start─▶ RESPONDING ──last body──▶ DONE   │
//       └──────── peer leaves ───────────────────────────────────────────────────┴──▶ DONE
//
// Frames are read only after the 101: bytes that arrive earlier are kept (bounded) and fed to
// the codec on accept. `receive` returns `websocket.connect` first, then messages, then
// `websocket.disconnect` — for ever after, so an app loop that misses it can never hang.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { unexpectedMessage } from './asgi-errors.js';
import type {
  Application, Headers, ReceiveEvent, SendEvent, State, WebSocketDisconnectEvent, WebSocketScope,
} from './asgi-types.js';
import { CloseCode, isValidWireCloseCode } from './close-codes.js';
import { FrameCache } from './frame-cache.js';
import { acceptResponse, checkHandshake, checkHeaders, isToken, plainResponse, plainResponseHead } from './handshake.js';
import { describeError, log } from './logger.js';
import { connectionScope } from './scope.js';
import { endSocket } from './sockets.js';
import { WebSocketTransport, type TransportEvents, type TransportOptions } from './ws-transport.js';

export interface WebSocketSettings extends TransportOptions {
  rootPath: string;
}

/**
 * Received messages queued for an app that is not calling `receive`: stop reading above either
 * bound (count or bytes: 64 messages of the largest size would be 64 × --ws-max-size), and go on
 * once the app has taken most of them.
 */
const INBOX_PAUSE_MESSAGES = 64;
const INBOX_PAUSE_BYTES = 1024 * 1024;
const INBOX_RESUME_MESSAGES = 16;
const INBOX_RESUME_BYTES = 256 * 1024;

/** One frame cache per process: every connection broadcasting the same text shares its frame. */
const frames = new FrameCache();

const enum Phase { CONNECTING, RESPONDING, ACCEPTED, CLOSING, DONE }

const RESOLVED = Promise.resolve();
const CONNECT: ReceiveEvent = { type: 'websocket.connect' };

/** Every session open in this process, so that shutdown can close them with 1001. */
export const openSessions = new Set<WebSocketSession>();

/** Entry point from node:http's 'upgrade' event, for a request that asks for WebSocket. */
export function handleWebSocketUpgrade(
  app: Application, request: IncomingMessage, socket: Socket, head: Buffer, settings: WebSocketSettings, state: State,
): void {
  const handshake = checkHandshake(request);
  if (!handshake.ok) {
    log.info(`${describeClient(request)} - "WebSocket ${request.url}" ${handshake.status} (${handshake.message})`);
    endSocket(socket, settings.closeTimeoutMs, plainResponse(handshake.status, handshake.message, handshake.headers));
    return;
  }
  const scope: WebSocketScope = {
    type: 'websocket',
    asgi: { version: '3.0', spec_version: '2.3' },
    http_version: '1.1',
    scheme: 'ws',
    ...connectionScope(request, settings.rootPath, state),
    subprotocols: handshake.subprotocols,
    extensions: { 'websocket.http.response': {} },
  };
  const session = new WebSocketSession(describeClient(request), request.url ?? '/', socket, head, handshake.key, settings);
  session.run(app, scope);
}

export class WebSocketSession implements TransportEvents {
  private phase = Phase.CONNECTING;
  /** `host:port` of the client and the request target, for log lines (the request is not kept). */
  private readonly client: string;
  private readonly url: string;
  private readonly socket: Socket;
  private readonly key: string;
  private readonly settings: WebSocketSettings;
  private readonly transport: WebSocketTransport;
  // The receive side: events not yet taken, and the app's pending `receive` if it is waiting.
  private readonly inbox: ReceiveEvent[] = [CONNECT];
  private waiting: ((event: ReceiveEvent) => void) | null = null;
  private disconnect: WebSocketDisconnectEvent | null = null;
  /** Size of the messages in the inbox (characters of text count as bytes: a close bound). */
  private inboxBytes = 0;
  private paused = false;

  constructor(client: string, url: string, socket: Socket, head: Buffer, key: string, settings: WebSocketSettings) {
    this.client = client;
    this.url = url;
    this.socket = socket;
    this.key = key;
    this.settings = settings;
    this.transport = new WebSocketTransport(socket, head, settings, this);
    openSessions.add(this);
  }

  readonly receive = (): Promise<ReceiveEvent> => {
    const event = this.inbox.shift();
    if (event !== undefined) {
      if (event.type === 'websocket.receive') this.inboxBytes -= messageSize(event);
      if (this.paused && this.inbox.length <= INBOX_RESUME_MESSAGES && this.inboxBytes <= INBOX_RESUME_BYTES) {
        this.paused = false;
        this.transport.setAppBacklog(false);
      }
      return Promise.resolve(event);
    }
    if (this.disconnect) return Promise.resolve(this.disconnect);
    if (this.waiting) return Promise.reject(new Error('receive() called again before the previous call resolved'));
    return new Promise((resolve) => { this.waiting = resolve; });
  };

  readonly send = (event: SendEvent): Promise<void> => {
    try {
      return this.dispatch(event) ?? RESOLVED;
    } catch (error) {
      return Promise.reject(error);
    }
  };

  /**
   * Runs the application, then enforces the contract's rules for how it ended. Deliberately not
   * an async function: a suspended async function keeps its arguments alive, and the scope (with
   * every header string) would then live as long as the connection.
   */
  run(app: Application, scope: WebSocketScope): void {
    let running: Promise<void>;
    try {
      running = app(scope, this.receive, this.send);
    } catch (error) {
      running = Promise.reject(error); // an app that throws synchronously
    }
    running.then(() => this.appReturned(), (error: unknown) => this.appFailed(error));
  }

  private appReturned(): void {
    if (this.phase === Phase.CONNECTING) this.refuse(403); // returned before accept
    else if (this.phase === Phase.ACCEPTED) this.transport.close(CloseCode.NORMAL, ''); // no close sent
    else if (this.phase === Phase.RESPONDING) this.socket.destroy(); // response left unfinished
  }

  private appFailed(error: unknown): void {
    log.error(`Exception in ASGI application\n${describeError(error)}`);
    if (this.phase === Phase.CONNECTING) this.refuse(500);
    else if (this.phase === Phase.ACCEPTED) this.transport.close(CloseCode.INTERNAL_ERROR, '');
    else if (this.phase === Phase.RESPONDING) this.socket.destroy();
  }

  /** Server shutdown: open connections get 1001 "going away" and the app its disconnect now. */
  shutdown(): void {
    if (this.phase === Phase.ACCEPTED) this.transport.close(CloseCode.GOING_AWAY, 'server shutting down');
    else if (this.phase === Phase.CONNECTING || this.phase === Phase.RESPONDING) this.socket.destroy();
    this.disconnected(CloseCode.GOING_AWAY, 'server shutting down');
  }

  /** Applies one event the app sent; returns a promise only when the socket needs draining. */
  private dispatch(event: SendEvent): Promise<void> | null {
    const type = event?.type;
    switch (this.phase) {
      case Phase.CONNECTING:
        if (type === 'websocket.accept') return this.accept(event.subprotocol ?? null, event.headers ?? []);
        if (type === 'websocket.close') { this.refuse(403); return null; }
        if (type === 'websocket.http.response.start') return this.startResponse(event.status, event.headers ?? []);
        throw unexpectedMessage(type, ['websocket.accept', 'websocket.close', 'websocket.http.response.start']);
      case Phase.RESPONDING:
        if (type === 'websocket.http.response.body') return this.responseBody(event.body, event.more_body ?? false);
        throw unexpectedMessage(type, ['websocket.http.response.body']);
      case Phase.ACCEPTED:
        if (type === 'websocket.send') {
          const connection = this.transport.connection;
          if (typeof event.text === 'string' && event.bytes == null) {
            // Frame once: a broadcast's text is encoded for the first subscriber and reused.
            connection.sendFrameBytes(frames.textFrame(event.text));
          } else if (event.bytes instanceof Uint8Array && event.text == null) {
            connection.sendBinary(event.bytes);
          } else {
            throw new TypeError("'websocket.send' needs exactly one of 'text' (a string) or 'bytes' (a Uint8Array)");
          }
          return this.transport.backpressure();
        }
        if (type === 'websocket.close') {
          const code = event.code ?? CloseCode.NORMAL;
          if (!isValidWireCloseCode(code)) throw new RangeError(`'websocket.close' code ${code} may not be sent (RFC 6455 §7.4)`);
          this.phase = Phase.CLOSING;
          this.transport.close(code, event.reason ?? '');
          return null;
        }
        throw unexpectedMessage(type, ['websocket.send', 'websocket.close']);
      case Phase.CLOSING:
        throw new Error(`Unexpected ASGI message '${type}', after sending 'websocket.close'`);
      case Phase.DONE:
        throw new Error(`Unexpected ASGI message '${type}': the WebSocket connection is closed`);
    }
  }

  private accept(subprotocol: string | null, headers: Headers): null {
    checkHeaders(headers, "'websocket.accept'");
    if (subprotocol !== null && !isToken(subprotocol)) {
      throw new TypeError(`'websocket.accept' subprotocol ${JSON.stringify(subprotocol)} is not a valid token`);
    }
    this.phase = Phase.ACCEPTED;
    this.socket.write(Buffer.from(acceptResponse(this.key, subprotocol, headers), 'latin1'));
    this.transport.start();
    return null;
  }

  /** Denies the handshake with a plain HTTP status (403 for close, 500 for an exception). */
  private refuse(status: number): void {
    this.phase = Phase.DONE;
    log.info(`${this.client} - "WebSocket ${this.url}" ${status}`);
    endSocket(this.socket, this.settings.closeTimeoutMs, plainResponse(status, status === 403 ? 'Forbidden' : 'Internal Server Error'));
    this.disconnected(CloseCode.ABNORMAL_CLOSURE, '');
  }

  /** The denial-response extension: the app's own status, headers and body instead of a 101. */
  private startResponse(status: number, headers: Headers): null {
    if (!Number.isInteger(status) || status < 100 || status > 599) throw new RangeError(`invalid HTTP status ${status}`);
    checkHeaders(headers, "'websocket.http.response.start'");
    this.phase = Phase.RESPONDING;
    log.info(`${this.client} - "WebSocket ${this.url}" ${status}`);
    this.socket.write(Buffer.from(plainResponseHead(status, headers), 'latin1'));
    return null;
  }

  private responseBody(body: Uint8Array | undefined, moreBody: boolean): null {
    if (body && body.length > 0) this.socket.write(body);
    if (!moreBody) {
      this.phase = Phase.DONE;
      endSocket(this.socket, this.settings.closeTimeoutMs);
      this.disconnected(CloseCode.ABNORMAL_CLOSURE, '');
    }
    return null;
  }

  // ---- TransportEvents -------------------------------------------------------------------------

  onMessage(data: string | Buffer): void {
    this.deliver(typeof data === 'string' ? { type: 'websocket.receive', text: data } : { type: 'websocket.receive', bytes: data });
  }

  onClose(code: number, reason: string): void {
    this.disconnected(code, reason);
  }

  /** Queues an event for `receive`, handing it straight to a waiting call when there is one. */
  private deliver(event: ReceiveEvent): void {
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = null;
      resolve(event);
      return;
    }
    this.inbox.push(event);
    if (event.type === 'websocket.receive') this.inboxBytes += messageSize(event);
    // Backpressure inward: an app that does not keep up makes us stop reading, and TCP pushes
    // back on the client, instead of the inbox growing without bound.
    if (!this.paused && (this.inbox.length >= INBOX_PAUSE_MESSAGES || this.inboxBytes >= INBOX_PAUSE_BYTES)) {
      this.paused = true;
      this.transport.setAppBacklog(true);
    }
  }

  /** The connection is over: `receive` answers `websocket.disconnect` from now on. */
  private disconnected(code: number, reason: string): void {
    if (this.disconnect) return;
    this.disconnect = { type: 'websocket.disconnect', code, reason };
    this.phase = Phase.DONE;
    openSessions.delete(this);
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = null;
      resolve(this.disconnect);
    }
  }
}

function messageSize(event: { text?: string | undefined; bytes?: Uint8Array | undefined }): number {
  return event.text !== undefined ? event.text.length : event.bytes!.length;
}

function describeClient(request: IncomingMessage): string {
  return `${request.socket.remoteAddress ?? '?'}:${request.socket.remotePort ?? '?'}`;
}
