// Tests for src/server/deflate-codec.ts: permessage-deflate's compression (RFC 7692 §7.2), with the
// RFC's §7.2.3 examples as hex fixtures, the size limit on inflated bytes (a "bomb" stops at the
// limit), invalid data, the client's window for context takeover, the threshold under which
// messages go uncompressed, and one compressed frame shared by every connection of a window size.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { constants, deflateRawSync } from 'node:zlib';
import { COMPRESSION_THRESHOLD, PerMessageDeflate, compressPayload, compressedFrame, inflatePayload, sharedTextFrame } from '../src/server/deflate-codec.js';
import { ProtocolError, type ErrorCode } from '../src/server/errors.js';
import { FrameParser, Opcode, type Frame } from '../src/server/frames.js';
import type { DeflateParameters } from '../src/server/permessage-deflate.js';
import { hex, pattern } from './helpers/bytes.js';

function assertProtocolError(fn: () => unknown, code: ErrorCode, closeCode: number, message?: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ProtocolError, `expected a ProtocolError, got ${String(error)}`);
    assert.equal(error.code, code);
    assert.equal(error.closeCode, closeCode);
    if (message) assert.match(error.message, message);
    return true;
  });
}

/** `n` bytes without repeats for deflate to find (a fixed pseudo-random sequence). */
function noise(n: number): Buffer {
  const out = Buffer.alloc(n);
  let x = 0x2545f491;
  for (let i = 0; i < n; i++) { x = (x * 1103515245 + 12345) >>> 0; out[i] = x >>> 24; }
  return out;
}

/** Splits `bytes` at `cuts`, as frames (or fragments) would carry it. */
function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const parts: Buffer[] = [];
  let start = 0;
  for (const cut of [...cuts, bytes.length]) {
    parts.push(bytes.subarray(start, cut));
    start = cut;
  }
  return parts;
}

const deflate = (parameters: Partial<DeflateParameters> = {}): PerMessageDeflate =>
  new PerMessageDeflate({ parameters: { serverMaxWindowBits: 15, clientMaxWindowBits: 15, clientNoContextTakeover: false, ...parameters }, response: '' });

/** Parses one server frame (unmasked), to look at what we send. */
function parseServerFrame(bytes: Buffer): Frame {
  const frames: Frame[] = [];
  new FrameParser({ expectMasked: false, rsv1Allowed: true, onFrame: (f) => frames.push({ ...f, payload: Buffer.from(f.payload) }) }).push(Buffer.from(bytes));
  assert.equal(frames.length, 1);
  return frames[0]!;
}

// ---------------------------------------------------------------------------------------------
// Sending (§7.2.1).

test('compressPayload: "Hello" is f2 48 cd c9 c9 07 00 (§7.2.3.1), the 00 00 ff ff tail removed', () => {
  assert.equal(compressPayload(Buffer.from('Hello'), 15).toString('hex'), hex('f2 48 cd c9 c9 07 00').toString('hex'));
  assert.equal(compressPayload('Hello', 15).toString('hex'), 'f248cdc9c90700', 'a string is compressed as its UTF-8');
});

test('compressedFrame: the §7.2.3.1 frame, RSV1 and FIN set: c1 07 f2 48 cd c9 c9 07 00', () => {
  assert.equal(compressedFrame(Opcode.TEXT, 'Hello', 15).toString('hex'), hex('c1 07 f2 48 cd c9 c9 07 00').toString('hex'));
  assert.equal(compressedFrame(Opcode.BINARY, Buffer.from('Hello'), 15).toString('hex'), hex('c2 07 f2 48 cd c9 c9 07 00').toString('hex'));
});

test('compressPayload: an empty message compresses to one byte, 00 (§7.2.3.6)', () => {
  assert.equal(compressPayload(Buffer.alloc(0), 15).toString('hex'), '00');
});

test('compressPayload then inflatePayload: the same bytes, for every window size and several sizes', () => {
  for (const windowBits of [9, 10, 12, 15]) {
    for (const size of [0, 1, 127, 128, 1000, 70_000]) {
      const data = Buffer.from(pattern(size).map((b, i) => (i % 7 === 0 ? b : 0x61)));
      const compressed = compressPayload(data, windowBits);
      const output = inflatePayload([compressed], 1 << 20, windowBits);
      assert.ok(output.equals(data), `windowBits ${windowBits}, ${size} bytes`);
    }
  }
});

test('compressPayload: server_max_window_bits is honoured: a 9-bit compression never looks further back than 512 bytes', () => {
  // A 2000-byte block of noise, twice: with a 32 KiB window the repeat is one back-reference 2000
  // bytes back; a compressor limited to a 512-byte window (what a client with
  // server_max_window_bits=9 can follow) cannot see it, and stores the block twice.
  const block = noise(2000);
  const data = Buffer.concat([block, block]);
  const wide = compressPayload(data, 15);
  const narrow = compressPayload(data, 9);
  assert.ok(wide.length < 2100, `15 bits: ${wide.length} bytes`);
  assert.ok(narrow.length > 4000, `9 bits: ${narrow.length} bytes`);
  assert.ok(inflatePayload([narrow], 1 << 20, 9).equals(data));
});

