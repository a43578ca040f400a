// Tests for src/server/frames.ts: the RFC 6455 §5 frame parser (FrameParser), the encoders
// (encodeFrame, encodeTextFrame, encodeMaskedFrame, encodeClosePayload) and unmask().
//
// Fixtures are hex strings, most of them straight from RFC 6455 §5.7. The same table runs through
// the parser (whole, split at every point, byte by byte) and through the encoder, which must
// produce exactly the fixture's bytes. Every protocol error is checked by its stable `code` and
// its `closeCode`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameParser, Opcode, encodeClosePayload, encodeFrame, encodeMaskedFrame, encodeTextFrame, unmask, writeHeader, type Frame } from '../src/server/frames.js';
import { ProtocolError, type ErrorCode } from '../src/server/errors.js';
import { hex, pattern } from './helpers/bytes.js';

/** `hex('81 05 48656c6c6f')`: whitespace is ignored. */


interface Parsed { fin: boolean; opcode: number; payload: string }

/**
 * Parses `bytes` fed as the given chunks (cut at the `cuts` offsets). The input is copied first:
 * the parser unmasks payloads in place, so a fixture must never be fed twice.
 */
function parse(bytes: Buffer, expectMasked: boolean, cuts: number[] = []): Parsed[] {
  const input = Buffer.from(bytes);
  const frames: Parsed[] = [];
  const parser = new FrameParser({
    expectMasked,
    onFrame: (f: Frame) => frames.push({ fin: f.fin, opcode: f.opcode, payload: f.payload.toString('hex') }),
  });
  let start = 0;
  for (const cut of [...cuts, input.length]) {
    parser.push(input.subarray(start, cut));
    start = cut;
  }
  return frames;
}

function byteByByte(length: number): number[] {
  return Array.from({ length: Math.max(0, length - 1) }, (_, i) => i + 1);
}

/** Asserts `fn` throws a ProtocolError with this code and close code. */
function assertProtocolError(fn: () => unknown, code: ErrorCode, closeCode = 1002): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ProtocolError, `expected a ProtocolError, got ${String(error)}`);
    assert.equal(error.code, code);
    assert.equal(error.closeCode, closeCode);
    return true;
  });
}

// ---------------------------------------------------------------------------------------------
// RFC 6455 §5.7 examples and friends, through the parser.

interface ParseCase {
  name: string;
  bytes: Buffer;
  expectMasked: boolean;
  frames: Parsed[];
}

const HELLO = '48656c6c6f';

const parseCases: ParseCase[] = [
  {
    name: '§5.7 single-frame unmasked text "Hello"',
    bytes: hex('81 05 48656c6c6f'),
    expectMasked: false,
    frames: [{ fin: true, opcode: Opcode.TEXT, payload: HELLO }],
  },
  {
    name: '§5.7 single-frame masked text "Hello"',
    bytes: hex('81 85 37fa213d 7f9f4d5158'),
    expectMasked: true,
    frames: [{ fin: true, opcode: Opcode.TEXT, payload: HELLO }],
  },
  {
    name: '§5.7 fragmented unmasked text "Hel" + "lo"',
    bytes: hex('01 03 48656c  80 02 6c6f'),
    expectMasked: false,
    frames: [
      { fin: false, opcode: Opcode.TEXT, payload: '48656c' },
      { fin: true, opcode: Opcode.CONTINUATION, payload: '6c6f' },
    ],
  },
  {
    name: '§5.7 unmasked ping "Hello"',
    bytes: hex('89 05 48656c6c6f'),
    expectMasked: false,
    frames: [{ fin: true, opcode: Opcode.PING, payload: HELLO }],
  },
  {
    name: '§5.7 masked pong "Hello"',
    bytes: hex('8a 85 37fa213d 7f9f4d5158'),
    expectMasked: true,
    frames: [{ fin: true, opcode: Opcode.PONG, payload: HELLO }],
  },
  {
    name: '§5.7 256-byte unmasked binary (16-bit length)',
    bytes: Buffer.concat([hex('82 7E 0100'), pattern(256)]),
    expectMasked: false,
    frames: [{ fin: true, opcode: Opcode.BINARY, payload: pattern(256).toString('hex') }],
  },
  {
    name: '§5.7 64 KiB unmasked binary (64-bit length)',
    bytes: Buffer.concat([hex('82 7F 0000000000010000'), pattern(65536)]),
    expectMasked: false,
    frames: [{ fin: true, opcode: Opcode.BINARY, payload: pattern(65536).toString('hex') }],
  },
  {
    name: 'empty unmasked text',
    bytes: hex('81 00'),
    expectMasked: false,
    frames: [{ fin: true, opcode: Opcode.TEXT, payload: '' }],
  },
  {
    name: 'empty masked close (the key is present even with no payload)',
    bytes: hex('88 80 11223344'),
    expectMasked: true,
    frames: [{ fin: true, opcode: Opcode.CLOSE, payload: '' }],
  },
  {
    name: 'masked close 1000 "bye"',
    // 03e8 627965 XOR 01020304 repeating
    bytes: hex('88 85 01020304 02ea617d 64'),
    expectMasked: true,
    frames: [{ fin: true, opcode: Opcode.CLOSE, payload: '03e8627965' }],
  },
  {
    name: 'control frame of exactly 125 bytes',
    bytes: Buffer.concat([hex('89 7D'), pattern(125)]),
    expectMasked: false,
    frames: [{ fin: true, opcode: Opcode.PING, payload: pattern(125).toString('hex') }],
  },
  {
    name: 'many frames in one chunk: text, ping, fragmented binary, pong, close',
    bytes: hex('81 02 6869  89 01 70  02 01 aa  00 01 bb  80 01 cc  8a 00  88 02 03e8'),
    expectMasked: false,
    frames: [
      { fin: true, opcode: Opcode.TEXT, payload: '6869' },
      { fin: true, opcode: Opcode.PING, payload: '70' },
      { fin: false, opcode: Opcode.BINARY, payload: 'aa' },
      { fin: false, opcode: Opcode.CONTINUATION, payload: 'bb' },
      { fin: true, opcode: Opcode.CONTINUATION, payload: 'cc' },
      { fin: true, opcode: Opcode.PONG, payload: '' },
      { fin: true, opcode: Opcode.CLOSE, payload: '03e8' },
    ],
  },
];

