// Command-line options, uvicorn-familiar, parsed with node:util's parseArgs. A bad flag becomes a
// UsageError with one line saying what is wrong; main.ts prints it with the usage and exits 2.
// Every flag is declared once, in OPTIONS below, from which the parser, the usage and the README's
// options table are drawn; a flag that sets a limit takes its default and range from limits.ts.
import { parseArgs } from 'node:util';
import { LIFESPAN_MODES, type LifespanMode } from './asgi-lifespan.js';
import { SERVER_LIMITS, type FlagLimit } from './limits.js';
import { LOG_LEVELS, type LogLevel } from './logger.js';
import { parseTrustedProxies } from './proxy-headers.js';

export interface ServerOptions {
  host: string;
  port: number;
  /** Path of the application module; null serves the bundled chat. */
  app: string | null;
  workers: number;
  /** With --workers N: who spreads new connections over the workers (see OPTIONS). */
  workerAccept: WorkerAccept;
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
  /** Accept permessage-deflate (RFC 7692) offers; off by default (CPU and memory per connection). */
  wsPerMessageDeflate: boolean;
  /** Seconds shutdown may take before open work is cut off. */
  timeoutGracefulShutdown: number;
  /** Seconds an idle keep-alive HTTP connection stays open; 0: closed after each response. */
  timeoutKeepAlive: number;
  /** Seconds a client has to send a request head (slowloris, silent connections): then 408. */
  timeoutRequestHead: number;
  /** Most connections one process holds at once; more are refused. */
  limitConcurrency: number;
  /** PEM private key for TLS; null: the key is in sslCertfile (or no TLS). */
  sslKeyfile: string | null;
  /** PEM certificate (chain) for TLS; null: plain HTTP. */
  sslCertfile: string | null;
  /** Password of an encrypted sslKeyfile. */
  sslKeyfilePassword: string | null;
  /** PEM CA certificates (used to complete the chain sent to clients). */
  sslCaCerts: string | null;
  /** Believe X-Forwarded-For / X-Forwarded-Proto from the peers in forwardedAllowIps. */
  proxyHeaders: boolean;
  /** Addresses, networks (CIDR) or `*` trusted to send proxy headers. */
  forwardedAllowIps: string[];
  help: boolean;
  version: boolean;
}

/** `kernel`: every worker accepts on the shared socket; `round-robin`: the primary accepts and hands out. */
export const WORKER_ACCEPT_MODES = ['kernel', 'round-robin'] as const;
export type WorkerAccept = typeof WORKER_ACCEPT_MODES[number];

/** One command-line flag: how it is written, its default, and what it does. */
export interface OptionSpec {
  /** The value's placeholder (`PORT`); null for a flag that takes no value. */
  metavar: string | null;
  /** The default, as it would be written on the command line; null when there is none to show. */
  default: string | null;
  /** The usage's description, one string per line; `(default …)` is appended to the last. */
  help: readonly string[];
  /** The README's description (Markdown); null keeps the flag out of the README's table. */
  meaning: string | null;
  /** The README's default, in words, for a flag whose default is not a value. */
  defaultInWords?: string;
}

/** The default of a flag that sets a limit: the limit's declared value (limits.ts). */
const limitDefault = (limit: FlagLimit): string => String(limit.value);

/**
 * Every flag, in the order the usage and the README list them. The defaults of the flags that
 * set limits are the limits' declared values, so the parser, the usage and the README (rendered
 * from this table by renderOptionsTable) cannot disagree with limits.ts or with each other.
 */
