// Ending a TCP connection politely but surely: what both dispatchers need when they give up on a
// connection after having written to it.
import type { Socket } from 'node:net';
import { SERVER_LIMITS } from './limits.js';

/**
 * Ends `socket` after the bytes already queued and `lastBytes` (end() uncorks, so nothing written
 * is lost, which destroy() would do), then destroys it if the peer has not finished closing in
 * `timeoutMs`: a peer that never sends its FIN cannot hold the socket open.
 */
export function endSocket(socket: Socket, timeoutMs: number, lastBytes?: string | Uint8Array): void {
  if (socket.destroyed) return;
  if (lastBytes === undefined) socket.end();
  else socket.end(lastBytes);
  setTimeout(destroySocket, timeoutMs, socket).unref();
}

/**
 * Makes a socket's errors harmless. At 'upgrade' node:http stops listening for the socket's
 * errors, and an EventEmitter that emits 'error' with no listener throws: one reset from the peer
 * (ECONNRESET, found by the fuzzer: a client resetting after a refused handshake) would kill the
 * whole process. A WebSocket transport listens itself; every other socket handed over (a refusal,
 * a non-WebSocket upgrade answered in HTTP) gets this, and an error just ends it, as node
 * destroys a socket after its error anyway.
 */
export function ignoreErrors(socket: Socket): void {
  socket.on('error', ignore);
}

function ignore(): void {}

function destroySocket(socket: Socket): void {
  socket.destroy();
}

/** How long a closing connection may linger: a close frame's wait, a FIN's wait (limits.ts). */
export const CLOSE_TIMEOUT_MS = SERVER_LIMITS.closeTimeoutMs.value;
