// Ending a TCP connection politely but surely: what both dispatchers need when they give up on a
// connection after having written to it.
import type { Socket } from 'node:net';

/**
 * Ends `socket` after the bytes already queued (end() uncorks, so nothing written is lost, which
 * destroy() would do), then destroys it if the peer has not finished closing in `timeoutMs`.
 */
export function endSocket(socket: Socket, timeoutMs: number): void {
  if (socket.destroyed) return;
  socket.end();
  setTimeout(() => socket.destroy(), timeoutMs).unref();
}

/** How long a closing connection may linger: a close frame's wait, a FIN's wait. */
export const CLOSE_TIMEOUT_MS = 5000;