export const OPTIONS = {
  host: {
    metavar: 'HOST', default: '127.0.0.1', help: ['bind address'], meaning: 'bind address',
  },
  port: {
    metavar: 'PORT', default: '8080', help: ['TCP port, 0 picks a free one'],
    meaning: 'TCP port; `0` picks a free one (the real one is printed)',
  },
  app: {
    metavar: 'PATH', default: null, defaultInWords: 'the chat',
    help: ['ES or CommonJS module exporting the application', '(default export, or an export named "app")'],
    meaning: 'ES or CommonJS module; its default export, or else its export `app`',
  },
  workers: {
    metavar: 'N', default: '1', help: ['worker processes sharing the port'],
    meaning: 'N > 1: a node:cluster primary and N workers sharing the port',
  },
  'worker-accept': {
    metavar: 'MODE', default: 'kernel',
    help: [
      'with --workers N, who spreads connections: kernel (each',
      'worker accepts on the shared socket) or round-robin (the',
      'primary accepts and hands each one to a worker in turn)',
    ],
    meaning: 'with `--workers N`: `kernel`: every worker accepts on the shared socket, as the kernel wakes them (about half the system calls per handshake, no trip through the primary; the spread follows which worker is free, so it is not exactly even); `round-robin`: the primary accepts each connection and passes it to the workers in turn over IPC (node:cluster\'s default: an even spread, at more CPU per handshake)',
  },
  'root-path': {
    metavar: 'PATH', default: '', help: ['ASGI root_path for apps mounted under a prefix'],
    meaning: 'ASGI `root_path`, for an app mounted under a prefix',
  },
  'log-level': {
    metavar: 'LEVEL', default: 'info', help: ['debug, info, warning or error'],
    meaning: '`debug`, `info`, `warning`, `error`; logs go to stderr',
  },
  lifespan: {
    metavar: 'MODE', default: 'auto',
    help: [
      'auto: run the app\'s lifespan scope; if it raises before',
      'completing startup, log that and serve without lifespan;',
      'on: that is fatal (exit 3); off: never run it',
    ],
    meaning: '`auto`: run the app\'s lifespan scope, and if it raises (or returns) before `lifespan.startup.complete`, log that and serve without lifespan; `on`: that is fatal (exit 3); `off`: never run the lifespan scope',
  },
  'ws-max-size': {
    metavar: 'BYTES', default: limitDefault(SERVER_LIMITS.wsMaxSize), help: ['largest WebSocket message'],
    meaning: 'largest WebSocket message; larger ones close with 1009',
  },
  'ws-ping-interval': {
    metavar: 'SECONDS', default: limitDefault(SERVER_LIMITS.wsPingInterval), help: ['heartbeat ping interval, 0 disables'],
    meaning: 'heartbeat pings; `0` disables',
  },
  'ws-ping-timeout': {
    metavar: 'SECONDS', default: limitDefault(SERVER_LIMITS.wsPingTimeout), help: ['drop a peer silent this long after a ping, 0 disables'],
    meaning: 'a peer silent this long after a ping is dropped (1006); `0` disables',
  },
  'ws-per-message-deflate': {
    metavar: null, default: null, defaultInWords: 'off',
    help: ['accept WebSocket compression (permessage-deflate); off by', 'default: it costs CPU per message and memory per client'],
    meaning: 'accept WebSocket compression (permessage-deflate, RFC 7692); off by default: it costs CPU per message and memory per client (see "Compression")',
  },
  'timeout-graceful-shutdown': {
    metavar: 'SECONDS', default: limitDefault(SERVER_LIMITS.timeoutGracefulShutdown), help: ['time allowed to finish open work on shutdown'],
    meaning: 'time allowed to finish open work on SIGINT/SIGTERM',
  },
  'timeout-keep-alive': {
    metavar: 'SECONDS', default: limitDefault(SERVER_LIMITS.timeoutKeepAlive),
    help: ['idle keep-alive connection timeout, 0 closes each', 'connection after its response'],
    meaning: 'idle keep-alive HTTP connections are closed after this; `0` closes each after its response',
  },
  'timeout-request-head': {
    metavar: 'SECONDS', default: limitDefault(SERVER_LIMITS.timeoutRequestHead),
    help: ['time a client has to send a whole request head (from', 'connecting, or from the first byte of a later request on', 'a kept-alive connection); then 408 and close'],
    meaning: 'time a client has to send a whole request head (from connecting, or from the first byte of a later request on a kept-alive connection); then 408 and the connection is closed',
  },
  'limit-concurrency': {
    metavar: 'N', default: limitDefault(SERVER_LIMITS.limitConcurrency), help: ['most open connections per process'],
    meaning: 'most open connections per process',
  },
  'ssl-certfile': {
    metavar: 'PATH', default: null, defaultInWords: 'none', help: ['serve HTTPS and wss:// with this PEM certificate (chain)'],
    meaning: 'serve HTTPS and `wss://` with this PEM certificate (chain)',
  },
  'ssl-keyfile': {
    metavar: 'PATH', default: null, defaultInWords: 'the certificate file', help: ['its PEM private key (default: read from --ssl-certfile)'],
    meaning: 'its PEM private key',
  },
  'ssl-keyfile-password': {
    metavar: 'PASSWORD', default: null, defaultInWords: 'none', help: ['password of an encrypted --ssl-keyfile'],
    meaning: 'the password of an encrypted key',
  },
  'ssl-ca-certs': {
    metavar: 'PATH', default: null, defaultInWords: 'none', help: ['PEM CA certificates, to complete the chain sent to clients'],
    meaning: 'PEM CA certificates, used to complete the chain sent to clients',
  },
  'proxy-headers': {
    metavar: null, default: null, defaultInWords: 'off',
    help: ['take client and scheme from X-Forwarded-For and', 'X-Forwarded-Proto, from trusted peers only (default off)'],
    meaning: 'take `client` and `scheme` from `X-Forwarded-For` and `X-Forwarded-Proto`, from trusted peers only',
  },
  'forwarded-allow-ips': {
    metavar: 'LIST', default: '127.0.0.1',
    help: ['comma-separated addresses or networks (10.0.0.0/8) trusted', 'with proxy headers, "*" for all'],
    meaning: 'comma-separated addresses and networks (`10.0.0.0/8`, `fd00::/8`) trusted with proxy headers; `*` trusts every peer',
  },
  help: { metavar: null, default: null, help: ['show this help and exit'], meaning: null },
  version: { metavar: null, default: null, help: ['print the version and exit'], meaning: null },
} as const satisfies Record<string, OptionSpec>;

