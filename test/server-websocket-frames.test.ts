// RFC 6455 framing through a real server process and raw sockets: control frames, fragmentation,
// lengths, UTF-8, the size limit, and every protocol error that must fail the connection with the
// right close code (§7.4.1) — checked both on the wire (the server's close frame) and in the app
// (the `websocket.disconnect` that test/fixtures/ws-probe.mjs reports).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startServer, fixture, type RunningServer } from './helpers/server.js';
import { connectRaw, closePayload, encodeFrame, Op, waitForOutput, waitForProbe, type Frame, type RawWebSocket } from './helpers/raw-ws.js';

/** No test may hang the run: each fails after this long, saying it timed out. */
const TIMEOUT = { timeout: 20_000 };

const MAX_SIZE = 100_000;

let server: RunningServer;
let counter = 0;

before(async () => {
  server = await startServer({ args: ['--app', fixture('ws-probe.mjs'), '--ws-max-size', String(MAX_SIZE)] });
});

after(async () => {
  await server?.stop();
});

interface Disconnect { code: number; reason: string }

/** Opens an accepted connection to the echo route, with a fresh probe id. */
async function open(label: string): Promise<{ ws: RawWebSocket; id: string }> {
  const id = `${label}-${++counter}`;
  const ws = await connectRaw(server.port, { path: `/echo?id=${id}` });
  assert.equal(ws.status, 101, `handshake for ${id}: ${ws.response.statusLine}`);
  return { ws, id };
}

/** Asserts the next frame from the server: opcode, payload, FIN, unmasked, minimal length encoding. */
async function expectFrame(ws: RawWebSocket, opcode: number, payload: Buffer | string): Promise<Frame> {
  const frame = await ws.nextFrame(5000);
  const expected = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  assert.equal(frame.opcode, opcode, `opcode: expected ${opcode}, got ${frame.opcode} (payload ${frame.payload.subarray(0, 60).toString()})`);
  assert.equal(frame.masked, false, 'a server must not mask its frames (§5.1)');
  assert.equal(frame.rsv, 0, 'no extension was negotiated, so RSV must be 0');
  assert.equal(frame.fin, true);
  assert.equal(frame.payload.length, expected.length, 'payload length');
  assert.ok(frame.payload.equals(expected), 'payload bytes');
  const minimal = expected.length < 126 ? 0 : expected.length < 0x10000 ? 2 : 8;
  assert.equal(frame.lengthBytes, minimal, `length ${expected.length} must use the minimal encoding (§5.2)`);
  return frame;
}

/**
 * Runs `act` on a fresh connection and asserts that the server fails it: a close frame with
 * `code`, then the end of the TCP connection, and the app's websocket.disconnect with `code`.
 * `clientSentClose` says whether `act` already sent a close frame (then the client sends no other).
 */
async function expectFailure(label: string, code: number, act: (ws: RawWebSocket) => Promise<void>, clientSentClose = false): Promise<void> {
  const { ws, id } = await open(label);
  try {
    await act(ws);
    const close = await ws.waitClose(5000);
    assert.equal(close.code, code, `${label}: server close code (reason ${JSON.stringify(close.reason)})`);
    assert.equal(close.frame.masked, false);
    // A client answers a close frame with its own (§5.5.1); the server must then end TCP.
    if (!clientSentClose) await ws.sendClose(close.code ?? 1000);
    await ws.waitEnd(5000);
    const seen = await waitForProbe<Disconnect>(server, id, 'disconnect');
    assert.equal(seen.code, code, `${label}: the app's websocket.disconnect code`);
  } finally {
    ws.destroy();
  }
}

describe('control frames (RFC 6455 §5.5)', () => {
  test('a ping is answered by a pong with the same payload', TIMEOUT, async () => {
    const { ws } = await open('ping');
    try {
      await ws.send(Op.PING, 'are you there?');
      await expectFrame(ws, Op.PONG, 'are you there?');
      await ws.send(Op.PING);
      await expectFrame(ws, Op.PONG, '');
      const full = Buffer.alloc(125, 0x61);
      await ws.send(Op.PING, full);
      await expectFrame(ws, Op.PONG, full);
    } finally {
      ws.destroy();
    }
  });

  test('an unsolicited pong is ignored', TIMEOUT, async () => {
    const { ws } = await open('pong');
    try {
      await ws.send(Op.PONG, 'unsolicited');
      await ws.sendText('after the pong');
      // The echo must be the very next frame: nothing was sent in answer to the pong.
      await expectFrame(ws, Op.TEXT, 'after the pong');
    } finally {
      ws.destroy();
    }
  });

  test('a ping between the fragments of a message is answered at once, and the message completes', TIMEOUT, async () => {
    const { ws } = await open('ping-frag');
    try {
      await ws.send(Op.TEXT, 'hel', { fin: false });
      await ws.send(Op.PING, 'in between');
      await expectFrame(ws, Op.PONG, 'in between');
      await ws.send(Op.CONTINUATION, 'lo', { fin: false });
      await ws.send(Op.CONTINUATION, ' world', { fin: true });
      await expectFrame(ws, Op.TEXT, 'hello world');
    } finally {
      ws.destroy();
    }
  });
});