for (const c of parseCases) {
  test(`parse: ${c.name} (whole)`, () => {
    assert.deepEqual(parse(c.bytes, c.expectMasked), c.frames);
  });

  test(`parse: ${c.name} (byte by byte)`, () => {
    assert.deepEqual(parse(c.bytes, c.expectMasked, byteByByte(c.bytes.length)), c.frames);
  });

  test(`parse: ${c.name} (split at every point)`, () => {
    // Every single cut for small fixtures; for the big ones, every cut in and around the header
    // and a spread of cuts through the payload (every cut of 64 KiB would be quadratic work here).
    const n = c.bytes.length;
    const cuts = n <= 600
      ? Array.from({ length: n + 1 }, (_, i) => i)
      : [...Array.from({ length: 20 }, (_, i) => i), 4097, n >> 1, n - 2, n - 1, n];
    for (const cut of cuts) {
      assert.deepEqual(parse(c.bytes, c.expectMasked, [cut]), c.frames, `cut at ${cut}`);
    }
  });
}

test('parse: all small §5.7 fixtures concatenated, split at every pair of points', () => {
  const small = parseCases.filter((c) => !c.expectMasked && c.bytes.length < 40);
  const bytes = Buffer.concat(small.map((c) => c.bytes));
  const frames = small.flatMap((c) => c.frames);
  for (let i = 0; i <= bytes.length; i++) {
    for (let j = i; j <= bytes.length; j++) {
      assert.deepEqual(parse(bytes, false, [i, j]), frames, `cuts at ${i}, ${j}`);
    }
  }
});

test('parse: a payload fed 1 byte at a time is allocated once and each byte copied once (no quadratic buffering)', () => {
  // 2^18 one-byte chunks. Done right, the parser gathers the payload with one allocation of its
  // size and one copy of each byte; a parser that re-joins its buffered chunks on each push
  // allocates and copies ~2^35 bytes. The work is counted, not timed: what goes through Buffer's
  // allocators and Buffer#copy while the parser runs is exact, where a duration depends on the
  // machine (and on a busy one the same linear work varied more than a linear/quadratic ratio
  // could tell apart). A count over budget throws at once, so a regression fails fast instead of
  // running for minutes.
  const size = 1 << 18;
  const payload = pattern(size);
  const frame = encodeMaskedFrame(Opcode.BINARY, payload);
  const headerBytes = frame.length - size; // 2 + 8 (64-bit length) + 4 (masking key)
  const frames: Frame[] = [];
  const parser = new FrameParser({ expectMasked: true, onFrame: (f) => frames.push(f) });
  let allocated = 0;
  let copied = 0;
  const overBudget = (): void => {
    // The payload's own Buffer, and the header bytes that straddle chunks, copied to a scratch.
    if (allocated > size) throw new Error(`allocated ${allocated} bytes for a ${size}-byte payload`);
    if (copied > size + headerBytes) throw new Error(`copied ${copied} bytes for a ${frame.length}-byte frame`);
  };
  const { alloc, allocUnsafe, allocUnsafeSlow, concat } = Buffer;
  const { copy } = Buffer.prototype;
  Buffer.alloc = (length: number, fill?: string | Uint8Array | number, encoding?: BufferEncoding) => { allocated += length; overBudget(); return alloc(length, fill, encoding); };
  Buffer.allocUnsafe = (length: number) => { allocated += length; overBudget(); return allocUnsafe(length); };
  Buffer.allocUnsafeSlow = (length: number) => { allocated += length; overBudget(); return allocUnsafeSlow(length); };
  Buffer.concat = (list: readonly Uint8Array[], length?: number) => { const joined = concat(list, length); allocated += joined.length; overBudget(); return joined; };
  Buffer.prototype.copy = function (this: Buffer, ...args: Parameters<Buffer['copy']>) { const count = copy.apply(this, args); copied += count; overBudget(); return count; };
  try {
    for (let i = 0; i < frame.length; i++) parser.push(frame.subarray(i, i + 1));
  } finally {
    Object.assign(Buffer, { alloc, allocUnsafe, allocUnsafeSlow, concat });
    Buffer.prototype.copy = copy;
  }
  assert.equal(frames.length, 1);
  assert.ok(frames[0]!.payload.equals(payload));
  assert.equal(allocated, size, 'one Buffer, of the payload\'s size');
  assert.equal(copied, frame.length, 'each byte copied once');
});

