// One serving process: lifespan startup, then node:http (node:https with --ssl-certfile) on the
// port with the HTTP and WebSocket dispatchers behind it, then graceful shutdown on SIGINT/SIGTERM.
// With --workers N each cluster worker runs this; the primary (supervisor.ts) only supervises.
//
// Order matters (ASGI lifespan spec): startup completes before the port is served, and
// `lifespan.shutdown` is sent only after the server stopped accepting and in-flight work ended.
import cluster from 'node:cluster';
import { ServerResponse, createServer as createHttpServer, type IncomingMessage, type RequestListener } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Application } from './asgi-types.js';
import { handleHttpRequest } from './asgi-http.js';
import { Lifespan, LifespanStartupError } from './asgi-lifespan.js';
import { handleWebSocketUpgrade, openSessions, type WebSocketSettings } from './asgi-websocket.js';
import { limitConnections } from './connection-limit.js';
import { isWebSocketRequest } from './handshake.js';
import { plainResponse } from './http-messages.js';
import { SERVER_LIMITS } from './limits.js';
import { log } from './logger.js';
import type { ServerOptions } from './options.js';
import { TrustedProxies } from './proxy-headers.js';
import { CLOSE_TIMEOUT_MS, endSocket, ignoreErrors } from './sockets.js';
import type { TlsMaterial } from './tls.js';
import { refuseUpgrade } from './ws-transport.js';

/** Exit codes, as uvicorn uses them: 1 for a server error (port in use), 3 for startup failure. */
export const EXIT_SERVER_ERROR = 1;
export const EXIT_STARTUP_FAILED = 3;
/** Sent over IPC by a cluster worker once it listens, so the primary can announce the port. */
export interface ListeningMessage { type: 'asgi:listening'; host: string; port: number }

