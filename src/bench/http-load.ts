// The HTTP scenario: `GET /` (the chat page, ~14 KB) over keep-alive connections, as fast as
// the server answers. Each of --http-conns connections sends a request, reads the whole response,
// and sends the next one at once (no pipelining: one request in flight per connection, as
// browsers do), so the offered load adapts to the server: this measures its throughput.
//
// The client is a minimal HTTP/1.1 response reader on node:net rather than node:http, whose
// client machinery (agents, IncomingMessage streams) would cost more CPU than the server's answer
// and make the load generator the bottleneck. It reads the status line and Content-Length of
// each response head, then counts body bytes without looking at them.
import net from 'node:net';
import type { Target } from './client.js';
import { Histogram, type LatencySummary } from './histogram.js';
import { cpuSnapshot, cpuWindow, type CpuWindow } from './proc.js';

export interface HttpOptions {
  target: Target;
  serverPid: number | null;
  connections: number;
  durationS: number;
  warmupS: number;
  log: (line: string) => void;
}

export interface HttpResult {
  connections: number;
  requests: number;
  requests_per_s: number;
  /** Responses with a status other than 200. */
  non_200: number;
  statuses: Record<string, number>;
  errors: Record<string, number>;
  /** Size of one response body (the page), in bytes. */
  body_bytes: number | null;
  latency: LatencySummary;
  cpu: CpuWindow;
  server_cpu_us_per_request: number | null;
  loop_busy: number;
}

const END_OF_HEAD = Buffer.from('\r\n\r\n');
/**
 * Every connection reads into this one buffer (net.connect's `onread`): no allocation and no
 * stream machinery per read, as in client.ts. Only a response head split between reads is kept
 * past the read, and that is copied.
 */
const READ_BUFFER = Buffer.allocUnsafeSlow(64 * 1024);

/** One keep-alive connection: request, read the response, repeat while `running()`. */
class KeepAliveClient {
  private readonly socket: net.Socket;
  private pending: Buffer | null = null; // bytes of a response head not complete yet
  private bodyLeft = -1; // -1: reading a head; else body bytes still to come
  private sentAt = 0;
  private closed = false;

  constructor(
    private readonly target: Target,
    private readonly request: Buffer,
    private readonly stats: { requests: number; statuses: Record<string, number>; errors: Record<string, number>; bodyBytes: number | null; latency: Histogram; measuring: boolean },
    private readonly running: () => boolean,
    private readonly onEnd: () => void,
  ) {
    this.socket = net.connect({
      host: target.host, port: target.port, noDelay: true,
      onread: { buffer: READ_BUFFER, callback: (n) => { this.onData(READ_BUFFER.subarray(0, n)); return true; } },
    });
    this.socket.on('connect', () => this.send());
    this.socket.on('error', (error: NodeJS.ErrnoException) => this.count(this.stats.errors, error.code ?? error.message));
    this.socket.on('close', () => {
      if (!this.closed && this.running()) {
        // The server closed a keep-alive connection (timeout, or `connection: close`): reopen.
        this.count(this.stats.errors, 'closed by server');
        new KeepAliveClient(this.target, this.request, this.stats, this.running, this.onEnd);
      } else {
        this.onEnd();
      }
    });
  }

  private count(table: Record<string, number>, key: string): void {
    table[key] = (table[key] ?? 0) + 1;
  }

  private send(): void {
    if (!this.running()) {
      this.closed = true;
      this.socket.end();
      return;
    }
    this.sentAt = performance.now();
    this.socket.write(this.request);
  }

  private onData(chunk: Buffer): void {
    let data = chunk;
    while (data.length > 0) {
      if (this.bodyLeft < 0) {
        // Reading a head: it may arrive in pieces, so join only when it does.
        const head = this.pending ? Buffer.concat([this.pending, data]) : data;
        const end = head.indexOf(END_OF_HEAD);
        if (end < 0) {
          this.pending = Buffer.from(head); // a copy: `head` may be READ_BUFFER
          return;
        }
        this.pending = null;
        const text = head.toString('latin1', 0, end);
        const status = text.slice(9, 12); // "HTTP/1.1 200 OK"
        this.count(this.stats.statuses, status);
        const length = /\r\ncontent-length:[ \t]*(\d+)/i.exec(text);
        this.bodyLeft = length ? Number(length[1]) : 0;
        if (status === '200') this.stats.bodyBytes ??= this.bodyLeft;
        data = head.subarray(end + 4);
      }
      const take = Math.min(this.bodyLeft, data.length);
      this.bodyLeft -= take;
      data = data.subarray(take);
      if (this.bodyLeft === 0) {
        this.bodyLeft = -1;
        if (this.stats.measuring) {
          this.stats.requests++;
          this.stats.latency.record((performance.now() - this.sentAt) * 1000);
        }
        this.send();
      }
    }
  }
}

export async function runHttp(o: HttpOptions): Promise<HttpResult> {
  const request = Buffer.from(`GET / HTTP/1.1\r\nHost: ${o.target.host}:${o.target.port}\r\nAccept: text/html\r\n\r\n`, 'latin1');
  const stats = { requests: 0, statuses: {} as Record<string, number>, errors: {} as Record<string, number>, bodyBytes: null as number | null, latency: new Histogram(), measuring: false };
  let running = true;
  let open = o.connections;
  let allEnded!: () => void;
  const ended = new Promise<void>((resolve) => { allEnded = resolve; });
  o.log(`http: ${o.connections} keep-alive connections, ${o.warmupS} s warm-up, ${o.durationS} s measured`);
  for (let i = 0; i < o.connections; i++) {
    new KeepAliveClient(o.target, request, stats, () => running, () => { if (--open === 0) allEnded(); });
  }
  // Warm-up, not measured: connections open, the JIT compiles the hot paths on both sides.
  await new Promise((resolve) => setTimeout(resolve, o.warmupS * 1000));
  stats.measuring = true;
  for (const key of Object.keys(stats.statuses)) delete stats.statuses[key];
  const loop0 = performance.eventLoopUtilization();
  const cpu0 = cpuSnapshot(o.serverPid);
  await new Promise((resolve) => setTimeout(resolve, o.durationS * 1000));
  const cpu = cpuWindow(cpu0, cpuSnapshot(o.serverPid));
  const busy = performance.eventLoopUtilization(loop0).utilization;
  stats.measuring = false;
  running = false;
  await Promise.race([ended, new Promise((resolve) => setTimeout(resolve, 3000))]);
  const non200 = Object.entries(stats.statuses).reduce((n, [status, count]) => (status === '200' ? n : n + count), 0);
  return {
    connections: o.connections,
    requests: stats.requests,
    requests_per_s: Math.round(stats.requests / cpu.wall_s),
    non_200: non200,
    statuses: stats.statuses,
    errors: stats.errors,
    body_bytes: stats.bodyBytes,
    latency: stats.latency.summary(),
    cpu,
    server_cpu_us_per_request: cpu.server_cpu_s === null || !stats.requests ? null : Math.round((cpu.server_cpu_s * 1e6) / stats.requests * 10) / 10,
    loop_busy: Math.round(busy * 100) / 100,
  };
}
