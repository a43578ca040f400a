// Tests for the benchmark's view of the message log (src/bench/server-log.ts, and deliveries.ts
// reading it around each step): a step against a server with a log reports exactly the records
// its messages made and the bytes they took, in at least one flush and at most one per message;
// against a memory-only server it reports no log figures rather than zeros. And the reading of
// /metrics takes the three counters, or nothing when the log's families have no sample.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { runFanout, type FanoutOptions } from '../src/bench/fanout.js';
import { parseLogCounters, readLogCounters } from '../src/bench/server-log.js';
import { RECORD_HEADER_BYTES } from '../src/log/record.js';
import { startServer } from './helpers/server.js';

function options(port: number): FanoutOptions {
  const target = { host: '127.0.0.1', port, path: '/chat' };
  return {
    target, serverPid: null, size: 128,
    mode: 'fixed', rate: 20, firstStep: 1, durationS: 1, rampStart: null, rampFactor: 1.5, stepS: 1, maxSteps: 1,
    drainS: 5, maxP99Ms: 60_000, minRatio: 0.999, threads: 1, concurrency: 20, connectTimeoutS: 10, log: () => {},
    logCounters: () => readLogCounters(target.host, target.port),
    subs: 3, pubs: 2,
  };
}

/**
 * A lobby record: its header, 'L', and the broadcast JSON, which is the published --size bytes with
 * `{"id":ID,"ts":TS,` in place of its `{`: a 16-digit id (microseconds since 1970 at the start) and a
 * 13-digit ts (milliseconds), as long as this century lasts.
 */
const LOBBY_RECORD_BYTES = RECORD_HEADER_BYTES + 1 + (128 - 1) + '{"id":,"ts":,'.length + 16 + 13;

describe('the fan-out with the message log', () => {
  test('a step reports the records, bytes and flushes the log made durable for its messages', async () => {
    const server = await startServer();
    try {
      const result = await runFanout(options(server.port));
      assert.equal(result.error, null);
      const step = result.fixed!;
      assert.equal(step.sent, 20);
      assert.equal(step.received, step.expected);
      assert.ok(step.log, 'the server has a log');
      assert.equal(step.log.records, 20, 'one record per message');
      assert.equal(step.log.bytes, 20 * LOBBY_RECORD_BYTES);
      assert.ok(step.log.flushes >= 1 && step.log.flushes <= 20, `1 to 20 group commits, got ${step.log.flushes}`);
      assert.equal(step.log.bytes_per_s, Math.round(step.log.bytes / step.cpu.wall_s));
      assert.equal(step.log.flushes_per_s, Math.round(step.log.flushes / step.cpu.wall_s));
    } finally {
      await server.stop();
    }
  });

  test('memory only: the same step has no log figures', async () => {
    const server = await startServer({ env: { CHAT_DATA_DIR: '' } });
    try {
      const result = await runFanout(options(server.port));
      assert.equal(result.error, null);
      assert.equal(result.fixed!.received, result.fixed!.expected);
      assert.equal(result.fixed!.log, null);
    } finally {
      await server.stop();
    }
  });

  test('the counters are read from the exposition; a server without them has none', () => {
    const text = '# HELP chat_log_flushes_total x\n# TYPE chat_log_flushes_total counter\nchat_log_flushes_total 7\n' +
      'chat_log_bytes_total 4096\nchat_log_records_total 12\nchat_log_healthy 1\n';
    assert.deepEqual(parseLogCounters(text), { flushes: 7, bytes: 4096, records: 12 });
    assert.equal(parseLogCounters('# HELP chat_log_flushes_total x\n# TYPE chat_log_flushes_total counter\n'), null);
    assert.equal(parseLogCounters('chat_log_flushes_total 7\nchat_log_bytes_total 4096\n'), null, 'all three or nothing');
  });
});
