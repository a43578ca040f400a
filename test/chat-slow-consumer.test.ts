// Integration test of the chat's slow-consumer protection, with real sockets:
// a raw node:net client completes the WebSocket handshake and then stops reading, while a
// publisher sends ~165 MB of chat messages in paced bursts and a normal client reads them all.
// The stalled subscriber's bounded queue overflows: the server closes it with 1008 "slow
// consumer" (seen on the wire once the client reads again, and counted by /healthz), the normal
// client still receives every message in order, and the server's memory stays bounded far below
// what queueing everything for the stalled client would take.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { ChatClient, closeAll, healthz, rssBytes, within } from './helpers/chat-client.js';
import { startServer, type RunningServer } from './helpers/server.js';

const MESSAGE_CHARS = 4000; // under the default CHAT_MAX_MESSAGE_LENGTH of 4096
const BURST = 100; // messages in flight at once: 400 KB, under the queue's bounds (200 messages, 1 MiB)
/**
 * Bursts before the memory baseline is taken. Churning through tens of MB of messages grows
 * V8's heap to a steady size (measured: RSS ~53 MB → ~140 MB within ~12,000 messages of this
 * size, then flat however many follow), so RSS is compared from there on. The stalled client
 * stops reading before the warm-up, so with an unbounded queue everything after the baseline
 * would still pile up.
 */
const WARMUP_BURSTS = 130;
/** Bursts after the baseline: 29,000 messages, ~116 MB that an unbounded queue would keep. */
const MEASURED_BURSTS = 290;
const RSS_GROWTH_LIMIT = 64 * 1024 * 1024;

/** What a raw client read: the 101 head, then every frame up to and including a close frame. */
interface RawRead {
  textFrames: number;
  close: { code: number; reason: string } | null;
  /** The connection ended (FIN, reset or destroy) before a close frame arrived. */
  endedWithoutClose: boolean;
}

/**
 * A WebSocket client on node:net that completes the opening handshake, then stops reading
 * (`socket.pause()`): the server's writes pile up in the kernel buffers and then in its queue.
 * `resume()` reads again and parses frames until a close frame or the end of the connection.
 */
class StalledClient {
  private chunks: Buffer[] = [];
  private constructor(readonly socket: Socket) {}

