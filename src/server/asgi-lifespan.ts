// The ASGI lifespan protocol (asgiref "Lifespan" spec 2.0): the app's `lifespan` scope runs once
// per serving process, from before the first request until after the last one.
//
//   server                                   app
//   lifespan.startup            ──▶
//                               ◀──  lifespan.startup.complete  (or .failed {message})
//   ... the port is served ...
//   lifespan.shutdown           ──▶
//                               ◀──  lifespan.shutdown.complete (or .failed {message})
//
// Theory of operation. Everything that moves the conversation on lives in one table,
// TRANSITIONS below: for each step and each thing that can happen, the next step and what the
// server does about it (its "outcome"). The runner (class Lifespan) only translates calls into
// those events — the app calling receive() or send(), its function returning or raising, the
// server asking for shutdown — and carries out the outcome. The steps:
//
//   ┌──────┐  receive()   ┌──────────┐ startup.complete ┌─────────┐  shutdown   ┌──────────┐
//   │ idle │ ───────────▶ │ starting │ ───────────────▶ │ started │ ──────────▶ │ stopping │
//   └──────┘              └──────────┘  (port served)   └─────────┘  requested  └──────────┘
//      │                    │     │                         │                      │
//      │ returns or raises  │     │ startup.failed          │ returns or raises:   │ .complete,
//      │ before receiving   │     │ (exit 3)                │ done with lifespan,  │ .failed,
//      │ (no lifespan       │     │                         │ shutdown won't wait  │ returns or
//      │  support)          │     │                         │                      │ raises
//      ▼                    │     ▼                         ▼                      ▼
//   ┌─────────────┐ returns │   ┌──────────────────────────────────────────────────────────┐
//   │ unsupported │ ◀───────┘   │                         finished                         │
//   └─────────────┘ or raises   └──────────────────────────────────────────────────────────┘
//                   after receiving
//
// `unsupported` is "serving without lifespan": the app raised or returned before it completed its
// startup. The spec says a server must then carry on without lifespan events; --lifespan picks
// how (as in uvicorn): `auto` (the default) logs it — one info line when the app never received
// lifespan.startup (it simply has no lifespan support), the exception with its stack at error
// level when it did — and serves; `on` makes it fatal (exit 3); `off` never runs the scope at all
// and starts in `unsupported`. `lifespan.startup.failed` is fatal in every mode.
//
// In `finished` and `unsupported` nothing more is said: a shutdown answers at once (an app whose
// lifespan function returned after startup.complete cannot send shutdown.complete, so nobody may
// wait for it), a receive() never resolves (the process is on its way out), and any send is an
// error. A send the step does not allow rejects with an error naming what was expected and what
// came, as uvicorn words it; so does a second receive() during startup, which could only wait
// for a lifespan.shutdown that comes after the startup the server is waiting for — a deadlock.
import type { Application, LifespanScope, ReceiveEvent, SendEvent, State } from './asgi-types.js';
import { describeError, log } from './logger.js';

/** --lifespan: run the scope and forgive an app without lifespan (`auto`), require it, or skip it. */
export const LIFESPAN_MODES = ['auto', 'on', 'off'] as const;
export type LifespanMode = (typeof LIFESPAN_MODES)[number];

export const STEPS = ['idle', 'starting', 'started', 'stopping', 'finished', 'unsupported'] as const;
export type Step = (typeof STEPS)[number];

export const EVENTS = [
  'receive', // the app calls receive()
  'send lifespan.startup.complete',
  'send lifespan.startup.failed',
  'send lifespan.shutdown.complete',
  'send lifespan.shutdown.failed',
  'send other', // any other type, or something that is not a message at all
  'return', // the app's lifespan function returned
  'raise', // it raised (its promise rejected)
  'shutdown', // the server asks for shutdown (SIGINT/SIGTERM), after startup
] as const;
export type LifespanEvent = (typeof EVENTS)[number];

/** What receive() does. */
export type ReceiveOutcome =
  | 'deliver-startup' // resolves with lifespan.startup
  | 'await-shutdown' // resolves with lifespan.shutdown once shutdown is requested
  | 'deliver-shutdown' // resolves with lifespan.shutdown now (again, if asked again)
  | 'never' // never resolves: nothing more will come
  | 'misuse'; // rejects, naming what was expected

