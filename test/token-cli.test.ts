// The operators' token tool, `node dist/token.js USER [--expires-in D] [--host H] [--port P]`, run
// as a child process the way `npm run token` runs it: the token it prints is accepted by
// verifyToken with the right sub and exp, the sign-in link, --expires-in parsing, and the exit
// code 2 with a clear first line for a missing or short CHAT_SECRET, a bad USER and a bad flag.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { verifyToken } from '../src/jwt.js';
import { PROJECT_ROOT } from './helpers/server.js';

const TOKEN_JS = fileURLToPath(new URL('../../dist/token.js', import.meta.url));
/** No test may hang the run: each fails after this long, saying it timed out. */
const TIMEOUT = { timeout: 20_000 };

const SECRET = 'a-test-secret-that-is-longer-than-32-bytes';
const GENERATE = `export CHAT_SECRET=$(node -e "console.log(require('node:crypto').randomBytes(32).toString('base64url'))")`;

interface Run { code: number | string; stdout: string; stderr: string; startedSeconds: number; endedSeconds: number }

/** Runs the tool to completion with CHAT_SECRET set to `secret`, or removed when it is null. */
async function runToken(args: string[], secret: string | null = SECRET): Promise<Run> {
  const env = { ...process.env };
  if (secret === null) delete env.CHAT_SECRET;
  else env.CHAT_SECRET = secret;
  const startedSeconds = Math.floor(Date.now() / 1000);
  const proc = spawn(process.execPath, [TOKEN_JS, ...args], { cwd: PROJECT_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s; });
  proc.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
  const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
  const [code, signal] = await once(proc, 'exit');
  clearTimeout(timer);
  return { code: (code ?? signal) as number | string, stdout, stderr, startedSeconds, endedSeconds: Math.floor(Date.now() / 1000) };
}

/** Checks a successful run's two lines and returns the token's claims. */
function acceptedToken(run: Run, user: string, link: (token: string) => string): Record<string, unknown> {
  assert.equal(run.code, 0, run.stderr);
  const lines = run.stdout.split('\n');
  assert.equal(lines.length, 3, `two lines and a final newline: ${JSON.stringify(run.stdout)}`);
  assert.equal(lines[2], '');
  const token = lines[0]!;
  assert.equal(lines[1], link(token));
  const result = verifyToken(token, Buffer.from(SECRET), run.endedSeconds);
  assert.ok(result.ok, result.ok ? '' : result.message);
  assert.equal(result.user, user);
  const wrongKey = verifyToken(token, Buffer.from(`${SECRET}!`), run.endedSeconds);
  assert.equal(wrongKey.ok, false, 'signed with CHAT_SECRET, not any other key');
  return result.claims;
}

const defaultLink = (token: string): string => `http://127.0.0.1:8080/#token=${token}`;

describe('a token', () => {
  test('USER alone: a token for USER that expires in exactly 1 hour, and the link to 127.0.0.1:8080', TIMEOUT, async () => {
    const run = await runToken(['alice']);
    const claims = acceptedToken(run, 'alice', defaultLink);
    assert.deepEqual(Object.keys(claims), ['sub', 'iat', 'exp']);
    const iat = claims.iat as number;
    assert.ok(iat >= run.startedSeconds && iat <= run.endedSeconds, `iat ${iat} is the time of the run (${run.startedSeconds}..${run.endedSeconds})`);
    assert.equal(claims.exp, iat + 3600);
    assert.equal(run.stderr, `token for "alice", valid until ${new Date((iat + 3600) * 1000).toISOString()}\n`);
  });

  test('--host and --port go into the link; an IPv6 address is put in brackets', TIMEOUT, async () => {
    acceptedToken(await runToken(['bob', '--host', 'chat.example.org', '--port', '9000']), 'bob', (t) => `http://chat.example.org:9000/#token=${t}`);
    acceptedToken(await runToken(['--port', '8443', '--host', '::1', 'bob']), 'bob', (t) => `http://[::1]:8443/#token=${t}`);
  });

  test('any user id the protocol allows: spaces, accents, emoji, 64 characters', TIMEOUT, async () => {
    acceptedToken(await runToken(['Zoë Ångström 😀']), 'Zoë Ångström 😀', defaultLink);
    acceptedToken(await runToken(['x'.repeat(64)]), 'x'.repeat(64), defaultLink);
    // After "--", a user id may start with a dash.
    acceptedToken(await runToken(['--', '-dash']), '-dash', defaultLink);
  });

  const durations: Array<[string, number]> = [['30s', 30], ['15m', 900], ['7d', 604_800], ['365d', 31_536_000]];
  for (const [text, seconds] of durations) {
    test(`--expires-in ${text}: exp = iat + ${seconds}`, TIMEOUT, async () => {
      const claims = acceptedToken(await runToken(['carol', '--expires-in', text]), 'carol', defaultLink);
      assert.equal((claims.exp as number) - (claims.iat as number), seconds);
    });
  }

  test('--help prints the usage on stdout and exits 0', TIMEOUT, async () => {
    const run = await runToken(['--help'], null);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^Usage: npm run token -- USER/);
    for (const flag of ['--expires-in', '--host', '--port', 'CHAT_SECRET']) assert.ok(run.stdout.includes(flag), flag);
  });
});

