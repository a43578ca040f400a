// Tests for src/server/connection.ts: the sans-I/O WebSocket connection state machine
// (RFC 6455 §5.4-§5.5, §7) and truncateReason.
//
// Each test drives a WebSocketConnection with a recording handler: client frames go in (built with
// encodeMaskedFrame, or as raw hex for malformed ones), and the test checks the exact bytes the
// connection asks to write, the messages it delivers, and the close code it reports. Tables list
// the chunks to feed and, for failures, the chunk at which the connection must fail: not earlier,
// not later (fail fast), and nothing it is fed afterwards may change the outcome.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectionState, WebSocketConnection, maxCompressedSize, truncateReason, type ConnectionOptions } from '../src/server/connection.js';
import { PerMessageDeflate, compressPayload } from '../src/server/deflate-codec.js';
import type { DeflateParameters } from '../src/server/permessage-deflate.js';
import { deflateRawSync, constants as zlibConstants } from 'node:zlib';
import { FrameParser, Opcode, encodeClosePayload, encodeFrame, encodeMaskedFrame, encodeTextFrame, type Frame } from '../src/server/frames.js';
import { ErrorCodes, type ErrorCode } from '../src/server/errors.js';
import { hex, pattern } from './helpers/bytes.js';



// Client frames (masked, as a browser sends them).
const bytesOf = (payload: string | Buffer): Buffer => (typeof payload === 'string' ? Buffer.from(payload) : payload);
const text = (payload: string | Buffer, fin = true): Buffer => encodeMaskedFrame(Opcode.TEXT, bytesOf(payload), fin);
const binary = (payload: string | Buffer, fin = true): Buffer => encodeMaskedFrame(Opcode.BINARY, bytesOf(payload), fin);
const cont = (payload: string | Buffer, fin = true): Buffer => encodeMaskedFrame(Opcode.CONTINUATION, bytesOf(payload), fin);
const ping = (payload: string | Buffer = ''): Buffer => encodeMaskedFrame(Opcode.PING, bytesOf(payload));
const pong = (payload: string | Buffer = ''): Buffer => encodeMaskedFrame(Opcode.PONG, bytesOf(payload));
const close = (payloadHex: string): Buffer => encodeMaskedFrame(Opcode.CLOSE, hex(payloadHex));
/** A client frame with RSV1 set: "Per-Message Compressed" (RFC 7692 §6). */
const withRsv1 = (frame: Buffer): Buffer => { frame[0] = frame[0]! | 0x40; return frame; };
/** A compressed text/binary message's first frame: RSV1 and the compressed payload, given as hex. */
const ztext = (payloadHex: string, fin = true): Buffer => withRsv1(encodeMaskedFrame(Opcode.TEXT, hex(payloadHex), fin));
const zbinary = (payload: Buffer, fin = true): Buffer => withRsv1(encodeMaskedFrame(Opcode.BINARY, payload, fin));
/** What a client compressing on its own sends for `data` (RFC 7692 §7.2.1). */
const deflated = (data: Buffer | string): Buffer => compressPayload(typeof data === 'string' ? Buffer.from(data) : data, 15);
/**
 * Two messages of 700 bytes, then one copying the end of each: with a 1024-byte window, the third
 * refers back into both, so only the last 1024 bytes of what came before inflate it.
 */
function windowMessages(): [Buffer, Buffer, Buffer] {
  const m1 = incompressible(700);
  const m2 = incompressible(1400).subarray(700);
  return [m1, m2, Buffer.concat([m1.subarray(-50), m2.subarray(-200)])];
}
/** Bytes that do not compress: deflate stores them, adding a few bytes (deterministic, for fixtures). */
function incompressible(n: number): Buffer {
  const out = Buffer.alloc(n);
  let x = 0x12345678;
  for (let i = 0; i < n; i++) { x = (x * 1103515245 + 12345) >>> 0; out[i] = x >>> 24; }
  return out;
}

/** What the handler saw, in a form deepEqual compares well. */
type Message = { text: string } | { binary: string };

interface Recorder {
  writes: Buffer[];
  messages: Message[];
  closes: [number, string][];
  /** The protocol errors reported to onProtocolError: [code name, close code, message]. */
  errors: [string, number, string][];
  ends: number;
  pongs: string[];
  activity: number;
  /** Everything the handler saw, in order, to check e.g. that onClose precedes onEndTransport. */
  log: string[];
}

const DEFAULTS: ConnectionOptions = { maxMessageSize: 1024, maxFragments: 4 };

/** Parameters as negotiated for a default offer (`permessage-deflate`), to be overridden per case. */
const NEGOTIATED: DeflateParameters = { serverMaxWindowBits: 15, clientMaxWindowBits: 15, clientNoContextTakeover: false };

function connect(options: Partial<ConnectionOptions> = {}, accept = true, deflate?: Partial<DeflateParameters>): { conn: WebSocketConnection; rec: Recorder } {
  const rec: Recorder = { writes: [], messages: [], closes: [], errors: [], ends: 0, pongs: [], activity: 0, log: [] };
  const conn = new WebSocketConnection({
    onWrite: (bytes) => { rec.writes.push(bytes); rec.log.push('write'); },
    onMessage: (data) => {
      rec.messages.push(typeof data === 'string' ? { text: data } : { binary: data.toString('hex') });
      rec.log.push('message');
    },
    onPong: (payload) => { rec.pongs.push(payload.toString('hex')); rec.log.push('pong'); },
    onActivity: () => { rec.activity++; },
    onProtocolError: (error) => { rec.errors.push([error.code, error.closeCode, error.message]); rec.log.push('error'); },
    onClose: (code, reason) => { rec.closes.push([code, reason]); rec.log.push('close'); },
    onEndTransport: () => { rec.ends++; rec.log.push('end'); },
  }, { ...DEFAULTS, ...options }, deflate === undefined ? null : new PerMessageDeflate({ parameters: { ...NEGOTIATED, ...deflate }, response: '' }));
  if (accept) conn.accept();
  return { conn, rec };
}

/** Feeds a copy of each chunk (the parser unmasks in place, and fixtures are fed more than once). */
function feed(conn: WebSocketConnection, chunks: Buffer[]): void {
  for (const chunk of chunks) conn.receiveData(Buffer.from(chunk));
}

const written = (rec: Recorder): string => Buffer.concat(rec.writes).toString('hex');

/** Parses what the server wrote, as a client would (unmasked frames expected). */
function writtenFrames(rec: Recorder): Frame[] {
  const frames: Frame[] = [];
  new FrameParser({ expectMasked: false, onFrame: (f) => frames.push({ ...f, payload: Buffer.from(f.payload) }) })
    .push(Buffer.concat(rec.writes));
  return frames;
}