type Flag = keyof typeof OPTIONS;

/** The usage, drawn from OPTIONS: each flag, its description and its default. */
export const USAGE = renderUsage();

function renderUsage(): string {
  const specs = Object.entries(OPTIONS as Record<string, OptionSpec>);
  // Descriptions start in one column; a flag too long for it pushes its own line's text right.
  const column = 35;
  const lines = specs.flatMap(([flag, spec]) => spec.help.map((line, j) => {
    const left = j === 0 ? `--${flag}${spec.metavar === null ? '' : ` ${spec.metavar}`}  ` : '';
    const last = j === spec.help.length - 1 && spec.default !== null ? ` (default ${shownDefault(spec.default)})` : '';
    return `  ${left.padEnd(column)}${line}${last}`;
  }));
  return `Usage: node dist/main.js [options]

Serves an ASGI-style application over HTTP/1.1 and WebSocket (default: the bundled chat).

Options:
${lines.join('\n')}
`;
}

/** An empty default is shown as `""`, so that it is seen. */
function shownDefault(value: string): string {
  return value === '' ? '""' : value;
}

/** The README's table of options, drawn from OPTIONS (test/limits.test.ts keeps the two equal). */
export function renderOptionsTable(): string {
  const rows = Object.entries(OPTIONS as Record<string, OptionSpec>).filter(([, spec]) => spec.meaning !== null).map(([flag, spec]) => {
    const shown = spec.default === null ? spec.defaultInWords ?? '' : `\`${shownDefault(spec.default)}\``;
    return `| \`--${flag}${spec.metavar === null ? '' : ` ${spec.metavar}`}\` | ${shown} | ${spec.meaning} |`;
  });
  return ['| option | default | meaning |', '|---|---|---|', ...rows].join('\n');
}

export class UsageError extends Error {}