describe('data frames', () => {
  test('a fragmented text message is delivered to the app as one message', TIMEOUT, async () => {
    const { ws } = await open('frag');
    try {
      // "é" (c3 a9) is split across two fragments: UTF-8 is checked on the whole message.
      const bytes = Buffer.from('café au lait', 'utf8');
      await ws.send(Op.TEXT, bytes.subarray(0, 4), { fin: false });
      await ws.send(Op.CONTINUATION, bytes.subarray(4, 8), { fin: false });
      await ws.send(Op.CONTINUATION, Buffer.alloc(0), { fin: false });
      await ws.send(Op.CONTINUATION, bytes.subarray(8), { fin: true });
      await expectFrame(ws, Op.TEXT, 'café au lait');
    } finally {
      ws.destroy();
    }
  });

  test('a binary message keeps every byte value', TIMEOUT, async () => {
    const { ws } = await open('binary');
    try {
      const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      await ws.send(Op.BINARY, bytes.subarray(0, 100), { fin: false });
      await ws.send(Op.CONTINUATION, bytes.subarray(100), { fin: true });
      await expectFrame(ws, Op.BINARY, bytes);
    } finally {
      ws.destroy();
    }
  });

  test('frames written one byte at a time are reassembled', TIMEOUT, async () => {
    const { ws } = await open('bytewise');
    try {
      const frames = Buffer.concat([
        encodeFrame(Op.PING, 'p'),
        encodeFrame(Op.TEXT, 'slow', { fin: false }),
        encodeFrame(Op.CONTINUATION, 'ly', { fin: true }),
        encodeFrame(Op.BINARY, Buffer.alloc(200, 7)),
      ]);
      for (const byte of frames) {
        await ws.sendRaw(Buffer.from([byte]));
        // Let each byte go out in its own TCP segment (setNoDelay is on), so the server really
        // sees the frames cut everywhere, headers and masking keys included.
        await new Promise((resolve) => setImmediate(resolve));
      }
      await expectFrame(ws, Op.PONG, 'p');
      await expectFrame(ws, Op.TEXT, 'slowly');
      await expectFrame(ws, Op.BINARY, Buffer.alloc(200, 7));
    } finally {
      ws.destroy();
    }
  });

  test('several frames in one TCP write are all handled', TIMEOUT, async () => {
    const { ws } = await open('packed');
    try {
      await ws.sendRaw(Buffer.concat([encodeFrame(Op.TEXT, 'one'), encodeFrame(Op.TEXT, 'two'), encodeFrame(Op.PING, '3')]));
      // The server answers the ping itself while the echoes go through the app, so the pong may
      // come before them; the two messages keep their order.
      const frames = [await ws.nextFrame(), await ws.nextFrame(), await ws.nextFrame()];
      const described = frames.map((f) => `${f.opcode}:${f.payload.toString()}`);
      assert.deepEqual(described.filter((d) => d.startsWith('1:')), ['1:one', '1:two'], `frames: ${described.join(' ')}`);
      assert.deepEqual(described.filter((d) => !d.startsWith('1:')), ['10:3'], `frames: ${described.join(' ')}`);
      assert.ok(frames.every((f) => f.fin && !f.masked && f.rsv === 0));
    } finally {
      ws.destroy();
    }
  });

  for (const length of [0, 125, 126, 65_535, 65_536, 70_000]) {
    test(`a ${length}-byte message round-trips (${length < 126 ? '7-bit' : length < 0x10000 ? '16-bit' : '64-bit'} length)`, TIMEOUT, async () => {
      const { ws } = await open(`len${length}`);
      try {
        const text = 'x'.repeat(length);
        await ws.sendText(text);
        await expectFrame(ws, Op.TEXT, text);
        const bytes = Buffer.alloc(length, 0xab);
        await ws.sendBinary(bytes);
        await expectFrame(ws, Op.BINARY, bytes);
      } finally {
        ws.destroy();
      }
    });
  }

  test(`a message of exactly --ws-max-size (${MAX_SIZE} bytes) is accepted, also in fragments`, TIMEOUT, async () => {
    const { ws } = await open('max');
    try {
      const bytes = Buffer.alloc(MAX_SIZE, 0x5a);
      await ws.sendBinary(bytes);
      await expectFrame(ws, Op.BINARY, bytes);
      await ws.send(Op.BINARY, bytes.subarray(0, 60_000), { fin: false });
      await ws.send(Op.CONTINUATION, bytes.subarray(60_000), { fin: true });
      await expectFrame(ws, Op.BINARY, bytes);
    } finally {
      ws.destroy();
    }
  });
});

