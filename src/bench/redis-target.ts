// The Redis that the fan-out's server trees share (`npm run bench -- --redis URL`), as the
// benchmark sees it: emptied before every run, and, when it runs on this machine, measured.
//
// Emptied: every run starts its trees on an empty database (FLUSHDB on the URL's db). The chat
// keeps its lobby history in Redis (src/shared-chat.ts), so trees started on what an earlier run
// left would greet each new subscriber with that history: messages to receive, parse and throw
// away (another run's id makes them foreign: message.ts), which costs CPU on both sides and was
// never part of the load being measured. The file log has the same artifact when a data
// directory is reused (README, "Against uWebSockets.js"); the benchmark gives each server a fresh
// one, and each Redis run a fresh database. FLUSHDB empties only the URL's database, but all of
// it: the benchmark needs a Redis, or a database number, of its own.
//
// Measured: the servers' CPU is read from /proc (proc.ts); Redis's is read the same way, apart,
// when Redis is on this machine. Its pid comes from `INFO server` (process_id), which is the pid
// in *Redis's* PID namespace: a Redis in a container, or behind a port forward, has a pid that
// means nothing here, or names another process. So the pid is used only when the URL's host is a
// loopback address and the process it names here is a redis-server (its /proc/PID/comm is the
// name of the executable INFO reports, or looks like one); otherwise Redis's CPU is "not
// measured", with the reason, rather than a figure read from the wrong process.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { RedisClient } from '../redis/client.js';
import { describeRedisUrl, parseRedisUrl, type RedisUrl } from '../redis/url.js';

/** What the benchmark knows of the shared Redis. */
export interface RedisInfo {
  /** The URL without its password, for the report. */
  where: string;
  version: string | null;
  /** appendonly and appendfsync, as CONFIG GET tells (null: CONFIG is refused, as on managed Redis). */
  persistence: { appendonly: string; appendfsync: string } | null;
  /** Redis's pid on this machine, or null with the reason in `pidNote`. */
  pid: number | null;
  pidNote: string;
}

const CONNECT_TIMEOUT_MS = 5000;
const COMMAND_TIMEOUT_MS = 30_000;

/** Parses the URL, or throws an Error saying what is wrong with it (never echoing a password). */
export function checkRedisUrl(text: string): RedisUrl {
  try {
    return parseRedisUrl(text);
  } catch (error) {
    throw new Error(`--redis ${(error as Error).message}`);
  }
}

/** Runs `body` on a fresh connection to `url`, closed afterwards (also when connecting fails). */
async function withClient<T>(url: RedisUrl, body: (client: RedisClient) => Promise<T>): Promise<T> {
  const client = new RedisClient({ url, connectTimeoutMs: CONNECT_TIMEOUT_MS, commandTimeoutMs: COMMAND_TIMEOUT_MS });
  try {
    await client.connect();
    return await body(client);
  } finally {
    await client.close(); // a failed connect() keeps retrying in the background until close()
  }
}

/**
 * Empties the URL's database (FLUSHDB) and checks that it is empty; returns the keys it held.
 * Only the server trees of the previous run used it, and they are stopped by then.
 */
export function flushRedis(url: RedisUrl): Promise<number> {
  return withClient(url, async (client) => {
    const before = Number(await client.command(['DBSIZE']));
    await client.command(['FLUSHDB']);
    const after = Number(await client.command(['DBSIZE']));
    if (after !== 0) throw new Error(`${describeRedisUrl(url)} still holds ${after} keys after FLUSHDB: is another client writing to it?`);
    return before;
  });
}

/** `field:value` lines of an INFO reply, as a map. */
export function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return fields;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/i;

/**
 * Whether `pid`, a pid Redis gave for itself, is that Redis here: see the top. Returns null if
 * so, or why not.
 */
function whyNotLocal(url: RedisUrl, pid: number, executable: string | undefined): string | null {
  if (!LOOPBACK.test(url.host)) return `Redis is at ${url.host}, not on this machine's loopback`;
  let comm: string;
  try {
    comm = readFileSync(`/proc/${pid}/comm`, 'latin1').trim();
  } catch {
    return `no process ${pid} here (Redis runs in another PID namespace, a container perhaps)`;
  }
  // comm is the executable's name cut to 15 characters (TASK_COMM_LEN - 1).
  const expected = executable ? basename(executable).slice(0, 15) : null;
  if (expected !== null ? comm !== expected : !/redis|valkey/i.test(comm)) {
    return `process ${pid} here is "${comm}", not Redis (Redis runs in another PID namespace, a container perhaps)`;
  }
  return null;
}

/** Connects once: version, persistence settings and, when Redis is local, its pid. */
export function describeRedis(url: RedisUrl): Promise<RedisInfo> {
  return withClient(url, async (client) => {
    const info = parseInfo(String(await client.command(['INFO', 'server'])));
    let persistence: RedisInfo['persistence'] = null;
    try {
      // CONFIG GET a b (Redis 7) would be one command; two keep older versions working.
      const get = async (name: string): Promise<string> => {
        const reply = await client.command(['CONFIG', 'GET', name]);
        return Array.isArray(reply) && reply.length >= 2 ? String(reply[1]) : '?';
      };
      persistence = { appendonly: await get('appendonly'), appendfsync: await get('appendfsync') };
    } catch {
      // CONFIG renamed or refused: the report says "unknown".
    }
    const pidText = info.get('process_id');
    const pid = pidText !== undefined && /^\d+$/.test(pidText) ? Number(pidText) : null;
    const why = pid === null ? 'INFO server gave no process_id' : whyNotLocal(url, pid, info.get('executable'));
    return {
      where: describeRedisUrl(url),
      version: info.get('redis_version') ?? null,
      persistence,
      pid: why === null ? pid : null,
      pidNote: why === null ? `pid ${pid}, read from /proc` : `not measured: ${why}`,
    };
  });
}
