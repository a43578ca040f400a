// The fuzzer's own parts, in process: the seeded generator repeats itself, plans are reproducible
// from (seed, attacker, connection), frames come out as specified (lies included), the plateau
// rule tells a levelling curve from a leak, heap-diff counts a snapshot's objects; and the attack
// plans' bytes, fed to the sans-I/O codec with no socket at all, never make it throw anything but
// the ProtocolError it turns into a close code.
import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ConnectionState, WebSocketConnection, type ConnectionHandler } from '../src/server/connection.js';
import { FrameParser, type Frame } from '../src/server/frames.js';
import { diff, summarize } from '../src/fuzz/heap-diff.js';
import { ATTACKS, frame, invalidUtf8, mutatedFrame, planFor, type Plan } from '../src/fuzz/mutators.js';
import { judgePlateau, type RssSample } from '../src/fuzz/plateau.js';
import { Prng } from '../src/fuzz/prng.js';

const SETTINGS = { host: '127.0.0.1:8080', slowMs: 25_000 };

describe('Prng', () => {
  test('the same words give the same sequence; another seed or stream, another one', () => {
    const take = (rng: Prng): number[] => Array.from({ length: 8 }, () => rng.next());
    assert.deepEqual(take(new Prng(42, 1, 2)), take(new Prng(42, 1, 2)));
    assert.notDeepEqual(take(new Prng(42, 1, 2)), take(new Prng(43, 1, 2)));
    assert.notDeepEqual(take(new Prng(42, 1, 2)), take(new Prng(42, 2, 1)));
  });

  test('int, range and bytes stay within their bounds', () => {
    const rng = new Prng(7);
    for (let i = 0; i < 10_000; i++) {
      const n = rng.int(10);
      assert.ok(Number.isInteger(n) && n >= 0 && n < 10);
      const r = rng.range(-3, 3);
      assert.ok(r >= -3 && r <= 3);
      assert.ok(rng.size(1000) <= 1000);
    }
    assert.equal(rng.bytes(7).length, 7);
  });

  test('weighted: a zero weight is never chosen', () => {
    const rng = new Prng(1);
    for (let i = 0; i < 1000; i++) assert.notEqual(rng.weighted([1, 0, 1]), 1);
  });
});

describe('attack plans', () => {
  const bytesOf = (plan: Plan): string => plan.steps.map((s) => (s.do === 'write' ? s.bytes.toString('hex') : s.do)).join('|');

  test('a plan is a function of (seed, attacker, connection) alone', () => {
    for (let n = 0; n < 50; n++) {
      const a = planFor(99, 3, n, SETTINGS);
      const b = planFor(99, 3, n, SETTINGS);
      assert.equal(a.kind, b.kind);
      assert.equal(bytesOf(a), bytesOf(b));
      assert.equal(a.holdMs, b.holdMs);
    }
    assert.notEqual(bytesOf(planFor(99, 3, 0, SETTINGS)), bytesOf(planFor(100, 3, 0, SETTINGS)));
  });

  test('every kind of attack comes up', () => {
    const seen = new Set<string>();
    for (let n = 0; n < 5000 && seen.size < ATTACKS.length; n++) seen.add(planFor(1, 0, n, SETTINGS).kind);
    assert.deepEqual([...seen].sort(), [...ATTACKS].sort());
  });

  test('a slowloris plan trickles one byte per write, for at most slowMs', () => {
    for (let n = 0; ; n++) {
      const plan = planFor(5, 0, n, { ...SETTINGS, slowMs: 3000 });
      if (plan.kind !== 'slowloris') continue;
      const writes = plan.steps.filter((s) => s.do === 'write');
      assert.ok(writes.every((s) => s.do === 'write' && s.bytes.length === 1));
      const waited = plan.steps.reduce((sum, s) => sum + (s.do === 'wait' ? s.ms : 0), 0);
      assert.ok(waited <= 3000 + 1000, `trickles for ${waited} ms`);
      break;
    }
  });
});

describe('frame(): the bytes say exactly what the spec asks, lies included', () => {
  const parse = (bytes: Buffer): Frame[] => {
    const frames: Frame[] = [];
    new FrameParser({ expectMasked: true, onFrame: (f) => frames.push({ ...f, payload: Buffer.from(f.payload) }) }).push(bytes);
    return frames;
  };

  test('an honest frame parses back to its opcode, FIN and payload', () => {
    const rng = new Prng(3);
    for (const size of [0, 1, 125, 126, 65535, 65536]) {
      const payload = rng.bytes(size);
      const [parsed] = parse(frame(rng, { opcode: 0x2, payload, fin: size % 2 === 0 }));
      assert.equal(parsed!.opcode, 0x2);
      assert.equal(parsed!.fin, size % 2 === 0);
      assert.ok(parsed!.payload.equals(payload), `payload of ${size} bytes`);
    }
  });

  test('lies are written as asked: RSV bits, no mask, a longer or non-minimal length', () => {
    const rng = new Prng(4);
    const payload = Buffer.from('hi');
    assert.equal(frame(rng, { opcode: 1, payload, rsv: 4 })[0], 0x80 | 0x40 | 1);
    assert.equal(frame(rng, { opcode: 1, payload, masked: false })[1], 2);
    assert.equal(frame(rng, { opcode: 1, payload, announced: 100 })[1], 0x80 | 100);
    const nonMinimal = frame(rng, { opcode: 1, payload, lengthForm: 64 });
    assert.equal(nonMinimal[1], 0x80 | 127);
    assert.equal(nonMinimal.readBigUInt64BE(2), 2n);
  });

  test('invalidUtf8() is never valid UTF-8', () => {
    const rng = new Prng(5);
    for (let i = 0; i < 500; i++) {
      const bytes = invalidUtf8(rng);
      assert.equal(isUtf8(bytes), false, bytes.toString('hex'));
    }
  });
});

