// `npm run fuzz` and `npm run soak`: abuse as a test. It starts the server itself
// (`node dist/main.js --workers N --port 0`, the bundled chat, on 127.0.0.1), then for `--seconds`
// runs many attackers against it (attacker.ts: garbage, mutated HTTP, half handshakes, silent
// and slow clients, mutated frames of every kind, fragment storms, bad chat traffic; the plans
// are mutators.ts) while a canary client (canary.ts) keeps doing lobby round trips, and watches
// the server's process tree. It stops by itself and closes everything.
//
// The run fails (exit 1) if:
//   - a server process dies or is replaced: a "died" line in the server's log, or a pid of the
//     tree gone from /proc; or the server logs an error (an exception in the application...);
//   - the canary's handshake, greeting or a round trip takes longer than --canary-timeout, or the
//     server closes the canary;
//   - the server sends bytes that are not valid WebSocket frames, or refuses connections;
//   - the tree's memory does not level off (plateau.ts: the highest RSS of the last third of the
//     run more than --plateau-percent above the highest of the middle third, plus a small slack);
//     judged only for runs of at least MIN_PLATEAU_SECONDS, shorter ones are all warm-up;
//   - the server does not exit 0 on SIGTERM at the end.
//
// The seed is printed; `--seed N` repeats a run's attacks byte for byte (the interleaving of the
// attackers is the scheduler's), and `--show A:B` prints attacker A's connection B alone.
//
// Exit codes: 0 passed, 1 a failure (listed at the end), 2 bad flags.
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { processTree, treeCpuSeconds, treeRssKiB } from '../bench/proc.js';
import { startServer, type ServerHandle } from '../bench/server-process.js';
import { AttackPool, type AttackStats } from './attacker.js';
import { Canary } from './canary.js';
import { snapshotNodeOptions, takeSnapshots } from './heap-snapshots.js';
import { describePlan, planFor } from './mutators.js';
import { judgePlateau, type RssSample } from './plateau.js';
import { randomSeed } from './prng.js';

const USAGE = `Usage: npm run fuzz -- [options]     (or: node dist/fuzz/main.js [options])
       npm run soak -- [options]     (the same, 600 s by default, a report line every 10 s,
                                     then 20 s without load)

Starts the chat server, attacks it with malformed traffic while a canary client does lobby round
trips, and fails (exit 1) if a server process dies, the canary is not served in time, the server
sends invalid frames or logs an error, or its memory does not level off.

  --seconds S            how long to attack (default 60)
  --workers N            server worker processes (default 2)
  --seed N               the attacks' seed, 0 to 4294967295 (default: random, printed)
  --concurrency N        attackers, each one connection at a time (default 48)
  --canary-interval MS   pause between canary round trips (default 100)
  --canary-timeout MS    longest handshake or round trip allowed (default 5000)
  --plateau-percent P    memory rule: the last third's highest RSS may exceed the middle
                         third's by P percent plus 16 MiB (default 20; judged for runs of
                         60 s or more)
  --idle S               after the attack, watch memory for S seconds with no load (default 0)
  --heap-snapshots DIR   take heap snapshots of every server process at the start, at the end
                         of the attack and after --idle, into DIR (compare them with
                         node dist/fuzz/heap-diff.js A B)
  --slow-ms MS           longest a slowloris attacker trickles a head (default 25000)
  --server-arg ARG       an extra flag for the server, repeatable
                         (e.g. --server-arg=--timeout-request-head=2)
  --report-every S       print a progress line every S seconds (default 0: none)
  --json FILE            write the results as JSON
  --show A:B             print the plan of attacker A's connection B for --seed, and exit
  --help                 show this help
`;

/** Shorter runs are all warm-up: the memory rule needs a middle and a last third worth comparing. */
const MIN_PLATEAU_SECONDS = 60;
const PLATEAU_SLACK_KIB = 16 * 1024;
const SAMPLE_MS = 1000;

interface Options {
  seconds: number;
  workers: number;
  seed: number;
  concurrency: number;
  canaryIntervalMs: number;
  canaryTimeoutMs: number;
  plateauPercent: number;
  idleSeconds: number;
  heapSnapshots: string | null;
  slowMs: number;
  serverArgs: string[];
  reportEvery: number;
  json: string | null;
  show: [number, number] | null;
}

class UsageError extends Error {}

