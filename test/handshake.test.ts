// Tests for src/server/handshake.ts: the opening handshake of RFC 6455 §4.2 as pure functions.
// The §1.3 accept vector, the exact 101, every refusal with its exact status, message and headers
// (and the exact bytes a client then gets, built by http-messages.ts), the subprotocol list, and
// which requests ask for a WebSocket at all (RFC 9110 §7.8).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  WEBSOCKET_GUID, acceptResponse, checkHandshake, computeAcceptKey, isWebSocketRequest, offeredSubprotocols, type RequestHead,
} from '../src/server/handshake.js';
import { plainResponse } from '../src/server/http-messages.js';

const SAMPLE_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const SAMPLE_ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';

/** A request head as node:http gives it, from raw header lines (names lower-cased, repeats joined as node does). */
function request(lines: Array<[string, string]>, method = 'GET', httpVersion = '1.1'): RequestHead {
  const headers: Record<string, string | string[] | undefined> = {};
  for (const [name, value] of lines) {
    const lower = name.toLowerCase();
    const existing = headers[lower];
    // node:http joins repeated headers with ", " except set-cookie; for these tests that is enough.
    headers[lower] = existing === undefined ? value : `${existing as string}, ${value}`;
  }
  return { method, httpVersion, headers, rawHeaders: lines.flat() };
}

const VALID: Array<[string, string]> = [
  ['Host', 'server.example.com'],
  ['Upgrade', 'websocket'],
  ['Connection', 'Upgrade'],
  ['Sec-WebSocket-Key', SAMPLE_KEY],
  ['Sec-WebSocket-Version', '13'],
];

/** VALID with `name` replaced (or removed, for null). */
function valid(name: string, value: string | null): Array<[string, string]> {
  const lines = VALID.filter(([n]) => n.toLowerCase() !== name.toLowerCase());
  return value === null ? lines : [...lines, [name, value]];
}

test('§1.3: the sample key dGhlIHNhbXBsZSBub25jZQ== gets s3pPLMBiTxaQ9kYGzzhZRbK+xOo=', () => {
  assert.equal(WEBSOCKET_GUID, '258EAFA5-E914-47DA-95CA-C5AB0DC85B11');
  assert.equal(computeAcceptKey(SAMPLE_KEY), SAMPLE_ACCEPT);
});

test('acceptResponse: the exact 101 for the sample key, no subprotocol, no extra headers', () => {
  assert.equal(
    acceptResponse(SAMPLE_KEY, null, []),
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
      + `Sec-WebSocket-Accept: ${SAMPLE_ACCEPT}\r\n\r\n`,
  );
});

test('acceptResponse: the chosen subprotocol, then the extra headers in order, as given', () => {
  assert.equal(
    acceptResponse(SAMPLE_KEY, 'chat', [['Set-Cookie', 'a=1'], ['x-two', 'b']]),
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
      + `Sec-WebSocket-Accept: ${SAMPLE_ACCEPT}\r\nSec-WebSocket-Protocol: chat\r\nSet-Cookie: a=1\r\nx-two: b\r\n\r\n`,
  );
});

test('checkHandshake: the RFC sample request is valid, with its key and no subprotocols', () => {
  assert.deepEqual(checkHandshake(request(VALID)), { ok: true, key: SAMPLE_KEY, subprotocols: [] });
});

test('checkHandshake: tokens are case-insensitive and may share the header with others (§4.2.1 items 3, 4)', () => {
  const lines = [...valid('Upgrade', 'WebSocket'), ['Connection', 'keep-alive, UPGRADE'] as [string, string]].filter(
    ([n, v]) => !(n === 'Connection' && v === 'Upgrade'),
  );
  assert.deepEqual(checkHandshake(request(lines)), { ok: true, key: SAMPLE_KEY, subprotocols: [] });
});

test('checkHandshake: a key with its padding bits set is accepted (decoders ignore them); spaces around it are trimmed', () => {
  // "dGhlIHNhbXBsZSBub25jZR==": the same 16 bytes with the last character's spare bits set.
  assert.deepEqual(checkHandshake(request(valid('Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZR=='))), { ok: true, key: 'dGhlIHNhbXBsZSBub25jZR==', subprotocols: [] });
  assert.deepEqual(checkHandshake(request(valid('Sec-WebSocket-Key', ` ${SAMPLE_KEY} `))), { ok: true, key: SAMPLE_KEY, subprotocols: [] });
});

