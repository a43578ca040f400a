// What GET /metrics reports, and how one scrape's figures become Prometheus families: every metric
// is declared once, in METRICS below, with its type, its labels, its meaning and where its value
// comes from; the README's metrics table is rendered from the same declarations (readme-tables.ts).
//
// Where the figures come from:
//   - the server's counters (src/server/metrics.ts): handshakes, messages, bytes, HTTP requests,
//     incremented in place by the server where they happen;
//   - each worker's hub (broadcast.ts): lobby messages published, messages delivered, slow
//     consumers closed, and, computed when asked, the longest subscriber queue and the IPC backlog
//     towards the primary;
//   - the primary: the IPC backlog towards each worker, the rooms' figures, and the message log's
//     (chat-log.ts: flushes, bytes, records, health, checkpoints), which lives where the loop does.
// A scrape gathers one ProcessSnapshot per worker and one PrimarySnapshot into a MetricsReport
// (metrics-cluster.ts does that over IPC; with --workers 1 the one process is both), and
// metricFamilies() turns the report into families. Counters are summed over the workers that
// answered; gauges of a worker carry its pid as the label `worker`.
//
// Nothing here runs on the delivery path: the hot paths only increment integers, and everything
// else (walking the queues, copying counters, rendering) happens once per scrape.
import type { Hub } from './broadcast.js';
import type { ChatLog } from './chat-log.js';
import type { SharedChat } from './shared-chat.js';
import type { MetricFamily, MetricType, Sample } from './prometheus.js';
import type { RoomService } from './rooms/service.js';
import { snapshotServerMetrics, type RefusedHandshakes, type ServerMetrics } from './server/metrics.js';

/** One serving process's figures (a worker, or the single process with --workers 1). */
export interface ProcessSnapshot {
  pid: number;
  server: ServerMetrics;
  chat: {
    published: number;
    delivered: number;
    slowConsumersClosed: number;
    queueDepthMax: number;
    /** Messages to the primary not yet flushed over IPC. */
    ipcToPrimary: number;
  };
}

/** The primary's figures (with --workers 1: the loop and rooms in the process itself). */
export interface PrimarySnapshot {
  usersOnline: number;
  outcomesQueued: number;
  /** Per worker: messages sent to it and not yet flushed over IPC. */
  ipcToWorkers: Array<{ pid: number; pending: number }>;
  /** The message log's figures since startup; null when it is off (CHAT_DATA_DIR empty: memory only). */
  log: LogSnapshot | null;
  /** The shared log's figures (CHAT_REDIS_URL); null without Redis. */
  redis: RedisSnapshot | null;
}

/** The shared log's figures (shared-chat.ts, redis/shared-log.ts), read when a scrape asks. */
export interface RedisSnapshot {
  connected: boolean;
  /** Entries this tree appended (one per turn with writes), entries it applied (every tree's). */
  appends: number;
  applied: number;
  /** This tree's writes sent and not yet back from the log. */
  pending: number;
  /** Other trees this one hears from (shared-presence.ts). */
  otherTrees: number;
  snapshots: number;
}

/** The message log's figures (chat-log.ts, log/message-log.ts), read when a scrape asks. */
export interface LogSnapshot {
  /** Group commits made durable (one write and one fdatasync each), their bytes, records appended. */
  flushes: number;
  bytes: number;
  records: number;
  healthy: boolean;
  checkpoints: number;
}

/** Everything one scrape reports. */
export interface MetricsReport {
  /** Workers asked for a snapshot (1 with --workers 1). */
  workersAsked: number;
  /** The snapshots of the workers that answered in time, by pid. */
  processes: ProcessSnapshot[];
  primary: PrimarySnapshot;
}

/** This process's snapshot: the server's counters and its hub's. */
export function snapshotProcess(hub: Hub): ProcessSnapshot {
  return {
    pid: process.pid,
    server: snapshotServerMetrics(),
    chat: {
      published: hub.published,
      delivered: hub.delivered,
      slowConsumersClosed: hub.slowConsumers,
      queueDepthMax: hub.queueDepthMax,
      ipcToPrimary: hub.ipcPending,
    },
  };
}

