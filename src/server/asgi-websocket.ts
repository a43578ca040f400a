// The ASGI dispatcher for WebSocket connections: turns an HTTP upgrade into a `websocket` scope
// and the connection's life into ASGI events (ASGI "HTTP & WebSocket" spec, WebSocket section),
// and checks that the application sends its messages in an order the spec allows.
//
// Theory of operation. node:http hands us the socket at its 'upgrade' event, for a request that
// asks for a WebSocket (handshake.ts: isWebSocketRequest). We check the handshake once
// (checkHandshake), refuse it through the transport if it is invalid, else create the session and
// run the application. The session's phases and every transition between them are the tables of
// websocket-phases.ts: each message the app sends, and each thing that happens around it (the
// peer's Close, the connection lost, the app returning or raising, shutdown), is looked up there,
// and this file carries out the action the table names. It never writes to the socket itself:
// the transport (ws-transport.ts) writes the 101, the refusals, the denial response and the
// frames, and keeps the bytes that arrive before the 101 (bounded) until the handshake completes.
//
// `receive` returns `websocket.connect` first, then messages, then `websocket.disconnect` — for
// ever after, so an app loop that misses it can never hang.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type {
  Application, ReceiveEvent, SendEvent, State, WebSocketAcceptEvent, WebSocketCloseEvent, WebSocketDisconnectEvent,
  WebSocketHttpResponseBodyEvent, WebSocketHttpResponseStartEvent, WebSocketScope, WebSocketSendEvent,
} from './asgi-types.js';
import { CloseCode, isValidWireCloseCode } from './close-codes.js';
import { PerMessageDeflate } from './deflate-codec.js';
import { FrameCache } from './frame-cache.js';
import { checkHandshake } from './handshake.js';
import { checkHeaders, isToken } from './http-messages.js';
import { SERVER_LIMITS } from './limits.js';
import { describeError, log } from './logger.js';
import { serverMetrics } from './metrics.js';
import { negotiatePerMessageDeflate } from './permessage-deflate.js';
import { connectionScope, describeClient, type ScopeSettings } from './scope.js';
import { WIRE_EVENTS, appTransition, misuseError, type AppTransition, type Phase, type WireEvent } from './websocket-phases.js';
import { WebSocketTransport, refuseUpgrade, type TransportEvents, type TransportOptions } from './ws-transport.js';

export interface WebSocketSettings extends TransportOptions, ScopeSettings {
  /** Accept permessage-deflate offers (RFC 7692), `--ws-per-message-deflate`. */
  perMessageDeflate?: boolean;
}

/**
 * Received messages queued for an app that is not calling `receive`: stop reading at either
 * bound (count or bytes), and go on once the app has taken most of them. Declared in limits.ts;
 * read once here, since they are checked on every message.
 */
const INBOX_PAUSE_MESSAGES = SERVER_LIMITS.inboxPauseMessages.value;
const INBOX_PAUSE_BYTES = SERVER_LIMITS.inboxPauseBytes.value;
const INBOX_RESUME_MESSAGES = SERVER_LIMITS.inboxResumeMessages.value;
const INBOX_RESUME_BYTES = SERVER_LIMITS.inboxResumeBytes.value;

/** One frame cache per process: every connection broadcasting the same text shares its frame. */
const frames = new FrameCache();

const RESOLVED = Promise.resolve();
const SHUTDOWN_REASON = 'server shutting down';
const CONNECT: ReceiveEvent = { type: 'websocket.connect' };

/** Every session open in this process, so that shutdown can close them with 1001. */
export const openSessions = new Set<WebSocketSession>();