interface Refusal {
  name: string;
  head: RequestHead;
  status: number;
  message: string;
  headers?: Array<[string, string]>;
  /** The exact response a client gets for it (plainResponse of the verdict). */
  wire: string;
}

const BODY = (message: string) => `${message}\n`;
const wire = (statusLine: string, message: string, extra = ''): string =>
  `HTTP/1.1 ${statusLine}\r\n${extra}Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(BODY(message))}\r\n`
  + `Connection: close\r\n\r\n${BODY(message)}`;

const M = {
  get: 'a WebSocket handshake must be a GET request',
  http11: 'a WebSocket handshake needs HTTP/1.1',
  host: 'missing Host header',
  upgrade: 'the Upgrade header must name "websocket"',
  connection: 'the Connection header must hold the "upgrade" token',
  version: 'unsupported WebSocket version (this server speaks 13)',
  key: 'Sec-WebSocket-Key must be the base64 encoding of 16 bytes',
};

const refusals: Refusal[] = [
  { name: 'POST (item 1)', head: request(VALID, 'POST'), status: 405, message: M.get, headers: [['allow', 'GET']], wire: wire('405 Method Not Allowed', M.get, 'allow: GET\r\n') },
  { name: 'HEAD (item 1)', head: request(VALID, 'HEAD'), status: 405, message: M.get, headers: [['allow', 'GET']], wire: wire('405 Method Not Allowed', M.get, 'allow: GET\r\n') },
  { name: 'HTTP/1.0 (item 1)', head: request(VALID, 'GET', '1.0'), status: 400, message: M.http11, wire: wire('400 Bad Request', M.http11) },
  { name: 'no Host (item 2)', head: request(valid('Host', null)), status: 400, message: M.host, wire: wire('400 Bad Request', M.host) },
  { name: 'no Upgrade (item 3)', head: request(valid('Upgrade', null)), status: 400, message: M.upgrade, wire: wire('400 Bad Request', M.upgrade) },
  { name: 'Upgrade: h2c (item 3)', head: request(valid('Upgrade', 'h2c')), status: 400, message: M.upgrade, wire: wire('400 Bad Request', M.upgrade) },
  { name: 'no Connection (item 4)', head: request(valid('Connection', null)), status: 400, message: M.connection, wire: wire('400 Bad Request', M.connection) },
  { name: 'Connection: keep-alive (item 4)', head: request(valid('Connection', 'keep-alive')), status: 400, message: M.connection, wire: wire('400 Bad Request', M.connection) },
  ...['8', '14', '13, 8', ''].map((version): Refusal => ({
    name: `Sec-WebSocket-Version: "${version}" (item 6, §4.4)`,
    head: request(valid('Sec-WebSocket-Version', version)),
    status: 426,
    message: M.version,
    headers: [['sec-websocket-version', '13']],
    wire: wire('426 Upgrade Required', M.version, 'sec-websocket-version: 13\r\n'),
  })),
  {
    name: 'no Sec-WebSocket-Version (item 6, §4.4)',
    head: request(valid('Sec-WebSocket-Version', null)),
    status: 426,
    message: M.version,
    headers: [['sec-websocket-version', '13']],
    wire: wire('426 Upgrade Required', M.version, 'sec-websocket-version: 13\r\n'),
  },
  ...[
    ['missing', null],
    ['empty', ''],
    ['not base64', 'this is not base64!!!!=='],
    ['15 bytes', Buffer.alloc(15, 1).toString('base64')],
    ['17 bytes', Buffer.alloc(17, 1).toString('base64')],
    ['16 bytes without padding', SAMPLE_KEY.slice(0, 22)],
    ['ending in a single "=" (17 bytes)', `${SAMPLE_KEY.slice(0, 22)}A=`],
  ].map(([what, key]): Refusal => ({
    name: `Sec-WebSocket-Key ${what} (item 5)`,
    head: request(valid('Sec-WebSocket-Key', key ?? null)),
    status: 400,
    message: M.key,
    wire: wire('400 Bad Request', M.key),
  })),
  // The RFC's order: the first broken rule is the one reported.
  { name: 'POST over HTTP/1.0 without a key: the method comes first', head: request(valid('Sec-WebSocket-Key', null), 'POST', '1.0'), status: 405, message: M.get, headers: [['allow', 'GET']], wire: wire('405 Method Not Allowed', M.get, 'allow: GET\r\n') },
  { name: 'bad version and bad key: the version comes first', head: request(valid('Sec-WebSocket-Version', '8').filter(([n]) => n !== 'Sec-WebSocket-Key')), status: 426, message: M.version, headers: [['sec-websocket-version', '13']], wire: wire('426 Upgrade Required', M.version, 'sec-websocket-version: 13\r\n') },
];

