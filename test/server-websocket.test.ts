// WebSocket connections through a real server process: the opening handshake (RFC 6455 §4.2),
// the ASGI WebSocket contract around it (accept, denial, close, disconnect, misuse), and Node's own
// WebSocket client against the echo fixture. Framing rules are in server-websocket-frames.test.ts.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startServer, fixture, type RunningServer } from './helpers/server.js';
import { acceptFor, connectRaw, httpOnce, newKey, Op, waitForProbe, type RawWebSocket } from './helpers/raw-ws.js';

/** No test may hang the run: each fails after this long, saying it timed out. */
const TIMEOUT = { timeout: 20_000 };

let probe: RunningServer;
let echo: RunningServer;
let counter = 0;
const nextId = (label: string) => `${label}-${++counter}`;

before(async () => {
  // Both start at once; each is assigned as soon as it is up, so `after` stops whichever started.
  const starting = [
    startServer({ args: ['--app', fixture('ws-probe.mjs')] }).then((s) => { probe = s; }),
    startServer({ args: ['--app', fixture('echo.mjs')] }).then((s) => { echo = s; }),
  ];
  const results = await Promise.allSettled(starting);
  for (const result of results) if (result.status === 'rejected') throw result.reason;
});

after(async () => {
  await Promise.all([probe?.stop(), echo?.stop()]);
});

interface Disconnect { code: number; reason: string }
interface After { receive: string[]; codes: number[]; send: { rejected: boolean; isError?: boolean; message?: string } }

/** Runs `fn` with the connection and always drops the socket afterwards. */
async function using<T>(ws: RawWebSocket, fn: (ws: RawWebSocket) => Promise<T>): Promise<T> {
  try {
    return await fn(ws);
  } finally {
    ws.destroy();
  }
}

function assertAccepted(ws: RawWebSocket): void {
  assert.equal(ws.status, 101, `expected 101 Switching Protocols, got ${ws.response.statusLine}`);
  assert.equal(ws.headers['upgrade']?.toLowerCase(), 'websocket', 'Upgrade: websocket');
  assert.match(ws.headers['connection'] ?? '', /\bupgrade\b/i, 'Connection: Upgrade');
  assert.equal(ws.headers['sec-websocket-accept'], acceptFor(ws.key), 'Sec-WebSocket-Accept');
}

/** After the app's disconnect: receive() keeps returning websocket.disconnect, send() rejects. */
function assertAfterDisconnect(afterReport: After, code: number): void {
  assert.deepEqual(afterReport.receive, ['websocket.disconnect', 'websocket.disconnect'], 'receive() after the disconnect');
  assert.deepEqual(afterReport.codes, [code, code], 'the code of every later websocket.disconnect');
  assert.equal(afterReport.send.rejected, true, 'send() after the disconnect must reject');
  assert.equal(afterReport.send.isError, true, 'send() must reject with an Error');
}

