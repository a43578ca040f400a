// The chat's Origin rule (originAllowed in src/websocket.ts; chat-protocol.md, "Who may connect"):
//   - unit: the page's own origin has the host and port of the Host header (a Host without a port
//     means the Origin's default port); listed origins; what is not an origin;
//   - through the bundled chat: over TLS, and behind a proxy that terminates TLS, with or without
//     --proxy-headers: the https page of the same host is the server's own.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { originAllowed } from '../src/websocket.js';
import { makeCertificates, type Certificates } from './helpers/certificates.js';
import { connectRaw } from './helpers/raw-ws.js';
import { startServer, type RunningServer } from './helpers/server.js';

const TIMEOUT = { timeout: 20_000 };

describe('originAllowed', () => {
  const allowed = (origin: string | null, host: string | null, listed: string[] = []): boolean => {
    const headers: Array<[string, string]> = [];
    if (host !== null) headers.push(['host', host]);
    if (origin !== null) headers.push(['origin', origin]);
    return originAllowed(headers, listed);
  };

  test('no Origin: not a browser, allowed', () => {
    assert.equal(allowed(null, 'chat.example'), true);
    assert.equal(allowed(null, null), true);
  });

  test('the page\'s own origin: host and port equal to the Host header', () => {
    assert.equal(allowed('http://chat.example:8080', 'chat.example:8080'), true);
    assert.equal(allowed('http://chat.example', 'chat.example'), true);
    assert.equal(allowed('http://chat.example', 'chat.example:80'), true, 'the default port, written out or not');
    assert.equal(allowed('https://chat.example', 'chat.example'), true, 'an https page behind a proxy that terminates TLS');
    assert.equal(allowed('https://chat.example', 'chat.example:443'), true);
    assert.equal(allowed('https://chat.example:8443', 'chat.example:8443'), true);
    assert.equal(allowed('http://[::1]:8080', '[::1]:8080'), true);
    assert.equal(allowed('HTTP://Chat.Example:8080', 'chat.example:8080'), true, 'case does not matter in a host');
  });

  test('another host or port: refused', () => {
    assert.equal(allowed('http://chat.example:8081', 'chat.example:8080'), false);
    assert.equal(allowed('http://evil.example:8080', 'chat.example:8080'), false);
    assert.equal(allowed('https://chat.example', 'chat.example:8443'), false);
    assert.equal(allowed('http://chat.example', 'chat.example:443'), false, 'http\'s port is 80');
    assert.equal(allowed('http://chat.example.evil.example', 'chat.example'), false);
  });

  test('an origin listed in CHAT_ALLOWED_ORIGINS, whatever the Host', () => {
    assert.equal(allowed('https://app.example', 'chat.example', ['https://app.example']), true);
    assert.equal(allowed('https://app.example', null, ['https://app.example']), true);
    assert.equal(allowed('https://other.example', 'chat.example', ['https://app.example']), false);
  });

  test('what is not an origin, and no Host to compare with: refused', () => {
    assert.equal(allowed('null', 'chat.example'), false);
    assert.equal(allowed('chat.example', 'chat.example'), false);
    assert.equal(allowed('ws://chat.example', 'chat.example'), false);
    assert.equal(allowed('http://chat.example', null), false);
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

  test('over TLS: the page of the same host and port is accepted, another port refused', TIMEOUT, async () => {
    const { port } = servers.tls!;
    const ca = certs.read(certs.cert);
    assert.equal(await handshake(servers.tls!, { Origin: `https://127.0.0.1:${port}` }, ca), 101);
    assert.equal(await handshake(servers.tls!, { Origin: `https://127.0.0.1:${port + 1}` }, ca), 403);
  });

  test('behind a proxy that terminates TLS, trusted or not: the https page of the Host is the own one', TIMEOUT, async () => {
    const host = 'chat.example';
    for (const server of [servers.proxied!, servers.untrusted!]) {
      assert.equal(await handshake(server, { Host: host, 'X-Forwarded-Proto': 'https', Origin: `https://${host}` }), 101);
      assert.equal(await handshake(server, { Host: host, Origin: `https://${host}` }), 101, 'without the header too');
      assert.equal(await handshake(server, { Host: host, Origin: 'https://evil.example' }), 403);
    }
  });
});
