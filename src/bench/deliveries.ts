// Measuring deliveries: what the lobby fan-out (fanout.ts) and the rooms (rooms.ts) scenarios
// share once their connections are set up. Each scenario opens and prepares its connections its
// own way, then hands this module
//
//   - the receiving threads (ReceiverThread: subscriber-thread.ts, each holding a share of the
//     receiving connections and counting what they get),
//   - the publishers (on the main thread, counting what they get back: the lobby's broadcast, or
//     in rooms their own copies, which are their acknowledgements),
//   - a MessageSource: what each publisher sends next and how many deliveries it must make,
//
// and this module runs the measurement:
//
//   main thread                                   server                  receiving thread(s)
//   ┌──────────────────────────┐                                         ┌───────────────────────┐
//   │ pacing timer (1 ms)      │── P publishers ──▶ fan-out ──▶ receivers ─▶│ parse, count per step │
//   │ counts publishers' copies│◀────────────────────────────────────────  │ latency histogram     │
//   │ /proc snapshots, verdicts│◀──────── counts by postMessage ─────────  └───────────────────────┘
//   └──────────────────────────┘
//
// Two modes (`--mode both`, the default, runs a ramp, then a fixed run at half the ramp's best
// rate on a fresh server: see main.ts):
//   fixed  one offered rate (messages per second, over all publishers) for --duration seconds;
//   ramp   steps of --step seconds, the rate ×1.5 each step, until a step is not delivered
//          completely (ratio < 0.999), its p99 latency passes --max-p99, the server closes a
//          connection, or the publishers cannot offer the rate (a step that failed on latency
//          alone is repeated once, so one hiccup does not end the ramp). The answer is the highest
//          step that passed: the most this server delivers completely, with a bounded latency.
//
// Each step is measured over its own window: from its first send to the moment its last expected
// delivery arrived (or the drain timeout). Deliveries are attributed to the step written inside
// the message, not to the window they land in, so a slow tail from one step is never counted as
// the next step's. Over the window, /proc gives the server tree's CPU, so "CPU µs per delivery"
// is the server's cost of one message reaching one connection, all processes included; and, when
// the server has a message log, its counters (server-log.ts) give the flushes and bytes it wrote.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { BenchSocket, OpenResult, Target } from './client.js';
import { monoUs } from './clock.js';
import { Histogram, type LatencySummary } from './histogram.js';
import { MAX_STEPS, type DeliveryCounter, type DeliveryReport } from './message.js';
import { cpuSnapshot, cpuWindow, type CpuWindow, type Roots } from './proc.js';
import type { LogCounters } from './server-log.js';
import type { SubscriberThreadData, ThreadOpened, ToSubscriberThread } from './subscriber-thread.js';
import { Opcode, encodeMaskedFrame } from '../server/frames.js';

/** The options every delivery scenario has (the scenarios add their own: see fanout.ts, rooms.ts). */
export interface DeliveryOptions {
  target: Target;
  /**
   * Root of the server's process tree, or the roots of several trees serving one chat (each
   * tree's primary: main.ts --redis), for /proc accounting (null: no server figures).
   */
  serverPid: Roots | null;
  /** Redis's pid when it runs on this machine (--redis): its CPU is reported apart. */
  redisPid?: number | null;
  /** --size: the lobby's published JSON size in bytes; rooms carry the same text (message.ts). */
  size: number;
  mode: 'fixed' | 'ramp';
  /** Fixed mode's rate in messages/s; null picks about 20,000 deliveries/s. */
  rate: number | null;
  /** Number of the first step (so a fixed run that follows a ramp continues its numbering). */
  firstStep: number;
  durationS: number;
  /** Ramp: first rate (null: ~5,000 deliveries/s), factor per step, step length, and limits. */
  rampStart: number | null;
  rampFactor: number;
  stepS: number;
  maxSteps: number;
  drainS: number;
  maxP99Ms: number;
  minRatio: number;
  threads: number;
  concurrency: number;
  connectTimeoutS: number;
  log: (line: string) => void;
  /** Reads the server's message log counters (server-log.ts); absent or null: no log figures. */
  logCounters?: () => Promise<LogCounters | null>;
}

