// Tests for the benchmark's fan-out on Redis (`npm run bench -- --redis URL`: src/bench/main.ts,
// redis-target.ts, and fanout.ts splitting its connections over several server trees): run at a
// tiny size against a real redis-server, the report has the two-tree, one-tree and log-on runs,
// each delivering every message to every connection of every tree; the database was emptied
// before the runs (a key planted before is gone, and the runs report what FLUSHDB removed); Redis's
// CPU, on this machine, is read apart from the servers'. The CPU of several trees is the sum over
// all their processes (proc.ts), and bad flags are refused with exit code 2 before anything runs.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { processTree } from '../src/bench/proc.js';
import { RedisClient } from '../src/redis/client.js';
import { skipWithoutRedis, startRedisServer } from './helpers/redis-server.js';
import { startServer } from './helpers/server.js';

/** The built benchmark (npm run build), which starts the built server beside it, as `npm run bench` does. */
const BENCH = fileURLToPath(new URL('../../dist/bench/main.js', import.meta.url));

/** Runs the benchmark with `args`; resolves with its exit code and output. */
function bench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--experimental-websocket', BENCH, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => { stdout += text; });
    child.stderr.setEncoding('utf8').on('data', (text: string) => { stderr += text; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

interface StepJson {
  sent: number;
  expected: number;
  received: number;
  server_cpu_us_per_delivery: number | null;
  redis_cpu_us_per_delivery: number | null;
  cpu: { server_cpu_s: number | null; redis_cpu_s: number | null };
}
interface RunJson {
  setup: string;
  trees: number;
  recipients: number;
  fixed: StepJson;
  out_of_order: number;
  foreign_texts: number;
  redis_flushed_keys: number[] | null;
  error: string | null;
}

const SUBS = 4;
const PUBS = 2;
const RATE = 20;

describe('the fan-out on Redis', () => {
  test('two trees and one tree on one Redis, beside the log-on server: every message reaches every connection; the db is emptied first', async (t) => {
    if (skipWithoutRedis(t)) return;
    const redis = await startRedisServer({ appendonly: true, args: ['--appendfsync', 'always'] });
    const dir = mkdtempSync(join(tmpdir(), 'bench-redis-test-'));
    try {
      // What an earlier run (or anyone) left in the db: the benchmark must remove it, not count on it.
      const client = new RedisClient({ url: redis.url });
      await client.connect();
      await client.command(['SET', 'left:by-an-earlier-run', '1']);
      await client.command(['RPUSH', 'left:history', 'a', 'b']);
      await client.close();

      const json = join(dir, 'report.json');
      const { code, stdout, stderr } = await bench([
        '--only', 'fanout', '--redis', redis.url, '--workers', '1', '--subs', String(SUBS), '--pubs', String(PUBS),
        '--mode', 'fixed', '--rate', String(RATE), '--duration', '1', '--drain', '10', '--max-p99', '60000', '--threads', '1', '--json', json,
      ]);
      assert.equal(code, 0, `${stdout}\n${stderr}`);
      const report = JSON.parse(readFileSync(json, 'utf8')) as { fanout: { runs: RunJson[] }[]; redis: { pid: number | null } };
      const runs = report.fanout[0]!.runs;
      assert.deepEqual(runs.map((run) => [run.setup, run.trees]), [['redis, 2 trees', 2], ['redis, 1 tree', 1], ['log on', 1]]);
      for (const run of runs) {
        assert.equal(run.error, null, run.setup);
        assert.equal(run.recipients, SUBS + PUBS, run.setup);
        assert.equal(run.fixed.sent, RATE, run.setup);
        assert.equal(run.fixed.expected, RATE * (SUBS + PUBS), run.setup);
        assert.equal(run.fixed.received, run.fixed.expected, `${run.setup}: every message reached every connection`);
        assert.equal(run.out_of_order, 0, run.setup);
        assert.equal(run.foreign_texts, 0, `${run.setup}: no history from anything before`);
        assert.notEqual(run.fixed.server_cpu_us_per_delivery, null, run.setup);
      }
      // The first Redis run found the two planted keys; the second, what the first run's trees left.
      assert.equal(runs[0]!.redis_flushed_keys![0], 2);
      assert.ok(runs[1]!.redis_flushed_keys![0]! > 0, 'the two-tree run left its chat in Redis, which was removed');
      assert.equal(runs[2]!.redis_flushed_keys, null);

      // redis-server runs here: its pid is found, its CPU read apart, and only for the Redis runs.
      assert.notEqual(report.redis.pid, null);
      assert.equal(readFileSync(`/proc/${report.redis.pid}/comm`, 'latin1').trim(), 'redis-server');
      assert.notEqual(runs[0]!.fixed.cpu.redis_cpu_s, null);
      assert.notEqual(runs[1]!.fixed.cpu.redis_cpu_s, null);
      assert.equal(runs[2]!.fixed.cpu.redis_cpu_s, null);

      // The side-by-side table has a row per run, and says that the db was emptied.
      const summary = stdout.slice(stdout.indexOf('Fan-out (lobby), side by side'));
      for (const row of ['redis, 2 trees', 'redis, 1 tree', 'log on', '2 trees / 1 tree', 'Redis / log on, 1 tree']) {
        assert.match(summary, new RegExp(`^  ${row.replace(/[/]/g, '\\/')}  `, 'm'), row);
      }
      assert.match(summary, /its database was emptied \(FLUSHDB\) before the trees of every Redis run started/);

      const after = new RedisClient({ url: redis.url });
      await after.connect();
      assert.equal(await after.command(['EXISTS', 'left:by-an-earlier-run', 'left:history']), 0);
      await after.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await redis.stop();
    }
  });

  test('the CPU of several trees is read from all their processes: each primary and its workers', async () => {
    const a = await startServer({ args: ['--workers', '2'], env: { CHAT_DATA_DIR: '' } });
    const b = await startServer({ args: ['--workers', '2'], env: { CHAT_DATA_DIR: '' } });
    try {
      // Workers appear once the primary forked them: wait until both trees are whole.
      const deadline = Date.now() + 10_000;
      while ((processTree(a.proc.pid!).length < 3 || processTree(b.proc.pid!).length < 3) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const treeA = processTree(a.proc.pid!);
      const treeB = processTree(b.proc.pid!);
      assert.equal(treeA.length, 3, 'a primary and 2 workers');
      assert.equal(treeB.length, 3);
      assert.deepEqual(processTree([a.proc.pid!, b.proc.pid!]).sort(), [...treeA, ...treeB].sort());
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  test('bad flags are refused with exit code 2, before anything runs', async () => {
    const cases: [string[], RegExp][] = [
      [['--redis', 'http://127.0.0.1:6390'], /--redis has the scheme http:\/\//],
      [['--redis', 'redis://127.0.0.1:6390', '--url', 'http://127.0.0.1:8080'], /--redis goes without --url/],
      [['--redis', 'redis://127.0.0.1:6390', '--pubs', '1'], /--redis needs --pubs 2 or more/],
      [['--log', 'none'], /--log must be on, off, on,off or off,on, got "none"/],
    ];
    for (const [args, message] of cases) {
      const { code, stderr } = await bench(['--only', 'fanout', ...args]);
      assert.equal(code, 2, args.join(' '));
      assert.match(stderr, message);
    }
  });
});