describe('CHAT_SECRET missing or short: exit 2, a line naming CHAT_SECRET and how to set one, no token', () => {
  const cases: Array<[string, string | null, RegExp]> = [
    ['unset', null, /^error: CHAT_SECRET is not set/],
    ['empty', '', /^error: CHAT_SECRET is not set/],
    ['31 bytes', 'x'.repeat(31), /^error: CHAT_SECRET must be at least 32 bytes long, got 31/],
  ];
  for (const [name, secret, firstLine] of cases) {
    test(name, TIMEOUT, async () => {
      const run = await runToken(['alice'], secret);
      assert.equal(run.code, 2, run.stderr);
      assert.equal(run.stdout, '', 'no token');
      assert.match(run.stderr.split('\n')[0]!, firstLine);
      assert.ok(run.stderr.includes(GENERATE), `says how to make one: ${run.stderr}`);
    });
  }
});

describe('usage errors: exit 2, the problem on the first line, then the usage, no token', () => {
  const cases: Array<[string[], RegExp]> = [
    [[], /give the USER/],
    [['alice', 'bob'], /exactly one USER, got 2/],
    [[''], /USER is empty/],
    [['x'.repeat(65)], /USER is longer than 64 characters/],
    [['ali\tce'], /USER contains a control character/],
    [['alice\u0085'], /USER contains a control character/],
    [['alice', '--expires-in', '0'], /--expires-in .*got "0"/],
    [['alice', '--expires-in', '0s'], /--expires-in .*got "0s"/],
    [['alice', '--expires-in', 'never'], /--expires-in .*got "never"/],
    [['alice', '--expires-in', '1w'], /--expires-in .*got "1w"/],
    [['alice', '--expires-in', '1.5h'], /--expires-in .*got "1.5h"/],
    [['alice', '--expires-in=-1h'], /--expires-in .*got "-1h"/],
    // parseArgs reads a value that starts with a dash as a forgotten value, and says so.
    [['alice', '--expires-in', '-1h'], /^error: Option '--expires-in' argument is ambiguous/],
    [['alice', '--expires-in', '366d'], /--expires-in .*got "366d"/],
    [['alice', '--expires-in', '1H'], /--expires-in .*got "1H"/],
    [['alice', '--expires-in'], /--expires-in/],
    [['alice', '--port', '0'], /--port must be a whole number from 1 to 65535, got "0"/],
    [['alice', '--port', '65536'], /--port .*got "65536"/],
    [['alice', '--port', 'http'], /--port .*got "http"/],
    [['alice', '--host', 'evil.example/x'], /--host .*got "evil.example\/x"/],
    [['alice', '--host', ''], /--host .*got ""/],
    [['alice', '--bogus'], /--bogus/],
  ];
  for (const [args, firstLine] of cases) {
    test(JSON.stringify(args), TIMEOUT, async () => {
      const run = await runToken(args);
      assert.equal(run.code, 2, `exit code 2 expected, got ${run.code}; stderr:\n${run.stderr}`);
      assert.equal(run.stdout, '', 'no token');
      assert.match(run.stderr.split('\n')[0]!, firstLine);
      assert.match(run.stderr, /\nUsage: npm run token -- USER/, 'the usage follows');
    });
  }
});