test('parse: 2000 small masked frames, each fed byte by byte', () => {
  const chunks: Buffer[] = [];
  for (let i = 0; i < 2000; i++) chunks.push(encodeMaskedFrame(Opcode.TEXT, Buffer.from(`m${i}`)));
  const bytes = Buffer.concat(chunks);
  const got: string[] = [];
  const parser = new FrameParser({ expectMasked: true, onFrame: (f) => got.push(f.payload.toString()) });
  for (let i = 0; i < bytes.length; i++) parser.push(bytes.subarray(i, i + 1));
  assert.equal(got.length, 2000);
  assert.equal(got[0], 'm0');
  assert.equal(got[1999], 'm1999');
});

test('parse: an empty chunk is a no-op', () => {
  const frames: Frame[] = [];
  const parser = new FrameParser({ expectMasked: false, onFrame: (f) => frames.push(f) });
  parser.push(Buffer.alloc(0));
  parser.push(hex('81'));
  parser.push(Buffer.alloc(0));
  parser.push(hex('01 41'));
  assert.equal(frames.length, 1);
  assert.equal(frames[0]!.payload.toString(), 'A');
});

// ---------------------------------------------------------------------------------------------
// Payload length encodings (§5.2), through encoder and parser.

const lengthCases = [
  { length: 0, header: '82 00', maskedHeader: '82 80' },
  { length: 125, header: '82 7D', maskedHeader: '82 FD' },
  { length: 126, header: '82 7E 007E', maskedHeader: '82 FE 007E' },
  { length: 65535, header: '82 7E FFFF', maskedHeader: '82 FE FFFF' },
  { length: 65536, header: '82 7F 0000000000010000', maskedHeader: '82 FF 0000000000010000' },
];

for (const c of lengthCases) {
  test(`length ${c.length}: encodeFrame writes header ${c.header} and the parser reads it back`, () => {
    const payload = pattern(c.length);
    const frame = encodeFrame(Opcode.BINARY, payload);
    assert.equal(frame.toString('hex'), Buffer.concat([hex(c.header), payload]).toString('hex'));
    const lengths: number[] = [];
    const frames: Frame[] = [];
    new FrameParser({ expectMasked: false, onHeader: (_f, _o, n) => lengths.push(n), onFrame: (f) => frames.push(f) }).push(frame);
    assert.deepEqual(lengths, [c.length]);
    assert.equal(frames.length, 1);
    assert.ok(frames[0]!.payload.equals(payload));
  });

  test(`length ${c.length}: encodeMaskedFrame writes header ${c.maskedHeader} + key and decodes back`, () => {
    const payload = pattern(c.length);
    const frame = encodeMaskedFrame(Opcode.BINARY, payload);
    const headerLength = hex(c.maskedHeader).length;
    assert.equal(frame.subarray(0, headerLength).toString('hex'), hex(c.maskedHeader).toString('hex'));
    assert.equal(frame.length, headerLength + 4 + c.length);
    // The body is the payload XORed with the key that follows the header (§5.3).
    const key = frame.subarray(headerLength, headerLength + 4);
    const body = Buffer.from(frame.subarray(headerLength + 4));
    unmask(body, key);
    assert.ok(body.equals(payload));
    assert.deepEqual(parse(frame, true).map((f) => f.payload), [payload.toString('hex')]);
  });
}

// ---------------------------------------------------------------------------------------------
// Protocol errors (§5.1, §5.2, §5.5): code, close code, and the parser halts after.

interface ErrorCase {
  name: string;
  hex: string;
  expectMasked: boolean;
  code: ErrorCode;
}

const errorCases: ErrorCase[] = [
  { name: 'unmasked client frame (§5.1)', hex: '81 05 48656c6c6f', expectMasked: true, code: 'WS_ERR_UNMASKED_FRAME' },
  { name: 'unmasked client close frame', hex: '88 00', expectMasked: true, code: 'WS_ERR_UNMASKED_FRAME' },
  { name: 'masked server frame, as seen by a client (§5.1)', hex: '81 85 37fa213d 7f9f4d5158', expectMasked: false, code: 'WS_ERR_MASKED_FRAME' },
  { name: 'RSV1 set', hex: 'c1 80 00000000', expectMasked: true, code: 'WS_ERR_RSV_BITS_SET' },
  { name: 'RSV2 set', hex: 'a1 80 00000000', expectMasked: true, code: 'WS_ERR_RSV_BITS_SET' },
  { name: 'RSV3 set', hex: '91 80 00000000', expectMasked: true, code: 'WS_ERR_RSV_BITS_SET' },
  { name: 'RSV bits on a continuation', hex: 'f0 80 00000000', expectMasked: true, code: 'WS_ERR_RSV_BITS_SET' },
  ...[3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf].map((op): ErrorCase => ({
    name: `reserved opcode 0x${op.toString(16)}`,
    hex: `${(0x80 | op).toString(16)} 80 00000000`,
    expectMasked: true,
    code: 'WS_ERR_RESERVED_OPCODE',
  })),
  { name: 'ping of 126 bytes (16-bit length)', hex: '89 FE 007E', expectMasked: true, code: 'WS_ERR_CONTROL_FRAME_TOO_LONG' },
  { name: 'close with a 64-bit length', hex: '88 FF 0000000000000080', expectMasked: true, code: 'WS_ERR_CONTROL_FRAME_TOO_LONG' },
  { name: 'pong of 126 bytes', hex: '8a FE 007E', expectMasked: true, code: 'WS_ERR_CONTROL_FRAME_TOO_LONG' },
  { name: 'fragmented ping (FIN clear)', hex: '09 80 00000000', expectMasked: true, code: 'WS_ERR_FRAGMENTED_CONTROL_FRAME' },
  { name: 'fragmented close (FIN clear)', hex: '08 80 00000000', expectMasked: true, code: 'WS_ERR_FRAGMENTED_CONTROL_FRAME' },
  { name: 'fragmented pong (FIN clear)', hex: '0a 80 00000000', expectMasked: true, code: 'WS_ERR_FRAGMENTED_CONTROL_FRAME' },
  { name: 'length 5 in the 16-bit form', hex: '82 7E 0005 0102030405', expectMasked: false, code: 'WS_ERR_NON_MINIMAL_LENGTH' },
  { name: 'length 125 in the 16-bit form', hex: '82 7E 007D', expectMasked: false, code: 'WS_ERR_NON_MINIMAL_LENGTH' },
  { name: 'length 0 in the 16-bit form', hex: '82 7E 0000', expectMasked: false, code: 'WS_ERR_NON_MINIMAL_LENGTH' },
  { name: 'length 126 in the 64-bit form', hex: '82 7F 000000000000007E', expectMasked: false, code: 'WS_ERR_NON_MINIMAL_LENGTH' },
  { name: 'length 65535 in the 64-bit form', hex: '82 7F 000000000000FFFF', expectMasked: false, code: 'WS_ERR_NON_MINIMAL_LENGTH' },
  { name: 'length 5 in the 64-bit form, masked', hex: '82 FF 0000000000000005', expectMasked: true, code: 'WS_ERR_NON_MINIMAL_LENGTH' },
  { name: '64-bit length with its most significant bit set', hex: '82 7F 8000000000000000', expectMasked: false, code: 'WS_ERR_LENGTH_MSB_SET' },
  { name: '64-bit length 0xFFFFFFFFFFFFFFFF', hex: '82 FF FFFFFFFFFFFFFFFF', expectMasked: true, code: 'WS_ERR_LENGTH_MSB_SET' },
];

