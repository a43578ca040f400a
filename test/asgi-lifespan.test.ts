// The lifespan runner (src/server/asgi-lifespan.ts), in process: first its transition table, cell by
// cell (every step × every event, exact next step and outcome), then the runner driven by small
// fake applications, with a logger that records what would be printed.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Application, ReceiveEvent, SendEvent } from '../src/server/asgi-types.js';
import {
  EVENTS, EXPECTED, Lifespan, LifespanStartupError, STEPS, TRANSITIONS,
  type LifespanEvent, type LifespanMode, type Logger, type Outcome, type Step,
} from '../src/server/asgi-lifespan.js';

// ---------------------------------------------------------------------------------------------
// The table

/** Every cell, written out by hand: [step, event, next step, outcome]. */
const EXPECTED_CELLS: Array<[Step, LifespanEvent, Step, Outcome]> = [
  ['idle', 'receive', 'starting', 'deliver-startup'],
  ['idle', 'send lifespan.startup.complete', 'idle', 'misuse'],
  ['idle', 'send lifespan.startup.failed', 'idle', 'misuse'],
  ['idle', 'send lifespan.shutdown.complete', 'idle', 'misuse'],
  ['idle', 'send lifespan.shutdown.failed', 'idle', 'misuse'],
  ['idle', 'send other', 'idle', 'misuse'],
  ['idle', 'return', 'unsupported', 'unsupported'],
  ['idle', 'raise', 'unsupported', 'unsupported'],
  ['idle', 'shutdown', 'idle', 'too-early'],

  ['starting', 'receive', 'starting', 'misuse'],
  ['starting', 'send lifespan.startup.complete', 'started', 'started'],
  ['starting', 'send lifespan.startup.failed', 'finished', 'startup-failed'],
  ['starting', 'send lifespan.shutdown.complete', 'starting', 'misuse'],
  ['starting', 'send lifespan.shutdown.failed', 'starting', 'misuse'],
  ['starting', 'send other', 'starting', 'misuse'],
  ['starting', 'return', 'unsupported', 'startup-error'],
  ['starting', 'raise', 'unsupported', 'startup-error'],
  ['starting', 'shutdown', 'starting', 'too-early'],

  ['started', 'receive', 'started', 'await-shutdown'],
  ['started', 'send lifespan.startup.complete', 'started', 'misuse'],
  ['started', 'send lifespan.startup.failed', 'started', 'misuse'],
  ['started', 'send lifespan.shutdown.complete', 'started', 'misuse'],
  ['started', 'send lifespan.shutdown.failed', 'started', 'misuse'],
  ['started', 'send other', 'started', 'misuse'],
  ['started', 'return', 'finished', 'finished'],
  ['started', 'raise', 'finished', 'finished'],
  ['started', 'shutdown', 'stopping', 'shutdown-requested'],

  ['stopping', 'receive', 'stopping', 'deliver-shutdown'],
  ['stopping', 'send lifespan.startup.complete', 'stopping', 'misuse'],
  ['stopping', 'send lifespan.startup.failed', 'stopping', 'misuse'],
  ['stopping', 'send lifespan.shutdown.complete', 'finished', 'shutdown-complete'],
  ['stopping', 'send lifespan.shutdown.failed', 'finished', 'shutdown-failed'],
  ['stopping', 'send other', 'stopping', 'misuse'],
  ['stopping', 'return', 'finished', 'shutdown-complete'],
  ['stopping', 'raise', 'finished', 'shutdown-failed'],
  ['stopping', 'shutdown', 'stopping', 'same-answer'],

  ['finished', 'receive', 'finished', 'never'],
  ['finished', 'send lifespan.startup.complete', 'finished', 'misuse'],
  ['finished', 'send lifespan.startup.failed', 'finished', 'misuse'],
  ['finished', 'send lifespan.shutdown.complete', 'finished', 'misuse'],
  ['finished', 'send lifespan.shutdown.failed', 'finished', 'misuse'],
  ['finished', 'send other', 'finished', 'misuse'],
  ['finished', 'return', 'finished', 'over'],
  ['finished', 'raise', 'finished', 'over'],
  ['finished', 'shutdown', 'finished', 'same-answer'],

  ['unsupported', 'receive', 'unsupported', 'never'],
  ['unsupported', 'send lifespan.startup.complete', 'unsupported', 'misuse'],
  ['unsupported', 'send lifespan.startup.failed', 'unsupported', 'misuse'],
  ['unsupported', 'send lifespan.shutdown.complete', 'unsupported', 'misuse'],
  ['unsupported', 'send lifespan.shutdown.failed', 'unsupported', 'misuse'],
  ['unsupported', 'send other', 'unsupported', 'misuse'],
  ['unsupported', 'return', 'unsupported', 'over'],
  ['unsupported', 'raise', 'unsupported', 'over'],
  ['unsupported', 'shutdown', 'unsupported', 'same-answer'],
];

