// The ASGI dispatcher for HTTP requests: one `http` scope per request that node:http parsed, its
// body streamed to the app as `http.request` events, the app's `http.response.*` events written
// back (ASGI "HTTP & WebSocket" spec, HTTP section), and misuse rejected with errors that say
// what was expected.
//
// Theory of operation. node:http does the HTTP/1.1 parsing, keep-alive, pipelining and chunked
// encoding; this file only translates. A response moves through three phases:
//
//   START ──http.response.start──▶ BODY ──http.response.body (more_body: false)──▶ DONE
//
// The request body is read with flow control: the socket is paused while the app has not taken
// what was read, so a slow app never makes us buffer an unbounded upload.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { unexpectedMessage } from './asgi-errors.js';
import type { Application, HttpScope, ReceiveEvent, SendEvent, State } from './asgi-types.js';
import { checkHeaders } from './http-messages.js';
import { SERVER_LIMITS } from './limits.js';
import { describeError, isEnabled, log } from './logger.js';
import { serverMetrics } from './metrics.js';
import { connectionScope, describeClient, type ScopeSettings } from './scope.js';
import { CLOSE_TIMEOUT_MS, endSocket } from './sockets.js';

export type HttpSettings = ScopeSettings;

/** Request-body bytes read ahead of the app before the socket is paused (limits.ts). */
const BODY_READ_AHEAD = SERVER_LIMITS.bodyReadAheadBytes.value;
const EMPTY = new Uint8Array(0);
const DISCONNECT: ReceiveEvent = { type: 'http.disconnect' };

const enum Phase { START, BODY, DONE }

/** Entry point from node:http's 'request' event. `hasBody: false` for requests node did not frame. */
export function handleHttpRequest(
  app: Application, request: IncomingMessage, response: ServerResponse, settings: HttpSettings, state: State, hasBody = true,
): void {
  serverMetrics.httpRequests++;
  const scope: HttpScope = {
    type: 'http',
    asgi: { version: '3.0', spec_version: '2.3' },
    http_version: request.httpVersion === '1.0' ? '1.0' : '1.1',
    method: (request.method ?? 'GET').toUpperCase(),
    ...connectionScope(request, settings, state),
  };
  void new HttpCycle(request, response, hasBody, describeClient(scope.client)).run(app, scope);
}

class HttpCycle {
  private phase = Phase.START;
  private readonly request: IncomingMessage;
  private readonly response: ServerResponse;
  /** `host:port` of the scope's client (the proxy's X-Forwarded-For with --proxy-headers). */
  private readonly client: string;
  private readonly started = performance.now();
  private status = 0;
  // Request body: chunks read but not yet given to the app.
  private chunks: Buffer[] = [];
  private bufferedBytes = 0;
  private bodyEnded: boolean;
  private finalBodySent = false;
  /** The client left before the response completed (or the response completed). */
  private disconnected = false;
  private waiting: (() => void) | null = null;

  constructor(request: IncomingMessage, response: ServerResponse, hasBody: boolean, client: string) {
    this.request = request;
    this.response = response;
    this.client = client;
    this.bodyEnded = !hasBody;
    if (hasBody) {
      request.on('data', (chunk: Buffer) => {
        this.chunks.push(chunk);
        this.bufferedBytes += chunk.length;
        if (this.bufferedBytes >= BODY_READ_AHEAD) request.pause();
        this.wake();
      });
      request.on('end', () => { this.bodyEnded = true; this.wake(); });
    }
    // 'close' fires when the response finished or the connection went away, whichever is first.
    response.on('close', () => {
      if (!response.writableFinished) this.logAccess('(client disconnected)');
      this.disconnected = true;
      this.wake();
    });
    response.on('finish', () => this.logAccess(''));
  }

