// Tests for src/redis/resp.ts: the RESP2/RESP3 reply parser (ReplyParser) and the command encoder
// (encodeCommand, encodeCommands).
//
// Fixtures are the bytes Redis sends, written as text with \r\n (the protocol is text framed, so
// this reads like the spec's examples). The same table runs through the parser whole, byte by
// byte, and in seeded random splits; every bound and every malformation is checked by its stable
// `code`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_PARSER_LIMITS, ReplyParser, encodeCommand, encodeCommands, type ParserLimits, type RespValue } from '../src/redis/resp.js';
import { RedisReplyError, RespProtocolError, type RespErrorCode } from '../src/redis/errors.js';
import { Prng } from '../src/fuzz/prng.js';

interface Parsed { replies: RespValue[]; pushes: RespValue[][] }

/** Parses `bytes` fed as the chunks cut at `cuts`. */
function parse(bytes: Buffer | string, cuts: number[] = [], options: { buffers?: boolean; limits?: Partial<ParserLimits> } = {}): Parsed {
  const input = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
  const replies: RespValue[] = [];
  const pushes: RespValue[][] = [];
  const parser = new ReplyParser({
    limits: options.limits,
    onReply: (reply) => replies.push(reply),
    onPush: (message) => pushes.push(message),
    bulkAsBuffer: () => options.buffers === true,
  });
  let start = 0;
  for (const cut of [...cuts, input.length]) {
    parser.push(input.subarray(start, cut));
    start = cut;
  }
  assert.equal(parser.inReply, false, 'a whole fixture leaves no reply in progress');
  return { replies, pushes };
}

const byteByByte = (length: number): number[] => Array.from({ length: Math.max(0, length - 1) }, (_, i) => i + 1);

/** Random cut points, sorted, from a seeded generator (so a failure can be replayed). */
function randomCuts(length: number, prng: Prng): number[] {
  const cuts = new Set<number>();
  const count = prng.int(Math.max(1, Math.min(length, 8)));
  for (let i = 0; i < count; i++) cuts.add(1 + prng.int(Math.max(1, length - 1)));
  return [...cuts].filter((c) => c < length).sort((a, b) => a - b);
}

/** Asserts that parsing throws a RespProtocolError with this code. */
function assertProtocolError(bytes: string | Buffer, code: RespErrorCode, limits?: Partial<ParserLimits>, cuts: number[] = []): void {
  assert.throws(() => parse(bytes, cuts, { limits }), (error: unknown) => {
    assert.ok(error instanceof RespProtocolError, `expected a RespProtocolError, got ${String(error)}`);
    assert.equal(error.code, code, `${JSON.stringify(String(bytes))}: ${error.message}`);
    return true;
  });
}

/** A reply error, compared by its text and code. */
const replyError = (text: string): { error: string; code: string } => {
  const e = new RedisReplyError(text);
  return { error: e.message, code: e.code };
};

/** Replies with RedisReplyError (and Map) turned into plain values deepEqual can compare. */
function plain(value: RespValue): unknown {
  if (value instanceof RedisReplyError) return { error: value.message, code: value.code };
  if (Array.isArray(value)) return value.map(plain);
  if (value instanceof Map) return new Map([...value].map(([k, v]) => [plain(k), plain(v)]));
  return value;
}

interface Case { name: string; bytes: string; replies: unknown[]; pushes?: unknown[][] }

