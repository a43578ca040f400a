// The chat page (static/index.html), read once at startup with what serving it needs: its ETag and
// its Content-Security-Policy.
//
// The page's inline <script> and <style> blocks are allowed by their SHA-256 hashes in a strict
// policy, so the page runs with no other script, style, frame or connection than its own: even if
// user text ever reached the DOM as markup, the browser would refuse to run it.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';

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
