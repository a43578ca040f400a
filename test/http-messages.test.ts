// Tests for src/server/http-messages.ts: the RFC 9110 header grammar the dispatchers enforce on
// what applications send (token, safe value, "has this token"), and the exact bytes of the plain
// responses written by hand on a raw socket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkHeaders, hasToken, headerValue, isToken, plainResponse, plainResponseHead } from '../src/server/http-messages.js';
import type { Headers } from '../src/server/asgi-types.js';

// ---- isToken (RFC 9110 §5.6.2) ---------------------------------------------------------------

const TCHAR_SYMBOLS = "!#$%&'*+-.^_`|~";
const tokens = ['chat', 'Chat.V2', 'x-custom-header', 'a', '0', TCHAR_SYMBOLS, 'set-cookie'];
const notTokens: unknown[] = ['', 'two words', 'a,b', 'a;b', 'a:b', '"quoted"', '(x)', 'a/b', 'a=b', 'a\tb', 'é', 'a\r\nb', '{}', '[x]', '@', '?', '\\', undefined, null, 7, ['chat']];

for (const value of tokens) test(`isToken(${JSON.stringify(value)}) → true`, () => assert.equal(isToken(value), true));
for (const value of notTokens) {
  test(`isToken(${typeof value === 'string' ? JSON.stringify(value) : String(value)}) → false`, () => assert.equal(isToken(value), false));
}

test('isToken: exactly the tchar set over all of latin1', () => {
  const accepted: string[] = [];
  for (let code = 0; code <= 0xff; code++) if (isToken(String.fromCharCode(code))) accepted.push(String.fromCharCode(code));
  const alnum = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  assert.equal(accepted.sort().join(''), [...TCHAR_SYMBOLS + alnum].sort().join(''));
});

// ---- hasToken (RFC 9110 §5.6.1 lists) ---------------------------------------------------------

const hasTokenCases: Array<[string | undefined, string, boolean]> = [
  ['Upgrade', 'upgrade', true],
  ['keep-alive, Upgrade', 'upgrade', true],
  ['upgrade,keep-alive', 'upgrade', true],
  ['  UPGRADE  ', 'upgrade', true],
  [', , upgrade ,', 'upgrade', true],
  ['keep-alive', 'upgrade', false],
  ['upgrades', 'upgrade', false],
  ['x-upgrade', 'upgrade', false],
  ['up grade', 'upgrade', false],
  ['', 'upgrade', false],
  [undefined, 'upgrade', false],
  ['websocket', 'websocket', true],
  ['WebSocket, h2c', 'websocket', true],
];

for (const [value, token, expected] of hasTokenCases) {
  test(`hasToken(${JSON.stringify(value)}, ${JSON.stringify(token)}) → ${expected}`, () => {
    assert.equal(hasToken(value, token), expected);
  });
}

test('headerValue: a string as is, repeated lines joined with ", ", absent as undefined', () => {
  const headers = { upgrade: 'websocket', 'sec-websocket-protocol': ['a', 'b, c'], empty: '' };
  assert.equal(headerValue(headers, 'upgrade'), 'websocket');
  assert.equal(headerValue(headers, 'sec-websocket-protocol'), 'a, b, c');
  assert.equal(headerValue(headers, 'empty'), '');
  assert.equal(headerValue(headers, 'missing'), undefined);
});

// ---- checkHeaders --------------------------------------------------------------------------------

test('checkHeaders: valid headers pass, names in any case, values with latin1, tabs and spaces', () => {
  checkHeaders([], 'x');
  checkHeaders([['Content-Type', 'text/plain'], ['x-Mixed', ' spaced\tvalue '], ['x-latin1', 'café ÿ'], ['x-empty', '']], 'x');
});

const badHeaders: Array<[string, unknown, string]> = [
  ['a pair of three', [['a', 'b', 'c']], "'websocket.accept': headers must be [name, value] pairs of strings"],
  ['a pair of one', [['a']], "'websocket.accept': headers must be [name, value] pairs of strings"],
  ['a value that is a number', [['a', 1]], "'websocket.accept': headers must be [name, value] pairs of strings"],
  ['a name that is a Buffer', [[Buffer.from('a'), 'b']], "'websocket.accept': headers must be [name, value] pairs of strings"],
  ['a pair that is an object', [{ 0: 'a', 1: 'b', length: 2 }], "'websocket.accept': headers must be [name, value] pairs of strings"],
  ['an empty name', [['', 'b']], "'websocket.accept': invalid header name \"\""],
  ['a name with a space', [['bad name', 'b']], "'websocket.accept': invalid header name \"bad name\""],
  ['a name with a colon', [['a:b', 'c']], "'websocket.accept': invalid header name \"a:b\""],
  ['a name with CRLF', [['a\r\nb', 'c']], "'websocket.accept': invalid header name \"a\\r\\nb\""],
  ['a value with CR LF (response splitting)', [['x', 'a\r\nSet-Cookie: evil=1']], "'websocket.accept': invalid characters in the value of header x"],
  ['a value with a lone LF', [['x', 'a\nb']], "'websocket.accept': invalid characters in the value of header x"],
  ['a value with NUL', [['x', 'a\0b']], "'websocket.accept': invalid characters in the value of header x"],
  ['a value above latin1', [['x', 'snowman ☃']], "'websocket.accept': invalid characters in the value of header x"],
];

for (const [name, headers, message] of badHeaders) {
  test(`checkHeaders rejects ${name} with a TypeError naming the event`, () => {
    assert.throws(() => checkHeaders(headers as Headers, "'websocket.accept'"), (error: unknown) => {
      assert.ok(error instanceof TypeError);
      assert.equal(error.message, message);
      return true;
    });
  });
}

test('checkHeaders: the first bad pair is reported, after good ones', () => {
  assert.throws(() => checkHeaders([['ok', 'fine'], ['bad name', 'v'], ['x', '\n']], 'E'), { message: 'E: invalid header name "bad name"' });
});

// ---- plain responses -----------------------------------------------------------------------------

test('plainResponseHead: status line with the reason phrase, headers in order, Connection: close added', () => {
  assert.equal(
    plainResponseHead(418, [['Content-Type', 'text/plain'], ['X-Denied', 'teapot']]),
    "HTTP/1.1 418 I'm a Teapot\r\nContent-Type: text/plain\r\nX-Denied: teapot\r\nConnection: close\r\n\r\n",
  );
});

test('plainResponseHead: an app\'s own Connection header (any case) is kept and none added', () => {
  assert.equal(plainResponseHead(200, [['CONNECTION', 'keep-alive']]), 'HTTP/1.1 200 OK\r\nCONNECTION: keep-alive\r\n\r\n');
});

test('plainResponseHead: an unregistered status gets "Unknown"', () => {
  assert.equal(plainResponseHead(599, []), 'HTTP/1.1 599 Unknown\r\nConnection: close\r\n\r\n');
});

test('plainResponse: the message and a newline, with its Content-Type and Content-Length in bytes', () => {
  assert.equal(
    plainResponse(403, 'Forbidden'),
    'HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 10\r\nConnection: close\r\n\r\nForbidden\n',
  );
  // "é" is two bytes in UTF-8: the length counts bytes, not characters.
  assert.match(plainResponse(400, 'é'), /\r\nContent-Length: 3\r\n/);
});

test('plainResponse: extra headers come first, before the content headers', () => {
  assert.equal(
    plainResponse(426, 'unsupported', [['sec-websocket-version', '13']]),
    'HTTP/1.1 426 Upgrade Required\r\nsec-websocket-version: 13\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 12\r\n'
      + 'Connection: close\r\n\r\nunsupported\n',
  );
});