  readonly receive = async (): Promise<ReceiveEvent> => {
    for (;;) {
      // The client left (or the response is complete): say so first, not a body no one will answer.
      if (this.disconnected) return DISCONNECT;
      const chunk = this.chunks.shift();
      if (chunk !== undefined) {
        this.bufferedBytes -= chunk.length;
        if (this.bufferedBytes < BODY_READ_AHEAD) this.request.resume();
        const last = this.bodyEnded && this.chunks.length === 0;
        if (last) this.finalBodySent = true;
        return { type: 'http.request', body: chunk, more_body: !last };
      }
      if (this.bodyEnded && !this.finalBodySent) {
        this.finalBodySent = true;
        return { type: 'http.request', body: EMPTY, more_body: false };
      }
      // ASGI: after the body, `receive` waits until the response is sent or the client leaves.
      await new Promise<void>((resolve) => { this.waiting = resolve; });
    }
  };

  readonly send = async (event: SendEvent): Promise<void> => {
    const type = event?.type;
    if (this.disconnected && this.phase !== Phase.DONE) throw new Error(`Unexpected ASGI message '${type}': the client disconnected`);
    switch (this.phase) {
      case Phase.START: {
        if (type !== 'http.response.start') throw unexpectedMessage(type, ['http.response.start']);
        const { status, headers = [] } = event;
        if (!Number.isInteger(status) || status < 100 || status > 599) throw new RangeError(`'http.response.start' needs an integer status from 100 to 599, got ${status}`);
        checkHeaders(headers, "'http.response.start'");
        // Node's writeHead takes headers flat: [name, value, name, value, ...]. Without a
        // content-length from the app, node frames the body chunked on HTTP/1.1 and by closing
        // the connection on HTTP/1.0, which is what the contract asks.
        this.response.writeHead(status, headers.flat());
        this.status = status;
        this.phase = Phase.BODY;
        return;
      }
      case Phase.BODY: {
        if (type !== 'http.response.body') throw unexpectedMessage(type, ['http.response.body']);
        const body = event.body ?? EMPTY;
        if (!(body instanceof Uint8Array)) throw new TypeError("'http.response.body' body must be a Uint8Array");
        if (event.more_body) {
          // Wait for 'drain' when the socket is over its high-water mark: a streaming response
          // to a slow client is paced by the client, not buffered.
          if (!this.response.write(body)) await this.drainOrClose();
          return;
        }
        this.phase = Phase.DONE;
        this.response.end(body);
        return;
      }
      case Phase.DONE:
        throw new Error(`Unexpected ASGI message '${type}' sent, after the response already completed`);
    }
  };

  async run(app: Application, scope: HttpScope): Promise<void> {
    try {
      await app(scope, this.receive, this.send);
      if (this.phase === Phase.START) {
        log.error('ASGI callable returned without starting response');
        this.failBeforeStart();
      } else if (this.phase === Phase.BODY) {
        log.error('ASGI callable returned without completing response');
        this.abandon();
      }
    } catch (error) {
      log.error(`Exception in ASGI application\n${describeError(error)}`);
      if (this.phase === Phase.START) this.failBeforeStart();
      else if (this.phase === Phase.BODY) this.abandon();
    }
  }

  private failBeforeStart(): void {
    this.phase = Phase.DONE;
    if (this.disconnected) return;
    const body = 'Internal Server Error\n';
    this.status = 500;
    this.response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' });
    this.response.end(body);
  }

  /**
   * The app failed after the response started: close the connection after what was already
   * written, so the client sees a truncated response (never a hang, never a 500 appended).
   */
  private abandon(): void {
    this.phase = Phase.DONE;
    const socket = this.response.socket;
    if (socket) endSocket(socket, CLOSE_TIMEOUT_MS);
    else this.response.destroy();
  }

  private drainOrClose(): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = () => {
        this.response.off('drain', done);
        this.response.off('close', done);
        if (this.disconnected) reject(new Error('the client disconnected'));
        else resolve();
      };
      this.response.on('drain', done);
      this.response.on('close', done);
    });
  }

  private wake(): void {
    const resolve = this.waiting;
    this.waiting = null;
    resolve?.();
  }

  /** uvicorn-style access log line: client - "METHOD path HTTP/x" status duration. */
  private logAccess(note: string): void {
    if (!isEnabled('info')) return;
    const request = this.request;
    const ms = (performance.now() - this.started).toFixed(1);
    log.info(`${this.client} - "${request.method} ${request.url} HTTP/${request.httpVersion}" ${this.status || '-'} ${ms}ms${note ? ' ' + note : ''}`);
  }
}
