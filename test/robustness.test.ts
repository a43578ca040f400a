// What one misbehaving client must not be able to do, through a real server and raw sockets:
// close everyone else with a burst, lock newcomers out with its messages, grow the server's memory
// with a ping flood or with messages the app does not read, or hold a closing connection open.
//
// "Does not grow the server" is checked as behaviour, not as a memory figure: the server stops
// reading from such a client, so the client's writes stall once the kernel's socket buffers are
// full, and what the server can have taken in is bounded by what the client managed to write.
// The bound on that is computed from the kernel's own buffer limits, so it holds on any machine,
// however fast or loaded.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { ChatClient, healthz } from './helpers/chat-client.js';
import { Op, connectRaw, encodeFrame } from './helpers/raw-ws.js';
import { fixture, startServer, type RunningServer } from './helpers/server.js';

const MiB = 1024 * 1024;
/** Without a 'drain' for this long after a write that filled the socket's buffer, the flood has stalled. */
const STALL_MS = 1000;

/**
 * The most bytes the kernel can hold for one direction of a loopback TCP connection: the
 * sender's send buffer and the receiver's receive buffer, each at its autotuning maximum
 * (Linux: the third field of /proc/sys/net/ipv4/tcp_wmem and tcp_rmem).
 */
function kernelBytesInFlight(): number {
  const max = (name: string): number => Number(readFileSync(`/proc/sys/net/ipv4/${name}`, 'utf8').trim().split(/\s+/)[2]);
  const bytes = max('tcp_wmem') + max('tcp_rmem');
  assert.ok(Number.isSafeInteger(bytes) && bytes > 0, `kernel socket buffer limits: ${bytes}`);
  return bytes;
}

/**
 * Writes `chunk` again and again, waiting for 'drain' whenever the socket's buffer fills, until
 * the peer stops taking bytes (no 'drain' for STALL_MS) or `budget` bytes went out. Returns the
 * bytes handed to the socket, and whether the flood stalled. A slow machine can only make a flood
 * look stalled sooner, never make a stalling one look endless.
 */
async function floodUntilStalled(socket: Socket, chunk: Buffer, budget: number): Promise<{ written: number; stalled: boolean }> {
  let written = 0;
  while (written < budget) {
    if (socket.destroyed) throw new Error(`the server dropped the connection after ${(written / MiB).toFixed(1)} MiB`);
    const more = socket.write(chunk);
    written += chunk.length;
    if (more) continue;
    const drained = await new Promise<boolean>((resolve) => {
      const onDrain = (): void => { clearTimeout(timer); resolve(true); };
      const timer = setTimeout(() => { socket.off('drain', onDrain); resolve(false); }, STALL_MS);
      socket.once('drain', onDrain);
    });
    if (!drained) return { written, stalled: true };
  }
  return { written, stalled: false };
}

describe('the chat against one misbehaving client', () => {
  let server: RunningServer;
  before(async () => { server = await startServer({ args: ['--workers', '1', '--log-level', 'warning'] }); });
  after(async () => { await server.stop(); });

  test('a burst of 1100 messages in one TCP write closes nobody, and everyone gets all of them', async () => {
    const reader = await ChatClient.join(server.wsUrl, 'reader');
    const flooder = await connectRaw(server.port, { path: '/chat' });
    assert.equal(flooder.status, 101);
    const burst = Buffer.concat(Array.from({ length: 1100 }, (_, i) =>
      encodeFrame(Op.TEXT, JSON.stringify({ sender: 'burst', message: `b${i}` }), { mask: true })));
    await flooder.sendRaw(burst);
    await reader.seen((m) => m.message === 'b1099', 15000, 'the last message of the burst');
    assert.equal(reader.closeInfo, null, 'the idle reader was not closed as a slow consumer');
    const texts = reader.received.filter((m) => m.sender === 'burst').map((m) => m.message);
    assert.deepEqual(texts, Array.from({ length: 1100 }, (_, i) => `b${i}`));
    assert.equal((await healthz(server.port)).slow_consumers_closed, 0);
    flooder.destroy();
    reader.close();
  });

  test('lone surrogates are refused, so a message cannot slip past the length limit', async () => {
    const client = await ChatClient.join(server.wsUrl, 'client');
    const before = client.received.length;
    // JSON escapes for lone surrogates decode to ill-formed strings; 10,000 of them used to count as 0.
    client.sendText(`{"sender":"s","message":"${'\\ud800'.repeat(10000)}"}`);
    const reply = await client.waitFor((m) => typeof m.error === 'string', 5000, 'the error reply');
    assert.match(String(reply.error), /well-formed/);
    assert.ok(client.received.slice(before).every((m) => m.sender !== 's'), 'nothing was published');
    client.close();
  });
});

