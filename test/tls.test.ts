// TLS (src/server/tls.ts and node:https in server.ts), through real server processes and real
// clients, with certificates made by openssl for this run (helpers/certificates.ts):
//   - curl, node:https with the test's CA, and a raw TLS client: HTTPS answers, the `https` and
//     `wss` schemes in scopes, WebSocket frames over TLS; Node's own WebSocket client over wss://
//     (in a child process: its trusted CAs can only be extended at start, NODE_EXTRA_CA_CERTS);
//   - an encrypted key with --ssl-keyfile-password, --workers 2, --ssl-ca-certs completing the
//     chain a client verifies, a key and certificate in one file;
//   - bad files: each stops startup with exit 1 and exactly one ERROR line naming the flag, the
//     file and the problem, in one process and with --workers 2 (the primary checks before it forks).
// Without curl the curl test is skipped, except in CI (CI set), where that is a failure.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { makeCertificates, type Certificates } from './helpers/certificates.js';
import { Op, connectRaw, httpOnce } from './helpers/raw-ws.js';
import { fixture, runMain, startServer, type RunningServer } from './helpers/server.js';

const TIMEOUT = { timeout: 30_000 };

let certs: Certificates;
const servers: Record<string, RunningServer> = {};

before(async () => {
  certs = makeCertificates();
  const start = async (name: string, args: string[]) => {
    servers[name] = await startServer({ args, timeoutMs: 20_000 });
  };
  const results = await Promise.allSettled([
    start('http', ['--app', fixture('http-probe.mjs'), '--ssl-certfile', certs.cert, '--ssl-keyfile', certs.key]),
    start('ws', [
      '--app', fixture('ws-probe.mjs'), '--workers', '2',
      '--ssl-certfile', certs.cert, '--ssl-keyfile', certs.encryptedKey, '--ssl-keyfile-password', certs.password,
    ]),
    start('chain', ['--app', fixture('http-probe.mjs'), '--ssl-certfile', certs.leaf, '--ssl-keyfile', certs.leafKey, '--ssl-ca-certs', certs.intermediate]),
  ]);
  for (const result of results) if (result.status === 'rejected') throw result.reason;
});

after(async () => {
  await Promise.all(Object.values(servers).map((server) => server.stop()));
  certs?.remove();
});

/** A GET over HTTPS with node:https, trusting only `ca`; resolves with status and body. */
function httpsGet(port: number, path: string, ca: Buffer): Promise<{ status: number; body: string; localPort: number }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, ca, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (s: string) => { body += s; });
      res.on('end', () => resolve({ status: res.statusCode!, body, localPort: req.socket!.localPort! }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error(`no answer to ${path} within 5 s`)));
    req.end();
  });
}

/** Runs a command to completion (rejects on a non-zero exit, or after 15 s). */
const run = (file: string, args: string[], options: { env?: NodeJS.ProcessEnv } = {}) => promisify(execFile)(file, args, { ...options, timeout: 15_000 });

function skipOrFail(t: TestContext, why: string): void {
  // CI=true (or any value but "", "0" and "false"): the test must run, never skip.
  if (/^(?!(0|false)$)./i.test(process.env.CI ?? '')) assert.fail(`this test must run in CI: ${why}`);
  t.skip(why);
}

