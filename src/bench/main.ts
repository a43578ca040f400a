// `npm run bench`: the project's built-in benchmark. It starts the server (dist/main.js) itself,
// a fresh one for each scenario, or targets a running one (--url), and measures:
//
//   codec    the frame codec alone, in this process (codec.ts)
//   stages   the worker's delivery path stage by stage, in a child process of its own (stages.ts)
//   handshakes  what one WebSocket handshake costs, layer by layer (node:net, node:http, the ASGI
//            dispatcher, the chat), in a child process of its own (handshakes.ts)
//   http     GET / requests per second over keep-alive connections (http-load.ts)
//   idle     server memory per open connection, handshakes per second (idle.ts)
//   fanout   the lobby's broadcast: deliveries per second, delivery ratio, latency, server CPU per
//            delivery; a ramp to the highest rate delivered completely, then a fixed rate (fanout.ts);
//            by default twice, with the message log on and off (memory only), side by side, with
//            the log's flushes and bytes per second read from the server's /metrics (server-log.ts);
//            with --redis URL, also on two server trees sharing that Redis, and on one
//   rooms    the same figures for rooms: R rooms × M members, P publishers sending new_message
//            (rooms.ts); both run on the same measuring machinery (deliveries.ts)
//
// and prints one table per scenario, the machine, and what the load generator itself used. The
// load generator is a Node process on the same machine as the server: when it saturates, it, not
// the server, sets the figures, so the report says when that happens. Figures compare only within
// one run on one machine; `--json FILE` keeps them all.
//
// Exit codes: 0 done, 1 a scenario could not run (the server did not start...), 2 bad flags.
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import type { Target } from './client.js';
import { runCodec, type CodecRow } from './codec.js';
import { runHandshakesChild, type HandshakesResult } from './handshakes.js';
import { runStagesChild, type StagesResult } from './stages.js';
import { defaultThreads, type DeliveryOptions, type DeliveryResult, type StepResult } from './deliveries.js';
import { runFanout, type FanoutResult } from './fanout.js';
import { runHttp, type HttpResult } from './http-load.js';
import { runIdle, type IdleResult } from './idle.js';
import { MAX_PUBLISHERS, MIN_SIZE, textLength } from './message.js';
import { HAVE_PROC, openFilesLimit, type CpuWindow } from './proc.js';
import { num, table } from './report.js';
import { BENCH_RATE, roomsServerEnv, runRooms, type RoomsResult } from './rooms.js';
import { startServer, type ServerHandle } from './server-process.js';
import { readLogCounters } from './server-log.js';
import { checkRedisUrl, describeRedis, flushRedis, type RedisInfo } from './redis-target.js';
import { checkSecret } from '../jwt.js';
import { describeRedisUrl, type RedisUrl } from '../redis/url.js';

const USAGE = `Usage: npm run bench -- [options]      (or: node dist/bench/main.js [options])

Benchmarks the chat server: codec throughput, HTTP requests/s, idle connections, the lobby's
fan-out and rooms. By default it starts \`node dist/main.js --workers W\` itself, a fresh server
per scenario.

Scenarios and server:
  --only LIST           scenarios to run, comma-separated: codec,stages,handshakes,http,idle,fanout,rooms
                        (default all)
  --workers N           server worker processes (default 1)
  --url URL             benchmark a running server instead (e.g. http://127.0.0.1:8080);
                        its CPU and memory are measured only with --server-pid
  --server-pid PID      root process of the server at --url, for /proc accounting
  --quick               a fast smoke run of every scenario (< 40 s); flags given override it

Lobby fan-out (C subscribers, P publishers on /chat; every message reaches every connection):
  --subs LIST           subscriber counts, one run each (default 1000; e.g. 100,1000,5000)
  --pubs N              publishers (default 2)
  --log LIST            the message log on the server: on, off (memory only: CHAT_DATA_DIR empty)
                        or on,off (default): both, side by side, each on its own fresh servers,
                        the two alternating (on, off, then off, on...) so that noise hits both;
                        the fixed runs of a repeat share one rate (half the lower ramp best)
  --repeats N           runs of each side (--log modes, --redis runs; default 1), alternating;
                        the summary gives their medians
  --redis URL           also run the fan-out on servers sharing Redis (CHAT_REDIS_URL=URL): on TWO
                        server trees (--workers W each; subscribers split over them, publishers on
                        both: --pubs at least 2), and on ONE tree, beside the --log runs (with
                        --redis, --log defaults to on; --log none: the Redis runs only). The URL's
                        database is EMPTIED (FLUSHDB) before every run: give the benchmark a Redis,
                        or a db number, of its own, e.g. one started with
                          redis-server --port 6390 --save '' --appendonly yes --appendfsync always
                        Redis's CPU is reported apart from the servers' when it runs on this
                        machine (from /proc, its pid from INFO server); otherwise: not measured

Rooms (R rooms of M members; P publishers, each a member of R/P rooms, send new_message;
every message reaches its room's M members, the publisher's own copy being its answer):
  --rooms R             rooms (default 50; --quick 10)
  --members M           members per room, the publisher included (default 20; --quick 10)
  --publishers P        publishers, at most R: one per room by default
  The server started for rooms gets a fresh CHAT_SECRET and CHAT_RATE_PER_SECOND =
  CHAT_RATE_BURST = ${BENCH_RATE}, so that the rate limiter does not refuse the load (and
  CHAT_MAX_ROOM_MEMBERS / CHAT_MAX_ROOMS_PER_USER when M or R/P pass 100). With --url, set
  CHAT_SECRET to the server's secret; its own limits apply.

Both fan-out scenarios:
  --size BYTES          the lobby's published JSON size (default 128, at least ${MIN_SIZE}); a
                        room message's text is the lobby message's (BYTES - ${MIN_SIZE - textLength(MIN_SIZE)} characters;
                        the chat accepts up to 4096 unless CHAT_MAX_MESSAGE_LENGTH)
  --mode MODE           ramp, fixed, or both: a ramp, then a fixed run at half its best rate
                        on a fresh server (default both)
  --rate MSGS           fixed run's rate, messages/s over all publishers (default: half the
                        ramp's best, or of its first rate if no step passed; without a ramp,
                        about 20,000 deliveries/s)
  --duration S          fixed run's duration (default 10)
  --step S              ramp step duration (default 3)
  --ramp-start MSGS     first ramp rate (default: about 5,000 deliveries/s)
  --ramp-factor X       rate multiplier per step (default 1.5)
  --max-steps N         most ramp steps (default 20)
  --max-p99 MS          a ramp step fails above this p99 latency (default 500)
  --drain S             time a step's last messages may take to arrive (default 2)
  --threads N           load generator threads for receivers (default ${defaultThreads()} here)

Idle, HTTP, codec:
  --idle-conns LIST     connection counts to reach, ascending (default 1000,10000)
  --concurrency N       handshakes in flight when opening connections (default 200)
  --http-conns N        keep-alive connections for GET / (default 8)
  --http-duration S     measured HTTP duration (default 5)
  --codec-time S        time per codec case (default 0.3)

Output:
  --json FILE           write every figure as JSON
  --help                show this help
`;

interface Options {
  only: Set<string>;
  workers: number;
  url: string | null;
  serverPid: number | null;
  quick: boolean;
  subs: number[];
  pubs: number;
  /** The fan-out's sides, in order: --log modes, the --redis runs, or the --url server as is. */
  setups: Setup[];
  /** --redis: the URL as given (the servers' CHAT_REDIS_URL) and parsed (the benchmark's own client). */
  redis: { text: string; url: RedisUrl } | null;
  repeats: number;
  rooms: number;
  members: number;
  publishers: number;
  size: number;
  mode: 'ramp' | 'fixed' | 'both';
  rate: number | null;
  durationS: number;
  stepS: number;
  rampStart: number | null;
  rampFactor: number;
  maxSteps: number;
  maxP99Ms: number;
  drainS: number;
  threads: number;
  idleConns: number[];
  concurrency: number;
  httpConns: number;
  httpDurationS: number;
  codecTimeS: number;
  json: string | null;
  // Not flags: timings that --quick shortens.
  settleS: number;
  holdS: number;
  httpWarmupS: number;
}

