// The chat's Origin rule (originAllowed in src/websocket.ts; chat-protocol.md, "Who may connect"):
//   - unit: the page's own origin is the Host header with the scheme the client used (https for a
//     wss scope), exactly; listed origins; what is not an origin;
//   - through the bundled chat: over TLS, and behind a proxy with --proxy-headers, where the
//     scheme comes from a trusted proxy's X-Forwarded-Proto and from nobody else's.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { originAllowed } from '../src/websocket.js';
import { makeCertificates, type Certificates } from './helpers/certificates.js';
import { connectRaw } from './helpers/raw-ws.js';
import { startServer, type RunningServer } from './helpers/server.js';

const TIMEOUT = { timeout: 20_000 };

describe('originAllowed', () => {
  const allowed = (origin: string | null, host: string | null, scheme: 'ws' | 'wss', listed: string[] = []): boolean => {
    const headers: Array<[string, string]> = [];
    if (host !== null) headers.push(['host', host]);
    if (origin !== null) headers.push(['origin', origin]);
    return originAllowed(headers, scheme, listed);
  };

  test('no Origin: not a browser, allowed', () => {
    assert.equal(allowed(null, 'chat.example', 'ws'), true);
    assert.equal(allowed(null, null, 'wss'), true);
  });

  test('ws: the page is http://HOST', () => {
    assert.equal(allowed('http://chat.example:8080', 'chat.example:8080', 'ws'), true);
    assert.equal(allowed('http://chat.example', 'chat.example', 'ws'), true);
    assert.equal(allowed('http://chat.example', 'chat.example:80', 'ws'), true, 'the default port, written out or not');
    assert.equal(allowed('http://[::1]:8080', '[::1]:8080', 'ws'), true);
    assert.equal(allowed('https://chat.example', 'chat.example', 'ws'), false, 'an https page is not the page of a plain connection');
    assert.equal(allowed('https://chat.example:8080', 'chat.example:8080', 'ws'), false);
    assert.equal(allowed('http://chat.example:8081', 'chat.example:8080', 'ws'), false);
    assert.equal(allowed('http://evil.example:8080', 'chat.example:8080', 'ws'), false);
  });

  test('wss: the page is https://HOST', () => {
    assert.equal(allowed('https://chat.example', 'chat.example', 'wss'), true);
    assert.equal(allowed('https://chat.example', 'chat.example:443', 'wss'), true);
    assert.equal(allowed('https://chat.example:8443', 'chat.example:8443', 'wss'), true);
    assert.equal(allowed('http://chat.example', 'chat.example', 'wss'), false, 'an http page may not open the chat of an https site');
    assert.equal(allowed('http://chat.example:443', 'chat.example', 'wss'), false);
    assert.equal(allowed('https://chat.example', 'chat.example:8443', 'wss'), false);
  });

  test('an origin listed in CHAT_ALLOWED_ORIGINS, whatever the Host and scheme', () => {
    assert.equal(allowed('https://app.example', 'chat.example', 'ws', ['https://app.example']), true);
    assert.equal(allowed('https://app.example', null, 'wss', ['https://app.example']), true);
    assert.equal(allowed('https://other.example', 'chat.example', 'wss', ['https://app.example']), false);
  });

  test('what is not an origin, and no Host to compare with: refused', () => {
    assert.equal(allowed('null', 'chat.example', 'ws'), false);
    assert.equal(allowed('chat.example', 'chat.example', 'ws'), false);
    assert.equal(allowed('ws://chat.example', 'chat.example', 'ws'), false);
    assert.equal(allowed('http://chat.example', null, 'ws'), false);
  });
});

describe('through the bundled chat', () => {
  let certs: Certificates;
  const servers: Record<string, RunningServer> = {};

  before(async () => {
    certs = makeCertificates();
    const start = async (name: string, args: string[]) => { servers[name] = await startServer({ args }); };
    const results = await Promise.allSettled([
      start('tls', ['--ssl-certfile', certs.cert, '--ssl-keyfile', certs.key]),
      start('proxied', ['--proxy-headers']),
      start('untrusted', ['--proxy-headers', '--forwarded-allow-ips', '192.0.2.1']),
    ]);
    for (const result of results) if (result.status === 'rejected') throw result.reason;
  });

  after(async () => {
    await Promise.all(Object.values(servers).map((server) => server.stop()));
    certs?.remove();
  });

  /** The status of a /chat handshake with these headers (101 accepted, 403 refused). */
  async function handshake(server: RunningServer, headers: Record<string, string>, ca?: Buffer): Promise<number> {
    const ws = await connectRaw(server.port, { path: '/chat', headers, ...(ca !== undefined && { ca }) });
    ws.destroy();
    return ws.status;
  }

  test('over TLS: the https page of the same host and port is accepted, the http one refused', TIMEOUT, async () => {
    const { port } = servers.tls!;
    const ca = certs.read(certs.cert);
    assert.equal(await handshake(servers.tls!, { Origin: `https://127.0.0.1:${port}` }, ca), 101);
    assert.equal(await handshake(servers.tls!, { Origin: `http://127.0.0.1:${port}` }, ca), 403);
  });

  test('behind a trusted proxy that terminates TLS: X-Forwarded-Proto https makes the https page the own one', TIMEOUT, async () => {
    const host = 'chat.example';
    assert.equal(await handshake(servers.proxied!, { Host: host, 'X-Forwarded-Proto': 'https', Origin: `https://${host}` }), 101);
    assert.equal(await handshake(servers.proxied!, { Host: host, 'X-Forwarded-Proto': 'https', Origin: `http://${host}` }), 403);
    assert.equal(await handshake(servers.proxied!, { Host: host, Origin: `http://${host}` }), 101, 'without the header: plain');
  });

  test('X-Forwarded-Proto from a peer that is not trusted changes nothing', TIMEOUT, async () => {
    const host = 'chat.example';
    assert.equal(await handshake(servers.untrusted!, { Host: host, 'X-Forwarded-Proto': 'https', Origin: `https://${host}` }), 403);
    assert.equal(await handshake(servers.untrusted!, { Host: host, 'X-Forwarded-Proto': 'https', Origin: `http://${host}` }), 101);
  });
});