const RESP2: Case[] = [
  { name: 'simple string', bytes: '+OK\r\n', replies: ['OK'] },
  { name: 'empty simple string', bytes: '+\r\n', replies: [''] },
  { name: 'error', bytes: '-ERR unknown command \'FOO\'\r\n', replies: [replyError("ERR unknown command 'FOO'")] },
  { name: 'error with its own code', bytes: '-WRONGTYPE Operation against a key holding the wrong kind of value\r\n', replies: [{ error: 'WRONGTYPE Operation against a key holding the wrong kind of value', code: 'WRONGTYPE' }] },
  { name: 'NOSCRIPT error', bytes: '-NOSCRIPT No matching script. Please use EVAL.\r\n', replies: [{ error: 'NOSCRIPT No matching script. Please use EVAL.', code: 'NOSCRIPT' }] },
  { name: 'integer', bytes: ':1000\r\n', replies: [1000] },
  { name: 'negative integer', bytes: ':-42\r\n', replies: [-42] },
  { name: 'zero', bytes: ':0\r\n', replies: [0] },
  { name: 'integer beyond 2^53 as bigint', bytes: ':9223372036854775807\r\n', replies: [9223372036854775807n] },
  { name: 'bulk string', bytes: '$5\r\nhello\r\n', replies: ['hello'] },
  { name: 'empty bulk string', bytes: '$0\r\n\r\n', replies: [''] },
  { name: 'bulk string holding CR LF', bytes: '$4\r\n\r\n\r\n\r\n', replies: ['\r\n\r\n'] },
  { name: 'UTF-8 bulk string', bytes: '$6\r\nh€llo\r\n'.replace('$6', `$${Buffer.byteLength('h€llo')}`), replies: ['h€llo'] },
  { name: 'null bulk string', bytes: '$-1\r\n', replies: [null] },
  { name: 'array', bytes: '*2\r\n$3\r\nfoo\r\n:7\r\n', replies: [['foo', 7]] },
  { name: 'empty array', bytes: '*0\r\n', replies: [[]] },
  { name: 'null array', bytes: '*-1\r\n', replies: [null] },
  { name: 'nested arrays (an XRANGE reply)', bytes: '*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$4\r\ntext\r\n$2\r\nhi\r\n', replies: [[['1-0', ['text', 'hi']]]] },
  { name: 'array holding an error (EXEC)', bytes: '*2\r\n+OK\r\n-ERR no\r\n', replies: [['OK', replyError('ERR no')]] },
  { name: 'array with an empty array and a null inside', bytes: '*3\r\n*0\r\n$-1\r\n*-1\r\n', replies: [[[], null, null]] },
  { name: 'several replies in a row', bytes: '+OK\r\n:1\r\n$1\r\nx\r\n', replies: ['OK', 1, 'x'] },
];

const RESP3: Case[] = [
  { name: 'null', bytes: '_\r\n', replies: [null] },
  { name: 'true', bytes: '#t\r\n', replies: [true] },
  { name: 'false', bytes: '#f\r\n', replies: [false] },
  { name: 'double', bytes: ',3.14\r\n', replies: [3.14] },
  { name: 'double with exponent', bytes: ',1.5e+10\r\n', replies: [1.5e10] },
  { name: 'integral double', bytes: ',-10\r\n', replies: [-10] },
  { name: 'inf', bytes: ',inf\r\n', replies: [Infinity] },
  { name: '-inf', bytes: ',-inf\r\n', replies: [-Infinity] },
  { name: 'nan', bytes: ',nan\r\n', replies: [NaN] },
  { name: 'big number', bytes: '(3492890328409238509324850943850943825024385\r\n', replies: [3492890328409238509324850943850943825024385n] },
  { name: 'negative big number', bytes: '(-12\r\n', replies: [-12n] },
  { name: 'blob error', bytes: '!21\r\nSYNTAX invalid syntax\r\n', replies: [{ error: 'SYNTAX invalid syntax', code: 'SYNTAX' }] },
  { name: 'verbatim string', bytes: '=15\r\ntxt:Some string\r\n', replies: ['Some string'] },
  { name: 'empty verbatim string', bytes: '=4\r\nmkd:\r\n', replies: [''] },
  { name: 'map', bytes: '%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n', replies: [new Map<unknown, unknown>([['first', 1], ['second', 2]])] },
  { name: 'empty map', bytes: '%0\r\n', replies: [new Map()] },
  { name: 'map of arrays (XREAD in RESP3)', bytes: '%1\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nk\r\n$1\r\nv\r\n', replies: [new Map<unknown, unknown>([['s', [['1-0', ['k', 'v']]]]])] },
  { name: 'set (as an array)', bytes: '~3\r\n+a\r\n+b\r\n:1\r\n', replies: [['a', 'b', 1]] },
  { name: 'attribute before a value is skipped', bytes: '|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*2\r\n:2039123\r\n:9543892\r\n', replies: [[2039123, 9543892]] },
  { name: 'attribute inside an array is skipped', bytes: '*2\r\n:1\r\n|1\r\n+ttl\r\n:3600\r\n:2\r\n', replies: [[1, 2]] },
  { name: 'empty attribute', bytes: '|0\r\n+OK\r\n', replies: ['OK'] },
  { name: 'push', bytes: '>3\r\n$7\r\nmessage\r\n$4\r\nchan\r\n$5\r\nhello\r\n', replies: [], pushes: [['message', 'chan', 'hello']] },
  { name: 'push between replies', bytes: ':1\r\n>2\r\n+invalidate\r\n*1\r\n$1\r\nk\r\n:2\r\n', replies: [1, 2], pushes: [['invalidate', ['k']]] },
  { name: 'a HELLO 3 reply (a map with an array inside)', bytes: '%3\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:3\r\n$7\r\nmodules\r\n*0\r\n', replies: [new Map<unknown, unknown>([['server', 'redis'], ['proto', 3], ['modules', []]])] },
];

