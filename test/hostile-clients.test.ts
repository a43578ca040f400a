// Clients that never finish, clients that hang up rudely, and too many clients, through a real
// server process and raw sockets:
//   - a client resetting its connection after a refused handshake, or after the answer to an
//     Upgrade that is not a WebSocket, used to kill the process (the fuzzer found it): node:http
//     stops listening for a socket's errors when it hands the socket over at 'upgrade';
//   - a request head trickled a byte at a time (slowloris), an unfinished WebSocket handshake and
//     a connection that sends nothing are answered 408 and closed after --timeout-request-head,
//     not after node's 30 s connection-checking interval on top of it;
//   - connections over --limit-concurrency get `503 Service Unavailable` at once, and the
//     application never sees them.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ByteReader, httpOnce, openHttp, openSocket, waitForOutput, write } from './helpers/raw-ws.js';
import { startServer, type RunningServer } from './helpers/server.js';

const REFUSED_HANDSHAKE = 'GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
  + 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 12\r\n\r\n';
const H2C_UPGRADE = 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n';

async function healthPid(port: number): Promise<number> {
  const response = await httpOnce(port, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
  assert.equal(response.status, 200);
  return (JSON.parse(response.body.toString()) as { pid: number }).pid;
}

/** Sends `request`, waits for the first bytes of the answer, then resets the connection (RST). */
async function sendThenReset(port: number, request: string): Promise<string> {
  const socket = await openSocket(port);
  const reader = new ByteReader(socket);
  await write(socket, request);
  const statusLine = await reader.read((buf) => {
    const end = buf.indexOf('\r\n');
    return end < 0 ? null : { value: buf.subarray(0, end).toString('latin1'), used: end + 2 };
  }, 5000, 'the status line');
  socket.resetAndDestroy();
  await reader.waitClosed(5000);
  return statusLine;
}

describe('clients that reset the connection after an answer to their Upgrade', () => {
  let server: RunningServer;
  before(async () => { server = await startServer({ args: ['--log-level', 'warning'] }); });
  after(async () => { await server.stop(); });

  test('a reset after a refused WebSocket handshake (426) leaves the process serving', async () => {
    const pid = await healthPid(server.port);
    for (let i = 0; i < 3; i++) assert.equal(await sendThenReset(server.port, REFUSED_HANDSHAKE), 'HTTP/1.1 426 Upgrade Required');
    assert.equal(await healthPid(server.port), pid, 'the same process still answers');
    assert.equal(server.proc.exitCode, null);
    assert.doesNotMatch(server.output(), /Unhandled 'error' event|ECONNRESET/);
  });

  test('a reset after the answer to an h2c Upgrade (served as plain HTTP) leaves the process serving', async () => {
    const pid = await healthPid(server.port);
    for (let i = 0; i < 3; i++) assert.equal(await sendThenReset(server.port, H2C_UPGRADE), 'HTTP/1.1 200 OK');
    assert.equal(await healthPid(server.port), pid, 'the same process still answers');
    assert.equal(server.proc.exitCode, null);
    assert.doesNotMatch(server.output(), /Unhandled 'error' event|ECONNRESET/);
  });
});

describe('--timeout-request-head: clients that never finish their request head', () => {
  const HEAD_TIMEOUT_S = 1;
  /**
   * Node's own connection check runs every 30 s by default; with it, a 1 s head timeout took up
   * to 31 s. The server now checks often enough that the cut comes well within this.
   */
  const CUT_OFF_WITHIN_MS = 10_000;
  let server: RunningServer;
  before(async () => { server = await startServer({ args: ['--timeout-request-head', String(HEAD_TIMEOUT_S), '--log-level', 'warning'] }); });
  after(async () => { await server.stop(); });

  /** Waits for the server's answer and FIN; returns the answer and when it came (ms after `start`). */
  async function answerAndEnd(reader: ByteReader, start: number): Promise<{ answer: string; ms: number }> {
    const answer = (await reader.readToEnd(CUT_OFF_WITHIN_MS)).toString('latin1');
    return { answer, ms: performance.now() - start };
  }

  test('a head trickled a byte at a time, for ever (slowloris), gets 408 and is closed', async () => {
    // Timed from before the connect: the server's clock for the head starts when it accepts,
    // which the client may hear of some ms later on a busy machine.
    const start = performance.now();
    const socket = await openSocket(server.port);
    const reader = new ByteReader(socket);
    const head = Buffer.from(`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ${'a'.repeat(1000)}`);
    let sent = 0;
    // One byte every 50 ms: every byte is "activity", and the head never ends.
    const trickle = setInterval(() => { if (!reader.ended && sent < head.length) socket.write(head.subarray(sent, ++sent)); }, 50);
    try {
      const { answer, ms } = await answerAndEnd(reader, start);
      assert.match(answer, /^HTTP\/1\.1 408 Request Timeout\r\n/);
      assert.match(answer, /\r\nConnection: close\r\n/i);
      assert.ok(ms >= HEAD_TIMEOUT_S * 1000, `not before the timeout (${ms.toFixed(0)} ms)`);
      assert.ok(sent < head.length, 'cut off while still trickling');
      console.log(`slowloris: 408 after ${ms.toFixed(0)} ms and ${sent} bytes`);
    } finally {
      clearInterval(trickle);
      socket.destroy();
    }
  });

  test('a WebSocket handshake cut off in the middle of its head gets 408 and is closed', async () => {
    // Timed from before the connect: the server's clock for the head starts when it accepts,
    // which the client may hear of some ms later on a busy machine.
    const start = performance.now();
    const socket = await openSocket(server.port);
    const reader = new ByteReader(socket);
    await write(socket, 'GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n');
    const { answer, ms } = await answerAndEnd(reader, start);
    assert.match(answer, /^HTTP\/1\.1 408 Request Timeout\r\n/);
    assert.ok(ms >= HEAD_TIMEOUT_S * 1000, `not before the timeout (${ms.toFixed(0)} ms)`);
    socket.destroy();
  });

  test('a connection that sends nothing at all gets 408 and is closed', async () => {
    // Timed from before the connect: the server's clock for the head starts when it accepts,
    // which the client may hear of some ms later on a busy machine.
    const start = performance.now();
    const socket = await openSocket(server.port);
    const reader = new ByteReader(socket);
    const { answer, ms } = await answerAndEnd(reader, start);
    assert.match(answer, /^HTTP\/1\.1 408 Request Timeout\r\n/);
    assert.ok(ms >= HEAD_TIMEOUT_S * 1000, `not before the timeout (${ms.toFixed(0)} ms)`);
    socket.destroy();
  });

  test('a request sent in time is served as usual', async () => {
    assert.equal((await httpOnce(server.port, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')).status, 200);
  });
});

describe('--limit-concurrency: connections over the limit', () => {
  let server: RunningServer;
  before(async () => { server = await startServer({ args: ['--limit-concurrency', '2', '--log-level', 'warning'] }); });
  after(async () => { await server.stop(); });

  test('get 503 at once, before sending anything, and their requests never reach the application', async () => {
    // Two connections held open: an idle keep-alive HTTP connection and a WebSocket.
    const http = await openHttp(server.port);
    await http.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    assert.equal((await http.readResponse()).status, 200);
    const ws = await openSocket(server.port);
    const wsReader = new ByteReader(ws);
    await write(ws, 'GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
      + 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    await wsReader.read((buf) => (buf.includes('\r\n\r\n') ? { value: null, used: 0 } : null), 5000, 'the 101');

    // The third: answered without a word from us.
    const third = await openSocket(server.port);
    const reader = new ByteReader(third);
    const early = await reader.read((buf) => {
      const end = buf.indexOf('\r\n\r\n');
      return end < 0 ? null : { value: buf.subarray(0, end + 4).toString('latin1'), used: 0 };
    }, 5000, 'the 503');
    assert.match(early, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
    assert.match(early, /\r\nConnection: close\r\n/i);
    // A request sent anyway is read and dropped: all that ever comes back is the 503.
    await write(third, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    const everything = (await reader.readToEnd(5000)).toString('latin1');
    assert.equal(everything.match(/HTTP\/1\.1 /g)?.length, 1, `one response only: ${JSON.stringify(everything)}`);
    assert.match(everything, /^HTTP\/1\.1 503 Service Unavailable\r\n[^]*\r\n\r\nService Unavailable: too many connections\n$/);
    third.destroy();
    // The log line reaches us through the server's stderr pipe, maybe after the 503 did: wait for it.
    await waitForOutput(server, /1 connection over --limit-concurrency 2 answered 503/, 5000);

    // Closing one of the two frees its place: the next connection is served.
    http.close();
    let status = 503;
    for (let attempt = 0; attempt < 50 && status === 503; attempt++) {
      status = (await httpOnce(server.port, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n')).status;
      if (status === 503) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(status, 200, 'a place freed by a closed connection is given to the next one');
    ws.destroy();
  });
});