class UsageError extends Error {}

/**
 * One side of the fan-out comparison: where the chat keeps its log, and how many server trees
 * serve it. on: the local message log (a fresh data dir per server); off: memory only (an empty
 * CHAT_DATA_DIR); as is: the --url server; redis: CHAT_REDIS_URL=--redis, `trees` trees sharing it.
 */
interface Setup {
  name: string;
  log: 'on' | 'off' | 'as is' | 'redis';
  trees: number;
}

const LOG_SETUPS: Record<'on' | 'off', Setup> = { on: { name: 'log on', log: 'on', trees: 1 }, off: { name: 'log off', log: 'off', trees: 1 } };
/** --redis: two trees, the point of sharing Redis, then one tree on the same Redis. */
const REDIS_SETUPS: Setup[] = [{ name: 'redis, 2 trees', log: 'redis', trees: 2 }, { name: 'redis, 1 tree', log: 'redis', trees: 1 }];

const SCENARIOS = ['codec', 'stages', 'handshakes', 'http', 'idle', 'fanout', 'rooms'];

/** The default profile (a few minutes on a 2-core machine) and the --quick one (< 40 s). */
const PROFILES = {
  default: { subs: [1000], rooms: 50, members: 20, durationS: 10, stepS: 3, maxSteps: 20, drainS: 2, idleConns: [1000, 10000], httpDurationS: 5, httpWarmupS: 1, codecTimeS: 0.3, settleS: 1, holdS: 2 },
  quick: { subs: [100], rooms: 10, members: 10, durationS: 2, stepS: 1, maxSteps: 4, drainS: 1, idleConns: [200, 1000], httpDurationS: 1, httpWarmupS: 0.3, codecTimeS: 0.05, settleS: 0.3, holdS: 0.5 },
};

function parseOptions(argv: string[]): Options | 'help' {
  let values: Record<string, string | boolean | undefined>;
  try {
    const string = { type: 'string' } as const;
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        only: string, workers: string, url: string, 'server-pid': string, quick: { type: 'boolean' },
        subs: string, pubs: string, log: string, repeats: string, redis: string, rooms: string, members: string, publishers: string, size: string, mode: string, rate: string, duration: string, step: string,
        'ramp-start': string, 'ramp-factor': string, 'max-steps': string, 'max-p99': string, drain: string,
        threads: string, 'idle-conns': string, concurrency: string, 'http-conns': string,
        'http-duration': string, 'codec-time': string, json: string, help: { type: 'boolean' },
      },
    }));
  } catch (error) {
    throw new UsageError((error as Error).message.split('. ')[0]!);
  }
  if (values['help']) return 'help';
  const profile = values['quick'] ? PROFILES.quick : PROFILES.default;
  const text = (name: string): string | undefined => values[name] as string | undefined;
  const number = (name: string, fallback: number, min: number, max: number, integer = true): number => {
    const raw = text(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(value) || (integer && !Number.isInteger(value)) || value < min || value > max) {
      throw new UsageError(`--${name} must be ${integer ? 'a whole number' : 'a number'} from ${min} to ${max}, got "${raw}"`);
    }
    return value;
  };
  const list = (name: string, fallback: number[], min: number, max: number): number[] => {
    const raw = text(name);
    if (raw === undefined) return fallback;
    const items = raw.split(',').map((s) => s.trim());
    const values = items.map(Number);
    if (items.some((s) => !/^\d+$/.test(s)) || values.some((v) => v < min || v > max)) {
      throw new UsageError(`--${name} must be a comma-separated list of whole numbers from ${min} to ${max}, got "${raw}"`);
    }
    return values;
  };

  const onlyRaw = text('only');
  const only = new Set(onlyRaw === undefined ? SCENARIOS : onlyRaw.split(',').map((s) => s.trim()));
  for (const name of only) if (!SCENARIOS.includes(name)) throw new UsageError(`--only: unknown scenario "${name}" (choose from ${SCENARIOS.join(', ')})`);
  const mode = text('mode') ?? 'both';
  if (mode !== 'ramp' && mode !== 'fixed' && mode !== 'both') throw new UsageError(`--mode must be ramp, fixed or both, got "${mode}"`);
  const url = text('url') ?? null;
  if (url !== null) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new UsageError(`--url is not a URL: "${url}"`);
    }
    if (!['http:', 'ws:'].includes(parsed.protocol)) throw new UsageError(`--url must be http:// or ws:// (no TLS), got "${url}"`);
  }
  const logRaw = text('log');
  if (logRaw !== undefined && url !== null) throw new UsageError('--log goes without --url (the benchmark can only choose the log of a server it starts)');
  const redisRaw = text('redis');
  let redis: Options['redis'] = null;
  if (redisRaw !== undefined) {
    if (url !== null) throw new UsageError('--redis goes without --url (the benchmark starts the server trees that share Redis)');
    try {
      redis = { text: redisRaw.trim(), url: checkRedisUrl(redisRaw) };
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  }
  // With --redis the point is Redis beside the usual one-tree server: the local log alone by default.
  const logModes = logRaw?.trim() === 'none' && redis !== null ? [] : (logRaw ?? (redis === null ? 'on,off' : 'on')).split(',').map((s) => s.trim());
  if (logModes.some((m) => m !== 'on' && m !== 'off') || new Set(logModes).size !== logModes.length) {
    throw new UsageError(`--log must be on, off, on,off or off,on${redis === null ? '' : ', or none (with --redis)'}, got "${logRaw}"`);
  }
  if (text('server-pid') !== undefined && url === null) throw new UsageError('--server-pid goes with --url (a server started by the benchmark is measured anyway)');
  const idleConns = list('idle-conns', profile.idleConns, 1, 1_000_000);
  if (idleConns.some((v, i) => i > 0 && v <= idleConns[i - 1]!)) throw new UsageError('--idle-conns must be ascending (each level adds connections to the previous one)');
  const rooms = number('rooms', profile.rooms, 1, 100_000);
  // The settings' bound on CHAT_MAX_ROOM_MEMBERS (config.ts).
  const members = number('members', profile.members, 2, 100_000);
  const publishers = number('publishers', Math.min(rooms, MAX_PUBLISHERS), 1, Math.min(rooms, MAX_PUBLISHERS));
  const pubs = number('pubs', 2, 1, MAX_PUBLISHERS);
  if (redis !== null && pubs < 2) throw new UsageError('--redis needs --pubs 2 or more: a publisher on each of the two trees');

  return {
    only,
    workers: number('workers', 1, 1, 256),
    url,
    serverPid: text('server-pid') === undefined ? null : number('server-pid', 0, 1, 2 ** 31),
    quick: Boolean(values['quick']),
    subs: list('subs', profile.subs, 1, 1_000_000),
    pubs,
    setups: url !== null ? [{ name: 'as is', log: 'as is', trees: 1 }]
      : [...(redis === null ? [] : REDIS_SETUPS), ...logModes.map((m) => LOG_SETUPS[m as 'on' | 'off'])],
    redis,
    repeats: number('repeats', 1, 1, 20),
    rooms,
    members,
    publishers,
    size: number('size', 128, MIN_SIZE, 1_000_000),
    mode,
    rate: text('rate') === undefined ? null : number('rate', 0, 0.1, 10_000_000, false),
    durationS: number('duration', profile.durationS, 0.5, 3600, false),
    stepS: number('step', profile.stepS, 0.5, 600, false),
    rampStart: text('ramp-start') === undefined ? null : number('ramp-start', 0, 0.1, 10_000_000, false),
    rampFactor: number('ramp-factor', 1.5, 1.01, 10, false),
    maxSteps: number('max-steps', profile.maxSteps, 1, 90),
    maxP99Ms: number('max-p99', 500, 1, 600_000, false),
    drainS: number('drain', profile.drainS, 0, 600, false),
    threads: number('threads', defaultThreads(), 1, 64),
    idleConns,
    concurrency: number('concurrency', 200, 1, 100_000),
    httpConns: number('http-conns', 8, 1, 10_000),
    httpDurationS: number('http-duration', profile.httpDurationS, 0.2, 3600, false),
    codecTimeS: number('codec-time', profile.codecTimeS, 0.01, 60, false),
    json: text('json') ?? null,
    settleS: profile.settleS,
    holdS: profile.holdS,
    httpWarmupS: profile.httpWarmupS,
  };
}

