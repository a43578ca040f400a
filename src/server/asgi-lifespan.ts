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
// An app that raises before receiving anything does not support lifespan: one log line, and the
// server serves anyway. An app that raises after `lifespan.startup` but before completing it has
// failed its startup, like `lifespan.startup.failed`.
import { unexpectedMessage } from './asgi-errors.js';
import type { Application, LifespanScope, ReceiveEvent, SendEvent, State } from './asgi-types.js';
import { describeError, log } from './logger.js';

export class LifespanStartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LifespanStartupError';
  }
}

const enum Step { IDLE, STARTING, STARTED, STOPPING, STOPPED }

export class Lifespan {
  /** Filled by the app during startup; each request scope gets a shallow copy. */
  readonly state: State = {};
  private step = Step.IDLE;
  private receivedAnything = false;
  private supported = true;
  private settleStartup!: (error: Error | null) => void;
  private readonly startupDone = new Promise<Error | null>((resolve) => { this.settleStartup = resolve; });
  private settleShutdown!: (failure: string | null) => void;
  private readonly shutdownDone = new Promise<string | null>((resolve) => { this.settleShutdown = resolve; });
  private requestShutdown!: () => void;
  private readonly shutdownRequested = new Promise<void>((resolve) => { this.requestShutdown = resolve; });

  /** Runs the app's lifespan scope up to startup.complete. Throws LifespanStartupError. */
  async startup(app: Application): Promise<void> {
    const scope: LifespanScope = { type: 'lifespan', asgi: { version: '3.0', spec_version: '2.0' }, state: this.state };
    this.step = Step.STARTING;
    void this.runApp(app, scope);
    const error = await this.startupDone;
    if (error) throw error;
  }

  /** Sends lifespan.shutdown and waits for the app's answer. Returns a failure message or null. */
  async shutdown(): Promise<string | null> {
    if (!this.supported || this.step !== Step.STARTED) return null;
    this.step = Step.STOPPING;
    this.requestShutdown();
    return this.shutdownDone;
  }

  private async runApp(app: Application, scope: LifespanScope): Promise<void> {
    try {
      await app(scope, this.receive, this.send);
      if (this.step === Step.STARTING) this.unsupported('the application returned before completing startup');
      else if (this.step === Step.STOPPING) this.settleShutdown(null); // returned: treat as complete
    } catch (error) {
      if (!this.receivedAnything) {
        this.unsupported(describeError(error).split('\n')[0]!);
      } else if (this.step === Step.STARTING) {
        log.error(`Exception in 'lifespan' startup\n${describeError(error)}`);
        this.settleStartup(new LifespanStartupError(error instanceof Error ? error.message : String(error)));
      } else if (this.step === Step.STOPPING) {
        log.error(`Exception in 'lifespan' shutdown\n${describeError(error)}`);
        this.settleShutdown(error instanceof Error ? error.message : String(error));
      } else {
        log.error(`Exception in 'lifespan' scope while serving\n${describeError(error)}`);
        this.supported = false; // nobody left to send shutdown to
      }
    }
  }

  private unsupported(why: string): void {
    this.supported = false;
    log.info(`ASGI 'lifespan' protocol appears unsupported (${why}); serving without it`);
    this.settleStartup(null);
  }

  private readonly receive = async (): Promise<ReceiveEvent> => {
    if (!this.receivedAnything) {
      this.receivedAnything = true;
      return { type: 'lifespan.startup' };
    }
    await this.shutdownRequested;
    return { type: 'lifespan.shutdown' };
  };

  private readonly send = async (event: SendEvent): Promise<void> => {
    const type = event?.type;
    if (this.step === Step.STARTING) {
      if (type === 'lifespan.startup.complete') {
        this.step = Step.STARTED;
        this.settleStartup(null);
      } else if (type === 'lifespan.startup.failed') {
        this.step = Step.STOPPED;
        this.settleStartup(new LifespanStartupError(event.message ?? ''));
      } else {
        throw unexpectedMessage(type, ['lifespan.startup.complete', 'lifespan.startup.failed']);
      }
    } else if (this.step === Step.STOPPING) {
      if (type === 'lifespan.shutdown.complete') {
        this.step = Step.STOPPED;
        this.settleShutdown(null);
      } else if (type === 'lifespan.shutdown.failed') {
        this.step = Step.STOPPED;
        this.settleShutdown(event.message ?? '');
      } else {
        throw unexpectedMessage(type, ['lifespan.shutdown.complete', 'lifespan.shutdown.failed']);
      }
    } else {
      throw new Error(`Unexpected ASGI message '${type}' in the lifespan scope at this point`);
    }
  };
}
