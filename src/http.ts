// The chat's HTTP handler: the page at `/`, a health check at `/healthz`, the Prometheus metrics
// of every worker at `/metrics` (metrics.ts, metrics-cluster.ts), 404 elsewhere.
//
// The page itself is read once at startup (page.ts) and served from memory with its ETag and its
// Content-Security-Policy.
import type { ChatState } from './chat-state.js';
import { metricFamilies, type MetricsReport } from './metrics.js';
import { MetricsUnavailableError } from './metrics-cluster.js';
import { PROMETHEUS_CONTENT_TYPE, renderPrometheus } from './prometheus.js';
import type { Headers, HttpScope, Receive, Send } from './server/asgi-types.js';

export async function http(scope: HttpScope, _receive: Receive, send: Send): Promise<void> {
  const { page, hub, metrics } = scope.state as unknown as ChatState;
  const method = scope.method;
  if (scope.path === '/') {
    if (method !== 'GET' && method !== 'HEAD') return respond(send, 405, 'Method Not Allowed\n', TEXT, [['allow', 'GET, HEAD']]);
    const headers: Headers = [
      ['content-type', 'text/html; charset=utf-8'],
      ['etag', page.etag],
      ['cache-control', 'no-cache'], // revalidate every time: the ETag makes that a cheap 304
      ['content-security-policy', page.csp],
      ['x-content-type-options', 'nosniff'],
      ['referrer-policy', 'no-referrer'],
    ];
    if (matchesEtag(scope, page.etag)) {
      await send({ type: 'http.response.start', status: 304, headers });
      await send({ type: 'http.response.body' });
      return;
    }
    await send({ type: 'http.response.start', status: 200, headers: [...headers, ['content-length', String(page.body.length)]] });
    await send({ type: 'http.response.body', body: page.body });
    return;
  }
  if (scope.path === '/healthz') {
    if (method !== 'GET' && method !== 'HEAD') return respond(send, 405, 'Method Not Allowed\n', TEXT, [['allow', 'GET, HEAD']]);
    const body = JSON.stringify({ status: 'ok', pid: process.pid, connections: hub.subscriberCount, slow_consumers_closed: hub.slowConsumers });
    return respond(send, 200, body, 'application/json', [['cache-control', 'no-store']]);
  }
  if (scope.path === '/metrics') {
    if (method !== 'GET' && method !== 'HEAD') return respond(send, 405, 'Method Not Allowed\n', TEXT, [['allow', 'GET, HEAD']]);
    let report: MetricsReport;
    try {
      report = await metrics.gather();
    } catch (error) {
      if (!(error instanceof MetricsUnavailableError)) throw error;
      return respond(send, 503, `metrics unavailable: ${error.message}\n`, TEXT, [['cache-control', 'no-store']]);
    }
    return respond(send, 200, renderPrometheus(metricFamilies(report)), PROMETHEUS_CONTENT_TYPE, [['cache-control', 'no-store']]);
  }
  return respond(send, 404, 'Not Found\n');
}

function matchesEtag(scope: HttpScope, etag: string): boolean {
  for (const [name, value] of scope.headers) {
    if (name === 'if-none-match') return value.split(',').some((tag) => tag.trim() === etag || tag.trim() === '*');
  }
  return false;
}

const TEXT = 'text/plain; charset=utf-8';

async function respond(send: Send, status: number, text: string, contentType = TEXT, headers: Headers = []): Promise<void> {
  const body = Buffer.from(text);
  await send({
    type: 'http.response.start',
    status,
    headers: [['content-type', contentType], ['content-length', String(body.length)], ...headers],
  });
  await send({ type: 'http.response.body', body });
}
