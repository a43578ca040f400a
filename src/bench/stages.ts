// The worker's delivery path, stage by stage, in one process and without a load generator:
// `node --max-semi-space-size=1 dist/bench/stages.js [--subs 1000] [--batches 400] [--per-batch 1]`
// (or `npm run bench -- --only stages`, which runs it for 1 and 10 messages per turn). It prints
// one JSON line.
//
// Why in-process: the fan-out scenarios measure the whole server under a load generator, and on a
// small shared machine their CPU per delivery moves with the scheduling (a server that gets less
// CPU finds more messages per turn and batches more). Here nothing competes: S real TCP
// connections to 127.0.0.1 are accepted by the real server code (node:http's 'upgrade', the ASGI
// dispatcher, the bundled chat's handler, a hub as with --workers 1), their client ends stop
// reading (the kernel keeps what arrives), and the hub receives `chat:batch` messages exactly as
// the primary's IPC hands them over: B batches of K fresh texts, one per turn of the event loop.
// So each figure is the worker's cost of one delivery at a known batch size, K = 1 being the
// moderate rate where nothing is coalesced.
//
// Stages, timed with the CPU clock of this thread around each part of the turn:
//   ipc      JSON.parse of the batch as node's IPC channel delivers it (per batch, not per delivery)
//   deliver  Hub.receive: a push into each subscriber's queue, its consumer, `websocket.send`, the
//            dispatcher, the frame cache, the transport's coalescing (nothing reaches a socket yet)
//   write    the coalesced writes: one socket.write per socket (node's stream, libuv, the kernel's
//            copy into the peer's receive buffer over loopback)
//   after    the rest of the turn: node's write callbacks and anything else queued meanwhile
// and the garbage: bytes allocated per delivery (the heap's growth over turns without a GC) and
// the GC's pauses over the whole run.
import { spawnSync } from 'node:child_process';
import { createServer, type IncomingMessage } from 'node:http';
import net, { type Socket } from 'node:net';
import { PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import v8 from 'node:v8';
import { websocket } from '../websocket.js';
import { createHub, type Hub } from '../broadcast.js';
import { readChatConfig } from '../config.js';
import type { Application, State } from '../server/asgi-types.js';
import { handleWebSocketUpgrade, type WebSocketSettings } from '../server/asgi-websocket.js';
import { SERVER_LIMITS } from '../server/limits.js';

export interface StagesResult {
  subs: number;
  batches: number;
  per_batch: number;
  deliveries: number;
  /** Messages the chat's consumers handed to `websocket.send` during the measured turns (= deliveries). */
  sent: number;
  /** CPU µs per delivery, by stage (ipc is per batch, shared by every delivery of the batch). */
  us_per_delivery: { ipc: number; deliver: number; write: number; after: number; total: number };
  /** Median bytes allocated on the V8 heap per delivery (turns with no GC in them). */
  heap_bytes_per_delivery: number;
  gc: { count: number; ms: number; us_per_delivery: number };
}

export async function runStages(subs: number, batches: number, perBatch: number): Promise<StagesResult> {
  const config = readChatConfig({ ...process.env, CHAT_DATA_DIR: '' });
  const hub = await createHub(config);
  const state = { hub, config } as unknown as State;
  const settings: WebSocketSettings = {
    rootPath: '', trustedProxies: null, maxMessageSize: 1 << 20, maxFragments: SERVER_LIMITS.maxFragments.value,
    pingIntervalMs: 0, pingTimeoutMs: 0, closeTimeoutMs: 1000, perMessageDeflate: false,
  };
  const app: Application = (scope, receive, send) => websocket(scope as Parameters<typeof websocket>[0], receive, send);
  const server = createServer();
  server.on('upgrade', (request: IncomingMessage, socket: Socket, head: Buffer) => {
    handleWebSocketUpgrade(app, request, socket, head, settings, state);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const clients: Socket[] = [];
  try {
    for (let i = 0; i < subs; i += 100) {
      const opening: Array<Promise<Socket>> = [];
      for (let j = i; j < Math.min(subs, i + 100); j++) opening.push(openSubscriber(port));
      clients.push(...(await Promise.all(opening)));
    }
    while (hub.subscriberCount < subs) await turn();
    return await measure(hub, subs, batches, perBatch);
  } finally {
    for (const client of clients) client.destroy();
    await hub.detach();
    server.close();
  }
}

/** A client that completes the handshake, then stops reading: what arrives stays in the kernel. */
function openSubscriber(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', reject);
    socket.write('GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    let head = '';
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      socket.pause();
      if (head.startsWith('HTTP/1.1 101')) resolve(socket);
      else reject(new Error(`handshake refused: ${head.split('\r\n')[0]}`));
    };
    socket.on('data', onData);
  });
}

function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function cpuMicros(): number {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
}

async function measure(hub: Hub, subs: number, batches: number, perBatch: number): Promise<StagesResult> {
  const gcPauses: number[] = [];
  const observer = new PerformanceObserver((list) => { for (const entry of list.getEntries()) gcPauses.push(entry.duration); });
  observer.observe({ entryTypes: ['gc'] });
  const stage = { ipc: 0, deliver: 0, write: 0, after: 0 };
  const heapPerTurn: number[] = [];
  const padding = 'x'.repeat(60);
  let afterWrites = 0;
  const wrote = (): void => { afterWrites = cpuMicros(); };
  let sentBefore = 0;
  for (let b = -20; b < batches; b++) { // 20 turns of warm-up
    if (b === 0) sentBefore = hub.delivered;
    const texts: string[] = [];
    for (let k = 0; k < perBatch; k++) texts.push(`{"id":${b * perBatch + k},"ts":${Date.now()},"sender":"bench","message":"${padding}"}`);
    const wire = JSON.stringify({ t: 'chat:batch', m: texts });
    await turn();
    const gcsBefore = gcPauses.length;
    const heapBefore = v8.getHeapStatistics().used_heap_size;
    const t0 = cpuMicros();
    const message = JSON.parse(wire) as { t: 'chat:batch'; m: string[] };
    const t1 = cpuMicros();
    hub.receive(message);
    const t2 = cpuMicros();
    // Queued after the transport's flush (scheduled during receive): runs once every write is done.
    process.nextTick(wrote);
    await turn();
    const t3 = cpuMicros();
    const heapAfter = v8.getHeapStatistics().used_heap_size;
    if (b < 0) continue;
    stage.ipc += t1 - t0;
    stage.deliver += t2 - t1;
    stage.write += afterWrites - t2;
    stage.after += t3 - afterWrites;
    if (gcPauses.length === gcsBefore) heapPerTurn.push(heapAfter - heapBefore);
  }
  await turn(); // let the observer report the last GCs
  observer.disconnect();
  const deliveries = batches * perBatch * subs;
  const per = (us: number): number => Math.round((us / deliveries) * 1000) / 1000;
  heapPerTurn.sort((a, b) => a - b);
  const gcMs = gcPauses.reduce((sum, d) => sum + d, 0);
  const us = { ipc: per(stage.ipc), deliver: per(stage.deliver), write: per(stage.write), after: per(stage.after), total: 0 };
  us.total = per(stage.ipc + stage.deliver + stage.write + stage.after);
  return {
    subs, batches, per_batch: perBatch, deliveries, sent: hub.delivered - sentBefore, us_per_delivery: us,
    heap_bytes_per_delivery: heapPerTurn.length === 0 ? -1 : Math.round(heapPerTurn[heapPerTurn.length >> 1]! / (perBatch * subs)),
    gc: { count: gcPauses.length, ms: Math.round(gcMs * 10) / 10, us_per_delivery: per(gcMs * 1000) },
  };
}

/**
 * Runs the measurement in a fresh node with a 1 MiB young generation, as cluster workers get
 * (server/supervisor.ts), so that the benchmark's own heap does not count and the GC figures are
 * the ones a worker would see.
 */
export function runStagesChild(subs: number, batches: number, perBatch: number): StagesResult {
  const script = fileURLToPath(import.meta.url);
  const child = spawnSync(process.execPath, ['--max-semi-space-size=1', script, '--subs', String(subs), '--batches', String(batches), '--per-batch', String(perBatch)], {
    encoding: 'utf8', env: { ...process.env, CHAT_DATA_DIR: '' }, timeout: 120_000,
  });
  if (child.status !== 0) throw new Error(`stages.js exited with ${child.status ?? child.signal}: ${child.stderr.trim().split('\n').slice(-3).join(' ')}`);
  return JSON.parse(child.stdout) as StagesResult;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { subs: { type: 'string' }, batches: { type: 'string' }, 'per-batch': { type: 'string' } } });
  const result = await runStages(Number(values.subs ?? 1000), Number(values.batches ?? 400), Number(values['per-batch'] ?? 1));
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