describe('the transition table', () => {
  test('the steps and events are exactly these (a new one must be added to the cells below)', () => {
    assert.deepEqual([...STEPS], ['idle', 'starting', 'started', 'stopping', 'finished', 'unsupported']);
    assert.deepEqual([...EVENTS], [
      'receive',
      'send lifespan.startup.complete', 'send lifespan.startup.failed',
      'send lifespan.shutdown.complete', 'send lifespan.shutdown.failed', 'send other',
      'return', 'raise', 'shutdown',
    ]);
    assert.deepEqual(Object.keys(TRANSITIONS), [...STEPS]);
    for (const step of STEPS) assert.deepEqual(Object.keys(TRANSITIONS[step]), [...EVENTS], `the events of '${step}'`);
  });

  test('the hand-written cells cover every step × event exactly once', () => {
    const seen = new Set(EXPECTED_CELLS.map(([step, event]) => `${step} / ${event}`));
    assert.equal(seen.size, EXPECTED_CELLS.length, 'no cell written twice');
    assert.equal(EXPECTED_CELLS.length, STEPS.length * EVENTS.length);
  });

  for (const [step, event, next, outcome] of EXPECTED_CELLS) {
    test(`${step} + ${event} → ${next}, ${outcome}`, () => {
      assert.deepEqual(TRANSITIONS[step][event], [next, outcome]);
    });
  }

  test('a misuse, a too-early shutdown and a waiting receive never change the step', () => {
    for (const step of STEPS) {
      for (const event of EVENTS) {
        const [next, outcome] = TRANSITIONS[step][event];
        if (['misuse', 'too-early', 'await-shutdown', 'never', 'same-answer'].includes(outcome)) {
          assert.equal(next, step, `${step} + ${event}`);
        }
      }
    }
  });

  test('finished and unsupported are terminal, and every step is reachable from idle', () => {
    for (const terminal of ['finished', 'unsupported'] as const) {
      for (const event of EVENTS) assert.equal(TRANSITIONS[terminal][event][0], terminal, `${terminal} + ${event}`);
    }
    const reached = new Set<Step>(['idle']);
    for (let grew = true; grew;) {
      grew = false;
      for (const step of reached) {
        for (const event of EVENTS) {
          const next = TRANSITIONS[step][event][0];
          if (!reached.has(next)) { reached.add(next); grew = true; }
        }
      }
    }
    assert.deepEqual([...reached].sort(), [...STEPS].sort());
  });

  test('every step says what it expects, for the misuse errors', () => {
    assert.deepEqual(EXPECTED, {
      idle: "a receive() of 'lifespan.startup' first",
      starting: "ASGI message 'lifespan.startup.complete' or 'lifespan.startup.failed'",
      started: "no message before a receive() of 'lifespan.shutdown'",
      stopping: "ASGI message 'lifespan.shutdown.complete' or 'lifespan.shutdown.failed'",
      finished: 'no message (the lifespan scope has finished)',
      unsupported: 'no message (the server runs without lifespan)',
    });
  });
});

// ---------------------------------------------------------------------------------------------
// The runner

type Line = [level: 'debug' | 'info' | 'error', message: string];

function recordingLogger(): { logger: Logger; lines: Line[] } {
  const lines: Line[] = [];
  return {
    lines,
    logger: {
      debug: (message) => lines.push(['debug', message]),
      info: (message) => lines.push(['info', message]),
      error: (message) => lines.push(['error', message]),
    },
  };
}

/** Lets every pending promise callback run (setImmediate comes after all of them). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The promise's value if it has settled by now, else 'pending' (rejections come back as Errors). */
async function now<T>(promise: Promise<T>): Promise<T | Error | 'pending'> {
  const pending = settle().then(() => 'pending' as const);
  return Promise.race([promise.catch((error: Error) => error), pending]);
}

