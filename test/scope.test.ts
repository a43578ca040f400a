// Tests for src/server/scope.ts:
//   - decodePath: percent-decoding as UTF-8 that never rejects a path, exactly as Python's
//     urllib.parse.unquote does (what uvicorn uses for `path`): malformed escapes stay as they
//     are, and bytes that are not valid UTF-8 become U+FFFD, one per maximal ill-formed subpart
//     (the WHATWG / Unicode "substitution of maximal subparts", which Python's "replace" follows).
//     Every expected value below is what CPython's unquote returns for the same input.
//   - connectionScope: the connection-scope fields built from a real IncomingMessage, on a real
//     node:http server on 127.0.0.1 fed raw request bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { TrustedProxies } from '../src/server/proxy-headers.js';
import { connectionScope, decodePath, type ScopeBase } from '../src/server/scope.js';

const decodeCases: Array<[raw: string, decoded: string, why: string]> = [
  ['/', '/', 'no escape'],
  ['/chat', '/chat', 'no escape'],
  ['/a b', '/a b', 'no escape: returned as is'],
  ['/a%20b', '/a b', 'an escaped space'],
  ['/a+b', '/a+b', '"+" is not a space in a path (unquote, not unquote_plus)'],
  ['/%2F%3f', '//?', 'reserved characters are decoded too, upper or lower case hex'],
  ['/caf%C3%A9', '/café', '2-byte UTF-8'],
  ['/%e2%9c%93', '/✓', '3-byte UTF-8, lower-case hex'],
  ['/%F0%9F%98%80', '/😀', '4-byte UTF-8 (a surrogate pair in JavaScript)'],
  ['/%00', '/\u0000', 'NUL is decoded like any byte'],
  // Malformed escapes are kept, character for character.
  ['/%', '/%', 'a lone "%"'],
  ['/100%', '/100%', 'a "%" at the end'],
  ['/%2', '/%2', 'one hex digit, then the end'],
  ['/%4', '/%4', 'one hex digit, then the end'],
  ['/%zz', '/%zz', 'not hex'],
  ['/%%41', '/%A', 'a bad "%" followed by a good escape'],
  ['/%zz%C3%A9', '/%zzé', 'a bad escape does not spoil a good one after it'],
  ['/é%zz', '/é%zz', 'a non-ASCII character next to a bad escape stays itself'],
  // Bytes that are not UTF-8 become U+FFFD, one per maximal ill-formed subpart.
  ['/%FF', '/\uFFFD', 'a byte that never occurs in UTF-8'],
  ['/%FF%41', '/\uFFFDA', 'the next byte is read on its own'],
  ['/%C3', '/\uFFFD', 'a truncated 2-byte sequence'],
  ['/%C3%28', '/\uFFFD(', 'a lead byte followed by a non-continuation byte'],
  ['/%E2%9C', '/\uFFFD', 'a truncated 3-byte sequence: one U+FFFD'],
  ['/%F0%9F%98', '/\uFFFD', 'a truncated 4-byte sequence: one U+FFFD'],
  ['/%F0%80%80', '/\uFFFD\uFFFD\uFFFD', 'an overlong 4-byte form: each byte on its own'],
  ['/%C0%AF', '/\uFFFD\uFFFD', 'an overlong "/" (C0 never occurs in UTF-8)'],
  ['/%ED%A0%80', '/\uFFFD\uFFFD\uFFFD', 'an encoded UTF-16 surrogate (not allowed in UTF-8)'],
  ['/%C3%A9%FF', '/é\uFFFD', 'valid bytes before an invalid one are kept'],
];

for (const [raw, decoded, why] of decodeCases) {
  test(`decodePath(${JSON.stringify(raw)}) is ${JSON.stringify(decoded)}: ${why}`, () => {
    assert.equal(decodePath(raw), decoded);
  });
}

// ---- connectionScope on a real request ----------------------------------------------------------

interface Captured { scope: ScopeBase; clientPort: number }

/**
 * Runs a node:http server on 127.0.0.1 that builds the connection scope of the one request it
 * gets, sends `head` (a raw request head) from a raw TCP client, and returns the scope.
 */