describe('HTTPS', () => {
  test('the start-up line says https', () => {
    assert.match(servers.http!.output(), /^listening on https:\/\/127\.0\.0\.1:\d+$/m);
    assert.equal(servers.http!.scheme, 'https');
  });

  test('curl verifies the certificate and gets the answer', TIMEOUT, async (t) => {
    if (spawnSync('curl', ['--version']).error) return skipOrFail(t, 'curl is not installed');
    // Without -k: curl checks the certificate against the test CA and the name 127.0.0.1.
    const { stdout } = await run('curl', ['-sS', '--max-time', '10', '--cacert', certs.cert, `${servers.http!.url}/fixed`]);
    assert.equal(stdout, 'hello');
  });

  test('node:https trusting the test CA: the http scope says https, with client and server', TIMEOUT, async () => {
    const { status, body, localPort } = await httpsGet(servers.http!.port, '/scope?id=https', certs.read(certs.cert));
    assert.equal(status, 200);
    const { scope } = JSON.parse(body) as { scope: { scheme: string; client: [string, number]; server: [string, number] } };
    assert.equal(scope.scheme, 'https');
    assert.deepEqual(scope.client, ['127.0.0.1', localPort]);
    assert.deepEqual(scope.server, ['127.0.0.1', servers.http!.port]);
  });

  test('a client that does not trust the certificate refuses it (so the checks above and below are real)', TIMEOUT, async () => {
    await assert.rejects(httpsGet(servers.http!.port, '/fixed', certs.read(certs.root)), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
  });

  test('plain HTTP to the TLS port gets no HTTP answer: the connection is closed', TIMEOUT, async () => {
    await assert.rejects(httpOnce(servers.http!.port, 'GET /fixed HTTP/1.1\r\nHost: x\r\n\r\n'), /connection ended before an HTTP response/);
  });

  test('--ssl-ca-certs: the server sends the intermediate, so a client trusting only the root verifies', TIMEOUT, async () => {
    const { status, body } = await httpsGet(servers.chain!.port, '/fixed', certs.read(certs.root));
    assert.equal(status, 200);
    assert.equal(body, 'hello');
  });
});

describe('wss:// (encrypted key with --ssl-keyfile-password, --workers 2)', () => {
  test('both workers listen: the primary announces https once', () => {
    assert.equal(servers.ws!.output().match(/listening on https:\/\/127\.0\.0\.1:\d+/g)?.length, 1);
  });

  test('a raw TLS client: 101, the websocket scope says wss, frames both ways', TIMEOUT, async () => {
    const ws = await connectRaw(servers.ws!.port, { path: '/scope', ca: certs.read(certs.cert) });
    try {
      assert.equal(ws.status, 101);
      const { first, scope } = JSON.parse((await ws.nextFrame()).payload.toString()) as { first: string; scope: { scheme: string; client: [string, number] } };
      assert.equal(first, 'websocket.connect');
      assert.equal(scope.scheme, 'wss');
      assert.deepEqual(scope.client, ['127.0.0.1', ws.socket.localPort]);
      await ws.sendText('over TLS');
      const echo = await ws.nextFrame();
      assert.equal(echo.opcode, Op.TEXT);
      assert.equal(echo.payload.toString(), 'over TLS');
      await ws.sendClose(1000);
      const close = await ws.waitClose();
      assert.equal(close.code, 1000);
    } finally {
      ws.destroy();
    }
  });

  test("Node's WebSocket client over wss:// sends and receives", TIMEOUT, async () => {
    const script = `
      const ws = new WebSocket(process.argv[1]);
      ws.onopen = () => ws.send('hello over wss');
      ws.onmessage = (event) => { process.stdout.write(String(event.data)); ws.close(1000); };
      ws.onclose = (event) => process.stdout.write(' closed ' + event.code);
      ws.onerror = () => process.stdout.write('error');`;
    const { stdout } = await run(process.execPath, ['--experimental-websocket', '--no-warnings', '-e', script, `${servers.ws!.wsUrl}/echo`], {
      env: { ...process.env, NODE_EXTRA_CA_CERTS: certs.cert },
    });
    assert.equal(stdout, 'hello over wss closed 1000');
  });
});

describe('one file holding both key and certificate (--ssl-certfile alone, as uvicorn allows)', () => {
  test('serves HTTPS', TIMEOUT, async () => {
    const both = join(certs.dir, 'both.pem');
    writeFileSync(both, Buffer.concat([certs.read(certs.key), certs.read(certs.cert)]));
    const server = await startServer({ args: ['--app', fixture('echo.mjs'), '--ssl-certfile', both] });
    try {
      assert.equal(server.scheme, 'https');
      const { status } = await httpsGet(server.port, '/', certs.read(certs.cert));
      assert.equal(status, 200);
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });
});

describe('bad TLS files: exit 1 and one clear line', () => {
  const cases: Array<[label: string, args: () => string[], message: () => string]> = [
    ['a missing certificate file', () => ['--ssl-certfile', join(certs.dir, 'nope.pem'), '--ssl-keyfile', certs.key],
      () => `cannot read --ssl-certfile "${join(certs.dir, 'nope.pem')}": no such file`],
    ['a directory as key file', () => ['--ssl-certfile', certs.cert, '--ssl-keyfile', certs.dir],
      () => `cannot read --ssl-keyfile "${certs.dir}": it is a directory`],
    ['a certificate file that is not PEM', () => ['--ssl-certfile', certs.garbage, '--ssl-keyfile', certs.key],
      () => `--ssl-certfile "${certs.garbage}" holds no PEM certificate`],
    ['a key file that holds a certificate', () => ['--ssl-certfile', certs.cert, '--ssl-keyfile', certs.cert],
      () => `--ssl-keyfile "${certs.cert}" holds no PEM private key`],
    ['a certificate file without its key', () => ['--ssl-certfile', certs.cert],
      () => `--ssl-certfile "${certs.cert}" holds no PEM private key`],
    ['an encrypted key without password', () => ['--ssl-certfile', certs.cert, '--ssl-keyfile', certs.encryptedKey],
      () => `--ssl-keyfile "${certs.encryptedKey}" is encrypted: give its password with --ssl-keyfile-password`],
    ['a wrong password', () => ['--ssl-certfile', certs.cert, '--ssl-keyfile', certs.encryptedKey, '--ssl-keyfile-password', 'wrong'],
      () => `--ssl-keyfile-password does not decrypt --ssl-keyfile "${certs.encryptedKey}"`],
    ['a key that does not belong to the certificate', () => ['--ssl-certfile', certs.cert, '--ssl-keyfile', certs.otherKey],
      () => `the private key in --ssl-keyfile "${certs.otherKey}" does not belong to the certificate in --ssl-certfile "${certs.cert}"`],
    ['a CA file without certificates', () => ['--ssl-certfile', certs.cert, '--ssl-keyfile', certs.key, '--ssl-ca-certs', certs.garbage],
      () => `--ssl-ca-certs "${certs.garbage}" holds no PEM certificate`],
  ];
  for (const [label, args, message] of cases) {
    test(label, TIMEOUT, async () => {
      const run = await runMain(['--app', fixture('echo.mjs'), '--port', '0', ...args()]);
      assert.equal(run.code, 1, `exit 1 expected; output:\n${run.stdout}${run.stderr}`);
      assert.equal(run.stdout, '');
      assert.equal(run.stderr.replace(/\[\d+\]/, '[PID]'), `ERROR:    [PID] ${message()}\n`);
    });
  }

  test('with --workers 2: the primary stops before forking, with the same single line', TIMEOUT, async () => {
    const run = await runMain(['--app', fixture('echo.mjs'), '--port', '0', '--workers', '2', '--ssl-certfile', certs.cert, '--ssl-keyfile', certs.otherKey]);
    assert.equal(run.code, 1, `exit 1 expected; output:\n${run.stdout}${run.stderr}`);
    assert.equal(run.stdout, '');
    assert.equal(run.stderr.replace(/\[\d+\]/, '[PID]'), `ERROR:    [PID] the private key in --ssl-keyfile "${certs.otherKey}" does not belong to the certificate in --ssl-certfile "${certs.cert}"\n`);
  });
});