for (const [protocol, cases] of [['RESP2', RESP2], ['RESP3', RESP3]] as const) {
  for (const c of cases) {
    test(`${protocol} ${c.name}: whole, byte by byte and in random splits`, () => {
      const bytes = Buffer.from(c.bytes, 'utf8');
      const expected = { replies: c.replies, pushes: c.pushes ?? [] };
      const check = (cuts: number[], how: string): void => {
        const { replies, pushes } = parse(bytes, cuts);
        assert.deepEqual({ replies: replies.map(plain), pushes: pushes.map((p) => p.map(plain)) }, expected, `${how} (cuts ${cuts.join(',')})`);
      };
      check([], 'whole');
      check(byteByByte(bytes.length), 'byte by byte');
      const prng = new Prng(0x5e5, bytes.length);
      for (let i = 0; i < 20; i++) check(randomCuts(bytes.length, prng), `random split ${i}`);
    });
  }
}

test('every fixture back to back, as one stream, in random splits', () => {
  const all = [...RESP2, ...RESP3];
  const bytes = Buffer.from(all.map((c) => c.bytes).join(''), 'utf8');
  const replies = all.flatMap((c) => c.replies);
  const pushes = all.flatMap((c) => c.pushes ?? []);
  const prng = new Prng(7);
  for (let i = 0; i < 50; i++) {
    const cuts = [...new Set(Array.from({ length: 1 + prng.int(40) }, () => 1 + prng.int(bytes.length - 1)))].sort((a, b) => a - b);
    const parsed = parse(bytes, cuts);
    assert.deepEqual(parsed.replies.map(plain), replies);
    assert.deepEqual(parsed.pushes.map((p) => p.map(plain)), pushes);
  }
  const oneByOne = parse(bytes, byteByByte(bytes.length));
  assert.deepEqual(oneByOne.replies.map(plain), replies);
});

test('bulk strings as Buffers when asked: binary bytes intact, each Buffer owning exactly its bytes', () => {
  const binary = Buffer.from([0x00, 0xff, 0xfe, 0x0d, 0x0a, 0x80]);
  const bytes = Buffer.concat([Buffer.from('*2\r\n$6\r\n'), binary, Buffer.from('\r\n=7\r\ntxt:\xff\xfe\xfd\r\n', 'latin1')]);
  for (const cuts of [[], byteByByte(bytes.length)]) {
    const { replies } = parse(bytes, cuts, { buffers: true });
    const [first, second] = replies[0] as Buffer[];
    assert.ok(Buffer.isBuffer(first) && Buffer.isBuffer(second));
    assert.deepEqual(first, binary);
    assert.deepEqual(second, Buffer.from([0xff, 0xfe, 0xfd]));
    for (const buffer of [first, second]) {
      assert.equal(buffer.byteOffset, 0, 'not a view into a socket chunk');
      assert.equal(buffer.buffer.byteLength, buffer.length, 'owns exactly its bytes');
    }
  }
  // Simple strings stay strings; as strings, the same bytes would be lossy UTF-8.
  assert.deepEqual(parse('+OK\r\n', [], { buffers: true }).replies, ['OK']);
});

