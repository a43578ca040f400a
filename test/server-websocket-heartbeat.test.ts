// Keepalive pings through a real server process (--ws-ping-interval / --ws-ping-timeout): a client
// that never answers is dropped and its app sees 1006; one that answers every ping stays connected.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startServer, fixture, type RunningServer } from './helpers/server.js';
import { connectRaw, Op, waitForProbe } from './helpers/raw-ws.js';

/** No test may hang the run: each fails after this long, saying it timed out. */
const TIMEOUT = { timeout: 20_000 };

let server: RunningServer;

before(async () => {
  server = await startServer({ args: ['--app', fixture('ws-probe.mjs'), '--ws-ping-interval', '0.2', '--ws-ping-timeout', '0.2'] });
});

after(async () => {
  await server?.stop();
});

test('a client that does not answer pings is dropped, and the app sees 1006', TIMEOUT, async () => {
  const ws = await connectRaw(server.port, { path: '/echo?id=silent' });
  try {
    assert.equal(ws.status, 101);
    const ping = await ws.nextFrame(2000);
    assert.equal(ping.opcode, Op.PING, 'the server pings within --ws-ping-interval');
    assert.equal(ping.masked, false);
    // Not answering: the server gives up after about interval + timeout (0.4 s). Without the
    // heartbeat it would never end this connection, so the wait below (generous, for a loaded
    // machine) fails instead. It may send a close frame first; then it must end the TCP connection.
    await ws.waitEnd(10_000);
    assert.deepEqual(await waitForProbe(server, 'silent', 'disconnect'), { code: 1006, reason: '' });
  } finally {
    ws.destroy();
  }
});

test('a client that answers every ping stays connected', TIMEOUT, async () => {
  const ws = await connectRaw(server.port, { path: '/echo?id=lively' });
  try {
    assert.equal(ws.status, 101);
    // Answer four pings in a row (about 0.8 s, two ping timeouts over), then the echo still works.
    for (let answered = 0; answered < 4;) {
      const frame = await ws.nextFrame(2000);
      assert.equal(frame.opcode, Op.PING, `expected only pings, got opcode ${frame.opcode}`);
      await ws.send(Op.PONG, frame.payload);
      answered++;
    }
    await ws.sendText('still here');
    for (;;) {
      const frame = await ws.nextFrame(2000);
      if (frame.opcode === Op.PING) { await ws.send(Op.PONG, frame.payload); continue; }
      assert.equal(frame.opcode, Op.TEXT);
      assert.equal(frame.payload.toString(), 'still here');
      break;
    }
    assert.equal(ws.reader.ended, false, 'the connection is still open');
  } finally {
    ws.destroy();
  }
});