  static async open(port: number): Promise<StalledClient> {
    const socket = connect({ port, host: '127.0.0.1' });
    const client = new StalledClient(socket);
    socket.on('error', () => {}); // a reset after the server gives up is fine; it shows as the end
    await within(new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    }), 5000, 'the raw client to connect');
    const key = randomBytes(16).toString('base64');
    socket.write(`GET /chat HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    let head = Buffer.alloc(0);
    await within(new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer): void => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end === -1) return;
        socket.off('data', onData);
        socket.pause(); // stop reading: from now on nothing is taken from the kernel buffer
        const status = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
        if (!/^HTTP\/1\.1 101 /.test(status)) return reject(new Error(`handshake answered ${status}`));
        client.chunks.push(head.subarray(end + 4));
        resolve();
      };
      socket.on('data', onData);
      socket.once('end', () => reject(new Error('the server ended the raw connection during the handshake')));
    }), 5000, 'the 101 response');
    return client;
  }

  /** Reads again; resolves at the first close frame, or when the connection ends without one. */
  resume(timeoutMs: number): Promise<RawRead> {
    const socket = this.socket;
    const result: RawRead = { textFrames: 0, close: null, endedWithoutClose: false };
    let buf: Buffer = Buffer.concat(this.chunks);
    this.chunks = [];
    return within(new Promise<RawRead>((resolve) => {
      const parse = (): boolean => {
        for (;;) {
          if (buf.length < 2) return false;
          const opcode = buf[0]! & 0x0f;
          let length = buf[1]! & 0x7f;
          let offset = 2;
          if (buf[1]! & 0x80) throw new Error('the server masked a frame');
          if (length === 126) {
            if (buf.length < 4) return false;
            length = buf.readUInt16BE(2);
            offset = 4;
          } else if (length === 127) {
            if (buf.length < 10) return false;
            length = Number(buf.readBigUInt64BE(2));
            offset = 10;
          }
          if (buf.length < offset + length) return false;
          const payload = buf.subarray(offset, offset + length);
          buf = buf.subarray(offset + length);
          if (opcode === 0x1) result.textFrames++;
          if (opcode === 0x8) {
            result.close = {
              code: payload.length >= 2 ? payload.readUInt16BE(0) : 1005,
              reason: payload.subarray(2).toString('utf8'),
            };
            return true;
          }
        }
      };
      const done = (): void => {
        socket.removeAllListeners('data');
        resolve(result);
      };
      socket.on('data', (chunk: Buffer) => {
        buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
        if (parse()) done();
      });
      socket.once('close', () => {
        result.endedWithoutClose = result.close === null;
        done();
      });
      if (parse()) done();
      else socket.resume();
    }), timeoutMs, 'the stalled client to read up to a close frame or the end');
  }

  destroy(): void {
    this.socket.destroy();
  }
}

describe('slow consumer', () => {
  let server: RunningServer | undefined;
  const clients: ChatClient[] = [];
  let stalled: StalledClient | undefined;
  after(async () => {
    stalled?.destroy();
    await closeAll(clients);
    await server?.stop();
  });

  test('a client that stops reading is closed with 1008; the others get everything; memory stays bounded', async () => {
    server = await startServer({
      args: ['--workers', '1'],
      env: { CHAT_QUEUE_MAX_MESSAGES: '200', CHAT_QUEUE_MAX_BYTES: String(1024 * 1024), CHAT_HISTORY_SIZE: '0' },
    });
    const pid = server.proc.pid!;
    assert.equal((await healthz(server.port)).pid, pid, 'one process serves');

    const reader = await ChatClient.join(server.wsUrl, 'reader');
    const publisher = await ChatClient.join(server.wsUrl, 'publisher');
    clients.push(reader, publisher);
    stalled = await StalledClient.open(server.port);
    const health = await healthz(server.port);
    assert.equal(health.connections, 3, 'the stalled client is subscribed too');
    assert.equal(health.slow_consumers_closed, 0);

    const padding = 'x'.repeat(MESSAGE_CHARS - 16);
    const number = (n: number): string => `${String(n).padStart(8, '0')} `;
    let sent = 0;
    let checked = 0; // messages the reader received and that were checked
    let previousId: number | undefined;
    let slowSeenAt = -1;
    let stalledRead: Promise<RawRead> | undefined;
    let rssBefore = 0;
    reader.forget(); // the greeting
    const started = Date.now();
    for (let burst = 0; burst < WARMUP_BURSTS + MEASURED_BURSTS; burst++) {
      if (burst === WARMUP_BURSTS) rssBefore = rssBytes(pid);
      for (let i = 0; i < BURST; i++) publisher.say('publisher', `${number(sent++)}${padding}`);
      // The next burst waits until the reader and the publisher have this one: with one burst in
      // flight at most, the queues of the clients that do read can never overflow.
      const lastText = number(sent - 1);
      const isLast = (m: { message?: string }): boolean => typeof m.message === 'string' && m.message.startsWith(lastText);
      await Promise.all([
        reader.waitFor(isLast, 10000, `message ${sent - 1} at the reader`),
        publisher.seen(isLast, 10000, `message ${sent - 1} back at the publisher`),
      ]);
      // The reader got exactly this burst, in order, once: consecutive ids and numbers.
      for (const m of reader.received) {
        const ok = typeof m.id === 'number' && (previousId === undefined || m.id === previousId + 1)
          && m.sender === 'publisher' && typeof m.message === 'string' && m.message.startsWith(number(checked));
        if (!ok) assert.fail(`the reader's message ${checked} is wrong (previous id ${previousId}): ${JSON.stringify(m).slice(0, 120)}`);
        previousId = m.id;
        checked++;
      }
      assert.equal(checked, sent, `the reader received ${checked} of ${sent} messages`);
      reader.forget();
      publisher.forget();
      if (slowSeenAt < 0 && server.output().includes('slow consumer')) {
        // The server gave up on the stalled client: read what it got, close frame included,
        // while the publishing goes on (the server no longer queues anything for it).
        slowSeenAt = sent;
        stalledRead = stalled.resume(15000);
      }
    }
    const elapsed = Date.now() - started;
    const rssAfter = rssBytes(pid);
    const growth = rssAfter - rssBefore;
    const mb = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MB`;
    console.log(`${sent} messages (${mb(sent * MESSAGE_CHARS)}) in ${elapsed} ms; slow consumer closed after ${slowSeenAt}; `
      + `RSS after the warm-up ${mb(rssBefore)}, at the end ${mb(rssAfter)}`);
    assert.ok(reader.isOpen && publisher.isOpen, 'the reader and the publisher are still connected');

    // The stalled client was closed as a slow consumer.
    assert.ok(slowSeenAt > 0, `the server logged "slow consumer" during the ${sent} messages:\n${server.output().slice(-2000)}`);
    const after = await healthz(server.port);
    assert.ok(after.slow_consumers_closed >= 1, `/healthz counts the slow consumer: ${JSON.stringify(after)}`);
    assert.equal(after.connections, 2, 'the slow consumer is no longer subscribed');
    const read = await stalledRead!;
    if (read.close) {
      assert.equal(read.close.code, 1008, `close code (reason ${JSON.stringify(read.close.reason)})`);
      assert.equal(read.close.reason, 'slow consumer');
    } else {
      assert.ok(read.endedWithoutClose, 'the connection ended');
    }
    assert.ok(read.textFrames < sent, `the stalled client got ${read.textFrames} of ${sent} messages before it was cut off`);
    console.log(`the stalled client read ${read.textFrames} frames, then ${read.close ? `close ${JSON.stringify(read.close)}` : 'the end of the connection'}`);

    assert.ok(MEASURED_BURSTS * BURST * MESSAGE_CHARS > RSS_GROWTH_LIMIT * 1.5, 'the volume is enough to exceed the bound if it were all kept');
    assert.ok(growth < RSS_GROWTH_LIMIT, `the server's RSS grew by ${mb(growth)} (from ${mb(rssBefore)} to ${mb(rssAfter)})`);
  });
});
