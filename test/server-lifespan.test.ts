// The lifespan protocol through real server processes: startup before serving, `state` copied into
// each request, apps without lifespan support and failed startups under --lifespan auto, on and
// off, and graceful shutdown on SIGTERM (WebSockets closed with 1001, in-flight requests finished,
// lifespan.shutdown, exit 0, bounded by --timeout-graceful-shutdown, and not waiting for a
// lifespan function that has already returned).
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startServer, runMain, fixture, type RunningServer } from './helpers/server.js';
import { connectRaw, httpOnce, openHttp, waitForOutput, waitForProbe } from './helpers/raw-ws.js';

/** No test may hang the run: each fails after this long, saying it timed out. */
const TIMEOUT = { timeout: 20_000 };

const get = (target: string) => `GET ${target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n`;

/** A log line as logger.ts writes it: `LEVEL:    [pid] message`. */
const logLine = (level: string, message: string) => new RegExp(`^${level}: +\\[\\d+\\] ${message}`, 'm');

describe('startup and state (http-probe.mjs: a 300 ms startup that fills state)', () => {
  let server: RunningServer;

  before(async () => {
    server = await startServer({ args: ['--app', fixture('http-probe.mjs')] });
  });

  after(async () => {
    await server?.stop();
  });

  test('startup completes before the port is served', TIMEOUT, async () => {
    const out = server.output();
    const started = out.indexOf('PROBE - startup-complete');
    const listening = out.indexOf('listening on');
    assert.ok(started >= 0, `the app reported its startup:\n${out}`);
    assert.ok(started < listening, `startup.complete must come before "listening on":\n${out}`);
    // The very first request already sees what startup put in state.
    const res = await httpOnce(server.port, get('/state'));
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.body.toString()), { ready: 'yes', counter: 1 });
  });

  test('each request gets a shallow copy of state: changes in one do not reach the next', TIMEOUT, async () => {
    const first = await httpOnce(server.port, get('/state?mutate=1'));
    assert.deepEqual(JSON.parse(first.body.toString()), { ready: 'yes', counter: 1 });
    const second = await httpOnce(server.port, get('/state'));
    assert.deepEqual(JSON.parse(second.body.toString()), { ready: 'yes', counter: 1 });
  });

  test('SIGTERM finishes an in-flight request, runs lifespan.shutdown and exits 0', TIMEOUT, async () => {
    const conn = await openHttp(server.port);
    try {
      await conn.write(get('/echo-path?id=inflight&delay=500'));
      // SIGTERM only once the request is in the app's hands.
      await waitForProbe(server, 'inflight', 'received');
      server.proc.kill('SIGTERM');
      const res = await conn.readResponse(5000);
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), '/echo-path?id=inflight&delay=500');
      await waitForProbe(server, '-', 'shutdown');
      assert.equal(await server.exited, 0);
    } finally {
      conn.close();
    }
  });
});