/**
 * The connection failed with `code` (§7.1.7): exactly one Close frame written, carrying `code` and
 * the reported reason (truncated to fit), onClose once with `code`, then onEndTransport once.
 */
function assertFailed(conn: WebSocketConnection, rec: Recorder, code: number, writesBefore = 0): void {
  assert.equal(rec.closes.length, 1, `onClose calls: ${JSON.stringify(rec.closes)}`);
  assert.equal(rec.closes[0]![0], code, `close code (reason: ${rec.closes[0]![1]})`);
  const closeFrame = Buffer.concat(rec.writes.slice(writesBefore));
  const expected = encodeFrame(Opcode.CLOSE, encodeClosePayload(code, truncateReason(rec.closes[0]![1])));
  assert.equal(closeFrame.subarray(0, 1).toString('hex'), '88', 'a Close frame');
  assert.equal(closeFrame.subarray(2, 4).toString('hex'), code.toString(16).padStart(4, '0'), 'its status code');
  assert.equal(closeFrame.toString('hex'), expected.toString('hex'));
  assert.ok(closeFrame.length <= 2 + 125);
  assert.equal(rec.ends, 1);
  assert.deepEqual(rec.log.slice(-2), ['close', 'end'], 'onClose, then onEndTransport');
  assert.equal(conn.state, ConnectionState.CLOSED);
}

/**
 * The failure was reported once to onProtocolError, by its stable name, with the close code that
 * name maps to and the reason the application sees, before the Close frame was written.
 */
function assertReported(rec: Recorder, error: ErrorCode, code: number): void {
  assert.deepEqual(rec.errors, [[error, code, rec.closes[0]![1]]]);
  assert.equal(ErrorCodes[error], code, `${error} maps to ${code} in errors.ts`);
  assert.deepEqual(rec.log.slice(-4), ['error', 'write', 'close', 'end'], 'reported, Close written, onClose, onEndTransport');
}

// ---------------------------------------------------------------------------------------------
// Messages, pings and pongs that must be accepted.

interface OkCase {
  name: string;
  chunks: () => Buffer[];
  messages: Message[];
  /** Exact hex of everything written (pongs). */
  written?: string;
  pongs?: string[];
  options?: Partial<ConnectionOptions>;
  /** permessage-deflate negotiated, with these parameters (over NEGOTIATED). */
  deflate?: Partial<DeflateParameters>;
}