test('the parser asks bulkAsBuffer once per reply, as each one starts', () => {
  const modes = [true, false, true];
  const asked: number[] = [];
  const replies: RespValue[] = [];
  let n = 0;
  const parser = new ReplyParser({
    onReply: (r) => replies.push(r),
    bulkAsBuffer: () => { asked.push(n); return modes[n++]!; },
  });
  parser.push(Buffer.from('$1\r\na\r\n*2\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n'));
  assert.deepEqual(asked, [0, 1, 2]);
  assert.deepEqual(replies, [Buffer.from('a'), ['b', 'c'], Buffer.from('d')]);
});

// ---------------------------------------------------------------------------------------------
// Bounds: each fails with its code, at the header, and a value exactly at the bound passes.

test('maxBulkBytes: a longer bulk string fails on its header; one at the bound passes', () => {
  assertProtocolError('$11\r\n', 'RESP_ERR_BULK_TOO_LONG', { maxBulkBytes: 10 });
  assertProtocolError('!11\r\n', 'RESP_ERR_BULK_TOO_LONG', { maxBulkBytes: 10 });
  assertProtocolError('=11\r\n', 'RESP_ERR_BULK_TOO_LONG', { maxBulkBytes: 10 });
  assert.deepEqual(parse('$10\r\n0123456789\r\n', [], { limits: { maxBulkBytes: 10 } }).replies, ['0123456789']);
  // The default refuses Redis's own 512 MiB maximum before allocating anything.
  assertProtocolError(`$${512 * 1024 * 1024}\r\n`, 'RESP_ERR_BULK_TOO_LONG');
  assert.equal(DEFAULT_PARSER_LIMITS.maxBulkBytes, 16 * 1024 * 1024);
});

test('maxElements: arrays, sets, pushes by element, maps and attributes by pair (two elements each)', () => {
  for (const type of ['*', '~', '>']) {
    assertProtocolError(`${type}5\r\n`, 'RESP_ERR_TOO_MANY_ELEMENTS', { maxElements: 4 });
  }
  assertProtocolError('%3\r\n', 'RESP_ERR_TOO_MANY_ELEMENTS', { maxElements: 4 });
  assertProtocolError('|3\r\n', 'RESP_ERR_TOO_MANY_ELEMENTS', { maxElements: 4 });
  assert.deepEqual(parse('*4\r\n:1\r\n:2\r\n:3\r\n:4\r\n', [], { limits: { maxElements: 4 } }).replies, [[1, 2, 3, 4]]);
  assert.equal(parse('%2\r\n:1\r\n:2\r\n:3\r\n:4\r\n', [], { limits: { maxElements: 4 } }).replies.length, 1);
});

test('maxDepth: aggregates nested deeper fail; at the bound they pass', () => {
  assertProtocolError('*1\r\n*1\r\n*1\r\n*1\r\n', 'RESP_ERR_TOO_DEEP', { maxDepth: 3 });
  assertProtocolError('%1\r\n:1\r\n*1\r\n~1\r\n*0\r\n', 'RESP_ERR_TOO_DEEP', { maxDepth: 3 });
  assert.deepEqual(parse('*1\r\n*1\r\n*1\r\n:1\r\n', [], { limits: { maxDepth: 3 } }).replies, [[[[1]]]]);
  // The default (16) is refused by a deep enough nesting, and never by the chat's replies (depth 4).
  assertProtocolError('*1\r\n'.repeat(17), 'RESP_ERR_TOO_DEEP');
});

test('maxLineBytes: a longer line fails even before its CR arrives', () => {
  assertProtocolError(`+${'x'.repeat(11)}`, 'RESP_ERR_LINE_TOO_LONG', { maxLineBytes: 10 });
  assertProtocolError(`-${'x'.repeat(11)}\r\n`, 'RESP_ERR_LINE_TOO_LONG', { maxLineBytes: 10 }, byteByByte(13));
  assert.deepEqual(parse(`+${'x'.repeat(10)}\r\n`, byteByByte(13), { limits: { maxLineBytes: 10 } }).replies, ['x'.repeat(10)]);
});