/** What the server's message log made durable over a step's window (null: memory only, or unknown). */
export interface StepLog {
  flushes: number;
  bytes: number;
  records: number;
  flushes_per_s: number;
  bytes_per_s: number;
}

export interface StepResult {
  step: number;
  kind: 'ramp' | 'fixed';
  offered_msgs_per_s: number;
  sent: number;
  /**
   * Messages not sent: their publisher's socket was backed up (the server stopped reading from
   * it: its flow control), or the publisher was closed.
   */
  skipped: { backlog: number; closed: number };
  expected: number;
  received: number;
  /** Rooms: the publishers' own copies received (each is the answer to its request); lobby: null. */
  acks: number | null;
  delivery_ratio: number;
  deliveries_per_s: number;
  latency: LatencySummary;
  drain_s: number;
  cpu: CpuWindow;
  server_cpu_us_per_delivery: number | null;
  /** Redis's CPU per delivery, apart from the server's (null: no Redis, or not measured). */
  redis_cpu_us_per_delivery: number | null;
  loadgen_cpu_us_per_delivery: number | null;
  /** Busy fraction of each load generator event loop: main, then each receiving thread. */
  loop_busy: { main: number; subscribers: number[] };
  log: StepLog | null;
  /** How late the pacing timer ran at worst, in ms (a busy main thread shows here). */
  pacing_max_lag_ms: number;
  connections_dropped: number;
  passed: boolean;
  /** Why the step failed (empty if it passed). */
  failures: string[];
}

/** What every delivery scenario reports (fanout.ts and rooms.ts add their own fields). */
export interface DeliveryResult {
  size: number;
  threads: number;
  run_id: string;
  /** Receivers (in the threads) and publishers (on the main thread). */
  connect: { subscribers: Omit<OpenResult, 'clients'>; publishers: Omit<OpenResult, 'clients'> };
  /** Deliveries one message makes: every connection in the lobby, a room's members in rooms. */
  recipients: number;
  steps: StepResult[];
  /** Ramp: the highest step that passed, and the first that failed. */
  ramp: { best: StepResult | null; first_failure: StepResult | null; ended_because: string } | null;
  fixed: StepResult | null;
  out_of_order: number;
  foreign_texts: number;
  close_codes: Record<string, number>;
  error: string | null;
}

/** What the publishers send: the scenario's messages (the lobby's broadcast, rooms' new_message). */
export interface MessageSource {
  /**
   * The next message of publisher `publisher` (an index into the publishers handed to
   * measureDeliveries) for `step`, sent at `sentUs`: its JSON text, valid until the next call
   * (encodeMaskedFrame copies it), and the deliveries it must make.
   */
  next(publisher: number, step: number, sentUs: number): { text: Buffer; recipients: number };
}

/** The connections a scenario set up, handed to measureDeliveries. */
export interface DeliverySetup {
  threads: ReceiverThread[];
  /** Counts what the publishers receive. */
  mainCounter: DeliveryCounter;
  publishers: BenchSocket[];
  source: MessageSource;
  /** Deliveries a message makes, for the default rates (~5,000 deliveries/s to start a ramp). */
  recipients: number;
  /** True when all that the publishers receive are their own copies (rooms: their acknowledgements). */
  publishersReceiveAcks: boolean;
  /** Names the scenario in progress lines ("fan-out", "rooms"). */
  label: string;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
export const round = (x: number, digits = 3): number => Math.round(x * 10 ** digits) / 10 ** digits;
/** A publisher whose socket holds more than this unsent is not given more (see `skipped`). */
const PUBLISHER_BACKLOG_LIMIT = 256 * 1024;

/** Default number of receiving threads: leave the cores to the server on a small machine. */
export function defaultThreads(): number {
  const cores = availableParallelism();
  return cores <= 2 ? 1 : Math.min(4, Math.floor(cores / 2));
}

/** Omit distributed over a union (plain Omit would merge its members). */
type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

/** A receiving thread (subscriber-thread.ts) and the requests waiting for its answers. */
export class ReceiverThread {
  readonly worker: Worker;
  readonly opened: Promise<ThreadOpened>;
  private nextId = 1;
  private readonly waiting = new Map<number, (value: unknown) => void>();
  private failure: Error | null = null;

