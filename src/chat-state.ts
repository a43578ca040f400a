// What every chat request finds in `scope.state`: the lifespan handler (lifespan.ts) fills it at
// startup, and the server hands each connection a shallow copy (ASGI lifespan "state").
import type { Hub } from './broadcast.js';
import type { ChatConfig } from './config.js';
import type { MetricsClient } from './metrics-cluster.js';
import type { Page } from './page.js';

export interface ChatState {
  hub: Hub;
  config: ChatConfig;
  page: Page;
  /** Gathers /metrics (metrics-cluster.ts). */
  metrics: MetricsClient;
}
