// The load generator's WebSocket client, on node:net and the project's own codec (frames.ts) used
// from the client's side: it sends masked frames (encodeMaskedFrame) and parses the server's
// unmasked ones (FrameParser with expectMasked: false). No dependency, and every byte on the wire
// is the project's codec: the benchmark exercises it on both ends.
//
// A connection goes through the opening handshake of RFC 6455 §4.1 by hand:
//
//   client                                           server
//   GET /chat HTTP/1.1                       ──▶
//   Sec-WebSocket-Key: <16 random bytes, base64>
//                                            ◀──     HTTP/1.1 101 Switching Protocols
//                                                    Sec-WebSocket-Accept: base64(SHA-1(key + GUID))
//   (frames both ways from here)
//
// and the client checks the accept value, as §4.1 requires, so a server that answered some other
// request's handshake cannot pass. For the chat, a connection is *ready* when the server's first
// text message (the greeting) has arrived: by then the server has subscribed it to the broadcast,
// so from that moment every published message must reach it.
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { FrameParser, Opcode, encodeClosePayload, encodeMaskedFrame, type Frame } from '../server/frames.js';
import { monoUs } from './clock.js';
import { Histogram } from './histogram.js';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/**
 * Where every connection of this thread reads its bytes: one buffer, reused for every read.
 *
 * By default a socket allocates a fresh buffer for each read and pushes it through the Readable
 * stream machinery to a 'data' event. With 1000 subscribers that is one allocation and several
 * calls per socket per broadcast, a large part of what reading costs here. With `onread`, node
 * reads straight into a buffer we give it and calls us back with the byte count: no allocation,
 * no stream. (Each worker thread loads its own copy of this module, so each has its own buffer.)
 *
 * The catch: the next read, on any connection, overwrites the buffer. Whatever we parse must be
 * used before the callback returns, which is true of our handlers, but the FrameParser keeps a
 * reference to a chunk that ends in the middle of a frame, to finish the frame with the next
 * chunk. So each connection tracks where its frames end (FrameBoundaries below), and a chunk that
 * does not end on a frame boundary is copied before the parser sees it. Under load most reads end
 * on a boundary, because the server writes whole frames. (Measured on a 2-core machine at 200,000
 * deliveries/s: about a fifth less load generator CPU than with 'data' events.)
 */
const READ_BUFFER = Buffer.allocUnsafeSlow(64 * 1024);

/**
 * Follows the frame headers of the server's byte stream (RFC 6455 §5.2) just enough to tell
 * whether a chunk ends exactly where a frame ends. It reads only the lengths; FrameParser does
 * the real parsing and all the checking.
 */
export class FrameBoundaries {
  /** Payload bytes of the current frame that have not arrived yet. */
  private remaining = 0;
  /** A header split between chunks: its bytes so far (an unmasked header is at most 10 bytes). */
  private readonly header = Buffer.alloc(14);
  private headerBytes = 0;

  /** Consumes `chunk`; true if, after it, the stream stands at a frame boundary. */
  endsOnBoundary(chunk: Buffer): boolean {
    const n = chunk.length;
    let i = 0;
    for (;;) {
      if (this.remaining > 0) {
        const skip = Math.min(this.remaining, n - i);
        i += skip;
        this.remaining -= skip;
        if (this.remaining > 0) return false; // the chunk ended inside a payload
      }
      if (i === n) return this.headerBytes === 0;
      // Collect the header: 2 bytes, then 2 or 8 more for a 126/127 length, 4 more if masked.
      while (i < n && (this.headerBytes < 2 || this.headerBytes < this.headerLength())) this.header[this.headerBytes++] = chunk[i++]!;
      if (this.headerBytes < 2 || this.headerBytes < this.headerLength()) return false; // split header
      const length7 = this.header[1]! & 0x7f;
      this.remaining = length7 === 126 ? this.header.readUInt16BE(2)
        : length7 === 127 ? this.header.readUInt32BE(2) * 2 ** 32 + this.header.readUInt32BE(6)
          : length7;
      this.headerBytes = 0;
    }
  }

  private headerLength(): number {
    const length7 = this.header[1]! & 0x7f;
    return 2 + (length7 === 126 ? 2 : length7 === 127 ? 8 : 0) + (this.header[1]! & 0x80 ? 4 : 0);
  }
}

const END_OF_HEAD = Buffer.from('\r\n\r\n');
const MAX_HEAD = 16 * 1024;

export interface Target {
  host: string;
  port: number;
  /** Path and query, e.g. "/chat". */
  path: string;
}