  constructor(data: SubscriberThreadData) {
    this.worker = new Worker(new URL('./subscriber-thread.js', import.meta.url), { workerData: data });
    this.opened = new Promise((resolve, reject) => {
      this.worker.on('message', (message: { type: string; id?: number; opened?: ThreadOpened; report?: DeliveryReport }) => {
        if (message.type === 'opened') resolve(message.opened!);
        else if (message.id !== undefined) {
          const answer = this.waiting.get(message.id);
          this.waiting.delete(message.id);
          answer?.(message.report ?? null);
        }
      });
      this.worker.on('error', (error) => {
        this.failure = error;
        reject(error);
        for (const answer of this.waiting.values()) answer(null);
      });
    });
  }

  private ask<T>(message: WithoutId<ToSubscriberThread>): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve as (value: unknown) => void);
      this.worker.postMessage({ ...message, id });
    });
  }

  report(step: number | null): Promise<DeliveryReport> {
    return this.ask<DeliveryReport>({ type: 'report', step });
  }

  async close(): Promise<void> {
    if (this.failure) return;
    await this.ask({ type: 'close' });
    await this.worker.terminate();
  }
}

/**
 * Starts `total` receivers split over `threads` threads (contiguous shares: thread t holds
 * receivers [firstOf(t), firstOf(t) + count)). `data(first, count)` gives a thread's workerData.
 */
export function startThreads(total: number, threads: number, data: (first: number, count: number) => SubscriberThreadData): ReceiverThread[] {
  const started: ReceiverThread[] = [];
  let first = 0;
  for (let t = 0; t < threads; t++) {
    const count = Math.floor(total / threads) + (t < total % threads ? 1 : 0);
    started.push(new ReceiverThread(data(first, count)));
    first += count;
  }
  return started;
}

/**
 * Runs the ramp or the fixed run of `o.mode` on connections a scenario set up, and fills in
 * `result`'s steps, ramp or fixed, and totals. Throws only on a load generator failure.
 */
export async function measureDeliveries(o: DeliveryOptions, setup: DeliverySetup, result: DeliveryResult): Promise<void> {
  const bench = new StepRunner(o, setup);
  let stepNo = o.firstStep;

  if (o.mode === 'ramp') {
    let rate = o.rampStart ?? Math.max(1, round(5000 / setup.recipients, 1));
    let best: StepResult | null = null;
    let firstFailure: StepResult | null = null;
    let endedBecause = `reached --max-steps (${o.maxSteps}) without a failure`;
    let retried = false;
    for (let i = 0; i < o.maxSteps && stepNo < MAX_STEPS; i++) {
      const step = await bench.run(stepNo++, 'ramp', rate, o.stepS);
      result.steps.push(step);
      o.log(describeStep(setup.label, step));
      if (!step.passed) {
        // One hiccup (a GC pause, another process taking the core) can push a step's p99 over
        // the bound once. So the first failure that lost nothing (no connection closed, every
        // message delivered in the end) is repeated at the same rate; a second failure ends it.
        const deliveredAll = step.connections_dropped === 0 && step.received >= step.expected;
        if (!retried && deliveredAll) {
          retried = true;
          o.log(`${setup.label}: repeating the rate once to tell a hiccup from a limit`);
          continue;
        }
        firstFailure = step;
        endedBecause = `step ${step.step} failed: ${step.failures.join('; ')}`;
        break;
      }
      best = step;
      rate = round(rate * o.rampFactor, 1);
    }
    result.ramp = { best, first_failure: firstFailure, ended_because: endedBecause };
  } else {
    const rate = o.rate ?? Math.max(1, round(20000 / setup.recipients, 1));
    const step = await bench.run(stepNo++, 'fixed', rate, o.durationS);
    result.steps.push(step);
    result.fixed = step;
    o.log(describeStep(setup.label, step));
  }
  const totals = await bench.gather(null);
  result.out_of_order = totals.outOfOrder;
  result.foreign_texts = totals.foreign;
  result.close_codes = totals.closeCodes;
}

/** Sums what the threads and the publishers counted; merges `step`'s histograms. */
interface Gathered {
  received: Float64Array;
  /** What the publishers alone received, per step. */
  publishersReceived: Float64Array;
  histogram: Histogram;
  dropped: number;
  outOfOrder: number;
  foreign: number;
  closeCodes: Record<string, number>;
}