const okCases: OkCase[] = [
  { name: 'text "Hello"', chunks: () => [text('Hello')], messages: [{ text: 'Hello' }] },
  { name: 'the §5.7 masked "Hello" fixture', chunks: () => [hex('81 85 37fa213d 7f9f4d5158')], messages: [{ text: 'Hello' }] },
  { name: 'empty text', chunks: () => [text('')], messages: [{ text: '' }] },
  { name: 'multi-byte text', chunks: () => [text('é€😀')], messages: [{ text: 'é€😀' }] },
  { name: 'binary', chunks: () => [binary(hex('00ff80fe'))], messages: [{ binary: '00ff80fe' }] },
  { name: 'binary that is not UTF-8 is fine', chunks: () => [binary(hex('ff'))], messages: [{ binary: 'ff' }] },
  { name: 'empty binary', chunks: () => [binary(Buffer.alloc(0))], messages: [{ binary: '' }] },
  {
    name: 'fragmented text across 3 frames',
    chunks: () => [text('Hel', false), cont('lo, ', false), cont('world')],
    messages: [{ text: 'Hello, world' }],
  },
  {
    name: 'fragmented binary across 3 frames',
    chunks: () => [binary(hex('01'), false), cont(hex('0203'), false), cont(hex('04'))],
    messages: [{ binary: '01020304' }],
  },
  {
    name: 'fragmented text with empty fragments',
    chunks: () => [text('', false), cont('a', false), cont('')],
    messages: [{ text: 'a' }],
  },
  {
    name: 'a 4-byte character split across fragments',
    chunks: () => [text(hex('41 f0 9f'), false), cont(hex('98'), false), cont(hex('80 42'))],
    messages: [{ text: 'A😀B' }],
  },
  { name: 'ping "Hello" → pong "Hello"', chunks: () => [ping('Hello')], messages: [], written: '8a 05 48656c6c6f' },
  { name: 'empty ping → empty pong', chunks: () => [ping()], messages: [], written: '8a 00' },
  {
    name: '125-byte ping → 125-byte pong',
    chunks: () => [ping(pattern(125))],
    messages: [],
    written: '8a 7d' + pattern(125).toString('hex'),
  },
  {
    name: 'ping between fragments is answered at once, the message completes',
    chunks: () => [text('Hel', false), ping('p1'), cont('lo')],
    messages: [{ text: 'Hello' }],
    written: '8a 02 7031',
  },
  {
    name: 'two pings → two pongs, in order',
    chunks: () => [ping('1'), ping('2')],
    messages: [],
    written: '8a 01 31  8a 01 32',
  },
  { name: 'unsolicited pong → onPong, nothing written', chunks: () => [pong('x')], messages: [], written: '', pongs: ['78'] },
  { name: 'empty unsolicited pong', chunks: () => [pong()], messages: [], written: '', pongs: [''] },
  {
    name: 'pong between fragments',
    chunks: () => [binary(hex('aa'), false), pong('hb'), cont(hex('bb'))],
    messages: [{ binary: 'aabb' }],
    written: '',
    pongs: ['6862'],
  },
  {
    name: 'several messages in a row',
    chunks: () => [text('one'), binary(hex('02')), text('th', false), cont('ree'), text('four')],
    messages: [{ text: 'one' }, { binary: '02' }, { text: 'three' }, { text: 'four' }],
  },
  {
    name: 'a message of exactly maxMessageSize',
    chunks: () => [binary(pattern(1024))],
    messages: [{ binary: pattern(1024).toString('hex') }],
  },
  {
    name: 'fragments summing to exactly maxMessageSize',
    chunks: () => [binary(pattern(1000), false), cont(pattern(24))],
    messages: [{ binary: Buffer.concat([pattern(1000), pattern(24)]).toString('hex') }],
  },
  {
    name: 'exactly maxFragments fragments',
    chunks: () => [text('a', false), cont('b', false), cont('c', false), cont('d')],
    messages: [{ text: 'abcd' }],
  },
  {
    name: 'the fragment limit is per message',
    chunks: () => [text('a', false), cont('b', false), cont('c', false), cont('d'), text('e', false), cont('f', false), cont('g', false), cont('h')],
    messages: [{ text: 'abcd' }, { text: 'efgh' }],
  },
  {
    name: 'the size limit is per message',
    chunks: () => [binary(pattern(1000)), binary(pattern(1000))],
    messages: [{ binary: pattern(1000).toString('hex') }, { binary: pattern(1000).toString('hex') }],
  },

  // permessage-deflate (RFC 7692): the §7.2.3 examples as client frames, inflated for the handler.
  { name: 'deflate: "Hello" compressed (§7.2.3.1)', deflate: {}, chunks: () => [ztext('f2 48 cd c9 c9 07 00')], messages: [{ text: 'Hello' }] },
  {
    name: 'deflate: "Hello" compressed, in two fragments, RSV1 on the first only (§7.2.3.1)',
    deflate: {},
    chunks: () => [ztext('f2 48 cd', false), cont(hex('c9 c9 07 00'))],
    messages: [{ text: 'Hello' }],
  },
  {
    name: 'deflate: context takeover, the second "Hello" refers back into the first (§7.2.3.2)',
    deflate: {},
    chunks: () => [ztext('f2 48 cd c9 c9 07 00'), ztext('f2 00 11 00 00')],
    messages: [{ text: 'Hello' }, { text: 'Hello' }],
  },
  { name: 'deflate: a block with no compression (§7.2.3.3)', deflate: {}, chunks: () => [ztext('00 05 00 fa ff 48 65 6c 6c 6f 00')], messages: [{ text: 'Hello' }] },
  { name: 'deflate: a block with BFINAL set (§7.2.3.4)', deflate: {}, chunks: () => [ztext('f3 48 cd c9 c9 07 00 00')], messages: [{ text: 'Hello' }] },
  {
    name: 'deflate: a BFINAL block, then a message on a fresh stream',
    deflate: {},
    chunks: () => [ztext('f3 48 cd c9 c9 07 00 00'), ztext('f2 48 cd c9 c9 07 00')],
    messages: [{ text: 'Hello' }, { text: 'Hello' }],
  },
  { name: 'deflate: two DEFLATE blocks in one message (§7.2.3.5)', deflate: {}, chunks: () => [ztext('f2 48 05 00 00 00 ff ff ca c9 c9 07 00')], messages: [{ text: 'Hello' }] },
  { name: 'deflate: an empty compressed message (§7.2.3.6)', deflate: {}, chunks: () => [ztext('00')], messages: [{ text: '' }] },
  { name: 'deflate: an empty payload with RSV1 is an empty message', deflate: {}, chunks: () => [ztext('')], messages: [{ text: '' }] },
  { name: 'deflate: uncompressed messages still arrive as they are', deflate: {}, chunks: () => [text('plain'), binary(hex('ff'))], messages: [{ text: 'plain' }, { binary: 'ff' }] },
  {
    name: 'deflate: compressed binary, and a ping answered between its fragments',
    deflate: {},
    chunks: () => { const z = deflated(pattern(300)); return [zbinary(z.subarray(0, 10), false), ping('p'), cont(z.subarray(10))]; },
    messages: [{ binary: pattern(300).toString('hex') }],
    written: '8a 01 70',
  },
  {
    name: 'deflate: multi-byte text, compressed, split inside a character',
    deflate: {},
    chunks: () => { const z = deflated('é€😀'.repeat(50)); return [withRsv1(text(z.subarray(0, 7), false)), cont(z.subarray(7, 20), false), cont(z.subarray(20))]; },
    messages: [{ text: 'é€😀'.repeat(50) }],
  },
  {
    name: 'deflate: a message inflating to exactly maxMessageSize',
    deflate: {},
    chunks: () => [zbinary(deflated(pattern(1024)))],
    messages: [{ binary: pattern(1024).toString('hex') }],
  },
  {
    name: 'deflate: incompressible data at maxMessageSize, whose wire size exceeds it a little',
    deflate: {},
    chunks: () => {
      const z = deflated(incompressible(1024));
      assert.ok(z.length > 1024 && z.length <= maxCompressedSize(1024), `compressed size ${z.length}`);
      return [zbinary(z)];
    },
    messages: [{ binary: incompressible(1024).toString('hex') }],
  },
  {
    name: 'deflate: context takeover with a 1024-byte window (client_max_window_bits=10) slides over the messages',
    deflate: { clientMaxWindowBits: 10 },
    chunks: () => {
      // A client keeping its window compresses each message against the last 1024 bytes it sent
      // (the same bytes as compressing with them as a preset dictionary). The third message
      // copies bytes from both earlier ones, so a window kept wrongly cannot inflate it.
      const [m1, m2, m3] = windowMessages();
      const compress = (data: Buffer, window: Buffer) =>
        deflateRawSync(data, { windowBits: 10, finishFlush: zlibConstants.Z_SYNC_FLUSH, dictionary: window }).subarray(0, -4);
      const window3 = Buffer.concat([m1, m2]).subarray(-1024);
      assert.ok(compress(m3, window3).length < 40, 'the third message is mostly copies from the window');
      return [zbinary(deflated(m1)), zbinary(compress(m2, m1)), zbinary(compress(m3, window3))];
    },
    messages: windowMessages().map((m) => ({ binary: m.toString('hex') })),
  },
];

for (const c of okCases) {
  const check = (rec: Recorder, conn: WebSocketConnection): void => {
    assert.deepEqual(rec.messages, c.messages);
    if (c.written !== undefined) assert.equal(written(rec), hex(c.written).toString('hex'));
    else assert.equal(written(rec), '');
    assert.deepEqual(rec.pongs, c.pongs ?? []);
    assert.deepEqual(rec.closes, []);
    assert.equal(rec.ends, 0);
    assert.equal(conn.state, ConnectionState.OPEN);
  };

  test(`ok: ${c.name} (frame by frame)`, () => {
    const { conn, rec } = connect(c.options, true, c.deflate);
    feed(conn, c.chunks());
    check(rec, conn);
    assert.equal(rec.activity, c.chunks().length, 'onActivity once per frame');
  });

  test(`ok: ${c.name} (one chunk)`, () => {
    const { conn, rec } = connect(c.options, true, c.deflate);
    feed(conn, [Buffer.concat(c.chunks())]);
    check(rec, conn);
  });

  test(`ok: ${c.name} (byte by byte)`, () => {
    const { conn, rec } = connect(c.options, true, c.deflate);
    const all = Buffer.concat(c.chunks());
    for (let i = 0; i < all.length; i++) conn.receiveData(Buffer.from(all.subarray(i, i + 1)));
    check(rec, conn);
  });
}

test('ok: a multi-byte text split across two fragments at every byte', () => {
  const bytes = Buffer.from('aé€😀z');
  for (let cut = 0; cut <= bytes.length; cut++) {
    const { conn, rec } = connect();
    feed(conn, [text(bytes.subarray(0, cut), false), cont(bytes.subarray(cut))]);
    assert.deepEqual(rec.messages, [{ text: 'aé€😀z' }], `cut at ${cut}`);
    assert.deepEqual(rec.closes, []);
  }
});