/** `tls`: the certificate and key loadTls read at startup (main.ts), or null for plain HTTP. */
export async function serve(app: Application, options: ServerOptions, tls: TlsMaterial | null): Promise<void> {
  const lifespan = new Lifespan(options.lifespan);
  try {
    await lifespan.startup(app);
  } catch (error) {
    if (!(error instanceof LifespanStartupError)) throw error;
    log.error(`Application startup failed: ${error.message || '(no message)'}`);
    process.exit(EXIT_STARTUP_FAILED);
  }

  const trustedProxies = options.proxyHeaders ? new TrustedProxies(options.forwardedAllowIps) : null;
  const wsSettings: WebSocketSettings = {
    rootPath: options.rootPath,
    trustedProxies,
    maxMessageSize: options.wsMaxSize,
    // Bound the fragment count too (a flood of 1-byte fragments costs far more than its bytes).
    maxFragments: SERVER_LIMITS.maxFragments.value,
    pingIntervalMs: options.wsPingInterval * 1000,
    pingTimeoutMs: options.wsPingTimeout * 1000,
    closeTimeoutMs: CLOSE_TIMEOUT_MS,
    perMessageDeflate: options.wsPerMessageDeflate,
  };
  const httpSettings = { rootPath: options.rootPath, trustedProxies };

  // --timeout-keep-alive 0 means what it means in uvicorn: an idle connection is closed at once,
  // i.e. after each response. Node reads keepAliveTimeout 0 as "never time out", the opposite, so
  // 0 is not passed on: each response says `Connection: close` and node ends the socket after it.
  const keepAlive = options.timeoutKeepAlive > 0;
  const httpOptions = {
    // Each bound is declared, with its reason, in limits.ts.
    maxHeaderSize: SERVER_LIMITS.requestHeadBytes.value,
    // A client has --timeout-request-head to send its request head (slowloris, or a connection
    // that sends nothing): then 408 (clientError below). Node enforces it only when it checks its
    // connections, every connectionsCheckingInterval (30 s by default, which made the real bound
    // 20 to 50 s): checking every second, or twice per timeout if shorter, keeps the bound what it
    // says. A check walks only the connections with a request under way.
    headersTimeout: options.timeoutRequestHead * 1000,
    connectionsCheckingInterval: Math.min(1000, options.timeoutRequestHead * 500),
    requestTimeout: SERVER_LIMITS.requestTimeoutMs.value,
    keepAliveTimeout: options.timeoutKeepAlive * 1000,
  };
  const onRequest: RequestListener = (request, response) => {
    // Every request node does not treat as an upgrade is plain HTTP, including one that carries
    // `Upgrade: websocket` without `Connection: upgrade` (RFC 9110 §7.8: not addressed to us).
    if (!keepAlive) response.shouldKeepAlive = false;
    handleHttpRequest(app, request, response, httpSettings, lifespan.state);
  };
  // node:https is node:http over TLS sockets: the same events ('upgrade' included), the same
  // request and response objects; the dispatchers see the difference only as the socket's
  // `encrypted` flag (scope.ts). A TLS handshake that fails is node's business: it destroys
  // the socket (the 'tlsClientError' event) before any request exists.
  const server = tls === null
    ? createHttpServer(httpOptions, onRequest)
    // Like the request head, the TLS handshake has a bound of its own (limits.ts).
    : createHttpsServer({ ...httpOptions, ...tls, handshakeTimeout: SERVER_LIMITS.tlsHandshakeTimeoutMs.value }, onRequest);
  // Connections over --limit-concurrency are answered 503 at once (connection-limit.ts).
  limitConnections(server, options.limitConcurrency, tls !== null);

  server.on('upgrade', (request: IncomingMessage, socket: Socket, head: Buffer) => {
    if (shuttingDown) {
      refuseUpgrade(socket, 503, 'the server is shutting down', [], CLOSE_TIMEOUT_MS);
      return;
    }
    if (isWebSocketRequest(request)) {
      handleWebSocketUpgrade(app, request, socket, head, wsSettings, lifespan.state);
      return;
    }
    // Another protocol (h2c, ...), or an Upgrade in HTTP/1.0 (which RFC 9110 §7.8 says to ignore):
    // answer in HTTP, as §7.8 allows. node:http has already let go of the socket, so attach a
    // response to it ourselves; the request was not framed by node (no body read), and the
    // connection closes after it.
    ignoreErrors(socket); // node:http no longer listens for its errors: a reset must not throw
    const response = new ServerResponse(request);
    response.shouldKeepAlive = false;
    response.assignSocket(socket);
    response.on('finish', () => endSocket(socket, CLOSE_TIMEOUT_MS));
    handleHttpRequest(app, request, response, httpSettings, lifespan.state, false);
  });
  // A malformed request (bad header, head too large...): node answers 400/431; we close.
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    if (!socket.writable) return socket.destroy();
    const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    endSocket(socket, CLOSE_TIMEOUT_MS, plainResponse(status, status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request'));
  });

  let shuttingDown = false;
  const shutdown = async (why: string): Promise<void> => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.info(`Shutting down (${why})`);
    const deadline = Date.now() + options.timeoutGracefulShutdown * 1000;
    // 1. Stop accepting; node closes idle keep-alive connections and calls back when every
    //    connection (upgraded ones included) has ended.
    const drained = new Promise<true>((resolve) => server.close(() => resolve(true)));
    // 2. Open WebSockets get 1001 "going away"; their apps see websocket.disconnect.
    for (const session of [...openSessions]) session.shutdown();
    const finished = await raceDeadline(drained, deadline);
    if (!finished) {
      log.warning('Graceful shutdown timed out: closing the remaining connections');
      server.closeAllConnections();
    }
    // 3. lifespan.shutdown, bounded by what is left of the grace period (no wait at all when the
    //    app runs without lifespan or its lifespan function has already ended).
    const failure = await raceDeadline(lifespan.shutdown(), deadline);
    if (failure === undefined) log.warning('Application shutdown timed out');
    else if (failure !== null) log.error(`Application shutdown failed: ${failure}`);
    log.info('Finished server process');
    process.exit(typeof failure === 'string' ? EXIT_SERVER_ERROR : 0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  // A cluster worker whose primary is gone has nobody to answer to: shut down too.
  if (cluster.isWorker) process.on('disconnect', () => void shutdown('primary gone'));

  server.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EADDRINUSE') log.error(`Address ${options.host}:${options.port} is already in use: is another server running?`);
    else if (error.code === 'EACCES') log.error(`No permission to listen on ${options.host}:${options.port}`);
    else log.error(`Cannot listen on ${options.host}:${options.port}: ${error.message}`);
    process.exit(EXIT_SERVER_ERROR);
  });
  server.listen(options.port, options.host, () => {
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : options.port;
    if (cluster.isWorker) {
      process.send!({ type: 'asgi:listening', host: options.host, port } satisfies ListeningMessage);
    } else {
      announce(options.host, port, tls !== null);
    }
  });
}

/** The start-up announcement on stdout (not a log line: it shows at every log level). */
export function announce(host: string, port: number, secure: boolean): void {
  process.stdout.write(`listening on ${secure ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}\n`);
}

/** Resolves with the promise's value, or undefined once `deadline` (ms since epoch) passes. */
async function raceDeadline<T>(promise: Promise<T>, deadline: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), Math.max(0, deadline - Date.now())); });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
