// Integration test of the chat's slow-consumer protection, with real sockets:
// a raw node:net client completes the WebSocket handshake and then stops reading, while a
// publisher sends chat messages of ~4 KB in paced bursts and a normal client reads them all.
// The stalled subscriber's bounded queue overflows: the server closes it with 1008 "slow
// consumer" (seen on the wire once the client reads again, and counted by /healthz), drops what
// was queued for it instead of sending it, and the normal client still receives every message in
// order, during the overflow and after it.
//
// No figure of memory or time is asserted here (they depend on the machine; the README's
// benchmark is where figures live): that memory stays bounded shows as behaviour instead, in
// that the stalled client is cut off and the messages queued for it are never sent.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { ChatClient, closeAll, healthz, within } from './helpers/chat-client.js';
import { startServer, type RunningServer } from './helpers/server.js';

const MESSAGE_CHARS = 4000; // under the default CHAT_MAX_MESSAGE_LENGTH of 4096
const QUEUE_MAX_MESSAGES = 200;
const BURST = 100; // messages in flight at once: 400 KB, under the queue's bounds (200 messages, 1 MiB)
/**
 * Bursts at most before the stalled client must have been closed. The kernel's socket buffers
 * take the first few MB (on loopback, up to the tcp_rmem and tcp_wmem maxima, 6 and 4 MB by
 * default), the queue the next 200 messages: ~13 bursts here. 400 bursts are 160 MB.
 */
const MAX_BURSTS = 400;
/** Bursts after the close, to show that the others go on receiving everything. */
const BURSTS_AFTER_CLOSE = 30;

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

  test('a client that stops reading is closed with 1008 and its queued messages dropped; the others get everything', async () => {
    server = await startServer({
      args: ['--workers', '1'],
      env: { CHAT_QUEUE_MAX_MESSAGES: String(QUEUE_MAX_MESSAGES), CHAT_QUEUE_MAX_BYTES: String(1024 * 1024), CHAT_HISTORY_SIZE: '0' },
    });
    assert.equal((await healthz(server.port)).pid, server.proc.pid, 'one process serves');

    const reader = await ChatClient.join(server.wsUrl, 'reader');
    const publisher = await ChatClient.join(server.wsUrl, 'publisher');
    clients.push(reader, publisher);
    const stalledClient = await StalledClient.open(server.port);
    stalled = stalledClient;
    const health = await healthz(server.port);
    assert.equal(health.connections, 3, 'the stalled client is subscribed too');
    assert.equal(health.slow_consumers_closed, 0);

    const padding = 'x'.repeat(MESSAGE_CHARS - 16);
    const number = (n: number): string => `${String(n).padStart(8, '0')} `;
    let sent = 0;
    let checked = 0; // messages the reader received and that were checked
    let previousId: number | undefined;
    // The moment the server logs the slow consumer (before it sends the close frame), the stalled
    // client reads again: the close frame, queued behind what the socket holds, then gets through
    // well within the server's 5 s closing timeout. `sentAtClose` is how many messages had been
    // sent by then: everything published for the stalled client came from these.
    let sentAtClose = -1;
    let stalledRead: Promise<RawRead> | undefined;
    const watchLog = (): void => {
      if (sentAtClose >= 0 || !server!.output().includes('slow consumer')) return;
      sentAtClose = sent;
      stalledRead = stalledClient.resume(15000);
    };
    server.proc.stdout!.on('data', watchLog);
    server.proc.stderr!.on('data', watchLog);
    reader.forget(); // the greeting
    const started = Date.now();
    let burst = 0;
    for (; burst < MAX_BURSTS; burst++) {
      if (sentAtClose >= 0 && sent >= sentAtClose + BURSTS_AFTER_CLOSE * BURST) break;
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
    }
    server.proc.stdout!.off('data', watchLog);
    server.proc.stderr!.off('data', watchLog);
    console.log(`${sent} messages in ${burst} bursts, ${Date.now() - started} ms; the slow consumer was closed after ${sentAtClose} had been sent`);
    assert.ok(sentAtClose >= 0, `the server logged "slow consumer" within ${sent} messages:\n${server.output().slice(-2000)}`);
    assert.equal(sent, sentAtClose + BURSTS_AFTER_CLOSE * BURST, 'the publishing went on after the close');
    assert.ok(reader.isOpen && publisher.isOpen, 'the reader and the publisher are still connected');
    assert.equal(reader.closeInfo, null);

    const afterClose = await healthz(server.port);
    assert.equal(afterClose.slow_consumers_closed, 1, `/healthz counts the slow consumer: ${JSON.stringify(afterClose)}`);
    assert.equal(afterClose.connections, 2, 'the slow consumer is no longer subscribed');

    const read = await stalledRead!;
    console.log(`the stalled client read ${read.textFrames} frames, then ${read.close ? `close ${JSON.stringify(read.close)}` : 'the end of the connection'}`);
    assert.deepEqual(read.close, { code: 1008, reason: 'slow consumer' }, 'the stalled client gets a close frame, 1008 "slow consumer"');
    assert.equal(read.endedWithoutClose, false);
    // What was in its queue when it overflowed (200 messages, and the one that did not fit) was
    // dropped, not sent: so it received at least 201 fewer than had been sent by the close.
    assert.ok(read.textFrames <= sentAtClose - QUEUE_MAX_MESSAGES - 1,
      `the stalled client received ${read.textFrames} messages of the ${sentAtClose} sent before its close`);
  });
});