/** Runs one step: paces the publishers, drains, and judges. */
class StepRunner {
  constructor(private readonly o: DeliveryOptions, private readonly setup: DeliverySetup) {}

  async gather(step: number | null): Promise<Gathered> {
    const mine = this.setup.mainCounter.report(step);
    const reports = [mine, ...(await Promise.all(this.setup.threads.map((w) => w.report(step))))];
    const received = new Float64Array(MAX_STEPS);
    const histogram = new Histogram();
    let dropped = 0, outOfOrder = 0, foreign = 0;
    const closeCodes: Record<string, number> = {};
    for (const r of reports) {
      for (let i = 0; i < MAX_STEPS; i++) received[i]! += r.received[i]!;
      if (r.histogram) histogram.merge(r.histogram);
      dropped += r.dropped;
      outOfOrder += r.outOfOrder;
      foreign += r.foreign;
      for (const [k, v] of Object.entries(r.closeCodes)) closeCodes[k] = (closeCodes[k] ?? 0) + v;
    }
    return { received, publishersReceived: mine.received, histogram, dropped, outOfOrder, foreign, closeCodes };
  }

  async run(step: number, kind: 'ramp' | 'fixed', rate: number, seconds: number): Promise<StepResult> {
    const o = this.o;
    const before = await this.gather(null);
    const mainLoop0 = performance.eventLoopUtilization();
    const subLoops0 = this.setup.threads.map((w) => w.worker.performance.eventLoopUtilization());
    const log0 = (await o.logCounters?.()) ?? null; // read before the window opens: not in its CPU
    const cpu0 = cpuSnapshot(o.serverPid, o.redisPid ?? null);

    const paced = await this.pace(step, rate, seconds);
    const expected = paced.expected;

    // Drain: poll the counts until the step is complete or the drain time is up.
    const drainStart = performance.now();
    let received = 0;
    for (;;) {
      received = (await this.gather(null)).received[step]!;
      if (received >= expected || performance.now() - drainStart > o.drainS * 1000) break;
      await sleep(25);
    }
    const drainS = (performance.now() - drainStart) / 1000;
    const cpu = cpuWindow(cpu0, cpuSnapshot(o.serverPid, o.redisPid ?? null));
    const mainBusy = performance.eventLoopUtilization(mainLoop0).utilization;
    const subBusy = this.setup.threads.map((w, i) => w.worker.performance.eventLoopUtilization(subLoops0[i]).utilization);
    const log1 = log0 === null ? null : await o.logCounters!();
    const after = await this.gather(step);
    received = after.received[step]!;
    const latency = after.histogram.summary();
    const dropped = after.dropped - before.dropped;
    const ratio = expected ? received / expected : 0;

    const failures: string[] = [];
    if (ratio < o.minRatio) failures.push(`delivery ratio ${round(ratio, 4)} < ${o.minRatio}`);
    if (latency.p99_ms !== null && latency.p99_ms > o.maxP99Ms) failures.push(`p99 ${latency.p99_ms} ms > ${o.maxP99Ms} ms`);
    if (dropped > 0) failures.push(`${dropped} connection(s) closed (${Object.entries(after.closeCodes).map(([k, v]) => `${k}: ${v}`).join(', ')})`);
    if (paced.skipped.backlog > 0) failures.push(`${paced.skipped.backlog} message(s) not sent: the server stopped reading from the publishers`);
    if (paced.skipped.closed > 0) failures.push(`${paced.skipped.closed} message(s) not sent: their publisher was closed`);
    // The pacer catches up after a late tick, so it falls short only when its thread is swamped.
    if (paced.elapsedS > seconds * 1.05 + 0.05) failures.push(`the load generator offered only ${round(paced.sent / paced.elapsedS, 1)} msg/s`);

    return {
      step, kind,
      offered_msgs_per_s: rate,
      sent: paced.sent,
      skipped: paced.skipped,
      expected,
      received,
      acks: this.setup.publishersReceiveAcks ? after.publishersReceived[step]! : null,
      delivery_ratio: round(ratio, 4),
      deliveries_per_s: Math.round(received / cpu.wall_s),
      latency,
      drain_s: round(drainS),
      cpu,
      server_cpu_us_per_delivery: cpu.server_cpu_s === null || !received ? null : round((cpu.server_cpu_s * 1e6) / received, 2),
      redis_cpu_us_per_delivery: cpu.redis_cpu_s === null || !received ? null : round((cpu.redis_cpu_s * 1e6) / received, 2),
      loadgen_cpu_us_per_delivery: received ? round((cpu.loadgen_cpu_s * 1e6) / received, 2) : null,
      loop_busy: { main: round(mainBusy, 2), subscribers: subBusy.map((x) => round(x, 2)) },
      log: log0 === null || log1 === null ? null : stepLog(log0, log1, cpu.wall_s),
      pacing_max_lag_ms: round(paced.maxLagMs, 1),
      connections_dropped: dropped,
      passed: failures.length === 0,
      failures,
    };
  }

