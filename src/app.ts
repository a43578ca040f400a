// The bundled chat application: one ASGI application that dispatches on the scope's type, the way
// the Python original's `app(scope, receive, send)` did. Each handler lives in its own file.
import type { Application } from './server/asgi-types.js';
import { http } from './http.js';
import { lifespan } from './lifespan.js';
import { startChatPrimary } from './primary.js';
import { log } from './server/logger.js';
import { websocket } from './websocket.js';

// Not an `async` function: it only picks a handler and returns that handler's promise, and an
// async wrapper would add a promise of its own to every connection for as long as it lasts.
export const application: Application = (scope, receive, send) => {
  switch (scope.type) {
    case 'lifespan':
      return lifespan(scope, receive, send);
    case 'http':
      return http(scope, receive, send);
    case 'websocket':
      return websocket(scope, receive, send);
    default:
      log.warning(`Ignoring a scope of unknown type ${JSON.stringify((scope as { type: unknown }).type)}`);
      return Promise.resolve();
  }
};

export default application;

/**
 * The contract's primary hook (../shared/contract.md, "The primary process"): with --workers N the
 * server calls it once in the cluster primary before forking, and this is where the lobby's
 * broadcast loop and the rooms live (primary.ts). A bad CHAT_* setting throws here, naming the variable, and the server exits 3.
 */
export function primary(): Promise<{ stop(): Promise<void> }> {
  return startChatPrimary();
}