async function scopeOf(
  head: Buffer | string, rootPath: string, state: Record<string, unknown>, trustedProxies: TrustedProxies | null = null,
): Promise<Captured & { serverPort: number }> {
  let captured: ScopeBase | undefined;
  const server = createServer((request: IncomingMessage, response) => {
    captured = connectionScope(request, { rootPath, trustedProxies }, state);
    response.end('ok');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const serverPort = (server.address() as AddressInfo).port;
  try {
    const socket = connect({ port: serverPort, host: '127.0.0.1' });
    await once(socket, 'connect');
    const clientPort = socket.localPort!;
    let answer = '';
    socket.setEncoding('latin1').on('data', (s: string) => { answer += s; });
    socket.end(head);
    await once(socket, 'close');
    assert.match(answer, /^HTTP\/1\.1 200 /, `the server answered ${JSON.stringify(answer.slice(0, 80))}`);
    assert.ok(captured, 'the request reached the handler');
    return { scope: captured, clientPort, serverPort };
  } finally {
    server.close();
  }
}

test('connectionScope: path, raw_path, query_string, root_path, client and server from a real request', async () => {
  const { scope, clientPort, serverPort } = await scopeOf(
    'GET /a%20b/caf%C3%A9/%zz?q=%20x&r=caf%C3%A9&&s HTTP/1.1\r\nHost: example\r\nConnection: close\r\n\r\n', '/mount', {});
  assert.equal(scope.path, '/a b/café/%zz');
  assert.equal(scope.raw_path, '/a%20b/caf%C3%A9/%zz', 'raw_path is not decoded');
  assert.equal(scope.query_string, 'q=%20x&r=caf%C3%A9&&s', 'query_string is not decoded, and has no "?"');
  assert.equal(scope.root_path, '/mount');
  assert.deepEqual(scope.client, ['127.0.0.1', clientPort]);
  assert.deepEqual(scope.server, ['127.0.0.1', serverPort]);
  assert.equal(scope.scheme, 'http', 'a plain TCP connection');
});

// The rules of the proxy headers are unit-tested in proxy-headers.test.ts; here, that the scope
// applies them to the real peer address, and only when a list of trusted proxies is given.
const FORWARDED = 'GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.7, 10.0.0.2\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n';

test('connectionScope with proxy headers from a trusted peer: client and scheme from X-Forwarded-For/-Proto', async () => {
  const { scope } = await scopeOf(FORWARDED, '', {}, new TrustedProxies(['127.0.0.1', '10.0.0.0/8']));
  assert.deepEqual(scope.client, ['203.0.113.7', 0]);
  assert.equal(scope.scheme, 'https');
  assert.deepEqual(scope.headers[1], ['x-forwarded-for', '203.0.113.7, 10.0.0.2'], 'the headers themselves are passed on as they came');
});

test('connectionScope: proxy headers from a peer that is not trusted, or without --proxy-headers, change nothing', async () => {
  for (const trusted of [new TrustedProxies(['10.0.0.0/8']), null]) {
    const { scope, clientPort } = await scopeOf(FORWARDED, '', {}, trusted);
    assert.deepEqual(scope.client, ['127.0.0.1', clientPort]);
    assert.equal(scope.scheme, 'http');
  }
});

test('connectionScope: no query string is "", and a "?" alone is an empty query string', async () => {
  assert.equal((await scopeOf('GET /plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', '', {})).scope.query_string, '');
  const bare = (await scopeOf('GET /plain? HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', '', {})).scope;
  assert.equal(bare.raw_path, '/plain');
  assert.equal(bare.query_string, '');
  const second = (await scopeOf('GET /p?a=1?b=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', '', {})).scope;
  assert.equal(second.raw_path, '/p', 'the path ends at the first "?"');
  assert.equal(second.query_string, 'a=1?b=2');
});

test('connectionScope: headers in wire order, duplicates kept, names lower-cased, values as latin1 as on the wire', async () => {
  const head = Buffer.concat([
    Buffer.from('GET / HTTP/1.1\r\nHost: example\r\nX-Mixed-Case: Value Kept\r\nAccept: a\r\nAccept: b\r\n', 'latin1'),
    // Two bytes 0xC3 0xA9 ("é" in UTF-8) in a header value: the scope shows them as two latin1
    // characters, as the contract says ("a latin1 string as on the wire").
    Buffer.from('X-Bytes: caf', 'latin1'), Buffer.from([0xc3, 0xa9]), Buffer.from('\r\n', 'latin1'),
    Buffer.from('Connection: close\r\n\r\n', 'latin1'),
  ]);
  const { scope } = await scopeOf(head, '', {});
  assert.deepEqual(scope.headers, [
    ['host', 'example'],
    ['x-mixed-case', 'Value Kept'],
    ['accept', 'a'],
    ['accept', 'b'],
    ['x-bytes', 'caf\u00c3\u00a9'],
    ['connection', 'close'],
  ]);
});

test('connectionScope: state is a shallow copy of the lifespan state', async () => {
  const shared = { items: [1] };
  const state: Record<string, unknown> = { name: 'chat', shared };
  const { scope } = await scopeOf('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', '', state);
  const copy = scope.state;
  assert.notEqual(copy, state, 'a copy, not the lifespan state itself');
  assert.deepEqual({ ...copy }, { name: 'chat', shared: { items: [1] } });
  assert.equal(copy['shared'], shared, 'shallow: the values are the same objects');
  copy['name'] = 'changed';
  copy['added'] = true;
  assert.deepEqual(state, { name: 'chat', shared }, 'what a request sets does not reach the lifespan state');
});