for (const c of errorCases) {
  test(`error: ${c.name} → ${c.code}`, () => {
    assertProtocolError(() => parse(hex(c.hex), c.expectMasked), c.code);
  });

  test(`error: ${c.name} → ${c.code} (byte by byte)`, () => {
    const bytes = hex(c.hex);
    assertProtocolError(() => parse(bytes, c.expectMasked, byteByByte(bytes.length)), c.code);
  });

  test(`error: ${c.name} → parser halted afterwards`, () => {
    const frames: Frame[] = [];
    const parser = new FrameParser({ expectMasked: c.expectMasked, onFrame: (f) => frames.push(f) });
    assertProtocolError(() => parser.push(hex(c.hex)), c.code);
    // A perfectly valid frame after the error produces nothing and throws nothing.
    parser.push(c.expectMasked ? hex('81 85 37fa213d 7f9f4d5158') : hex('81 05 48656c6c6f'));
    parser.push(hex('81 00'));
    assert.equal(frames.length, 0);
  });
}

test('error: a bad frame after good ones in the same chunk delivers the good ones first', () => {
  const frames: Parsed[] = [];
  const parser = new FrameParser({
    expectMasked: false,
    onFrame: (f) => frames.push({ fin: f.fin, opcode: f.opcode, payload: f.payload.toString('hex') }),
  });
  assertProtocolError(() => parser.push(hex('81 01 41  83 00  81 01 42')), 'WS_ERR_RESERVED_OPCODE');
  assert.deepEqual(frames, [{ fin: true, opcode: Opcode.TEXT, payload: '41' }]);
});

test('error: a header error fires on the header bytes alone, before any payload', () => {
  // Only the 2 header bytes of a reserved-opcode frame announcing 125 bytes.
  const parser = new FrameParser({ expectMasked: true, onFrame: () => assert.fail('no frame expected') });
  assertProtocolError(() => parser.push(hex('83 FD')), 'WS_ERR_RESERVED_OPCODE');
});

// ---------------------------------------------------------------------------------------------
// onHeader: called as soon as the header is complete, before the payload; its errors propagate.

const headerCases = [
  { name: '7-bit length, unmasked', header: '81 05', expectMasked: false, expect: [true, Opcode.TEXT, 5] },
  { name: '7-bit length, masked: before the masking key', header: '81 85', expectMasked: true, expect: [true, Opcode.TEXT, 5] },
  { name: '16-bit length, FIN clear', header: '02 7E 0100', expectMasked: false, expect: [false, Opcode.BINARY, 256] },
  { name: '64-bit length', header: '82 7F 0000000000010000', expectMasked: false, expect: [true, Opcode.BINARY, 65536] },
  { name: '64-bit length of 2^40, masked', header: '82 FF 0000010000000000', expectMasked: true, expect: [true, Opcode.BINARY, 2 ** 40] },
  { name: 'continuation', header: '80 FE 1000', expectMasked: true, expect: [true, Opcode.CONTINUATION, 4096] },
];

for (const c of headerCases) {
  test(`onHeader: ${c.name} fires on the header bytes alone`, () => {
    const headers: unknown[][] = [];
    const parser = new FrameParser({
      expectMasked: c.expectMasked,
      onHeader: (fin, opcode, length) => headers.push([fin, opcode, length]),
      onFrame: () => assert.fail('no frame expected: the payload has not arrived'),
    });
    const bytes = hex(c.header);
    // Byte by byte: nothing before the last header byte, exactly one call on it.
    for (let i = 0; i < bytes.length; i++) {
      assert.equal(headers.length, 0, `onHeader fired early, after ${i} bytes`);
      parser.push(bytes.subarray(i, i + 1));
    }
    assert.deepEqual(headers, [c.expect]);
  });
}

