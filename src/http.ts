// The chat's HTTP handler: the page at `/`, a health check at `/healthz`, 404 elsewhere.
//
// The page (static/index.html) is read once at startup. Its one inline <script> and one inline
// <style> are allowed by their SHA-256 hashes in a strict Content-Security-Policy, so the page
// runs with no other script, style, frame or connection than its own: even if user text ever
// reached the DOM as markup, the browser would refuse to run it.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { ChatState } from './lifespan.js';
import type { Headers, HttpScope, Receive, Send } from './server/asgi-types.js';

export interface Page {
  body: Buffer;
  etag: string;
  csp: string;
}

const PAGE_URL = new URL('../static/index.html', import.meta.url);

export async function loadPage(): Promise<Page> {
  const body = await readFile(PAGE_URL);
  const html = body.toString('utf8');
  const hash = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;
  const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => hash(m[1]!));
  const styles = [...html.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) => hash(m[1]!));
  const csp = [
    "default-src 'none'",
    `script-src ${scripts.join(' ') || "'none'"}`,
    `style-src ${styles.join(' ') || "'none'"}`,
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
  return { body, etag, csp };
}

export async function http(scope: HttpScope, _receive: Receive, send: Send): Promise<void> {
  const { page, hub } = scope.state as unknown as ChatState;
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