describe('apps without lifespan or with a failing startup (--lifespan auto, on, off)', () => {
  test('auto: an app that raises on the lifespan scope before receiving is served; one info line says why', TIMEOUT, async () => {
    const server = await startServer({ args: ['--app', fixture('lifespan-unsupported.mjs')] });
    try {
      const res = await httpOnce(server.port, get('/'));
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), 'served without lifespan');
      await waitForOutput(server, /appears unsupported/); // stderr may be read after stdout
      const lines = server.output().split('\n').filter((line) => /lifespan/i.test(line));
      assert.equal(lines.length, 1, `exactly one line says lifespan is not supported:\n${server.output()}`);
      assert.match(lines[0]!, logLine('INFO', "ASGI 'lifespan' protocol appears unsupported \\(Error: lifespan-unsupported: this app has no lifespan support\\); serving without it$"));
      assert.doesNotMatch(server.output(), /^\s+at /m, 'no stack trace');
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });

  test('on: the same app is fatal: the exception is logged with its stack, nothing is served, exit 3', TIMEOUT, async () => {
    const run = await runMain(['--app', fixture('lifespan-unsupported.mjs'), '--lifespan', 'on', '--port', '0', '--host', '127.0.0.1']);
    const output = run.stdout + run.stderr;
    assert.equal(run.code, 3, `exit code 3 expected; output:\n${output}`);
    assert.match(output, logLine('ERROR', "Exception in 'lifespan' protocol \\(--lifespan on requires lifespan support\\)\nError: lifespan-unsupported: this app has no lifespan support\n +at "));
    assert.match(output, logLine('ERROR', 'Application startup failed: lifespan-unsupported: this app has no lifespan support$'));
    assert.doesNotMatch(output, /listening on/);
  });

  for (const mode of ['auto', 'on']) {
    test(`${mode}: lifespan.startup.failed: the message is printed, nothing is served, exit code 3`, TIMEOUT, async () => {
      const run = await runMain(['--app', fixture('lifespan-startup-failed.mjs'), '--lifespan', mode, '--port', '0', '--host', '127.0.0.1']);
      const output = run.stdout + run.stderr;
      assert.equal(run.code, 3, `exit code 3 expected; output:\n${output}`);
      assert.match(output, logLine('ERROR', 'Application startup failed: fixture: database unreachable$'));
      assert.doesNotMatch(output, /listening on/);
    });
  }

  test('auto: an exception after lifespan.startup is logged with its stack at error level, and the app is served', TIMEOUT, async () => {
    const server = await startServer({ args: ['--app', fixture('lifespan-startup-throws.mjs')] });
    try {
      // stderr and stdout are separate pipes: the log line may be read after "listening on".
      await waitForOutput(server, logLine('ERROR', "Exception in 'lifespan' startup; serving without lifespan \\(--lifespan on makes this fatal\\)\nError: fixture: startup exploded\n +at "));
      const res = await httpOnce(server.port, get('/'));
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), 'served anyway');
    } finally {
      // Without lifespan there is no lifespan.shutdown to wait for.
      assert.equal(await server.stop(), 0);
    }
  });

  test('on: an exception after lifespan.startup is logged with its stack, nothing is served, exit 3', TIMEOUT, async () => {
    const run = await runMain(['--app', fixture('lifespan-startup-throws.mjs'), '--lifespan', 'on', '--port', '0', '--host', '127.0.0.1']);
    const output = run.stdout + run.stderr;
    assert.equal(run.code, 3, `exit code 3 expected; output:\n${output}`);
    assert.match(output, logLine('ERROR', "Exception in 'lifespan' startup\nError: fixture: startup exploded\n +at "));
    assert.match(output, logLine('ERROR', 'Application startup failed: fixture: startup exploded$'));
    assert.doesNotMatch(output, /listening on/);
  });

  test('off: the lifespan scope never runs: no startup, empty state, no shutdown', TIMEOUT, async () => {
    const server = await startServer({ args: ['--app', fixture('http-probe.mjs'), '--lifespan', 'off'] });
    try {
      const res = await httpOnce(server.port, get('/state'));
      assert.equal(res.status, 200);
      assert.deepEqual(JSON.parse(res.body.toString()), {});
    } finally {
      assert.equal(await server.stop(), 0);
    }
    // The process has exited: everything it would ever print is in the output.
    assert.doesNotMatch(server.output(), /PROBE - (startup-complete|shutdown)/);
    assert.doesNotMatch(server.output(), /lifespan/i);
  });
});