/** What a send() does (it resolves, except on misuse). */
export type SendOutcome =
  | 'started' // startup() resolves: the port is served
  | 'startup-failed' // startup() fails with the app's message: exit 3
  | 'shutdown-complete' // shutdown() resolves with null
  | 'shutdown-failed' // shutdown() resolves with the app's message
  | 'misuse'; // rejects, naming what was expected

/** What the server does when the app's lifespan function ends. A raise is always logged. */
export type EndOutcome =
  | 'unsupported' // before lifespan.startup: auto serves without lifespan, on exits 3
  | 'startup-error' // after lifespan.startup, before answering: auto serves without, on exits 3
  | 'finished' // while serving: done with lifespan; a later shutdown does not wait
  | 'shutdown-complete' // returned during shutdown: taken as complete
  | 'shutdown-failed' // raised during shutdown: shutdown() resolves with its message
  | 'over'; // the conversation was already over: nothing changes

/** What shutdown() does. */
export type ShutdownOutcome =
  | 'shutdown-requested' // lifespan.shutdown goes to the app; shutdown() waits for its answer
  | 'same-answer' // resolves with the answer already given or awaited (null if none)
  | 'too-early'; // before startup completed: a server bug, it throws

export type Outcome = ReceiveOutcome | SendOutcome | EndOutcome | ShutdownOutcome;

type OutcomeOf<E extends LifespanEvent> =
  E extends 'receive' ? ReceiveOutcome
    : E extends `send ${string}` ? SendOutcome
      : E extends 'return' | 'raise' ? EndOutcome
        : ShutdownOutcome;

export type Transitions = {
  readonly [S in Step]: { readonly [E in LifespanEvent]: readonly [next: Step, outcome: OutcomeOf<E>] };
};

export const TRANSITIONS: Transitions = {
  idle: {
    'receive': ['starting', 'deliver-startup'],
    'send lifespan.startup.complete': ['idle', 'misuse'],
    'send lifespan.startup.failed': ['idle', 'misuse'],
    'send lifespan.shutdown.complete': ['idle', 'misuse'],
    'send lifespan.shutdown.failed': ['idle', 'misuse'],
    'send other': ['idle', 'misuse'],
    'return': ['unsupported', 'unsupported'],
    'raise': ['unsupported', 'unsupported'],
    'shutdown': ['idle', 'too-early'],
  },
  starting: {
    'receive': ['starting', 'misuse'],
    'send lifespan.startup.complete': ['started', 'started'],
    'send lifespan.startup.failed': ['finished', 'startup-failed'],
    'send lifespan.shutdown.complete': ['starting', 'misuse'],
    'send lifespan.shutdown.failed': ['starting', 'misuse'],
    'send other': ['starting', 'misuse'],
    'return': ['unsupported', 'startup-error'],
    'raise': ['unsupported', 'startup-error'],
    'shutdown': ['starting', 'too-early'],
  },
  started: {
    'receive': ['started', 'await-shutdown'],
    'send lifespan.startup.complete': ['started', 'misuse'],
    'send lifespan.startup.failed': ['started', 'misuse'],
    'send lifespan.shutdown.complete': ['started', 'misuse'],
    'send lifespan.shutdown.failed': ['started', 'misuse'],
    'send other': ['started', 'misuse'],
    'return': ['finished', 'finished'],
    'raise': ['finished', 'finished'],
    'shutdown': ['stopping', 'shutdown-requested'],
  },
  stopping: {
    'receive': ['stopping', 'deliver-shutdown'],
    'send lifespan.startup.complete': ['stopping', 'misuse'],
    'send lifespan.startup.failed': ['stopping', 'misuse'],
    'send lifespan.shutdown.complete': ['finished', 'shutdown-complete'],
    'send lifespan.shutdown.failed': ['finished', 'shutdown-failed'],
    'send other': ['stopping', 'misuse'],
    'return': ['finished', 'shutdown-complete'],
    'raise': ['finished', 'shutdown-failed'],
    'shutdown': ['stopping', 'same-answer'],
  },
  finished: {
    'receive': ['finished', 'never'],
    'send lifespan.startup.complete': ['finished', 'misuse'],
    'send lifespan.startup.failed': ['finished', 'misuse'],
    'send lifespan.shutdown.complete': ['finished', 'misuse'],
    'send lifespan.shutdown.failed': ['finished', 'misuse'],
    'send other': ['finished', 'misuse'],
    'return': ['finished', 'over'],
    'raise': ['finished', 'over'],
    'shutdown': ['finished', 'same-answer'],
  },
  unsupported: {
    'receive': ['unsupported', 'never'],
    'send lifespan.startup.complete': ['unsupported', 'misuse'],
    'send lifespan.startup.failed': ['unsupported', 'misuse'],
    'send lifespan.shutdown.complete': ['unsupported', 'misuse'],
    'send lifespan.shutdown.failed': ['unsupported', 'misuse'],
    'send other': ['unsupported', 'misuse'],
    'return': ['unsupported', 'over'],
    'raise': ['unsupported', 'over'],
    'shutdown': ['unsupported', 'same-answer'],
  },
};

