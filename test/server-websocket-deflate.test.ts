// permessage-deflate (RFC 7692) through a real server started with --ws-per-message-deflate: the
// handshake's answer, compressed messages both ways over raw sockets (client frames compressed
// here with node:zlib directly, not with the server's codec), every rule that fails the
// connection, the bomb, and Node's own WebSocket client, which offers permessage-deflate. The
// application (test/fixtures/ws-probe.mjs) echoes what it receives: compression is invisible to it.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { constants, deflateRawSync, inflateRawSync } from 'node:zlib';
import { startServer, fixture, type RunningServer } from './helpers/server.js';
import { connectRaw, Op, waitForOutput, waitForProbe, type Frame, type RawWebSocket } from './helpers/raw-ws.js';

/** No test may hang the run: each fails after this long, saying it timed out. */
const TIMEOUT = { timeout: 20_000 };

const MAX_SIZE = 65536;
const RSV1 = 4; // the raw client's rsv option: RSV1 = 4, RSV2 = 2, RSV3 = 1
const OFFER = 'permessage-deflate; client_max_window_bits';
const ANSWER = 'permessage-deflate; server_no_context_takeover';

let server: RunningServer;
let counter = 0;

before(async () => {
  server = await startServer({
    args: ['--app', fixture('ws-probe.mjs'), '--ws-per-message-deflate', '--ws-max-size', String(MAX_SIZE), '--log-level', 'debug'],
  });
});

after(async () => {
  await server?.stop();
});

/** What a client compresses a message to (RFC 7692 §7.2.1), on its own (no window kept). */
function compress(data: Buffer | string): Buffer {
  const flushed = deflateRawSync(typeof data === 'string' ? Buffer.from(data) : data, { finishFlush: constants.Z_SYNC_FLUSH });
  assert.equal(flushed.subarray(-4).toString('hex'), '0000ffff');
  return flushed.subarray(0, -4);
}

/** A compressed payload from the server, inflated as a client does (§7.2.2). */
function inflate(payload: Buffer): Buffer {
  return inflateRawSync(Buffer.concat([payload, Buffer.from([0, 0, 0xff, 0xff])]), { finishFlush: constants.Z_SYNC_FLUSH });
}

/** Opens a connection to the echo route offering `offer`, with a fresh probe id. */
async function open(label: string, offer: string | null = OFFER): Promise<{ ws: RawWebSocket; id: string }> {
  const id = `${label}-${++counter}`;
  const ws = await connectRaw(server.port, { path: `/echo?id=${id}`, headers: offer === null ? {} : { 'Sec-WebSocket-Extensions': offer } });
  assert.equal(ws.status, 101, `handshake for ${id}: ${ws.response.statusLine}`);
  return { ws, id };
}

/** The next frame: unmasked, FIN, with RSV1 as expected, carrying `expected` (inflated when compressed). */
async function expectMessage(ws: RawWebSocket, opcode: number, expected: Buffer | string, compressed: boolean): Promise<Frame> {
  const frame = await ws.nextFrame(5000);
  const bytes = typeof expected === 'string' ? Buffer.from(expected) : expected;
  assert.equal(frame.opcode, opcode);
  assert.equal(frame.fin, true);
  assert.equal(frame.masked, false);
  assert.equal(frame.rsv, compressed ? RSV1 : 0, compressed ? 'RSV1: compressed' : 'RSV1 clear: sent as it is');
  const payload = compressed ? inflate(frame.payload) : frame.payload;
  assert.ok(payload.equals(bytes), `payload: ${payload.subarray(0, 60).toString()}`);
  if (compressed) assert.ok(frame.payload.length < bytes.length, `compressed ${bytes.length} → ${frame.payload.length} bytes`);
  return frame;
}

/** `act` must make the server fail the connection with `code`, on the wire and in the app. */
async function expectFailure(label: string, code: number, act: (ws: RawWebSocket) => Promise<void>): Promise<string> {
  const { ws, id } = await open(label);
  try {
    await act(ws);
    const close = await ws.waitClose(5000);
    assert.equal(close.code, code, `${label}: close code (reason ${JSON.stringify(close.reason)})`);
    await ws.sendClose(code);
    await ws.waitEnd(5000);
    const seen = await waitForProbe<{ code: number; reason: string }>(server, id, 'disconnect');
    assert.equal(seen.code, code, `${label}: the app's websocket.disconnect code`);
    return close.reason;
  } finally {
    ws.destroy();
  }
}