test('maxBufferedBytes: one reply taking more bytes fails, refused on a bulk header that announces too much', () => {
  // *3 $4 abcd ... : 4+10+10+10 = 34 bytes
  const reply = '*3\r\n$4\r\nabcd\r\n$4\r\nefgh\r\n$4\r\nijkl\r\n';
  assert.equal(Buffer.byteLength(reply), 34);
  assert.deepEqual(parse(reply, [], { limits: { maxBufferedBytes: 34 } }).replies, [['abcd', 'efgh', 'ijkl']]);
  assertProtocolError(reply, 'RESP_ERR_REPLY_TOO_BIG', { maxBufferedBytes: 33 });
  // A header announcing a string beyond the budget fails before its bytes arrive.
  assertProtocolError('*2\r\n$100\r\n', 'RESP_ERR_REPLY_TOO_BIG', { maxBufferedBytes: 100 });
  // Many small elements count too, not only big strings.
  assertProtocolError(`*1000\r\n${':1\r\n'.repeat(1000)}`, 'RESP_ERR_REPLY_TOO_BIG', { maxBufferedBytes: 1000 });
  // The budget is per reply: many replies in a row, each within it, pass.
  assert.equal(parse(reply.repeat(10), [], { limits: { maxBufferedBytes: 34 } }).replies.length, 10);
});

// ---------------------------------------------------------------------------------------------
// Malformed input.

test('malformed input fails with its typed protocol error', () => {
  const cases: [string, RespErrorCode][] = [
    ['?OK\r\n', 'RESP_ERR_BAD_TYPE'],
    ['\r\n', 'RESP_ERR_BAD_TYPE'],
    ['OK\r\n', 'RESP_ERR_BAD_TYPE'],
    ['$abc\r\n', 'RESP_ERR_BAD_LENGTH'],
    ['$-2\r\n', 'RESP_ERR_BAD_LENGTH'],
    ['$05\r\nhello\r\n', 'RESP_ERR_BAD_LENGTH'],
    ['$\r\n', 'RESP_ERR_BAD_LENGTH'],
    ['$?\r\n', 'RESP_ERR_BAD_LENGTH'], // RESP3 streamed strings: Redis never sends them
    ['*x\r\n', 'RESP_ERR_BAD_LENGTH'],
    ['*-2\r\n', 'RESP_ERR_BAD_LENGTH'],
    ['%-1\r\n', 'RESP_ERR_BAD_LENGTH'], // -1 is RESP2's null for $ and * only
    ['!-1\r\n', 'RESP_ERR_BAD_LENGTH'],
    [':12a\r\n', 'RESP_ERR_BAD_VALUE'],
    [':\r\n', 'RESP_ERR_BAD_VALUE'],
    ['#x\r\n', 'RESP_ERR_BAD_VALUE'],
    ['_x\r\n', 'RESP_ERR_BAD_VALUE'],
    [',abc\r\n', 'RESP_ERR_BAD_VALUE'],
    [',1.2.3\r\n', 'RESP_ERR_BAD_VALUE'],
    ['(1.5\r\n', 'RESP_ERR_BAD_VALUE'],
    ['=3\r\ntxt\r\n', 'RESP_ERR_BAD_VALUE'], // shorter than "fmt:"
    ['=5\r\ntxt-x\r\n', 'RESP_ERR_BAD_VALUE'], // no colon after the format
    ['+OK\rX', 'RESP_ERR_MISSING_CRLF'],
    ['$2\r\nabc\r\n', 'RESP_ERR_MISSING_CRLF'], // longer than announced
    ['$3\r\nab\r\n', 'RESP_ERR_MISSING_CRLF'], // shorter than announced: its CR is taken as data
    ['$2\r\nab\rX', 'RESP_ERR_MISSING_CRLF'],
    ['$2\r\nab\n\r', 'RESP_ERR_MISSING_CRLF'],
    ['*1\r\n>1\r\n:1\r\n', 'RESP_ERR_NESTED_PUSH'],
  ];
  for (const [bytes, code] of cases) {
    assertProtocolError(bytes, code);
    assertProtocolError(bytes, code, undefined, byteByByte(Buffer.byteLength(bytes)));
  }
});

test('after a protocol error the parser is halted: later bytes yield nothing', () => {
  const replies: RespValue[] = [];
  const parser = new ReplyParser({ onReply: (r) => replies.push(r) });
  parser.push(Buffer.from('+OK\r\n'));
  assert.throws(() => parser.push(Buffer.from('?bad\r\n')), RespProtocolError);
  parser.push(Buffer.from('+more\r\n'));
  assert.deepEqual(replies, ['OK']);
});

