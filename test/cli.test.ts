// The command line of `node dist/main.js`, run as a user runs it: --help and --version, usage
// errors (exit 2), a port in use (exit 1), the listening line, the access log and --log-level,
// --app loading (ES default export, named `app`, CommonJS, relative path; exit 1 when it cannot)
// and --workers.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { USAGE } from '../src/server/options.js';
import { startServer, runMain, fixture, PROJECT_ROOT, type RunningServer } from './helpers/server.js';
import { httpOnce, waitForOutput } from './helpers/raw-ws.js';

/** No test may hang the run: each fails after this long, saying it timed out. */
const TIMEOUT = { timeout: 20_000 };

const FLAGS = ['--host', '--port', '--app', '--workers', '--root-path', '--log-level', '--lifespan', '--ws-max-size', '--ws-ping-interval', '--ws-ping-timeout', '--ws-per-message-deflate', '--timeout-graceful-shutdown', '--timeout-keep-alive', '--limit-concurrency', '--help', '--version'];
const VERSION = (JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

const get = (target: string, extra = '') => `GET ${target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n${extra}\r\n`;

/** Starts a server, runs `fn`, and always stops it. */
async function withServer(args: string[], fn: (server: RunningServer) => Promise<void>): Promise<void> {
  const server = await startServer({ args });
  try {
    await fn(server);
  } finally {
    await server.stop();
  }
}

describe('--help and --version', () => {
  test('--help prints the usage with every option on stdout and exits 0', TIMEOUT, async () => {
    const run = await runMain(['--help']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /usage/i);
    for (const flag of FLAGS) assert.ok(run.stdout.includes(flag), `the usage mentions ${flag}`);
  });

  test('--version prints the package version on stdout and exits 0', TIMEOUT, async () => {
    const run = await runMain(['--version']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout.trim(), new RegExp(`(^|\\s|v)${VERSION.replace(/\./g, '\\.')}$`));
  });
});

describe('usage errors exit 2 with one line saying what is wrong, then the usage, on stderr', () => {
  // Each message's wording is tested in options.test.ts; here, that the command prints it as
  // promised: `error: MESSAGE`, a blank line, then the whole usage.
  const cases: Array<[string[], string]> = [
    [['--bogus'], "Unknown option '--bogus'"],
    [['--port', 'abc'], '--port must be a whole number from 0 to 65535, got "abc"'],
    [['--port', '70000'], '--port must be a whole number from 0 to 65535, got "70000"'],
    [['--port'], '--port needs a value'],
    [['--workers', '0'], '--workers must be a whole number from 1 to 256, got "0"'],
    [['--log-level', 'loud'], '--log-level must be one of debug, info, warning, error, got "loud"'],
    [['--lifespan', 'maybe'], '--lifespan must be one of auto, on, off, got "maybe"'],
    [['--ws-max-size', 'big'], '--ws-max-size must be a whole number from 1 to 2147483647, got "big"'],
    [['--ws-ping-interval', '-1'], '--ws-ping-interval needs a value; to give one that starts with "-", write --ws-ping-interval=VALUE'],
    [['--ws-ping-interval=-1'], '--ws-ping-interval must be a number of seconds from 0 to 86400, got "-1"'],
  ];
  for (const [args, message] of cases) {
    test(args.join(' '), TIMEOUT, async () => {
      const run = await runMain(args);
      assert.equal(run.code, 2, `exit code 2 expected, got ${run.code}; stderr:\n${run.stderr}`);
      assert.equal(run.stdout, '', 'nothing on stdout');
      assert.equal(run.stderr, `error: ${message}\n\n${USAGE}`);
    });
  }
});

describe('listening', () => {
  test('prints "listening on http://HOST:PORT" with the real port, loading --app by a relative path', TIMEOUT, async () => {
    await withServer(['--app', 'test/fixtures/echo.mjs'], async (server) => {
      const match = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(server.output());
      assert.ok(match, server.output());
      assert.notEqual(Number(match[1]), 0, 'the real port, not 0');
      const res = await httpOnce(server.port, 'POST /x HTTP/1.1\r\nHost: test\r\nContent-Length: 4\r\nConnection: close\r\n\r\nping');
      assert.equal(res.body.toString(), 'ping');
    });
  });

  test('a port in use: a message saying so and exit 1', TIMEOUT, async () => {
    await withServer(['--app', fixture('echo.mjs')], async (server) => {
      const run = await runMain(['--app', fixture('echo.mjs'), '--port', String(server.port), '--host', '127.0.0.1']);
      assert.equal(run.code, 1, `exit 1 expected; output:\n${run.stdout}${run.stderr}`);
      assert.match(run.stdout + run.stderr, /in use/);
      assert.doesNotMatch(run.stdout, /listening on/);
    });
  });
});

describe('logging', () => {
  test('one access-log line per request on stderr: client, method, path, version, status', TIMEOUT, async () => {
    await withServer(['--app', fixture('http-probe.mjs')], async (server) => {
      await httpOnce(server.port, get('/fixed?log=1'));
      await httpOnce(server.port, get('/no-such-route'));
      const line = /127\.0\.0\.1:\d+ - "GET \/fixed\?log=1 HTTP\/1\.1" 200/;
      await waitForOutput(server, line);
      await waitForOutput(server, /127\.0\.0\.1:\d+ - "GET \/no-such-route HTTP\/1\.1" 404/);
      assert.equal(server.output().split('\n').filter((l) => /"GET \/fixed\?log=1 /.test(l)).length, 1, 'exactly one line for the request');
    });
  });

  test('--log-level warning: no access log', TIMEOUT, async () => {
    const server = await startServer({ args: ['--app', fixture('http-probe.mjs'), '--log-level', 'warning'] });
    try {
      const res = await httpOnce(server.port, get('/fixed?quiet=1'));
      assert.equal(res.status, 200);
    } finally {
      assert.equal(await server.stop(), 0);
    }
    // The process has exited, so everything it would ever log is in the output.
    assert.doesNotMatch(server.output(), /quiet=1/);
  });
});

describe('--app', () => {
  const cases: Array<[string, string]> = [
    ['named-export.mjs', 'hello from a named export'],
    ['commonjs-default.cjs', 'hello from CommonJS'],
    ['commonjs-named.cjs', 'hello from exports.app'],
  ];
  for (const [file, expected] of cases) {
    test(`loads ${file}`, TIMEOUT, async () => {
      await withServer(['--app', fixture(file)], async (server) => {
        const res = await httpOnce(server.port, get('/'));
        assert.equal(res.status, 200);
        assert.equal(res.body.toString(), expected);
      });
    });
  }

  // README, exit codes: an --app module that cannot be imported or exports no application is a
  // server error, exit 1 (as uvicorn exits 1 when it cannot load the app).
  test('a missing module: an error naming it, exit 1', TIMEOUT, async () => {
    const run = await runMain(['--app', 'test/fixtures/does-not-exist.mjs', '--port', '0', '--host', '127.0.0.1']);
    assert.equal(run.code, 1, `exit 1 expected; output:\n${run.stdout}${run.stderr}`);
    assert.match(run.stderr, /^ERROR: +\[\d+\] cannot import --app test\/fixtures\/does-not-exist\.mjs: /m);
    assert.doesNotMatch(run.stdout, /listening on/);
  });

  test('a module without an application: an error saying what was expected, exit 1', TIMEOUT, async () => {
    const run = await runMain(['--app', 'test/fixtures/no-application.mjs', '--port', '0', '--host', '127.0.0.1']);
    assert.equal(run.code, 1, `exit 1 expected; output:\n${run.stdout}${run.stderr}`);
    assert.match(run.stderr, /^ERROR: +\[\d+\] --app test\/fixtures\/no-application\.mjs exports no application: expected a default export or an export named "app" that is a function$/m);
  });
});

describe('--workers', () => {
  test('--workers 2: two processes serve the same port; SIGTERM stops them all with exit 0', TIMEOUT, async () => {
    await withServer(['--app', fixture('http-probe.mjs'), '--workers', '2', '--worker-accept', 'round-robin'], async (server) => {
      const pids = new Set<string>();
      const deadline = Date.now() + 10_000;
      // Each request on a new connection; the cluster primary hands connections round-robin (with
      // --worker-accept kernel, the default, the kernel could give them all to one worker). The
      // second worker may still be starting when the first prints its line, hence the loop.
      while (pids.size < 2 && Date.now() < deadline) {
        const res = await httpOnce(server.port, get('/pid'));
        assert.equal(res.status, 200);
        pids.add(res.body.toString());
      }
      assert.equal(pids.size, 2, `two worker processes answered within 10 s, saw ${[...pids].join(', ')}`);
      assert.ok(!pids.has(String(server.proc.pid)), 'the primary itself does not serve');
      // Lifespan runs once in each process that serves, and not in the primary.
      const startups = server.output().split('\n').filter((line) => line.startsWith('PROBE - startup-complete'));
      assert.equal(startups.length, 2, `one lifespan startup per worker:\n${server.output()}`);
      assert.equal(await server.stop(), 0);
    });
  });

  test('--workers 2 with a failing startup: the primary exits 3, the code of the failing worker', TIMEOUT, async () => {
    const run = await runMain(['--app', fixture('lifespan-startup-failed.mjs'), '--workers', '2', '--port', '0', '--host', '127.0.0.1'], 20_000);
    assert.equal(run.code, 3, `exit 3 expected; output:\n${run.stdout}${run.stderr}`);
    assert.match(run.stdout + run.stderr, /fixture: database unreachable/);
  });
});