// ---- running ------------------------------------------------------------------------------------

const log = (line: string): void => {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
};
/** Results go to stdout, progress to stderr: `npm run bench > results.txt` keeps the tables. */
const print = (text = ''): void => {
  process.stdout.write(`${text}\n`);
};

/** The servers running now (every tree of a --redis run), for Ctrl-C to stop. */
let currentServers: ServerHandle[] = [];

interface ServerInfo {
  target: { host: string; port: number };
  pid: number | null;
  /** Lines the server logged during the scenario. */
  logLines: string[];
  exitedWith: string | null;
}

/**
 * Runs `body` against a fresh server (or the --url one) and stops the server afterwards. `env` is
 * added to the fresh server's environment.
 */
async function withServer<T>(o: Options, extraArgs: string[], body: (server: ServerInfo) => Promise<T>, env: Record<string, string> = {}): Promise<{ value: T; server: ServerInfo }> {
  if (o.url !== null) {
    const parsed = new URL(o.url);
    const server: ServerInfo = {
      target: { host: parsed.hostname.replace(/^\[|\]$/g, ''), port: Number(parsed.port || 80) },
      pid: o.serverPid, logLines: [], exitedWith: null,
    };
    return { value: await body(server), server };
  }
  const { value, servers } = await withTrees(o, 1, extraArgs, (servers) => body(servers[0]!), env);
  return { value, server: servers[0]! };
}

/**
 * Runs `body` against `trees` fresh servers, each a `node dist/main.js --workers W` tree of its
 * own (several serve one chat only when `env` names a shared Redis), and stops them all
 * afterwards. They start one after the other: the first to reach Redis stores the chat's settings
 * there (src/shared-chat.ts), and the others check theirs against it.
 */
async function withTrees<T>(o: Options, trees: number, extraArgs: string[], body: (servers: ServerInfo[]) => Promise<T>, env: Record<string, string>): Promise<{ value: T; servers: ServerInfo[] }> {
  const handles: ServerHandle[] = [];
  currentServers = handles;
  try {
    for (let i = 0; i < trees; i++) handles.push(await startServer(o.workers, extraArgs, env));
    const servers: ServerInfo[] = handles.map((handle) => ({ target: { host: handle.host, port: handle.port }, pid: handle.pid, logLines: handle.logLines, exitedWith: null }));
    await new Promise((resolve) => setTimeout(resolve, 300)); // workers finish starting
    const value = await body(servers);
    servers.forEach((server, i) => { server.exitedWith = handles[i]!.exitedWith; });
    return { value, servers };
  } finally {
    await Promise.all(handles.map((handle) => handle.stop()));
    currentServers = [];
  }
}

const chatTarget = (server: ServerInfo): Target => ({ ...server.target, path: '/chat' });

function machine(): Record<string, unknown> {
  const cpus = os.cpus();
  return {
    cores: os.availableParallelism(),
    cpu_model: cpus[0]?.model.trim() ?? 'unknown',
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    memory_gib: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    open_files_limit: openFilesLimit(),
    load_average_at_start: os.loadavg().map((x) => Math.round(x * 100) / 100),
    proc_accounting: HAVE_PROC,
  };
}

/** Notes for the end of the report: saturation, noise, server complaints. */
const warnings: string[] = [];
const SATURATED = 0.9;

/** Where (which step or level of a scenario) the load generator or the machine ran out of CPU. */
interface CpuNotes { saturated: string[]; busiestLoop: number; allCoresBusy: string[]; otherMax: number }
const cpuNotes = new Map<string, CpuNotes>();

/** Records how the load generator and the machine fared in one window of `scenario`. */
function checkLoadgen(scenario: string, where: string, loops: { main: number; subscribers?: number[] }, cpu: CpuWindow): void {
  let notes = cpuNotes.get(scenario);
  if (!notes) cpuNotes.set(scenario, (notes = { saturated: [], busiestLoop: 0, allCoresBusy: [], otherMax: 0 }));
  // A thread's event loop busy > 90% of the time: it could not keep up (or did not get a core).
  const busiest = Math.max(loops.main, ...(loops.subscribers ?? []));
  if (busiest > SATURATED) notes.saturated.push(where);
  notes.busiestLoop = Math.max(notes.busiestLoop, busiest);
  // Every core busy: the server and the load generator competed for the CPU.
  const cores = os.availableParallelism();
  const used = (cpu.server_cores ?? 0) + (cpu.redis_cores ?? 0) + cpu.loadgen_cores + (cpu.other_cores ?? 0);
  if (cpu.server_cores !== null && used > SATURATED * cores) notes.allCoresBusy.push(where);
  // (Without the server's pid, its CPU lands in "other": no noise verdict then.)
  if (cpu.server_cores !== null && cpu.other_cores !== null) notes.otherMax = Math.max(notes.otherMax, cpu.other_cores);
}

/** One to three lines per scenario from the notes above. */
function cpuWarnings(scenario: string): void {
  const notes = cpuNotes.get(scenario);
  if (!notes) return;
  if (notes.saturated.length > 0) {
    warnings.push(`${scenario}: the load generator was saturated (a thread up to ${Math.round(notes.busiestLoop * 100)}% busy) in ${notes.saturated.join(', ')}: ` +
      'there the figures show its limit, not (only) the server\'s.');
  }
  if (notes.allCoresBusy.length > 0) {
    warnings.push(`${scenario}: all ${os.availableParallelism()} cores were busy in ${notes.allCoresBusy.join(', ')}: the server and the load generator competed for the CPU.`);
  }
  if (notes.otherMax > 0.25) warnings.push(`${scenario}: other processes used up to ${num(notes.otherMax, 2)} cores meanwhile: the figures are noisy.`);
}

function serverNotes(scenario: string, server: ServerInfo): void {
  if (server.exitedWith) warnings.push(`${scenario}: the server exited during the run (${server.exitedWith}).`);
  if (server.logLines.length === 0) return;
  // Group the lines by what they say: pids, addresses and numbers vary from line to line.
  const groups = new Map<string, number>();
  for (const line of server.logLines) {
    const gist = line.replace(/\[\d+\]/g, '[pid]').replace(/\d+\.\d+\.\d+\.\d+:\d+/g, 'ADDR').replace(/\b\d+\b/g, 'N').replace(/\s+/g, ' ').slice(0, 160);
    groups.set(gist, (groups.get(gist) ?? 0) + 1);
  }
  const top = [...groups].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([gist, n]) => `${n}× "${gist}"`);
  warnings.push(`${scenario}: the server logged ${server.logLines.length} warning/error line(s): ${top.join(', ')}`);
}