export interface ClientHandlers {
  /** The greeting arrived: the connection is subscribed. `text` is the greeting. */
  onReady(client: BenchSocket, text: string): void;
  /**
   * A complete text message after the greeting. `payload` is often a view into the shared read
   * buffer, valid only during the call: read what you need, do not keep it.
   */
  onText(client: BenchSocket, payload: Buffer): void;
  /** Called once, when the TCP connection is gone; `error` is null for a clean close. */
  onClose(client: BenchSocket, error: string | null): void;
}

const enum State { CONNECTING, HANDSHAKE, AWAIT_GREETING, READY, CLOSED }

export class BenchSocket {
  readonly socket: net.Socket;
  /** Free for the owner: the subscriber threads store the connection's number here. */
  index: number;
  handlers: ClientHandlers;
  /**
   * When the chunk being parsed arrived (monotonic µs, clock.ts). Read once per chunk rather
   * than once per message: the messages of one chunk arrived together, and a clock read per
   * message would be measurable at 100,000 messages a second.
   */
  receivedAtUs = 0;
  /** The close code the server sent, if it sent a close frame. */
  closeCode: number | null = null;
  readonly startedAtUs = monoUs();
  readyAtUs = 0;
  private state = State.CONNECTING;
  private readonly key = randomBytes(16).toString('base64');
  private head: Buffer | null = null;
  private readonly parser: FrameParser;
  private readonly boundaries = new FrameBoundaries();
  /** A fragmented message being reassembled (the chat server does not fragment, but may). */
  private fragments: Buffer[] | null = null;
  private error: string | null = null;
  private closeSent = false;

