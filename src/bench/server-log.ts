// The server's message log, as the benchmark sees it: its counters read from GET /metrics
// (chat_log_flushes_total, chat_log_bytes_total, chat_log_records_total: metrics.ts), before and
// after each measured step, so a step reports the flushes, bytes and records the log made durable
// in its window. Scraping costs the server one HTTP request per reading, outside the delivery path.
// A server without a log (CHAT_DATA_DIR empty: memory only) has no samples for these, so the
// reading is null, as it is for a server that cannot answer.
import http from 'node:http';

/** The log's counters since the server started. */
export interface LogCounters {
  flushes: number;
  bytes: number;
  records: number;
}

const SCRAPE_TIMEOUT_MS = 5000;

/** The counters in a Prometheus text exposition, or null if it has none of them (no log). */
export function parseLogCounters(text: string): LogCounters | null {
  const value = (name: string): number | null => {
    const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
    return match ? Number(match[1]) : null;
  };
  const flushes = value('chat_log_flushes_total');
  const bytes = value('chat_log_bytes_total');
  const records = value('chat_log_records_total');
  if (flushes === null || bytes === null || records === null) return null;
  return { flushes, bytes, records };
}

/** GET /metrics from the server at `host:port`; null if it has no log or does not answer 200 in time. */
export function readLogCounters(host: string, port: number): Promise<LogCounters | null> {
  return new Promise((resolve) => {
    const request = http.get({ host, port, path: '/metrics', timeout: SCRAPE_TIMEOUT_MS, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve(response.statusCode === 200 ? parseLogCounters(Buffer.concat(chunks).toString('utf8')) : null));
      response.on('error', () => resolve(null));
    });
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolve(null));
  });
}