describe('the handshake (RFC 7692 §5, §7.1)', () => {
  const answers: [offer: string, answer: string][] = [
    [OFFER, ANSWER],
    ['permessage-deflate', ANSWER],
    ['permessage-deflate; server_max_window_bits=10; client_no_context_takeover', `${ANSWER}; client_no_context_takeover; server_max_window_bits=10`],
    ['permessage-deflate; client_max_window_bits=12', `${ANSWER}; client_max_window_bits=12`],
    ['permessage-deflate; server_max_window_bits=8, permessage-deflate; server_no_context_takeover', ANSWER],
  ];
  for (const [offer, answer] of answers) {
    test(`"${offer}" is answered with "${answer}"`, TIMEOUT, async () => {
      const { ws } = await open('offer', offer);
      try {
        assert.equal(ws.headers['sec-websocket-extensions'], answer);
        assert.equal(ws.response.rawHeaders.filter(([name]) => name.toLowerCase() === 'sec-websocket-extensions').length, 1);
      } finally {
        ws.destroy();
      }
    });
  }

  test('a declined offer (an unknown parameter) is not a failure: no extension, messages uncompressed, RSV1 a protocol error', TIMEOUT, async () => {
    const { ws, id } = await open('declined', 'permessage-deflate; mystery=1');
    try {
      assert.equal(ws.headers['sec-websocket-extensions'], undefined);
      const text = 'not compressed, since nothing was negotiated '.repeat(10);
      await ws.sendText(text);
      await expectMessage(ws, Op.TEXT, text, false);
      await ws.send(Op.TEXT, compress(text), { rsv: RSV1 });
      const close = await ws.waitClose(5000);
      assert.equal(close.code, 1002);
      assert.equal((await waitForProbe<{ code: number }>(server, id, 'disconnect')).code, 1002);
    } finally {
      ws.destroy();
    }
  });
});

describe('compressed messages both ways', () => {
  test('a compressed text is echoed compressed; the app saw the plain text', TIMEOUT, async () => {
    const { ws } = await open('echo');
    try {
      const text = JSON.stringify({ sender: 'alice', message: 'compressible, compressible, compressible '.repeat(20) });
      await ws.send(Op.TEXT, compress(text), { rsv: RSV1 });
      await expectMessage(ws, Op.TEXT, text, true);
      const bytes = Buffer.alloc(5000, 0x07);
      await ws.send(Op.BINARY, compress(bytes), { rsv: RSV1 });
      await expectMessage(ws, Op.BINARY, bytes, true);
    } finally {
      ws.destroy();
    }
  });

  test('small messages are sent uncompressed, whichever way they came', TIMEOUT, async () => {
    const { ws } = await open('small');
    try {
      await ws.send(Op.TEXT, compress('Hello'), { rsv: RSV1 });
      await expectMessage(ws, Op.TEXT, 'Hello', false);
      await ws.sendText('plain');
      await expectMessage(ws, Op.TEXT, 'plain', false);
    } finally {
      ws.destroy();
    }
  });

  test('an uncompressed message may still be sent, and is echoed compressed when large', TIMEOUT, async () => {
    const { ws } = await open('mixed');
    try {
      const text = 'sent plain by the client '.repeat(20);
      await ws.sendText(text);
      await expectMessage(ws, Op.TEXT, text, true);
    } finally {
      ws.destroy();
    }
  });

  test('context takeover from the client: the §7.2.3.2 "Hello" twice', TIMEOUT, async () => {
    const { ws } = await open('takeover');
    try {
      await ws.send(Op.TEXT, Buffer.from('f248cdc9c90700', 'hex'), { rsv: RSV1 });
      await expectMessage(ws, Op.TEXT, 'Hello', false);
      await ws.send(Op.TEXT, Buffer.from('f200110000', 'hex'), { rsv: RSV1 });
      await expectMessage(ws, Op.TEXT, 'Hello', false);
    } finally {
      ws.destroy();
    }
  });

  test('a fragmented compressed message, RSV1 on its first frame, a ping answered in between', TIMEOUT, async () => {
    const { ws } = await open('fragmented');
    try {
      const text = 'é€ fragmented and compressed 😀 '.repeat(30);
      const payload = compress(text);
      const cuts = [0, 5, Math.floor(payload.length / 2), payload.length];
      for (let i = 0; i < cuts.length - 1; i++) {
        await ws.send(i === 0 ? Op.TEXT : Op.CONTINUATION, payload.subarray(cuts[i], cuts[i + 1]), { fin: i === cuts.length - 2, rsv: i === 0 ? RSV1 : 0 });
        if (i === 0) {
          await ws.send(Op.PING, 'between');
          const pong = await ws.nextFrame(5000);
          assert.deepEqual([pong.opcode, pong.rsv, pong.payload.toString()], [Op.PONG, 0, 'between']);
        }
      }
      await expectMessage(ws, Op.TEXT, text, true);
    } finally {
      ws.destroy();
    }
  });

  test('a message inflating to exactly --ws-max-size is accepted', TIMEOUT, async () => {
    const { ws } = await open('at-limit');
    try {
      const bytes = Buffer.alloc(MAX_SIZE, 0x61);
      await ws.send(Op.BINARY, compress(bytes), { rsv: RSV1 });
      await expectMessage(ws, Op.BINARY, bytes, true);
    } finally {
      ws.destroy();
    }
  });
});