describe('the codec against every plan, with no socket', () => {
  /** A sans-I/O server connection whose handler only counts. */
  function connection(): { conn: WebSocketConnection; closed: () => number | null } {
    let closeCode: number | null = null;
    const handler: ConnectionHandler = {
      onWrite() {},
      onMessage() {},
      onClose(code) { closeCode = code; },
      onEndTransport() {},
    };
    const conn = new WebSocketConnection(handler, { maxMessageSize: 1024 * 1024, maxFragments: 1024 });
    conn.accept();
    return { conn, closed: () => closeCode };
  }

  test('3000 plans: only protocol errors, each closing with a code of §7.4', () => {
    const codes = new Map<number, number>();
    for (let n = 0; n < 3000; n++) {
      const plan = planFor(2024, 0, n, SETTINGS);
      if (plan.kind !== 'frames' && plan.kind !== 'fragments' && plan.kind !== 'chat') continue;
      const { conn, closed } = connection();
      let headEnded = false;
      for (const step of plan.steps) {
        if (step.do !== 'write') continue;
        let bytes = step.bytes;
        if (!headEnded) {
          // The codec starts after the handshake's head, as the transport feeds it.
          const end = bytes.indexOf('\r\n\r\n');
          if (end < 0) continue;
          headEnded = true;
          bytes = bytes.subarray(end + 4);
        }
        conn.receiveData(Buffer.from(bytes)); // throws if anything but a ProtocolError escapes
      }
      conn.receiveEof();
      assert.equal(conn.state, ConnectionState.CLOSED);
      const code = closed();
      assert.ok(code !== null, `plan ${n} (${plan.kind}) was closed`);
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
    // The plans reach every way of failing: protocol errors, bad UTF-8, too big, and clean closes.
    for (const code of [1000, 1002, 1006, 1007, 1009]) assert.ok((codes.get(code) ?? 0) > 0, `close code ${code} came up: ${[...codes]}`);
  });

  test('mutatedFrame() alone: 20,000 frames, one connection each, nothing but ProtocolErrors', () => {
    const rng = new Prng(77);
    for (let i = 0; i < 20_000; i++) {
      const { conn } = connection();
      conn.receiveData(mutatedFrame(rng));
      conn.receiveEof();
    }
  });
});

describe('judgePlateau', () => {
  const curve = (f: (s: number) => number): RssSample[] => Array.from({ length: 61 }, (_, s) => ({ t: s * 1000, kib: Math.round(f(s)) }));

  test('growth that levels off passes', () => {
    const levelling = curve((s) => 150_000 + 60_000 * (1 - Math.exp(-s / 10)));
    assert.equal(judgePlateau(levelling, 60_000, 10, 16 * 1024).plateau, true);
  });

  test('a steady climb (a leak) fails once it outgrows the allowance', () => {
    const leak = curve((s) => 150_000 + 3000 * s); // 3 MB/s
    const verdict = judgePlateau(leak, 60_000, 10, 16 * 1024);
    assert.equal(verdict.plateau, false);
    assert.equal(verdict.middleMaxKiB, 150_000 + 3000 * 39);
    assert.equal(verdict.lastMaxKiB, 150_000 + 3000 * 60);
  });

  test('without samples in both thirds there is no verdict', () => {
    assert.equal(judgePlateau([{ t: 0, kib: 1 }], 60_000, 10, 0).plateau, null);
  });
});

describe('heap-diff', () => {
  test('sums a snapshot\'s nodes by type and constructor, and ranks what grew', () => {
    const dir = mkdtempSync(join(tmpdir(), 'heap-diff-'));
    try {
      // Two tiny snapshots in V8's format: nodes are [type, name, id, self_size, edge_count].
      const meta = { node_fields: ['type', 'name', 'id', 'self_size', 'edge_count'], node_types: [['hidden', 'array', 'string', 'object', 'code', 'closure']] };
      const strings = ['Session', 'Buffer', 'onData', 'x'];
      const write = (name: string, nodes: number[]): string => {
        const path = join(dir, name);
        writeFileSync(path, JSON.stringify({ snapshot: { meta, node_count: nodes.length / 5 }, nodes, edges: [], strings }));
        return path;
      };
      const before = write('a.heapsnapshot', [3, 0, 1, 100, 0, 3, 1, 2, 50, 0, 2, 3, 3, 20, 0]);
      const after = write('b.heapsnapshot', [3, 0, 1, 100, 0, 3, 0, 5, 100, 0, 3, 0, 7, 100, 0, 3, 1, 2, 50, 0, 5, 2, 9, 32, 0, 2, 3, 3, 20, 0]);
      const a = summarize(before);
      assert.deepEqual(a.get('Session'), { count: 1, bytes: 100 });
      assert.deepEqual(a.get('(string)'), { count: 1, bytes: 20 });
      const rows = diff(a, summarize(after));
      assert.equal(rows[0]!.key, 'Session');
      assert.deepEqual([rows[0]!.before.count, rows[0]!.after.count], [1, 3]);
      assert.equal(rows[1]!.key, 'onData()');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