  /**
   * Sends `rate` messages per second for `seconds`, spread round-robin over the publishers.
   * A 1 ms timer catches up with the schedule: each tick sends every message due by now, so a
   * late tick sends a small burst instead of lowering the rate. Sends made in one tick are corked
   * into one write per publisher.
   */
  private pace(step: number, rate: number, seconds: number): Promise<{ sent: number; expected: number; skipped: { backlog: number; closed: number }; maxLagMs: number; elapsedS: number }> {
    const total = Math.max(1, Math.round(rate * seconds));
    const pubs = this.setup.publishers;
    const source = this.setup.source;
    let attempted = 0, sent = 0, expected = 0, next = 0, maxLagMs = 0;
    const skipped = { backlog: 0, closed: 0 };
    return new Promise((resolve) => {
      const start = performance.now();
      let timer: NodeJS.Timeout | null = null;
      const tick = (): void => {
        const elapsedMs = performance.now() - start;
        const due = Math.min(total, Math.floor((rate * elapsedMs) / 1000) + 1);
        if (due > attempted) {
          maxLagMs = Math.max(maxLagMs, elapsedMs - (attempted * 1000) / rate);
          for (const p of pubs) p.socket.cork();
          while (attempted < due) {
            attempted++;
            const i = next;
            next = (next + 1) % pubs.length;
            const pub = pubs[i]!;
            if (!pub.ready) {
              skipped.closed++;
              continue;
            }
            if (pub.socket.writableLength > PUBLISHER_BACKLOG_LIMIT) {
              skipped.backlog++;
              continue;
            }
            const message = source.next(i, step, monoUs());
            pub.sendFrame(encodeMaskedFrame(Opcode.TEXT, message.text));
            expected += message.recipients;
            sent++;
          }
          for (const p of pubs) p.socket.uncork();
        }
        if (attempted >= total) {
          if (timer) clearInterval(timer);
          resolve({ sent, expected, skipped, maxLagMs, elapsedS: (performance.now() - start) / 1000 });
          return;
        }
        timer ??= setInterval(tick, 1);
      };
      tick();
    });
  }
}

function stepLog(before: LogCounters, after: LogCounters, wallS: number): StepLog {
  const flushes = after.flushes - before.flushes;
  const bytes = after.bytes - before.bytes;
  return { flushes, bytes, records: after.records - before.records, flushes_per_s: Math.round(flushes / wallS), bytes_per_s: Math.round(bytes / wallS) };
}

/** Failures of two groups of connections (receivers and publishers), summed by cause. */
export function openErrors(a: Omit<OpenResult, 'clients'>, b: Omit<OpenResult, 'clients'>): Record<string, number> {
  const errors = { ...a.errors };
  for (const [k, v] of Object.entries(b.errors)) errors[k] = (errors[k] ?? 0) + v;
  return errors;
}

/** One progress line per step. */
function describeStep(label: string, s: StepResult): string {
  const server = s.cpu.server_cores === null ? '' : ` server ${s.cpu.server_cores} cores,`;
  return `${label} ${s.kind} step ${s.step}: ${s.offered_msgs_per_s} msg/s → ${s.deliveries_per_s} deliveries/s, ratio ${s.delivery_ratio}, ` +
    `p50 ${s.latency.p50_ms} ms, p99 ${s.latency.p99_ms} ms,${server} loadgen loops ${s.loop_busy.main}/${s.loop_busy.subscribers.join('/')} busy` +
    ` — ${s.passed ? 'pass' : `FAIL (${s.failures.join('; ')})`}`;
}