  constructor(target: Target, handlers: ClientHandlers, index = 0, localAddress?: string) {
    this.index = index;
    this.handlers = handlers;
    // onFrame is bound once here, not per chunk. (The parser allocates a small Frame object per
    // message and a view of the payload; that is the codec's cost, and the only one we add to.)
    this.parser = new FrameParser({ expectMasked: false, onFrame: (frame) => this.onFrame(frame) });
    const socket = net.connect({
      host: target.host, port: target.port, localAddress, noDelay: true,
      // Reads land in READ_BUFFER (see above); `n` bytes of it are this read's.
      onread: { buffer: READ_BUFFER, callback: (n) => { this.onData(READ_BUFFER.subarray(0, n)); return true; } },
    });
    this.socket = socket;
    socket.on('connect', () => {
      this.state = State.HANDSHAKE;
      socket.write(
        `GET ${target.path} HTTP/1.1\r\nHost: ${target.host}:${target.port}\r\nUpgrade: websocket\r\n` +
        `Connection: Upgrade\r\nSec-WebSocket-Key: ${this.key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    // The first error names the cause (EMFILE, ECONNREFUSED, ...); 'close' always follows.
    socket.on('error', (error: NodeJS.ErrnoException) => { this.error ??= error.code ?? error.message; });
    socket.on('close', () => {
      const wasReady = this.state === State.READY;
      this.state = State.CLOSED;
      this.handlers.onClose(this, this.error ?? (wasReady || this.closeSent ? null : 'closed before ready'));
    });
  }

  get ready(): boolean {
    return this.state === State.READY;
  }

  /** Sends an already encoded (masked) frame; false when the socket's buffer is above its mark. */
  sendFrame(frame: Buffer): boolean {
    return this.socket.write(frame);
  }

  /** Starts the closing handshake (1000), and cuts the connection if the server does not end it. */
  close(): void {
    if (this.state === State.CLOSED) return;
    if (this.state === State.READY || this.state === State.AWAIT_GREETING) {
      if (!this.closeSent) {
        this.closeSent = true;
        this.socket.write(encodeMaskedFrame(Opcode.CLOSE, encodeClosePayload(1000)));
      }
      setTimeout(() => this.socket.destroy(), 2000).unref();
    } else {
      this.socket.destroy();
    }
  }

  /** Drops the connection at once, without a closing handshake. */
  destroy(reason?: string): void {
    if (reason) this.error ??= reason;
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.state === State.HANDSHAKE) {
      this.readHead(chunk);
      return;
    }
    if (this.state === State.CLOSED) return;
    this.receivedAtUs = monoUs();
    try {
      // A chunk the parser may keep (it ends inside a frame) must not be READ_BUFFER itself.
      this.parser.push(this.boundaries.endsOnBoundary(chunk) ? chunk : Buffer.from(chunk));
    } catch (error) {
      this.destroy(`protocol error: ${(error as Error).message}`);
    }
  }

  /** Collects the response head, checks it is a proper 101, then hands the rest to the parser. */
  private readHead(chunk: Buffer): void {
    const data = this.head ? Buffer.concat([this.head, chunk]) : chunk;
    const end = data.indexOf(END_OF_HEAD);
    if (end < 0) {
      if (data.length > MAX_HEAD) this.destroy('response head too large');
      else this.head = Buffer.from(data); // a copy: `data` may be READ_BUFFER
      return;
    }
    this.head = null;
    const head = data.toString('latin1', 0, end);
    const status = head.slice(0, head.indexOf('\r\n'));
    if (!/^HTTP\/1\.1 101 /.test(status)) {
      this.destroy(`handshake refused: ${status}`);
      return;
    }
    const accept = /\r\nsec-websocket-accept:[ \t]*([^\r\n]*)/i.exec(head)?.[1]?.trim();
    if (accept !== createHash('sha1').update(this.key + GUID).digest('base64')) {
      this.destroy('wrong Sec-WebSocket-Accept');
      return;
    }
    this.state = State.AWAIT_GREETING;
    // Frames may have come in the same chunk as the head (the greeting often does).
    if (data.length > end + 4) this.onData(data.subarray(end + 4));
  }

  private onFrame(frame: Frame): void {
    switch (frame.opcode) {
      case Opcode.TEXT:
        if (frame.fin) this.onMessage(frame.payload);
        else this.fragments = [Buffer.from(frame.payload)]; // copied: the chunk is reused
        return;
      case Opcode.CONTINUATION:
        if (!this.fragments) return;
        this.fragments.push(Buffer.from(frame.payload));
        if (frame.fin) {
          const whole = Buffer.concat(this.fragments);
          this.fragments = null;
          this.onMessage(whole);
        }
        return;
      case Opcode.PING:
        // The server's heartbeat (every 20 s by default): a client that does not answer is
        // dropped, so even idle connections must pong, echoing the ping's payload (§5.5.3).
        this.socket.write(encodeMaskedFrame(Opcode.PONG, frame.payload));
        return;
      case Opcode.CLOSE:
        this.closeCode = frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1005;
        // §5.5.1: answer with a close frame, then the server closes TCP first (§7.1.1).
        if (!this.closeSent) {
          this.closeSent = true;
          this.socket.write(encodeMaskedFrame(Opcode.CLOSE, frame.payload.subarray(0, Math.min(2, frame.payload.length))));
        }
        setTimeout(() => this.socket.destroy(), 2000).unref();
        return;
      default:
        return; // pongs and binary messages: nothing to do
    }
  }

  private onMessage(payload: Buffer): void {
    if (this.state === State.READY) {
      this.handlers.onText(this, payload);
      return;
    }
    if (this.state !== State.AWAIT_GREETING) return;
    this.state = State.READY;
    this.readyAtUs = this.receivedAtUs || monoUs();
    this.handlers.onReady(this, payload.toString('utf8'));
  }
}

// ---- opening many connections -------------------------------------------------------------------

export interface OpenOptions {
  target: Target;
  count: number;
  /** Source addresses to spread connections over (see sourceAddresses), or null for the default. */
  localAddresses: string[] | null;
  /** Handshakes in flight at once: the server's accept queue, not the client, should be the limit. */
  concurrency: number;
  timeoutMs: number;
  /** First value of BenchSocket.index. */
  firstIndex?: number;
  /** Handlers of each connection once ready. */
  onText: (client: BenchSocket, payload: Buffer) => void;
  onClose: (client: BenchSocket, error: string | null) => void;
  /** Progress, every 2 s. */
  onProgress?: (ready: number, failed: number) => void;
}

export interface OpenResult {
  clients: BenchSocket[];
  ready: number;
  failed: number;
  /** Failures by cause: error codes (EMFILE, ECONNRESET, ...) or handshake problems. */
  errors: Record<string, number>;
  elapsed_s: number;
  /** Ready connections per second over the whole opening. */
  handshakes_per_s: number;
  /** Time from connect() to the greeting, per connection. */
  handshake_latency: ReturnType<Histogram['summary']>;
  /** The first greeting, to show that the server speaks the expected protocol. */
  greeting: string | null;
}

/**
 * Opens `count` connections, at most `concurrency` at a time, and resolves when each is ready or
 * failed, or at the timeout (the ones still pending are then dropped and counted as failed).
 */
export function openMany(options: OpenOptions): Promise<OpenResult> {
  const { target, count, localAddresses, concurrency, timeoutMs, firstIndex = 0 } = options;
  const startedMs = performance.now();
  const clients: BenchSocket[] = [];
  const pending = new Set<BenchSocket>();
  const errors: Record<string, number> = {};
  const latency = new Histogram();
  let started = 0;
  let ready = 0;
  let failed = 0;
  let greeting: string | null = null;
  const live: ClientHandlers = {
    onReady: () => {},
    onText: options.onText,
    onClose: options.onClose,
  };
  return new Promise((resolve) => {
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      clearInterval(progress);
      for (const client of pending) {
        failed++;
        errors['timeout'] = (errors['timeout'] ?? 0) + 1;
        client.handlers = { onReady: () => {}, onText: () => {}, onClose: () => {} };
        client.destroy();
      }
      failed += count - started; // never started (timeout)
      const elapsed = (performance.now() - startedMs) / 1000;
      resolve({
        clients, ready, failed, errors,
        elapsed_s: Math.round(elapsed * 1000) / 1000,
        handshakes_per_s: Math.round(ready / elapsed),
        handshake_latency: latency.summary(),
        greeting,
      });
    };
    const opening: ClientHandlers = {
      onReady: (client, text) => {
        pending.delete(client);
        ready++;
        greeting ??= text;
        latency.record(client.readyAtUs - client.startedAtUs);
        client.handlers = live; // from now on, messages go to the caller
        clients.push(client);
        startMore();
      },
      onText: () => {},
      onClose: (client, error) => {
        pending.delete(client);
        failed++;
        const cause = error ?? 'closed';
        errors[cause] = (errors[cause] ?? 0) + 1;
        startMore();
      },
    };
    const startMore = (): void => {
      if (finished) return;
      while (pending.size < concurrency && started < count) {
        const i = started++;
        const local = localAddresses ? localAddresses[i % localAddresses.length] : undefined;
        pending.add(new BenchSocket(target, opening, firstIndex + i, local));
      }
      if (ready + failed === count) finish();
    };
    const timer = setTimeout(finish, timeoutMs);
    const progress = setInterval(() => options.onProgress?.(ready, failed), 2000);
    startMore();
  });
}

/**
 * openMany over several servers (the trees of one chat: main.ts --redis): `count` connections,
 * split as evenly as can be, in order (the first share to the first target...), each share
 * opened in parallel with its part of the concurrency. Indexes run on from `firstIndex` across
 * the shares, so a connection's index stays unique within its counter whatever server it is on.
 */
export async function openAcross(targets: readonly Target[], options: Omit<OpenOptions, 'target'>): Promise<OpenResult> {
  if (targets.length === 0) throw new Error('openAcross needs at least one target');
  const shares: Promise<OpenResult>[] = [];
  let first = options.firstIndex ?? 0;
  for (let t = 0; t < targets.length; t++) {
    const count = Math.floor(options.count / targets.length) + (t < options.count % targets.length ? 1 : 0);
    if (count === 0) continue;
    shares.push(openMany({ ...options, target: targets[t]!, count, firstIndex: first, concurrency: Math.ceil(options.concurrency / targets.length) }));
    first += count;
  }
  const results = await Promise.all(shares);
  if (results.length === 1) return results[0]!;
  return { ...mergeOpenResults(results), clients: results.flatMap((r) => r.clients) };
}

export function emptyOpen(): Omit<OpenResult, 'clients'> {
  return { ready: 0, failed: 0, errors: {}, elapsed_s: 0, handshakes_per_s: 0, handshake_latency: new Histogram().summary(), greeting: null };
}

/** Connection results of several threads, or several servers, as one (they opened in parallel). */
export function mergeOpenResults(parts: Omit<OpenResult, 'clients'>[]): Omit<OpenResult, 'clients'> {
  const merged = emptyOpen();
  for (const part of parts) {
    merged.ready += part.ready;
    merged.failed += part.failed;
    for (const [k, v] of Object.entries(part.errors)) merged.errors[k] = (merged.errors[k] ?? 0) + v;
    merged.elapsed_s = Math.max(merged.elapsed_s, part.elapsed_s);
    merged.greeting ??= part.greeting;
  }
  merged.handshakes_per_s = merged.elapsed_s ? Math.round(merged.ready / merged.elapsed_s) : 0;
  // Percentiles do not add up across threads; keep the slowest thread's, which bounds the rest.
  merged.handshake_latency = parts.reduce((worst, p) => ((p.handshake_latency.p99_ms ?? 0) > (worst.p99_ms ?? 0) ? p.handshake_latency : worst), merged.handshake_latency);
  return merged;
}

/**
 * Source addresses for many connections to a loopback server. A TCP connection is identified by
 * (source address, source port, destination address, destination port); with one source address,
 * the ~28,000 ephemeral ports (/proc/sys/net/ipv4/ip_local_port_range) bound the connections to
 * one server port, and closed connections keep their port a minute in TIME_WAIT. Every 127.x.y.z
 * address is loopback on Linux, so spreading over 127.0.0.1-4 gives four times the ports.
 */
export function sourceAddresses(host: string, connections: number): string[] | null {
  if (connections <= 2000 || !host.startsWith('127.') || process.platform !== 'linux') return null;
  return ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4'];
}
