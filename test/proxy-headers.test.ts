// Tests for src/server/proxy-headers.ts (--proxy-headers, --forwarded-allow-ips):
//   - unit: which addresses are trusted (addresses, networks, IPv6, IPv4-mapped peers, "*"), the
//     client picked from X-Forwarded-For (the rightmost untrusted entry, else the leftmost), and
//     the scheme from X-Forwarded-Proto, exactly;
//   - through real server processes: the `http` and `websocket` scopes and the access log lines
//     with the flag and a trusted peer, with the flag and a peer that is not trusted, without the
//     flag. Every request comes from 127.0.0.1, so "trusted" and "not trusted" are chosen with
//     --forwarded-allow-ips.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Headers } from '../src/server/asgi-types.js';
import { TrustedProxies, applyProxyHeaders, forwardedClient, parseTrustedProxies } from '../src/server/proxy-headers.js';
import { connectRaw, httpOnce, waitForOutput } from './helpers/raw-ws.js';
import { fixture, startServer, type RunningServer } from './helpers/server.js';

const TIMEOUT = { timeout: 20_000 };

// ---- unit ---------------------------------------------------------------------------------------

describe('TrustedProxies', () => {
  const trusted = new TrustedProxies(parseTrustedProxies('127.0.0.1, 10.0.0.0/8, fd00::/8, ::1'));

  test('addresses and networks, IPv4 and IPv6', () => {
    for (const address of ['127.0.0.1', '10.0.0.1', '10.255.255.255', 'fd00::1', 'fdff:ffff::1', '::1', '0:0:0:0:0:0:0:1']) {
      assert.equal(trusted.trusts(address), true, address);
    }
    for (const address of ['127.0.0.2', '11.0.0.1', '9.255.255.255', 'fe00::1', '::2', '203.0.113.7']) {
      assert.equal(trusted.trusts(address), false, address);
    }
  });

  test('a peer seen as IPv4-mapped IPv6 (a server listening on "::") matches the IPv4 entries', () => {
    assert.equal(trusted.trusts('::ffff:127.0.0.1'), true);
    assert.equal(trusted.trusts('::ffff:10.1.2.3'), true);
    assert.equal(trusted.trusts('::ffff:203.0.113.7'), false);
  });

  test('what is not an IP address is never trusted (an X-Forwarded-For entry such as "unknown")', () => {
    for (const entry of ['unknown', '', 'localhost', '127.0.0.1:8080', '[::1]']) assert.equal(trusted.trusts(entry), false, entry);
  });

  test('"*" trusts everything, even what is not an address', () => {
    const everyone = new TrustedProxies(['*']);
    for (const entry of ['203.0.113.7', '::2', 'unknown']) assert.equal(everyone.trusts(entry), true, entry);
  });
});

describe('parseTrustedProxies', () => {
  test('trims entries and drops empty ones', () => {
    assert.deepEqual(parseTrustedProxies(' 10.0.0.1 ,, ::/0,*'), ['10.0.0.1', '::/0', '*']);
  });

  test('names the first entry that is not an address, a network or "*"', () => {
    assert.throws(() => parseTrustedProxies('10.0.0.1, proxy.local, nope'), { message: '"proxy.local" is not an IP address, a network such as 10.0.0.0/8, or "*"' });
    assert.throws(() => parseTrustedProxies('10.0.0.0/8/8'), { message: '"10.0.0.0/8/8" is not an IP address, a network such as 10.0.0.0/8, or "*"' });
    assert.throws(() => parseTrustedProxies('fd00::/-1'), { message: '"fd00::/-1" is not an IP address, a network such as 10.0.0.0/8, or "*"' });
  });
});

describe('forwardedClient', () => {
  const trusted = new TrustedProxies(['127.0.0.1', '10.0.0.0/8']);

  test('the rightmost entry that is not a trusted proxy', () => {
    assert.equal(forwardedClient('203.0.113.7', trusted), '203.0.113.7');
    assert.equal(forwardedClient('203.0.113.7, 10.0.0.2', trusted), '203.0.113.7');
    assert.equal(forwardedClient('203.0.113.7,10.0.0.2,10.0.0.3', trusted), '203.0.113.7');
    // What the client wrote itself is to the left of what the proxies appended: never believed
    // while an address the proxies saw is there.
    assert.equal(forwardedClient('1.2.3.4, 203.0.113.7, 10.0.0.2', trusted), '203.0.113.7');
    assert.equal(forwardedClient('2001:db8::1, 10.0.0.2', trusted), '2001:db8::1');
  });

  test('every entry trusted: the leftmost; "*" trusts every entry', () => {
    assert.equal(forwardedClient('10.0.0.5, 10.0.0.2', trusted), '10.0.0.5');
    assert.equal(forwardedClient('198.51.100.1, 203.0.113.7', new TrustedProxies(['*'])), '198.51.100.1');
  });

  test('an empty header or one of empty entries: none (the peer stays the client)', () => {
    assert.equal(forwardedClient('', trusted), null);
    assert.equal(forwardedClient(' , ,', trusted), null);
  });
});

