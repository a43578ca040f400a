// What /metrics reports (src/metrics.ts) and the server's counters (src/server/metrics.ts), without
// processes: the exact exposition of a given report of two workers, the declarations' rules
// (counters end in _total, gauges do not, the labels declared are the labels carried), the README's
// table, and how the server files refusals. The real thing, across workers, is in
// metrics-cluster.test.ts.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { METRICS, REFUSAL_REASONS, metricFamilies, renderMetricsTable, type MetricDeclaration, type MetricsReport, type ProcessSnapshot } from '../src/metrics.js';
import { escapeHelp, renderPrometheus } from '../src/prometheus.js';
import { readmeTable } from '../src/readme-tables.js';
import { countRefusedHandshake, serverMetrics, snapshotServerMetrics, type RefusedHandshakes } from '../src/server/metrics.js';
import { PROJECT_ROOT } from './helpers/server.js';

const noRefusals = (): RefusedHandshakes => ({
  badRequest: 0, methodNotAllowed: 0, unsupportedVersion: 0, forbidden: 0, appError: 0, appResponse: 0, shuttingDown: 0, other: 0,
});

const worker101: ProcessSnapshot = {
  pid: 101,
  server: {
    websocketsOpen: 3, websocketsAccepted: 10, refused: { ...noRefusals(), badRequest: 1, unsupportedVersion: 2, forbidden: 4 },
    connectionsDropped: 0, messagesReceived: 7, messagesSent: 50, bytesSent: 1000, httpRequests: 5,
  },
  chat: { published: 7, delivered: 40, slowConsumersClosed: 1, queueDepthMax: 12, ipcToPrimary: 0 },
};
const worker202: ProcessSnapshot = {
  pid: 202,
  server: {
    websocketsOpen: 2, websocketsAccepted: 4,
    refused: { ...noRefusals(), methodNotAllowed: 1, forbidden: 1, appError: 1, appResponse: 2, shuttingDown: 3, other: 1 },
    connectionsDropped: 6, messagesReceived: 3, messagesSent: 20, bytesSent: 500, httpRequests: 1,
  },
  chat: { published: 3, delivered: 20, slowConsumersClosed: 0, queueDepthMax: 30, ipcToPrimary: 2 },
};
/** Three workers asked, two answered. */
const REPORT: MetricsReport = {
  workersAsked: 3,
  processes: [worker101, worker202],
  primary: {
    usersOnline: 4, outcomesQueued: 1, ipcToWorkers: [{ pid: 101, pending: 0 }, { pid: 202, pending: 5 }],
    log: { flushes: 6, bytes: 2048, records: 9, healthy: false, checkpoints: 2 },
    redis: { connected: true, appends: 5, applied: 11, pending: 3, otherTrees: 1, snapshots: 4 },
  },
};

describe('the exposition of a report', () => {
  const text = renderPrometheus(metricFamilies(REPORT));

  test('every sample, exactly: counters summed, per-worker gauges labelled with the pid', () => {
    const samples = text.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
    assert.deepEqual(samples, [
      'asgi_websocket_connections_open{worker="101"} 3',
      'asgi_websocket_connections_open{worker="202"} 2',
      'asgi_websocket_connections_open_all_workers 5',
      'asgi_websocket_connections_accepted_total 14',
      'asgi_websocket_handshakes_refused_total{reason="bad_request"} 1',
      'asgi_websocket_handshakes_refused_total{reason="method_not_allowed"} 1',
      'asgi_websocket_handshakes_refused_total{reason="unsupported_version"} 2',
      'asgi_websocket_handshakes_refused_total{reason="forbidden"} 5',
      'asgi_websocket_handshakes_refused_total{reason="app_error"} 1',
      'asgi_websocket_handshakes_refused_total{reason="app_response"} 2',
      'asgi_websocket_handshakes_refused_total{reason="shutting_down"} 3',
      'asgi_websocket_handshakes_refused_total{reason="other"} 1',
      'asgi_connections_dropped_total 6',
      'asgi_http_requests_total 6',
      'asgi_websocket_messages_received_total 10',
      'asgi_websocket_messages_sent_total 70',
      'asgi_websocket_sent_bytes_total 1500',
      'chat_messages_published_total 10',
      'chat_messages_delivered_total 60',
      'chat_slow_consumers_closed_total 1',
      'chat_subscriber_queue_depth_max 30',
      'chat_ipc_backlog_messages{direction="to_primary",worker="101"} 0',
      'chat_ipc_backlog_messages{direction="to_primary",worker="202"} 2',
      'chat_ipc_backlog_messages{direction="to_worker",worker="101"} 0',
      'chat_ipc_backlog_messages{direction="to_worker",worker="202"} 5',
      'chat_rooms_users_online 4',
      'chat_rooms_outcomes_queued 1',
      'chat_log_flushes_total 6',
      'chat_log_bytes_total 2048',
      'chat_log_records_total 9',
      'chat_log_healthy 0',
      'chat_log_checkpoints_total 2',
      'chat_redis_connected 1',
      'chat_redis_entries_appended_total 5',
      'chat_redis_entries_applied_total 11',
      'chat_redis_writes_pending 3',
      'chat_redis_other_trees 1',
      'chat_redis_snapshots_total 4',
      'chat_metrics_workers_asked 3',
      'chat_metrics_workers_answered 2',
    ]);
  });

  test('each family opens with its HELP (the declaration\'s text) and TYPE lines, in the declarations\' order', () => {
    const headers = text.split('\n').filter((line) => line.startsWith('#'));
    const expected = Object.entries(METRICS as Record<string, MetricDeclaration>)
      .flatMap(([name, metric]) => [`# HELP ${name} ${escapeHelp(metric.help)}`, `# TYPE ${name} ${metric.type}`]);
    assert.deepEqual(headers, expected);
    assert.ok(text.startsWith('# HELP asgi_websocket_connections_open '), 'the text opens with the first family');
    assert.ok(text.endsWith(' 2\n'), 'the text ends with a line feed');
  });

  test('memory only (no message log): the log\'s families declare themselves and carry no sample', () => {
    const families = metricFamilies({ ...REPORT, primary: { ...REPORT.primary, log: null } });
    const logFamilies = families.filter((family) => family.name.startsWith('chat_log_'));
    assert.deepEqual(logFamilies.map((family) => family.name),
      ['chat_log_flushes_total', 'chat_log_bytes_total', 'chat_log_records_total', 'chat_log_healthy', 'chat_log_checkpoints_total']);
    for (const family of logFamilies) assert.deepEqual(family.samples, [], family.name);
    assert.equal(families.find((family) => family.name === 'chat_rooms_users_online')?.samples[0]?.value, 4, 'the rest as before');
  });

  test('without Redis: the shared log\'s families declare themselves and carry no sample', () => {
    const families = metricFamilies({ ...REPORT, primary: { ...REPORT.primary, redis: null } });
    const redisFamilies = families.filter((family) => family.name.startsWith('chat_redis_'));
    assert.deepEqual(redisFamilies.map((family) => family.name), ['chat_redis_connected', 'chat_redis_entries_appended_total',
      'chat_redis_entries_applied_total', 'chat_redis_writes_pending', 'chat_redis_other_trees', 'chat_redis_snapshots_total']);
    for (const family of redisFamilies) assert.deepEqual(family.samples, [], family.name);
  });

  test('a scrape in which no worker answered still reports the primary and says so', () => {
    const empty = renderPrometheus(metricFamilies({ ...REPORT, processes: [] }));
    const samples = empty.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
    assert.ok(samples.includes('asgi_websocket_connections_open_all_workers 0'));
    assert.ok(samples.includes('chat_metrics_workers_asked 3'));
    assert.ok(samples.includes('chat_metrics_workers_answered 0'));
    assert.ok(samples.includes('chat_ipc_backlog_messages{direction="to_worker",worker="202"} 5'));
    assert.ok(!samples.some((line) => line.startsWith('asgi_websocket_connections_open{')), 'no per-worker sample without a worker');
  });
});

