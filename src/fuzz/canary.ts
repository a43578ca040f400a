// The canary: one well-behaved chat client that must keep being served while the attackers run.
//
// It joins the lobby on /chat (RFC 6455 §4.1 handshake by hand, the project's own codec in client
// mode: masked frames out, unmasked frames in), waits for the greeting, then every `intervalMs`
// sends a lobby message of its own, `{"sender":"canary","message":"canary <tag> <n>"}`, and
// waits for the broadcast to bring it back: that is a round trip through a worker, the primary's
// broadcast loop and back, the chat's whole path. It records each round trip's latency.
//
// It answers pings (the server's heartbeat would otherwise drop it) and sends one message at a
// time, so a slow round trip shows as latency, never as a queue of its own making.
//
// It fails, and says why, if: the handshake or the greeting takes longer than `timeoutMs`; a
// round trip takes longer than `timeoutMs`; the server closes it or the connection breaks. A
// well-behaved client has no reason to be closed while others misbehave.
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { FrameParser, Opcode, encodeClosePayload, encodeMaskedFrame, type Frame } from '../server/frames.js';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const GREETING = 'You are connected';

export interface CanaryOptions {
  port: number;
  /** Time between round trips (from the end of one to the start of the next). */
  intervalMs: number;
  /** The longest a handshake, greeting or round trip may take. */
  timeoutMs: number;
  /** Marks the canary's messages, so they cannot be confused with anyone else's. */
  tag: string;
}

export class Canary {
  /** Latency of each completed round trip, in ms, in order. */
  readonly latencies: number[] = [];
  /** Why the canary failed; null while it is fine. */
  failure: string | null = null;
  private socket: net.Socket | null = null;
  private parser: FrameParser | null = null;
  private phase: 'connecting' | 'greeting' | 'idle' | 'waiting' | 'stopped' = 'connecting';
  private phaseSince = 0;
  private sequence = 0;
  private pendingText = '';
  private fragments: Buffer[] = [];
  private ticker: NodeJS.Timeout | null = null;
  private readonly greeted: Promise<void>;
  private resolveGreeted!: () => void;

  constructor(private readonly options: CanaryOptions) {
    this.greeted = new Promise((resolve) => { this.resolveGreeted = resolve; });
  }

  /** Connects; resolves once the greeting arrived (or the canary failed: check `failure`). */
  start(): Promise<void> {
    this.phaseSince = performance.now();
    const key = randomBytes(16).toString('base64');
    const expectedAccept = createHash('sha1').update(key + GUID).digest('base64');
    const socket = net.connect({ port: this.options.port, host: '127.0.0.1' });
    this.socket = socket;
    socket.setNoDelay(true);
    let head = '';
    socket.on('connect', () => {
      socket.write(`GET /chat HTTP/1.1\r\nHost: 127.0.0.1:${this.options.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`
        + `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    });
    socket.on('data', (chunk: Buffer) => {
      if (this.parser !== null) return this.receive(chunk);
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      if (!head.startsWith('HTTP/1.1 101 ') || !head.includes(`\r\nSec-WebSocket-Accept: ${expectedAccept}\r\n`)) {
        return this.fail(`the canary's handshake was answered with ${JSON.stringify(head.slice(0, head.indexOf('\r\n')))}`);
      }
      this.parser = new FrameParser({ expectMasked: false, onFrame: (frame) => this.onFrame(frame) });
      this.phase = 'greeting';
      const rest = Buffer.from(head.slice(end + 4), 'latin1');
      if (rest.length > 0) this.receive(rest);
    });
    socket.on('error', (error) => this.fail(`the canary's connection failed: ${error.message}`));
    socket.on('close', () => this.fail('the server closed the canary\'s connection'));
    this.ticker = setInterval(() => this.tick(), Math.min(50, this.options.intervalMs));
    return this.greeted;
  }

  /** Ends the canary: a Close frame, then the socket. */
  stop(): void {
    if (this.phase === 'stopped') return;
    this.phase = 'stopped';
    if (this.ticker) clearInterval(this.ticker);
    this.resolveGreeted();
    const socket = this.socket;
    if (socket && !socket.destroyed) {
      socket.end(encodeMaskedFrame(Opcode.CLOSE, encodeClosePayload(1000)));
      setTimeout(() => socket.destroy(), 1000).unref();
    }
  }

  /** Latency percentiles of the round trips so far, in ms (null with none). */
  summary(): { roundTrips: number; p50: number | null; p99: number | null; max: number | null } {
    const sorted = [...this.latencies].sort((a, b) => a - b);
    const at = (q: number): number | null => sorted.length === 0 ? null : round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!);
    return { roundTrips: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted.length ? round(sorted[sorted.length - 1]!) : null };
  }

  private receive(chunk: Buffer): void {
    try {
      this.parser!.push(chunk);
    } catch (error) {
      this.fail(`the server sent the canary an invalid frame: ${(error as Error).message}`);
    }
  }

  private onFrame(frame: Frame): void {
    if (frame.opcode === Opcode.PING) {
      this.socket!.write(encodeMaskedFrame(Opcode.PONG, frame.payload));
      return;
    }
    if (frame.opcode === Opcode.CLOSE) {
      const code = frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1005;
      return this.fail(`the server closed the canary with ${code} ${JSON.stringify(frame.payload.subarray(2).toString())}`);
    }
    if (frame.opcode === Opcode.PONG) return;
    // Text (the chat sends nothing else); copy: the payload may be a view of a reused chunk.
    this.fragments.push(Buffer.from(frame.payload));
    if (!frame.fin) return;
    const text = Buffer.concat(this.fragments).toString('utf8');
    this.fragments = [];
    let message: { sender?: unknown; message?: unknown };
    try {
      message = JSON.parse(text) as typeof message;
    } catch {
      return this.fail(`the server sent the canary text that is not JSON: ${JSON.stringify(text.slice(0, 80))}`);
    }
    if (this.phase === 'greeting') {
      if (message.sender !== 'server' || message.message !== GREETING) return this.fail(`the canary's first message was not the greeting: ${text.slice(0, 80)}`);
      this.enter('idle');
      this.resolveGreeted();
    } else if (this.phase === 'waiting' && message.sender === 'canary' && message.message === this.pendingText) {
      this.latencies.push(performance.now() - this.phaseSince);
      this.enter('idle');
    }
  }

  private tick(): void {
    if (this.phase === 'stopped') return;
    const now = performance.now();
    const waited = now - this.phaseSince;
    if (this.phase === 'idle') {
      if (waited < this.options.intervalMs) return;
      this.pendingText = `canary ${this.options.tag} ${++this.sequence}`;
      this.enter('waiting');
      this.socket!.write(encodeMaskedFrame(Opcode.TEXT, Buffer.from(JSON.stringify({ sender: 'canary', message: this.pendingText }))));
      return;
    }
    if (waited > this.options.timeoutMs) {
      const what = this.phase === 'waiting' ? `round trip ${this.sequence}` : this.phase === 'greeting' ? 'greeting' : 'handshake';
      this.fail(`the canary's ${what} took more than ${this.options.timeoutMs} ms`);
    }
  }

  private enter(phase: 'idle' | 'waiting'): void {
    this.phase = phase;
    this.phaseSince = performance.now();
  }

  private fail(why: string): void {
    if (this.phase === 'stopped') return;
    this.failure ??= why;
    this.phase = 'stopped';
    if (this.ticker) clearInterval(this.ticker);
    this.socket?.destroy();
    this.resolveGreeted();
  }
}

const round = (ms: number): number => Math.round(ms * 10) / 10;