/** A lifespan app written as the spec's example: startup, then wait for shutdown, then answer. */
function wellBehaved(received: string[], answer: Partial<Record<'startup' | 'shutdown', SendEvent>> = {}): Application {
  return async (scope, receive, send) => {
    assert.equal(scope.type, 'lifespan');
    for (;;) {
      const event = await receive();
      received.push(event.type);
      if (event.type === 'lifespan.startup') {
        scope.state.ready = 'yes';
        await send(answer.startup ?? { type: 'lifespan.startup.complete' });
        if (answer.startup?.type === 'lifespan.startup.failed') return;
      } else if (event.type === 'lifespan.shutdown') {
        await send(answer.shutdown ?? { type: 'lifespan.shutdown.complete' });
        return;
      }
    }
  };
}

function runner(mode: LifespanMode = 'auto') {
  const { logger, lines } = recordingLogger();
  return { lifespan: new Lifespan(mode, logger), lines };
}

describe('Lifespan: a well-behaved app', () => {
  test('startup.complete: startup resolves with the state filled; shutdown delivers lifespan.shutdown and resolves null', async () => {
    const { lifespan, lines } = runner();
    const received: string[] = [];
    await lifespan.startup(wellBehaved(received));
    assert.equal(lifespan.step, 'started');
    assert.deepEqual(lifespan.state, { ready: 'yes' });
    assert.deepEqual(received, ['lifespan.startup']);
    assert.equal(await lifespan.shutdown(), null);
    assert.equal(lifespan.step, 'finished');
    assert.deepEqual(received, ['lifespan.startup', 'lifespan.shutdown']);
    assert.deepEqual(lines, []);
  });

  test('shutdown waits for the app’s answer', async () => {
    const { lifespan } = runner();
    let answer!: () => void;
    const answered = new Promise<void>((resolve) => { answer = resolve; });
    await lifespan.startup(async (_scope, receive, send) => {
      await receive();
      await send({ type: 'lifespan.startup.complete' });
      await receive();
      await answered;
      await send({ type: 'lifespan.shutdown.complete' });
    });
    const shutdown = lifespan.shutdown();
    assert.equal(await now(shutdown), 'pending');
    assert.equal(lifespan.step, 'stopping');
    answer();
    assert.equal(await shutdown, null);
  });

  for (const mode of ['auto', 'on'] as const) {
    test(`${mode}: lifespan.startup.failed rejects startup with the app's message (exit 3)`, async () => {
      const { lifespan, lines } = runner(mode);
      const received: string[] = [];
      const failed = { type: 'lifespan.startup.failed', message: 'database unreachable' } as const;
      await assert.rejects(lifespan.startup(wellBehaved(received, { startup: failed })), (error: Error) => {
        assert.ok(error instanceof LifespanStartupError);
        assert.equal(error.message, 'database unreachable');
        return true;
      });
      assert.equal(lifespan.step, 'finished');
      assert.deepEqual(lines, [], 'the server logs it, not the runner');
    });
  }

  test('lifespan.startup.failed without a message: the message is ""', async () => {
    const { lifespan } = runner();
    await assert.rejects(
      lifespan.startup(wellBehaved([], { startup: { type: 'lifespan.startup.failed' } })),
      (error: Error) => error instanceof LifespanStartupError && error.message === '',
    );
  });

  test('lifespan.shutdown.failed: shutdown resolves with its message', async () => {
    const { lifespan, lines } = runner();
    await lifespan.startup(wellBehaved([], { shutdown: { type: 'lifespan.shutdown.failed', message: 'could not flush' } }));
    assert.equal(await lifespan.shutdown(), 'could not flush');
    assert.equal(lifespan.step, 'finished');
    assert.deepEqual(lines, []);
  });

  test('an exception during shutdown: logged with its stack, shutdown resolves with its message', async () => {
    const { lifespan, lines } = runner();
    await lifespan.startup(async (_scope, receive, send) => {
      await receive();
      await send({ type: 'lifespan.startup.complete' });
      await receive();
      throw new Error('shutdown exploded');
    });
    assert.equal(await lifespan.shutdown(), 'shutdown exploded');
    assert.equal(lines.length, 1);
    assert.equal(lines[0]![0], 'error');
    assert.match(lines[0]![1], /^Exception in 'lifespan' shutdown\nError: shutdown exploded\n +at /);
  });

  test('returning on lifespan.shutdown without answering counts as complete', async () => {
    const { lifespan } = runner();
    await lifespan.startup(async (_scope, receive, send) => {
      await receive();
      await send({ type: 'lifespan.startup.complete' });
      await receive();
    });
    assert.equal(await lifespan.shutdown(), null);
    assert.equal(lifespan.step, 'finished');
  });

  test('receive() keeps returning lifespan.shutdown once it was requested; shutdown() twice gives the same answer', async () => {
    const { lifespan } = runner();
    const received: string[] = [];
    await lifespan.startup(async (_scope, receive, send) => {
      await receive();
      await send({ type: 'lifespan.startup.complete' });
      received.push((await receive()).type, (await receive()).type);
      await send({ type: 'lifespan.shutdown.failed', message: 'twice' });
    });
    const first = lifespan.shutdown();
    const second = lifespan.shutdown();
    assert.equal(await first, 'twice');
    assert.equal(await second, 'twice');
    assert.deepEqual(received, ['lifespan.shutdown', 'lifespan.shutdown']);
  });
});

