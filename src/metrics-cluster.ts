// Gathering one scrape's figures from every process (metrics.ts says which figures). The worker
// that serves GET /metrics asks the primary; the primary asks every worker, waits a bounded time,
// adds its own figures and answers the asking worker, which renders the text (http.ts):
//
//   worker A ──{"t":"metrics:ask","r"}──▶ primary ──{"t":"metrics:collect","r"}──▶ every worker
//   every worker ──{"t":"metrics:report","r","s":snapshot}──▶ primary      (in time, or left out)
//   primary ──{"t":"metrics:answer","r","report"}──▶ worker A ──▶ Prometheus text (http.ts)
//
// With --workers 1 the one process is both ends: its own snapshot, and the loop and rooms it runs.
//
// Scrapes cost the chat nothing on its delivery path: a worker's snapshot copies a few counters
// and walks its live queues once (MetricsClient.report), in one turn of its event loop. Scrapes
// cannot pile up either: a worker with an ask in flight hands every later scrape the same
// answer, and the primary runs one collection at a time, answering everyone who asked during it;
// so at most one ask per worker and one collection are ever under way, however often /metrics
// is requested. Both waits are declared with the chat's limits (config.ts).
import cluster, { type Worker } from 'node:cluster';
import type { Hub } from './broadcast.js';
import { CHAT_LIMITS } from './config.js';
import { snapshotPrimary, snapshotProcess, type MetricsReport, type PrimarySnapshot, type ProcessSnapshot } from './metrics.js';

/** How long the primary waits for the workers' snapshots (then answers without the missing ones). */
const REPORT_WAIT_MS = CHAT_LIMITS.metricsReportWaitMs.value;
/** How long a worker waits for the primary's answer (then /metrics answers 503). */
const ANSWER_WAIT_MS = CHAT_LIMITS.metricsAnswerWaitMs.value;

/** Worker → primary. */
export type MetricsToPrimary =
  | { t: 'metrics:ask'; r: number }
  | { t: 'metrics:report'; r: number; s: ProcessSnapshot };
/** Primary → worker. */
export type MetricsToWorker =
  | { t: 'metrics:collect'; r: number }
  | { t: 'metrics:answer'; r: number; report: MetricsReport };

/** Thrown by gather() when the primary did not answer in time. */
export class MetricsUnavailableError extends Error {}

const ignoreSendError = (): void => {}; // a closed channel: the other side is gone, nothing to do

// ---- a worker's side (and the single process's) ---------------------------------------------------

export class MetricsClient {
  private readonly hub: Hub;
  private nextAsk = 1;
  /** The ask in flight, which every scrape meanwhile shares. */
  private asking: { r: number; promise: Promise<MetricsReport>; settle: (report: MetricsReport | Error) => void } | null = null;
  private readonly onMessage = (message: MetricsToWorker): void => {
    if (message?.t === 'metrics:collect') this.report(message.r);
    else if (message?.t === 'metrics:answer' && message.r === this.asking?.r) this.asking.settle(message.report);
  };

  constructor(hub: Hub) {
    this.hub = hub;
    if (cluster.isWorker) process.on('message', this.onMessage);
  }

  /** Every process's figures for one scrape; rejects with MetricsUnavailableError past the wait. */
  gather(): Promise<MetricsReport> {
    const inProcess = this.hub.inProcess;
    if (inProcess !== null) {
      const ipcToWorkers = [{ pid: process.pid, pending: inProcess.outlet.pending }];
      return Promise.resolve({ workersAsked: 1, processes: [snapshotProcess(this.hub)], primary: snapshotPrimary(inProcess.rooms.service, ipcToWorkers, inProcess.chatLog, inProcess.shared) });
    }
    if (this.asking !== null) return this.asking.promise;
    const r = this.nextAsk++;
    let settle!: (report: MetricsReport | Error) => void;
    const promise = new Promise<MetricsReport>((resolve, reject) => {
      const timer = setTimeout(() => settle(new MetricsUnavailableError(`the primary did not answer within ${ANSWER_WAIT_MS} ms`)), ANSWER_WAIT_MS);
      settle = (outcome) => {
        clearTimeout(timer);
        this.asking = null;
        if (outcome instanceof Error) reject(outcome);
        else resolve(outcome);
      };
    });
    this.asking = { r, promise, settle };
    process.send!({ t: 'metrics:ask', r } satisfies MetricsToPrimary, undefined, undefined, (error) => {
      if (error && this.asking?.r === r) settle(new MetricsUnavailableError(`cannot ask the primary: ${error.message}`));
    });
    return promise;
  }

  /** The primary collects: send this process's snapshot. */
  private report(r: number): void {
    process.send!({ t: 'metrics:report', r, s: snapshotProcess(this.hub) } satisfies MetricsToPrimary, undefined, undefined, ignoreSendError);
  }

  /** Lifespan shutdown: stop answering the primary. */
  detach(): void {
    process.off('message', this.onMessage);
  }
}

// ---- the primary's side ------------------------------------------------------------------------------

export class MetricsCollector {
  private readonly primarySnapshot: () => PrimarySnapshot;
  private nextCollection = 1;
  /** The collection under way, or null. */
  private collection: {
    r: number;
    asked: number;
    /** Cluster ids of the workers not yet answered. */
    waiting: Set<number>;
    reports: ProcessSnapshot[];
    /** Who asked, and the number of their ask. */
    askers: Array<[Worker, number]>;
    timer: NodeJS.Timeout;
  } | null = null;

  /** `primarySnapshot`: the primary's own figures, read when a collection ends. */
  constructor(primarySnapshot: () => PrimarySnapshot) {
    this.primarySnapshot = primarySnapshot;
  }

  handle(worker: Worker, message: MetricsToPrimary): void {
    switch (message.t) {
      case 'metrics:ask':
        (this.collection ?? this.start()).askers.push([worker, message.r]);
        return;
      case 'metrics:report': {
        const collection = this.collection;
        // A late report (of a collection that gave up on it) is dropped.
        if (collection === null || message.r !== collection.r || !collection.waiting.delete(worker.id)) return;
        collection.reports.push(message.s);
        if (collection.waiting.size === 0) this.finish();
        return;
      }
    }
  }

  /** A worker exited: stop waiting for it. */
  workerGone(worker: Worker): void {
    if (this.collection?.waiting.delete(worker.id) && this.collection.waiting.size === 0) this.finish();
  }

  private start(): NonNullable<MetricsCollector['collection']> {
    const r = this.nextCollection++;
    const workers = Object.values(cluster.workers ?? {}).filter((worker): worker is Worker => worker !== undefined && worker.isConnected());
    const collection = {
      r, asked: workers.length, waiting: new Set(workers.map((worker) => worker.id)), reports: [], askers: [],
      timer: setTimeout(() => this.finish(), REPORT_WAIT_MS),
    };
    this.collection = collection;
    for (const worker of workers) worker.send({ t: 'metrics:collect', r } satisfies MetricsToWorker, undefined, ignoreSendError);
    return collection;
  }

  /** Every worker answered, or the wait is over: answer everyone who asked. */
  private finish(): void {
    const collection = this.collection;
    if (collection === null) return;
    this.collection = null;
    clearTimeout(collection.timer);
    const report: MetricsReport = {
      workersAsked: collection.asked,
      processes: collection.reports.sort((a, b) => a.pid - b.pid),
      primary: this.primarySnapshot(),
    };
    for (const [worker, r] of collection.askers) {
      if (worker.isConnected()) worker.send({ t: 'metrics:answer', r, report } satisfies MetricsToWorker, undefined, ignoreSendError);
    }
  }
}
