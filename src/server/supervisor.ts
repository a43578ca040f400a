// The cluster primary for --workers N (like uvicorn's supervisors/multiprocess.py): forks N
// workers that share the port, announces the port once all of them listen, restarts a worker that
// crashes (with backoff), forwards SIGINT/SIGTERM and exits when the workers have.
//
// The primary serves no requests. What must live in one place for all workers (the chat's
// broadcast loop) is the application's business: main.ts calls the module's `primary()` hook
// (../shared/contract.md, "The primary process") before this forks, and the service it returns
// is stopped here once every worker has exited.
//
//   primary ──fork──▶ worker 1 ─┐
//      │    ──fork──▶ worker 2 ─┼── each: lifespan startup, then listen on the shared port
//      │    ──fork──▶ worker N ─┘   and send {type: 'asgi:listening'} over IPC
//      └── after N "listening": print `listening on http://HOST:PORT` (https:// with TLS)
//
// A worker that exits before it ever listened failed its startup (or the port was taken): the
// primary stops the others and exits non-zero, since a restart would only fail again. A worker
// that dies after listening crashed: it is replaced, after a delay that doubles with each crash
// in a row (up to 30 s), so a crash loop cannot spin the machine.
import cluster, { type Worker } from 'node:cluster';
import { SERVER_LIMITS } from './limits.js';
import { log } from './logger.js';
import type { PrimaryService } from './load-app.js';
import type { ServerOptions } from './options.js';
import { EXIT_SERVER_ERROR, announce, type ListeningMessage } from './server.js';

/**
 * V8's young generation (two "semi-spaces") grows up to 16 MiB each while many long-lived objects
 * are allocated quickly, as when thousands of clients connect at once, and RSS keeps that size
 * afterwards: with many idle connections it was over a third of the memory "per connection". The
 * cap's price is more frequent scavenges; limits.ts has the figures measured both ways. Workers
 * get the cap unless the operator chose a size (a node flag or NODE_OPTIONS). A single process
 * cannot change it once started: see README.
 */
const WORKER_SEMI_SPACE_FLAG = '--max-semi-space-size';
const WORKER_SEMI_SPACE_MIB = SERVER_LIMITS.workerSemiSpaceMiB.value;

// The restart backoff (limits.ts says why each value).
const FIRST_RESTART_DELAY_MS = SERVER_LIMITS.firstRestartDelayMs.value;
const MAX_RESTART_DELAY_MS = SERVER_LIMITS.maxRestartDelayMs.value;
/** A worker that stayed up this long resets the backoff. */
const STABLE_AFTER_MS = SERVER_LIMITS.stableAfterMs.value;

export function runPrimary(options: ServerOptions, services: PrimaryService[]): void {
  const listening = new Set<number>(); // ids of workers that reported listening
  const startedAt = new Map<number, number>();
  // Workers forked and not yet exited. Counted here rather than read from cluster.workers: Node
  // removes a worker from that list only once its IPC channel has closed *and* it has exited, and
  // when the 'exit' event comes first the last worker is still listed at its own 'exit'.
  let alive = 0;
  let announced = false;
  let shuttingDown = false;
  let exitCode = 0;
  let crashesInARow = 0;

  // Who accepts (--worker-accept). node:cluster's default, round-robin, has the primary accept
  // every connection and pass its descriptor to a worker over IPC, which the worker acknowledges:
  // a dozen system calls and two wake-ups of other processes per connection, and the primary's
  // CPU on every handshake. With SCHED_NONE each worker accepts on the shared listening socket
  // itself. Read by node:cluster when it sets up the primary: so before setupPrimary and fork.
  cluster.schedulingPolicy = options.workerAccept === 'kernel' ? cluster.SCHED_NONE : cluster.SCHED_RR;
  const chosen = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((arg) => arg.includes(WORKER_SEMI_SPACE_FLAG));
  if (!chosen) cluster.setupPrimary({ execArgv: [...process.execArgv, `${WORKER_SEMI_SPACE_FLAG}=${WORKER_SEMI_SPACE_MIB}`] });

  const fork = (): Worker => {
    const worker = cluster.fork();
    alive++;
    startedAt.set(worker.id, Date.now());
    return worker;
  };

  cluster.on('message', (worker, message: ListeningMessage) => {
    if (message?.type !== 'asgi:listening') return;
    listening.add(worker.id);
    if (!announced && listening.size === options.workers) {
      announced = true;
      announce(message.host, message.port, options.sslCertfile !== null);
    } else if (announced) {
      log.info(`Worker ${worker.process.pid} is serving (replacing a crashed worker)`);
    }
  });

  cluster.on('exit', (worker, code, signal) => {
    alive--;
    const served = listening.delete(worker.id);
    const upFor = Date.now() - (startedAt.get(worker.id) ?? Date.now());
    startedAt.delete(worker.id);
    if (shuttingDown) {
      if (code !== 0 && code !== null) exitCode = exitCode || code;
      if (alive === 0) void finish();
      return;
    }
    if (!served) {
      log.error(`Worker ${worker.process.pid} exited (${signal ?? `code ${code}`}) before serving: stopping`);
      exitCode = code || EXIT_SERVER_ERROR;
      stopAll('a worker failed to start');
      return;
    }
    crashesInARow = upFor >= STABLE_AFTER_MS ? 1 : crashesInARow + 1;
    const delay = Math.min(MAX_RESTART_DELAY_MS, FIRST_RESTART_DELAY_MS * 2 ** (crashesInARow - 1));
    log.warning(`Worker ${worker.process.pid} died (${signal ?? `code ${code}`}); restarting it in ${delay} ms`);
    setTimeout(() => { if (!shuttingDown) fork(); }, delay);
  });

  const stopAll = (why: string): void => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.info(`Stopping workers (${why})`);
    if (alive === 0) return void finish();
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    // Workers bound their own shutdown by --timeout-graceful-shutdown; past that and a margin,
    // nothing a worker still does is worth waiting for.
    setTimeout(() => {
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGKILL');
    }, options.timeoutGracefulShutdown * 1000 + SERVER_LIMITS.workerKillMarginMs.value).unref();
  };

  const finish = async (): Promise<void> => {
    for (const service of services) {
      try {
        await service.stop();
      } catch (error) {
        log.error(`Application primary failed to stop: ${error instanceof Error ? error.message : String(error)}`);
        exitCode = exitCode || EXIT_SERVER_ERROR;
      }
    }
    log.info('Finished primary process');
    process.exit(exitCode);
  };

  process.on('SIGTERM', () => stopAll('SIGTERM'));
  process.on('SIGINT', () => stopAll('SIGINT'));
  for (let i = 0; i < options.workers; i++) fork();
}