describe('failures', () => {
  test('a 20 MiB bomb of one byte (20 KB on the wire) closes with 1009, inflated no further than the limit', TIMEOUT, async () => {
    const bomb = compress(Buffer.alloc(20 * 1024 * 1024, 0x61));
    assert.ok(bomb.length < MAX_SIZE, `the bomb is ${bomb.length} bytes on the wire, under the limit`);
    const reason = await expectFailure('bomb', 1009, (ws) => ws.send(Op.BINARY, bomb, { rsv: RSV1 }));
    assert.equal(reason, `compressed message inflates to more than the ${MAX_SIZE}-byte limit`);
    await waitForOutput(server, new RegExp(`closing 1009 WS_ERR_MESSAGE_TOO_BIG: compressed message inflates to more than the ${MAX_SIZE}-byte limit`), 5000);
  });

  test('compressed data that does not inflate closes with 1007', TIMEOUT, async () => {
    const reason = await expectFailure('invalid', 1007, (ws) => ws.send(Op.TEXT, Buffer.from('ffffffff', 'hex'), { rsv: RSV1 }));
    assert.equal(reason, 'invalid compressed data: invalid block type');
  });

  test('compressed text that inflates to invalid UTF-8 closes with 1007', TIMEOUT, async () => {
    await expectFailure('bad-utf8', 1007, (ws) => ws.send(Op.TEXT, compress(Buffer.from([0x61, 0xff, 0x62])), { rsv: RSV1 }));
  });

  test('RSV1 on a ping closes with 1002', TIMEOUT, async () => {
    const reason = await expectFailure('rsv1-ping', 1002, (ws) => ws.send(Op.PING, 'x', { rsv: RSV1 }));
    assert.equal(reason, 'RSV1 (compressed) set on a control frame');
  });

  test('RSV1 on a continuation closes with 1002', TIMEOUT, async () => {
    const reason = await expectFailure('rsv1-cont', 1002, async (ws) => {
      const payload = compress('Hello, Hello, Hello');
      await ws.send(Op.TEXT, payload.subarray(0, 3), { fin: false, rsv: RSV1 });
      await ws.send(Op.CONTINUATION, payload.subarray(3), { rsv: RSV1 });
    });
    assert.equal(reason, 'RSV1 (compressed) set on a continuation frame');
  });

  test('RSV2 is still reserved with permessage-deflate negotiated: 1002', TIMEOUT, async () => {
    await expectFailure('rsv2', 1002, (ws) => ws.send(Op.TEXT, 'x', { rsv: 2 }));
  });
});

describe("Node's WebSocket client (it offers permessage-deflate)", () => {
  test('negotiates it, and messages of every size make the round trip', TIMEOUT, async () => {
    const ws = new WebSocket(`${server.wsUrl}/echo?id=node-${++counter}`);
    try {
      await new Promise<void>((resolve, reject) => {
        ws.onopen = () => resolve();
        ws.onerror = () => reject(new Error('the WebSocket failed to open'));
      });
      assert.equal(ws.extensions, ANSWER);
      const texts = ['short', 'long and repetitive '.repeat(500), '😀 ünïcödé '.repeat(100)];
      const received: string[] = [];
      const done = new Promise<void>((resolve) => {
        ws.onmessage = (event) => {
          received.push(event.data as string);
          if (received.length === texts.length) resolve();
        };
      });
      for (const text of texts) ws.send(text);
      await done;
      assert.deepEqual(received, texts);
    } finally {
      ws.close();
    }
  });
});

describe('without --ws-per-message-deflate (the default)', () => {
  let plain: RunningServer;
  before(async () => {
    plain = await startServer({ args: ['--app', fixture('ws-probe.mjs')] });
  });
  after(async () => {
    await plain?.stop();
  });

  test('the offer is ignored: no Sec-WebSocket-Extensions in the 101, and RSV1 is a protocol error', TIMEOUT, async () => {
    const ws = await connectRaw(plain.port, { path: '/echo', headers: { 'Sec-WebSocket-Extensions': OFFER } });
    try {
      assert.equal(ws.status, 101);
      assert.equal(ws.headers['sec-websocket-extensions'], undefined);
      await ws.send(Op.TEXT, compress('Hello'), { rsv: RSV1 });
      const close = await ws.waitClose(5000);
      assert.equal(close.code, 1002);
      assert.equal(close.reason, 'reserved bits set (0x40) that no negotiated extension defines');
    } finally {
      ws.destroy();
    }
  });
});