/** The primary's snapshot, from its rooms' service, its outlets' backlogs and its message log (null: off). */
export function snapshotPrimary(rooms: RoomService, ipcToWorkers: Array<{ pid: number; pending: number }>, chatLog: ChatLog | null, shared: SharedChat | null = null): PrimarySnapshot {
  let log: LogSnapshot | null = null;
  if (chatLog !== null) {
    const stats = chatLog.stats;
    log = { flushes: stats.flushes, bytes: stats.bytesFlushed, records: stats.records, healthy: chatLog.healthy, checkpoints: chatLog.checkpoints };
  }
  const redis: RedisSnapshot | null = shared === null ? null : {
    connected: shared.log.connected,
    appends: shared.log.stats.appends,
    applied: shared.log.stats.entriesRead,
    pending: shared.pendingCount,
    otherTrees: shared.presence.otherTrees,
    snapshots: shared.snapshotsStored,
  };
  return { usersOnline: rooms.usersOnline, outcomesQueued: rooms.outcomesQueued, ipcToWorkers, log, redis };
}

// ---- the declarations ------------------------------------------------------------------------------

export interface MetricDeclaration {
  type: MetricType;
  /** The label names its samples carry (none: one sample). */
  labels: readonly string[];
  /** Its meaning: the HELP line and the README's table. */
  help: string;
  samples(report: MetricsReport): Sample[];
}

/** The label `reason` of a refused handshake, for each of the server's counters. */
export const REFUSAL_REASONS: Readonly<Record<keyof RefusedHandshakes, string>> = {
  badRequest: 'bad_request',
  methodNotAllowed: 'method_not_allowed',
  unsupportedVersion: 'unsupported_version',
  forbidden: 'forbidden',
  appError: 'app_error',
  appResponse: 'app_response',
  shuttingDown: 'shutting_down',
  other: 'other',
};

/** One sample: the sum over the processes that answered. */
const sum = (pick: (worker: ProcessSnapshot) => number) => (report: MetricsReport): Sample[] =>
  [{ value: report.processes.reduce((total, worker) => total + pick(worker), 0) }];

/** The message log's one sample, or none when the log is off (memory only). */
const fromLog = (pick: (log: LogSnapshot) => number) => (report: MetricsReport): Sample[] =>
  (report.primary.log === null ? [] : [{ value: pick(report.primary.log) }]);

/** The shared log's one sample, or none without Redis. */
const fromRedis = (pick: (redis: RedisSnapshot) => number) => (report: MetricsReport): Sample[] =>
  (report.primary.redis === null ? [] : [{ value: pick(report.primary.redis) }]);

/** One sample per process that answered, labelled with its pid. */
const perWorker = (pick: (worker: ProcessSnapshot) => number) => (report: MetricsReport): Sample[] =>
  report.processes.map((worker) => ({ labels: [['worker', String(worker.pid)]], value: pick(worker) }));