test('ok: a delivered binary message is a copy, not a view of the received chunk', () => {
  const received: Buffer[] = [];
  const conn = new WebSocketConnection({
    onWrite: () => {}, onMessage: (data) => { if (Buffer.isBuffer(data)) received.push(data); }, onClose: () => {}, onEndTransport: () => {},
  }, DEFAULTS);
  conn.accept();
  const whole = binary(hex('01020304'));
  const fragments = [binary(hex('05'), false), cont(hex('06'))];
  conn.receiveData(whole);
  for (const f of fragments) conn.receiveData(f);
  // The socket layer may reuse or drop its chunks once receiveData returns.
  whole.fill(0);
  for (const f of fragments) f.fill(0);
  assert.deepEqual(received.map((b) => b.toString('hex')), ['01020304', '0506']);
});

// ---------------------------------------------------------------------------------------------
// Before accept(): nothing is processed.

test('before accept(): received frames are not processed, nothing written, no callbacks', () => {
  const { conn, rec } = connect({}, false);
  assert.equal(conn.state, ConnectionState.CONNECTING);
  feed(conn, [text('Hello'), ping('p'), hex('81 05 48656c6c6f'), close('03e8')]);
  assert.deepEqual(rec.messages, []);
  assert.equal(written(rec), '');
  assert.deepEqual(rec.closes, []);
  assert.equal(rec.ends, 0);
  assert.equal(rec.activity, 0);
  assert.equal(conn.state, ConnectionState.CONNECTING);
});

test('accept(): moves to OPEN, after which messages flow', () => {
  const { conn, rec } = connect({}, false);
  conn.accept();
  assert.equal(conn.state, ConnectionState.OPEN);
  feed(conn, [text('Hello')]);
  assert.deepEqual(rec.messages, [{ text: 'Hello' }]);
});

test('accept(): a second call, or one after CLOSED, changes nothing', () => {
  const { conn, rec } = connect();
  conn.accept();
  assert.equal(conn.state, ConnectionState.OPEN);
  conn.receiveEof();
  conn.accept();
  assert.equal(conn.state, ConnectionState.CLOSED);
  feed(conn, [text('late')]);
  assert.deepEqual(rec.messages, []);
});

// ---------------------------------------------------------------------------------------------
// Failures: the chunk at which the connection must fail, and its close code.

interface FailCase {
  name: string;
  chunks: () => Buffer[];
  /** Index of the chunk whose arrival must fail the connection. */
  failsAt: number;
  /** The stable name of the rule broken, reported to onProtocolError before the Close is written. */
  error: ErrorCode;
  code: number;
  /** Messages delivered before the failure. */
  messages?: Message[];
  /** What the reported reason must mention (to tell apart errors sharing a close code). */
  reason?: RegExp;
  options?: Partial<ConnectionOptions>;
  /** permessage-deflate negotiated, with these parameters (over NEGOTIATED). */
  deflate?: Partial<DeflateParameters>;
}

