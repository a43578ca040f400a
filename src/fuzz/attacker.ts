// The attackers: each carries out attack plans (mutators.ts) one connection after another, over
// raw node:net sockets, until the run's deadline, and counts what it did and what came back.
//
// One connection, start to finish:
//
//   connect ──▶ steps (write / wait / FIN / drop) ──▶ hold: read until the server closes or
//                                                     holdMs passes ──▶ destroy
//
// Everything the server writes is read (so it is never held back by our buffers) and looked at
// just enough to count it: the status of the first response, and after a 101 the server's frames,
// parsed with the project's own codec in client mode. The server's bytes are checked, not only
// counted: a frame that does not parse (the server must send valid, unmasked frames, §5.1) is a
// finding, reported by the run as a failure. Connection errors (resets, broken pipes) are the
// expected end of many attacks and are only counted.
//
// Every connection is bounded in time (`maxConnectionMs`), whatever its plan, and the run's end
// destroys whatever is still open: the fuzzer itself leaks nothing and always stops.
import net from 'node:net';
import { FrameParser, Opcode } from '../server/frames.js';
import { ProtocolError } from '../server/errors.js';
import { ATTACKS, planFor, type AttackKind, type Plan, type PlanSettings } from './mutators.js';

export interface AttackStats {
  connections: number;
  /** WebSocket frames sent, mutated or not. */
  frames: number;
  bytesSent: number;
  bytesReceived: number;
  byKind: Record<AttackKind, number>;
  /** Status of the first HTTP response on a connection ("none" when nothing came back). */
  statuses: Map<string, number>;
  /** Close codes the server sent in its Close frames. */
  closeCodes: Map<number, number>;
  /** Socket errors by code (ECONNRESET, EPIPE...). */
  errors: Map<string, number>;
  /** Connections refused (ECONNREFUSED): nothing was listening on the port any more. */
  refused: number;
  /** Bytes from the server that were not a valid frame stream: a server bug. */
  badServerFrames: string[];
}

export function emptyStats(): AttackStats {
  return {
    connections: 0, frames: 0, bytesSent: 0, bytesReceived: 0,
    byKind: Object.fromEntries(ATTACKS.map((k) => [k, 0])) as Record<AttackKind, number>,
    statuses: new Map(), closeCodes: new Map(), errors: new Map(), refused: 0, badServerFrames: [],
  };
}

const bump = <K>(map: Map<K, number>, key: K): void => { map.set(key, (map.get(key) ?? 0) + 1); };

export interface AttackSettings extends PlanSettings {
  port: number;
  seed: number;
  /** No connection lives longer than this, whatever its plan. */
  maxConnectionMs: number;
}

/**
 * Runs `attackers` attack loops until `deadline` (ms since the epoch); `stop()` ends them early.
 * Resolves once every connection is closed.
 */
export class AttackPool {
  readonly stats = emptyStats();
  private readonly open = new Set<net.Socket>();
  private stopped = false;
  private readonly loops: Promise<void>[] = [];

  constructor(private readonly settings: AttackSettings) {}

  start(attackers: number, deadline: number): void {
    for (let i = 0; i < attackers; i++) this.loops.push(this.loop(i, deadline));
  }

  /** Stops starting connections and destroys the open ones; resolves when all loops are done. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const socket of this.open) socket.destroy();
    await Promise.all(this.loops);
  }

  /** Resolves when every loop has finished (the deadline passed, or stop()). */
  done(): Promise<void> {
    return Promise.all(this.loops).then(() => undefined);
  }

  private async loop(attacker: number, deadline: number): Promise<void> {
    for (let n = 0; !this.stopped && Date.now() < deadline; n++) {
      const plan = planFor(this.settings.seed, attacker, n, this.settings);
      await this.attack(plan, deadline);
    }
  }

  /** One connection, carried out as planned. Never rejects. */
  private attack(plan: Plan, deadline: number): Promise<void> {
    const stats = this.stats;
    stats.connections++;
    stats.byKind[plan.kind]++;
    const socket = net.connect({ port: this.settings.port, host: '127.0.0.1' });
    this.open.add(socket);
    const watcher = new ResponseWatcher(stats);
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => watcher.push(chunk));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      const code = error.code ?? 'error';
      if (code === 'ECONNREFUSED') stats.refused++;
      bump(stats.errors, code);
    });
    // The hard bound on this connection, and the run's end, whichever comes first.
    const limit = Math.min(this.settings.maxConnectionMs, Math.max(0, deadline - Date.now()) + 1000);
    const guard = setTimeout(() => socket.destroy(), limit);

    const run = async (): Promise<void> => {
      const connected = await new Promise<boolean>((resolve) => {
        socket.once('connect', () => resolve(true));
        socket.once('close', () => resolve(false));
      });
      if (!connected) return;
      for (const step of plan.steps) {
        if (socket.destroyed || this.stopped) return;
        if (step.do === 'write') {
          if (!socket.writable) return;
          stats.frames += step.frames;
          stats.bytesSent += step.bytes.length;
          // Flow control: a server that stops reading (as it should, past its bounds) makes us wait.
          if (!socket.write(step.bytes)) await Promise.race([once(socket, 'drain'), closed]);
        } else if (step.do === 'wait') {
          await Promise.race([sleep(step.ms), closed]);
        } else if (step.do === 'end') {
          socket.end();
        } else {
          socket.destroy();
          return;
        }
      }
      await Promise.race([sleep(plan.holdMs), closed]);
    };
    return run().finally(() => {
      socket.destroy();
      return closed;
    }).then(() => {
      clearTimeout(guard);
      this.open.delete(socket);
      watcher.finish();
    });
  }
}

/**
 * Looks at what the server sent on one connection: the status line of its first response, and,
 * after a 101, its frames (parsed as a client must: unmasked, §5.1).
 */
class ResponseWatcher {
  private head = '';
  private status: string | null = null;
  private frames: FrameParser | null = null;

  constructor(private readonly stats: AttackStats) {}

  push(chunk: Buffer): void {
    this.stats.bytesReceived += chunk.length;
    if (this.frames !== null) return this.parse(chunk);
    if (this.status !== null) return; // a plain response: its body, or more responses
    this.head += chunk.toString('latin1');
    const lineEnd = this.head.indexOf('\r\n');
    if (lineEnd < 0) {
      if (this.head.length > 1024) this.status = 'garbled';
      return;
    }
    const match = /^HTTP\/1\.[01] (\d{3}) /.exec(this.head);
    this.status = match ? match[1]! : 'garbled';
    if (this.status !== '101') return;
    const headEnd = this.head.indexOf('\r\n\r\n');
    if (headEnd < 0) {
      // The 101's head spans reads: keep collecting it (a status is known, frames not yet).
      this.status = null;
      return;
    }
    this.frames = new FrameParser({
      expectMasked: false,
      onFrame: (frame) => {
        if (frame.opcode !== Opcode.CLOSE) return;
        bump(this.stats.closeCodes, frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1005);
      },
    });
    const rest = Buffer.from(this.head.slice(headEnd + 4), 'latin1');
    this.head = '';
    if (rest.length > 0) this.parse(rest);
  }

  private parse(chunk: Buffer): void {
    try {
      this.frames!.push(chunk);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      this.frames!.halt();
      if (this.stats.badServerFrames.length < 20) this.stats.badServerFrames.push(`${error.code}: ${error.message}`);
    }
  }

  finish(): void {
    bump(this.stats.statuses, this.status ?? (this.head.length > 0 ? 'garbled' : 'none'));
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function once(socket: net.Socket, event: string): Promise<void> {
  return new Promise((resolve) => socket.once(event, () => resolve()));
}
