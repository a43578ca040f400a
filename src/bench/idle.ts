// The idle-connections scenario: what an open chat connection costs the server when nothing is
// said. It opens connections in levels (default 1,000 then 10,000 in total, on the same server),
// and at each level reads the server tree's resident memory:
//
//   RSS per connection = (RSS at this level − RSS before the first connection) / connections
//
// after a short settle, so the handshakes' short-lived garbage has had a chance to go. Opening a
// level also measures handshakes per second (TCP connect, HTTP upgrade, subscription, greeting)
// and the server's CPU per handshake. At the last level the connections are then held a moment
// to show what idleness costs in CPU (timers, heartbeat pings).
//
// File descriptors: each connection is a descriptor in this process *and* in the server (which
// inherits our limit). 10,000 connections need a limit above 10,000: `ulimit -n` is a shell
// builtin and a process cannot raise its own hard limit, so the benchmark checks the limit
// first, and reports EMFILE ("too many open files") with the fix.
import { openMany, sourceAddresses, type BenchSocket, type Target } from './client.js';
import type { LatencySummary } from './histogram.js';
import { ULIMIT_HINT, cpuSnapshot, cpuWindow, openFilesLimit, treeRssKiB, type CpuWindow } from './proc.js';

export interface IdleOptions {
  target: Target;
  serverPid: number | null;
  /** Total connections at each level, ascending (e.g. [1000, 10000]). */
  levels: number[];
  concurrency: number;
  connectTimeoutS: number;
  settleS: number;
  holdS: number;
  log: (line: string) => void;
}

export interface IdleLevel {
  connections: number;
  /** Connections opened for this level (the difference from the previous level). */
  opened: number;
  failed: number;
  errors: Record<string, number>;
  handshakes_per_s: number;
  handshake_latency: LatencySummary;
  server_cpu_us_per_handshake: number | null;
  rss_kib: number | null;
  rss_kib_per_connection: number | null;
  connect_cpu: CpuWindow;
  /** Busy fraction of the load generator's event loop while opening. */
  loop_busy: number;
}

export interface IdleResult {
  levels: IdleLevel[];
  baseline_rss_kib: number | null;
  /** CPU while holding the last level with no traffic. */
  hold: CpuWindow | null;
  /** Connections the server closed while they were idle. */
  dropped: number;
  open_files_limit: number | null;
  /** Set when a level needs more descriptors than allowed, or EMFILE was seen. */
  hint: string | null;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function runIdle(o: IdleOptions): Promise<IdleResult> {
  const limit = openFilesLimit();
  const result: IdleResult = { levels: [], baseline_rss_kib: null, hold: null, dropped: 0, open_files_limit: limit, hint: null };
  const clients: BenchSocket[] = [];
  let dropped = 0;
  let closing = false;
  const onClose = (): void => {
    if (!closing) dropped++;
  };
  try {
    result.baseline_rss_kib = o.serverPid === null ? null : treeRssKiB(o.serverPid);
    for (const level of o.levels) {
      // ~100 descriptors of headroom for node itself, files, pipes and the server's own.
      if (limit !== null && level + 100 > limit) {
        result.hint = `${level} connections need more than the open-files limit of ${limit}: ${ULIMIT_HINT}`;
        o.log(`idle: skipping ${level} connections: ${result.hint}`);
        break;
      }
      const toOpen = level - clients.length;
      o.log(`idle: opening ${toOpen} connections (to ${level})`);
      const cpu0 = cpuSnapshot(o.serverPid);
      const loop0 = performance.eventLoopUtilization();
      const opened = await openMany({
        target: o.target, count: toOpen, concurrency: o.concurrency, timeoutMs: o.connectTimeoutS * 1000,
        localAddresses: sourceAddresses(o.target.host, Math.max(...o.levels)), firstIndex: clients.length,
        onText: () => {}, onClose,
        onProgress: (ready, failed) => o.log(`idle: ${ready} ready, ${failed} failed of ${toOpen}`),
      });
      const connectCpu = cpuWindow(cpu0, cpuSnapshot(o.serverPid));
      const loopBusy = performance.eventLoopUtilization(loop0).utilization;
      clients.push(...opened.clients);
      if (opened.errors['EMFILE'] || opened.errors['ENFILE']) result.hint = `EMFILE/ENFILE: out of file descriptors: ${ULIMIT_HINT}`;
      if (opened.errors['EADDRNOTAVAIL']) result.hint = 'EADDRNOTAVAIL: out of ephemeral ports (wait for TIME_WAIT sockets to expire, or widen net.ipv4.ip_local_port_range)';
      await sleep(o.settleS * 1000);
      const rss = o.serverPid === null ? null : treeRssKiB(o.serverPid);
      const total = clients.length;
      result.levels.push({
        connections: total,
        opened: opened.ready,
        failed: opened.failed,
        errors: opened.errors,
        handshakes_per_s: opened.handshakes_per_s,
        handshake_latency: opened.handshake_latency,
        server_cpu_us_per_handshake: connectCpu.server_cpu_s === null || !opened.ready ? null : Math.round((connectCpu.server_cpu_s * 1e6) / opened.ready),
        rss_kib: rss,
        rss_kib_per_connection: rss === null || result.baseline_rss_kib === null || !total ? null : Math.round(((rss - result.baseline_rss_kib) / total) * 100) / 100,
        connect_cpu: connectCpu,
        loop_busy: Math.round(loopBusy * 100) / 100,
      });
      o.log(`idle: ${total} open, ${opened.handshakes_per_s} handshakes/s, RSS ${rss === null ? 'n/a' : `${Math.round(rss / 1024)} MiB`}` +
        (opened.failed ? `, ${opened.failed} failed ${JSON.stringify(opened.errors)}` : ''));
      if (opened.failed > 0) break; // the next level would measure a broken state
    }
    if (clients.length > 0 && o.holdS > 0) {
      const hold0 = cpuSnapshot(o.serverPid);
      await sleep(o.holdS * 1000);
      result.hold = cpuWindow(hold0, cpuSnapshot(o.serverPid));
    }
    result.dropped = dropped;
    return result;
  } finally {
    closing = true;
    for (const client of clients) client.close();
    await sleep(Math.min(2000, 200 + clients.length / 10));
  }
}