for (const r of refusals) {
  test(`checkHandshake refuses ${r.name}: ${r.status}`, () => {
    const verdict = checkHandshake(r.head);
    const expected = r.headers ? { ok: false, status: r.status, message: r.message, headers: r.headers } : { ok: false, status: r.status, message: r.message };
    assert.deepEqual(verdict, expected);
    assert.ok(!verdict.ok);
    assert.equal(plainResponse(verdict.status, verdict.message, verdict.headers), r.wire);
  });
}

test('subprotocols: in order, over every Sec-WebSocket-Protocol line, spaces trimmed, empty elements skipped', () => {
  const head = request([...VALID, ['Sec-WebSocket-Protocol', 'chat, superchat'], ['x-other', 'a, b'], ['sec-websocket-protocol', ' v2 ,, v1 ,']]);
  assert.deepEqual(checkHandshake(head), { ok: true, key: SAMPLE_KEY, subprotocols: ['chat', 'superchat', 'v2', 'v1'] });
});

const subprotocolCases: Array<[string, string[], string[]]> = [
  ['none offered', ['Host', 'x'], []],
  ['one', ['Sec-WebSocket-Protocol', 'chat'], ['chat']],
  ['the header name in any case', ['SEC-WEBSOCKET-PROTOCOL', 'a,b'], ['a', 'b']],
  ['an empty value', ['Sec-WebSocket-Protocol', ''], []],
  ['only commas and spaces', ['Sec-WebSocket-Protocol', ' , ,'], []],
  ['case kept as sent', ['Sec-WebSocket-Protocol', 'Chat.V2'], ['Chat.V2']],
  ['duplicates kept (the app chooses)', ['Sec-WebSocket-Protocol', 'a, a'], ['a', 'a']],
];

for (const [name, raw, expected] of subprotocolCases) {
  test(`offeredSubprotocols: ${name}`, () => {
    assert.deepEqual(offeredSubprotocols(raw), expected);
  });
}

const requestCases: Array<[string, RequestHead, boolean]> = [
  ['a valid handshake', request(VALID), true],
  ['an invalid handshake that still asks for a WebSocket (bad key)', request(valid('Sec-WebSocket-Key', 'x')), true],
  ['a POST that asks for a WebSocket (refused later with 405)', request(VALID, 'POST'), true],
  ['"Connection: keep-alive, Upgrade" and "Upgrade: WebSocket"', request([...valid('Connection', 'keep-alive, Upgrade').filter(([n]) => n !== 'Upgrade'), ['Upgrade', 'WebSocket']]), true],
  ['HTTP/1.0 (RFC 9110 §7.8: Upgrade is ignored)', request(VALID, 'GET', '1.0'), false],
  ['no "upgrade" in Connection', request(valid('Connection', 'keep-alive')), false],
  ['no Connection header', request(valid('Connection', null)), false],
  ['Upgrade: h2c', request(valid('Upgrade', 'h2c')), false],
  ['no Upgrade header', request(valid('Upgrade', null)), false],
  ['"Upgrade: websocket2" (a different token)', request(valid('Upgrade', 'websocket2')), false],
  ['HTTP/2.0 (a later version)', request(VALID, 'GET', '2.0'), true],
];

for (const [name, head, expected] of requestCases) {
  test(`isWebSocketRequest: ${name} → ${expected}`, () => {
    assert.equal(isWebSocketRequest(head), expected);
  });
}