describe('opening handshake (RFC 6455 §4.2)', () => {
  test('the RFC sample key gets the RFC sample accept value', TIMEOUT, async () => {
    const ws = await connectRaw(probe.port, { path: `/echo?id=${nextId('sample')}`, key: 'dGhlIHNhbXBsZSBub25jZQ==' });
    await using(ws, async () => {
      assertAccepted(ws);
      assert.equal(ws.headers['sec-websocket-accept'], 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    });
  });

  test('a random key gets base64(SHA-1(key + GUID)), and the connection works', TIMEOUT, async () => {
    const key = newKey();
    const ws = await connectRaw(probe.port, { path: `/echo?id=${nextId('random')}`, key });
    await using(ws, async () => {
      assertAccepted(ws);
      await ws.sendText('ping?');
      const frame = await ws.nextFrame();
      assert.equal(frame.opcode, Op.TEXT);
      assert.equal(frame.payload.toString(), 'ping?');
    });
  });

  for (const [connection, upgrade] of [['keep-alive, Upgrade', 'websocket'], ['UPGRADE', 'WebSocket'], ['upgrade,keep-alive', 'websocket']]) {
    test(`accepts "Connection: ${connection}" with "Upgrade: ${upgrade}" (tokens are case-insensitive)`, TIMEOUT, async () => {
      const ws = await connectRaw(probe.port, { path: `/echo?id=${nextId('conn')}`, headers: { Connection: connection, Upgrade: upgrade } });
      await using(ws, async () => assertAccepted(ws));
    });
  }

  for (const version of ['8', '14', null]) {
    test(`answers 426 with "Sec-WebSocket-Version: 13" to version ${version ?? '(missing)'}`, TIMEOUT, async () => {
      const ws = await connectRaw(probe.port, { path: '/echo', headers: { 'Sec-WebSocket-Version': version } });
      await using(ws, async () => {
        assert.equal(ws.status, 426, ws.response.statusLine);
        assert.equal(ws.headers['sec-websocket-version'], '13');
      });
    });
  }

  const badKeys: Array<[string, string | null]> = [
    ['missing', null],
    ['not base64', 'this is not base64!'],
    ['15 bytes', Buffer.alloc(15, 1).toString('base64')],
    ['17 bytes', Buffer.alloc(17, 1).toString('base64')],
    ['empty', ''],
  ];
  for (const [name, key] of badKeys) {
    test(`answers 400 to a Sec-WebSocket-Key that is ${name}`, TIMEOUT, async () => {
      const headers: Record<string, string | null> = { 'Sec-WebSocket-Key': key };
      const ws = await connectRaw(probe.port, { path: '/echo', headers });
      await using(ws, async () => assert.equal(ws.status, 400, ws.response.statusLine));
    });
  }

  test('refuses a POST with 405 and "Allow: GET" (§4.2.1 item 1: the method must be GET)', TIMEOUT, async () => {
    const ws = await connectRaw(probe.port, { path: '/post-upgrade', method: 'POST', headers: { 'Content-Length': '0' } });
    await using(ws, async () => {
      assert.equal(ws.status, 405, ws.response.statusLine);
      assert.equal(ws.headers['allow'], 'GET');
      assert.equal(ws.response.body.toString(), 'a WebSocket handshake must be a GET request\n');
    });
  });

  // RFC 9110 §7.8: "A server MUST ignore an Upgrade header field that is received in an HTTP/1.0
  // request", and an Upgrade not named in Connection is not addressed to us: both are ordinary
  // HTTP requests, which the application answers in an `http` scope.
  test('an HTTP/1.0 request with "Upgrade: websocket" is served as plain HTTP by the app', TIMEOUT, async () => {
    const id = nextId('http10');
    const ws = await connectRaw(probe.port, { path: `/http10-upgrade?id=${id}`, httpVersion: 'HTTP/1.0' });
    await using(ws, async () => {
      assert.equal(ws.status, 200, ws.response.statusLine);
      assert.equal(ws.response.body.toString(), 'http /http10-upgrade');
      assert.equal(ws.headers['sec-websocket-accept'], undefined);
      assert.deepEqual(await waitForProbe(probe, id, 'http'), { method: 'GET', path: '/http10-upgrade' });
    });
  });

  test('"Upgrade: websocket" without "Connection: upgrade" is served as plain HTTP by the app', TIMEOUT, async () => {
    const id = nextId('no-conn-upgrade');
    const ws = await connectRaw(probe.port, { path: `/no-connection-upgrade?id=${id}`, headers: { Connection: 'keep-alive' } });
    await using(ws, async () => {
      assert.equal(ws.status, 200, ws.response.statusLine);
      assert.equal(ws.response.body.toString(), 'http /no-connection-upgrade');
      assert.deepEqual(await waitForProbe(probe, id, 'http'), { method: 'GET', path: '/no-connection-upgrade' });
    });
  });

  test('a non-websocket Upgrade (h2c) is served as plain HTTP by the app, and the connection closed', TIMEOUT, async () => {
    const id = nextId('h2c');
    const res = await httpOnce(
      probe.port,
      `GET /h2c?id=${id} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n`,
    );
    assert.equal(res.status, 200, res.statusLine);
    assert.equal(res.body.toString(), 'http /h2c', 'served as plain HTTP by the app');
    assert.equal(res.headers['connection'], 'close');
    assert.deepEqual(await waitForProbe(probe, id, 'http'), { method: 'GET', path: '/h2c' });
  });

  test('the 101 is written only when the app sends websocket.accept', TIMEOUT, async () => {
    const id = nextId('release');
    const pending = connectRaw(probe.port, { path: `/wait-release?id=${id}` });
    let settled = false;
    void pending.then(() => { settled = true; }, () => { settled = true; });
    // The app has the websocket.connect event and is holding the accept back.
    await waitForProbe(probe, id, 'waiting');
    assert.equal(settled, false, 'the handshake response came before the app accepted');
    const released = await httpOnce(probe.port, `GET /release?id=${id} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.equal(released.body.toString(), 'released');
    const ws = await pending;
    await using(ws, async () => {
      assertAccepted(ws);
      await ws.sendText('after release');
      assert.equal((await ws.nextFrame()).payload.toString(), 'after release');
    });
  });

  test('the 101 carries the subprotocol the app chose and its extra headers', TIMEOUT, async () => {
    const ws = await connectRaw(probe.port, { path: `/echo?id=${nextId('proto')}`, protocols: ['chat', 'superchat'] });
    await using(ws, async () => {
      assertAccepted(ws);
      assert.equal(ws.headers['sec-websocket-protocol'], 'chat');
      assert.equal(ws.headers['x-fixture'], 'ws-probe');
      assert.equal(ws.headers['set-cookie'], 'probe=1');
    });
  });

  test('no Sec-WebSocket-Protocol header when the client offered none', TIMEOUT, async () => {
    const ws = await connectRaw(probe.port, { path: `/echo?id=${nextId('noproto')}` });
    await using(ws, async () => {
      assertAccepted(ws);
      assert.equal(ws.headers['sec-websocket-protocol'], undefined);
    });
  });
});

describe('websocket scope and first event', () => {
  test('the scope has the ASGI websocket fields and websocket.connect comes first', TIMEOUT, async () => {
    const id = nextId('scope');
    const ws = await connectRaw(probe.port, {
      path: `/scope/caf%C3%A9%20ol%C3%A9?id=${id}&x=1`,
      protocols: ['p1', 'p2'],
      headers: { 'X-Custom-Header': 'Some Value' },
    });
    await using(ws, async () => {
      assertAccepted(ws);
      const frame = await ws.nextFrame();
      assert.equal(frame.opcode, Op.TEXT);
      const { first, scope } = JSON.parse(frame.payload.toString()) as { first: string; scope: Record<string, unknown> };
      assert.equal(first, 'websocket.connect');
      assert.equal(scope['type'], 'websocket');
      assert.deepEqual(scope['asgi'], { version: '3.0', spec_version: '2.3' });
      assert.equal(scope['http_version'], '1.1');
      assert.equal(scope['scheme'], 'ws');
      assert.equal(scope['path'], '/scope/café olé');
      assert.equal(scope['raw_path'], '/scope/caf%C3%A9%20ol%C3%A9');
      assert.equal(scope['query_string'], `id=${id}&x=1`);
      assert.equal(scope['root_path'], '');
      assert.deepEqual(scope['subprotocols'], ['p1', 'p2']);
      assert.deepEqual(scope['extensions'], { 'websocket.http.response': {} });
      assert.deepEqual(scope['client'], ['127.0.0.1', ws.socket.localPort]);
      assert.deepEqual(scope['server'], ['127.0.0.1', probe.port]);
      assert.equal(typeof scope['state'], 'object');
      const headers = scope['headers'] as Array<[string, string]>;
      for (const [name] of headers) assert.equal(name, name.toLowerCase(), `header name ${name} must be lower-case`);
      assert.deepEqual(headers.find(([name]) => name === 'x-custom-header'), ['x-custom-header', 'Some Value']);
      assert.deepEqual(headers.find(([name]) => name === 'sec-websocket-key'), ['sec-websocket-key', ws.key]);
      assert.deepEqual(headers.find(([name]) => name === 'sec-websocket-protocol'), ['sec-websocket-protocol', 'p1, p2']);
    });
  });
});

describe('before accept: denial (contract "WebSocket")', () => {
  test('websocket.close before accept gives HTTP 403', TIMEOUT, async () => {
    const ws = await connectRaw(probe.port, { path: `/close-before-accept?id=${nextId('cba')}` });
    await using(ws, async () => {
      assert.equal(ws.status, 403, ws.response.statusLine);
      assert.equal(ws.response.body.toString(), 'Forbidden\n');
    });
  });

  test('returning before accept gives HTTP 403', TIMEOUT, async () => {
    const ws = await connectRaw(probe.port, { path: `/return-before-accept?id=${nextId('rba')}` });
    await using(ws, async () => assert.equal(ws.status, 403, ws.response.statusLine));
  });

  test('an exception before accept gives HTTP 500', TIMEOUT, async () => {
    const ws = await connectRaw(probe.port, { path: `/throw-before-accept?id=${nextId('tba')}` });
    await using(ws, async () => {
      assert.equal(ws.status, 500, ws.response.statusLine);
      assert.equal(ws.response.body.toString(), 'Internal Server Error\n');
    });
  });

  test('websocket.http.response.start/body give that status, headers and body', TIMEOUT, async () => {
    const ws = await connectRaw(probe.port, { path: `/deny?id=${nextId('deny')}` });
    await using(ws, async () => {
      assert.equal(ws.status, 418, ws.response.statusLine);
      assert.equal(ws.headers['x-denied'], 'teapot');
      assert.equal(ws.headers['content-type'], 'text/plain');
      assert.equal(ws.headers['sec-websocket-accept'], undefined, 'a denial is not a handshake');
      assert.equal(ws.response.complete, true, 'the whole denial body arrived');
      assert.equal(ws.response.body.toString(), 'not a websocket');
    });
  });

  test('websocket.send before websocket.accept is refused with an error naming expected and actual', TIMEOUT, async () => {
    const id = nextId('misuse');
    const ws = await connectRaw(probe.port, { path: `/send-before-accept?id=${id}` });
    await using(ws, async () => {
      const misuse = await waitForProbe<{ rejected: boolean; isError?: boolean; message?: string }>(probe, id, 'misuse');
      assert.equal(misuse.rejected, true, 'send() must reject');
      assert.equal(misuse.isError, true, 'with an Error');
      assert.match(misuse.message ?? '', /websocket\.accept/, 'the message names what was expected');
      assert.match(misuse.message ?? '', /websocket\.send/, 'the message names what came');
      // The app caught the error and returned without accepting: 403, as for any return before accept.
      assert.equal(ws.status, 403, ws.response.statusLine);
    });
  });
});

describe('after accept (contract "WebSocket")', () => {
  test('an exception in the app closes with 1011', TIMEOUT, async () => {
    const ws = await connectRaw(probe.port, { path: `/throw-after-accept?id=${nextId('taa')}` });
    await using(ws, async () => {
      assertAccepted(ws);
      const close = await ws.waitClose();
      assert.equal(close.code, 1011);
      await ws.sendClose(1011);
      await ws.waitEnd();
    });
  });

  test('the app returning without websocket.close closes with 1000', TIMEOUT, async () => {
    const ws = await connectRaw(probe.port, { path: `/return-after-accept?id=${nextId('raa')}` });
    await using(ws, async () => {
      assertAccepted(ws);
      const close = await ws.waitClose();
      assert.equal(close.code, 1000);
      await ws.sendClose(1000);
      await ws.waitEnd();
    });
  });

  test('websocket.close from the app sends its code and reason; the app then sees the disconnect', TIMEOUT, async () => {
    const id = nextId('srvclose');
    const ws = await connectRaw(probe.port, { path: `/server-close?id=${id}` });
    await using(ws, async () => {
      assertAccepted(ws);
      const close = await ws.waitClose();
      assert.equal(close.code, 4000);
      assert.equal(close.reason, 'custom');
      assert.equal(close.frame.masked, false);
      await ws.sendClose(4000, 'custom');
      await ws.waitEnd();
      const seen = await waitForProbe<{ type: string }>(probe, id, 'after-server-close');
      assert.equal(seen.type, 'websocket.disconnect');
    });
  });

  test('a client close 1000 "bye": the server echoes the close, ends TCP, the app sees {1000, "bye"}', TIMEOUT, async () => {
    const id = nextId('bye');
    const ws = await connectRaw(probe.port, { path: `/echo?id=${id}` });
    await using(ws, async () => {
      assertAccepted(ws);
      await ws.sendClose(1000, 'bye');
      const close = await ws.waitClose();
      assert.equal(close.code, 1000);
      await ws.waitEnd();
      assert.deepEqual(await waitForProbe<Disconnect>(probe, id, 'disconnect'), { code: 1000, reason: 'bye' });
      assertAfterDisconnect(await waitForProbe<After>(probe, id, 'after'), 1000);
    });
  });

  test('a close frame without a payload gives the app code 1005', TIMEOUT, async () => {
    const id = nextId('empty-close');
    const ws = await connectRaw(probe.port, { path: `/echo?id=${id}` });
    await using(ws, async () => {
      assertAccepted(ws);
      await ws.sendClose();
      const close = await ws.waitClose();
      assert.notEqual(close.code, 1005, '1005 must never be sent on the wire (§7.4.1)');
      await ws.waitEnd();
      assert.deepEqual(await waitForProbe<Disconnect>(probe, id, 'disconnect'), { code: 1005, reason: '' });
    });
  });

  test('a dropped TCP connection gives the app 1006; then receive() repeats it and send() rejects', TIMEOUT, async () => {
    const id = nextId('drop');
    const ws = await connectRaw(probe.port, { path: `/echo?id=${id}` });
    assertAccepted(ws);
    await ws.sendText('hello');
    assert.equal((await ws.nextFrame()).payload.toString(), 'hello');
    ws.destroy();
    assert.deepEqual(await waitForProbe<Disconnect>(probe, id, 'disconnect'), { code: 1006, reason: '' });
    assertAfterDisconnect(await waitForProbe<After>(probe, id, 'after'), 1006);
  });

  test('a client that half-closes (FIN) without a close frame is disconnected with 1006', TIMEOUT, async () => {
    const id = nextId('fin');
    const ws = await connectRaw(probe.port, { path: `/echo?id=${id}` });
    await using(ws, async () => {
      assertAccepted(ws);
      ws.socket.end();
      await ws.waitEnd(5000);
      assert.deepEqual(await waitForProbe<Disconnect>(probe, id, 'disconnect'), { code: 1006, reason: '' });
    });
  });
});

describe('defaults', () => {
  test('--ws-max-size defaults to 1 MiB: 1048576 bytes pass, 1048577 close with 1009', TIMEOUT, async () => {
    const ws = await connectRaw(echo.port, { path: '/' });
    await using(ws, async () => {
      assertAccepted(ws);
      const max = Buffer.alloc(1_048_576, 0x42);
      await ws.sendBinary(max);
      const frame = await ws.nextFrame();
      assert.equal(frame.opcode, Op.BINARY);
      assert.equal(frame.payload.length, max.length);
      await ws.sendBinary(Buffer.alloc(1_048_577, 0x43));
      const close = await ws.waitClose();
      assert.equal(close.code, 1009);
    });
  });
});

// ---- Node's own WebSocket client (global WebSocket, --experimental-websocket on Node 20) --------

/** The little of the WHATWG WebSocket that these tests use (@types/node 20 does not declare it). */
interface WebSocketLike {
  readonly protocol: string;
  readonly readyState: number;
  binaryType: 'blob' | 'arraybuffer';
  send(data: string | ArrayBufferView | ArrayBuffer): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (event: { data?: unknown; code?: number; reason?: string }) => void): void;
}
type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** Opens a Node WebSocket and queues its messages, so none is missed between awaits. */
async function nodeClient(url: string, protocols?: string[]) {
  const Ctor = (globalThis as unknown as { WebSocket?: WebSocketConstructor }).WebSocket;
  assert.ok(Ctor, 'global WebSocket is missing: run node with --experimental-websocket');
  const ws = new Ctor(url, protocols);
  ws.binaryType = 'arraybuffer';
  const messages: unknown[] = [];
  const waiters: Array<() => void> = [];
  const wake = () => { for (const w of waiters.splice(0)) w(); };
  let closed: { code: number; reason: string } | null = null;
  ws.addEventListener('message', (event) => { messages.push(event.data); wake(); });
  ws.addEventListener('close', (event) => { closed = { code: event.code ?? -1, reason: event.reason ?? '' }; wake(); });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`WebSocket to ${url} did not open within 5 s`)), 5000);
    ws.addEventListener('open', () => { clearTimeout(timer); resolve(); });
    ws.addEventListener('error', () => { clearTimeout(timer); reject(new Error(`WebSocket to ${url} failed to open`)); });
  });
  const waitFor = async <T>(get: () => T | undefined, what: string): Promise<T> => {
    const deadline = Date.now() + 5000;
    for (;;) {
      const value = get();
      if (value !== undefined) return value;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => { const t = setTimeout(resolve, left); waiters.push(() => { clearTimeout(t); resolve(); }); });
    }
  };
  return {
    ws,
    next: () => waitFor(() => (messages.length > 0 ? messages.shift() : undefined), 'a message'),
    closed: () => waitFor(() => closed ?? undefined, 'the close event'),
  };
}

describe("Node's WebSocket client against the echo fixture", () => {
  test('text round trip', TIMEOUT, async () => {
    const client = await nodeClient(`${echo.wsUrl}/`);
    try {
      for (const text of ['hello', '', 'ünïcödé ✓ 😀', 'x'.repeat(10_000)]) {
        client.ws.send(text);
        assert.equal(await client.next(), text);
      }
    } finally {
      client.ws.close();
    }
  });

  test('binary round trip', TIMEOUT, async () => {
    const client = await nodeClient(`${echo.wsUrl}/`);
    try {
      const bytes = Uint8Array.from({ length: 300 }, (_, i) => (i * 7) & 0xff);
      client.ws.send(bytes);
      const got = await client.next();
      assert.ok(got instanceof ArrayBuffer, `expected binary data, got ${typeof got}`);
      assert.deepEqual(new Uint8Array(got), bytes);
    } finally {
      client.ws.close();
    }
  });

  test('a subprotocol is negotiated', TIMEOUT, async () => {
    const client = await nodeClient(`${echo.wsUrl}/`, ['chat.v2', 'chat.v1']);
    try {
      assert.equal(client.ws.protocol, 'chat.v2');
    } finally {
      client.ws.close();
    }
  });

  test('a clean close completes with the client code echoed', TIMEOUT, async () => {
    const client = await nodeClient(`${echo.wsUrl}/`);
    client.ws.close(1000, 'done');
    assert.equal((await client.closed()).code, 1000);
  });
});