const failCases: FailCase[] = [
  // Framing errors from the parser (§5.1, §5.2, §5.5).
  { name: 'unmasked client frame', chunks: () => [hex('81 05 48656c6c6f')], failsAt: 0, error: 'WS_ERR_UNMASKED_FRAME', code: 1002, reason: /mask/ },
  { name: 'unmasked frame after a good one', chunks: () => [text('ok'), hex('82 00')], failsAt: 1, error: 'WS_ERR_UNMASKED_FRAME', code: 1002, messages: [{ text: 'ok' }] },
  { name: 'RSV1 set', chunks: () => [hex('c1 80 00000000')], failsAt: 0, error: 'WS_ERR_RSV_BITS_SET', code: 1002 },
  { name: 'reserved opcode 0x3', chunks: () => [hex('83 80 00000000')], failsAt: 0, error: 'WS_ERR_RESERVED_OPCODE', code: 1002 },
  { name: 'reserved opcode 0xB', chunks: () => [hex('8b 80 00000000')], failsAt: 0, error: 'WS_ERR_RESERVED_OPCODE', code: 1002 },
  { name: 'ping of 126 bytes (header only)', chunks: () => [hex('89 FE 007E')], failsAt: 0, error: 'WS_ERR_CONTROL_FRAME_TOO_LONG', code: 1002 },
  { name: 'fragmented ping', chunks: () => [hex('09 80 00000000')], failsAt: 0, error: 'WS_ERR_FRAGMENTED_CONTROL_FRAME', code: 1002 },
  { name: 'non-minimal length', chunks: () => [hex('81 FE 0005')], failsAt: 0, error: 'WS_ERR_NON_MINIMAL_LENGTH', code: 1002 },

  // Fragmentation rules (§5.4).
  { name: 'continuation with no message', chunks: () => [cont('x')], failsAt: 0, error: 'WS_ERR_UNEXPECTED_CONTINUATION', code: 1002, reason: /continu/ },
  { name: 'non-final continuation with no message', chunks: () => [cont('x', false)], failsAt: 0, error: 'WS_ERR_UNEXPECTED_CONTINUATION', code: 1002 },
  {
    name: 'continuation after a complete message',
    chunks: () => [text('a', false), cont('b'), cont('c')],
    failsAt: 2, error: 'WS_ERR_UNEXPECTED_CONTINUATION',
    code: 1002,
    messages: [{ text: 'ab' }],
  },
  { name: 'new TEXT while a message is fragmented', chunks: () => [text('a', false), text('b')], failsAt: 1, error: 'WS_ERR_EXPECTED_CONTINUATION', code: 1002 },
  { name: 'new non-final TEXT while fragmented', chunks: () => [text('a', false), text('b', false)], failsAt: 1, error: 'WS_ERR_EXPECTED_CONTINUATION', code: 1002 },
  { name: 'BINARY while a text message is fragmented', chunks: () => [text('a', false), binary('b')], failsAt: 1, error: 'WS_ERR_EXPECTED_CONTINUATION', code: 1002 },
  {
    name: 'new TEXT while fragmented fails on its header alone',
    chunks: () => [binary('a', false), hex('81 85')],
    failsAt: 1, error: 'WS_ERR_EXPECTED_CONTINUATION',
    code: 1002,
  },

  // UTF-8 (§8.1).
  { name: 'invalid UTF-8 in a single frame (FF)', chunks: () => [text(hex('41 ff'))], failsAt: 0, error: 'WS_ERR_INVALID_UTF8', code: 1007 },
  { name: 'surrogate in a single frame (ED A0 80)', chunks: () => [text(hex('ed a0 80'))], failsAt: 0, error: 'WS_ERR_INVALID_UTF8', code: 1007 },
  { name: 'overlong in a single frame (C0 AF)', chunks: () => [text(hex('c0 af'))], failsAt: 0, error: 'WS_ERR_INVALID_UTF8', code: 1007 },
  { name: 'single text frame ending mid-sequence', chunks: () => [text(hex('41 e2 82'))], failsAt: 0, error: 'WS_ERR_INVALID_UTF8', code: 1007 },
  {
    name: 'invalid UTF-8 across fragments fails at the fragment where it becomes invalid',
    chunks: () => [text(hex('41 ce'), false), cont(hex('41'), false), cont(hex('42'))],
    failsAt: 1, error: 'WS_ERR_INVALID_UTF8',
    code: 1007,
  },
  {
    name: 'invalid first fragment fails before the message is complete',
    chunks: () => [text(hex('ff'), false), cont('a', false), cont('b')],
    failsAt: 0, error: 'WS_ERR_INVALID_UTF8',
    code: 1007,
  },
  {
    name: 'overlong split across fragments (E0 | 80 80)',
    chunks: () => [text(hex('e0'), false), cont(hex('80 80'), false), cont('')],
    failsAt: 1, error: 'WS_ERR_INVALID_UTF8',
    code: 1007,
  },
  {
    name: 'fragmented text ending mid-sequence',
    chunks: () => [text(hex('41 e2'), false), cont(hex('82'))],
    failsAt: 1, error: 'WS_ERR_INVALID_UTF8',
    code: 1007,
  },
  {
    name: 'fragmented text ending mid-sequence with an empty final fragment',
    chunks: () => [text(hex('e2 82'), false), cont('')],
    failsAt: 1, error: 'WS_ERR_INVALID_UTF8',
    code: 1007,
  },

  // Size bounds (our --ws-max-size, and the fragment count).
  {
    name: 'message over maxMessageSize fails on the header alone (16-bit length)',
    chunks: () => [hex('82 FE 0401')], // masked binary announcing 1025 bytes; no key, no payload
    failsAt: 0, error: 'WS_ERR_MESSAGE_TOO_BIG',
    code: 1009,
  },
  {
    name: 'message over maxMessageSize fails on the header alone (64-bit length)',
    chunks: () => [hex('81 FF 0000000100000000')], // 4 GiB announced
    failsAt: 0, error: 'WS_ERR_MESSAGE_TOO_BIG',
    code: 1009,
  },
  {
    name: 'over the limit across fragments fails on the header of the fragment that crosses it',
    chunks: () => [binary(pattern(1000), false), hex('80 99')], // 1000 + 25 > 1024
    failsAt: 1, error: 'WS_ERR_MESSAGE_TOO_BIG',
    code: 1009,
  },
  {
    name: 'over the limit across many small fragments',
    chunks: () => [text('a'.repeat(400), false), cont('b'.repeat(400), false), cont('c'.repeat(225))],
    failsAt: 2, error: 'WS_ERR_MESSAGE_TOO_BIG',
    code: 1009,
    options: { maxFragments: 100 },
  },
  {
    name: 'more than maxFragments fragments (WS_ERR_TOO_MANY_FRAGMENTS)',
    chunks: () => [text('a', false), cont('b', false), cont('c', false), cont('d', false), cont('e')],
    failsAt: 4, error: 'WS_ERR_TOO_MANY_FRAGMENTS',
    code: 1009,
    reason: /fragment/,
  },
  {
    name: 'more than maxFragments fragments fails on the header alone',
    chunks: () => [binary('', false), cont('', false), hex('00 80')],
    failsAt: 2, error: 'WS_ERR_TOO_MANY_FRAGMENTS',
    code: 1009,
    options: { maxFragments: 2 },
  },

  // UTF-8 inside a large frame: checked as its bytes arrive, not once it is complete (§8.1).
  {
    name: 'invalid UTF-8 in the first bytes of a large text frame fails before the rest arrives',
    chunks: () => {
      const frame = text(Buffer.concat([hex('41 ff'), Buffer.alloc(1000, 0x61)]));
      return [frame.subarray(0, 20), frame.subarray(20)];
    },
    failsAt: 0, error: 'WS_ERR_INVALID_UTF8',
    code: 1007,
  },
  {
    name: 'a surrogate split across two chunks of one frame fails at its second chunk',
    chunks: () => {
      const frame = text(Buffer.concat([Buffer.alloc(100, 0x61), hex('ed a0 80'), Buffer.alloc(100, 0x61)]));
      // A 203-byte payload: a 4-byte header and the masking key come first.
      return [frame.subarray(0, 8 + 101), frame.subarray(8 + 101, 8 + 103), frame.subarray(8 + 103)];
    },
    failsAt: 1, error: 'WS_ERR_INVALID_UTF8',
    code: 1007,
  },
  {
    name: 'invalid UTF-8 in a large continuation of a text message fails with its first chunk',
    chunks: () => {
      const last = cont(Buffer.concat([hex('c0 af'), Buffer.alloc(500, 0x61)]));
      return [text('ok', false), last.subarray(0, 12), last.subarray(12)];
    },
    failsAt: 1, error: 'WS_ERR_INVALID_UTF8',
    code: 1007,
  },

  // permessage-deflate (RFC 7692).
  { name: 'deflate: RSV1 without permessage-deflate negotiated', chunks: () => [ztext('f2 48 cd c9 c9 07 00')], failsAt: 0, error: 'WS_ERR_RSV_BITS_SET', code: 1002 },
  { name: 'deflate: RSV1 on a ping (§6.1)', deflate: {}, chunks: () => [withRsv1(ping('p'))], failsAt: 0, error: 'WS_ERR_RSV1_ON_CONTROL_FRAME', code: 1002 },
  { name: 'deflate: RSV1 on a close (§6.1)', deflate: {}, chunks: () => [withRsv1(close('03e8'))], failsAt: 0, error: 'WS_ERR_RSV1_ON_CONTROL_FRAME', code: 1002 },
  {
    name: 'deflate: RSV1 on a continuation (§6.1)',
    deflate: {},
    chunks: () => [ztext('f2 48 cd', false), withRsv1(cont(hex('c9 c9 07 00')))],
    failsAt: 1, error: 'WS_ERR_RSV1_ON_CONTINUATION',
    code: 1002,
  },
  { name: 'deflate: RSV2 is still reserved', deflate: {}, chunks: () => [hex('a1 80 00000000')], failsAt: 0, error: 'WS_ERR_RSV_BITS_SET', code: 1002 },
  { name: 'deflate: data that is not DEFLATE', deflate: {}, chunks: () => [ztext('ff ff ff ff')], failsAt: 0, error: 'WS_ERR_INVALID_COMPRESSED_DATA', code: 1007, reason: /invalid block type/ },
  {
    name: 'deflate: invalid data in the last fragment fails when the message completes',
    deflate: {},
    chunks: () => [zbinary(hex('ff'), false), cont(hex('ff ff'), false), cont(hex('ff'))],
    failsAt: 2, error: 'WS_ERR_INVALID_COMPRESSED_DATA',
    code: 1007,
  },
  {
    name: 'deflate: a back-reference with no window before it (a first message cannot refer back)',
    deflate: {},
    chunks: () => [ztext('f2 00 11 00 00')],
    failsAt: 0, error: 'WS_ERR_INVALID_COMPRESSED_DATA',
    code: 1007, reason: /too far back/,
  },
  {
    name: 'deflate: client_no_context_takeover: nothing is kept, a reference to the previous message fails',
    deflate: { clientNoContextTakeover: true },
    chunks: () => [ztext('f2 48 cd c9 c9 07 00'), ztext('f2 00 11 00 00')],
    failsAt: 1, error: 'WS_ERR_INVALID_COMPRESSED_DATA',
    code: 1007,
    messages: [{ text: 'Hello' }],
  },
  {
    name: 'deflate: compressed text that inflates to invalid UTF-8',
    deflate: {},
    chunks: () => [withRsv1(text(deflated(hex('41 ff 42'))))],
    failsAt: 0, error: 'WS_ERR_INVALID_UTF8',
    code: 1007,
  },
  {
    name: 'deflate: compressed text ending inside a character',
    deflate: {},
    chunks: () => [withRsv1(text(deflated(hex('41 e2 82'))))],
    failsAt: 0, error: 'WS_ERR_INVALID_UTF8',
    code: 1007,
  },
  {
    name: 'deflate: a bomb (20 MiB of one byte, 20 KB compressed) fails with 1009 at the limit',
    deflate: {},
    chunks: () => [zbinary(deflated(Buffer.alloc(20 * 1024 * 1024, 0x61)))],
    failsAt: 0, error: 'WS_ERR_MESSAGE_TOO_BIG',
    code: 1009, reason: /inflates to more than the 65536-byte limit/,
    options: { maxMessageSize: 65536 },
  },
  {
    name: 'deflate: one byte more than maxMessageSize, inflated',
    deflate: {},
    chunks: () => [zbinary(deflated(pattern(1025)))],
    failsAt: 0, error: 'WS_ERR_MESSAGE_TOO_BIG',
    code: 1009,
  },
  {
    name: 'deflate: a compressed message whose wire size passes the bound fails on its header alone',
    deflate: {},
    chunks: () => [withRsv1(hex(`82 fe ${(maxCompressedSize(1024) + 1).toString(16).padStart(4, '0')}`))],
    failsAt: 0, error: 'WS_ERR_MESSAGE_TOO_BIG',
    code: 1009,
  },
  {
    name: 'deflate: compressed fragments whose wire size passes the bound',
    deflate: {},
    chunks: () => [withRsv1(binary(Buffer.alloc(1000), false)), cont(Buffer.alloc(maxCompressedSize(1024) - 1000 + 1))],
    failsAt: 1, error: 'WS_ERR_MESSAGE_TOO_BIG',
    code: 1009,
  },

  // Close frames (§5.5.1, §7.4).
  { name: 'close with a 1-byte payload', chunks: () => [close('03')], failsAt: 0, error: 'WS_ERR_INVALID_CLOSE_PAYLOAD', code: 1002 },
  { name: 'close reason that is not UTF-8', chunks: () => [close('03e8 ff')], failsAt: 0, error: 'WS_ERR_INVALID_UTF8', code: 1007 },
  { name: 'close reason with a surrogate', chunks: () => [close('03e8 eda080')], failsAt: 0, error: 'WS_ERR_INVALID_UTF8', code: 1007 },
  { name: 'close reason ending mid-sequence', chunks: () => [close('03e8 41 e2')], failsAt: 0, error: 'WS_ERR_INVALID_UTF8', code: 1007 },
  ...[0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535].map((code): FailCase => ({
    name: `close code ${code} must not be sent`,
    chunks: () => [close(code.toString(16).padStart(4, '0'))],
    failsAt: 0, error: 'WS_ERR_INVALID_CLOSE_CODE',
    code: 1002,
  })),
];