test('onHeader: a ProtocolError it throws propagates out of push() and halts the parser', () => {
  const thrown = new ProtocolError('WS_ERR_MESSAGE_TOO_BIG', 'too big');
  const frames: Frame[] = [];
  const parser = new FrameParser({
    expectMasked: false,
    onHeader: (_fin, _opcode, length) => { if (length > 10) throw thrown; },
    onFrame: (f) => frames.push(f),
  });
  parser.push(hex('81 02 6869'));
  assert.equal(frames.length, 1);
  assert.throws(() => parser.push(hex('82 7E 0100')), (error) => error === thrown);
  assert.equal(thrown.closeCode, 1009);
  parser.push(hex('81 02 6869'));
  assert.equal(frames.length, 1);
});

test('onHeader: any other exception propagates too', () => {
  const parser = new FrameParser({
    expectMasked: false,
    onHeader: () => { throw new RangeError('boom'); },
    onFrame: () => assert.fail('no frame expected'),
  });
  assert.throws(() => parser.push(hex('81 02 6869')), RangeError);
});

test('onFrame: halt() called from onFrame stops the rest of the chunk', () => {
  const got: string[] = [];
  const parser: FrameParser = new FrameParser({
    expectMasked: false,
    onFrame: (f) => { got.push(f.payload.toString()); if (f.opcode === Opcode.CLOSE) parser.halt(); },
  });
  parser.push(hex('81 01 41  88 00  81 01 42'));
  parser.push(hex('81 01 43'));
  assert.deepEqual(got, ['A', '']);
});

// ---------------------------------------------------------------------------------------------
// Encoders.

const encodeCases: { name: string; encode: () => Buffer; hex: string }[] = [
  { name: 'encodeFrame: §5.7 unmasked text "Hello"', encode: () => encodeFrame(Opcode.TEXT, Buffer.from('Hello')), hex: '81 05 48656c6c6f' },
  { name: 'encodeTextFrame: §5.7 unmasked text "Hello"', encode: () => encodeTextFrame('Hello'), hex: '81 05 48656c6c6f' },
  { name: 'encodeFrame: §5.7 first fragment "Hel"', encode: () => encodeFrame(Opcode.TEXT, Buffer.from('Hel'), false), hex: '01 03 48656c' },
  { name: 'encodeFrame: §5.7 last fragment "lo"', encode: () => encodeFrame(Opcode.CONTINUATION, Buffer.from('lo')), hex: '80 02 6c6f' },
  { name: 'encodeFrame: §5.7 unmasked ping "Hello"', encode: () => encodeFrame(Opcode.PING, Buffer.from('Hello')), hex: '89 05 48656c6c6f' },
  { name: 'encodeFrame: unmasked pong "Hello"', encode: () => encodeFrame(Opcode.PONG, Buffer.from('Hello')), hex: '8a 05 48656c6c6f' },
  { name: 'encodeFrame: empty close', encode: () => encodeFrame(Opcode.CLOSE, Buffer.alloc(0)), hex: '88 00' },
  { name: 'encodeFrame: close 1000 "bye"', encode: () => encodeFrame(Opcode.CLOSE, encodeClosePayload(1000, 'bye')), hex: '88 05 03e8 627965' },
  { name: 'encodeFrame: a Uint8Array payload', encode: () => encodeFrame(Opcode.BINARY, new Uint8Array([1, 2, 3])), hex: '82 03 010203' },
  {
    name: 'encodeFrame: §5.7 256-byte binary',
    encode: () => encodeFrame(Opcode.BINARY, pattern(256)),
    hex: '82 7E 0100' + pattern(256).toString('hex'),
  },
  {
    name: 'encodeFrame: §5.7 64 KiB binary',
    encode: () => encodeFrame(Opcode.BINARY, pattern(65536)),
    hex: '82 7F 0000000000010000' + pattern(65536).toString('hex'),
  },
  { name: 'encodeTextFrame: empty string', encode: () => encodeTextFrame(''), hex: '81 00' },
  { name: 'encodeTextFrame: multi-byte "é€😀" counts bytes, not UTF-16 units', encode: () => encodeTextFrame('é€😀'), hex: '81 09 c3a9 e282ac f09f9880' },
  {
    name: 'encodeTextFrame: 126 bytes takes the 16-bit length',
    encode: () => encodeTextFrame('a'.repeat(126)),
    hex: '81 7E 007E' + '61'.repeat(126),
  },
  {
    name: 'encodeTextFrame: 42 two-byte characters (84 bytes, 42 UTF-16 units)',
    encode: () => encodeTextFrame('é'.repeat(42)),
    hex: '81 54' + 'c3a9'.repeat(42),
  },
  {
    name: 'encodeTextFrame: 65536 bytes takes the 64-bit length',
    encode: () => encodeTextFrame('z'.repeat(65536)),
    hex: '81 7F 0000000000010000' + '7a'.repeat(65536),
  },
];

for (const c of encodeCases) {
  test(c.name, () => {
    assert.equal(c.encode().toString('hex'), hex(c.hex).toString('hex'));
  });
}

// The extended lengths at their boundaries, through encodeFrame itself: exact header bytes, then
// the payload unchanged right after them.
const extendedLengthCases = [
  { length: 126, header: '82 7E 007E' }, // the smallest 16-bit length
  { length: 0x1234, header: '82 7E 1234' }, // both bytes of the 16-bit field, big-endian
  { length: 65535, header: '82 7E FFFF' }, // the largest 16-bit length
  { length: 65536, header: '82 7F 0000000000010000' }, // the smallest 64-bit length
  { length: 0x12345, header: '82 7F 0000000000012345' }, // several bytes of the low word, big-endian
];

