// Starts a real redis-server (Debian's package) for a test: on a free port, on 127.0.0.1 only, in a
// temp directory of its own, with no RDB snapshots and append-only persistence on or off. It waits
// until the server answers PING (over a raw socket: this helper does not use the client it helps to
// test) and can stop it, kill it with SIGKILL, and restart it on the same port and directory (so a
// restart finds its AOF again).
//
// Without redis-server the tests that need it are skipped, except in CI (CI set), where that is a
// failure: see skipWithoutRedis(). .ci/run installs the package.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

/** The binary: REDIS_SERVER_PATH, else redis-server on PATH. */
export const REDIS_SERVER = process.env.REDIS_SERVER_PATH ?? 'redis-server';

export interface RedisServerOptions {
  /** appendonly yes (fsync every second, Redis's default policy) or no. Default: no. */
  appendonly?: boolean;
  /** Sets --requirepass: clients must AUTH with it. */
  password?: string;
  /** More arguments, e.g. ['--appendfsync', 'always']. */
  args?: string[];
}

export interface RunningRedis {
  /** redis://127.0.0.1:PORT, with :password@ when one is required. */
  url: string;
  port: number;
  /** Its working directory (AOF files live under it). */
  dir: string;
  /** Everything the server printed, for failure messages. */
  output(): string;
  /** SIGTERM (Redis saves and exits cleanly), waits for the exit, then removes the directory. */
  stop(): Promise<void>;
  /** SIGKILL: no shutdown at all, as in a crash. The directory is kept for restart(). */
  kill9(): Promise<void>;
  /** Starts again on the same port and directory (stopping it first, cleanly, if it runs). */
  restart(): Promise<void>;
}

let available: boolean | null = null;

/** Whether redis-server can be run here. */
export function redisServerAvailable(): boolean {
  available ??= spawnSync(REDIS_SERVER, ['--version'], { stdio: 'ignore' }).status === 0;
  return available;
}

/**
 * true when the test must be skipped (no redis-server, outside CI); fails the test in CI, where
 * the Redis tests must run.
 */
export function skipWithoutRedis(t: TestContext): boolean {
  if (redisServerAvailable()) return false;
  const why = `no ${REDIS_SERVER} on PATH (or at REDIS_SERVER_PATH): apt-get install redis-server`;
  // CI=true (or any value but "", "0" and "false"): the Redis tests must run, never skip.
  const inCI = /^(?!(0|false)$)./i.test(process.env.CI ?? '');
  if (inCI) assert.fail(`the Redis tests must run in CI: ${why}`);
  t.skip(why);
  return true;
}

/** A port free right now on 127.0.0.1 (the OS picks it; a race with another process is retried by the caller). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  assert.ok(address !== null && typeof address === 'object');
  return address.port;
}

/** Resolves when the server on `port` answers PING (+PONG, or -NOAUTH when it wants a password). */
function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let reply = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG') || reply.startsWith('-NOAUTH'));
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts redis-server and resolves once it answers PING. */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<RunningRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'asgi-chat-redis-'));
  let port = 0;
  let proc: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let output = '';

  const launch = async (): Promise<void> => {
    const args = [
      '--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
      '--save', '', '--appendonly', options.appendonly === true ? 'yes' : 'no',
      '--daemonize', 'no', '--logfile', '',
      ...(options.password === undefined ? [] : ['--requirepass', options.password]),
      ...(options.args ?? []),
    ];
    const child = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    proc = child;
    child.stdout!.on('data', (chunk: Buffer) => { output += chunk.toString(); });
    child.stderr!.on('data', (chunk: Buffer) => { output += chunk.toString(); });
    let gone = false;
    exited = new Promise<void>((resolve) => child.once('close', () => { gone = true; resolve(); }));
    const deadline = Date.now() + 10_000;
    while (!(await answersPing(port))) {
      if (gone) throw new Error(`redis-server exited before answering PING:\n${output}`);
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`redis-server did not answer PING within 10 s:\n${output}`);
      }
      await sleep(20);
    }
  };

  const halt = async (signal: NodeJS.Signals): Promise<void> => {
    const child = proc;
    proc = null;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return exited;
    child.kill(signal);
    await exited;
  };

  // Another process may take the free port between freePort() and redis-server's bind: try again.
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      await launch();
      break;
    } catch (error) {
      if (attempt >= 3 || !/Address already in use/i.test(output)) {
        rmSync(dir, { recursive: true, force: true });
        throw error;
      }
      output = '';
    }
  }

  const auth = options.password === undefined ? '' : `:${encodeURIComponent(options.password)}@`;
  return {
    url: `redis://${auth}127.0.0.1:${port}`,
    port,
    dir,
    output: () => output,
    async stop() {
      await halt('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
    kill9: () => halt('SIGKILL'),
    async restart() {
      await halt('SIGTERM');
      await launch();
    },
  };
}
