// What one misbehaving client must not be able to do, through a real server and raw sockets:
// close everyone else with a burst, lock newcomers out with its messages, grow the server's memory
// with a ping flood or with messages the app does not read, or hold a closing connection open.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ChatClient, healthz, rssBytes } from './helpers/chat-client.js';
import { Op, connectRaw, encodeFrame } from './helpers/raw-ws.js';
import { fixture, startServer, type RunningServer } from './helpers/server.js';

const MiB = 1024 * 1024;

/** Writes `bytes` as long as the peer takes them, for at most `ms`; resolves with what went out. */
async function floodFor(socket: import('node:net').Socket, chunk: Buffer, ms: number): Promise<number> {
  const end = Date.now() + ms;
  let written = 0;
  while (Date.now() < end) {
    if (!socket.write(chunk)) {
      // The server stopped reading (or is slow): wait for room, but never past the deadline.
      const drained = await Promise.race([
        new Promise<boolean>((resolve) => socket.once('drain', () => resolve(true))),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), Math.max(0, end - Date.now()))),
      ]);
      if (!drained) break;
    }
    written += chunk.length;
  }
  return written;
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
  before(async () => { server = await startServer({ args: ['--app', fixture('no-reader.mjs'), '--log-level', 'warning'] }); });
  after(async () => { await server.stop(); });

  test('a ping flood whose pongs are never read does not grow the server', async () => {
    const peer = await connectRaw(server.port, { path: '/hold-60000' });
    peer.socket.pause(); // never read the pongs
    const rssBefore = rssBytes(server.proc.pid!);
    const pings = Buffer.concat(Array.from({ length: 1000 }, () => encodeFrame(Op.PING, Buffer.alloc(125, 0x70), { mask: true })));
    const written = await floodFor(peer.socket, pings, 3000);
    const growth = rssBytes(server.proc.pid!) - rssBefore;
    // Unbounded, 3 s of pings on loopback grew the server by tens of MiB; bounded, the server
    // stops reading once its pongs back up, so the flood stalls at a few MiB of socket buffers.
    assert.ok(growth < 24 * MiB, `server grew ${(growth / MiB).toFixed(1)} MiB while ${(written / MiB).toFixed(1)} MiB of pings were written`);
    assert.ok(written < 48 * MiB, `the flood should have stalled, but ${(written / MiB).toFixed(1)} MiB went through`);
    peer.destroy();
  });

  test('messages the app never reads are bounded in bytes, not only in count', async () => {
    const peer = await connectRaw(server.port, { path: '/hold-60000' });
    const rssBefore = rssBytes(server.proc.pid!);
    const big = encodeFrame(Op.BINARY, Buffer.alloc(1000 * 1000, 0x61), { mask: true });
    const written = await floodFor(peer.socket, big, 3000);
    const growth = rssBytes(server.proc.pid!) - rssBefore;
    // 64 unread 1 MB messages used to be kept (64 MB); now reading stops past 1 MiB.
    assert.ok(growth < 24 * MiB, `server grew ${(growth / MiB).toFixed(1)} MiB while ${(written / MiB).toFixed(1)} MiB were written`);
    peer.destroy();
  });

  test('an app returning with 100 unread messages still completes the closing handshake at once', async () => {
    const peer = await connectRaw(server.port, { path: '/hold-300' });
    for (let i = 0; i < 100; i++) await peer.sendText(`m${i}`);
    const started = Date.now();
    const close = await peer.waitClose(4000);
    assert.equal(close.code, 1000);
    await peer.sendClose(1000);
    await peer.waitEnd(4000);
    assert.ok(Date.now() - started < 2500, `the close took ${Date.now() - started} ms (the 5 s close timeout would mean it was stuck)`);
  });
});
