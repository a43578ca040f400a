// Command-line options, uvicorn-familiar, parsed with node:util's parseArgs. A bad flag becomes a
// UsageError with one line saying what is wrong; main.ts prints it with the usage and exits 2.
import { parseArgs } from 'node:util';
import { LIFESPAN_MODES, type LifespanMode } from './asgi-lifespan.js';
import { LOG_LEVELS, type LogLevel } from './logger.js';

export interface ServerOptions {
  host: string;
  port: number;
  /** Path of the application module; null serves the bundled chat. */
  app: string | null;
  workers: number;
  rootPath: string;
  logLevel: LogLevel;
  /** Run the app's lifespan scope: `auto` forgives an app without it, `on` requires it, `off` skips it. */
  lifespan: LifespanMode;
  /** Largest WebSocket message accepted, in bytes (1009 above it). */
  wsMaxSize: number;
  /** Seconds between heartbeat pings; 0 disables them. */
  wsPingInterval: number;
  /** Seconds a peer may stay silent after a ping; 0 disables the check. */
  wsPingTimeout: number;
  /** Seconds shutdown may take before open work is cut off. */
  timeoutGracefulShutdown: number;
  /** Seconds an idle keep-alive HTTP connection stays open; 0: closed after each response. */
  timeoutKeepAlive: number;
  /** Seconds a client has to send a request head (slowloris, silent connections): then 408. */
  timeoutRequestHead: number;
  /** Most connections one process holds at once; more are refused. */
  limitConcurrency: number;
  help: boolean;
  version: boolean;
}

export const USAGE = `Usage: node dist/main.js [options]

Serves an ASGI-style application over HTTP/1.1 and WebSocket (default: the bundled chat).

Options:
  --host HOST                        bind address (default 127.0.0.1)
  --port PORT                        TCP port, 0 picks a free one (default 8080)
  --app PATH                         ES or CommonJS module exporting the application
                                     (default export, or an export named "app")
  --workers N                        worker processes sharing the port (default 1)
  --root-path PATH                   ASGI root_path for apps mounted under a prefix (default "")
  --log-level LEVEL                  debug, info, warning or error (default info)
  --lifespan MODE                    auto: run the app's lifespan scope; if it raises before
                                     completing startup, log that and serve without lifespan;
                                     on: that is fatal (exit 3); off: never run it (default auto)
  --ws-max-size BYTES                largest WebSocket message (default 1048576)
  --ws-ping-interval SECONDS         heartbeat ping interval, 0 disables (default 20)
  --ws-ping-timeout SECONDS          drop a peer silent this long after a ping, 0 disables (default 20)
  --timeout-graceful-shutdown SECONDS  time allowed to finish open work on shutdown (default 10)
  --timeout-keep-alive SECONDS       idle keep-alive connection timeout, 0 closes each
                                     connection after its response (default 5)
  --timeout-request-head SECONDS     time a client has to send a whole request head (from
                                     connecting, or from the first byte of a later request on
                                     a kept-alive connection); then 408 and close (default 20,
                                     at most 300)
  --limit-concurrency N              most open connections per process (default 10000)
  --help                             show this help and exit
  --version                          print the version and exit
`;

export class UsageError extends Error {}

