// Log lines on stderr, uvicorn-style: `INFO:     [pid] message`. One process-wide level.
// (The `listening on` announcement is not a log line: main.ts prints it on stdout.)

export const LOG_LEVELS = ['debug', 'info', 'warning', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const rank: Record<LogLevel, number> = { debug: 10, info: 20, warning: 30, error: 40 };
let threshold = rank.info;

export function setLogLevel(level: LogLevel): void {
  threshold = rank[level];
}

export function isEnabled(level: LogLevel): boolean {
  return rank[level] >= threshold;
}

function write(level: LogLevel, message: string): void {
  if (rank[level] < threshold) return;
  const label = `${level.toUpperCase()}:`.padEnd(10);
  process.stderr.write(`${label}[${process.pid}] ${message}\n`);
}

export const log = {
  debug: (message: string) => write('debug', message),
  info: (message: string) => write('info', message),
  warning: (message: string) => write('warning', message),
  error: (message: string) => write('error', message),
};

/** An exception with its stack, for "Exception in ASGI application" lines. */
export function describeError(error: unknown): string {
  return error instanceof Error ? (error.stack ?? `${error.name}: ${error.message}`) : String(error);
}