for (const c of extendedLengthCases) {
  test(`encodeFrame: length ${c.length} → header ${c.header}, then the payload`, () => {
    const payload = pattern(c.length);
    const frame = encodeFrame(Opcode.BINARY, payload);
    const header = hex(c.header);
    assert.equal(frame.subarray(0, header.length).toString('hex'), header.toString('hex'));
    assert.equal(frame.length, header.length + c.length);
    assert.ok(frame.subarray(header.length).equals(payload), 'the payload follows the header unchanged');
  });
}

// Lengths of 2^32 and more cannot be allocated in a test, so the high word of the 64-bit length is
// checked on writeHeader, the function encodeFrame, encodeTextFrame and encodeMaskedFrame use.
const writeHeaderCases = [
  { length: 2 ** 32 - 1, masked: false, header: '82 7F 00000000FFFFFFFF' }, // the low word full, high word 0
  { length: 2 ** 32, masked: false, header: '82 7F 0000000100000000' }, // the first length with a high word
  { length: 2 ** 32 + 1, masked: false, header: '82 7F 0000000100000001' },
  { length: 0x0001020304050607, masked: false, header: '82 7F 0001020304050607' }, // a distinct value in each byte
  { length: Number.MAX_SAFE_INTEGER, masked: false, header: '82 7F 001FFFFFFFFFFFFF' }, // 2^53 - 1
  { length: 2 ** 32 + 1, masked: true, header: '82 FF 0000000100000001' }, // MASK bit set, same length bytes
];

for (const c of writeHeaderCases) {
  test(`writeHeader: length ${c.length}${c.masked ? ' (masked)' : ''} → ${c.header}`, () => {
    const target = Buffer.alloc(12, 0xee); // two spare bytes: nothing may be written past the header
    const size = writeHeader(target, Opcode.BINARY, true, c.length, c.masked);
    assert.equal(size, 10);
    assert.equal(target.subarray(0, 10).toString('hex'), hex(c.header).toString('hex'));
    assert.equal(target.subarray(10).toString('hex'), 'eeee');
  });
}

test('writeHeader: FIN clear and each opcode land in the first byte', () => {
  const target = Buffer.alloc(10);
  assert.equal(writeHeader(target, Opcode.CONTINUATION, false, 5, false), 2);
  assert.equal(target.subarray(0, 2).toString('hex'), '0005');
  assert.equal(writeHeader(target, Opcode.PONG, true, 125, true), 2);
  assert.equal(target.subarray(0, 2).toString('hex'), '8afd');
  assert.equal(writeHeader(target, Opcode.TEXT, false, 300, false), 4);
  assert.equal(target.subarray(0, 4).toString('hex'), '017e012c');
});

test('parse: reads back the 64-bit length writeHeader writes for 2^32 + 1 (header only)', () => {
  const header = Buffer.alloc(10);
  writeHeader(header, Opcode.BINARY, true, 2 ** 32 + 1, false);
  const lengths: number[] = [];
  const parser = new FrameParser({ expectMasked: false, onHeader: (_f, _o, n) => lengths.push(n), onFrame: () => {} });
  parser.push(header);
  assert.deepEqual(lengths, [2 ** 32 + 1]);
});

test('encodeMaskedFrame: §5.7 fixtures decode back through a parser expecting masks', () => {
  const cases: [number, string, boolean][] = [
    [Opcode.TEXT, 'Hello', true],
    [Opcode.TEXT, 'Hel', false],
    [Opcode.CONTINUATION, 'lo', true],
    [Opcode.PING, 'Hello', true],
    [Opcode.PONG, 'Hello', true],
    [Opcode.CLOSE, '', true],
  ];
  for (const [opcode, text, fin] of cases) {
    const frame = encodeMaskedFrame(opcode, Buffer.from(text), fin);
    assert.equal(frame[0], (fin ? 0x80 : 0) | opcode);
    assert.equal(frame[1], 0x80 | text.length, 'MASK bit and 7-bit length');
    assert.equal(frame.length, 2 + 4 + text.length);
    assert.deepEqual(parse(frame, true), [{ fin, opcode, payload: Buffer.from(text).toString('hex') }]);
  }
});

test('encodeMaskedFrame: does not modify the caller\'s payload', () => {
  const payload = Buffer.from('Hello');
  encodeMaskedFrame(Opcode.TEXT, payload);
  assert.equal(payload.toString(), 'Hello');
});

test('encodeMaskedFrame: uses a fresh masking key per frame', () => {
  const keys = new Set<string>();
  for (let i = 0; i < 8; i++) keys.add(encodeMaskedFrame(Opcode.TEXT, Buffer.from('x')).subarray(2, 6).toString('hex'));
  assert.ok(keys.size > 1, 'eight frames all used the same key');
});

const closePayloadCases: { name: string; code: number | null; reason?: string; hex: string }[] = [
  { name: 'no code → empty payload', code: null, hex: '' },
  { name: 'null code ignores the reason', code: null, reason: 'ignored', hex: '' },
  { name: '1000, no reason', code: 1000, hex: '03e8' },
  { name: '1000 "bye"', code: 1000, reason: 'bye', hex: '03e8 627965' },
  { name: '1001 empty reason', code: 1001, reason: '', hex: '03e9' },
  { name: '4999 "é€" (UTF-8 reason)', code: 4999, reason: 'é€', hex: '1387 c3a9 e282ac' },
  { name: '3000 "x"', code: 3000, reason: 'x', hex: '0bb8 78' },
];