describe('message size limit: 1009 (--ws-max-size)', () => {
  test('one frame a byte over the limit', TIMEOUT, async () => {
    await expectFailure('too-big', 1009, (ws) => ws.sendBinary(Buffer.alloc(MAX_SIZE + 1, 1)));
  });

  test('a message over the limit spread over several fragments, each under it', TIMEOUT, async () => {
    await expectFailure('too-big-frag', 1009, async (ws) => {
      const part = Buffer.alloc(40_000, 0x61);
      await ws.send(Op.TEXT, part, { fin: false });
      await ws.send(Op.CONTINUATION, part, { fin: false });
      await ws.send(Op.CONTINUATION, part, { fin: true });
    });
  });
});

describe('protocol errors: 1002 (RFC 6455 §5 and §7.4.1)', () => {
  test('an unmasked client frame (§5.1)', TIMEOUT, async () => {
    await expectFailure('unmasked', 1002, (ws) => ws.send(Op.TEXT, 'in the clear', { mask: false }));
  });

  for (const [bit, rsv] of [['RSV1', 4], ['RSV2', 2], ['RSV3', 1]] as const) {
    test(`${bit} set without a negotiated extension (§5.2)`, TIMEOUT, async () => {
      await expectFailure(`rsv${rsv}`, 1002, (ws) => ws.send(Op.TEXT, 'reserved bits', { rsv }));
    });
  }

  for (const opcode of [0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf]) {
    test(`reserved opcode 0x${opcode.toString(16)} (§5.2)`, TIMEOUT, async () => {
      await expectFailure(`op${opcode}`, 1002, (ws) => ws.send(opcode, 'x'));
    });
  }

  test('a control frame with a 126-byte payload (§5.5)', TIMEOUT, async () => {
    await expectFailure('big-ping', 1002, (ws) => ws.send(Op.PING, Buffer.alloc(126, 0x70)));
  });

  test('a fragmented control frame (§5.5)', TIMEOUT, async () => {
    await expectFailure('frag-ping', 1002, async (ws) => {
      await ws.send(Op.PING, 'part', { fin: false });
      await ws.send(Op.CONTINUATION, 'rest', { fin: true });
    });
  });

  test('a continuation frame with no message started (§5.4)', TIMEOUT, async () => {
    await expectFailure('lone-cont', 1002, (ws) => ws.send(Op.CONTINUATION, 'orphan', { fin: true }));
  });

  test('a new text frame while a fragmented message is open (§5.4)', TIMEOUT, async () => {
    await expectFailure('interleave-text', 1002, async (ws) => {
      await ws.send(Op.TEXT, 'first half', { fin: false });
      await ws.send(Op.TEXT, 'another message', { fin: true });
    });
  });

  test('a new binary frame while a fragmented message is open (§5.4)', TIMEOUT, async () => {
    await expectFailure('interleave-binary', 1002, async (ws) => {
      await ws.send(Op.BINARY, 'first half', { fin: false });
      await ws.send(Op.BINARY, 'another message', { fin: false });
    });
  });

  test('a close frame with a 1-byte payload (§5.5.1)', TIMEOUT, async () => {
    await expectFailure('close-1byte', 1002, (ws) => ws.send(Op.CLOSE, Buffer.from([0x03])), true);
  });

  for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2999, 5000, 65535]) {
    test(`a close frame with the forbidden code ${code} (§7.4)`, TIMEOUT, async () => {
      await expectFailure(`close-${code}`, 1002, (ws) => ws.send(Op.CLOSE, closePayload(code, 'bad code')), true);
    });
  }
});

describe('protocol errors in the log (--log-level debug)', () => {
  let debug: RunningServer;
  before(async () => {
    debug = await startServer({ args: ['--app', fixture('echo.mjs'), '--log-level', 'debug'] });
  });
  after(async () => {
    await debug?.stop();
  });

  test('an unmasked frame logs "closing 1002 WS_ERR_UNMASKED_FRAME: client frames must be masked"', TIMEOUT, async () => {
    const ws = await connectRaw(debug.port, { path: '/' });
    try {
      assert.equal(ws.status, 101, ws.response.statusLine);
      await ws.send(Op.TEXT, 'in the clear', { mask: false });
      const close = await ws.waitClose(5000);
      assert.equal(close.code, 1002);
      assert.equal(close.reason, 'client frames must be masked');
      const [line] = await waitForOutput(debug, /^.*closing 1002 .*$/m, 5000, 'the debug line for the protocol error');
      assert.equal(line, `DEBUG:    [${debug.proc.pid}] closing 1002 WS_ERR_UNMASKED_FRAME: client frames must be masked`);
      assert.equal(debug.output().match(/ closing \d{4} /g)?.length, 1, 'one line for one error');
    } finally {
      ws.destroy();
    }
  });
});