for (const c of failCases) {
  test(`fail: ${c.name} → ${c.error}, ${c.code}`, () => {
    const { conn, rec } = connect(c.options, true, c.deflate);
    const chunks = c.chunks();
    feed(conn, chunks.slice(0, c.failsAt));
    assert.deepEqual(rec.closes, [], 'failed too early');
    assert.equal(conn.state, ConnectionState.OPEN);
    const writesBefore = rec.writes.length;
    feed(conn, [chunks[c.failsAt]!]);
    assertFailed(conn, rec, c.code, writesBefore);
    assertReported(rec, c.error, c.code);
    if (c.reason) assert.match(rec.closes[0]![1], c.reason);
    // Nothing fed afterwards changes anything: no message, no write, no second onClose.
    const writes = rec.writes.length;
    feed(conn, [...chunks.slice(c.failsAt + 1), text('after'), ping('after'), close('03e8')]);
    conn.receiveEof();
    assert.deepEqual(rec.messages, c.messages ?? []);
    assert.equal(rec.writes.length, writes);
    assert.equal(rec.closes.length, 1);
    assert.equal(rec.ends, 1);
  });

  test(`fail: ${c.name} → ${c.error}, ${c.code} (everything in one chunk)`, () => {
    const { conn, rec } = connect(c.options, true, c.deflate);
    feed(conn, [Buffer.concat([...c.chunks(), text('after')])]);
    assertFailed(conn, rec, c.code);
    assertReported(rec, c.error, c.code);
    assert.deepEqual(rec.messages, c.messages ?? []);
  });
}

// ---------------------------------------------------------------------------------------------
// The peer's Close (§5.5.1, §7.1.5): answer, report, end TCP.

interface CloseCase {
  name: string;
  payload: string;
  /** Exact hex of our answer. */
  answer: string;
  code: number;
  reason: string;
}

const closeCases: CloseCase[] = [
  { name: 'empty payload: empty answer, 1005 reported', payload: '', answer: '88 00', code: 1005, reason: '' },
  { name: '1000 "bye": echo 1000', payload: '03e8 627965', answer: '88 02 03e8', code: 1000, reason: 'bye' },
  { name: '1001 with a UTF-8 reason', payload: '03e9 c3a9 e282ac', answer: '88 02 03e9', code: 1001, reason: 'é€' },
  {
    name: '1000 with a 123-byte reason (the largest close payload)',
    payload: '03e8' + '61'.repeat(123),
    answer: '88 02 03e8',
    code: 1000,
    reason: 'a'.repeat(123),
  },
  ...[1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999].map((code): CloseCase => {
    const wire = code.toString(16).padStart(4, '0');
    return { name: `code ${code} accepted and echoed`, payload: wire, answer: `88 02 ${wire}`, code, reason: '' };
  }),
];