for (const c of closePayloadCases) {
  test(`encodeClosePayload: ${c.name}`, () => {
    const payload = c.reason === undefined ? encodeClosePayload(c.code) : encodeClosePayload(c.code, c.reason);
    assert.equal(payload.toString('hex'), hex(c.hex).toString('hex'));
  });
}

// ---------------------------------------------------------------------------------------------
// unmask (§5.3).

test('unmask: the §5.7 masked "Hello" body', () => {
  const body = hex('7f9f4d5158');
  unmask(body, hex('37fa213d'));
  assert.equal(body.toString(), 'Hello');
});

for (let length = 0; length <= 9; length++) {
  test(`unmask: length ${length} (whole words and the 0-3 byte tail)`, () => {
    const key = hex('37fa213d');
    const original = Buffer.from(Array.from({ length }, (_, i) => (i * 37 + 11) & 0xff));
    const expected = Buffer.from(original.map((b, i) => b ^ key[i % 4]!));
    const data = Buffer.from(original);
    unmask(data, key);
    assert.equal(data.toString('hex'), expected.toString('hex'));
    unmask(data, key); // masking and unmasking are the same XOR
    assert.equal(data.toString('hex'), original.toString('hex'));
  });
}

test('unmask: works on a view with a non-zero offset and touches nothing outside it', () => {
  const backing = hex('ff ff 7f9f4d5158 ff ff');
  unmask(backing.subarray(2, 7), hex('37fa213d'));
  assert.equal(backing.toString('hex'), hex('ff ff 48656c6c6f ff ff').toString('hex'));
});

test('unmask: round trip of 1000 bytes with an all-zero and an all-ones key', () => {
  const original = pattern(1000);
  const zero = Buffer.from(original);
  unmask(zero, hex('00000000'));
  assert.ok(zero.equals(original));
  const ones = Buffer.from(original);
  unmask(ones, hex('ffffffff'));
  assert.ok(ones.every((b, i) => b === (original[i]! ^ 0xff)));
  unmask(ones, hex('ffffffff'));
  assert.ok(ones.equals(original));
});

// ---------------------------------------------------------------------------------------------
// RSV1 with permessage-deflate negotiated (RFC 7692 §6): allowed on a data message's first frame
// only, reported in the header and the frame; RSV2 and RSV3 stay reserved.

/** Parses `bytes` with RSV1 allowed, recording the rsv1 each header and frame reported. */
function parseRsv1(bytes: Buffer, cuts: number[] = []): { headers: boolean[]; frames: (Parsed & { rsv1: boolean })[] } {
  const input = Buffer.from(bytes);
  const headers: boolean[] = [];
  const frames: (Parsed & { rsv1: boolean })[] = [];
  const parser = new FrameParser({
    expectMasked: true,
    rsv1Allowed: true,
    onHeader: (_fin, _opcode, _length, rsv1) => { headers.push(rsv1); },
    onFrame: (f) => frames.push({ fin: f.fin, rsv1: f.rsv1, opcode: f.opcode, payload: f.payload.toString('hex') }),
  });
  let start = 0;
  for (const cut of [...cuts, input.length]) {
    parser.push(input.subarray(start, cut));
    start = cut;
  }
  return { headers, frames };
}

test('RSV1 allowed: the §7.2.3.1 compressed "Hello" frame (masked) is reported with rsv1 set', () => {
  // c1: FIN, RSV1, text; 87: masked, 7 bytes; the payload masked with a zero key stays as it is.
  const frame = hex('c1 87 00000000 f248cdc9c90700');
  for (const cuts of [[], byteByByte(frame.length)]) {
    assert.deepEqual(parseRsv1(frame, cuts), {
      headers: [true],
      frames: [{ fin: true, rsv1: true, opcode: Opcode.TEXT, payload: 'f248cdc9c90700' }],
    });
  }
});

test('RSV1 allowed: the first fragment carries it, the continuation does not, an uncompressed frame neither', () => {
  const bytes = hex('41 83 00000000 f248cd  80 84 00000000 c9c90700  82 81 00000000 ff');
  assert.deepEqual(parseRsv1(bytes), {
    headers: [true, false, false],
    frames: [
      { fin: false, rsv1: true, opcode: Opcode.TEXT, payload: 'f248cd' },
      { fin: true, rsv1: false, opcode: Opcode.CONTINUATION, payload: 'c9c90700' },
      { fin: true, rsv1: false, opcode: Opcode.BINARY, payload: 'ff' },
    ],
  });
});

const rsv1ErrorCases: { name: string; hex: string; code: ErrorCode }[] = [
  { name: 'RSV1 on a ping', hex: 'c9 80 00000000', code: 'WS_ERR_RSV1_ON_CONTROL_FRAME' },
  { name: 'RSV1 on a pong', hex: 'ca 80 00000000', code: 'WS_ERR_RSV1_ON_CONTROL_FRAME' },
  { name: 'RSV1 on a close', hex: 'c8 80 00000000', code: 'WS_ERR_RSV1_ON_CONTROL_FRAME' },
  { name: 'RSV1 on a continuation', hex: 'c0 80 00000000', code: 'WS_ERR_RSV1_ON_CONTINUATION' },
  { name: 'RSV2 on a text frame', hex: 'a1 80 00000000', code: 'WS_ERR_RSV_BITS_SET' },
  { name: 'RSV3 on a text frame', hex: '91 80 00000000', code: 'WS_ERR_RSV_BITS_SET' },
  { name: 'RSV1 and RSV2 together', hex: 'e1 80 00000000', code: 'WS_ERR_RSV_BITS_SET' },
];