describe('graceful shutdown', () => {
  test('SIGTERM: open WebSockets get close 1001, lifespan.shutdown runs, exit 0 before the grace period runs out', TIMEOUT, async () => {
    // Whether shutdown beat its deadline is read from the server's own log, which warns when the
    // deadline passes, not from a clock in the test (a busy machine would make that flaky).
    const server = await startServer({ args: ['--app', fixture('echo.mjs'), '--timeout-graceful-shutdown', '10'] });
    const ws = await connectRaw(server.port, { path: '/' });
    try {
      assert.equal(ws.status, 101);
      await ws.sendText('before shutdown');
      assert.equal((await ws.nextFrame()).payload.toString(), 'before shutdown');
      server.proc.kill('SIGTERM');
      const close = await ws.waitClose(5000);
      // The contract allows 1001 "going away" or 1012 as uvicorn sends; this server sends 1001
      // (asgi-websocket.ts, WebSocketSession.shutdown), with its reason.
      assert.equal(close.code, 1001);
      assert.equal(close.reason, 'server shutting down');
      await ws.sendClose(1001);
      assert.equal(await server.exited, 0, `exit 0 expected; output:\n${server.output()}`);
      assert.doesNotMatch(server.output(), /timed out/, 'finished before --timeout-graceful-shutdown ran out');
      assert.match(server.output(), /ECHO lifespan\.shutdown/, 'lifespan.shutdown ran');
    } finally {
      ws.destroy();
      await server.stop('SIGKILL');
    }
  });

  test('SIGINT shuts down gracefully too: lifespan.shutdown runs, exit 0', TIMEOUT, async () => {
    const server = await startServer({ args: ['--app', fixture('echo.mjs')] });
    try {
      const res = await httpOnce(server.port, 'POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi');
      assert.equal(res.body.toString(), 'hi');
      assert.equal(await server.stop('SIGINT'), 0);
      assert.match(server.output(), /ECHO lifespan\.shutdown/);
    } finally {
      await server.stop('SIGKILL');
    }
  });

  test('a lifespan function that returned after startup.complete does not hold up shutdown', { timeout: 45_000 }, async () => {
    // Before the fix the server waited the whole grace period for a shutdown.complete that the
    // finished lifespan function could never send. A grace period far longer than any shutdown
    // makes "exited before it ended" the assertion, not a timing threshold.
    const GRACE_SECONDS = 30;
    const server = await startServer({ args: ['--app', fixture('lifespan-returns-after-startup.mjs'), '--timeout-graceful-shutdown', String(GRACE_SECONDS)] });
    try {
      await waitForOutput(server, /RETURNED lifespan/);
      const res = await httpOnce(server.port, get('/'));
      assert.equal(res.body.toString(), 'ok', 'it serves after its lifespan function returned');
      server.proc.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<string>((resolve) => { timer = setTimeout(() => resolve('still running when the grace period ended'), GRACE_SECONDS * 1000); });
      const code = await Promise.race([server.exited, graceOver]).finally(() => clearTimeout(timer));
      assert.equal(code, 0, `exit 0 before the grace period ended; output:\n${server.output()}`);
      assert.doesNotMatch(server.output(), /timed out/);
    } finally {
      await server.stop('SIGKILL');
    }
  });

  test('lifespan.shutdown.failed: the message is logged and the exit code is 1', TIMEOUT, async () => {
    const server = await startServer({ args: ['--app', fixture('lifespan-shutdown-failed.mjs')] });
    try {
      assert.equal(await server.stop('SIGTERM'), 1, `exit 1 expected; output:\n${server.output()}`);
      assert.match(server.output(), logLine('ERROR', 'Application shutdown failed: fixture: could not flush$'));
    } finally {
      await server.stop('SIGKILL');
    }
  });

  test('--timeout-graceful-shutdown bounds a lifespan.shutdown that never completes; no new connections meanwhile', TIMEOUT, async () => {
    const server = await startServer({ args: ['--app', fixture('lifespan-slow-shutdown.mjs'), '--timeout-graceful-shutdown', '1'] });
    try {
      const started = Date.now();
      server.proc.kill('SIGTERM');
      await waitForOutput(server, /SLOW lifespan\.shutdown/, 5000);
      // lifespan.shutdown comes after the server stopped accepting: the port is closed now.
      const refused = await new Promise<string>((resolve) => {
        const socket = connect({ port: server.port, host: '127.0.0.1' });
        socket.once('connect', () => { socket.destroy(); resolve('connected'); });
        socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      });
      assert.equal(refused, 'ECONNREFUSED', 'no new connection is accepted during shutdown');
      // Only a server that never exits by itself reaches this bound: it is the 1 s grace period
      // plus ample room for a loaded machine to get there and exit, and still inside TIMEOUT.
      const EXIT_WITHIN_MS = 12_000;
      let timer: NodeJS.Timeout | undefined;
      const code = await Promise.race([
        server.exited,
        new Promise<string>((resolve) => { timer = setTimeout(() => resolve(`still running after ${EXIT_WITHIN_MS} ms`), EXIT_WITHIN_MS); }),
      ]).finally(() => clearTimeout(timer));
      const elapsed = Date.now() - started;
      assert.equal(code, 0, `the server must exit by itself, with 0, once the 1 s grace period is over: ${code}\n${server.output()}`);
      // The server's own word that the deadline, not the app, ended the shutdown...
      assert.match(server.output(), logLine('WARNING', 'Application shutdown timed out$'));
      // ...and a lower bound, which no slowness can break: the deadline was counted from the
      // signal, sent after `started` (900, not 1000: timers and clocks round to the millisecond).
      assert.ok(elapsed >= 900, `it waited for the shutdown for about 1 s, not ${elapsed} ms`);
    } finally {
      await server.stop('SIGKILL');
    }
  });
});