for (const c of closeCases) {
  test(`peer close: ${c.name}`, () => {
    const { conn, rec } = connect();
    feed(conn, [close(c.payload)]);
    assert.equal(written(rec), hex(c.answer).toString('hex'));
    assert.deepEqual(rec.closes, [[c.code, c.reason]]);
    assert.equal(rec.ends, 1);
    assert.deepEqual(rec.log, ['write', 'close', 'end'], 'answer, then onClose, then onEndTransport');
    assert.equal(conn.state, ConnectionState.CLOSED);
  });
}

test('peer close: fed byte by byte', () => {
  const { conn, rec } = connect();
  const frame = close('03e8 627965');
  for (let i = 0; i < frame.length; i++) conn.receiveData(Buffer.from(frame.subarray(i, i + 1)));
  assert.equal(written(rec), '880203e8');
  assert.deepEqual(rec.closes, [[1000, 'bye']]);
});

test('peer close: data after the close frame in the same chunk is ignored', () => {
  const { conn, rec } = connect();
  feed(conn, [Buffer.concat([text('before'), close('03e8'), text('after'), ping('p'), hex('ff ff ff')])]);
  assert.deepEqual(rec.messages, [{ text: 'before' }]);
  assert.equal(written(rec), '880203e8');
  assert.deepEqual(rec.closes, [[1000, '']]);
  assert.equal(rec.ends, 1);
});

test('peer close: data in later chunks is ignored, and EOF reports nothing more', () => {
  const { conn, rec } = connect();
  feed(conn, [close('03e8'), text('after'), hex('81 05 48656c6c6f')]);
  conn.receiveEof();
  assert.deepEqual(rec.messages, []);
  assert.equal(written(rec), '880203e8');
  assert.deepEqual(rec.closes, [[1000, '']]);
  assert.equal(rec.ends, 1);
});

test('peer close: in the middle of a fragmented message, the partial message is dropped', () => {
  const { conn, rec } = connect();
  feed(conn, [text('par', false), close('03e9'), cont('tial')]);
  assert.deepEqual(rec.messages, []);
  assert.equal(written(rec), '880203e9');
  assert.deepEqual(rec.closes, [[1001, '']]);
});

// ---------------------------------------------------------------------------------------------
// Server-initiated close (§7.1.2): CLOSING until the peer's Close.

test('close(): writes the Close frame with code and reason, state CLOSING, no onClose yet', () => {
  const { conn, rec } = connect();
  conn.close(1001, 'bye');
  assert.equal(written(rec), hex('88 05 03e9 627965').toString('hex'));
  assert.equal(conn.state, ConnectionState.CLOSING);
  assert.deepEqual(rec.closes, []);
  assert.equal(rec.ends, 0);
});

test('close(): defaults to 1000 with no reason', () => {
  const { conn, rec } = connect();
  conn.close();
  assert.equal(written(rec), '880203e8');
});

test('close(): a second call writes nothing more', () => {
  const { conn, rec } = connect();
  conn.close(1000);
  conn.close(1001, 'again');
  assert.equal(written(rec), '880203e8');
  assert.equal(conn.state, ConnectionState.CLOSING);
});

test('close(): data frames received while CLOSING are discarded, the peer\'s Close completes it', () => {
  const { conn, rec } = connect();
  conn.close(1001, 'bye');
  const writes = rec.writes.length;
  feed(conn, [text('ignored'), binary(hex('01')), text('frag', false), cont('mented')]);
  assert.deepEqual(rec.messages, []);
  assert.equal(conn.state, ConnectionState.CLOSING);
  feed(conn, [close('03e8 6f6b')]);
  assert.equal(conn.state, ConnectionState.CLOSED);
  assert.deepEqual(rec.closes, [[1000, 'ok']], 'the peer\'s code and reason');
  assert.equal(rec.ends, 1);
  assert.equal(rec.writes.length, writes, 'no second Close frame: ours was already sent');
  assert.deepEqual(rec.log.slice(-2), ['close', 'end']);
});

test('close(): a fragmented message started while OPEN is dropped when it completes in CLOSING', () => {
  const { conn, rec } = connect();
  feed(conn, [text('Hel', false)]);
  conn.close();
  feed(conn, [cont('lo'), close('03e8')]);
  assert.deepEqual(rec.messages, []);
  assert.deepEqual(rec.closes, [[1000, '']]);
});

test('close(): the peer\'s empty Close while CLOSING reports 1005', () => {
  const { conn, rec } = connect();
  conn.close();
  feed(conn, [close('')]);
  assert.deepEqual(rec.closes, [[1005, '']]);
  assert.equal(written(rec), '880203e8');
});

test('close(): EOF while CLOSING (no answer in time) reports 1006 once', () => {
  const { conn, rec } = connect();
  conn.close();
  conn.receiveEof();
  conn.receiveEof();
  feed(conn, [close('03e8')]);
  assert.deepEqual(rec.closes, [[1006, '']]);
  assert.equal(rec.ends, 1);
  assert.equal(conn.state, ConnectionState.CLOSED);
  assert.equal(written(rec), '880203e8');
});

test('close(): a protocol error while CLOSING reports its code but writes no second Close', () => {
  const { conn, rec } = connect();
  conn.close();
  feed(conn, [hex('81 05 48656c6c6f')]); // unmasked
  assert.deepEqual(rec.closes.map(([code]) => code), [1002]);
  assert.equal(written(rec), '880203e8');
  assert.equal(rec.ends, 1);
  assert.equal(conn.state, ConnectionState.CLOSED);
});

test('close(): an over-long reason still yields a valid control frame (payload ≤ 125 bytes)', () => {
  // §5.5: a control frame's payload is at most 125 bytes, so a Close reason at most 123.
  const { conn, rec } = connect();
  const reason = 'x'.repeat(200);
  conn.close(1000, reason);
  const expected = encodeFrame(Opcode.CLOSE, encodeClosePayload(1000, truncateReason(reason)));
  assert.equal(written(rec), expected.toString('hex'));
  assert.deepEqual(writtenFrames(rec).map((f) => f.payload.length), [125]);
});

test('close(): after the connection is CLOSED does nothing', () => {
  const { conn, rec } = connect();
  conn.receiveEof();
  conn.close();
  assert.equal(written(rec), '');
  assert.equal(conn.state, ConnectionState.CLOSED);
});

// ---------------------------------------------------------------------------------------------
// EOF (§7.1.5: closed without a Close frame → 1006).