function printCodec(rows: CodecRow[]): void {
  print(table(
    'Codec: src/server/frames.ts in-process (parse = masked client frames in 64 KiB chunks; MB = 10^6 bytes)',
    ['operation', 'payload', 'MB/s', 'frames/s'],
    rows.map((r) => [r.operation, r.payload_bytes >= 1024 ? `${r.payload_bytes / 1024} KiB` : `${r.payload_bytes} B`, num(r.mb_per_s, 1), r.frames_per_s]),
  ));
}

function printStages(rows: StagesResult[]): void {
  print(table(
    `Stages: one worker's delivery path in-process (stages.ts), ${rows[0]?.subs ?? 0} real sockets not read, CPU µs per delivery; ` +
      'ipc = parsing the batch, deliver = Hub.receive to the coalesced frame, write = the socket writes, after = the rest of the turn',
    ['messages/turn', 'ipc', 'deliver', 'write', 'after', 'total', 'heap B/delivery', 'GCs', 'GC µs/delivery'],
    rows.map((r) => [r.per_batch, num(r.us_per_delivery.ipc, 3), num(r.us_per_delivery.deliver, 2), num(r.us_per_delivery.write, 2),
      num(r.us_per_delivery.after, 2), num(r.us_per_delivery.total, 2), r.heap_bytes_per_delivery, r.gc.count, num(r.gc.us_per_delivery, 2)]),
  ));
}

function printHandshakes(r: HandshakesResult): void {
  const us = r.cpu_us_per_handshake;
  const gc = r.gc_us_per_handshake;
  print(table(
    `Handshakes: one process's CPU µs per WebSocket handshake, each layer on top of the one before (handshakes.ts), ` +
      `${r.conns} connections, median of ${r.repeats}; the layer's own cost is the difference from the row above`,
    ['layer', 'CPU µs/handshake', 'layer µs', 'GC µs/handshake'],
    [['node:net (accept, read, one write)', us.net, us.net, gc.net], ['node:http upgrade', us.http, us.http - us.net, gc.http],
      ['ASGI dispatcher, minimal app', us.asgi, us.asgi - us.http, gc.asgi], ['chat (hub, greeting)', us.chat, us.chat - us.asgi, gc.chat]],
  ));
}

function printHttp(r: HttpResult): void {
  print(table(
    `HTTP: GET / (${num(r.body_bytes)} B page) over ${r.connections} keep-alive connections, ${num(r.cpu.wall_s, 1)} s`,
    ['requests/s', 'p50 ms', 'p99 ms', 'max ms', 'server cores', 'server CPU µs/req', 'loadgen cores', 'loadgen loop busy', 'non-200', 'errors'],
    [[r.requests_per_s, num(r.latency.p50_ms, 2), num(r.latency.p99_ms, 2), num(r.latency.max_ms, 2), num(r.cpu.server_cores, 2),
      num(r.server_cpu_us_per_request, 1), num(r.cpu.loadgen_cores, 2), `${Math.round(r.loop_busy * 100)}%`, r.non_200,
      Object.values(r.errors).reduce((a, b) => a + b, 0)]],
  ));
}

function printIdle(r: IdleResult, serverArgs: string[]): void {
  print(table(
    `Idle connections: server RSS per open /chat connection (baseline ${r.baseline_rss_kib === null ? 'n/a' : `${num(r.baseline_rss_kib / 1024, 1)} MiB`}` +
    `${serverArgs.length ? `; server started with ${serverArgs.join(' ')}` : ''})`,
    ['connections', 'handshakes/s', 'handshake p50 ms', 'p99 ms', 'server CPU µs/handshake', 'server RSS MiB', 'RSS KiB/conn', 'loadgen cores', 'loadgen loop busy', 'failed'],
    r.levels.map((l) => [l.connections, l.handshakes_per_s, num(l.handshake_latency.p50_ms, 2), num(l.handshake_latency.p99_ms, 2),
      l.server_cpu_us_per_handshake, l.rss_kib === null ? null : num(l.rss_kib / 1024, 1), num(l.rss_kib_per_connection, 1),
      num(l.connect_cpu.loadgen_cores, 2), `${Math.round(l.loop_busy * 100)}%`, l.failed]),
  ));
  if (r.hold) {
    const last = r.levels[r.levels.length - 1];
    print(`  holding ${num(last?.connections)} idle connections for ${num(r.hold.wall_s, 1)} s: server ${num(r.hold.server_cores, 3)} cores, ${r.dropped} dropped`);
  }
  if (r.hint) print(`  ! ${r.hint}`);
}

/** A step's row; with `redis`, Redis's cores and CPU per delivery after the server's. */
function stepRow(s: StepResult, redis: boolean): (string | number | null)[] {
  return [
    s.step, s.kind, num(s.offered_msgs_per_s, 1), s.deliveries_per_s, num(s.delivery_ratio, 4),
    num(s.latency.p50_ms, 1), num(s.latency.p99_ms, 1), num(s.latency.max_ms, 1),
    num(s.cpu.server_cores, 2), num(s.server_cpu_us_per_delivery, 2),
    ...(redis ? [num(s.cpu.redis_cores, 2), num(s.redis_cpu_us_per_delivery, 2)] : []),
    s.log ? num(s.log.flushes_per_s) : '-', s.log ? num(s.log.bytes_per_s / 1000, 1) : '-',
    num(s.cpu.loadgen_cores, 2), [s.loop_busy.main, ...s.loop_busy.subscribers].map((x) => `${Math.round(x * 100)}%`).join('/'),
    s.passed ? 'pass' : 'FAIL',
  ];
}

/** A ramp run and the fixed run after it, as one result (their steps numbered in sequence). */
function combineRuns<R extends DeliveryResult>(parts: R[]): R {
  const [first, ...rest] = parts;
  const combined: R = { ...first!, steps: [...first!.steps], close_codes: { ...first!.close_codes } };
  for (const part of rest) {
    combined.steps.push(...part.steps);
    combined.fixed ??= part.fixed;
    combined.recipients ||= part.recipients;
    combined.out_of_order += part.out_of_order;
    combined.foreign_texts += part.foreign_texts;
    for (const [k, v] of Object.entries(part.close_codes)) combined.close_codes[k] = (combined.close_codes[k] ?? 0) + v;
    if (part.error) combined.error = combined.error ? `${combined.error}; fixed run: ${part.error}` : `fixed run: ${part.error}`;
  }
  return combined;
}

/** Rooms: the error answers of both runs, summed (each run has its own server). */
function combineErrorAnswers(parts: RoomsResult[]): Record<string, number> {
  const total: Record<string, number> = {};
  for (const part of parts) for (const [k, v] of Object.entries(part.error_answers)) total[k] = (total[k] ?? 0) + v;
  return total;
}

/** The title line of a delivery scenario's table. */
function deliveryTitle(r: FanoutResult | RoomsResult, label: string): string {
  const receivers = r.connect.subscribers;
  if (r.scenario === 'fanout') {
    const trees = r.trees > 1 ? `, split over ${r.trees} server trees` : '';
    return `Fan-out (lobby${label}): ${r.subs} subscribers + ${r.pubs} publishers (${r.recipients} recipients${trees}), ${r.size} B messages, ` +
      `${r.threads} subscriber thread(s); connected in ${num(receivers.elapsed_s, 2)} s (${num(receivers.handshakes_per_s)}/s)`;
  }
  return `Rooms: ${num(r.rooms)} rooms × ${r.members} members (${num(r.connections)} connections), ${r.publishers} publisher(s) sending new_message ` +
    `(${num(r.recipients)} deliveries per message, the publisher's own copy = its ack), ${textLength(r.size)}-character texts, ` +
    `${r.threads} member thread(s); ${num(r.setup.signed_in)} signed in and ${num(r.setup.rooms_created)} rooms created in ${num(r.setup.elapsed_s, 2)} s`;
}