describe('Lifespan: apps without lifespan, or whose startup breaks', () => {
  const raiseBeforeReceive: Application = async () => { throw new TypeError('no lifespan here'); };
  const returnBeforeReceive: Application = async () => {};
  const raiseAfterReceive: Application = async (_scope, receive) => {
    await receive();
    throw new Error('startup exploded');
  };
  const returnAfterReceive: Application = async (_scope, receive) => { await receive(); };

  test('auto, raise before receive: one info line, served without lifespan, shutdown at once', async () => {
    const { lifespan, lines } = runner('auto');
    await lifespan.startup(raiseBeforeReceive);
    assert.equal(lifespan.step, 'unsupported');
    assert.deepEqual(lines, [['info', "ASGI 'lifespan' protocol appears unsupported (TypeError: no lifespan here); serving without it"]]);
    assert.equal(await now(lifespan.shutdown()), null);
  });

  test('auto, return before receive: one info line, served without lifespan', async () => {
    const { lifespan, lines } = runner('auto');
    await lifespan.startup(returnBeforeReceive);
    assert.equal(lifespan.step, 'unsupported');
    assert.deepEqual(lines, [['info', "ASGI 'lifespan' protocol appears unsupported (the application returned without receiving 'lifespan.startup'); serving without it"]]);
    assert.equal(await now(lifespan.shutdown()), null);
  });

  test('on, raise before receive: the exception with its stack at error level, startup fails', async () => {
    const { lifespan, lines } = runner('on');
    await assert.rejects(lifespan.startup(raiseBeforeReceive), (error: Error) => error instanceof LifespanStartupError && error.message === 'no lifespan here');
    assert.equal(lines.length, 1);
    assert.equal(lines[0]![0], 'error');
    assert.match(lines[0]![1], /^Exception in 'lifespan' protocol \(--lifespan on requires lifespan support\)\nTypeError: no lifespan here\n +at /);
  });

  test('on, return before receive: an error line, startup fails', async () => {
    const { lifespan, lines } = runner('on');
    await assert.rejects(lifespan.startup(returnBeforeReceive), {
      name: 'LifespanStartupError',
      message: "the application returned without receiving 'lifespan.startup'",
    });
    assert.deepEqual(lines, [['error', "ASGI 'lifespan' protocol unsupported (the application returned without receiving 'lifespan.startup'), and --lifespan on requires it"]]);
  });

  test('auto, raise after receive: the exception with its stack at error level, served without lifespan', async () => {
    const { lifespan, lines } = runner('auto');
    await lifespan.startup(raiseAfterReceive);
    assert.equal(lifespan.step, 'unsupported');
    assert.equal(lines.length, 1);
    assert.equal(lines[0]![0], 'error');
    assert.match(lines[0]![1], /^Exception in 'lifespan' startup; serving without lifespan \(--lifespan on makes this fatal\)\nError: startup exploded\n +at /);
    assert.equal(await now(lifespan.shutdown()), null);
  });

  test('on, raise after receive: the exception with its stack at error level, startup fails', async () => {
    const { lifespan, lines } = runner('on');
    await assert.rejects(lifespan.startup(raiseAfterReceive), { name: 'LifespanStartupError', message: 'startup exploded' });
    assert.equal(lines.length, 1);
    assert.match(lines[0]![1], /^Exception in 'lifespan' startup\nError: startup exploded\n +at /);
  });

  test('auto and on, return after receive without answering: an error line; auto serves, on fails', async () => {
    const why = "the application returned after receiving 'lifespan.startup' without answering it";
    const auto = runner('auto');
    await auto.lifespan.startup(returnAfterReceive);
    assert.deepEqual(auto.lines, [['error', `Lifespan startup did not complete: ${why}; serving without lifespan (--lifespan on makes this fatal)`]]);
    const on = runner('on');
    await assert.rejects(on.lifespan.startup(returnAfterReceive), { name: 'LifespanStartupError', message: why });
    assert.deepEqual(on.lines, [['error', `Lifespan startup did not complete: ${why}`]]);
  });

  test('off: the app is never called, and shutdown resolves at once', async () => {
    const { lifespan, lines } = runner('off');
    let called = false;
    await lifespan.startup(async () => { called = true; });
    assert.equal(called, false);
    assert.equal(lifespan.step, 'unsupported');
    assert.deepEqual(lifespan.state, {});
    assert.equal(await now(lifespan.shutdown()), null);
    assert.deepEqual(lines, []);
  });
});

