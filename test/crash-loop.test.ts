// The crash loop (src/bench/crash-loop.ts), run briefly as a user runs it: two kills of the whole
// --workers 4 tree under load, and its summary must say that nothing was lost or duplicated.
// The long run (--kills 20 and more) is for the closing note, not for every test run.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PROJECT_ROOT } from './helpers/server.js';

const CRASH_LOOP = fileURLToPath(new URL('../../dist/bench/crash-loop.js', import.meta.url));

test('the crash loop with --kills 2 checks acknowledged messages and finds none lost or duplicated', async () => {
  const child = spawn(process.execPath, ['--experimental-websocket', CRASH_LOOP, '--kills', '2', '--workers', '4', '--seed', '7', '--max-ms', '800'], {
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
});