describe('the declarations', () => {
  const families = metricFamilies(REPORT);
  for (const [name, metric] of Object.entries(METRICS as Record<string, MetricDeclaration>)) {
    test(`${name}: a ${metric.type} named as Prometheus names one, carrying the labels it declares`, () => {
      if (metric.type === 'counter') assert.ok(name.endsWith('_total'), 'a counter\'s name ends in _total');
      else assert.ok(!name.endsWith('_total'), 'only counters end in _total');
      assert.match(name, /^(asgi|chat)_[a-z_]+$/);
      assert.ok(metric.help.trim().length > 0 && !/[|\n]/.test(metric.help), 'a one-line help without "|" (it is a table cell in the README)');
      const family = families.find((f) => f.name === name)!;
      assert.ok(family.samples.length > 0);
      for (const sample of family.samples) assert.deepEqual((sample.labels ?? []).map(([label]) => label), [...metric.labels]);
    });
  }

  test('every refusal the server counts has a reason label, and the labels are distinct', () => {
    assert.deepEqual(Object.keys(REFUSAL_REASONS).sort(), Object.keys(noRefusals()).sort());
    assert.equal(new Set(Object.values(REFUSAL_REASONS)).size, Object.keys(REFUSAL_REASONS).length);
  });

  test('the README\'s metrics table is the one rendered from them', () => {
    const readme = readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8');
    assert.equal(readmeTable(readme, 'metrics'), renderMetricsTable(), 'run `npm run build && node dist/readme-tables.js --write` to regenerate it');
    for (const name of Object.keys(METRICS)) assert.ok(renderMetricsTable().includes(`| \`${name}\` |`), name);
  });
});

describe('the server\'s counters', () => {
  test('a refusal is filed under its status\'s reason, an unknown status under other', () => {
    const before = snapshotServerMetrics().refused;
    for (const status of [400, 400, 403, 405, 426, 500, 503, 418]) countRefusedHandshake(status);
    const after = snapshotServerMetrics().refused;
    const delta = Object.fromEntries(Object.keys(after).map((key) => [key, after[key as keyof RefusedHandshakes] - before[key as keyof RefusedHandshakes]]));
    assert.deepEqual(delta, { badRequest: 2, methodNotAllowed: 1, unsupportedVersion: 1, forbidden: 1, appError: 1, appResponse: 0, shuttingDown: 1, other: 1 });
  });

  test('a snapshot is a copy: later increments do not change it', () => {
    const snapshot = snapshotServerMetrics();
    serverMetrics.messagesSent++;
    serverMetrics.refused.forbidden++;
    assert.equal(serverMetrics.messagesSent, snapshot.messagesSent + 1);
    assert.equal(serverMetrics.refused.forbidden, snapshot.refused.forbidden + 1);
    assert.notEqual(snapshotServerMetrics().refused, serverMetrics.refused);
  });
});