describe('invalid UTF-8: 1007 (RFC 6455 §8.1)', () => {
  const cases: Array<[string, Buffer[]]> = [
    ['bytes that are never UTF-8 (ff fe)', [Buffer.from([0x61, 0xff, 0xfe])]],
    ['an overlong encoding (c0 af)', [Buffer.from([0xc0, 0xaf])]],
    ['an encoded surrogate (ed a0 80)', [Buffer.from([0xed, 0xa0, 0x80])]],
    ['a code point over U+10FFFF (f4 90 80 80)', [Buffer.from([0xf4, 0x90, 0x80, 0x80])]],
    ['a sequence truncated at the end of the message', [Buffer.from([0x6f, 0x6b, 0xe2, 0x82])]],
    ['a sequence split across fragments and then broken', [Buffer.from([0x61, 0xe2, 0x82]), Buffer.from([0x28, 0x62])]],
    ['a sequence truncated at the end of the last fragment', [Buffer.from('fine '), Buffer.from([0x61, 0xe2, 0x82])]],
  ];
  for (const [name, fragments] of cases) {
    test(`a text message with ${name}`, TIMEOUT, async () => {
      await expectFailure('utf8', 1007, async (ws) => {
        for (let i = 0; i < fragments.length; i++) {
          await ws.send(i === 0 ? Op.TEXT : Op.CONTINUATION, fragments[i]!, { fin: i === fragments.length - 1 });
        }
      });
    });
  }

  test('a close frame whose reason is not UTF-8', TIMEOUT, async () => {
    await expectFailure('close-reason', 1007, (ws) => ws.send(Op.CLOSE, Buffer.concat([closePayload(1000), Buffer.from([0xff, 0xfe])])), true);
  });

  test('invalid bytes at the start of a large text frame close with 1007 before the rest of it is sent', TIMEOUT, async () => {
    // A 90,000-byte frame (under the limit) whose first payload bytes are not UTF-8: only its
    // header and first 64 bytes are sent, and the server must not wait for the other 89,936.
    const frame = encodeFrame(Op.TEXT, Buffer.concat([Buffer.from([0x61, 0xff]), Buffer.alloc(89_998, 0x61)]));
    const headerSize = 2 + 8 + 4; // 64-bit length and the masking key
    await expectFailure('utf8-early', 1007, (ws) => ws.sendRaw(frame.subarray(0, headerSize + 64)));
  });

  test('a large text frame arriving in pieces, a character split between them, is accepted', TIMEOUT, async () => {
    const { ws } = await open('utf8-pieces');
    try {
      const text = 'é'.repeat(20_000);
      const frame = encodeFrame(Op.TEXT, text);
      // Cut inside "é" (c3 a9): the 8-byte header (16-bit length, masking key), then odd counts.
      const cuts = [0, 8 + 1001, 8 + 20_001, frame.length];
      for (let i = 0; i < cuts.length - 1; i++) {
        await ws.sendRaw(frame.subarray(cuts[i], cuts[i + 1]));
        await new Promise((resolve) => setTimeout(resolve, 20)); // separate TCP segments
      }
      await expectFrame(ws, Op.TEXT, text);
    } finally {
      ws.destroy();
    }
  });

  test('valid 4-byte sequences split across fragments are accepted', TIMEOUT, async () => {
    const { ws } = await open('utf8-ok');
    try {
      const bytes = Buffer.from('😀 ok 😀', 'utf8');
      await ws.send(Op.TEXT, bytes.subarray(0, 2), { fin: false });
      await ws.send(Op.CONTINUATION, bytes.subarray(2, 9), { fin: false });
      await ws.send(Op.CONTINUATION, bytes.subarray(9), { fin: true });
      await expectFrame(ws, Op.TEXT, '😀 ok 😀');
    } finally {
      ws.destroy();
    }
  });
});

describe('valid close codes reach the app (§7.4.1, §7.4.2)', () => {
  for (const code of [1000, 1001, 1003, 1007, 1011, 1014, 3000, 4999]) {
    test(`close ${code} is echoed and given to the app`, TIMEOUT, async () => {
      const { ws, id } = await open(`code${code}`);
      try {
        await ws.sendClose(code, `reason ${code}`);
        const close = await ws.waitClose(5000);
        assert.equal(close.code, code, 'the server echoes the close code (§5.5.1)');
        await ws.waitEnd(5000);
        const seen = await waitForProbe<Disconnect>(server, id, 'disconnect');
        assert.deepEqual(seen, { code, reason: `reason ${code}` });
      } finally {
        ws.destroy();
      }
    });
  }
});
