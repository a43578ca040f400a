// HTTP/1.1 through a real server process and raw sockets: the ASGI http scope, request bodies in
// several http.request events, response framing (content-length, chunked, close-delimited), HEAD,
// keep-alive and pipelining, and what happens when the app fails, leaves early or sends too much
// (test/fixtures/http-probe.mjs reports what the app saw).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startServer, fixture, type RunningServer } from './helpers/server.js';
import { httpOnce, openHttp, waitForProbe, type HttpResponse } from './helpers/raw-ws.js';

/** No test may hang the run: each fails after this long, saying it timed out. */
const TIMEOUT = { timeout: 20_000 };

const ROOT_PATH = '/api';

let server: RunningServer;
let counter = 0;
const nextId = (label: string) => `${label}-${++counter}`;

before(async () => {
  server = await startServer({ args: ['--app', fixture('http-probe.mjs'), '--root-path', ROOT_PATH] });
});

after(async () => {
  await server?.stop();
});

const get = (target: string, extra = '') => `GET ${target} HTTP/1.1\r\nHost: test\r\n${extra}\r\n`;

interface ScopeReply {
  scope: Record<string, unknown>;
  events: Array<{ type: string; length: number | null; more_body?: boolean }>;
}

function json<T>(res: HttpResponse): T {
  assert.equal(res.status, 200, `${res.statusLine}: ${res.body.toString().slice(0, 200)}`);
  return JSON.parse(res.body.toString()) as T;
}

/** Sends trouble-free requests until the server answers, to show it survived the previous one. */
async function assertStillServing(): Promise<void> {
  const res = await httpOnce(server.port, get('/fixed', 'Connection: close\r\n'));
  assert.equal(res.status, 200);
  assert.equal(res.body.toString(), 'hello');
}

describe('http scope', () => {
  test('has the ASGI http fields (HTTP/1.1)', TIMEOUT, async () => {
    const conn = await openHttp(server.port);
    try {
      await conn.write(get('/scope/caf%C3%A9%20x?a=1&b=%20&c', 'X-Custom-Header: Some Value\r\nX-UPPER: Up\r\n'));
      const { scope, events } = json<ScopeReply>(await conn.readResponse());
      assert.equal(scope['type'], 'http');
      assert.deepEqual(scope['asgi'], { version: '3.0', spec_version: '2.3' });
      assert.equal(scope['http_version'], '1.1');
      assert.equal(scope['method'], 'GET');
      assert.equal(scope['scheme'], 'http');
      // ASGI leaves open whether `path` carries root_path in front (uvicorn puts it there): both forms
      // are accepted, each exactly.
      assert.ok(['/scope/café x', `${ROOT_PATH}/scope/café x`].includes(scope['path'] as string), `path percent-decoded: got ${JSON.stringify(scope['path'])}`);
      assert.equal(scope['raw_path'], '/scope/caf%C3%A9%20x');
      assert.equal(scope['query_string'], 'a=1&b=%20&c');
      assert.equal(scope['root_path'], ROOT_PATH);
      assert.deepEqual(scope['client'], ['127.0.0.1', conn.socket.localPort]);
      assert.deepEqual(scope['server'], ['127.0.0.1', server.port]);
      assert.equal(typeof scope['state'], 'object');
      const headers = scope['headers'] as Array<[string, string]>;
      for (const [name] of headers) assert.equal(name, name.toLowerCase(), `header name ${name} must be lower-case`);
      assert.deepEqual(headers.find(([name]) => name === 'x-custom-header'), ['x-custom-header', 'Some Value']);
      assert.deepEqual(headers.find(([name]) => name === 'x-upper'), ['x-upper', 'Up']);
      assert.deepEqual(headers.find(([name]) => name === 'host'), ['host', 'test']);
      // A GET without a body still gets exactly one http.request, with more_body false.
      assert.deepEqual(events, [{ type: 'http.request', length: 0, more_body: false }]);
    } finally {
      conn.close();
    }
  });

  test('http_version is "1.0" for an HTTP/1.0 request, and the method is passed through', TIMEOUT, async () => {
    const res = await httpOnce(server.port, 'DELETE /scope/x HTTP/1.0\r\nHost: test\r\n\r\n');
    const { scope } = json<ScopeReply>(res);
    assert.equal(scope['http_version'], '1.0');
    assert.equal(scope['method'], 'DELETE');
    assert.equal(scope['query_string'], '');
  });

  test('a percent-encoded non-ASCII path and a query with "?" in it', TIMEOUT, async () => {
    const res = await httpOnce(server.port, get('/scope/%E2%9C%93/a%2Fb?q=%3F?x', 'Connection: close\r\n'));
    const { scope } = json<ScopeReply>(res);
    assert.ok(['/scope/✓/a/b', `${ROOT_PATH}/scope/✓/a/b`].includes(scope['path'] as string), `got ${JSON.stringify(scope['path'])}`);
    assert.equal(scope['raw_path'], '/scope/%E2%9C%93/a%2Fb');
    assert.equal(scope['query_string'], 'q=%3F?x');
  });
});