function printDeliveries(r: FanoutResult | RoomsResult, o: Options, label = ''): void {
  const name = r.scenario === 'fanout' ? `Fan-out (lobby${label}): ${r.subs} subscribers + ${r.pubs} publishers` : `Rooms: ${r.rooms} rooms × ${r.members} members, ${r.publishers} publishers`;
  if (r.steps.length === 0) {
    print(`${name}: no measurement`);
    if (r.error) print(`  ! ${r.error}`);
    return;
  }
  const redis = r.steps.some((s) => s.cpu.redis_cpu_s !== null);
  print(table(
    deliveryTitle(r, label),
    ['step', 'kind', 'offered msg/s', 'deliveries/s', 'ratio', 'p50 ms', 'p99 ms', 'max ms', 'server cores', 'server µs/delivery',
      ...(redis ? ['Redis cores', 'Redis µs/delivery'] : []), 'log flushes/s', 'log KB/s', 'loadgen cores', 'loops busy main/subs', 'result'],
    r.steps.map((s) => stepRow(s, redis)),
  ));
  if (r.scenario === 'rooms' && o.url === null) {
    print(`  Rate limit raised for the benchmark (CHAT_RATE_PER_SECOND = CHAT_RATE_BURST = ${BENCH_RATE} per connection): these figures are throughput, not the limiter.`);
  }
  if (r.ramp) {
    const b = r.ramp.best;
    print(b
      ? `  Highest rate delivered completely: ${num(b.offered_msgs_per_s, 1)} msg/s = ${num(b.deliveries_per_s)} deliveries/s ` +
        `(p99 ${num(b.latency.p99_ms, 1)} ms, server ${num(b.cpu.server_cores, 2)} cores, ${num(b.server_cpu_us_per_delivery, 2)} µs CPU per delivery)`
      : `  No ramp step passed (start rate ${o.rampStart ?? 'auto'}).`);
    print(`  Ramp ended: ${r.ramp.ended_because}`);
  }
  if (r.fixed) {
    const f = r.fixed;
    print(`  Fixed ${num(f.offered_msgs_per_s, 1)} msg/s for ${num(o.durationS, 1)} s: ${num(f.received)} of ${num(f.expected)} deliveries ` +
      `(ratio ${num(f.delivery_ratio, 4)}), p50 ${num(f.latency.p50_ms, 2)} ms, p99 ${num(f.latency.p99_ms, 2)} ms, max ${num(f.latency.max_ms, 2)} ms`);
  }
  if (r.scenario === 'rooms') {
    const sent = r.steps.reduce((n, s) => n + s.sent, 0);
    const acks = r.steps.reduce((n, s) => n + (s.acks ?? 0), 0);
    print(`  Acknowledgements (the publishers' own copies): ${num(acks)} of ${num(sent)} messages sent` +
      (Object.keys(r.error_answers).length > 0 ? `; error answers: ${JSON.stringify(r.error_answers)}` : '; no error answer'));
  }
  if (r.out_of_order > 0) print(`  ! ${r.out_of_order} deliveries arrived out of order (or twice) from their publisher`);
  if (Object.keys(r.close_codes).length > 0) print(`  ! connections closed during the run: ${JSON.stringify(r.close_codes)}`);
  if (r.error) print(`  ! ${r.error}`);
}

/**
 * A delivery scenario (the lobby's fan-out, rooms): a ramp that finds the capacity, then a fixed
 * run at half of it that measures the latency of a server with headroom (--mode both). Each on a
 * fresh server with fresh connections: a ramp that ends past saturation may leave connections
 * closed and queues full behind it. Returns the result for --json; false if it could not run.
 */
async function runDeliveryScenario<R extends FanoutResult | RoomsResult>(
  o: Options, scenario: string, env: () => Record<string, string>,
  run: (delivery: DeliveryOptions, env: Record<string, string>) => Promise<R>,
): Promise<{ report: unknown; ok: boolean }> {
  const options = (mode: 'ramp' | 'fixed', rate: number | null, firstStep: number, server: ServerInfo): DeliveryOptions => ({
    target: chatTarget(server), serverPid: server.pid, size: o.size, mode, rate, firstStep,
    durationS: o.durationS, rampStart: o.rampStart, rampFactor: o.rampFactor, stepS: o.stepS,
    maxSteps: o.maxSteps, drainS: o.drainS, maxP99Ms: o.maxP99Ms, minRatio: 0.999, threads: o.threads,
    concurrency: o.concurrency, connectTimeoutS: 60, log,
    logCounters: () => readLogCounters(server.target.host, server.target.port),
  });
  const runOnFreshServer = (mode: 'ramp' | 'fixed', rate: number | null, firstStep: number): Promise<{ value: R; server: ServerInfo }> => {
    const serverEnv = env(); // a fresh secret for each server
    return withServer(o, [], (server) => run(options(mode, rate, firstStep, server), serverEnv), serverEnv);
  };
  try {
    const parts: { value: R; server: ServerInfo }[] = [];
    if (o.mode !== 'fixed') parts.push(await runOnFreshServer('ramp', null, 1));
    if (o.mode !== 'ramp') {
      // Half the ramp's best; if no step passed, half its first rate (which was already too much:
      // the default of ~20,000 deliveries/s would only measure an overloaded server).
      const ramp = parts[0]?.value;
      const base = ramp?.ramp?.best?.offered_msgs_per_s ?? ramp?.steps[0]?.offered_msgs_per_s;
      const rate = o.rate ?? (base ? Math.max(0.1, Math.round(base * 5) / 10) : null);
      parts.push(await runOnFreshServer('fixed', rate, (parts[0]?.value.steps.length ?? 0) + 1));
    }
    const value = combineRuns(parts.map((p) => p.value));
    if (value.scenario === 'rooms') value.error_answers = combineErrorAnswers(parts.map((p) => p.value as RoomsResult));
    printDeliveries(value, o);
    // Judge saturation where it matters: the best ramp step, the first failing one, the fixed run.
    for (const step of [value.ramp?.best, value.ramp?.first_failure, value.fixed]) {
      if (step) checkLoadgen(scenario, `step ${step.step}`, step.loop_busy, step.cpu);
    }
    cpuWarnings(scenario);
    if (value.error) warnings.push(`${scenario}: ${value.error}`);
    if (value.scenario === 'rooms' && Object.keys(value.error_answers).length > 0) warnings.push(`${scenario}: error answers ${JSON.stringify(value.error_answers)}`);
    for (const part of parts) serverNotes(`${scenario} (${part.value.ramp ? 'ramp' : 'fixed'})`, part.server);
    return { report: { ...value, server_log: parts.flatMap((p) => p.server.logLines) }, ok: true };
  } catch (error) {
    print(`${scenario}: could not run: ${(error as Error).message}`);
    return { report: { error: (error as Error).message }, ok: false };
  }
}

// ---- the lobby's fan-out: the message log on and off, Redis with two trees and one --------------

/** One run of the fan-out (a ramp, then a fixed run; each on fresh servers) on one setup. */
interface FanoutRun {
  setup: Setup;
  repeat: number;
  result: FanoutResult;
  serverLog: string[];
  /** Redis: the keys FLUSHDB removed before each part's trees started (the ramp's, the fixed run's). */
  redisFlushed: number[] | null;
}

/**
 * The environment of fresh servers for `setup`. Log on is the default (a fresh data dir:
 * server-process.ts); with Redis, CHAT_DATA_DIR is unused, and empty so that no directory is made.
 */
function setupEnv(setup: Setup, o: Options): Record<string, string> {
  if (setup.log === 'off') return { CHAT_DATA_DIR: '' };
  if (setup.log === 'redis') return { CHAT_REDIS_URL: o.redis!.text, CHAT_DATA_DIR: '' };
  return {};
}
const keysText = (keys: number): string => `${num(keys)} key${keys === 1 ? '' : 's'}`;
const setupLabel = (setup: Setup, repeat: number, o: Options): string =>
  (setup.log === 'as is' ? '' : `, ${setup.name}`) + (o.repeats > 1 ? `, repeat ${repeat}` : '');