for (const c of rsv1ErrorCases) {
  test(`RSV1 allowed, error: ${c.name} → ${c.code}`, () => {
    assertProtocolError(() => parseRsv1(hex(c.hex)), c.code);
  });
}

test('RSV1 not allowed (no extension negotiated): reported as a reserved bit, not as compression', () => {
  assertProtocolError(() => parse(hex('c1 80 00000000'), true), 'WS_ERR_RSV_BITS_SET');
  assertProtocolError(() => parse(hex('c9 80 00000000'), true), 'WS_ERR_RSV_BITS_SET');
});

// ---------------------------------------------------------------------------------------------
// onPayloadPart: a data frame's payload shown, unmasked, as it arrives.

/** Feeds `frame` cut at `cuts`, recording each part shown (hex) and the frames delivered. */
function parseParts(frame: Buffer, cuts: number[]): { parts: string[]; frames: Parsed[] } {
  const input = Buffer.from(frame);
  const parts: string[] = [];
  const frames: Parsed[] = [];
  const parser = new FrameParser({
    expectMasked: true,
    onPayloadPart: (part) => parts.push(part.toString('hex')),
    onFrame: (f) => frames.push({ fin: f.fin, opcode: f.opcode, payload: f.payload.toString('hex') }),
  });
  let start = 0;
  for (const cut of [...cuts, input.length]) {
    parser.push(input.subarray(start, cut));
    start = cut;
  }
  return { parts, frames };
}

test('onPayloadPart: a 300-byte masked frame cut at every point shows, in order, the unmasked bytes before the cut', () => {
  const payload = pattern(300);
  const frame = encodeMaskedFrame(Opcode.BINARY, payload);
  const headerSize = 2 + 2 + 4;
  for (let cut = 1; cut < frame.length; cut++) {
    const { parts, frames } = parseParts(frame, [cut]);
    const shown = Math.max(0, cut - headerSize);
    assert.deepEqual(parts, shown === 0 ? [] : [payload.subarray(0, shown).toString('hex')], `cut at ${cut}`);
    assert.deepEqual(frames, [{ fin: true, opcode: Opcode.BINARY, payload: payload.toString('hex') }], `cut at ${cut}`);
  }
});

test('onPayloadPart: byte by byte, every byte but the last is shown once, unmasked, at every key offset', () => {
  const payload = pattern(13);
  const frame = encodeMaskedFrame(Opcode.TEXT, payload);
  const { parts, frames } = parseParts(frame, byteByByte(frame.length));
  assert.equal(parts.join(''), payload.subarray(0, 12).toString('hex'));
  assert.equal(parts.length, 12);
  assert.deepEqual(frames, [{ fin: true, opcode: Opcode.TEXT, payload: payload.toString('hex') }]);
});

test('onPayloadPart: chunks of odd sizes across a large frame, and the next frame in the last chunk', () => {
  const payload = pattern(5000);
  const bytes = Buffer.concat([encodeMaskedFrame(Opcode.BINARY, payload, false), encodeMaskedFrame(Opcode.CONTINUATION, hex('abcd'))]);
  const cuts = [3, 9, 10, 1001, 1002, 2999, 4000];
  const { parts, frames } = parseParts(bytes, cuts);
  assert.equal(parts.join(''), payload.subarray(0, 4000 - 8).toString('hex'), 'each part once, in order, unmasked');
  assert.deepEqual(frames, [
    { fin: false, opcode: Opcode.BINARY, payload: payload.toString('hex') },
    { fin: true, opcode: Opcode.CONTINUATION, payload: 'abcd' },
  ]);
});

test('onPayloadPart: not called for a frame that completes in the chunk, nor for control frames', () => {
  const { parts } = parseParts(Buffer.concat([encodeMaskedFrame(Opcode.TEXT, pattern(200)), encodeMaskedFrame(Opcode.PING, pattern(100))]), [208 + 6 + 50]);
  assert.deepEqual(parts, []);
});

test('onPayloadPart: an unmasked (server) frame is shown as it is', () => {
  const payload = pattern(200);
  const input = encodeFrame(Opcode.BINARY, payload);
  const parts: string[] = [];
  const parser = new FrameParser({ expectMasked: false, onPayloadPart: (part) => parts.push(part.toString('hex')), onFrame: () => {} });
  parser.push(Buffer.from(input.subarray(0, 100)));
  assert.deepEqual(parts, [payload.subarray(0, 96).toString('hex')]);
});

test('onPayloadPart: an error thrown from it halts the parser, like any other', () => {
  const frames: Frame[] = [];
  const parser = new FrameParser({
    expectMasked: true,
    onPayloadPart: () => { throw new ProtocolError('WS_ERR_INVALID_UTF8', 'bad'); },
    onFrame: (f) => frames.push(f),
  });
  const frame = encodeMaskedFrame(Opcode.TEXT, pattern(300));
  assertProtocolError(() => parser.push(Buffer.from(frame.subarray(0, 50))), 'WS_ERR_INVALID_UTF8', 1007);
  parser.push(Buffer.from(frame.subarray(50)));
  assert.deepEqual(frames, []);
});
