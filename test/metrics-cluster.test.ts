// GET /metrics through real server processes (src/metrics-cluster.ts, src/http.ts), with raw
// WebSocket clients so that every byte the server writes is seen and counted here too:
//   - --workers 2: refused handshakes (403, 426, 405, 400) under their reasons; 6 connections
//     spread over both workers; 2 senders × 5 lobby messages; the scrape's figures exactly
//     (connections per worker adding up to the total, messages received = sent, deliveries =
//     messages × subscribers, bytes out = the bytes the clients read); after the clients close, no
//     connection open; a stopped worker is left out of the scrape after the bounded wait, and the
//     gauges say so;
//   - --workers 1: the process reports itself; /healthz keeps working; /metrics answers 405 to POST.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connectRaw, httpOnce, Op, type Frame, type HttpResponse, type RawWebSocket } from './helpers/raw-ws.js';
import { startServer, type RunningServer } from './helpers/server.js';
import { RECORD_HEADER_BYTES } from '../src/log/record.js';

const TIMEOUT = { timeout: 30_000 };

interface Sample { name: string; labels: Record<string, string>; value: number }

/**
 * Parses the text format strictly enough to catch a malformed exposition: every sample belongs to
 * a family declared by a HELP and a TYPE line before it, and every line is one of the three kinds.
 */
function parseExposition(text: string): Sample[] {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a line feed');
  const declared = new Map<string, { help: boolean; type: string | null }>();
  const samples: Sample[] = [];
  for (const line of text.slice(0, -1).split('\n')) {
    const help = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$/.exec(line);
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge)$/.exec(line);
    if (help) {
      assert.ok(!declared.has(help[1]!), `one HELP line for ${help[1]}`);
      declared.set(help[1]!, { help: true, type: null });
      continue;
    }
    if (type) {
      assert.equal(declared.get(type[1]!)?.type, null, `TYPE of ${type[1]} right after its HELP`);
      declared.get(type[1]!)!.type = type[2]!;
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(sample, `a sample line: ${JSON.stringify(line)}`);
    const name = sample[1]!;
    assert.ok(declared.get(name)?.type, `${name} has HELP and TYPE before its samples`);
    const labels: Record<string, string> = {};
    for (const [, label, value] of (sample[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g)) labels[label!] = value!;
    samples.push({ name, labels, value: Number(sample[3]) });
  }
  return samples;
}

/** The one sample of `name` whose labels include `labels`; fails if there is not exactly one. */
function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.equal(found.length, 1, `exactly one sample ${name}${JSON.stringify(labels)}: ${JSON.stringify(found)}`);
  return found[0]!.value;
}

function get(port: number, path: string, timeoutMs = 5000, method = 'GET'): Promise<HttpResponse> {
  return httpOnce(port, `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`, timeoutMs, method);
}