describe('applyProxyHeaders', () => {
  const trusted = new TrustedProxies(['127.0.0.1']);
  const peer: [string, number] = ['127.0.0.1', 5000];
  const apply = (headers: Headers, secure = false, from: [string, number] = peer) => applyProxyHeaders(headers, from, secure, trusted);

  test('from a trusted peer: client from X-Forwarded-For (port 0: the header has none), scheme from X-Forwarded-Proto', () => {
    assert.deepEqual(apply([['x-forwarded-for', '203.0.113.7'], ['x-forwarded-proto', 'https']]), { client: ['203.0.113.7', 0], secure: true });
    assert.deepEqual(apply([['x-forwarded-proto', 'wss']]), { client: peer, secure: true });
    assert.deepEqual(apply([['x-forwarded-proto', 'HTTPS']]), { client: peer, secure: true }, 'a scheme is case-insensitive');
    assert.deepEqual(apply([['x-forwarded-proto', 'http']], true), { client: peer, secure: false }, 'a proxy that got plain HTTP says so');
    assert.deepEqual(apply([['x-forwarded-proto', ' ws ']], true), { client: peer, secure: false });
  });

  test('from a peer that is not trusted: nothing changes', () => {
    const from: [string, number] = ['192.0.2.9', 6000];
    assert.deepEqual(apply([['x-forwarded-for', '203.0.113.7'], ['x-forwarded-proto', 'https']], false, from), { client: from, secure: false });
    assert.deepEqual(apply([['x-forwarded-proto', 'http']], true, from), { client: from, secure: true });
  });

  test('a scheme that is not one of http, https, ws, wss, or a list of them, is ignored', () => {
    for (const value of ['ftp', 'https, http', '', 'https://']) {
      assert.deepEqual(apply([['x-forwarded-proto', value]]), { client: peer, secure: false }, JSON.stringify(value));
    }
  });

  test('several X-Forwarded-For lines are one list; of several X-Forwarded-Proto lines the last counts', () => {
    const trustedPair = new TrustedProxies(['127.0.0.1', '10.0.0.2']);
    const headers: Headers = [['x-forwarded-for', '203.0.113.7'], ['x-forwarded-proto', 'http'], ['x-forwarded-for', '10.0.0.2'], ['x-forwarded-proto', 'https']];
    assert.deepEqual(applyProxyHeaders(headers, peer, false, trustedPair), { client: ['203.0.113.7', 0], secure: true });
  });
});

// ---- through real server processes -------------------------------------------------------------

const servers: Record<string, RunningServer> = {};

before(async () => {
  const start = async (name: string, app: string, args: string[]) => {
    servers[name] = await startServer({ args: ['--app', fixture(app), ...args] });
  };
  const results = await Promise.allSettled([
    start('defaultTrust', 'http-probe.mjs', ['--proxy-headers']),
    start('network', 'http-probe.mjs', ['--proxy-headers', '--forwarded-allow-ips', '10.0.0.0/8,127.0.0.1']),
    start('untrusted', 'http-probe.mjs', ['--proxy-headers', '--forwarded-allow-ips', '192.0.2.1']),
    start('noFlag', 'http-probe.mjs', []),
    start('ws', 'ws-probe.mjs', ['--proxy-headers', '--forwarded-allow-ips', '*']),
    start('wsUntrusted', 'ws-probe.mjs', ['--proxy-headers', '--forwarded-allow-ips', '::1']),
  ]);
  for (const result of results) if (result.status === 'rejected') throw result.reason;
});

after(async () => {
  await Promise.all(Object.values(servers).map((server) => server.stop()));
});

interface HttpScopeSeen { client: [string, number]; scheme: string; headers: Array<[string, string]> }

/** GET /scope with `headers` from 127.0.0.1; returns the scope the app saw and our local port. */
async function scopeVia(server: RunningServer, id: string, headers: string): Promise<HttpScopeSeen> {
  const response = await httpOnce(server.port, `GET /scope?id=${id} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}Connection: close\r\n\r\n`);
  assert.equal(response.status, 200, response.body.toString());
  return (JSON.parse(response.body.toString()) as { scope: HttpScopeSeen }).scope;
}

const FORWARDED = 'X-Forwarded-For: 203.0.113.7, 10.0.0.2\r\nX-Forwarded-Proto: https\r\n';