describe('Lifespan: a lifespan function that ends after startup.complete', () => {
  test('returning: shutdown resolves at once (it does not wait for an answer that cannot come)', async () => {
    const { lifespan, lines } = runner();
    await lifespan.startup(async (_scope, receive, send) => {
      await receive();
      await send({ type: 'lifespan.startup.complete' });
    });
    await settle(); // the function has returned by now
    assert.equal(lifespan.step, 'finished');
    assert.equal(await now(lifespan.shutdown()), null);
    assert.deepEqual(lines, [['debug', 'The lifespan function returned after startup; shutdown will not wait for it']]);
  });

  test('raising: logged with its stack, and shutdown resolves at once', async () => {
    const { lifespan, lines } = runner();
    await lifespan.startup(async (_scope, receive, send) => {
      await receive();
      await send({ type: 'lifespan.startup.complete' });
      throw new Error('background task died');
    });
    await settle();
    assert.equal(lifespan.step, 'finished');
    assert.equal(await now(lifespan.shutdown()), null);
    assert.equal(lines.length, 1);
    assert.match(lines[0]![1], /^Exception in 'lifespan' scope after startup; shutdown will not wait for it\nError: background task died\n +at /);
  });

  test('raising after shutdown.complete: logged, the answer stays', async () => {
    const { lifespan, lines } = runner();
    await lifespan.startup(async (_scope, receive, send) => {
      await receive();
      await send({ type: 'lifespan.startup.complete' });
      await receive();
      await send({ type: 'lifespan.shutdown.complete' });
      throw new Error('late');
    });
    assert.equal(await lifespan.shutdown(), null);
    await settle();
    assert.equal(lines.length, 1);
    assert.match(lines[0]![1], /^Exception in 'lifespan' scope after it finished\nError: late\n +at /);
  });

  test('receive() after the scope finished never resolves', async () => {
    const { lifespan } = runner();
    let late: Promise<ReceiveEvent> | undefined;
    await lifespan.startup(async (_scope, receive, send) => {
      await receive();
      await send({ type: 'lifespan.startup.complete' });
      await receive();
      await send({ type: 'lifespan.shutdown.complete' });
      late = receive();
    });
    await lifespan.shutdown();
    await settle();
    assert.equal(await now(late!), 'pending');
  });
});