async function scrape(port: number, timeoutMs = 5000): Promise<Sample[]> {
  const response = await get(port, '/metrics', timeoutMs);
  assert.equal(response.status, 200, response.body.toString());
  assert.equal(response.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
  return parseExposition(response.body.toString('utf8'));
}

/** Bytes of a frame from the server on the wire: header (unmasked) and payload. */
const frameBytes = (frame: Frame): number => 2 + frame.lengthBytes + frame.payload.length;

/** A chat client on a raw socket that counts every byte the server sends it. */
class Subscriber {
  bytesRead = 0;
  /** The JSON of every chat message read (what the primary wrote to the message log, after its 'L'). */
  readonly payloads: string[] = [];
  private constructor(readonly ws: RawWebSocket) {}

  /** Opens /chat and reads the greeting. */
  static async join(port: number): Promise<Subscriber> {
    const ws = await connectRaw(port, { path: '/chat' });
    assert.equal(ws.status, 101, ws.response.statusLine);
    const subscriber = new Subscriber(ws);
    assert.deepEqual(JSON.parse((await subscriber.read()).payload.toString()), { sender: 'server', message: 'You are connected' });
    return subscriber;
  }

  async read(): Promise<Frame> {
    const frame = await this.ws.nextFrame();
    assert.equal(frame.opcode, Op.TEXT, 'a text frame (the heartbeat is off)');
    this.bytesRead += frameBytes(frame);
    return frame;
  }

  /** Reads `count` chat messages; returns their texts. */
  async readMessages(count: number): Promise<string[]> {
    const texts: string[] = [];
    for (let i = 0; i < count; i++) {
      const payload = (await this.read()).payload.toString();
      this.payloads.push(payload);
      texts.push((JSON.parse(payload) as { message: string }).message);
    }
    return texts;
  }

  /** The closing handshake, up to the server's Close. */
  async leave(): Promise<void> {
    await this.ws.sendClose(1000);
    await this.ws.waitClose();
    this.ws.destroy();
  }
}

/**
 * The message log's figures after the lobby messages `payloads` and nothing else: one record each
 * ('L' and the message's JSON, behind the record header) after the new log's own first record,
 * made durable in at least one group commit and at most one per record (how many share a commit
 * depends on timing), healthy, no checkpoint.
 */
function assertLogFigures(samples: Sample[], payloads: string[]): void {
  // A new log starts with one record of its own, the lobby's start (chat-log.ts):
  // l{"trimmedUpTo":ID,"n":0}, where ID, an id from the clock in microseconds, has 16 digits.
  const startMark = RECORD_HEADER_BYTES + Buffer.byteLength(`l{"trimmedUpTo":${'9'.repeat(16)},"n":0}`);
  assert.equal(valueOf(samples, 'chat_log_records_total'), payloads.length + 1);
  assert.equal(valueOf(samples, 'chat_log_bytes_total'), payloads.reduce((total, json) => total + RECORD_HEADER_BYTES + 1 + Buffer.byteLength(json), startMark));
  const flushes = valueOf(samples, 'chat_log_flushes_total');
  assert.ok(flushes >= 1 && flushes <= payloads.length + 1, `1 to ${payloads.length + 1} group commits, got ${flushes}`);
  assert.equal(valueOf(samples, 'chat_log_healthy'), 1);
  assert.equal(valueOf(samples, 'chat_log_checkpoints_total'), 0);
}

/** Each of these is refused, with this status, under this reason. */
const REFUSALS = [
  { what: 'a path the chat does not serve', options: { path: '/nope' }, status: 403, reason: 'forbidden' },
  { what: 'WebSocket version 8', options: { path: '/chat', headers: { 'Sec-WebSocket-Version': '8' } }, status: 426, reason: 'unsupported_version' },
  { what: 'a POST', options: { path: '/chat', method: 'POST', headers: { 'Content-Length': '0' } }, status: 405, reason: 'method_not_allowed' },
  { what: 'a key that is not 16 bytes', options: { path: '/chat', key: 'c2hvcnQ=' }, status: 400, reason: 'bad_request' },
] as const;

async function refuseAll(port: number): Promise<void> {
  for (const refusal of REFUSALS) {
    const ws = await connectRaw(port, refusal.options);
    ws.destroy();
    assert.equal(ws.status, refusal.status, `${refusal.what}: ${ws.response.statusLine}`);
  }
}

describe('/metrics with --workers 2', () => {
  let server: RunningServer;
  const subscribers: Subscriber[] = [];
  before(async () => {
    // No heartbeat: every frame the server writes is then one the test asked for.
    server = await startServer({ args: ['--workers', '2', '--worker-accept', 'round-robin', '--ws-ping-interval', '0'], env: { CHAT_HISTORY_SIZE: '0' } });
  });
  after(async () => {
    for (const subscriber of subscribers) subscriber.ws.destroy();
    await server?.stop();
  });

  test('counts connections, refusals, messages, deliveries and bytes exactly, over both workers', TIMEOUT, async () => {
    await refuseAll(server.port);
    // One after another, so the cluster's round-robin hands them to the workers in turn.
    for (let i = 0; i < 6; i++) subscribers.push(await Subscriber.join(server.port));
    const texts: string[] = [];
    for (const s of [0, 3]) {
      for (let i = 0; i < 5; i++) {
        texts.push(`from ${s}: ${i}`);
        await subscribers[s]!.ws.sendText(JSON.stringify({ sender: `sender ${s}`, message: `from ${s}: ${i}` }));
      }
    }
    for (const subscriber of subscribers) assert.deepEqual(new Set(await subscriber.readMessages(10)), new Set(texts));

    const samples = await scrape(server.port);
    const perWorker = samples.filter((s) => s.name === 'asgi_websocket_connections_open');
    assert.equal(perWorker.length, 2, `one sample per worker: ${JSON.stringify(perWorker)}`);
    assert.notEqual(perWorker[0]!.labels.worker, perWorker[1]!.labels.worker);
    assert.ok(!perWorker.some((s) => s.labels.worker === String(server.proc.pid)), 'the primary holds no connections');
    assert.ok(perWorker.every((s) => s.value > 0), `the connections are spread over both workers: ${JSON.stringify(perWorker)}`);
    assert.equal(perWorker[0]!.value + perWorker[1]!.value, 6, 'the workers\' connections add up to the 6 opened');
    assert.equal(valueOf(samples, 'asgi_websocket_connections_open_all_workers'), 6);
    assert.equal(valueOf(samples, 'asgi_websocket_connections_accepted_total'), 6);

    for (const refusal of REFUSALS) {
      assert.equal(valueOf(samples, 'asgi_websocket_handshakes_refused_total', { reason: refusal.reason }), 1, refusal.what);
    }
    for (const reason of ['app_error', 'app_response', 'shutting_down', 'other']) {
      assert.equal(valueOf(samples, 'asgi_websocket_handshakes_refused_total', { reason }), 0, reason);
    }
    assert.equal(valueOf(samples, 'asgi_connections_dropped_total'), 0);

    assert.equal(valueOf(samples, 'asgi_websocket_messages_received_total'), 10, 'every message the senders sent');
    assert.equal(valueOf(samples, 'chat_messages_published_total'), 10);
    assert.equal(valueOf(samples, 'chat_messages_delivered_total'), 10 * 6, 'each message to each of the 6 subscribers');
    assert.equal(valueOf(samples, 'asgi_websocket_messages_sent_total'), 10 * 6 + 6, 'the deliveries and the 6 greetings');
    const bytesRead = subscribers.reduce((total, subscriber) => total + subscriber.bytesRead, 0);
    assert.equal(valueOf(samples, 'asgi_websocket_sent_bytes_total'), bytesRead, 'the bytes the clients read');
    assert.equal(valueOf(samples, 'asgi_http_requests_total'), 1, 'this scrape is the only HTTP request so far');

    assert.equal(valueOf(samples, 'chat_slow_consumers_closed_total'), 0);
    assert.equal(valueOf(samples, 'chat_subscriber_queue_depth_max'), 0, 'everything queued was sent');
    const pids = perWorker.map((s) => s.labels.worker!);
    for (const pid of pids) {
      assert.equal(valueOf(samples, 'chat_ipc_backlog_messages', { direction: 'to_primary', worker: pid }), 0);
      assert.equal(valueOf(samples, 'chat_ipc_backlog_messages', { direction: 'to_worker', worker: pid }), 0);
    }
    assert.equal(samples.filter((s) => s.name === 'chat_ipc_backlog_messages').length, 4);
    assert.equal(valueOf(samples, 'chat_rooms_users_online'), 0);
    assert.equal(valueOf(samples, 'chat_rooms_outcomes_queued'), 0);
    assert.equal(valueOf(samples, 'chat_metrics_workers_asked'), 2);
    assert.equal(valueOf(samples, 'chat_metrics_workers_answered'), 2);
    assertLogFigures(samples, subscribers[0]!.payloads);

    // /healthz still answers from the worker it reaches, with that worker's connections.
    const health = await get(server.port, '/healthz');
    assert.equal(health.status, 200);
    const body = JSON.parse(health.body.toString()) as { pid: number; connections: number };
    assert.equal(body.connections, perWorker.find((s) => s.labels.worker === String(body.pid))?.value);

    // Once the clients have closed, no connection is open; what was counted stays counted.
    for (const subscriber of subscribers.splice(0)) await subscriber.leave();
    const later = await scrape(server.port);
    assert.equal(valueOf(later, 'asgi_websocket_connections_open_all_workers'), 0);
    for (const pid of pids) assert.equal(valueOf(later, 'asgi_websocket_connections_open', { worker: pid }), 0);
    assert.equal(valueOf(later, 'asgi_websocket_connections_accepted_total'), 6);
    assert.equal(valueOf(later, 'asgi_websocket_messages_received_total'), 10, 'Close frames are not messages');
    assert.equal(valueOf(later, 'chat_messages_delivered_total'), 60);
    assert.equal(valueOf(later, 'asgi_http_requests_total'), 3, 'the two scrapes and /healthz');
  });

  test('a worker that does not answer is left out after the bounded wait, and the gauges say so', TIMEOUT, async () => {
    const pids = (await scrape(server.port)).filter((s) => s.name === 'asgi_websocket_connections_open').map((s) => Number(s.labels.worker));
    assert.equal(pids.length, 2);
    const [stopped, running] = pids as [number, number];
    process.kill(stopped, 'SIGSTOP');
    try {
      // A stopped worker takes at most one new connection (it never acknowledges it to the
      // primary, which then hands every later one to the other worker): of two scrapes at once,
      // one is served by the running worker, while the stopped one cannot answer the primary.
      const scrapes = [scrape(server.port, 15_000), scrape(server.port, 15_000)];
      const first = await Promise.race(scrapes);
      assert.equal(valueOf(first, 'chat_metrics_workers_asked'), 2);
      assert.equal(valueOf(first, 'chat_metrics_workers_answered'), 1);
      assert.deepEqual(first.filter((s) => s.name === 'asgi_websocket_connections_open').map((s) => Number(s.labels.worker)), [running]);
      // The primary still reports its backlog towards both.
      assert.equal(first.filter((s) => s.name === 'chat_ipc_backlog_messages' && s.labels.direction === 'to_worker').length, 2);
      process.kill(stopped, 'SIGCONT');
      await Promise.all(scrapes); // the other one, if the stopped worker had taken it, is answered now
    } finally {
      process.kill(stopped, 'SIGCONT');
    }
    const after = await scrape(server.port);
    assert.equal(valueOf(after, 'chat_metrics_workers_answered'), 2, 'once running again, it answers');
  });
});

describe('/metrics with --workers 1', () => {
  let server: RunningServer;
  const subscribers: Subscriber[] = [];
  before(async () => {
    server = await startServer({ args: ['--ws-ping-interval', '0'], env: { CHAT_HISTORY_SIZE: '0' } });
  });
  after(async () => {
    for (const subscriber of subscribers) subscriber.ws.destroy();
    await server?.stop();
  });

  test('the one process reports itself', TIMEOUT, async () => {
    await refuseAll(server.port);
    for (let i = 0; i < 3; i++) subscribers.push(await Subscriber.join(server.port));
    for (let i = 0; i < 4; i++) await subscribers[1]!.ws.sendText(JSON.stringify({ sender: 'solo', message: `m${i}` }));
    for (const subscriber of subscribers) assert.deepEqual(await subscriber.readMessages(4), ['m0', 'm1', 'm2', 'm3']);

    const health = await get(server.port, '/healthz');
    assert.equal(health.status, 200);
    assert.equal((JSON.parse(health.body.toString()) as { connections: number }).connections, 3);

    const samples = await scrape(server.port);
    const pid = String(server.proc.pid);
    assert.deepEqual(samples.filter((s) => s.name === 'asgi_websocket_connections_open'), [{ name: 'asgi_websocket_connections_open', labels: { worker: pid }, value: 3 }]);
    assert.equal(valueOf(samples, 'asgi_websocket_connections_open_all_workers'), 3);
    assert.equal(valueOf(samples, 'asgi_websocket_connections_accepted_total'), 3);
    for (const refusal of REFUSALS) assert.equal(valueOf(samples, 'asgi_websocket_handshakes_refused_total', { reason: refusal.reason }), 1, refusal.what);
    assert.equal(valueOf(samples, 'asgi_websocket_messages_received_total'), 4);
    assert.equal(valueOf(samples, 'chat_messages_published_total'), 4);
    assert.equal(valueOf(samples, 'chat_messages_delivered_total'), 12);
    assert.equal(valueOf(samples, 'asgi_websocket_messages_sent_total'), 12 + 3);
    assert.equal(valueOf(samples, 'asgi_websocket_sent_bytes_total'), subscribers.reduce((total, s) => total + s.bytesRead, 0));
    assert.equal(valueOf(samples, 'asgi_http_requests_total'), 2, '/healthz and this scrape');
    assert.equal(valueOf(samples, 'chat_ipc_backlog_messages', { direction: 'to_primary', worker: pid }), 0);
    assert.equal(valueOf(samples, 'chat_ipc_backlog_messages', { direction: 'to_worker', worker: pid }), 0);
    assert.equal(valueOf(samples, 'chat_metrics_workers_asked'), 1);
    assert.equal(valueOf(samples, 'chat_metrics_workers_answered'), 1);
    assertLogFigures(samples, subscribers[0]!.payloads);
  });

  test('only GET and HEAD', TIMEOUT, async () => {
    const response = await get(server.port, '/metrics', 5000, 'POST');
    assert.equal(response.status, 405);
    assert.equal(response.headers['allow'], 'GET, HEAD');
    const head = await get(server.port, '/metrics', 5000, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    assert.equal(head.body.length, 0);
  });
});