describe('the server against a peer that does not read', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({ args: ['--app', fixture('no-reader.mjs'), '--log-level', 'warning', '--ws-max-size', String(8 * MiB)] });
  });
  after(async () => { await server.stop(); });

  test('a ping flood whose pongs are never read stalls: the server stops reading', async () => {
    const peer = await connectRaw(server.port, { path: '/hold-60000' });
    peer.socket.pause(); // never read the pongs
    const pings = Buffer.concat(Array.from({ length: 1000 }, () => encodeFrame(Op.PING, Buffer.alloc(125, 0x70), { mask: true })));
    // Stalled, the flood can have filled the kernel's buffers with pings (one direction), and the
    // server can have read as many pings as the pongs it answered with fill the other direction
    // (a 127-byte pong per 131-byte ping) plus its own bound of 64 KiB queued per socket. A server
    // that read on regardless of its unread pongs would take pings for as long as they come.
    const kernel = kernelBytesInFlight();
    const budget = Math.ceil(kernel + kernel * 131 / 127) + 2 * MiB + pings.length;
    const { written, stalled } = await floodUntilStalled(peer.socket, pings, budget);
    console.log(`ping flood: ${stalled ? 'stalled' : 'still flowing'} after ${(written / MiB).toFixed(1)} MiB (budget ${(budget / MiB).toFixed(1)} MiB)`);
    assert.ok(stalled, `the flood never stalled: ${(written / MiB).toFixed(1)} MiB of pings went through `
      + `(the kernel buffers ${(kernel / MiB).toFixed(1)} MiB per direction)`);
    assert.ok(written <= budget);
    peer.destroy();
  });

  test('messages the app never reads are bounded in bytes, not only in count: the flood stalls', async () => {
    const peer = await connectRaw(server.port, { path: '/hold-60000' });
    // 4 MiB messages: bounded only in count (64 messages), 256 MiB would be taken in. Bounded in
    // bytes, the server reads on while less than 1 MiB is unread; so it holds at most that, the
    // message that went over it and the one it was parsing when it stopped.
    const message = 4 * MiB;
    const big = encodeFrame(Op.BINARY, Buffer.alloc(message, 0x61), { mask: true });
    const kernel = kernelBytesInFlight();
    const budget = kernel + MiB + 2 * big.length + MiB;
    const { written, stalled } = await floodUntilStalled(peer.socket, big, budget);
    console.log(`unread messages: ${stalled ? 'stalled' : 'still flowing'} after ${(written / MiB).toFixed(1)} MiB (budget ${(budget / MiB).toFixed(1)} MiB)`);
    assert.ok(stalled, `the flood never stalled: ${(written / MiB).toFixed(1)} MiB of unread messages went through `
      + `(the kernel buffers ${(kernel / MiB).toFixed(1)} MiB)`);
    assert.ok(written <= budget);
    peer.destroy();
  });

  test('an app returning with 100 unread messages still completes the closing handshake', async () => {
    const peer = await connectRaw(server.port, { path: '/hold-300' });
    // 100 messages of 10 KB: past its inbox bound (64 messages) the server stops reading, so most
    // of them wait in the kernel's buffers, behind them the close we send below.
    for (let i = 0; i < 100; i++) await peer.sendText(`m${i} `.padEnd(10_000, 'x'));
    const close = await peer.waitClose(4000);
    assert.equal(close.code, 1000, 'the app returned: the server closes with 1000');
    await peer.sendClose(1000);
    // Closing, the server reads again (unread messages are dropped), reads our close and ends TCP
    // with a FIN. Had it stayed paused behind the unread messages, its 5 s closing timeout would
    // destroy the socket with bytes still unread in its kernel buffer, which the kernel answers
    // with a reset: that is the difference seen here, with no clock involved.
    await peer.waitEnd(10000);
    assert.equal(peer.reader.error, null, 'the server ended the connection cleanly, not with a reset');
  });
});
