// The bundled chat application: one ASGI application that dispatches on the scope's type, the way
// the Python original's `app(scope, receive, send)` did. Each handler lives in its own file.
import type { Application } from './server/asgi-types.js';
import { http } from './http.js';
import { lifespan } from './lifespan.js';
import { log } from './server/logger.js';
import { websocket } from './websocket.js';

export const application: Application = async (scope, receive, send) => {
  switch (scope.type) {
    case 'lifespan':
      return lifespan(scope, receive, send);
    case 'http':
      return http(scope, receive, send);
    case 'websocket':
      return websocket(scope, receive, send);
    default:
      log.warning(`Ignoring a scope of unknown type ${JSON.stringify((scope as { type: unknown }).type)}`);
  }
};

export default application;
