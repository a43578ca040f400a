// The crash loop (src/bench/crash-loop.ts), run briefly as a user runs it: two kills of the whole
// --workers 4 tree under load, and its summary must say that nothing was lost or duplicated; then
// the same with Redis as the log (--redis, against a redis-server of the test's own).
// The long run (--kills 20 and more) is for the closing note, not for every test run.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { skipWithoutRedis, startRedisServer } from './helpers/redis-server.js';
import { PROJECT_ROOT } from './helpers/server.js';

const CRASH_LOOP = fileURLToPath(new URL('../../dist/bench/crash-loop.js', import.meta.url));

/** Runs the crash loop with `args` (2 kills, seed 7) and checks its summary: nothing lost or duplicated. */
async function crashLoop(args: string[]): Promise<void> {
  const child = spawn(process.execPath, ['--experimental-websocket', CRASH_LOOP, '--kills', '2', '--seed', '7', '--max-ms', '800', ...args], {
    cwd: PROJECT_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => { output += s; });
  child.stderr.setEncoding('utf8').on('data', (s: string) => { output += s; });
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  const [code] = await once(child, 'close');
  clearTimeout(timer);
  const summary = /^kills: (\d+), acknowledged messages checked: (\d+), lost: (\d+), duplicated: (\d+)$/m.exec(output);
  assert.ok(summary, `no summary line in:\n${output}`);
  assert.equal(summary[1], '2');
  assert.ok(Number(summary[2]) > 0, `nothing was checked:\n${output}`);
  assert.equal(summary[3], '0', output);
  assert.equal(summary[4], '0', output);
  assert.equal(code, 0, output);
}

test('the crash loop with --kills 2 checks acknowledged messages and finds none lost or duplicated', async () => {
  await crashLoop(['--workers', '4']);
});

test('the crash loop with Redis as the log (--redis, appendfsync always) finds none lost or duplicated', async (t: TestContext) => {
  if (skipWithoutRedis(t)) return;
  const redis = await startRedisServer({ appendonly: true, args: ['--appendfsync', 'always'] });
  t.after(() => redis.stop());
  await crashLoop(['--workers', '2', '--redis', redis.url]);
});