function parseOptions(argv: string[]): Options | 'help' {
  let values: Record<string, string | string[] | boolean | undefined>;
  try {
    const string = { type: 'string' } as const;
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        seconds: string, workers: string, seed: string, concurrency: string, 'canary-interval': string, 'canary-timeout': string,
        'plateau-percent': string, idle: string, 'heap-snapshots': string, 'slow-ms': string,
        'server-arg': { type: 'string', multiple: true }, 'report-every': string, json: string, show: string, help: { type: 'boolean' },
      },
    }));
  } catch (error) {
    throw new UsageError((error as Error).message.split('. ')[0]!);
  }
  if (values['help']) return 'help';
  const number = (name: string, fallback: number, min: number, max: number, integer = true): number => {
    const raw = values[name] as string | undefined;
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(value) || (integer && !Number.isInteger(value)) || value < min || value > max) {
      throw new UsageError(`--${name} must be ${integer ? 'a whole number' : 'a number'} from ${min} to ${max}, got "${raw}"`);
    }
    return value;
  };
  let show: [number, number] | null = null;
  if (typeof values['show'] === 'string') {
    const match = /^(\d+):(\d+)$/.exec(values['show']);
    if (!match) throw new UsageError(`--show takes ATTACKER:CONNECTION, e.g. 3:120, got "${values['show']}"`);
    show = [Number(match[1]), Number(match[2])];
  }
  return {
    seconds: number('seconds', 60, 1, 7 * 86400, false),
    workers: number('workers', 2, 1, 64),
    seed: number('seed', randomSeed(), 0, 0xffffffff),
    concurrency: number('concurrency', 48, 1, 5000),
    canaryIntervalMs: number('canary-interval', 100, 1, 60_000),
    canaryTimeoutMs: number('canary-timeout', 5000, 100, 600_000),
    plateauPercent: number('plateau-percent', 20, 0, 1000, false),
    idleSeconds: number('idle', 0, 0, 3600, false),
    heapSnapshots: typeof values['heap-snapshots'] === 'string' ? resolve(values['heap-snapshots']) : null,
    slowMs: number('slow-ms', 25_000, 0, 600_000),
    serverArgs: (values['server-arg'] as string[] | undefined) ?? [],
    reportEvery: number('report-every', 0, 0, 86400, false),
    json: typeof values['json'] === 'string' ? values['json'] : null,
    show,
  };
}

