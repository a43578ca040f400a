// What the server and the load generator cost, read from Linux's /proc.
//
// The server under test is a process tree: with --workers N, a cluster primary and N workers.
// Its CPU time is the sum over that tree of utime + stime, the user and kernel time the kernel
// charges to each process (fields 14 and 15 of /proc/PID/stat, in clock ticks; a process's line
// covers all its threads). Reading the sum at the start and at the end of a window gives the CPU
// the server spent in that window, whatever the number of processes and whether they ran in
// parallel. Several trees serving one chat through Redis (main.ts, --redis) are summed the same
// way, from each tree's primary; Redis itself, when it runs on this machine, is read apart
// (`other` in cpuSnapshot), so the report can show what the chat's shared log costs beside what
// the servers cost. Its memory is the sum of VmRSS
// (/proc/PID/status) over the tree: pages shared between workers count once per worker, which is
// fine for per-connection figures, since those are differences between two readings.
//
// The machine's whole CPU use (/proc/stat) is read too: what is neither the server nor the load
// generator is someone else's load on the machine, which makes the figures noisier, so the
// report shows it.
//
// On another OS these functions return null and the report says "n/a".
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

/** Clock ticks per second, the unit of utime/stime: 100 on every usual Linux, asked once anyway. */
export const CLOCK_TICKS = ((): number => {
  try {
    const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return ticks > 0 ? ticks : 100;
  } catch {
    return 100;
  }
})();

export const HAVE_PROC = ((): boolean => {
  try {
    readFileSync('/proc/self/stat');
    return true;
  } catch {
    return false;
  }
})();

interface StatFields {
  ppid: number;
  /** utime + stime, in clock ticks. */
  ticks: number;
}

/**
 * Parses /proc/PID/stat. The second field is the command name in parentheses, and a name may
 * itself hold spaces or parentheses, so the fields are counted from the *last* ')'.
 */
function readStat(pid: number): StatFields | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null; // the process has exited
  }
  // After ") " come field 3 (state), 4 (ppid), ... so field N is at index N - 3.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { ppid: Number(fields[4 - 3]), ticks: Number(fields[14 - 3]) + Number(fields[15 - 3]) };
}

/** One process tree's root, or several (each tree counted once even if one holds another). */
export type Roots = number | readonly number[];

/**
 * The pids of `roots` and all their live descendants. Scans every /proc/PID/stat for its parent
 * (/proc/PID/task/TID/children would be shorter, but needs a kernel option not every kernel has),
 * once for all the roots.
 */
export function processTree(roots: Roots): number[] {
  const children = new Map<number, number[]>();
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return typeof roots === 'number' ? [roots] : [...roots];
  }
  for (const name of names) {
    const first = name.charCodeAt(0);
    if (first < 48 || first > 57) continue; // not a pid directory
    const pid = Number(name);
    const stat = readStat(pid);
    if (!stat) continue;
    const siblings = children.get(stat.ppid);
    if (siblings) siblings.push(pid);
    else children.set(stat.ppid, [pid]);
  }
  const tree = new Set<number>();
  const stack = typeof roots === 'number' ? [roots] : [...roots];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    if (tree.has(pid)) continue;
    tree.add(pid);
    for (const child of children.get(pid) ?? []) stack.push(child);
  }
  return [...tree];
}

/** CPU seconds (user + system) used so far by the tree(s) under `roots`; null without /proc. */
export function treeCpuSeconds(roots: Roots): number | null {
  if (!HAVE_PROC) return null;
  let ticks = 0;
  for (const pid of processTree(roots)) ticks += readStat(pid)?.ticks ?? 0;
  return ticks / CLOCK_TICKS;
}

/** Resident memory of the tree(s) under `roots`, in KiB (VmRSS summed); null without /proc. */
export function treeRssKiB(roots: Roots): number | null {
  if (!HAVE_PROC) return null;
  let total = 0;
  for (const pid of processTree(roots)) {
    try {
      const match = /\nVmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
      if (match) total += Number(match[1]);
    } catch {
      // exited meanwhile
    }
  }
  return total;
}

