// permessage-deflate interoperability with an independent implementation: Debian's
// python3-websockets, run with Debian's own /usr/bin/python3 (which need not be the first python3
// on the PATH), drives test/fixtures/deflate-client.py against the echo app on a server started
// with --ws-per-message-deflate. Its offers: its default one, client_max_window_bits=10,
// server_max_window_bits=10 with client_no_context_takeover, server_no_context_takeover, and
// server_max_window_bits=8 (which we decline). In each, it sends text and binary messages, one of
// them twice (its compressor then refers back into the first), and one fragmented compressed
// message. Without python3-websockets the test is skipped, except in CI (CI set), where that is a
// failure: .ci/run installs it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fixture, startServer, type RunningServer } from './helpers/server.js';

const PYTHON = '/usr/bin/python3';

interface ScenarioReport {
  scenario: string;
  answer: string | null;
  negotiated: Record<string, boolean | number> | null;
  sent: [opcode: string, rsv1: boolean][];
  echoed: boolean[];
  compressed: boolean[];
}

/** Each message the client sends as one compressed frame, then the fragmented one (RSV1 on its first frame only). */
const SENT_COMPRESSED: ScenarioReport['sent'] = [
  ['TEXT', true], ['TEXT', true], ['TEXT', true], ['TEXT', true], ['BINARY', true],
  ['TEXT', true], ['CONT', false], ['CONT', false], ['CONT', false], ['CONT', false],
];
const ALL_ECHOED = [true, true, true, true, true, true];
/** The first message ("short") is under our threshold: echoed uncompressed; the others compressed. */
const ECHOES_COMPRESSED = [false, true, true, true, true, true];
const negotiated = (server: number, client: number, clientNoContextTakeover: boolean) => ({
  server_no_context_takeover: true,
  client_no_context_takeover: clientNoContextTakeover,
  server_max_window_bits: server,
  client_max_window_bits: client,
});

const EXPECTED: ScenarioReport[] = [
  {
    scenario: 'default offer',
    answer: 'permessage-deflate; server_no_context_takeover',
    negotiated: negotiated(15, 15, false),
    sent: SENT_COMPRESSED, echoed: ALL_ECHOED, compressed: ECHOES_COMPRESSED,
  },
  {
    scenario: 'client_max_window_bits=10',
    answer: 'permessage-deflate; server_no_context_takeover; client_max_window_bits=10',
    negotiated: negotiated(15, 10, false),
    sent: SENT_COMPRESSED, echoed: ALL_ECHOED, compressed: ECHOES_COMPRESSED,
  },
  {
    scenario: 'server_max_window_bits=10, client_no_context_takeover',
    answer: 'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10',
    negotiated: negotiated(10, 15, true),
    sent: SENT_COMPRESSED, echoed: ALL_ECHOED, compressed: ECHOES_COMPRESSED,
  },
  {
    scenario: 'server_no_context_takeover asked',
    answer: 'permessage-deflate; server_no_context_takeover',
    negotiated: negotiated(15, 15, false),
    sent: SENT_COMPRESSED, echoed: ALL_ECHOED, compressed: ECHOES_COMPRESSED,
  },
  {
    scenario: 'server_max_window_bits=8 (declined)',
    answer: null,
    negotiated: null,
    sent: [], echoed: ALL_ECHOED, compressed: [],
  },
];

/** Why the interop test cannot run here, or null when Debian's python3-websockets is installed. */
function missingPythonWebsockets(): string | null {
  const probe = spawnSync(PYTHON, ['-c', 'import websockets'], { encoding: 'utf8' });
  if (probe.error) return `${PYTHON} cannot run (${probe.error.message}): apt-get install python3-websockets`;
  if (probe.status !== 0) return `${PYTHON} has no websockets module: apt-get install python3-websockets`;
  return null;
}

test('python-websockets talks permessage-deflate with us: every offer, messages both ways, a fragmented one', { timeout: 60_000 }, async (t) => {
  const missing = missingPythonWebsockets();
  if (missing !== null) {
    // CI=true (or any value but "", "0" and "false"): the interop test must run, never skip.
    const inCI = /^(?!(0|false)$)./i.test(process.env.CI ?? '');
    if (inCI) assert.fail(`the interop test must run in CI: ${missing}`);
    t.skip(missing);
    return;
  }
  let server: RunningServer | undefined;
  try {
    server = await startServer({ args: ['--app', fixture('echo.mjs'), '--ws-per-message-deflate'] });
    const run = spawnSync(PYTHON, [fixture('deflate-client.py'), `${server.wsUrl}/echo`], { encoding: 'utf8', timeout: 45_000 });
    assert.equal(run.status, 0, `the client failed:\n${run.stderr}\n${run.stdout}`);
    const reports = run.stdout.trim().split('\n').map((line) => JSON.parse(line) as ScenarioReport);
    assert.deepEqual(reports, EXPECTED);
  } finally {
    await server?.stop();
  }
});