describe('request body (contract: "one or more http.request events")', () => {
  test('a content-length body arrives whole, the last event with more_body false', TIMEOUT, async () => {
    const body = 'x'.repeat(100_000);
    const res = await httpOnce(server.port, `POST /scope HTTP/1.1\r\nHost: test\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
    const { events } = json<ScopeReply>(res);
    assert.ok(events.length >= 1);
    assert.equal(events.reduce((n, e) => n + (e.length ?? 0), 0), body.length, 'every byte arrives');
    assert.ok(events.every((e) => e.type === 'http.request'));
    assert.ok(events.slice(0, -1).every((e) => e.more_body === true), 'all but the last have more_body true');
    assert.equal(events.at(-1)!.more_body, false);
  });

  test('a chunked body sent in pieces arrives as several events, streamed while it comes', TIMEOUT, async () => {
    const conn = await openHttp(server.port);
    try {
      await conn.write('POST /body-events HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n');
      await conn.write('5\r\nhello\r\n');
      // Each line of the (chunked) response is the app's answer to one http.request event: waiting
      // for it before sending more proves the app got the piece while the body was still coming.
      await waitForText(conn, '5 true\n');
      await conn.write('6\r\n world\r\n');
      await waitForText(conn, '6 true\n');
      await conn.write('0\r\n\r\n');
      const res = await conn.readResponse();
      assert.equal(res.status, 200);
      const lines = res.body.toString().trim().split('\n');
      assert.deepEqual(lines.slice(0, 2), ['5 true', '6 true']);
      assert.match(lines.at(-2)!, /^\d+ false$/, 'the last http.request has more_body false');
      assert.equal(lines.at(-1), 'total=hello world');
    } finally {
      conn.close();
    }
  });

  test('a content-length body sent in two pieces arrives in several events, streamed while it comes', TIMEOUT, async () => {
    const conn = await openHttp(server.port);
    try {
      await conn.write('POST /body-events HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nfirst');
      await waitForText(conn, '5 true\n');
      await conn.write('-last');
      const res = await conn.readResponse();
      const lines = res.body.toString().trim().split('\n');
      assert.equal(lines[0], '5 true', 'the first piece came alone, before the rest was sent');
      // The second piece may come with more_body false, or with true followed by an empty last event.
      assert.ok(
        ['5 false', '5 true,0 false'].includes(lines.slice(1, -1).join(',')),
        `then the rest, the last event with more_body false: ${JSON.stringify(lines)}`,
      );
      assert.equal(lines.at(-1), 'total=first-last');
    } finally {
      conn.close();
    }
  });
});

/** Waits until the bytes received so far contain `text` (without consuming them). */
async function waitForText(conn: Awaited<ReturnType<typeof openHttp>>, text: string): Promise<void> {
  await conn.reader.read((buf) => (buf.includes(text) ? { value: undefined, used: 0 } : null), 5000, JSON.stringify(text));
}

describe('response framing', () => {
  test('no content-length from the app on HTTP/1.1: chunked, empty body events sent as nothing', TIMEOUT, async () => {
    const res = await httpOnce(server.port, get('/stream', 'Connection: close\r\n'));
    assert.equal(res.status, 200);
    assert.equal(res.headers['transfer-encoding']?.toLowerCase(), 'chunked');
    assert.equal(res.headers['content-length'], undefined);
    assert.equal(res.framing, 'chunked');
    assert.equal(res.complete, true);
    assert.equal(res.body.toString(), 'abc', 'the empty http.response.body must not end the chunked body early');
    assert.ok(res.rawBody.toString().endsWith('0\r\n\r\n'));
    assert.equal(res.rawBody.toString().match(/(^|\n)0\r\n/g)?.length, 1, 'exactly one last-chunk');
  });

  test('no content-length from the app on HTTP/1.0: close-delimited, not chunked', TIMEOUT, async () => {
    const conn = await openHttp(server.port);
    try {
      await conn.write('GET /stream HTTP/1.0\r\nHost: test\r\n\r\n');
      const raw = await conn.reader.readToEnd(5000);
      const text = raw.toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      assert.ok(split > 0, `a full head: ${text}`);
      const head = text.slice(0, split).toLowerCase();
      assert.match(head, /^http\/1\.[01] 200 /);
      assert.doesNotMatch(head, /transfer-encoding/);
      assert.equal(text.slice(split + 4), 'abc', 'the raw body, ended by closing the connection');
    } finally {
      conn.close();
    }
  });

  test('the app\'s content-length is kept and the body is sent as is', TIMEOUT, async () => {
    const res = await httpOnce(server.port, get('/fixed', 'Connection: close\r\n'));
    assert.equal(res.headers['content-length'], '5');
    assert.equal(res.headers['transfer-encoding'], undefined);
    assert.equal(res.body.toString(), 'hello');
  });

  test('HEAD gets the headers and no body, and the connection stays usable', TIMEOUT, async () => {
    const conn = await openHttp(server.port);
    try {
      await conn.write('HEAD /fixed HTTP/1.1\r\nHost: test\r\n\r\n');
      const head = await conn.readResponse(5000, 'HEAD');
      assert.equal(head.status, 200);
      assert.equal(head.headers['content-length'], '5');
      // If the server had sent the body after the HEAD response, it would show up here first.
      await conn.write(get('/echo-path?n=after-head'));
      const next = await conn.readResponse();
      assert.equal(next.statusLine.slice(0, 12), 'HTTP/1.1 200', `the next response starts right after the HEAD head: ${next.statusLine}`);
      assert.equal(next.body.toString(), '/echo-path?n=after-head');
    } finally {
      conn.close();
    }
  });
});

describe('connections', () => {
  test('keep-alive: several requests on one connection', TIMEOUT, async () => {
    const conn = await openHttp(server.port);
    try {
      for (const n of [1, 2, 3]) {
        await conn.write(get(`/echo-path?n=${n}`));
        const res = await conn.readResponse();
        assert.equal(res.status, 200);
        assert.equal(res.body.toString(), `/echo-path?n=${n}`);
      }
      assert.equal(conn.reader.ended, false, 'the server keeps an HTTP/1.1 connection open');
    } finally {
      conn.close();
    }
  });

  test('pipelining: two requests written at once get two responses, in request order', TIMEOUT, async () => {
    const conn = await openHttp(server.port);
    try {
      // The first is slower: a server that answered in completion order would swap them.
      await conn.write(get('/echo-path?n=1&delay=150') + get('/echo-path?n=2'));
      const first = await conn.readResponse();
      const second = await conn.readResponse();
      assert.equal(first.body.toString(), '/echo-path?n=1&delay=150');
      assert.equal(second.body.toString(), '/echo-path?n=2');
    } finally {
      conn.close();
    }
  });

  // --timeout-keep-alive 0 closes an idle connection at once (uvicorn's meaning), where node's own
  // keepAliveTimeout 0 would keep it open for ever.
  test('--timeout-keep-alive 0: the response says "Connection: close" and the server ends the connection', TIMEOUT, async () => {
    const noKeepAlive = await startServer({ args: ['--app', fixture('http-probe.mjs'), '--timeout-keep-alive', '0'] });
    try {
      const conn = await openHttp(noKeepAlive.port);
      try {
        await conn.write(get('/fixed'));
        const res = await conn.readResponse();
        assert.equal(res.body.toString(), 'hello');
        assert.equal(res.headers['connection'], 'close');
        await conn.reader.waitEnd(3000, 'the server to end the connection right after the response');
        // A second request on the same connection finds it closed: nothing comes back.
        await conn.write(get('/fixed'));
        await conn.reader.waitClosed(3000);
        assert.equal(conn.reader.buffered.length, 0, 'no second response');
      } finally {
        conn.close();
      }
    } finally {
      await noKeepAlive.stop();
    }
  });

  test('"Connection: close" ends the connection after the response', TIMEOUT, async () => {
    const conn = await openHttp(server.port);
    try {
      await conn.write(get('/fixed', 'Connection: close\r\n'));
      assert.equal((await conn.readResponse()).body.toString(), 'hello');
      await conn.reader.waitEnd(5000);
    } finally {
      conn.close();
    }
  });
});

describe('app failures (contract: 500 before start, truncated after)', () => {
  for (const route of ['/throw-before-start', '/return-before-start']) {
    test(`${route}: the client gets a 500`, TIMEOUT, async () => {
      const res = await httpOnce(server.port, get(route, 'Connection: close\r\n'));
      assert.equal(res.status, 500);
      await assertStillServing();
    });
  }

  for (const route of ['/throw-after-start', '/return-after-start']) {
    test(`${route} with a content-length: truncated, connection closed, no 500 appended`, TIMEOUT, async () => {
      const conn = await openHttp(server.port);
      try {
        await conn.write(get(`${route}?cl=1`));
        const raw = await conn.reader.readToEnd(5000);
        const text = raw.toString('latin1');
        assert.match(text, /^HTTP\/1\.1 200 /);
        assert.match(text, /content-length: 100\r\n/i);
        assert.ok(text.endsWith('\r\n\r\npartial'), `exactly the bytes the app sent, then the end: ${JSON.stringify(text.slice(-60))}`);
        assert.equal(text.match(/HTTP\/1\.[01] /g)?.length, 1, 'no second response (500) after the first');
      } finally {
        conn.close();
      }
      await assertStillServing();
    });

    test(`${route} while chunked: no last-chunk, connection closed, no 500 appended`, TIMEOUT, async () => {
      const conn = await openHttp(server.port);
      try {
        await conn.write(get(route));
        const raw = await conn.reader.readToEnd(5000);
        const text = raw.toString('latin1');
        assert.match(text, /^HTTP\/1\.1 200 /);
        assert.match(text, /transfer-encoding: chunked\r\n/i);
        assert.ok(text.endsWith('\r\n\r\n7\r\npartial\r\n'), `the chunk the app sent and no last-chunk: ${JSON.stringify(text.slice(-60))}`);
        assert.equal(text.match(/HTTP\/1\.[01] /g)?.length, 1, 'no second response (500) after the first');
      } finally {
        conn.close();
      }
      await assertStillServing();
    });
  }
});

describe('disconnects and late sends (contract: http.disconnect, send rejects)', () => {
  interface SendResult { rejected: boolean; isError?: boolean; message?: string }

  test('http.disconnect is delivered when the client leaves during a long response', TIMEOUT, async () => {
    const id = nextId('long');
    const conn = await openHttp(server.port);
    await conn.write(get(`/long?id=${id}`));
    await waitForText(conn, 'tick\n');
    conn.close();
    const seen = await waitForProbe<{ event: string; after: SendResult }>(server, id, 'long', 8000);
    assert.equal(seen.event, 'http.disconnect');
    assert.equal(seen.after.rejected, true, 'send() after the client left rejects');
    assert.equal(seen.after.isError, true, 'with an Error');
  });

  test('http.disconnect is delivered to an app waiting in receive() before responding', TIMEOUT, async () => {
    const id = nextId('wait');
    const conn = await openHttp(server.port);
    await conn.write(get(`/wait-disconnect?id=${id}`));
    await waitForProbe(server, id, 'waiting');
    conn.close();
    const seen = await waitForProbe<{ event: string; after: SendResult }>(server, id, 'wait-disconnect');
    assert.equal(seen.event, 'http.disconnect');
    assert.equal(seen.after.rejected, true, 'http.response.start after the client left rejects');
    assert.equal(seen.after.isError, true);
  });

  test('send after the response completed rejects with an Error', TIMEOUT, async () => {
    const id = nextId('complete');
    const res = await httpOnce(server.port, get(`/after-complete?id=${id}`));
    assert.equal(res.body.toString(), 'complete');
    const seen = await waitForProbe<{ body: SendResult; start: SendResult }>(server, id, 'after-complete');
    assert.equal(seen.body.rejected, true, 'http.response.body after the final body rejects');
    assert.equal(seen.body.isError, true);
    assert.equal(seen.start.rejected, true, 'a second http.response.start rejects');
    assert.equal(seen.start.isError, true);
  });
});
