// Tests for src/server/ws-transport.ts, through real TCP sockets on 127.0.0.1: the handshake's
// answers (the 101 and what follows it, refusals, the denial response, bytes that came before the
// 101), the end of TCP happening once, the protocol-error log line, and write coalescing (one
// socket write per turn, one joined Buffer shared by sockets with the same run of frames, large
// runs corked instead of copied). Spies wrap the real socket methods (they still write), so a test
// that counts writes also sees the bytes arrive.
import { after, before, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { Opcode, encodeFrame, encodeMaskedFrame } from '../src/server/frames.js';
import { acceptResponse } from '../src/server/handshake.js';
import { plainResponse, plainResponseHead } from '../src/server/http-messages.js';
import { setLogLevel } from '../src/server/logger.js';
import { WebSocketTransport, refuseUpgrade, type TransportEvents, type TransportOptions } from '../src/server/ws-transport.js';

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const OPTIONS: TransportOptions = { maxMessageSize: 1 << 20, maxFragments: 1024, pingIntervalMs: 0, pingTimeoutMs: 0, closeTimeoutMs: 5000 };

let listener: Server;
const accepted: Socket[] = [];
let waiting: ((socket: Socket) => void) | null = null;

before(async () => {
  // allowHalfOpen, as node:http creates its sockets: a peer's FIN does not end our side by itself.
  listener = createServer({ allowHalfOpen: true }, (socket) => {
    if (waiting) { const resolve = waiting; waiting = null; resolve(socket); } else accepted.push(socket);
  });
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
});

after(() => {
  listener.close();
});

/** What a client socket received, and a way to wait for a number of bytes or for the end. */
class Received {
  bytes = Buffer.alloc(0);
  ended = false;
  private wake: (() => void) | null = null;

  constructor(socket: Socket) {
    socket.on('data', (chunk: Buffer) => { this.bytes = Buffer.concat([this.bytes, chunk]); this.wake?.(); });
    socket.on('end', () => { this.ended = true; this.wake?.(); });
    socket.on('close', () => { this.ended = true; this.wake?.(); });
    socket.on('error', () => {});
  }

  async until(done: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 5000;
    while (!done()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${this.bytes.length} bytes, ended: ${this.ended}`);
      await new Promise<void>((resolve) => { this.wake = resolve; setTimeout(resolve, 50); });
    }
  }

  atLeast(n: number): Promise<void> {
    return this.until(() => this.bytes.length >= n, `${n} bytes`);
  }

  end(): Promise<void> {
    return this.until(() => this.ended, 'the end of the connection');
  }
}

interface Pair { server: Socket; client: Socket; received: Received }

/** A connected pair: `server` is the accepted side (what node:http would hand over at 'upgrade'). */
async function pair(): Promise<Pair> {
  const address = listener.address() as { port: number };
  const serverSide = new Promise<Socket>((resolve) => {
    const queued = accepted.shift();
    if (queued) resolve(queued); else waiting = resolve;
  });
  const client = connect(address.port, '127.0.0.1');
  const received = new Received(client);
  await once(client, 'connect');
  const server = await serverSide;
  server.on('error', () => {});
  return { server, client, received };
}

interface Recorder extends TransportEvents { messages: Array<string | Buffer>; closes: Array<[number, string]> }

function recorder(): Recorder {
  const rec: Recorder = {
    messages: [],
    closes: [],
    onMessage: (data) => { rec.messages.push(data); },
    onClose: (code, reason) => { rec.closes.push([code, reason]); },
  };
  return rec;
}

/** Lets the process.nextTick flush of this turn's frames run (and any I/O callbacks queued). */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

const ACCEPT_BYTES = Buffer.from(acceptResponse(KEY, null, []), 'latin1');

// ---- the handshake's answers -----------------------------------------------------------------

test('accept writes the 101 first, then the frames sent after it', async () => {
  const { server, client, received } = await pair();
  const transport = new WebSocketTransport(server, Buffer.alloc(0), OPTIONS, recorder());
  transport.accept(KEY, 'chat', [['x-extra', '1']]);
  transport.connection.sendText('hello');
  const head = Buffer.from(acceptResponse(KEY, 'chat', [['x-extra', '1']]), 'latin1');
  const frame = encodeFrame(Opcode.TEXT, Buffer.from('hello'));
  await received.atLeast(head.length + frame.length);
  assert.equal(received.bytes.toString('latin1'), Buffer.concat([head, frame]).toString('latin1'));
  client.destroy();
});

test('bytes that came with the request (head) and before the 101 are kept, then fed to the codec on accept', async () => {
  const { server, client } = await pair();
  const rec = recorder();
  const transport = new WebSocketTransport(server, encodeMaskedFrame(Opcode.TEXT, Buffer.from('in head')), OPTIONS, rec);
  const arrived = once(server, 'data');
  client.write(encodeMaskedFrame(Opcode.TEXT, Buffer.from('early')));
  await arrived;
  assert.deepEqual(rec.messages, [], 'no message before the handshake completes');
  transport.accept(KEY, null, []);
  assert.deepEqual(rec.messages, ['in head', 'early'], 'delivered in order, at accept');
  client.destroy();
});

test('more than 64 KiB before the 101 drops the connection: 1006, socket destroyed', async () => {
  const { server, client, received } = await pair();
  const rec = recorder();
  new WebSocketTransport(server, Buffer.alloc(0), OPTIONS, rec);
  client.write(Buffer.alloc(64 * 1024 + 1));
  await received.end();
  assert.deepEqual(rec.closes, [[1006, '']]);
  assert.equal(server.destroyed, true);
});

test('refuse writes the exact plain-text response, then ends TCP (once)', async () => {
  const { server, received } = await pair();
  const rec = recorder();
  const transport = new WebSocketTransport(server, Buffer.alloc(0), OPTIONS, rec);
  const end = mock.method(server, 'end');
  transport.refuse(403, 'Forbidden');
  await received.end();
  assert.equal(received.bytes.toString('latin1'), plainResponse(403, 'Forbidden'));
  await once(server, 'close');
  assert.equal(end.mock.callCount(), 1, 'the client\'s FIN after the refusal does not end the socket again');
  assert.deepEqual(rec.closes, [[1006, '']]);
});

test('respond and respondBody write the denial response as given, and the last body ends TCP', async () => {
  const { server, received } = await pair();
  const transport = new WebSocketTransport(server, Buffer.alloc(0), OPTIONS, recorder());
  const headers: Array<[string, string]> = [['Content-Type', 'text/plain'], ['X-Denied', 'teapot']];
  transport.respond(418, headers);
  transport.respondBody(Buffer.from('not a '), true);
  transport.respondBody(undefined, true);
  transport.respondBody(new Uint8Array(Buffer.from('websocket')), false);
  await received.end();
  assert.equal(received.bytes.toString('latin1'), `${plainResponseHead(418, headers)}not a websocket`);
});

test('refuseUpgrade answers a socket that has no transport, with the verdict\'s headers, and ends it', async () => {
  const { server, received } = await pair();
  refuseUpgrade(server, 426, 'unsupported WebSocket version', [['sec-websocket-version', '13']], 5000);
  await received.end();
  assert.equal(received.bytes.toString('latin1'), plainResponse(426, 'unsupported WebSocket version', [['sec-websocket-version', '13']]));
});

// ---- the end of TCP, once ----------------------------------------------------------------------

/** Counts end() calls on the socket and destroy timers armed for it (sockets.ts: setTimeout(destroySocket, ms, socket)). */
function countEnds(server: Socket) {
  const end = mock.method(server, 'end');
  const timers = mock.method(globalThis, 'setTimeout');
  return {
    ends: () => end.mock.callCount(),
    destroyTimers: () => timers.mock.calls.filter((call) => (call.arguments as unknown[])[2] === server).length,
    restore: () => { timers.mock.restore(); end.mock.restore(); },
  };
}

for (const when of ['after the 101', 'before the 101'] as const) {
  test(`a peer's FIN without a Close (${when}): 1006, and TCP is ended once with one destroy timer`, async () => {
    const { server, client, received } = await pair();
    const rec = recorder();
    const transport = new WebSocketTransport(server, Buffer.alloc(0), OPTIONS, rec);
    if (when === 'after the 101') {
      transport.accept(KEY, null, []);
      await received.atLeast(ACCEPT_BYTES.length);
    }
    const count = countEnds(server);
    try {
      client.end();
      await once(server, 'close');
      assert.deepEqual(rec.closes, [[1006, '']]);
      assert.equal(count.ends(), 1, 'socket.end() calls');
      assert.equal(count.destroyTimers(), 1, 'destroy timers armed');
    } finally {
      count.restore();
    }
  });
}

test('a peer\'s Close, then its FIN: answered once, TCP ended once', async () => {
  const { server, client, received } = await pair();
  const rec = recorder();
  const transport = new WebSocketTransport(server, Buffer.alloc(0), OPTIONS, rec);
  transport.accept(KEY, null, []);
  await received.atLeast(ACCEPT_BYTES.length);
  const count = countEnds(server);
  try {
    client.end(encodeMaskedFrame(Opcode.CLOSE, Buffer.from([0x03, 0xe8])));
    await once(server, 'close');
    assert.deepEqual(rec.closes, [[1000, '']]);
    assert.equal(received.bytes.subarray(ACCEPT_BYTES.length).toString('hex'), '880203e8', 'the Close echoed');
    assert.equal(count.ends(), 1, 'socket.end() calls');
    assert.equal(count.destroyTimers(), 1, 'destroy timers armed');
  } finally {
    count.restore();
  }
});

test('a protocol error is logged at debug level as "closing <code> <WS_ERR_...>: <message>"', async () => {
  const { server, client, received } = await pair();
  const rec = recorder();
  const transport = new WebSocketTransport(server, Buffer.alloc(0), OPTIONS, rec);
  transport.accept(KEY, null, []);
  await received.atLeast(ACCEPT_BYTES.length);
  setLogLevel('debug');
  const stderr = mock.method(process.stderr, 'write', () => true);
  try {
    client.write(encodeFrame(Opcode.TEXT, Buffer.from('unmasked')));
    await received.end();
  } finally {
    stderr.mock.restore();
    setLogLevel('info');
  }
  const lines = stderr.mock.calls.map((call) => String(call.arguments[0]));
  assert.deepEqual(lines, [`DEBUG:    [${process.pid}] closing 1002 WS_ERR_UNMASKED_FRAME: client frames must be masked\n`]);
  assert.deepEqual(rec.closes, [[1002, 'client frames must be masked']]);
});

// ---- write coalescing ---------------------------------------------------------------------------

/** Accepted transports on fresh pairs, with their 101 already received by the client. */
async function acceptedTransports(n: number): Promise<Array<Pair & { transport: WebSocketTransport }>> {
  const result = [];
  for (let i = 0; i < n; i++) {
    const p = await pair();
    const transport = new WebSocketTransport(p.server, Buffer.alloc(0), OPTIONS, recorder());
    transport.accept(KEY, null, []);
    await p.received.atLeast(ACCEPT_BYTES.length);
    result.push({ ...p, transport });
  }
  return result;
}

const frameOf = (text: string) => encodeFrame(Opcode.TEXT, Buffer.from(text));

test('frames sent to several transports in one turn: one write per socket, one joined Buffer shared by all', async () => {
  const conns = await acceptedTransports(3);
  const writes = conns.map((c) => mock.method(c.server, 'write'));
  // A broadcast hands every subscriber the same frame Buffers (the frame cache), in the same order.
  const run = [frameOf('one'), frameOf('two'), frameOf('three')];
  for (const { transport } of conns) for (const frame of run) transport.connection.sendFrameBytes(frame);
  assert.deepEqual(writes.map((w) => w.mock.callCount()), [0, 0, 0], 'nothing written before the turn ends');
  await nextTurn();
  assert.deepEqual(writes.map((w) => w.mock.callCount()), [1, 1, 1], 'one write per socket');
  const written = writes.map((w) => w.mock.calls[0]!.arguments[0] as Buffer);
  assert.equal(written[0]!.toString('hex'), Buffer.concat(run).toString('hex'));
  assert.equal(written[1], written[0], 'the second socket writes the very Buffer the first one did');
  assert.equal(written[2], written[0], 'and so does the third');
  for (const { received, client } of conns) {
    await received.atLeast(ACCEPT_BYTES.length + written[0]!.length);
    assert.equal(received.bytes.subarray(ACCEPT_BYTES.length).toString('hex'), written[0]!.toString('hex'));
    client.destroy();
  }
});

test('different runs are joined separately; a single frame is written as is, not copied', async () => {
  const conns = await acceptedTransports(3);
  const writes = conns.map((c) => mock.method(c.server, 'write'));
  const a = frameOf('a');
  const b = frameOf('b');
  const c = frameOf('c');
  conns[0]!.transport.connection.sendFrameBytes(a);
  conns[0]!.transport.connection.sendFrameBytes(b);
  conns[1]!.transport.connection.sendFrameBytes(a);
  conns[1]!.transport.connection.sendFrameBytes(c);
  conns[2]!.transport.connection.sendFrameBytes(c);
  await nextTurn();
  assert.deepEqual(writes.map((w) => w.mock.callCount()), [1, 1, 1]);
  const [first, second, third] = writes.map((w) => w.mock.calls[0]!.arguments[0] as Buffer);
  assert.equal(first!.toString('hex'), Buffer.concat([a, b]).toString('hex'));
  assert.equal(second!.toString('hex'), Buffer.concat([a, c]).toString('hex'));
  assert.notEqual(second, first, 'a different run gets its own Buffer');
  assert.equal(third, c, 'one frame: the frame Buffer itself');
  for (const { client } of conns) client.destroy();
});

test('a run over 64 KiB is corked and written frame by frame (one writev), not joined', async () => {
  const [conn] = await acceptedTransports(1);
  const { server, transport, received, client } = conn!;
  const writes = mock.method(server, 'write');
  const cork = mock.method(server, 'cork');
  const uncork = mock.method(server, 'uncork');
  const big = [encodeFrame(Opcode.BINARY, Buffer.alloc(30_000, 1)), encodeFrame(Opcode.BINARY, Buffer.alloc(30_000, 2)), encodeFrame(Opcode.BINARY, Buffer.alloc(30_000, 3))];
  for (const frame of big) transport.connection.sendFrameBytes(frame);
  await nextTurn();
  assert.equal(cork.mock.callCount(), 1);
  assert.equal(uncork.mock.callCount(), 1);
  assert.equal(writes.mock.callCount(), 3);
  writes.mock.calls.forEach((call, i) => assert.equal(call.arguments[0], big[i], `write ${i} is frame ${i} itself`));
  const total = big.reduce((sum, f) => sum + f.length, 0);
  await received.atLeast(ACCEPT_BYTES.length + total);
  assert.ok(received.bytes.subarray(ACCEPT_BYTES.length).equals(Buffer.concat(big)), 'the bytes arrive in order');
  client.destroy();
});

test('a run of exactly 64 KiB is still joined (the bound is inclusive)', async () => {
  const [conn] = await acceptedTransports(1);
  const { server, transport, client } = conn!;
  const writes = mock.method(server, 'write');
  const cork = mock.method(server, 'cork');
  // Two binary frames with 4-byte headers: 2 × (4 + 32764) = 65536 bytes.
  const frames = [encodeFrame(Opcode.BINARY, Buffer.alloc(32_764, 1)), encodeFrame(Opcode.BINARY, Buffer.alloc(32_764, 2))];
  assert.equal(frames[0]!.length + frames[1]!.length, 64 * 1024);
  for (const frame of frames) transport.connection.sendFrameBytes(frame);
  await nextTurn();
  assert.equal(cork.mock.callCount(), 0);
  assert.equal(writes.mock.callCount(), 1);
  assert.equal((writes.mock.calls[0]!.arguments[0] as Buffer).length, 64 * 1024);
  client.destroy();
});
