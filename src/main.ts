#!/usr/bin/env node
// The command line: `node dist/main.js [--app PATH] [--workers N] ...`. It parses the options,
// then becomes one of three things: a single serving process (server.ts), the cluster primary
// (supervisor.ts), or one of its workers (server.ts again). Without --app it serves the bundled
// chat (src/app.ts), whose broadcast loop runs in the primary when there are workers.
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { startBroadcastPrimary } from './broadcast.js';
import { AppLoadError, loadApplication } from './server/load-app.js';
import { describeError, log, setLogLevel } from './server/logger.js';
import { USAGE, UsageError, parseOptions, type ServerOptions } from './server/options.js';
import { EXIT_SERVER_ERROR, serve } from './server/server.js';
import { runPrimary } from './server/supervisor.js';

const EXIT_USAGE = 2;

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

  if (options.workers > 1 && cluster.isPrimary) {
    // The bundled chat needs its broadcast loop in the primary; an --app brings its own design.
    runPrimary(options, options.app === null ? [startBroadcastPrimary()] : []);
    return;
  }
  let app;
  try {
    app = options.app === null ? (await import('./app.js')).application : await loadApplication(options.app);
  } catch (error) {
    if (!(error instanceof AppLoadError)) throw error;
    log.error(error.message);
    process.exit(EXIT_SERVER_ERROR);
  }
  await serve(app, options);
}

main().catch((error: unknown) => {
  log.error(`Fatal: ${describeError(error)}`);
  process.exit(EXIT_SERVER_ERROR);
});