/** Busy CPU seconds of the whole machine so far (all cores; idle and iowait excluded). */
function machineBusySeconds(): number | null {
  try {
    const line = readFileSync('/proc/stat', 'latin1').slice(0, 256).split('\n', 1)[0]!;
    // cpu  user nice system idle iowait irq softirq steal guest guest_nice
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const busy = v[0]! + v[1]! + v[2]! + v[5]! + v[6]! + v[7]!;
    return busy / CLOCK_TICKS;
  } catch {
    return null;
  }
}

/**
 * What to do about EMFILE. `ulimit -n` is a shell builtin: a process can lower its own limit but
 * not raise it past the hard limit, and Node has no call for it at all, so the user must.
 */
export const ULIMIT_HINT = 'raise the open-files limit before running, e.g. `ulimit -n 65536` (up to the hard limit `ulimit -Hn`; beyond it as root)';

/** The soft limit on open files of this process (servers started by us inherit it). */
export function openFilesLimit(): number | null {
  try {
    const match = /\nMax open files\s+(\d+|unlimited)/.exec(readFileSync('/proc/self/limits', 'latin1'));
    if (!match) return null;
    return match[1] === 'unlimited' ? Infinity : Number(match[1]);
  } catch {
    return null;
  }
}

// ---- windows: CPU spent between two snapshots ---------------------------------------------------

export interface CpuSnapshot {
  wallMs: number;
  server: number | null;
  /** Redis (main.ts --redis), when it runs here and its pid is known; null: not measured. */
  redis: number | null;
  /** This process: the main thread, the subscriber threads, and V8's and libuv's helpers. */
  loadgen: number;
  machine: number | null;
}

/**
 * `server`: the server's root pid, or the roots of several trees (each tree's primary); null
 * when the server is not ours to measure. `redisPid`: Redis's pid, read as a tree of its own
 * (an AOF rewrite or an RDB save is a child of it while it runs).
 */
export function cpuSnapshot(server: Roots | null, redisPid: number | null = null): CpuSnapshot {
  const usage = process.cpuUsage(); // getrusage(RUSAGE_SELF): every thread of this process
  return {
    wallMs: performance.now(),
    server: server === null ? null : treeCpuSeconds(server),
    redis: redisPid === null ? null : treeCpuSeconds(redisPid),
    loadgen: (usage.user + usage.system) / 1e6,
    machine: machineBusySeconds(),
  };
}

export interface CpuWindow {
  wall_s: number;
  /** CPU seconds the server tree used in the window, and the same per wall second ("cores"). */
  server_cpu_s: number | null;
  server_cores: number | null;
  /** The same for Redis (--redis), not included in the server's; null: not measured. */
  redis_cpu_s: number | null;
  redis_cores: number | null;
  loadgen_cpu_s: number;
  loadgen_cores: number;
  /** Busy cores of the machine that were neither the server, Redis nor this process: noise. */
  other_cores: number | null;
}

export function cpuWindow(start: CpuSnapshot, end: CpuSnapshot): CpuWindow {
  const wall = (end.wallMs - start.wallMs) / 1000;
  const server = start.server === null || end.server === null ? null : end.server - start.server;
  const redis = start.redis === null || end.redis === null ? null : end.redis - start.redis;
  const loadgen = end.loadgen - start.loadgen;
  const machine = start.machine === null || end.machine === null ? null : end.machine - start.machine;
  const round = (x: number): number => Math.round(x * 1000) / 1000;
  return {
    wall_s: round(wall),
    server_cpu_s: server === null ? null : round(server),
    server_cores: server === null ? null : round(server / wall),
    redis_cpu_s: redis === null ? null : round(redis),
    redis_cores: redis === null ? null : round(redis / wall),
    loadgen_cpu_s: round(loadgen),
    loadgen_cores: round(loadgen / wall),
    other_cores: machine === null ? null : round(Math.max(0, machine - (server ?? 0) - (redis ?? 0) - loadgen) / wall),
  };
}