// ---------------------------------------------------------------------------------------------
// Receiving (§7.2.2): the §7.2.3 examples, whole and split anywhere.

const inflateCases: { name: string; payload: string; text: string }[] = [
  { name: '"Hello", one block (§7.2.3.1)', payload: 'f2 48 cd c9 c9 07 00', text: 'Hello' },
  { name: 'a block with no compression (§7.2.3.3)', payload: '00 05 00 fa ff 48 65 6c 6c 6f 00', text: 'Hello' },
  { name: 'a block with BFINAL set, then the padding octet (§7.2.3.4)', payload: 'f3 48 cd c9 c9 07 00 00', text: 'Hello' },
  { name: 'a block with BFINAL set, without the padding octet', payload: 'f3 48 cd c9 c9 07 00', text: 'Hello' },
  { name: 'two blocks: "He", flushed, then "llo" (§7.2.3.5)', payload: 'f2 48 05 00 00 00 ff ff ca c9 c9 07 00', text: 'Hello' },
  { name: 'an empty message: an empty stored block (§7.2.3.6)', payload: '00', text: '' },
  { name: 'an empty message: an empty fixed-Huffman block', payload: '02 00', text: '' },
  { name: 'no payload at all', payload: '', text: '' },
];

for (const c of inflateCases) {
  test(`inflatePayload: ${c.name}`, () => {
    const payload = hex(c.payload);
    for (let cut = 0; cut <= payload.length; cut++) {
      // Split in two anywhere (fragments), and empty parts too.
      assert.equal(inflatePayload(split(payload, [cut]), 1024, 15).toString(), c.text, `split at ${cut}`);
    }
  });
}

test('inflatePayload: context takeover: "Hello" again is f2 00 11 00 00 with the first as the window (§7.2.3.2)', () => {
  assert.equal(inflatePayload([hex('f2 00 11 00 00')], 1024, 15, Buffer.from('Hello')).toString(), 'Hello');
  // Without the window, the back-reference points before the start: invalid data.
  assertProtocolError(() => inflatePayload([hex('f2 00 11 00 00')], 1024, 15), 'WS_ERR_INVALID_COMPRESSED_DATA', 1007, /invalid distance too far back/);
});

test('inflatePayload: data that is not DEFLATE closes with 1007, naming zlib\'s complaint', () => {
  assertProtocolError(() => inflatePayload([hex('ff ff ff ff')], 1024, 15), 'WS_ERR_INVALID_COMPRESSED_DATA', 1007, /^invalid compressed data: invalid block type$/);
  // A stored block whose NLEN is not the complement of LEN.
  assertProtocolError(() => inflatePayload([hex('00 05 00 00 00 48 65 6c 6c 6f')], 1024, 15), 'WS_ERR_INVALID_COMPRESSED_DATA', 1007, /invalid stored block lengths/);
});

// ---------------------------------------------------------------------------------------------
// The limit applies to the inflated bytes.

test('inflatePayload: exactly maxSize inflated bytes pass, one more closes with 1009', () => {
  const data = Buffer.alloc(5000, 0x61);
  assert.equal(inflatePayload([compressPayload(data, 15)], 5000, 15).length, 5000);
  assertProtocolError(() => inflatePayload([compressPayload(Buffer.alloc(5001, 0x61), 15)], 5000, 15), 'WS_ERR_MESSAGE_TOO_BIG', 1009, /^compressed message inflates to more than the 5000-byte limit$/);
});

test('inflatePayload: a 20 MiB bomb stops at the limit: rejecting it costs a small fraction of inflating it', () => {
  const bomb = compressPayload(Buffer.alloc(20 * 1024 * 1024, 0x61), 15);
  assert.ok(bomb.length < 32 * 1024, `20 MiB of one byte is ${bomb.length} bytes compressed`);
  // The baseline: inflating all of it (the limit above its size), in this process, now.
  const fullStart = process.cpuUsage();
  assert.equal(inflatePayload([bomb], 21 * 1024 * 1024, 15).length, 20 * 1024 * 1024);
  const full = process.cpuUsage(fullStart);
  const runs = 5;
  const stoppedStart = process.cpuUsage();
  for (let i = 0; i < runs; i++) assertProtocolError(() => inflatePayload([bomb], 64 * 1024, 15), 'WS_ERR_MESSAGE_TOO_BIG', 1009);
  const stopped = process.cpuUsage(stoppedStart);
  const fullMicros = full.user + full.system;
  const stoppedMicros = (stopped.user + stopped.system) / runs;
  // 64 KiB of 20 MiB is 1/320 of the work; a tenth leaves room for the fixed costs and noise.
  assert.ok(stoppedMicros * 10 < fullMicros, `rejecting took ${stoppedMicros} µs of CPU, inflating all of it ${fullMicros} µs`);
});

// ---------------------------------------------------------------------------------------------
// PerMessageDeflate: one connection's state.