/** Entry point from node:http's 'upgrade' event, for a request that asks for a WebSocket. */
export function handleWebSocketUpgrade(
  app: Application, request: IncomingMessage, socket: Socket, head: Buffer, settings: WebSocketSettings, state: State,
): void {
  // The connection scope first, so that the log line of a refused handshake names the same
  // client as the others (the proxy's X-Forwarded-For with --proxy-headers).
  const base = connectionScope(request, settings, state);
  const client = describeClient(base.client);
  const handshake = checkHandshake(request);
  if (!handshake.ok) {
    log.info(`${client} - "WebSocket ${request.url}" ${handshake.status} (${handshake.message})`);
    refuseUpgrade(socket, handshake.status, handshake.message, handshake.headers, settings.closeTimeoutMs);
    return;
  }
  const scope: WebSocketScope = {
    type: 'websocket',
    asgi: { version: '3.0', spec_version: '2.3' },
    http_version: '1.1',
    ...base,
    scheme: base.scheme === 'https' ? 'wss' : 'ws',
    subprotocols: handshake.subprotocols,
    extensions: { 'websocket.http.response': {} },
  };
  // Compression is invisible to the app: negotiated here, in use from the 101 on (ws-transport.ts).
  const negotiated = settings.perMessageDeflate === true ? negotiatePerMessageDeflate(request.rawHeaders) : null;
  const deflate = negotiated === null ? null : new PerMessageDeflate(negotiated);
  const session = new WebSocketSession(client, request.url ?? '/', socket, head, handshake.key, settings, deflate);
  session.run(app, scope);
}

export class WebSocketSession implements TransportEvents {
  private phase: Phase = 'connecting';
  /** `host:port` of the client and the request target, for log lines (the request is not kept). */
  private readonly client: string;
  private readonly url: string;
  /** The client's Sec-WebSocket-Key, for the 101; dropped once accepted. */
  private key: string;
  private readonly transport: WebSocketTransport;
  // The receive side: events not yet taken, and the app's pending `receive` if it is waiting.
  private readonly inbox: ReceiveEvent[] = [CONNECT];
  private waiting: ((event: ReceiveEvent) => void) | null = null;
  private disconnect: WebSocketDisconnectEvent | null = null;
  /** Size of the messages in the inbox (characters of text count as bytes: a close bound). */
  private inboxBytes = 0;
  private paused = false;

  constructor(client: string, url: string, socket: Socket, head: Buffer, key: string, settings: WebSocketSettings, deflate: PerMessageDeflate | null = null) {
    this.client = client;
    this.url = url;
    this.key = key;
    this.transport = new WebSocketTransport(socket, head, settings, this, deflate);
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
    running.then(() => this.onWireEvent('app-returned'), (error: unknown) => {
      log.error(`Exception in ASGI application\n${describeError(error)}`);
      this.onWireEvent('app-raised');
    });
  }

  /** Server shutdown: open connections get 1001 "going away" and the app its disconnect now. */
  shutdown(): void {
    this.onWireEvent('server-shutdown');
  }

  /**
   * Applies one event the app sent, as APP_MESSAGES says; returns a promise only when the socket
   * needs draining. Each action validates the message before the phase changes, so a message
   * rejected as malformed leaves the session where it was.
   */
  private dispatch(event: SendEvent): Promise<void> | null {
    const type = event?.type;
    const step = appTransition(this.phase, type);
    if (step === null) throw misuseError(this.phase, type);
    switch (step.action) {
      case 'send': return this.sendMessage(event as WebSocketSendEvent);
      case 'accept': this.accept(event as WebSocketAcceptEvent, step); return null;
      case 'deny': this.refuse(403); return null;
      case 'respond': this.respond(event as WebSocketHttpResponseStartEvent, step); return null;
      case 'respond-body': this.respondBody(event as WebSocketHttpResponseBodyEvent, step); return null;
      case 'close': this.close(event as WebSocketCloseEvent, step); return null;
    }
  }

  /** Applies what WIRE_EVENTS says for something that happened around the application. */
  private onWireEvent(event: WireEvent, code: number = CloseCode.ABNORMAL_CLOSURE, reason = ''): void {
    const step = WIRE_EVENTS[this.phase][event];
    switch (step.action) {
      case 'report-disconnect': this.disconnected(code, reason); break;
      case 'deny-403': this.refuse(403); break;
      case 'deny-500': this.refuse(500); break;
      case 'close-1000': this.transport.close(CloseCode.NORMAL, ''); break;
      case 'close-1011': this.transport.close(CloseCode.INTERNAL_ERROR, ''); break;
      case 'abort': this.transport.abort(); this.disconnected(CloseCode.ABNORMAL_CLOSURE, ''); break;
      case 'close-going-away':
        this.transport.close(CloseCode.GOING_AWAY, SHUTDOWN_REASON);
        this.disconnected(CloseCode.GOING_AWAY, SHUTDOWN_REASON);
        break;
      case 'abort-going-away': this.transport.abort(); this.disconnected(CloseCode.GOING_AWAY, SHUTDOWN_REASON); break;
      case 'report-going-away': this.disconnected(CloseCode.GOING_AWAY, SHUTDOWN_REASON); break;
      case 'ignore': break;
    }
    this.phase = step.next;
  }

