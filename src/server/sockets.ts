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

function destroySocket(socket: Socket): void {
  socket.destroy();
}

/** How long a closing connection may linger: a close frame's wait, a FIN's wait (limits.ts). */
export const CLOSE_TIMEOUT_MS = SERVER_LIMITS.closeTimeoutMs.value;