export const METRICS = {
  asgi_websocket_connections_open: {
    type: 'gauge', labels: ['worker'],
    help: 'WebSocket connections open in each worker: accepted (101 sent), closing handshake not finished.',
    samples: perWorker((p) => p.server.websocketsOpen),
  },
  asgi_websocket_connections_open_all_workers: {
    type: 'gauge', labels: [],
    help: 'WebSocket connections open in all the workers that answered.',
    samples: sum((p) => p.server.websocketsOpen),
  },
  asgi_websocket_connections_accepted_total: {
    type: 'counter', labels: [],
    help: 'WebSocket handshakes accepted (101 sent).',
    samples: sum((p) => p.server.websocketsAccepted),
  },
  asgi_websocket_handshakes_refused_total: {
    type: 'counter', labels: ['reason'],
    help: 'WebSocket handshakes answered without a 101, by reason: bad_request (400), method_not_allowed (405), '
      + 'unsupported_version (426), forbidden (403: the application closed before accepting), app_error (500: it raised), '
      + 'app_response (its own HTTP response), shutting_down (503), other (any other status; none today).',
    samples: (report) => (Object.keys(REFUSAL_REASONS) as Array<keyof RefusedHandshakes>).map((key) => ({
      labels: [['reason', REFUSAL_REASONS[key]]],
      value: report.processes.reduce((total, worker) => total + worker.server.refused[key], 0),
    })),
  },
  asgi_connections_dropped_total: {
    type: 'counter', labels: [],
    help: 'TCP connections refused at once, before any request (503, or closed on a TLS port), because --limit-concurrency connections were open.',
    samples: sum((p) => p.server.connectionsDropped),
  },
  asgi_http_requests_total: {
    type: 'counter', labels: [],
    help: 'HTTP requests handed to the application (scrapes of /metrics included; WebSocket handshakes not).',
    samples: sum((p) => p.server.httpRequests),
  },
  asgi_websocket_messages_received_total: {
    type: 'counter', labels: [],
    help: 'Complete WebSocket messages (text or binary) received from clients.',
    samples: sum((p) => p.server.messagesReceived),
  },
  asgi_websocket_messages_sent_total: {
    type: 'counter', labels: [],
    help: 'WebSocket messages the application sent (websocket.send): deliveries, greetings, answers.',
    samples: sum((p) => p.server.messagesSent),
  },
  asgi_websocket_sent_bytes_total: {
    type: 'counter', labels: [],
    help: 'Bytes of WebSocket frames written to sockets, data and control frames (not the handshake responses).',
    samples: sum((p) => p.server.bytesSent),
  },
  chat_messages_published_total: {
    type: 'counter', labels: [],
    help: 'Lobby messages accepted from clients and published to the broadcast loop.',
    samples: sum((p) => p.chat.published),
  },
  chat_messages_delivered_total: {
    type: 'counter', labels: [],
    help: 'Messages sent to subscribers from their queues: lobby history, lobby messages and room messages.',
    samples: sum((p) => p.chat.delivered),
  },
  chat_slow_consumers_closed_total: {
    type: 'counter', labels: [],
    help: 'Subscribers closed with 1008 "slow consumer" because their queue overflowed.',
    samples: sum((p) => p.chat.slowConsumersClosed),
  },
  chat_subscriber_queue_depth_max: {
    type: 'gauge', labels: [],
    help: 'The longest subscriber queue at the scrape, in messages, over all workers that answered.',
    samples: (report) => [{ value: report.processes.reduce((max, worker) => Math.max(max, worker.chat.queueDepthMax), 0) }],
  },
  chat_ipc_backlog_messages: {
    type: 'gauge', labels: ['direction', 'worker'],
    help: 'IPC messages handed to node and not yet flushed: to_primary from each worker, to_worker from the primary to each worker '
      + '(always 0 with --workers 1, where there is no IPC).',
    samples: (report) => [
      ...report.processes.map((worker): Sample => ({ labels: [['direction', 'to_primary'], ['worker', String(worker.pid)]], value: worker.chat.ipcToPrimary })),
      ...report.primary.ipcToWorkers.map(({ pid, pending }): Sample => ({ labels: [['direction', 'to_worker'], ['worker', String(pid)]], value: pending })),
    ],
  },
  chat_rooms_users_online: {
    type: 'gauge', labels: [],
    help: 'Users with at least one signed-in connection.',
    samples: (report) => [{ value: report.primary.usersOnline }],
  },
  chat_rooms_outcomes_queued: {
    type: 'gauge', labels: [],
    help: 'Answers to rooms requests waiting for the store to confirm their writes.',
    samples: (report) => [{ value: report.primary.outcomesQueued }],
  },
  chat_log_flushes_total: {
    type: 'counter', labels: [],
    help: 'Group commits of the message log made durable since startup: one write and one fdatasync each, '
      + 'carrying every record appended during the previous one (no sample when CHAT_DATA_DIR is empty: memory only).',
    samples: fromLog((log) => log.flushes),
  },
  chat_log_bytes_total: {
    type: 'counter', labels: [],
    help: 'Bytes the message log made durable since startup, record headers included (no sample when the log is off).',
    samples: fromLog((log) => log.bytes),
  },
  chat_log_records_total: {
    type: 'counter', labels: [],
    help: 'Records appended to the message log since startup: lobby and room messages, rooms\' changes, checkpoints\' records '
      + '(no sample when the log is off).',
    samples: fromLog((log) => log.records),
  },
  chat_log_healthy: {
    type: 'gauge', labels: [],
    help: '1 while the message log takes writes, 0 during a failure episode (a full disk...), when every write is refused '
      + '(no sample when the log is off).',
    samples: fromLog((log) => (log.healthy ? 1 : 0)),
  },
  chat_log_checkpoints_total: {
    type: 'counter', labels: [],
    help: 'Checkpoints of the message log completed since startup, each letting older segments be deleted (no sample when the log is off).',
    samples: fromLog((log) => log.checkpoints),
  },
  chat_redis_connected: {
    type: 'gauge', labels: [],
    help: '1 while this tree\'s primary can append to the shared log in Redis, 0 while writes are answered "unavailable" (no sample without CHAT_REDIS_URL).',
    samples: fromRedis((redis) => (redis.connected ? 1 : 0)),
  },
  chat_redis_entries_appended_total: {
    type: 'counter', labels: [],
    help: 'Entries this tree appended to the shared log since startup: one XADD per turn of its primary that had writes (no sample without Redis).',
    samples: fromRedis((redis) => redis.appends),
  },
  chat_redis_entries_applied_total: {
    type: 'counter', labels: [],
    help: 'Entries of the shared log, from every tree, this tree applied since startup (catch-up included; no sample without Redis).',
    samples: fromRedis((redis) => redis.applied),
  },
  chat_redis_writes_pending: {
    type: 'gauge', labels: [],
    help: 'This tree\'s writes sent to the shared log and not yet back from it (bounded: beyond 10,000, writes are refused; no sample without Redis).',
    samples: fromRedis((redis) => redis.pending),
  },
  chat_redis_other_trees: {
    type: 'gauge', labels: [],
    help: 'Other server trees this one hears from on chat:presence (no sample without Redis).',
    samples: fromRedis((redis) => redis.otherTrees),
  },
  chat_redis_snapshots_total: {
    type: 'counter', labels: [],
    help: 'Snapshots of the chat this tree stored in Redis since startup, each letting older stream entries be trimmed (no sample without Redis).',
    samples: fromRedis((redis) => redis.snapshots),
  },
  chat_metrics_workers_asked: {
    type: 'gauge', labels: [],
    help: 'Workers asked for their figures for this scrape (1 with --workers 1).',
    samples: (report) => [{ value: report.workersAsked }],
  },
  chat_metrics_workers_answered: {
    type: 'gauge', labels: [],
    help: 'Workers whose figures this scrape holds: the others did not answer in time and are left out of every sum.',
    samples: (report) => [{ value: report.processes.length }],
  },
} as const satisfies Record<string, MetricDeclaration>;

/** The families of one scrape, in the declarations' order. */
export function metricFamilies(report: MetricsReport): MetricFamily[] {
  return Object.entries(METRICS as Record<string, MetricDeclaration>).map(([name, metric]) => ({
    name, help: metric.help, type: metric.type, samples: metric.samples(report),
  }));
}

/** The README's table of metrics, from the declarations above. */
export function renderMetricsTable(): string {
  const rows = Object.entries(METRICS as Record<string, MetricDeclaration>).map(([name, metric]) => {
    const labels = metric.labels.length === 0 ? '' : metric.labels.map((label) => `\`${label}\``).join(', ');
    return `| \`${name}\` | ${metric.type} | ${labels} | ${metric.help} |`;
  });
  return ['| metric | type | labels | meaning |', '|---|---|---|---|', ...rows].join('\n');
}