describe('Lifespan: misuse errors name what was expected and what came', () => {
  /** Runs `attempt` inside an app at the point `reach` brings it to; resolves with its error. */
  async function misuse(reach: 'idle' | 'starting' | 'started' | 'stopping' | 'finished', attempt: (receive: () => Promise<ReceiveEvent>, send: (event: SendEvent) => Promise<void>) => Promise<unknown>) {
    const { lifespan } = runner();
    let caught: unknown = 'no error';
    let stepAfter: Step | undefined;
    let tried!: () => void;
    const done = new Promise<void>((resolve) => { tried = resolve; });
    const tryIt = async (receive: () => Promise<ReceiveEvent>, send: (event: SendEvent) => Promise<void>) => {
      try { await attempt(receive, send); } catch (error) { caught = error; }
      stepAfter = lifespan.step;
      tried();
    };
    const startup = lifespan.startup(async (_scope, receive, send) => {
      if (reach === 'idle') await tryIt(receive, send);
      await receive();
      if (reach === 'starting') await tryIt(receive, send);
      await send({ type: 'lifespan.startup.complete' });
      if (reach === 'started') await tryIt(receive, send);
      await receive();
      if (reach === 'stopping') await tryIt(receive, send);
      await send({ type: 'lifespan.shutdown.complete' });
      if (reach === 'finished') await tryIt(receive, send);
    });
    await startup;
    // Shutdown is requested only once the attempt was made, unless it needs shutdown to be reached.
    if (reach !== 'stopping' && reach !== 'finished') await done;
    assert.equal(await lifespan.shutdown(), null, 'the app carried on after the misuse');
    await done;
    assert.equal(stepAfter, reach, 'a misuse does not change the step');
    assert.ok(caught instanceof Error, `an Error, got ${String(caught)}`);
    return caught.message;
  }

  test('idle: a send before receiving lifespan.startup', async () => {
    assert.equal(await misuse('idle', (_r, send) => send({ type: 'lifespan.startup.complete' })),
      "Expected a receive() of 'lifespan.startup' first, but got 'lifespan.startup.complete'");
  });

  test('starting: a shutdown message', async () => {
    assert.equal(await misuse('starting', (_r, send) => send({ type: 'lifespan.shutdown.complete' })),
      "Expected ASGI message 'lifespan.startup.complete' or 'lifespan.startup.failed', but got 'lifespan.shutdown.complete'");
  });

  test('starting: a second receive() (it could only deadlock)', async () => {
    assert.equal(await misuse('starting', (receive) => receive()),
      "Expected ASGI message 'lifespan.startup.complete' or 'lifespan.startup.failed', but got a receive() call");
  });

  test('starting: something that is not a lifespan message, or not a message at all', async () => {
    assert.equal(await misuse('starting', (_r, send) => send({ type: 'http.response.start', status: 200 })),
      "Expected ASGI message 'lifespan.startup.complete' or 'lifespan.startup.failed', but got 'http.response.start'");
    assert.equal(await misuse('starting', (_r, send) => send(null as unknown as SendEvent)),
      "Expected ASGI message 'lifespan.startup.complete' or 'lifespan.startup.failed', but got a message without a string 'type'");
    assert.equal(await misuse('starting', (_r, send) => send({ type: 42 } as unknown as SendEvent)),
      "Expected ASGI message 'lifespan.startup.complete' or 'lifespan.startup.failed', but got a message without a string 'type'");
  });

  test('started: shutdown.complete before lifespan.shutdown was received', async () => {
    assert.equal(await misuse('started', (_r, send) => send({ type: 'lifespan.shutdown.complete' })),
      "Expected no message before a receive() of 'lifespan.shutdown', but got 'lifespan.shutdown.complete'");
  });

  test('stopping: a startup message', async () => {
    assert.equal(await misuse('stopping', (_r, send) => send({ type: 'lifespan.startup.complete' })),
      "Expected ASGI message 'lifespan.shutdown.complete' or 'lifespan.shutdown.failed', but got 'lifespan.startup.complete'");
  });

  test('finished: anything more', async () => {
    assert.equal(await misuse('finished', (_r, send) => send({ type: 'lifespan.shutdown.complete' })),
      "Expected no message (the lifespan scope has finished), but got 'lifespan.shutdown.complete'");
  });

  test('unsupported: a send from a function that already gave up', async () => {
    const { lifespan } = runner();
    let leakedSend!: (event: SendEvent) => Promise<void>;
    await lifespan.startup(async (_scope, _receive, send) => {
      leakedSend = send;
      throw new Error('no lifespan');
    });
    await assert.rejects(leakedSend({ type: 'lifespan.startup.complete' }), {
      message: "Expected no message (the server runs without lifespan), but got 'lifespan.startup.complete'",
    });
  });
});

describe('Lifespan: the server using it wrongly', () => {
  test('shutdown() before startup completed throws; startup() twice throws', async () => {
    const { lifespan } = runner();
    let release!: () => void;
    const held = new Promise<void>((resolve) => { release = resolve; });
    const startup = lifespan.startup(async (_scope, receive, send) => {
      await receive();
      await held;
      await send({ type: 'lifespan.startup.complete' });
    });
    await settle();
    assert.equal(lifespan.step, 'starting');
    await assert.rejects(lifespan.shutdown(), { message: "lifespan shutdown() before startup completed (step 'starting')" });
    await assert.rejects(lifespan.startup(async () => {}), { message: "lifespan startup() called twice (step 'starting')" });
    release();
    await startup;
    assert.equal(lifespan.step, 'started');
  });
});