/**
 * The fan-out on each setup (--log modes, --redis's two trees and one) and --repeats times,
 * alternating their order (A, B, then B, A...) so that a noisy minute on the machine does not
 * fall on one side only. In each repeat the ramps run first, then the fixed runs, all at one rate
 * (--rate, or half the lowest of the ramps' bests), so that their CPU per delivery and latency
 * compare at the same load. A Redis run's database is emptied before its trees start (see
 * redis-target.ts), the ramp's and the fixed run's alike.
 */
async function runFanoutComparison(o: Options, subs: number, redis: RedisInfo | null): Promise<{ report: unknown; ok: boolean }> {
  const scenario = `fan-out ${subs} subscribers`;
  const runs: FanoutRun[] = [];
  try {
    for (let repeat = 1; repeat <= o.repeats; repeat++) {
      const order = repeat % 2 === 1 ? o.setups : [...o.setups].reverse();
      const parts = new Map<Setup, FanoutResult[]>(order.map((setup) => [setup, []]));
      const serverLogs = new Map<Setup, string[]>(order.map((setup) => [setup, []]));
      const flushed = new Map<Setup, number[]>(order.map((setup) => [setup, []]));
      const runPart = async (setup: Setup, kind: 'ramp' | 'fixed', rate: number | null, firstStep: number): Promise<void> => {
        const where = `${scenario}${setupLabel(setup, repeat, o)}`;
        if (setup.log === 'redis') {
          const keys = await flushRedis(o.redis!.url);
          flushed.get(setup)!.push(keys);
          log(`${where}: emptied ${redis!.where} (FLUSHDB; it held ${keysText(keys)})`);
        }
        log(`${where}: ${kind}`);
        const body = (servers: ServerInfo[]): Promise<FanoutResult> => runFanout({
          target: chatTarget(servers[0]!), otherTargets: servers.slice(1).map(chatTarget),
          // Every tree's primary and workers: CPU per delivery is what the whole chat spent.
          serverPid: servers.length === 1 ? servers[0]!.pid : servers.map((server) => server.pid!),
          redisPid: setup.log === 'redis' ? redis!.pid : null,
          size: o.size, mode: kind, rate, firstStep,
          durationS: o.durationS, rampStart: o.rampStart, rampFactor: o.rampFactor, stepS: o.stepS,
          maxSteps: o.maxSteps, drainS: o.drainS, maxP99Ms: o.maxP99Ms, minRatio: 0.999, threads: o.threads,
          concurrency: o.concurrency, connectTimeoutS: 60, log,
          // With Redis there is no local log to read counters from.
          ...(setup.log === 'redis' ? {} : { logCounters: () => readLogCounters(servers[0]!.target.host, servers[0]!.target.port) }),
          subs, pubs: o.pubs,
        });
        const { value, servers } = o.url !== null
          ? await withServer(o, [], (server) => body([server])).then(({ value, server }) => ({ value, servers: [server] }))
          : await withTrees(o, setup.trees, [], body, setupEnv(setup, o));
        parts.get(setup)!.push(value);
        servers.forEach((server, i) => {
          serverLogs.get(setup)!.push(...server.logLines);
          serverNotes(`${where} (${kind}${servers.length > 1 ? `, tree ${i + 1}` : ''})`, server);
        });
      };
      if (o.mode !== 'fixed') for (const setup of order) await runPart(setup, 'ramp', null, 1);
      if (o.mode !== 'ramp') {
        // One rate for every setup: half the lowest ramp best (or first rate, if no step passed).
        const bases = order.map((setup) => {
          const ramp = parts.get(setup)![0];
          return ramp?.ramp?.best?.offered_msgs_per_s ?? ramp?.steps[0]?.offered_msgs_per_s;
        }).filter((x): x is number => x !== undefined);
        const rate = o.rate ?? (bases.length > 0 ? Math.max(0.1, Math.round(Math.min(...bases) * 5) / 10) : null);
        for (const setup of order) await runPart(setup, 'fixed', rate, (parts.get(setup)![0]?.steps.length ?? 0) + 1);
      }
      for (const setup of o.setups) {
        const result = combineRuns(parts.get(setup)!);
        const redisFlushed = setup.log === 'redis' ? flushed.get(setup)! : null;
        runs.push({ setup, repeat, result, serverLog: serverLogs.get(setup)!, redisFlushed });
        printDeliveries(result, o, setupLabel(setup, repeat, o));
        if (redisFlushed !== null) {
          print(`  Redis's database was emptied (FLUSHDB) before the trees of each part started: ${redisFlushed.map(keysText).join(', then ')} removed.`);
        }
        print();
        const where = `${scenario}${setupLabel(setup, repeat, o)}`;
        for (const step of [result.ramp?.best, result.ramp?.first_failure, result.fixed]) {
          if (step) checkLoadgen(scenario, `${where} step ${step.step}`, step.loop_busy, step.cpu);
        }
        if (result.error) warnings.push(`${where}: ${result.error}`);
      }
    }
    cpuWarnings(scenario);
    const summary = printFanoutSummary(runs, o, subs, redis);
    return {
      report: {
        ...summary,
        runs: runs.map((run) => ({
          setup: run.setup.name, log: run.setup.log, repeat: run.repeat, ...run.result,
          redis_flushed_keys: run.redisFlushed, server_log: run.serverLog,
        })),
      },
      ok: true,
    };
  } catch (error) {
    print(`${scenario}: could not run: ${(error as Error).message}`);
    return { report: { error: (error as Error).message, runs }, ok: false };
  }
}

const median = (values: Array<number | null | undefined>): number | null => {
  const known = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b);
  if (known.length === 0) return null;
  const mid = known.length >> 1;
  return known.length % 2 === 1 ? known[mid]! : (known[mid - 1]! + known[mid]!) / 2;
};

/** The figures a side-by-side row shows, from one run. */
function runFigures(r: FanoutResult): Record<string, number | null> {
  const best = r.ramp?.best ?? null;
  const fixed = r.fixed;
  return {
    best_msgs_per_s: best?.offered_msgs_per_s ?? null,
    best_deliveries_per_s: best?.deliveries_per_s ?? null,
    best_us_per_delivery: best?.server_cpu_us_per_delivery ?? null,
    best_redis_us_per_delivery: best?.redis_cpu_us_per_delivery ?? null,
    best_p99_ms: best?.latency.p99_ms ?? null,
    best_flushes_per_s: best?.log?.flushes_per_s ?? null,
    best_bytes_per_s: best?.log?.bytes_per_s ?? null,
    fixed_msgs_per_s: fixed?.offered_msgs_per_s ?? null,
    fixed_deliveries_per_s: fixed?.deliveries_per_s ?? null,
    fixed_us_per_delivery: fixed?.server_cpu_us_per_delivery ?? null,
    fixed_redis_us_per_delivery: fixed?.redis_cpu_us_per_delivery ?? null,
    fixed_p50_ms: fixed?.latency.p50_ms ?? null,
    fixed_p99_ms: fixed?.latency.p99_ms ?? null,
    fixed_flushes_per_s: fixed?.log?.flushes_per_s ?? null,
    fixed_bytes_per_s: fixed?.log?.bytes_per_s ?? null,
  };
}

/** The ratios the summary shows, when both sides ran: `a` / `b`, named `label`. */
const RATIOS = [
  { label: 'on / off', a: 'log on', b: 'log off' },
  { label: '2 trees / 1 tree', a: 'redis, 2 trees', b: 'redis, 1 tree' },
  { label: 'Redis / log on, 1 tree', a: 'redis, 1 tree', b: 'log on' },
];