/** What each step waits for, for the misuse error ("Expected ..., but got ..."). */
export const EXPECTED: Readonly<Record<Step, string>> = {
  idle: "a receive() of 'lifespan.startup' first",
  starting: "ASGI message 'lifespan.startup.complete' or 'lifespan.startup.failed'",
  started: "no message before a receive() of 'lifespan.shutdown'",
  stopping: "ASGI message 'lifespan.shutdown.complete' or 'lifespan.shutdown.failed'",
  finished: 'no message (the lifespan scope has finished)',
  unsupported: 'no message (the server runs without lifespan)',
};

/** The error a misused receive() or send() rejects with; `got` is already quoted. */
export function misuseError(step: Step, got: string): Error {
  return new Error(`Expected ${EXPECTED[step]}, but got ${got}`);
}

type SendEventName = Extract<LifespanEvent, `send ${string}`>;

const SEND_EVENTS: Readonly<Record<string, SendEventName>> = {
  'lifespan.startup.complete': 'send lifespan.startup.complete',
  'lifespan.startup.failed': 'send lifespan.startup.failed',
  'lifespan.shutdown.complete': 'send lifespan.shutdown.complete',
  'lifespan.shutdown.failed': 'send lifespan.shutdown.failed',
};

/** Startup failed in a way that must end the process with exit code 3. */
export class LifespanStartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LifespanStartupError';
  }
}

export type Logger = Pick<typeof log, 'debug' | 'info' | 'error'>;

/** A promise with its resolve function at hand; resolving twice keeps the first value. */
function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((settle) => { resolve = settle; });
  return { promise, resolve };
}

export class Lifespan {
  /** Filled by the app during startup; each request scope gets a shallow copy. */
  readonly state: State = {};
  private current: Step = 'idle';
  /** null: serve; an error: exit 3. */
  private readonly startupAnswer = deferred<LifespanStartupError | null>();
  /** null: done; a string: shutdown failed with that message. */
  private readonly shutdownAnswer = deferred<string | null>();
  private readonly shutdownRequest = deferred<void>();

  constructor(private readonly mode: LifespanMode = 'auto', private readonly logger: Logger = log) {}

  get step(): Step {
    return this.current;
  }

  /**
   * Runs the app's lifespan scope up to startup.complete (or until the server knows to serve
   * without lifespan). Throws LifespanStartupError when the process must exit 3.
   */
  async startup(app: Application): Promise<void> {
    if (this.current !== 'idle') throw new Error(`lifespan startup() called twice (step '${this.current}')`);
    if (this.mode === 'off') {
      // Not an event of the table: with --lifespan off the app never hears of lifespan at all.
      this.current = 'unsupported';
      this.shutdownAnswer.resolve(null);
      return;
    }
    const scope: LifespanScope = { type: 'lifespan', asgi: { version: '3.0', spec_version: '2.0' }, state: this.state };
    void this.run(app, scope);
    const failure = await this.startupAnswer.promise;
    if (failure) throw failure;
  }

  /** Sends lifespan.shutdown and waits for the app's answer: a failure message, or null. */
  async shutdown(): Promise<string | null> {
    const [from, outcome] = this.take('shutdown');
    if (outcome === 'too-early') throw new Error(`lifespan shutdown() before startup completed (step '${from}')`);
    if (outcome === 'shutdown-requested') this.shutdownRequest.resolve();
    return this.shutdownAnswer.promise;
  }

  /** Moves to the table's next step for `event`; returns the step it left and the outcome. */
  private take<E extends LifespanEvent>(event: E): [from: Step, outcome: OutcomeOf<E>] {
    const from = this.current;
    const [next, outcome] = TRANSITIONS[from][event];
    this.current = next;
    return [from, outcome];
  }

