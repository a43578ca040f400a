// Heap snapshots of the server's processes, taken from outside, for finding what grows.
//
// The server is started with `--heapsnapshot-signal=SIGUSR2` and `--diagnostic-dir=DIR` in
// NODE_OPTIONS (so the primary and every cluster worker get them): on SIGUSR2 a process writes
// `Heap.<date>.<time>.<pid>.<tid>.<seq>.heapsnapshot` into DIR, on its main thread, between two
// JavaScript tasks. takeSnapshots() signals each process of the tree, waits for its file to be
// complete (its JSON closed, its size steady), and renames it
// `<label>.<pid>.heapsnapshot`, so that `start`, `end` and `idle` snapshots of one worker sit
// side by side for heap-diff.ts.
//
// A snapshot stops its process for as long as it takes to write (about a second per 30 MB of
// heap), so the fuzzer takes them only when asked, and never while the canary is being timed.
import { closeSync, openSync, readSync, readdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const SNAPSHOT_SIGNAL = 'SIGUSR2';

/** The NODE_OPTIONS that make the server's processes write a snapshot into `dir` on the signal. */
export function snapshotNodeOptions(dir: string, existing = ''): string {
  return `${existing} --heapsnapshot-signal=${SNAPSHOT_SIGNAL} --diagnostic-dir=${dir}`.trim();
}

/** Signals every pid, waits for each one's snapshot; returns the renamed files. */
export async function takeSnapshots(dir: string, pids: readonly number[], label: string, timeoutMs = 120_000): Promise<string[]> {
  const before = new Set(readdirSync(dir));
  for (const pid of pids) {
    try {
      process.kill(pid, SNAPSHOT_SIGNAL);
    } catch {
      // exited meanwhile: no snapshot from it
    }
  }
  const deadline = Date.now() + timeoutMs;
  const files: string[] = [];
  const waiting = new Set(pids);
  const sizes = new Map<string, number>();
  while (waiting.size > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    for (const name of readdirSync(dir)) {
      if (before.has(name) || !name.endsWith('.heapsnapshot')) continue;
      const pid = Number(name.split('.')[3]);
      if (!waiting.has(pid) || !isComplete(join(dir, name), sizes)) continue;
      const target = join(dir, `${label}.${pid}.heapsnapshot`);
      renameSync(join(dir, name), target);
      waiting.delete(pid);
      files.push(target);
    }
  }
  return files;
}

/**
 * A snapshot file is complete once its JSON is closed (its last non-space byte is `}`) and its
 * size did not change since the last look (a chunk written midway may end with `}` too).
 */
function isComplete(path: string, sizes: Map<string, number>): boolean {
  const size = statSync(path).size;
  const previous = sizes.get(path);
  sizes.set(path, size);
  if (size < 2 || size !== previous) return false;
  const tail = Buffer.alloc(Math.min(16, size));
  const fd = openSync(path, 'r');
  try {
    readSync(fd, tail, 0, tail.length, size - tail.length);
  } finally {
    closeSync(fd);
  }
  return tail.toString('latin1').trimEnd().endsWith('}');
}
