// The chat's lifespan handler (ASGI "Lifespan" spec): on startup read the settings and the page,
// attach to the broadcast hub and start answering the primary's metrics collections
// (metrics-cluster.ts), and put them in `state`, which the server copies into every request's
// scope; on shutdown detach from both.
import { createHub } from './broadcast.js';
import type { ChatState } from './chat-state.js';
import { readChatConfig } from './config.js';
import { MetricsClient } from './metrics-cluster.js';
import { loadPage } from './page.js';
import type { LifespanScope, Receive, Send } from './server/asgi-types.js';
import { log } from './server/logger.js';

export async function lifespan(scope: LifespanScope, receive: Receive, send: Send): Promise<void> {
  for (;;) {
    const event = await receive();
    if (event.type === 'lifespan.startup') {
      let state: ChatState;
      try {
        const config = readChatConfig();
        const page = await loadPage();
        const hub = await createHub(config);
        state = { config, page, hub, metrics: new MetricsClient(hub) };
      } catch (error) {
        await send({ type: 'lifespan.startup.failed', message: (error as Error).message });
        return;
      }
      Object.assign(scope.state, state);
      log.debug('Chat started: attached to the broadcast hub');
      await send({ type: 'lifespan.startup.complete' });
    } else if (event.type === 'lifespan.shutdown') {
      await (scope.state as unknown as ChatState).hub?.detach();
      (scope.state as unknown as ChatState).metrics?.detach();
      log.debug('Chat stopped: detached from the broadcast hub');
      await send({ type: 'lifespan.shutdown.complete' });
      return;
    }
  }
}
