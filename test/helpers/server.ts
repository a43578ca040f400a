// Starts the real server (`node dist/main.js ...`) as a child process on a free port, the way a
// user does, and waits for its `listening on http://HOST:PORT` line (https:// with --ssl-certfile).
// Every integration test uses it.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project's root, from dist-test/test/helpers/ where this file runs compiled. */
export const PROJECT_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const MAIN_JS = fileURLToPath(new URL('../../../dist/main.js', import.meta.url));
/** A fixture application under test/fixtures/, by file name (they are plain .mjs, not compiled). */
export const fixture = (name: string): string => fileURLToPath(new URL(`../../../test/fixtures/${name}`, import.meta.url));

export interface RunningServer {
  proc: ChildProcess;
  port: number;
  /** What the listening line said: `https` when the server serves TLS. */
  scheme: 'http' | 'https';
  /** `http://127.0.0.1:PORT` (`https://` with TLS) */
  url: string;
  /** `ws://127.0.0.1:PORT` (`wss://` with TLS) */
  wsUrl: string;
  /** Everything written so far to stdout and stderr. */
  output(): string;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited: Promise<number | string>;
  /** Sends the signal (SIGTERM by default) and waits for the exit; SIGKILL after `graceMs`. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | string>;
  /**
   * SIGKILL to the whole process tree at once (the primary and every worker: a power loss as far
   * as the processes can tell), and waits for the exit. Needs `detached: true` at start.
   */
  killTree(): Promise<number | string>;
}

export interface StartOptions {
  /** Extra CLI arguments (`--port 0 --host 127.0.0.1` are added unless given). */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** How long to wait for the listening line. */
  timeoutMs?: number;
  /**
   * Start the server as the leader of a process group of its own, which its workers join, so that
   * killTree() can kill the whole tree with one signal to the group (kill(-pid)): no worker or
   * primary gets a moment to act (say, a primary forking a worker that was killed before it).
   */
  detached?: boolean;
}

/** A new empty directory for one server's message log (CHAT_DATA_DIR); the caller removes it. */
export function freshDataDir(): string {
  return mkdtempSync(join(tmpdir(), 'chat-data-'));
}

/**
 * The environment of a server under test. Each server gets a message log of its own in a fresh
 * directory (removed after it exits), as the default `data` would be shared by every test running
 * at once; a test that restarts a server on the same log sets CHAT_DATA_DIR itself.
 */
function serverEnv(extra: NodeJS.ProcessEnv | undefined): { env: NodeJS.ProcessEnv; cleanup(): void } {
  const env = { ...process.env, ...extra };
  if (env.CHAT_DATA_DIR !== undefined) return { env, cleanup() {} };
  const dir = freshDataDir();
  return { env: { ...env, CHAT_DATA_DIR: dir }, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Spawns `node dist/main.js` and resolves once it prints `listening on http(s)://HOST:PORT`. */
export async function startServer(options: StartOptions = {}): Promise<RunningServer> {
  const args = [...(options.args ?? [])];
  if (!args.includes('--port')) args.push('--port', '0');
  if (!args.includes('--host')) args.push('--host', '127.0.0.1');
  const { env, cleanup } = serverEnv(options.env);
  const proc = spawn(process.execPath, [MAIN_JS, ...args], {
    cwd: PROJECT_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.detached ?? false,
  });
  let out = '';
  proc.stdout!.setEncoding('utf8').on('data', (s: string) => { out += s; });
  proc.stderr!.setEncoding('utf8').on('data', (s: string) => { out += s; });
  // 'close', not 'exit': it comes once the output pipes are drained too, so that a test reading
  // output() after the exit sees every line the process wrote.
  const exited = once(proc, 'close').then(([code, signal]) => {
    cleanup();
    return (code ?? signal) as number | string;
  });

  const [scheme, port] = await new Promise<['http' | 'https', number]>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`server did not print "listening on" within ${options.timeoutMs ?? 15000} ms:\n${out}`));
    }, options.timeoutMs ?? 15000);
    const check = () => {
      const match = /listening on (https?):\/\/[^\s:]+:(\d+)/.exec(out);
      if (match) { clearTimeout(timer); resolve([match[1] as 'http' | 'https', Number(match[2])]); }
    };
    proc.stdout!.on('data', check);
    proc.stderr!.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}) before listening:\n${out}`));
    });
  });

  return {
    proc,
    port,
    scheme,
    url: `${scheme}://127.0.0.1:${port}`,
    wsUrl: `${scheme === 'https' ? 'wss' : 'ws'}://127.0.0.1:${port}`,
    output: () => out,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 15000) {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill(signal);
        const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
        const code = await exited;
        clearTimeout(timer);
        return code;
      }
      return exited;
    },
    async killTree() {
      if (!options.detached) throw new Error('killTree() needs a server started with detached: true');
      try {
        process.kill(-proc.pid!, 'SIGKILL');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error; // ESRCH: all gone already
      }
      return exited;
    },
  };
}

/** Runs `node dist/main.js ARGS` to completion (for flags that exit), with its output. */
export async function runMain(args: string[], timeoutMs = 15000, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const server = serverEnv(env);
  const proc = spawn(process.execPath, [MAIN_JS, ...args], { cwd: PROJECT_ROOT, env: server.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s; });
  proc.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  const [code, signal] = await once(proc, 'close'); // after the output pipes are drained (see above)
  clearTimeout(timer);
  server.cleanup();
  return { code: (code ?? signal) as number | string, stdout, stderr };
}
