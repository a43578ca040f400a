// What one WebSocket handshake costs a serving process, layer by layer, in one process and without
// a load generator: `node --max-semi-space-size=1 dist/bench/handshakes.js [--conns 2000]
// [--repeats 3]` (or `npm run bench -- --only handshakes`). It prints one JSON line.
//
// Why an ablation ladder rather than timers around each step: a handshake is spread over several
// turns of the event loop (accept, the request's bytes, the 'upgrade' event, the app, the
// subscription, the writes) and most of its cost is in node and the kernel (system calls), where
// no timer of ours can reach. So the same N handshakes are served by four servers, each one layer
// more of the real thing than the one before, and the differences are the layers' costs:
//
//   net      node:net only: read the request head, compute the accept key, write the 101 and the
//            greeting frame in one write. The floor: a TCP accept, a read, a write, in Node.
//   http     node:http's 'upgrade' event, then the same canned answer: adds node:http's
//            per-connection setup and its request parser.
//   asgi     this server's dispatcher (asgi-websocket.ts: scope, handshake checks, the session
//            and its transport, heartbeat timer) with an app that accepts and sends the greeting.
//   chat     the bundled chat's handler (websocket.ts) with its hub as with --workers 1 (the loop
//            in the same process, memory only): the subscription, the accept, the greeting.
//
// The clients run in a child process, so the figure is this process's CPU alone (user + system,
// from process.cpuUsage) from the first connection to the last greeting, divided by the number
// of handshakes. What a cluster adds on top (the primary handing each connection to a worker over
// IPC, the subscription's round trip to the primary) is not here: the idle scenario measures it.
import { fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import net, { type Server, type Socket } from 'node:net';
import { PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createHub } from '../broadcast.js';
import { readChatConfig } from '../config.js';
import { websocket } from '../websocket.js';
import type { Application, State, WebSocketScope } from '../server/asgi-types.js';
import { handleWebSocketUpgrade, type WebSocketSettings } from '../server/asgi-websocket.js';
import { WEBSOCKET_GUID } from '../server/handshake.js';
import { SERVER_LIMITS } from '../server/limits.js';

export const LAYERS = ['net', 'http', 'asgi', 'chat'] as const;
export type Layer = typeof LAYERS[number];

export interface HandshakesResult {
  conns: number;
  repeats: number;
  /** Median over the repeats of this process's CPU µs per handshake, by layer. */
  cpu_us_per_handshake: Record<Layer, number>;
  /** Each repeat's figures, in the order run (the layers alternate within a repeat). */
  runs: Array<Record<Layer, number>>;
  /** GC pauses per handshake (µs, median), by layer. */
  gc_us_per_handshake: Record<Layer, number>;
}

const GREETING = JSON.stringify({ sender: 'server', message: 'You are connected' });
/** The greeting as one unmasked text frame (RFC 6455 §5.2; under 126 bytes: a 2-byte header). */
const GREETING_FRAME = Buffer.concat([Buffer.from([0x81, Buffer.byteLength(GREETING)]), Buffer.from(GREETING)]);

function cannedAnswer(key: string): Buffer {
  const accept = createHash('sha1').update(key + WEBSOCKET_GUID).digest('base64');
  const head = `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), GREETING_FRAME]);
}

/** A server for one layer of the ladder, listening on 127.0.0.1; `close` ends it and its sockets. */
async function startLayer(layer: Layer): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  let server: Server;
  let cleanup = async (): Promise<void> => {};
  if (layer === 'net') {
    server = net.createServer((socket) => {
      let head = '';
      const onData = (chunk: Buffer): void => {
        head += chunk.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        socket.off('data', onData);
        const key = /sec-websocket-key: *([^\r]*)/i.exec(head)?.[1] ?? '';
        socket.write(cannedAnswer(key));
      };
      socket.on('data', onData);
    });
  } else {
    const http = createHttpServer();
    server = http;
    if (layer === 'http') {
      http.on('upgrade', (request: IncomingMessage, socket: Socket) => {
        socket.write(cannedAnswer(String(request.headers['sec-websocket-key'])));
      });
    } else {
      const settings: WebSocketSettings = {
        rootPath: '', trustedProxies: null, maxMessageSize: 1 << 20, maxFragments: SERVER_LIMITS.maxFragments.value,
        pingIntervalMs: 20_000, pingTimeoutMs: 20_000, closeTimeoutMs: 1000, perMessageDeflate: false,
      };
      let app: Application;
      let state: State = {};
      if (layer === 'asgi') {
        app = async (_scope, receive, send) => {
          await receive();
          await send({ type: 'websocket.accept' });
          await send({ type: 'websocket.send', text: GREETING });
          while ((await receive()).type !== 'websocket.disconnect');
        };
      } else {
        const config = readChatConfig({ ...process.env, CHAT_DATA_DIR: '' });
        const hub = await createHub(config);
        state = { hub, config } as unknown as State;
        app = (scope, receive, send) => websocket(scope as WebSocketScope, receive, send);
        cleanup = () => hub.detach();
      }
      http.on('upgrade', (request: IncomingMessage, socket: Socket, head: Buffer) => {
        handleWebSocketUpgrade(app, request, socket, head, settings, state);
      });
    }
  }
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
      await cleanup();
    },
  };
}

/** The clients, in a child process: opens `conns` connections, answers when each has its greeting. */
function clientMain(): void {
  process.on('message', (task: { port: number; conns: number; concurrency: number }) => {
    const open: Socket[] = [];
    let started = 0;
    let done = 0;
    const request = 'GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
    const next = (): void => {
      if (started >= task.conns) return;
      started++;
      const socket = net.connect(task.port, '127.0.0.1');
      open.push(socket);
      socket.write(request);
      let received = '';
      const onData = (chunk: Buffer): void => {
        received += chunk.toString('latin1');
        // The head, then the greeting (its text ends the first frame).
        if (!received.includes('You are connected')) return;
        socket.off('data', onData);
        socket.pause();
        if (++done === task.conns) {
          process.send!('done', () => {
            for (const s of open) s.destroy();
          });
        } else {
          next();
        }
      };
      socket.on('data', onData);
      socket.on('error', (error) => { process.send!(`error ${error.message}`); process.exit(1); });
    };
    for (let i = 0; i < task.concurrency; i++) next();
  });
}

function cpuMicros(): number {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
}

async function measureLayer(layer: Layer, conns: number): Promise<{ cpu: number; gc: number }> {
  const server = await startLayer(layer);
  const client = fork(fileURLToPath(import.meta.url), ['--client'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let gcMs = 0;
  const observer = new PerformanceObserver((list) => { for (const entry of list.getEntries()) gcMs += entry.duration; });
  try {
    await new Promise((resolve) => setTimeout(resolve, 200)); // the child starts up
    observer.observe({ entryTypes: ['gc'] });
    const t0 = cpuMicros();
    const finished = new Promise<string>((resolve) => client.once('message', (message: string) => resolve(message)));
    client.send({ port: server.port, conns, concurrency: 64 });
    const answer = await finished;
    const t1 = cpuMicros();
    if (answer !== 'done') throw new Error(`the clients failed: ${answer}`);
    await new Promise((resolve) => setImmediate(resolve)); // the observer reports the last GCs
    return { cpu: (t1 - t0) / conns, gc: (gcMs * 1000) / conns };
  } finally {
    observer.disconnect();
    client.kill();
    await server.close();
  }
}

export async function runHandshakes(conns: number, repeats: number): Promise<HandshakesResult> {
  const runs: Array<Record<Layer, number>> = [];
  const gcs: Array<Record<Layer, number>> = [];
  await measureLayer('chat', Math.min(conns, 500)); // warm-up: JIT, the hub's first allocations
  for (let r = 0; r < repeats; r++) {
    const run = {} as Record<Layer, number>;
    const gc = {} as Record<Layer, number>;
    for (const layer of LAYERS) {
      const { cpu, gc: gcUs } = await measureLayer(layer, conns);
      run[layer] = Math.round(cpu);
      gc[layer] = Math.round(gcUs * 10) / 10;
    }
    runs.push(run);
    gcs.push(gc);
  }
  const median = (values: number[]): number => values.sort((a, b) => a - b)[values.length >> 1]!;
  const by = (rows: Array<Record<Layer, number>>): Record<Layer, number> =>
    Object.fromEntries(LAYERS.map((layer) => [layer, median(rows.map((row) => row[layer]))])) as Record<Layer, number>;
  return { conns, repeats, cpu_us_per_handshake: by(runs), runs, gc_us_per_handshake: by(gcs) };
}

/** Runs the measurement in a fresh node with a 1 MiB young generation, as cluster workers get. */
export async function runHandshakesChild(conns: number, repeats: number): Promise<HandshakesResult> {
  const child = fork(fileURLToPath(import.meta.url), ['--conns', String(conns), '--repeats', String(repeats)], {
    execArgv: ['--max-semi-space-size=1'], stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env: { ...process.env, CHAT_DATA_DIR: '' },
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (chunk: Buffer) => { out += chunk.toString(); });
  child.stderr!.on('data', (chunk: Buffer) => { err += chunk.toString(); });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`handshakes.js exited with ${code}: ${err.trim().split('\n').slice(-3).join(' ')}`);
  return JSON.parse(out) as HandshakesResult;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { client: { type: 'boolean' }, conns: { type: 'string' }, repeats: { type: 'string' } } });
  if (values.client) {
    clientMain();
  } else {
    const result = await runHandshakes(Number(values.conns ?? 2000), Number(values.repeats ?? 3));
    process.stdout.write(`${JSON.stringify(result)}\n`);
    process.exit(0);
  }
}