/** The side-by-side table: every run, each setup's medians, and the ratios between setups. */
function printFanoutSummary(runs: FanoutRun[], o: Options, subs: number, redis: RedisInfo | null): Record<string, unknown> {
  const names = o.setups.map((setup) => setup.name);
  const medians = new Map(names.map((name) => {
    const figures = runs.filter((run) => run.setup.name === name).map((run) => runFigures(run.result));
    const keys = Object.keys(figures[0] ?? {});
    return [name, Object.fromEntries(keys.map((key) => [key, median(figures.map((f) => f[key]))]))] as const;
  }));
  const withRedis = o.setups.some((setup) => setup.log === 'redis');
  const withLog = o.setups.some((setup) => setup.log !== 'redis');
  const dash = (value: number | null, text: string): string => (value === null ? '-' : text);
  const row = (label: string, f: Record<string, number | null>, digits = { rate: 1, us: 2, p: 1, p50: 2 }): string[] => [
    label, num(f['best_msgs_per_s'], digits.rate), num(f['best_deliveries_per_s'], digits.rate === 1 ? 0 : digits.rate), num(f['best_us_per_delivery'], digits.us),
    ...(withRedis ? [dash(f['best_redis_us_per_delivery']!, num(f['best_redis_us_per_delivery'], digits.us))] : []),
    num(f['best_p99_ms'], digits.p),
    num(f['fixed_msgs_per_s'], digits.rate), num(f['fixed_us_per_delivery'], digits.us),
    ...(withRedis ? [dash(f['fixed_redis_us_per_delivery']!, num(f['fixed_redis_us_per_delivery'], digits.us))] : []),
    num(f['fixed_p50_ms'], digits.p50), num(f['fixed_p99_ms'], digits.p),
    ...(withLog ? [
      dash(f['fixed_flushes_per_s']!, num(f['fixed_flushes_per_s'])), dash(f['fixed_bytes_per_s']!, num(f['fixed_bytes_per_s']! / 1e6, 2)),
      dash(f['best_flushes_per_s']!, num(f['best_flushes_per_s'])), dash(f['best_bytes_per_s']!, num(f['best_bytes_per_s']! / 1e6, 2)),
    ] : []),
  ];
  const ratioDigits = { rate: 3, us: 3, p: 2, p50: 2 };
  const rows = [
    ...runs.map((run) => row(`${run.setup.name}${o.repeats > 1 ? ` #${run.repeat}` : ''}`, runFigures(run.result))),
    ...(o.repeats > 1 ? names.map((name) => row(`${name} median`, medians.get(name)!)) : []),
  ];
  const ratios: Record<string, Record<string, number | null>> = {};
  const LOG_KEYS = ['best_flushes_per_s', 'best_bytes_per_s', 'fixed_flushes_per_s', 'fixed_bytes_per_s'];
  for (const { label, a, b } of RATIOS) {
    if (!medians.has(a) || !medians.has(b)) continue;
    const top = medians.get(a)!;
    const bottom = medians.get(b)!;
    const ratio: Record<string, number | null> = {};
    for (const key of Object.keys(top)) {
      ratio[key] = LOG_KEYS.includes(key) || top[key] === null || !bottom[key] ? null : Math.round((top[key]! / bottom[key]!) * 1000) / 1000;
    }
    // The fixed runs of one repeat share a rate, which differs between repeats: each repeat's own
    // ratio, then their median, compares at one load (the medians above may mix loads).
    if (o.repeats > 1) {
      for (const key of ['best_msgs_per_s', 'fixed_us_per_delivery', 'fixed_p50_ms', 'fixed_p99_ms']) {
        ratio[`${key}_per_repeat_median`] = median([...new Set(runs.map((run) => run.repeat))].map((repeat) => {
          const x = runs.find((run) => run.repeat === repeat && run.setup.name === a);
          const y = runs.find((run) => run.repeat === repeat && run.setup.name === b);
          const p = x && runFigures(x.result)[key];
          const q = y && runFigures(y.result)[key];
          return typeof p === 'number' && typeof q === 'number' && q !== 0 ? p / q : null;
        }));
      }
    }
    ratios[label] = ratio;
    rows.push(row(label, ratio, ratioDigits).map((cell) => (cell === '-' ? '' : cell)));
    if (o.repeats > 1) {
      const perRepeat: Record<string, number | null> = Object.fromEntries(Object.keys(ratio).map((key) => [key, null]));
      for (const key of ['best_msgs_per_s', 'fixed_us_per_delivery', 'fixed_p50_ms', 'fixed_p99_ms']) perRepeat[key] = ratio[`${key}_per_repeat_median`]!;
      rows.push(row(`${label}, median of repeats`, perRepeat, ratioDigits).map((cell) => (cell === 'n/a' || cell === '-' ? '' : cell)));
    }
  }
  const what = o.setups.length === 1 ? o.setups[0]!.name : o.setups.map((setup) => setup.name).join(' | ');
  print(table(
    `Fan-out (lobby), side by side (${what}): ${subs} subscribers + ${o.pubs} publishers, ${o.size} B messages, --workers ${o.workers}` +
      `${withRedis ? ' per tree' : ''}${o.repeats > 1 ? `, ${o.repeats} repeats alternating` : ''}; best = the ramp's highest rate delivered completely, fixed = a fixed run at one rate for all`,
    ['run', 'best msg/s', 'best deliveries/s', 'best µs/delivery', ...(withRedis ? ['best Redis µs/delivery'] : []), 'best p99 ms',
      'fixed msg/s', 'fixed µs/delivery', ...(withRedis ? ['fixed Redis µs/delivery'] : []), 'fixed p50 ms', 'fixed p99 ms',
      ...(withLog ? ['fixed flushes/s', 'fixed log MB/s', 'best flushes/s', 'best log MB/s'] : [])],
    rows,
  ));
  print(`  µs/delivery = server CPU (all its processes${withRedis ? ': with Redis, the primary and workers of every tree' : ''}) per message delivered to one connection` +
    `${withLog ? '; log MB/s = bytes the log made durable (10^6 B)' : ''}.`);
  if (withRedis && redis !== null) {
    print(`  Redis µs/delivery = Redis's own CPU per delivery, not included in µs/delivery: ${redis.pid === null ? redis.pidNote : `${redis.pidNote} (with any child it forks, such as an AOF rewrite)`}.`);
    const persistence = redis.persistence ? `appendonly ${redis.persistence.appendonly}, appendfsync ${redis.persistence.appendfsync}` : 'persistence settings unknown (CONFIG GET refused)';
    print(`  Redis: ${redis.where} (Redis ${redis.version ?? '?'}, ${persistence}); its database was emptied (FLUSHDB) before the trees of every Redis run started, ` +
      'so no run received the history of another.');
  }
  return { medians: Object.fromEntries(medians), ratios };
}

async function main(): Promise<void> {
  let o: Options;
  try {
    const parsed = parseOptions(process.argv.slice(2));
    if (parsed === 'help') {
      process.stdout.write(USAGE);
      return;
    }
    o = parsed;
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`error: ${error.message}\n\n${USAGE}`);
    process.exit(2);
  }

  const startedMs = performance.now();
  const m = machine();
  const report: Record<string, unknown> = {
    started_at: new Date().toISOString(),
    machine: m,
    // The Redis URL may hold a password: the report keeps it without.
    options: { ...o, only: [...o.only], redis: o.redis === null ? null : describeRedisUrl(o.redis.url) },
    server: o.url ?? `node dist/main.js --workers ${o.workers} (a fresh server per scenario)`,
  };
  print(`Machine: ${m['cores']} cores, ${m['cpu_model']}, Node ${m['node']}, ${m['os']}, ${m['memory_gib']} GiB RAM, ` +
    `open files limit ${m['open_files_limit'] ?? 'n/a'}, load average ${(m['load_average_at_start'] as number[]).join(' ')}`);
  print(`Server:  ${report['server']}`);
  if (o.url !== null && o.serverPid === null) print('         (its CPU and memory are not measured: give --server-pid PID to measure them from /proc)');
  print('Figures compare only within one run on one machine; the load generator shares the machine with the server.');
  print();
  let failed = false;

  // Scenarios that share a server with nothing else come first; the fan-out, longest, last.
  if (o.only.has('codec')) {
    log('codec: measuring');
    const rows = runCodec(o.codecTimeS, log);
    report['codec'] = rows;
    printCodec(rows);
    print();
  }

  if (o.only.has('stages')) {
    log('stages: measuring the delivery path in a child process');
    try {
      // 400 messages per socket either way: what the kernel keeps for a socket nobody reads.
      const rows = [runStagesChild(o.subs[0]!, 400, 1), runStagesChild(o.subs[0]!, 40, 10)];
      report['stages'] = rows;
      printStages(rows);
    } catch (error) {
      print(`Stages: could not run: ${(error as Error).message}`);
      failed = true;
    }
    print();
  }

  if (o.only.has('handshakes')) {
    log('handshakes: measuring the handshake path in a child process');
    try {
      const r = await runHandshakesChild(2000, 3);
      report['handshakes'] = r;
      printHandshakes(r);
    } catch (error) {
      print(`Handshakes: could not run: ${(error as Error).message}`);
      failed = true;
    }
    print();
  }

  if (o.only.has('http')) {
    try {
      const { value, server } = await withServer(o, [], (server) => runHttp({
        target: { ...server.target, path: '/' }, serverPid: server.pid, connections: o.httpConns,
        durationS: o.httpDurationS, warmupS: o.httpWarmupS, log,
      }));
      report['http'] = { ...value, server_log: server.logLines };
      printHttp(value);
      checkLoadgen('http', 'the measured window', { main: value.loop_busy }, value.cpu);
      cpuWarnings('http');
      serverNotes('http', server);
    } catch (error) {
      failed = true;
      report['http'] = { error: (error as Error).message };
      print(`HTTP: could not run: ${(error as Error).message}`);
    }
    print();
  }

  if (o.only.has('idle')) {
    // The server refuses connections beyond --limit-concurrency (10,000 per process by default):
    // give it room for the largest level, so the benchmark measures memory, not the limit.
    const most = Math.max(...o.idleConns);
    const extra = most + 1000 > 10_000 ? ['--limit-concurrency', String(most + 1000)] : [];
    try {
      const { value, server } = await withServer(o, extra, (server) => runIdle({
        target: chatTarget(server), serverPid: server.pid, levels: o.idleConns, concurrency: o.concurrency,
        connectTimeoutS: 60, settleS: o.settleS, holdS: o.holdS, log,
      }));
      report['idle'] = { ...value, server_log: server.logLines, server_args: extra };
      printIdle(value, o.url === null ? extra : []);
      for (const level of value.levels) checkLoadgen('idle', `the ${level.connections}-connection level`, { main: level.loop_busy }, level.connect_cpu);
      cpuWarnings('idle');
      if (value.hint) warnings.push(`idle: ${value.hint}`);
      serverNotes('idle', server);
    } catch (error) {
      failed = true;
      report['idle'] = { error: (error as Error).message };
      print(`Idle: could not run: ${(error as Error).message}`);
    }
    print();
  }

  if (o.only.has('fanout')) {
    let redis: RedisInfo | null = null;
    let problem: string | null = null;
    if (o.redis !== null) {
      try {
        redis = await describeRedis(o.redis.url);
        report['redis'] = redis;
        const persistence = redis.persistence ? `appendonly ${redis.persistence.appendonly}, appendfsync ${redis.persistence.appendfsync}` : 'persistence unknown';
        print(`Redis:   ${redis.where} (Redis ${redis.version ?? '?'}, ${persistence}), shared by the fan-out's Redis runs; its database is emptied ` +
          `(FLUSHDB) before each; its CPU: ${redis.pidNote}`);
        print();
      } catch (error) {
        problem = `Redis at ${describeRedisUrl(o.redis.url)}: ${(error as Error).message}`;
      }
    }
    if (problem !== null) {
      failed = true;
      report['fanout'] = { error: problem };
      print(`Fan-out: could not run: ${problem}`);
      print();
    } else {
      const results: unknown[] = [];
      for (const subs of o.subs) {
        const done = await runFanoutComparison(o, subs, redis);
        results.push(done.ok ? done.report : { subs, ...(done.report as object) });
        failed ||= !done.ok;
        print();
      }
      report['fanout'] = results;
    }
  }

  if (o.only.has('rooms')) {
    const scenario = `rooms ${o.rooms}×${o.members}`;
    // Against --url the tokens must be signed with that server's secret, which only the operator knows.
    let urlSecret: Buffer | null = null;
    let problem: string | null = null;
    try {
      urlSecret = o.url === null ? null : checkSecret(process.env['CHAT_SECRET']);
      if (o.url !== null && urlSecret === null) problem = 'rooms against --url need the server\'s secret: set CHAT_SECRET in the benchmark\'s environment';
    } catch (error) {
      problem = (error as Error).message;
    }
    if (problem !== null) {
      failed = true;
      report['rooms'] = { error: problem };
      print(`Rooms: could not run: ${problem}`);
    } else {
      // Each fresh server gets its own secret (in its environment); tokens are signed with it.
      const done = await runDeliveryScenario(o, scenario,
        () => (o.url === null ? roomsServerEnv(o.rooms, o.members, o.publishers) : {}),
        (delivery, env) => runRooms({
          ...delivery, rooms: o.rooms, members: o.members, publishers: o.publishers,
          secret: urlSecret ?? Buffer.from(env['CHAT_SECRET']!, 'utf8'),
        }));
      report['rooms'] = done.report;
      failed ||= !done.ok;
    }
    print();
  }

  const totalS = (performance.now() - startedMs) / 1000;
  const self = process.cpuUsage();
  const loadgenCpuS = (self.user + self.system) / 1e6;
  report['total_s'] = Math.round(totalS * 10) / 10;
  report['loadgen_cpu_s'] = Math.round(loadgenCpuS * 10) / 10;
  report['warnings'] = warnings;
  print(`Load generator: ${num(loadgenCpuS, 1)} CPU seconds over ${num(totalS, 1)} s (${num(loadgenCpuS / totalS, 2)} cores on average); ` +
    `a thread counts as saturated above ${SATURATED * 100}% busy.`);
  if (warnings.length === 0) print('No warnings: the load generator never saturated and the machine was otherwise quiet.');
  for (const warning of warnings) print(`  ! ${warning}`);
  if (o.json !== null) {
    writeFileSync(o.json, `${JSON.stringify(report, (_key, value: unknown) => (value instanceof Float64Array ? Array.from(value) : value), 2)}\n`);
    print(`JSON written to ${o.json}`);
  }
  process.exitCode = failed ? 1 : 0;
}

// Ctrl-C: stop the server we started before leaving, so no server outlives the benchmark.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    log(`${signal}: stopping`);
    void Promise.all(currentServers.map((server) => server.stop())).finally(() => process.exit(130));
  });
}

main().then(
  () => {
    // Sockets closed by the server a little later must not keep us waiting: we are done.
    setTimeout(() => process.exit(), 100).unref();
  },
  async (error: unknown) => {
    process.stderr.write(`bench: ${(error as Error).stack ?? String(error)}\n`);
    await Promise.all(currentServers.map((server) => server.stop()));
    process.exit(1);
  },
);