const MiB = (kib: number | null): string => kib === null ? 'n/a' : `${(kib / 1024).toFixed(0)} MB`;
const count = (n: number): string => n.toLocaleString('en-US');
const ms = (value: number | null): string => value === null ? 'n/a' : `${value} ms`;
const sorted = <K>(map: Map<K, number>): string => [...map].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ×${count(n)}`).join(', ') || 'none';

async function main(): Promise<number> {
  let options: Options;
  try {
    const parsed = parseOptions(process.argv.slice(2));
    if (parsed === 'help') {
      process.stdout.write(USAGE);
      return 0;
    }
    options = parsed;
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`error: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  const print = (line: string): void => { process.stdout.write(`${line}\n`); };

  if (options.show) {
    const [attacker, connection] = options.show;
    print(`seed ${options.seed}, attacker ${attacker}, connection ${connection} (Host 127.0.0.1:PORT)`);
    print(describePlan(planFor(options.seed, attacker, connection, { host: '127.0.0.1:PORT', slowMs: options.slowMs })));
    return 0;
  }

  print(`fuzz: seed ${options.seed} (repeat with --seed ${options.seed}), ${options.seconds} s, `
    + `${options.workers} worker${options.workers === 1 ? '' : 's'}, ${options.concurrency} attackers`);
  let env: NodeJS.ProcessEnv = {};
  if (options.heapSnapshots) {
    mkdirSync(options.heapSnapshots, { recursive: true });
    env = { NODE_OPTIONS: snapshotNodeOptions(options.heapSnapshots, process.env.NODE_OPTIONS) };
  }
  const server = await startServer(options.workers, options.serverArgs, env);
  const failures: string[] = [];
  const fail = (why: string): void => {
    if (!failures.includes(why)) failures.push(why);
  };

  // The tree as it started: any pid missing later is a process that died.
  await sleep(500); // let the workers' own start-up allocations settle before the first sample
  const pids = processTree(server.pid);
  const rssStartKiB = treeRssKiB(server.pid);
  print(`server: pid ${server.pid}, port ${server.port}, tree ${pids.join(' ')}, RSS ${MiB(rssStartKiB)}`);
  const snapshots: string[] = [];
  if (options.heapSnapshots) snapshots.push(...await takeSnapshots(options.heapSnapshots, pids, 'start'));

  const warnings = new Map<string, number>();
  const watchLog = (): void => {
    for (const line of server.logLines.splice(0)) {
      if (/ died /.test(line)) fail(`a server process died: ${line}`);
      else if (line.startsWith('ERROR:')) fail(`the server logged an error: ${line}`);
      else {
        const key = summarize(line);
        warnings.set(key, (warnings.get(key) ?? 0) + 1);
      }
    }
    if (server.exitedWith !== null) fail(`the server exited during the run (${server.exitedWith})`);
    const alive = processTree(server.pid);
    for (const pid of pids) {
      if (!alive.includes(pid)) fail(`server process ${pid} is gone`);
    }
  };

  const canary = new Canary({ port: server.port, intervalMs: options.canaryIntervalMs, timeoutMs: options.canaryTimeoutMs, tag: String(options.seed) });
  await canary.start();
  if (canary.failure) fail(canary.failure);

  const pool = new AttackPool({ port: server.port, seed: options.seed, host: `127.0.0.1:${server.port}`, slowMs: options.slowMs, maxConnectionMs: options.slowMs + 5000 });
  const startedAt = Date.now();
  const cpuAtStart = { fuzzer: process.cpuUsage(), server: treeCpuSeconds(server.pid) };
  const durationMs = options.seconds * 1000;
  const samples: RssSample[] = [];
  let lastReport = startedAt;
  if (failures.length === 0) {
    pool.start(options.concurrency, startedAt + durationMs);
    while (Date.now() - startedAt < durationMs && failures.length === 0) {
      await sleep(Math.min(SAMPLE_MS, durationMs - (Date.now() - startedAt)));
      const kib = treeRssKiB(server.pid);
      if (kib !== null) samples.push({ t: Date.now() - startedAt, kib });
      watchLog();
      if (canary.failure) fail(canary.failure);
      if (pool.stats.badServerFrames.length > 0) fail(`the server sent invalid frames: ${pool.stats.badServerFrames[0]}`);
      if (pool.stats.refused > 0) fail(`${pool.stats.refused} connections were refused: nothing listened on the port`);
      if (options.reportEvery > 0 && Date.now() - lastReport >= options.reportEvery * 1000) {
        lastReport = Date.now();
        print(progress(Date.now() - startedAt, pool.stats, canary, kib));
      }
    }
  }
  const attackMs = Date.now() - startedAt;
  const fuzzerCpu = process.cpuUsage(cpuAtStart.fuzzer);
  const serverCpuEnd = treeCpuSeconds(server.pid);
  const serverCpuS = serverCpuEnd === null || cpuAtStart.server === null ? null : serverCpuEnd - cpuAtStart.server;
  const fuzzerCpuS = (fuzzerCpu.user + fuzzerCpu.system) / 1e6;
  await pool.stop();
  canary.stop();
  watchLog();
  const rssEndKiB = treeRssKiB(server.pid);
  if (options.heapSnapshots && failures.length === 0) snapshots.push(...await takeSnapshots(options.heapSnapshots, pids, 'end'));

  let rssIdleKiB: number | null = null;
  if (options.idleSeconds > 0 && failures.length === 0) {
    print(`idle: ${options.idleSeconds} s with no load...`);
    await sleep(options.idleSeconds * 1000);
    rssIdleKiB = treeRssKiB(server.pid);
    watchLog();
    if (options.heapSnapshots) snapshots.push(...await takeSnapshots(options.heapSnapshots, pids, 'idle'));
  }

  const exit = await stopServer(server);
  if (exit !== 'exit code 0') fail(`the server did not exit cleanly on SIGTERM (${exit})`);

  const judged = options.seconds >= MIN_PLATEAU_SECONDS;
  const verdict = judgePlateau(samples, durationMs, options.plateauPercent, PLATEAU_SLACK_KIB);
  if (judged && attackMs >= durationMs && verdict.plateau === false) {
    fail(`memory did not level off: the last third's highest RSS ${MiB(verdict.lastMaxKiB)} is ${verdict.growthPercent} % above the middle third's ${MiB(verdict.middleMaxKiB)}`);
  }

  const s = pool.stats;
  const c = canary.summary();
  const peakKiB = samples.reduce((max, sample) => Math.max(max, sample.kib), 0);
  print(`attack: ${(attackMs / 1000).toFixed(1)} s, ${count(s.connections)} connections, ${count(s.frames)} frames, `
    + `${(s.bytesSent / 1e6).toFixed(1)} MB sent, ${(s.bytesReceived / 1e6).toFixed(1)} MB received`);
  print(`  CPU: server tree ${serverCpuS === null ? 'n/a' : `${serverCpuS.toFixed(1)} s`}, fuzzer ${fuzzerCpuS.toFixed(1)} s`);
  print(`  attacks: ${Object.entries(s.byKind).map(([k, n]) => `${k} ${count(n)}`).join(', ')}`);
  print(`  first responses: ${sorted(s.statuses)}`);
  print(`  close codes from the server: ${sorted(s.closeCodes)}`);
  print(`  client-side socket errors: ${sorted(s.errors)}`);
  print(`  server warnings: ${sorted(warnings)}`);
  print(`canary: ${count(c.roundTrips)} round trips, p50 ${ms(c.p50)}, p99 ${ms(c.p99)}, max ${ms(c.max)}`);
  print(`memory (tree RSS): start ${MiB(rssStartKiB)}, peak ${MiB(peakKiB)}, middle third max ${MiB(verdict.middleMaxKiB)}, `
    + `last third max ${MiB(verdict.lastMaxKiB)} (${verdict.growthPercent ?? 'n/a'} %), end ${MiB(rssEndKiB)}`
    + `${rssIdleKiB !== null ? `, after ${options.idleSeconds} s idle ${MiB(rssIdleKiB)}` : ''}`);
  print(`  plateau: ${!judged ? `not judged (runs shorter than ${MIN_PLATEAU_SECONDS} s are warm-up)` : verdict.plateau === null ? 'not judged (too few samples)' : verdict.plateau ? 'yes' : 'NO'}`
    + ` (rule: last third ≤ middle third × ${1 + options.plateauPercent / 100} + ${PLATEAU_SLACK_KIB / 1024} MiB)`);
  if (snapshots.length > 0) print(`heap snapshots: ${snapshots.join(' ')}`);

  if (options.json) {
    writeFileSync(options.json, JSON.stringify({
      seed: options.seed, seconds: options.seconds, workers: options.workers, concurrency: options.concurrency, attack_ms: attackMs,
      cpu_s: { server: serverCpuS, fuzzer: fuzzerCpuS },
      connections: s.connections, frames: s.frames, bytes_sent: s.bytesSent, bytes_received: s.bytesReceived,
      attacks: s.byKind, statuses: Object.fromEntries(s.statuses), close_codes: Object.fromEntries(s.closeCodes),
      errors: Object.fromEntries(s.errors), warnings: Object.fromEntries(warnings),
      canary: { round_trips: c.roundTrips, p50_ms: c.p50, p99_ms: c.p99, max_ms: c.max, failure: canary.failure },
      rss_kib: { start: rssStartKiB, peak: peakKiB, middle_max: verdict.middleMaxKiB, last_max: verdict.lastMaxKiB, end: rssEndKiB, idle: rssIdleKiB },
      plateau: judged ? verdict.plateau : null, rss_samples: samples, heap_snapshots: snapshots, failures,
    }, null, 2));
  }
  if (failures.length > 0) {
    print(`FAILED (seed ${options.seed}):`);
    for (const why of failures) print(`  - ${why}`);
    return 1;
  }
  print('passed');
  return 0;
}

/** A log line without its pid and specifics, so that repeats of one warning count together. */
function summarize(line: string): string {
  return line.replace(/^\S+\s+\[\d+\]\s*/, '').replace(/\(\d+\.\d+\.\d+\.\d+:\d+\)/g, '(client)').replace(/\d+/g, 'N').slice(0, 80);
}

function progress(elapsedMs: number, stats: AttackStats, canary: Canary, kib: number | null): string {
  const c = canary.summary();
  return `[${(elapsedMs / 1000).toFixed(0).padStart(5)} s] ${count(stats.connections)} connections, ${count(stats.frames)} frames, `
    + `canary ${count(c.roundTrips)} round trips p50 ${ms(c.p50)} max ${ms(c.max)}, RSS ${MiB(kib)}`;
}

async function stopServer(server: ServerHandle): Promise<string> {
  await server.stop();
  return server.exitedWith ?? 'unknown';
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

main().then((code) => process.exit(code), (error: unknown) => {
  process.stderr.write(`fuzz: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