describe('http scope and access log, through the server', () => {
  test('--proxy-headers, peer 127.0.0.1 trusted by default: the rightmost address not trusted, and https', TIMEOUT, async () => {
    const scope = await scopeVia(servers.defaultTrust!, 'default', FORWARDED);
    // 10.0.0.2 is not in the default list (127.0.0.1 only), so it is the client.
    assert.deepEqual(scope.client, ['10.0.0.2', 0]);
    assert.equal(scope.scheme, 'https');
    await waitForOutput(servers.defaultTrust!, /^INFO: +\[\d+\] 10\.0\.0\.2:0 - "GET \/scope\?id=default HTTP\/1\.1" 200 /m);
  });

  test('--forwarded-allow-ips with a network: proxies in it are skipped, the client behind them is found', TIMEOUT, async () => {
    const scope = await scopeVia(servers.network!, 'network', FORWARDED);
    assert.deepEqual(scope.client, ['203.0.113.7', 0]);
    assert.equal(scope.scheme, 'https');
    await waitForOutput(servers.network!, /^INFO: +\[\d+\] 203\.0\.113\.7:0 - "GET \/scope\?id=network HTTP\/1\.1" 200 /m);
    const allTrusted = await scopeVia(servers.network!, 'all-trusted', 'X-Forwarded-For: 10.0.0.5, 10.0.0.2\r\n');
    assert.deepEqual(allTrusted.client, ['10.0.0.5', 0], 'every entry trusted: the leftmost');
    assert.equal(allTrusted.scheme, 'http', 'no X-Forwarded-Proto: the connection\'s own scheme');
  });

  test('X-Forwarded-Proto: http from a trusted proxy keeps http; headers are passed to the app unchanged', TIMEOUT, async () => {
    const scope = await scopeVia(servers.network!, 'proto-http', 'X-Forwarded-Proto: http\r\n');
    assert.equal(scope.scheme, 'http');
    assert.equal(scope.client[0], '127.0.0.1', 'no X-Forwarded-For: the peer');
    assert.deepEqual(scope.headers.find(([name]) => name === 'x-forwarded-proto'), ['x-forwarded-proto', 'http']);
  });

  for (const [name, label] of [['untrusted', 'a peer not in --forwarded-allow-ips'], ['noFlag', 'without --proxy-headers']] as const) {
    test(`${label}: the headers change nothing, in the scope or the log`, TIMEOUT, async () => {
      const server = servers[name]!;
      const response = await httpOnce(server.port, `GET /scope?id=${name} HTTP/1.1\r\nHost: 127.0.0.1\r\n${FORWARDED}Connection: close\r\n\r\n`);
      const scope = (JSON.parse(response.body.toString()) as { scope: HttpScopeSeen }).scope;
      assert.equal(scope.client[0], '127.0.0.1');
      assert.notEqual(scope.client[1], 0, 'the real peer port');
      assert.equal(scope.scheme, 'http');
      await waitForOutput(server, new RegExp(`^INFO: +\\[\\d+\\] 127\\.0\\.0\\.1:${scope.client[1]} - "GET /scope\\?id=${name} HTTP/1\\.1" 200 `, 'm'));
    });
  }
});

describe('websocket scope and log lines, through the server', () => {
  interface WsScopeSeen { first: string; scope: { client: [string, number]; scheme: string } }

  async function wsScope(server: RunningServer, headers: Record<string, string>): Promise<WsScopeSeen['scope']> {
    const ws = await connectRaw(server.port, { path: '/scope', headers });
    try {
      assert.equal(ws.status, 101);
      const frame = await ws.nextFrame();
      return (JSON.parse(frame.payload.toString()) as WsScopeSeen).scope;
    } finally {
      ws.destroy();
    }
  }

  test('trusted ("*"): client from X-Forwarded-For (the leftmost, all being trusted), wss from X-Forwarded-Proto https', TIMEOUT, async () => {
    const scope = await wsScope(servers.ws!, { 'X-Forwarded-For': '198.51.100.1, 203.0.113.7', 'X-Forwarded-Proto': 'https' });
    assert.deepEqual(scope.client, ['198.51.100.1', 0]);
    assert.equal(scope.scheme, 'wss');
    const plain = await wsScope(servers.ws!, { 'X-Forwarded-Proto': 'http' });
    assert.equal(plain.scheme, 'ws');
  });

  test('a refused handshake is logged with the forwarded client too', TIMEOUT, async () => {
    const ws = await connectRaw(servers.ws!.port, { path: '/close-before-accept', headers: { 'X-Forwarded-For': '198.51.100.2' } });
    ws.destroy();
    assert.equal(ws.status, 403);
    await waitForOutput(servers.ws!, /^INFO: +\[\d+\] 198\.51\.100\.2:0 - "WebSocket \/close-before-accept" 403$/m);
  });

  test('not trusted: client and scheme are the connection\'s', TIMEOUT, async () => {
    const scope = await wsScope(servers.wsUntrusted!, { 'X-Forwarded-For': '198.51.100.1', 'X-Forwarded-Proto': 'https' });
    assert.equal(scope.client[0], '127.0.0.1');
    assert.notEqual(scope.client[1], 0);
    assert.equal(scope.scheme, 'ws');
  });
});
