#!/usr/bin/env node
// The operators' token tool: `npm run token -- USER [--expires-in 1h] [--host HOST] [--port PORT]`.
// It signs a JSON Web Token for USER with the server's CHAT_SECRET (src/jwt.ts) and prints two
// lines on stdout: the token, then the chat page's sign-in link `http://HOST:PORT/#token=TOKEN`.
// The token rides in the URL's fragment, which the browser keeps to itself: it is never sent in
// a request line, so it does not land in access logs or proxies.
//
// Every token expires (`--expires-in`, default 1h, at most 365d): a leaked token with no end
// would be valid until the secret is changed, which signs everyone out.
//
// Exit codes: 0 printed a token; 2 a bad flag or USER (what is wrong, then the usage, on stderr)
// or CHAT_SECRET unset or shorter than 32 bytes (a line saying how to set one). There is no
// default secret: a token signed with a published one would let anybody be anybody.
import { isIPv6 } from 'node:net';
import { parseArgs } from 'node:util';
import { GENERATE_SECRET_COMMAND, checkSecret, signToken, userIdProblem } from './jwt.js';

const EXIT_USAGE = 2;

const USAGE = `Usage: npm run token -- USER [options]
       node dist/token.js USER [options]

Prints a sign-in token for USER (1 to 64 characters, no control characters), signed with the
server's CHAT_SECRET, on the first line, and the chat page's sign-in link on the second.

Options:
  --expires-in DURATION  how long the token is valid: a whole number and a unit,
                         s, m, h or d (30s, 15m, 1h, 7d), up to 365d (default 1h)
  --host HOST            the server's host in the link (default 127.0.0.1)
  --port PORT            the server's port in the link (default 8080)
  --help                 show this help and exit

Environment:
  CHAT_SECRET            the server's secret, at least 32 bytes (required)
`;

/** Seconds per unit of --expires-in. */
const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86_400 } as const;
/** The longest --expires-in: a year. */
const MAX_EXPIRES_IN_SECONDS = 365 * UNIT_SECONDS.d;

class UsageError extends Error {}

interface TokenOptions {
  user: string;
  expiresInSeconds: number;
  host: string;
  port: number;
  help: boolean;
}

function parseOptions(argv: string[]): TokenOptions {
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: {
        'expires-in': { type: 'string' },
        host: { type: 'string' },
        port: { type: 'string' },
        help: { type: 'boolean' },
      },
    }));
  } catch (error) {
    // parseArgs' messages are long and mention internals; keep their first sentence.
    throw new UsageError((error as Error).message.split('. ')[0]!.replace(/\.$/, ''));
  }
  if (values.help === true) return { user: '', expiresInSeconds: 0, host: '', port: 0, help: true };

  if (positionals.length !== 1) {
    throw new UsageError(positionals.length === 0 ? 'give the USER to sign a token for' : `give exactly one USER, got ${positionals.length}: ${positionals.map((p) => JSON.stringify(p)).join(' ')}`);
  }
  const user = positionals[0]!;
  const problem = userIdProblem(user);
  if (problem !== null) throw new UsageError(`USER ${problem}: ${JSON.stringify(user)}`);

  return {
    user,
    expiresInSeconds: parseDuration(typeof values['expires-in'] === 'string' ? values['expires-in'] : '1h'),
    host: parseHost(typeof values.host === 'string' ? values.host : '127.0.0.1'),
    port: parsePort(typeof values.port === 'string' ? values.port : '8080'),
    help: false,
  };
}

/** `30s`, `15m`, `1h`, `7d` → seconds. Zero and "never" are refused: every token expires. */
function parseDuration(text: string): number {
  const match = /^(\d{1,6})([smhd])$/.exec(text);
  const seconds = match === null ? NaN : Number(match[1]) * UNIT_SECONDS[match[2] as keyof typeof UNIT_SECONDS];
  if (!(seconds >= 1 && seconds <= MAX_EXPIRES_IN_SECONDS)) {
    throw new UsageError(`--expires-in must be a whole number and a unit (s, m, h or d) from 1s to 365d, such as 30s, 15m, 1h or 7d, got "${text}"`);
  }
  return seconds;
}

/** A host name or IPv4 address as is, an IPv6 address in brackets (RFC 3986 §3.2.2). */
function parseHost(text: string): string {
  if (isIPv6(text)) return `[${text}]`;
  // Letters, digits, dots and hyphens cover host names and IPv4; anything else (a "/", "@" or
  // ":") would change what the link points at.
  if (!/^[A-Za-z0-9.-]+$/.test(text)) {
    throw new UsageError(`--host must be a host name or an IP address, got "${text}"`);
  }
  return text;
}

function parsePort(text: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  // 0 lets the server pick a port, which the link cannot know: give the port it printed.
  if (!(port >= 1 && port <= 65535)) {
    throw new UsageError(`--port must be a whole number from 1 to 65535, got "${text}"`);
  }
  return port;
}

function main(): void {
  let options: TokenOptions;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`error: ${error.message}\n\n${USAGE}`);
    process.exitCode = EXIT_USAGE;
    return;
  }
  if (options.help) {
    process.stdout.write(USAGE);
    return;
  }

  let secret: Buffer | null;
  try {
    secret = checkSecret(process.env.CHAT_SECRET);
  } catch (error) {
    process.stderr.write(`error: ${(error as Error).message}\n`);
    process.exitCode = EXIT_USAGE;
    return;
  }
  if (secret === null) {
    // The command on a line of its own, so that it can be copied as it is.
    process.stderr.write(`error: CHAT_SECRET is not set; tokens are signed with the server's secret, so set the same one for the server and for this tool, for example:\n  ${GENERATE_SECRET_COMMAND}\n`);
    process.exitCode = EXIT_USAGE;
    return;
  }

  const now = Math.floor(Date.now() / 1000);
  const exp = now + options.expiresInSeconds;
  const token = signToken({ sub: options.user, iat: now, exp }, secret);
  // Exit codes are set, never process.exit(): stdout may be a pipe, and exit() can cut it short.
  process.stdout.write(`${token}\nhttp://${options.host}:${options.port}/#token=${token}\n`);
  process.stderr.write(`token for ${JSON.stringify(options.user)}, valid until ${new Date(exp * 1000).toISOString()}\n`);
}

main();
