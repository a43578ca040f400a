// Starting and stopping the server under test.
//
// The benchmark starts `node dist/main.js --port 0 --host 127.0.0.1 --log-level warning
// --workers W` as a child process: port 0 lets the OS pick a free port, and the server announces
// the one it got on stdout (`listening on http://HOST:PORT`), which is how we learn it. Each
// scenario gets a fresh server, so no scenario inherits another's connections, history or heap.
// A scenario may add to the server's environment: the rooms scenario sets CHAT_SECRET and the
// rate limit there (rooms.ts), which is how an operator configures the chat too.
//
// The message log is on, as by default, each server writing to a fresh directory under the
// system's temporary directory (removed when it stops), unless the environment sets CHAT_DATA_DIR
// (empty: memory only, which the log-off side of the comparison uses).
//
// The server's stderr (warnings and errors only, at --log-level warning) is collected: a
// "slow consumer" or "IPC backlog" warning during a run explains a failed step, so the report
// shows how many lines the server logged and the first few of them.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface ServerHandle {
  pid: number;
  host: string;
  port: number;
  /** Lines the server wrote to stderr so far. */
  logLines: string[];
  /** Set when the server exited by itself (a crash, for instance). */
  exitedWith: string | null;
  stop(): Promise<void>;
  /**
   * SIGKILL to the primary and every worker in one signal (to the process group: see `detached`),
   * as a power loss would stop them, and resolves once the primary is gone. Needs `detached`.
   */
  killTree(): Promise<void>;
}

export interface StartOptions {
  /**
   * Start the server as the leader of a process group of its own (its workers join it), so that
   * killTree() can kill the whole tree at once: the crash loop (crash-loop.ts) needs that.
   */
  detached?: boolean;
}

const MAIN = fileURLToPath(new URL('../main.js', import.meta.url));
const START_TIMEOUT_MS = 20_000;

/** Starts the server with `extraArgs` on its command line and `env` added to this process's environment. */
export function startServer(workers: number, extraArgs: string[] = [], env: NodeJS.ProcessEnv = {}, options: StartOptions = {}): Promise<ServerHandle> {
  const args = [MAIN, '--port', '0', '--host', '127.0.0.1', '--log-level', 'warning', '--workers', String(workers), ...extraArgs];
  const dataDir = env.CHAT_DATA_DIR === undefined ? mkdtempSync(join(tmpdir(), 'chat-bench-data-')) : null;
  const child: ChildProcess = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...(dataDir ? { CHAT_DATA_DIR: dataDir } : {}), ...env },
    detached: options.detached ?? false,
  });
  const logLines: string[] = [];
  let exited: Promise<void>;
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderrTail = '';
    let handle: ServerHandle | null = null;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the server did not announce its port within ${START_TIMEOUT_MS / 1000} s`));
    }, START_TIMEOUT_MS);
    child.stderr!.setEncoding('utf8').on('data', (text: string) => {
      stderrTail += text;
      const lines = stderrTail.split('\n');
      stderrTail = lines.pop()!;
      for (const line of lines) if (line.trim()) logLines.push(line);
    });
    child.stdout!.setEncoding('utf8').on('data', (text: string) => {
      if (handle) return;
      stdout += text;
      const match = /listening on http:\/\/\[?([^\]\s]+?)\]?:(\d+)/.exec(stdout);
      if (!match) return;
      clearTimeout(timer);
      handle = {
        pid: child.pid!,
        host: match[1]!,
        port: Number(match[2]),
        logLines,
        exitedWith: null,
        stop: () => stop(child, exited),
        killTree: () => killTree(child, exited, options.detached ?? false),
      };
      resolve(handle);
    });
    exited = new Promise((done) => {
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        if (dataDir) rmSync(dataDir, { recursive: true, force: true });
        if (handle) handle.exitedWith = signal ?? `exit code ${code}`;
        else reject(new Error(`the server exited before listening (${signal ?? `exit code ${code}`}): ${logLines.slice(-3).join(' | ')}`));
        done();
      });
    });
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/**
 * SIGTERM, as an operator would: the server closes its connections gracefully and exits (the
 * cluster primary stops its workers). SIGKILL after 15 s, should it hang.
 */
async function stop(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), 15_000); });
  if ((await Promise.race([exited, timeout])) === 'timeout') {
    child.kill('SIGKILL');
    await exited;
  }
  clearTimeout(timer);
}

async function killTree(child: ChildProcess, exited: Promise<void>, detached: boolean): Promise<void> {
  if (!detached) throw new Error('killTree() needs a server started with detached: true');
  try {
    process.kill(-child.pid!, 'SIGKILL'); // the group: the primary and every worker, in one kill(2)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error; // ESRCH: the group is gone already
  }
  await exited;
}