test('a reply held across chunks is reported by inReply', () => {
  const parser = new ReplyParser({ onReply: () => {} });
  assert.equal(parser.inReply, false);
  parser.push(Buffer.from('*2\r\n:1\r\n'));
  assert.equal(parser.inReply, true);
  parser.push(Buffer.from(':2\r\n'));
  assert.equal(parser.inReply, false);
});

test('a large bulk string in small chunks is gathered once, byte for byte', () => {
  const payload = Buffer.alloc(1 << 20);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
  const bytes = Buffer.concat([Buffer.from(`$${payload.length}\r\n`), payload, Buffer.from('\r\n')]);
  const cuts: number[] = [];
  for (let at = 3; at < bytes.length; at += 1000) cuts.push(at);
  const { replies } = parse(bytes, cuts, { buffers: true });
  assert.ok(Buffer.isBuffer(replies[0]));
  assert.ok((replies[0] as Buffer).equals(payload));
});

// ---------------------------------------------------------------------------------------------
// The encoder.

test('encodeCommand: an array of bulk strings, from strings, Buffers, numbers and bigints', () => {
  assert.equal(encodeCommand(['PING']).toString('latin1'), '*1\r\n$4\r\nPING\r\n');
  assert.equal(encodeCommand(['SET', 'key', 'value']).toString('latin1'), '*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n');
  assert.equal(encodeCommand(['SET', 'k', '']).toString('latin1'), '*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n');
  assert.equal(encodeCommand(['INCRBY', 'n', -15]).toString('latin1'), '*3\r\n$6\r\nINCRBY\r\n$1\r\nn\r\n$3\r\n-15\r\n');
  assert.equal(encodeCommand(['INCRBYFLOAT', 'n', 1.5]).toString('latin1'), '*3\r\n$11\r\nINCRBYFLOAT\r\n$1\r\nn\r\n$3\r\n1.5\r\n');
  assert.equal(encodeCommand(['SET', 'n', 12345678901234567890n]).toString('latin1'), '*3\r\n$3\r\nSET\r\n$1\r\nn\r\n$20\r\n12345678901234567890\r\n');
  // UTF-8: the length is in bytes, not characters.
  assert.deepEqual(encodeCommand(['SET', 'k', 'h€']), Buffer.concat([Buffer.from('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\n'), Buffer.from('h€', 'utf8'), Buffer.from('\r\n')]));
  // Buffers go as they are, CR LF inside included: bulk strings are binary-safe.
  const binary = Buffer.from([0x0d, 0x0a, 0x00, 0xff]);
  assert.deepEqual(encodeCommand(['SET', 'k', binary]), Buffer.concat([Buffer.from('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\n'), binary, Buffer.from('\r\n')]));
  // Ten or more arguments, and an argument of 100+ bytes: multi-digit lengths.
  const args = ['DEL', ...Array.from({ length: 10 }, (_, i) => `k${i}`)];
  assert.equal(encodeCommand(args).toString('latin1'), `*11\r\n$3\r\nDEL\r\n${args.slice(1).map((a) => `$2\r\n${a}\r\n`).join('')}`);
  const long = 'x'.repeat(1234);
  assert.equal(encodeCommand(['SET', 'k', long]).toString('latin1'), `*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1234\r\n${long}\r\n`);
});

test('encodeCommands: commands back to back in one exactly-sized buffer, which the parser of a server would read', () => {
  const out = encodeCommands([['INCR', 'a'], ['GET', 'a']]);
  assert.equal(out.toString('latin1'), '*2\r\n$4\r\nINCR\r\n$1\r\na\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n');
  // Our own parser reads a command as a reply (an array of bulk strings): a round trip.
  const commands = [['SET', 'k', 'h€llo'], ['XADD', 'room', '*', 'text', 'x'.repeat(300)]];
  assert.deepEqual(parse(encodeCommands(commands)).replies, commands);
});

test('the encoder refuses an empty command and arguments it cannot send', () => {
  assert.throws(() => encodeCommand([]), TypeError);
  for (const bad of [NaN, Infinity, undefined, null, {}, true]) {
    assert.throws(() => encodeCommand(['SET', 'k', bad as never]), TypeError, String(bad));
  }
});