/** Parses argv (without node and the script). Throws UsageError on anything malformed. */
export function parseOptions(argv: string[]): ServerOptions {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: Object.fromEntries(Object.entries(OPTIONS as Record<string, OptionSpec>).map(
        ([flag, spec]) => [flag, { type: spec.metavar === null ? 'boolean' as const : 'string' as const }],
      )),
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
  // A flag's value as given, or its default (OPTIONS).
  const text = (name: Flag): string => {
    const value = values[name];
    if (typeof value !== 'string') return defaultOf(name);
    if (value === '' && name !== 'root-path') throw new UsageError(`--${name} needs a value`);
    return value;
  };
  const logLevel = text('log-level');
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  }
  const lifespan = text('lifespan');
  if (!(LIFESPAN_MODES as readonly string[]).includes(lifespan)) {
    throw new UsageError(`--lifespan must be one of ${LIFESPAN_MODES.join(', ')}, got "${lifespan}"`);
  }
  const workerAccept = text('worker-accept');
  if (!(WORKER_ACCEPT_MODES as readonly string[]).includes(workerAccept)) {
    throw new UsageError(`--worker-accept must be one of ${WORKER_ACCEPT_MODES.join(', ')}, got "${workerAccept}"`);
  }
  const rootPath = text('root-path');
  if (rootPath !== '' && (!rootPath.startsWith('/') || rootPath.endsWith('/'))) {
    throw new UsageError(`--root-path must start with "/" and not end with one, got "${rootPath}"`);
  }
  // A flag with no default: its value, or null when it was not given.
  const optional = (name: Flag): string | null => (typeof values[name] === 'string' ? text(name) : null);
  const sslKeyfile = optional('ssl-keyfile');
  const sslCertfile = optional('ssl-certfile');
  const sslKeyfilePassword = optional('ssl-keyfile-password');
  const sslCaCerts = optional('ssl-ca-certs');
  // TLS needs a certificate; the other TLS flags mean nothing without one, and a server that
  // silently serves plain HTTP when the operator asked for TLS would be worse than a refusal.
  if (sslCertfile === null) {
    for (const [name, value] of [['ssl-keyfile', sslKeyfile], ['ssl-keyfile-password', sslKeyfilePassword], ['ssl-ca-certs', sslCaCerts]] as const) {
      if (value !== null) throw new UsageError(`--${name} needs --ssl-certfile`);
    }
  }
  const proxyHeaders = values['proxy-headers'] === true;
  const forwarded = optional('forwarded-allow-ips');
  // Off by default here (uvicorn has it on): say so rather than ignore a list that trusts no one.
  if (forwarded !== null && !proxyHeaders) throw new UsageError('--forwarded-allow-ips needs --proxy-headers');
  let forwardedAllowIps: string[];
  try {
    forwardedAllowIps = parseTrustedProxies(forwarded ?? defaultOf('forwarded-allow-ips'));
  } catch (error) {
    throw new UsageError(`--forwarded-allow-ips: ${(error as Error).message}`);
  }
  return {
    host: text('host'),
    port: integer('port', text('port'), 0, 65535),
    app: typeof values.app === 'string' ? text('app') : null,
    workers: integer('workers', text('workers'), 1, SERVER_LIMITS.maxWorkers.value),
    workerAccept: workerAccept as WorkerAccept,
    rootPath,
    logLevel: logLevel as LogLevel,
    lifespan: lifespan as LifespanMode,
    wsMaxSize: limit(SERVER_LIMITS.wsMaxSize, text('ws-max-size')),
    wsPingInterval: limit(SERVER_LIMITS.wsPingInterval, text('ws-ping-interval')),
    wsPingTimeout: limit(SERVER_LIMITS.wsPingTimeout, text('ws-ping-timeout')),
    timeoutGracefulShutdown: limit(SERVER_LIMITS.timeoutGracefulShutdown, text('timeout-graceful-shutdown')),
    timeoutKeepAlive: limit(SERVER_LIMITS.timeoutKeepAlive, text('timeout-keep-alive')),
    timeoutRequestHead: limit(SERVER_LIMITS.timeoutRequestHead, text('timeout-request-head')),
    limitConcurrency: limit(SERVER_LIMITS.limitConcurrency, text('limit-concurrency')),
    wsPerMessageDeflate: values['ws-per-message-deflate'] === true,
    sslKeyfile,
    sslCertfile,
    sslKeyfilePassword,
    sslCaCerts,
    proxyHeaders,
    forwardedAllowIps,
    help: values.help === true,
    version: values.version === true,
  };
}

function defaultOf(flag: Flag): string {
  const spec: OptionSpec = OPTIONS[flag];
  if (spec.default === null) throw new Error(`--${flag} has no default`); // a bug in OPTIONS, not the user's
  return spec.default;
}

/** A limit's flag: whole bytes or connections, or seconds (fractions allowed), within its range. */
function limit(declared: FlagLimit, value: string): number {
  const name = declared.flag.slice(2);
  return declared.unit === 's' ? seconds(name, value, declared.min, declared.max) : integer(name, value, declared.min, declared.max);
}

function integer(name: string, value: string, min: number, max: number): number {
  const number = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(number) || number < min || number > max) {
    throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, got "${value}"`);
  }
  return number;
}

function seconds(name: string, value: string, min: number, max: number): number {
  const number = /^\d+(\.\d+)?$/.test(value) ? Number(value) : NaN;
  if (!Number.isFinite(number) || number < min || number > max) {
    throw new UsageError(`--${name} must be a number of seconds from ${min} to ${max}, got "${value}"`);
  }
  return number;
}
