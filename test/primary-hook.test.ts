// The contract's primary hook (../shared/contract.md, "The primary process"), through real
// processes: an --app exporting primary() gets it called once in the cluster primary before the
// workers fork, answers its workers over IPC, is stopped after the last worker exited, and a
// primary() that throws or rejects stops startup with exit 3 before any worker is forked. Also the
// bundled chat's own primary: a bad CHAT_* setting with --workers exits 3 with one line naming it.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fixture, runMain, startServer } from './helpers/server.js';

const TIMEOUT = { timeout: 30_000 };

async function ask(url: string): Promise<{ count: number; primary: number; worker: number }> {
  // A fresh connection per request, so that cluster's round-robin (--worker-accept round-robin)
  // spreads them over the workers.
  const response = await fetch(`${url}/ask`, { headers: { connection: 'close' } });
  assert.equal(response.status, 200);
  return await response.json() as { count: number; primary: number; worker: number };
}

describe('an --app with primary() under --workers', () => {
  test('primary() runs once in the primary, answers every worker over IPC, and stop() runs at shutdown', TIMEOUT, async () => {
    const server = await startServer({ args: ['--app', fixture('primary-counter.mjs'), '--workers', '2', '--worker-accept', 'round-robin'] });
    try {
      const answers = [];
      for (let i = 0; i < 12; i++) answers.push(await ask(server.url));
      assert.deepEqual(answers.map((a) => a.count), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 'one counter, shared by all workers');
      assert.equal(new Set(answers.map((a) => a.primary)).size, 1, 'one primary answered');
      assert.equal(answers[0]!.primary, server.proc.pid, 'the primary is the process we started');
      assert.equal(new Set(answers.map((a) => a.worker)).size, 2, 'both workers asked it');
      const started = server.output().indexOf('FIXTURE primary started');
      assert.ok(started >= 0, 'primary() ran');
      assert.equal(server.output().split('FIXTURE primary started').length - 1, 1, 'primary() ran exactly once');
    } finally {
      const code = await server.stop();
      assert.equal(code, 0);
    }
    const output = server.output();
    assert.match(output, /FIXTURE primary stopped after 12 questions/);
    // stop() runs after every worker has finished, and before the primary's last line.
    const stopped = output.indexOf('FIXTURE primary stopped');
    assert.ok(output.lastIndexOf('Finished server process') < stopped, 'stop() ran after the workers exited');
    assert.ok(stopped < output.indexOf('Finished primary process'), 'and before the primary finished');
  });

  test('workers that exit with a status at shutdown: stop() still runs, and the primary exits with that status', TIMEOUT, async () => {
    // Node removes a worker from cluster.workers only once it has exited *and* its IPC channel has
    // closed; here the channel outlives the worker, and the supervisor must still notice the last.
    for (let round = 0; round < 2; round++) {
      const server = await startServer({ args: ['--app', fixture('primary-counter.mjs'), '--workers', '4'], env: { FIXTURE_WORKER_EXIT: '7' } });
      const code = await server.stop();
      assert.equal(code, 7, `round ${round}: the workers' status is the primary's:\n${server.output()}`);
      assert.match(server.output(), /FIXTURE primary stopped after 0 questions/, `round ${round}: stop() ran`);
    }
  });

  for (const mode of ['throw', 'reject']) {
    test(`a primary() that ${mode}s stops startup: exit 3, the error logged, no worker forked`, TIMEOUT, async () => {
      const run = await runMain(['--app', fixture('primary-counter.mjs'), '--workers', '2', '--port', '0'], 15_000, { FIXTURE_PRIMARY: mode });
      assert.equal(run.code, 3, run.stderr);
      assert.match(run.stderr, new RegExp(`Application primary failed: fixture: primary ${mode === 'throw' ? 'exploded' : 'rejected'}`));
      assert.doesNotMatch(run.stdout, /listening on/);
      assert.doesNotMatch(run.stderr, /Shutting down|Finished server process/, 'no worker ran');
    });
  }

  test('with one process primary() is never called', TIMEOUT, async () => {
    const server = await startServer({ args: ['--app', fixture('primary-counter.mjs')], env: { FIXTURE_PRIMARY: 'throw' } });
    try {
      const response = await fetch(`${server.url}/ask`);
      assert.equal(response.status, 503);
      await response.arrayBuffer();
    } finally {
      assert.equal(await server.stop(), 0);
    }
    assert.doesNotMatch(server.output(), /FIXTURE primary|Application primary failed/);
  });
});

describe('the bundled chat uses the primary hook', () => {
  for (const workers of ['1', '4']) {
    test(`a bad CHAT_* value with --workers ${workers}: exit 3 and one line naming the variable, no stack trace`, TIMEOUT, async () => {
      const run = await runMain(['--workers', workers, '--port', '0'], 15_000, { CHAT_HISTORY_SIZE: 'lots' });
      assert.equal(run.code, 3, run.stderr);
      const errors = run.stderr.split('\n').filter((line) => line.startsWith('ERROR:'));
      assert.equal(errors.length, 1, run.stderr);
      assert.match(errors[0]!, /CHAT_HISTORY_SIZE must be a whole number from 0 to 10000, got "lots"/);
      assert.doesNotMatch(run.stderr, /^\s+at /m, 'no stack trace');
    });
  }
});