/** Parses argv (without node and the script). Throws UsageError on anything malformed. */
export function parseOptions(argv: string[]): ServerOptions {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        host: { type: 'string' },
        port: { type: 'string' },
        app: { type: 'string' },
        workers: { type: 'string' },
        'root-path': { type: 'string' },
        'log-level': { type: 'string' },
        lifespan: { type: 'string' },
        'ws-max-size': { type: 'string' },
        'ws-ping-interval': { type: 'string' },
        'ws-ping-timeout': { type: 'string' },
        'timeout-graceful-shutdown': { type: 'string' },
        'timeout-keep-alive': { type: 'string' },
        'timeout-request-head': { type: 'string' },
        'limit-concurrency': { type: 'string' },
        help: { type: 'boolean' },
        version: { type: 'boolean' },
      },
    }));
  } catch (error) {
    const message = (error as Error).message;
    // `--port -1`: parseArgs will not take a value that looks like a flag, and says so in three
    // lines; say it in one, with the way out.
    const ambiguous = /^Option '(--[\w-]+)' argument is ambiguous/.exec(message);
    if (ambiguous) throw new UsageError(`${ambiguous[1]} needs a value; to give one that starts with "-", write ${ambiguous[1]}=VALUE`);
    const missing = /^Option '(--[\w-]+)(?: <value>)?' argument missing/.exec(message);
    if (missing) throw new UsageError(`${missing[1]} needs a value`);
    // The others are long and mention internals; keep their first sentence.
    throw new UsageError(message.split(/\.\s/)[0]!.replace(/\.$/, ''));
  }
  const text = (name: string, fallback: string): string => {
    const value = values[name];
    if (typeof value !== 'string') return fallback;
    if (value === '' && name !== 'root-path') throw new UsageError(`--${name} needs a value`);
    return value;
  };
  const logLevel = text('log-level', 'info');
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  }
  const lifespan = text('lifespan', 'auto');
  if (!(LIFESPAN_MODES as readonly string[]).includes(lifespan)) {
    throw new UsageError(`--lifespan must be one of ${LIFESPAN_MODES.join(', ')}, got "${lifespan}"`);
  }
  const rootPath = text('root-path', '');
  if (rootPath !== '' && (!rootPath.startsWith('/') || rootPath.endsWith('/'))) {
    throw new UsageError(`--root-path must start with "/" and not end with one, got "${rootPath}"`);
  }
  return {
    host: text('host', '127.0.0.1'),
    port: integer('port', text('port', '8080'), 0, 65535),
    app: typeof values.app === 'string' ? text('app', '') : null,
    workers: integer('workers', text('workers', '1'), 1, 256),
    rootPath,
    logLevel: logLevel as LogLevel,
    lifespan: lifespan as LifespanMode,
    wsMaxSize: integer('ws-max-size', text('ws-max-size', '1048576'), 1, 2 ** 31 - 1),
    wsPingInterval: seconds('ws-ping-interval', text('ws-ping-interval', '20')),
    wsPingTimeout: seconds('ws-ping-timeout', text('ws-ping-timeout', '20')),
    timeoutGracefulShutdown: seconds('timeout-graceful-shutdown', text('timeout-graceful-shutdown', '10')),
    timeoutKeepAlive: seconds('timeout-keep-alive', text('timeout-keep-alive', '5')),
    timeoutRequestHead: requestHeadSeconds(text('timeout-request-head', '20')),
    limitConcurrency: integer('limit-concurrency', text('limit-concurrency', '10000'), 1, 10_000_000),
    help: values.help === true,
    version: values.version === true,
  };
}

function integer(name: string, value: string, min: number, max: number): number {
  const number = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(number) || number < min || number > max) {
    throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, got "${value}"`);
  }
  return number;
}

/**
 * --timeout-request-head: more than 0 (node reads 0 as "no limit", which is what the flag is
 * there to prevent) and at most 300 s, the whole request's limit (node requires the head's limit
 * not to exceed it).
 */
function requestHeadSeconds(value: string): number {
  const number = /^\d+(\.\d+)?$/.test(value) ? Number(value) : NaN;
  if (!(number > 0 && number <= 300)) {
    throw new UsageError(`--timeout-request-head must be a number of seconds above 0 and at most 300, got "${value}"`);
  }
  return number;
}

function seconds(name: string, value: string): number {
  const number = /^\d+(\.\d+)?$/.test(value) ? Number(value) : NaN;
  if (!Number.isFinite(number) || number > 86400) {
    throw new UsageError(`--${name} must be a number of seconds from 0 to 86400, got "${value}"`);
  }
  return number;
}