test('PerMessageDeflate.inflate: context takeover across messages (§7.2.3.2)', () => {
  const pmd = deflate();
  assert.equal(pmd.inflate([hex('f2 48 cd c9 c9 07 00')], 1024).toString(), 'Hello');
  assert.equal(pmd.inflate([hex('f2 00 11 00 00')], 1024).toString(), 'Hello');
  assert.equal(pmd.inflate([hex('f2 00 11 00 00')], 1024).toString(), 'Hello', 'the window slides on');
});

test('PerMessageDeflate.inflate: with client_no_context_takeover nothing is kept between messages', () => {
  const pmd = deflate({ clientNoContextTakeover: true });
  assert.equal(pmd.inflate([hex('f2 48 cd c9 c9 07 00')], 1024).toString(), 'Hello');
  assertProtocolError(() => pmd.inflate([hex('f2 00 11 00 00')], 1024), 'WS_ERR_INVALID_COMPRESSED_DATA', 1007);
});

test('PerMessageDeflate.inflate: a message longer than the window keeps only its last 2^bits bytes', () => {
  // 9-bit window: 512 bytes. The first message is 3000 bytes; the second copies its last 100.
  const pmd = deflate({ clientMaxWindowBits: 9 });
  const first = noise(3000);
  assert.ok(pmd.inflate([compressPayload(first, 9)], 1 << 20).equals(first));
  // What a client keeping its window sends for `first`'s last 100 bytes: one back-reference.
  const dictionary = first.subarray(-512);
  const second = first.subarray(-100);
  const compressed = compressWithWindow(second, dictionary, 9);
  assert.ok(pmd.inflate([compressed], 1 << 20).equals(second));
});

test('PerMessageDeflate.inflate: a failed message (too big) does not move the window', () => {
  const pmd = deflate();
  assert.equal(pmd.inflate([hex('f2 48 cd c9 c9 07 00')], 1024).toString(), 'Hello');
  assertProtocolError(() => pmd.inflate([compressPayload(Buffer.alloc(2000, 0x61), 15)], 1024), 'WS_ERR_MESSAGE_TOO_BIG', 1009);
});

test(`PerMessageDeflate.frame: under ${COMPRESSION_THRESHOLD} bytes sent uncompressed (null), from there compressed`, () => {
  const pmd = deflate();
  assert.equal(pmd.frame(Opcode.BINARY, Buffer.alloc(COMPRESSION_THRESHOLD - 1, 0x61)), null);
  const frame = parseServerFrame(pmd.frame(Opcode.BINARY, Buffer.alloc(COMPRESSION_THRESHOLD, 0x61))!);
  assert.deepEqual({ fin: frame.fin, rsv1: frame.rsv1, opcode: frame.opcode }, { fin: true, rsv1: true, opcode: Opcode.BINARY });
  assert.ok(inflatePayload([frame.payload], 1024, 15).equals(Buffer.alloc(COMPRESSION_THRESHOLD, 0x61)));
});

test('PerMessageDeflate.textFrame: the threshold counts UTF-8 bytes, not characters', () => {
  const pmd = deflate();
  assert.equal(pmd.textFrame('é'.repeat(COMPRESSION_THRESHOLD / 2 - 1)), null, `${COMPRESSION_THRESHOLD - 2} bytes`);
  const text = '€'.repeat(Math.ceil(COMPRESSION_THRESHOLD / 3)); // fewer characters than the threshold
  assert.ok(text.length < COMPRESSION_THRESHOLD);
  const frame = parseServerFrame(pmd.textFrame(text)!);
  assert.equal(frame.rsv1, true);
  assert.equal(inflatePayload([frame.payload], 1024, 15).toString(), text);
});

test('PerMessageDeflate.textFrame: one compressed frame shared by every connection with the same window', () => {
  const text = JSON.stringify({ sender: 'alice', message: 'a broadcast to many subscribers '.repeat(8) });
  const a = deflate().textFrame(text);
  const b = deflate({ clientNoContextTakeover: true, clientMaxWindowBits: 10 }).textFrame(text);
  assert.ok(a !== null && a === b, 'the very same Buffer: compressed once per process');
  assert.equal(sharedTextFrame(text, 15), a);
  const narrow = deflate({ serverMaxWindowBits: 10 }).textFrame(text)!;
  assert.notEqual(narrow, a, 'another window size compresses on its own');
  assert.equal(deflate({ serverMaxWindowBits: 10 }).textFrame(text), narrow);
  for (const [frame, bits] of [[a, 15], [narrow, 10]] as const) {
    const parsed = parseServerFrame(frame);
    assert.deepEqual({ fin: parsed.fin, rsv1: parsed.rsv1, opcode: parsed.opcode }, { fin: true, rsv1: true, opcode: Opcode.TEXT });
    assert.equal(inflatePayload([parsed.payload], 1 << 20, bits).toString(), text);
  }
});

/**
 * What a compressor keeping `window` from earlier messages can send for `data`: zlib compresses
 * against a preset dictionary exactly as against its own earlier input.
 */
function compressWithWindow(data: Buffer, window: Buffer, windowBits: number): Buffer {
  return deflateRawSync(data, { windowBits, dictionary: window, finishFlush: constants.Z_SYNC_FLUSH }).subarray(0, -4);
}
