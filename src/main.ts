#!/usr/bin/env node
// The command line: `node dist/main.js [--app PATH] [--workers N] ...`. It parses the options,
// then becomes one of three things: a single serving process (server.ts), the cluster primary
// (supervisor.ts), or one of its workers (server.ts again). Without --app it serves the bundled
// chat (src/app.ts), loaded by its path exactly like any --app: the server knows no application.
//
//   exit codes: 0 done · 1 server error (port in use, module not importable, bad TLS file)
//               2 bad flag
//               3 application startup failed (lifespan startup, or the module's primary())
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { AppLoadError, loadApplication, type ApplicationModule, type PrimaryService } from './server/load-app.js';
import { describeError, log, setLogLevel } from './server/logger.js';
import { USAGE, UsageError, parseOptions, type ServerOptions } from './server/options.js';
import { EXIT_SERVER_ERROR, EXIT_STARTUP_FAILED, serve } from './server/server.js';
import { runPrimary } from './server/supervisor.js';
import { TlsSetupError, loadTls, type TlsMaterial } from './server/tls.js';

const EXIT_USAGE = 2;
/** The bundled chat, used when no --app is given. */
const BUNDLED_APP = new URL('./app.js', import.meta.url).href;

async function main(): Promise<void> {
  let options: ServerOptions;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`error: ${error.message}\n\n${USAGE}`);
    process.exit(EXIT_USAGE);
  }
  if (options.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (options.version) {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    process.stdout.write(`${pkg.version}\n`);
    return;
  }
  setLogLevel(options.logLevel);

  // TLS files first, as uvicorn does, and in the cluster primary too, before anything is forked:
  // a bad key or certificate is one line and exit 1, not N workers failing one after the other.
  let tls: TlsMaterial | null;
  try {
    tls = loadTls(options);
  } catch (error) {
    if (!(error instanceof TlsSetupError)) throw error;
    log.error(error.message);
    process.exit(EXIT_SERVER_ERROR);
  }

  let module: ApplicationModule;
  try {
    module = await loadApplication(options.app ?? BUNDLED_APP);
  } catch (error) {
    if (!(error instanceof AppLoadError)) throw error;
    log.error(error.message);
    process.exit(EXIT_SERVER_ERROR);
  }

  if (options.workers > 1 && cluster.isPrimary) {
    const service = await startPrimary(module);
    runPrimary(options, service === null ? [] : [service]);
    return;
  }
  await serve(module.app, options, tls);
}

/**
 * The contract's primary hook: the module's `primary()` runs once, here, before any worker is
 * forked; a throw or a rejection is a startup failure (exit 3, nothing forked).
 */
async function startPrimary(module: ApplicationModule): Promise<PrimaryService | null> {
  if (module.primary === null) return null;
  try {
    const service = await module.primary();
    if (service === undefined || service === null) return null;
    if (typeof service.stop !== 'function') throw new TypeError('primary() must return nothing or an object with a stop() method');
    return service;
  } catch (error) {
    // The message alone names what is wrong (a CHAT_* variable, say); the stack is for debugging.
    log.error(`Application primary failed: ${error instanceof Error ? error.message : String(error)}`);
    log.debug(describeError(error));
    process.exit(EXIT_STARTUP_FAILED);
  }
}

main().catch((error: unknown) => {
  log.error(`Fatal: ${describeError(error)}`);
  process.exit(EXIT_SERVER_ERROR);
});