for (const [name, setup] of [
  ['CONNECTING', (c: WebSocketConnection) => void c],
  ['OPEN', (c: WebSocketConnection) => c.accept()],
  ['OPEN mid-message', (c: WebSocketConnection) => { c.accept(); c.receiveData(text('par', false)); }],
  ['CLOSING', (c: WebSocketConnection) => { c.accept(); c.close(); }],
] as const) {
  test(`receiveEof() in ${name}: onClose(1006, '') once, then onEndTransport once`, () => {
    const { conn, rec } = connect({}, false);
    setup(conn);
    const writes = rec.writes.length;
    conn.receiveEof();
    conn.receiveEof();
    assert.deepEqual(rec.closes, [[1006, '']]);
    assert.equal(rec.ends, 1);
    assert.deepEqual(rec.log.slice(-2), ['close', 'end']);
    assert.equal(conn.state, ConnectionState.CLOSED);
    assert.equal(rec.writes.length, writes, 'nothing written on EOF');
    feed(conn, [text('late')]);
    assert.deepEqual(rec.messages, []);
  });
}

test('receiveEof() after the peer\'s Close and after a failure: onClose stays at one call', () => {
  const peer = connect();
  feed(peer.conn, [close('03e8')]);
  peer.conn.receiveEof();
  assert.deepEqual(peer.rec.closes, [[1000, '']]);
  assert.equal(peer.rec.ends, 1);

  const failed = connect();
  feed(failed.conn, [cont('x')]);
  failed.conn.receiveEof();
  assert.deepEqual(failed.rec.closes.map(([code]) => code), [1002]);
  assert.equal(failed.rec.ends, 1);
});

// ---------------------------------------------------------------------------------------------
// Sending (server frames are never masked, §5.1).

const sendCases: { name: string; send: (c: WebSocketConnection) => void; hex: string }[] = [
  { name: 'sendText("Hello")', send: (c) => c.sendText('Hello'), hex: '81 05 48656c6c6f' },
  { name: 'sendText("")', send: (c) => c.sendText(''), hex: '81 00' },
  { name: 'sendText multi-byte', send: (c) => c.sendText('é€😀'), hex: '81 09 c3a9 e282ac f09f9880' },
  { name: 'sendText of 126 bytes', send: (c) => c.sendText('a'.repeat(126)), hex: '81 7E 007E' + '61'.repeat(126) },
  { name: 'sendBinary 3 bytes', send: (c) => c.sendBinary(new Uint8Array([1, 2, 3])), hex: '82 03 010203' },
  { name: 'sendBinary 256 bytes', send: (c) => c.sendBinary(pattern(256)), hex: '82 7E 0100' + pattern(256).toString('hex') },
  { name: 'sendBinary 64 KiB', send: (c) => c.sendBinary(pattern(65536)), hex: '82 7F 0000000000010000' + pattern(65536).toString('hex') },
  { name: 'sendFrameBytes(encodeTextFrame("hi"))', send: (c) => c.sendFrameBytes(encodeTextFrame('hi')), hex: '81 02 6869' },
  { name: 'ping()', send: (c) => c.ping(), hex: '89 00' },
  { name: 'ping("hb")', send: (c) => c.ping(Buffer.from('hb')), hex: '89 02 6862' },
  { name: 'two messages in order', send: (c) => { c.sendText('a'); c.sendBinary(hex('bb')); }, hex: '81 01 61 82 01 bb' },
];

for (const c of sendCases) {
  test(`send: ${c.name}`, () => {
    const { conn, rec } = connect();
    c.send(conn);
    assert.equal(written(rec), hex(c.hex).toString('hex'));
  });
}

test('send: sendFrameBytes writes the very Buffer it is given (encode once, broadcast to many)', () => {
  const frame = encodeTextFrame('broadcast');
  const a = connect();
  const b = connect();
  a.conn.sendFrameBytes(frame);
  b.conn.sendFrameBytes(frame);
  assert.equal(a.rec.writes[0], frame);
  assert.equal(b.rec.writes[0], frame);
});

for (const [name, setup] of [
  ['CONNECTING', (_c: WebSocketConnection) => {}],
  ['CLOSING', (c: WebSocketConnection) => { c.accept(); c.close(); }],
  ['CLOSED', (c: WebSocketConnection) => { c.accept(); c.receiveEof(); }],
] as const) {
  test(`send: sendText, sendBinary and sendFrameBytes throw in ${name}, writing nothing`, () => {
    const { conn, rec } = connect({}, false);
    setup(conn);
    const writes = rec.writes.length;
    assert.throws(() => conn.sendText('x'), /not open/);
    assert.throws(() => conn.sendBinary(hex('01')), /not open/);
    assert.throws(() => conn.sendFrameBytes(encodeTextFrame('x')), /not open/);
    conn.ping(); // a heartbeat racing the close is silently skipped, not an error
    assert.equal(rec.writes.length, writes);
  });
}

// ---------------------------------------------------------------------------------------------
// truncateReason: at most 123 bytes, never half a character.

const truncateCases: { name: string; input: string; output: string }[] = [
  { name: 'empty', input: '', output: '' },
  { name: 'short ASCII kept', input: 'bye', output: 'bye' },
  { name: '123 ASCII bytes kept', input: 'a'.repeat(123), output: 'a'.repeat(123) },
  { name: '124 ASCII bytes cut to 123', input: 'a'.repeat(124), output: 'a'.repeat(123) },
  { name: '1000 ASCII bytes cut to 123', input: 'b'.repeat(1000), output: 'b'.repeat(123) },
  { name: 'a 2-byte char ending at byte 123 kept', input: 'a'.repeat(121) + 'é', output: 'a'.repeat(121) + 'é' },
  { name: 'a 2-byte char straddling byte 123 dropped', input: 'a'.repeat(122) + 'é', output: 'a'.repeat(122) },
  { name: 'a 3-byte char straddling byte 123 dropped', input: 'a'.repeat(121) + '€', output: 'a'.repeat(121) },
  { name: 'a 3-byte char ending at byte 123 kept', input: 'a'.repeat(120) + '€', output: 'a'.repeat(120) + '€' },
  { name: 'a 4-byte char straddling byte 123 dropped (no lone surrogate)', input: 'a'.repeat(120) + '😀', output: 'a'.repeat(120) },
  { name: 'a 4-byte char ending at byte 123 kept', input: 'a'.repeat(119) + '😀', output: 'a'.repeat(119) + '😀' },
  { name: '100 × é (200 bytes) → 61 × é (122 bytes)', input: 'é'.repeat(100), output: 'é'.repeat(61) },
  { name: '50 × 😀 (200 bytes) → 30 × 😀 (120 bytes)', input: '😀'.repeat(50), output: '😀'.repeat(30) },
];

for (const c of truncateCases) {
  test(`truncateReason: ${c.name}`, () => {
    const output = truncateReason(c.input);
    assert.equal(output, c.output);
    assert.ok(Buffer.byteLength(output) <= 123);
    assert.ok(c.input.startsWith(output));
    // Whole characters only: the UTF-8 round trip is lossless (no U+FFFD from a split).
    assert.equal(Buffer.from(output).toString('utf8'), output);
  });
}