  private sendMessage(event: WebSocketSendEvent): Promise<void> | null {
    const connection = this.transport.connection;
    if (typeof event.text === 'string' && event.bytes == null) {
      // Frame once: a broadcast's text is encoded (or compressed) for the first subscriber and reused.
      connection.sendFrameBytes(connection.deflate?.textFrame(event.text) ?? frames.textFrame(event.text));
    } else if (event.bytes instanceof Uint8Array && event.text == null) {
      connection.sendBinary(event.bytes);
    } else {
      throw new TypeError("'websocket.send' needs exactly one of 'text' (a string) or 'bytes' (a Uint8Array)");
    }
    serverMetrics.messagesSent++;
    return this.transport.backpressure();
  }

  private accept(event: WebSocketAcceptEvent, step: AppTransition): void {
    const subprotocol = event.subprotocol ?? null;
    const headers = event.headers ?? [];
    checkHeaders(headers, "'websocket.accept'");
    if (subprotocol !== null && !isToken(subprotocol)) {
      throw new TypeError(`'websocket.accept' subprotocol ${JSON.stringify(subprotocol)} is not a valid token`);
    }
    this.phase = step.next;
    this.transport.accept(this.key, subprotocol, headers);
    this.key = '';
  }

  private close(event: WebSocketCloseEvent, step: AppTransition): void {
    const code = event.code ?? CloseCode.NORMAL;
    if (!isValidWireCloseCode(code)) throw new RangeError(`'websocket.close' code ${code} may not be sent (RFC 6455 §7.4)`);
    this.phase = step.next;
    this.transport.close(code, event.reason ?? '');
  }

  /** Denies the handshake with a plain HTTP status (403 for close or a return, 500 for an exception). */
  private refuse(status: 403 | 500): void {
    log.info(`${this.client} - "WebSocket ${this.url}" ${status}`);
    this.transport.refuse(status, status === 403 ? 'Forbidden' : 'Internal Server Error');
    this.disconnected(CloseCode.ABNORMAL_CLOSURE, '');
  }

  /** The denial-response extension: the app's own status, headers and body instead of a 101. */
  private respond(event: WebSocketHttpResponseStartEvent, step: AppTransition): void {
    const { status } = event;
    const headers = event.headers ?? [];
    if (!Number.isInteger(status) || status < 100 || status > 599) throw new RangeError(`invalid HTTP status ${status}`);
    checkHeaders(headers, "'websocket.http.response.start'");
    this.phase = step.next;
    log.info(`${this.client} - "WebSocket ${this.url}" ${status}`);
    this.transport.respond(status, headers);
  }

  private respondBody(event: WebSocketHttpResponseBodyEvent, step: AppTransition): void {
    const body = event.body;
    if (body !== undefined && !(body instanceof Uint8Array)) throw new TypeError("'websocket.http.response.body' body must be a Uint8Array");
    const more = event.more_body ?? false;
    this.transport.respondBody(body, more);
    if (more) {
      this.phase = step.next;
    } else {
      this.phase = step.nextIfLast!;
      this.disconnected(CloseCode.ABNORMAL_CLOSURE, '');
    }
  }

  // ---- TransportEvents -------------------------------------------------------------------------

  onMessage(data: string | Buffer): void {
    serverMetrics.messagesReceived++;
    this.deliver(typeof data === 'string' ? { type: 'websocket.receive', text: data } : { type: 'websocket.receive', bytes: data });
  }

  /** The transport's end of the connection: the peer's Close (or its protocol error), or 1006. */
  onClose(code: number, reason: string): void {
    this.onWireEvent(code === CloseCode.ABNORMAL_CLOSURE ? 'transport-lost' : 'peer-close', code, reason);
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

  /** The connection is over (phase closed): `receive` answers `websocket.disconnect` from now on. */
  private disconnected(code: number, reason: string): void {
    if (this.disconnect) return;
    this.disconnect = { type: 'websocket.disconnect', code, reason };
    this.phase = 'closed';
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
