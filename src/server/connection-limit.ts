// --limit-concurrency: the most connections one process holds at once. A connection over the
// limit is told so in HTTP, at once (`503 Service Unavailable`, `Connection: close`), as uvicorn
// does, instead of being dropped without a word (node's own `server.maxConnections` closes such a
// socket as soon as it is accepted: the client sees a reset, and cannot tell a full server from a
// dead one).
//
// Theory of operation. node:http learns of a new TCP connection from the server's 'connection'
// event: its own listener, registered by the Server constructor, attaches the HTTP parser (for a
// TLS server, the listener of node:tls starts the TLS handshake). limitConnections() takes those
// listeners off and puts one gate in front of them:
//
//   'connection' ──▶ gate ── open < limit ──▶ open++, node's listeners (HTTP as usual);
//                     │                       the socket's 'close' does open--
//                     └──── otherwise ──────▶ 503, end: node:http never sees the socket,
//                                             so no request on it reaches the application
//
// A WebSocket counts from its TCP connection to its close, like any other connection. On a TLS
// port the gate stands before the TLS handshake, where a plain-text 503 would be garbage to the
// client: there the surplus connection is closed without a word, the best TCP can say. Every
// refusal is counted (metrics.ts, asgi_connections_dropped_total).
import type { Server } from 'node:net';
import type { Socket } from 'node:net';
import { plainResponse } from './http-messages.js';
import { log } from './logger.js';
import { serverMetrics } from './metrics.js';
import { CLOSE_TIMEOUT_MS, endSocket, ignoreErrors } from './sockets.js';

const SERVICE_UNAVAILABLE = plainResponse(503, 'Service Unavailable: too many connections');
/** At most one warning this often while connections are being refused (an attack must not flood the log). */
const WARN_EVERY_MS = 10_000;

/** `secure`: the server speaks TLS, so a refusal cannot be an HTTP answer (see the top). */
export function limitConnections(server: Server, limit: number, secure = false): void {
  const listeners = server.listeners('connection') as Array<(this: Server, socket: Socket) => void>;
  server.removeAllListeners('connection');
  let open = 0;
  let lastWarning = -Infinity;
  let refusedSinceWarning = 0;
  // One function for every socket's 'close', not a closure per connection.
  const release = (): void => { open--; };
  server.on('connection', (socket: Socket) => {
    if (open >= limit) {
      serverMetrics.connectionsDropped++;
      if (secure) {
        ignoreErrors(socket);
        socket.destroy();
      } else {
        refuse(socket);
      }
      refusedSinceWarning++;
      const now = Date.now();
      if (now - lastWarning >= WARN_EVERY_MS) {
        log.warning(`${refusedSinceWarning} connection${refusedSinceWarning === 1 ? '' : 's'} over --limit-concurrency ${limit} ${secure ? 'closed' : 'answered 503'}`);
        lastWarning = now;
        refusedSinceWarning = 0;
      }
      return;
    }
    open++;
    socket.once('close', release);
    for (const listener of listeners) listener.call(server, socket);
  });
}

function refuse(socket: Socket): void {
  ignoreErrors(socket); // nobody else listens to this socket: a reset must not throw
  // Read and drop what the client sends (its request), so that its FIN is seen and the socket
  // closes cleanly instead of being reset with unread bytes.
  socket.resume();
  endSocket(socket, CLOSE_TIMEOUT_MS, SERVICE_UNAVAILABLE);
}