  private async run(app: Application, scope: LifespanScope): Promise<void> {
    let raised: { error: unknown } | null = null;
    try {
      await app(scope, this.receive, this.send);
    } catch (error) {
      raised = { error };
    }
    const [, outcome] = this.take(raised ? 'raise' : 'return');
    const stack = raised ? describeError(raised.error) : '';
    const message = raised ? (raised.error instanceof Error ? raised.error.message : String(raised.error)) : '';
    switch (outcome) {
      case 'unsupported': {
        const why = raised ? stack.split('\n')[0]! : "the application returned without receiving 'lifespan.startup'";
        if (this.mode === 'on') {
          this.logger.error(raised
            ? `Exception in 'lifespan' protocol (--lifespan on requires lifespan support)\n${stack}`
            : `ASGI 'lifespan' protocol unsupported (${why}), and --lifespan on requires it`);
          this.startupAnswer.resolve(new LifespanStartupError(raised ? message : why));
        } else {
          this.logger.info(`ASGI 'lifespan' protocol appears unsupported (${why}); serving without it`);
          this.startupAnswer.resolve(null);
        }
        this.shutdownAnswer.resolve(null);
        return;
      }
      case 'startup-error': {
        const why = raised ? message : "the application returned after receiving 'lifespan.startup' without answering it";
        const what = raised ? "Exception in 'lifespan' startup" : `Lifespan startup did not complete: ${why}`;
        const detail = raised ? `\n${stack}` : '';
        if (this.mode === 'on') {
          this.logger.error(`${what}${detail}`);
          this.startupAnswer.resolve(new LifespanStartupError(why));
        } else {
          this.logger.error(`${what}; serving without lifespan (--lifespan on makes this fatal)${detail}`);
          this.startupAnswer.resolve(null);
        }
        this.shutdownAnswer.resolve(null);
        return;
      }
      case 'finished':
        if (raised) this.logger.error(`Exception in 'lifespan' scope after startup; shutdown will not wait for it\n${stack}`);
        else this.logger.debug('The lifespan function returned after startup; shutdown will not wait for it');
        this.shutdownAnswer.resolve(null);
        return;
      case 'shutdown-complete':
        this.shutdownAnswer.resolve(null);
        return;
      case 'shutdown-failed':
        this.logger.error(`Exception in 'lifespan' shutdown\n${stack}`);
        this.shutdownAnswer.resolve(message);
        return;
      case 'over':
        if (raised) this.logger.error(`Exception in 'lifespan' scope after it finished\n${stack}`);
        return;
    }
  }

  private readonly receive = async (): Promise<ReceiveEvent> => {
    const [from, outcome] = this.take('receive');
    switch (outcome) {
      case 'deliver-startup':
        return { type: 'lifespan.startup' };
      case 'await-shutdown':
      case 'deliver-shutdown':
        await this.shutdownRequest.promise;
        return { type: 'lifespan.shutdown' };
      case 'never':
        return new Promise<never>(() => {});
      case 'misuse':
        throw misuseError(from, 'a receive() call');
    }
  };

  private readonly send = async (event: SendEvent): Promise<void> => {
    const type: unknown = (event as { type?: unknown } | null | undefined)?.type;
    const name: SendEventName = typeof type === 'string' && Object.hasOwn(SEND_EVENTS, type) ? SEND_EVENTS[type]! : 'send other';
    const [from, outcome] = this.take(name);
    switch (outcome) {
      case 'started':
        this.startupAnswer.resolve(null);
        return;
      case 'startup-failed':
        this.startupAnswer.resolve(new LifespanStartupError(messageOf(event)));
        this.shutdownAnswer.resolve(null);
        return;
      case 'shutdown-complete':
        this.shutdownAnswer.resolve(null);
        return;
      case 'shutdown-failed':
        this.shutdownAnswer.resolve(messageOf(event));
        return;
      case 'misuse':
        throw misuseError(from, typeof type === 'string' ? `'${type}'` : "a message without a string 'type'");
    }
  };
}

/** The optional `message` of a .failed event; ASGI's default is "". */
function messageOf(event: SendEvent): string {
  const message = (event as { message?: unknown }).message;
  return message === undefined || message === null ? '' : String(message);
}
