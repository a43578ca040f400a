// The chat application's settings and fixed limits, every one declared once, here, with its unit
// and the reason for its value (as uvicorn's config.py does for the server). An ASGI app sees no
// CLI flags: settings come from environment variables, which each worker inherits (contract).
// The README's "Settings of the chat" table is rendered from these declarations
// (`renderSettingsTable`), and test/config.test.ts fails when the two drift apart; the fixed limits
// and the queue bounds are also rows of the README's limits table (src/readme-tables.ts).
import { checkSecret } from './jwt.js';
import { parseRedisUrl, type RedisUrl } from './redis/url.js';

/** A whole-number setting read from the environment. */
export interface NumberSetting {
  env: string;
  default: number;
  min: number;
  max: number;
  unit: string;
  /** What it bounds, and why the default is what it is. */
  why: string;
  /**
   * For a setting that bounds what a client can make the server hold: what it bounds and what
   * happens at the bound. Such settings are rows of the README's limits table too.
   */
  what?: string;
  atBound?: string;
}

export const CHAT_SETTINGS = {
  historySize: {
    env: 'CHAT_HISTORY_SIZE', default: 50, min: 0, max: 10_000, unit: 'messages',
    why: 'recent messages a newcomer receives (lobby) and `select_room` returns: a screenful and some scrollback, cheap to send on every connect',
  },
  queueMaxMessages: {
    env: 'CHAT_QUEUE_MAX_MESSAGES', default: 1000, min: 1, max: 1_000_000, unit: 'messages',
    why: 'messages waiting for one slow subscriber before it is closed with 1008: seconds of a busy room, so a short stall is absorbed and a stuck reader is not',
    what: 'chat messages queued for one subscriber and not yet sent', atBound: 'the subscriber is closed with 1008 "slow consumer"; nobody else waits for it',
  },
  queueMaxBytes: {
    env: 'CHAT_QUEUE_MAX_BYTES', default: 1024 * 1024, min: 1024, max: 1024 * 1024 * 1024, unit: 'bytes',
    why: 'the same bound in bytes: 10,000 subscribers can never hold more than 10 GiB, whatever the message size',
    what: 'bytes of the chat messages queued for one subscriber', atBound: 'the subscriber is closed with 1008 "slow consumer", as for the count',
  },
  maxSenderLength: {
    env: 'CHAT_MAX_SENDER_LENGTH', default: 64, min: 1, max: 1024, unit: 'characters',
    why: 'longest lobby sender name; as long as a user id',
  },
  maxMessageLength: {
    env: 'CHAT_MAX_MESSAGE_LENGTH', default: 4096, min: 1, max: 1024 * 1024, unit: 'characters',
    why: 'longest message (lobby `message`, room `text`), in Unicode code points: a long chat message, far below --ws-max-size',
  },
  ratePerSecond: {
    env: 'CHAT_RATE_PER_SECOND', default: 20, min: 1, max: 1_000_000, unit: 'requests/s',
    why: 'rooms requests one connection may make per second, sustained (token bucket refill): faster than anyone types, slow enough that one client cannot flood the primary',
  },
  rateBurst: {
    env: 'CHAT_RATE_BURST', default: 100, min: 1, max: 1_000_000, unit: 'requests',
    why: 'rooms requests one connection may make at once (bucket size): a page reconnecting resends its unacknowledged messages in one go',
  },
  maxRoomMembers: {
    env: 'CHAT_MAX_ROOM_MEMBERS', default: 100, min: 2, max: 100_000, unit: 'users',
    why: 'members of one room: every message is answered to each of them, so this bounds one request\'s fan-out',
  },
  maxRoomsPerUser: {
    env: 'CHAT_MAX_ROOMS_PER_USER', default: 100, min: 1, max: 100_000, unit: 'rooms',
    why: 'rooms one user may belong to: bounds `list_rooms` answers and what one user can make others receive',
  },
  dedupeWindow: {
    env: 'CHAT_DEDUPE_WINDOW', default: 86_400, min: 1, max: 30 * 86_400, unit: 's',
    why: 'how long a retried `new_message` (same user, same `uuid`) is recognised and answered with the original, also across restarts: a day covers a laptop that slept with unsent messages',
  },
  dedupeMaxEntries: {
    env: 'CHAT_DEDUPE_MAX_ENTRIES', default: 100_000, min: 1, max: 10_000_000, unit: 'messages',
    why: 'the same table bounded in memory whatever the traffic: the oldest entry is forgotten first when a busy server sends more than this within the window',
    what: '(user, uuid) pairs remembered to recognise retries, each with its message', atBound: 'the oldest pair is forgotten (a retry of it would be a new message)',
  },
  logSegmentBytes: {
    env: 'CHAT_LOG_SEGMENT_BYTES', default: 64 * 1024 * 1024, min: 64 * 1024, max: 1024 * 1024 * 1024, unit: 'bytes',
    why: 'size of one file of the message log; after this much new log the chat writes a checkpoint and deletes the files before it: the log stays near two segments plus what must be kept',
  },
  redisSnapshotEvery: {
    env: 'CHAT_REDIS_SNAPSHOT_EVERY', default: 10_000, min: 10, max: 10_000_000, unit: 'stream entries',
    why: 'with CHAT_REDIS_URL: after this many entries of the shared stream (one per server tree and turn) a tree stores a snapshot of the chat in Redis, and the stream is cut back to the snapshot before: Redis keeps at most about two intervals of stream',
  },
} as const satisfies Record<string, NumberSetting>;

/**
 * CHAT_DATA_DIR: where the message log lives (chat-log.ts). Relative to the current directory;
 * empty means memory only: nothing survives a restart, and startup says so.
 */
export const DATA_DIR_SETTING = {
  env: 'CHAT_DATA_DIR', default: 'data',
  why: 'the message log\'s directory, created at startup; empty keeps everything in memory only (nothing survives a restart)',
} as const;

/**
 * CHAT_REDIS_URL: Redis as the chat's log, shared by every server tree that names the same Redis
 * (shared-chat.ts). Empty (the default): the local message log (CHAT_DATA_DIR) or memory.
 */
export const REDIS_URL_SETTING = {
  env: 'CHAT_REDIS_URL', default: '',
  why: '`redis://[[user]:password@]host:port[/db]`: Redis replaces the local message log and every server tree that names the same Redis serves one chat (README, "Several machines"); CHAT_DATA_DIR is then unused',
} as const;

/** Fixed limits of the chat: not settings, but declared here with their reasons all the same. */
export const CHAT_LIMITS = {
  ipcHighWater: {
    value: 1000, unit: 'IPC messages',
    what: 'broadcast IPC messages queued to one worker (or from it) and not yet flushed',
    atBound: 'every worker stops reading chat messages from its clients (TCP pushes back on publishers) until all are under the low-water mark below',
    why: 'node:cluster IPC buffers without bound; a thousand batches is far more than a healthy turn produces',
  },
  ipcLowWater: {
    value: 250, unit: 'IPC messages', what: 'the IPC backlog under which publishers resume', atBound: 'reading resumes',
    why: 'well below the high-water mark, so that a backlog near the mark does not pause and resume publishers every turn',
  },
  publishBurst: {
    value: 16, unit: 'messages per turn',
    what: 'lobby messages one client publishes in one turn of the event loop',
    atBound: 'the next ones wait for the next turn, so one burst cannot overflow everyone\'s queue',
    why: 'all the frames of one TCP read arrive in one turn; 16 keeps a burst from becoming one giant batch at no cost to a normal client',
  },
  resumeAheadWaitMs: {
    value: 2000, unit: 'ms', what: 'the wait of a lobby resume (`/chat?since=ID`) whose ID this worker has not seen yet',
    atBound: 'the greeting says `recovered: false` and the history follows, as for an id this server never gave',
    why: 'the client saw ID from another worker or another server tree, a moment ahead of this one (milliseconds); an id that never comes must not hold the connection for long',
  },
  presenceCoalesceMs: {
    value: 1000, unit: 'ms', what: '`presence` pushes per room',
    atBound: 'changes within the window are sent as one push at its end',
    why: 'the protocol allows at most one per room per second: a reconnect storm does not become a push storm',
  },
  metricsReportWaitMs: {
    value: 1000, unit: 'ms', what: 'the wait of the primary for each worker\'s snapshot, for one scrape of `/metrics`',
    atBound: 'the scrape is answered without the workers that have not answered; `chat_metrics_workers_answered` says how many did',
    why: 'a worker answers within a turn of its event loop unless it is stuck or still starting; one such worker must not hang every scrape',
  },
  metricsAnswerWaitMs: {
    value: 3000, unit: 'ms', what: 'the wait of a worker serving `/metrics` for the primary\'s answer',
    atBound: '`/metrics` answers 503, saying the primary did not answer',
    why: 'well beyond the primary\'s own wait for the workers, so only a stuck primary or a backlogged IPC channel gets there',
  },
} as const;

export interface ChatConfig {
  historySize: number;
  queueMaxMessages: number;
  queueMaxBytes: number;
  maxSenderLength: number;
  maxMessageLength: number;
  ratePerSecond: number;
  rateBurst: number;
  maxRoomMembers: number;
  maxRoomsPerUser: number;
  /** CHAT_SECRET as bytes, or null: rooms are off (the lobby works without a secret). */
  secret: Buffer | null;
  /** CHAT_ALLOWED_ORIGINS: origins besides the page's own that may open /chat (lower-case). */
  allowedOrigins: string[];
  dedupeWindow: number;
  dedupeMaxEntries: number;
  logSegmentBytes: number;
  /** CHAT_DATA_DIR, or null for memory only. */
  dataDir: string | null;
  redisSnapshotEvery: number;
  /** CHAT_REDIS_URL, or null: no Redis. */
  redisUrl: RedisUrl | null;
}

/** Reads the settings; throws an Error naming the variable when one is malformed. */
export function readChatConfig(env: NodeJS.ProcessEnv = process.env): ChatConfig {
  const numbers = {} as Record<keyof typeof CHAT_SETTINGS, number>;
  for (const [key, setting] of Object.entries(CHAT_SETTINGS) as Array<[keyof typeof CHAT_SETTINGS, NumberSetting]>) {
    numbers[key] = readNumber(env, setting);
  }
  // A newcomer's history goes into its queue first: it must fit.
  if (numbers.historySize > numbers.queueMaxMessages) {
    throw new Error(`CHAT_HISTORY_SIZE (${numbers.historySize}) must not exceed CHAT_QUEUE_MAX_MESSAGES (${numbers.queueMaxMessages})`);
  }
  const dataDir = env.CHAT_DATA_DIR === undefined ? DATA_DIR_SETTING.default : env.CHAT_DATA_DIR.trim() === '' ? null : env.CHAT_DATA_DIR;
  let redisUrl: RedisUrl | null = null;
  if (env.CHAT_REDIS_URL !== undefined && env.CHAT_REDIS_URL.trim() !== '') {
    try {
      redisUrl = parseRedisUrl(env.CHAT_REDIS_URL.trim());
    } catch (error) {
      throw new Error(`CHAT_REDIS_URL: ${(error as Error).message}`);
    }
  }
  return { ...numbers, secret: checkSecret(env.CHAT_SECRET), allowedOrigins: readOrigins(env.CHAT_ALLOWED_ORIGINS), dataDir, redisUrl };
}

function readNumber(env: NodeJS.ProcessEnv, setting: NumberSetting): number {
  const raw = env[setting.env];
  if (raw === undefined || raw === '') return setting.default;
  const value = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(value) || value < setting.min || value > setting.max) {
    throw new Error(`${setting.env} must be a whole number from ${setting.min} to ${setting.max}, got "${raw}"`);
  }
  return value;
}

/** Each entry must be an origin as browsers send it: scheme://host[:port], nothing more. */
function readOrigins(raw: string | undefined): string[] {
  if (raw === undefined || raw.trim() === '') return [];
  return raw.split(',').map((part) => part.trim()).filter((part) => part !== '').map((origin) => {
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      throw new Error(`CHAT_ALLOWED_ORIGINS: "${origin}" is not an origin like https://chat.example.com`);
    }
    const bare = url.pathname === '/' && url.search === '' && url.hash === '' && url.username === '' && url.password === '' && !origin.endsWith('/');
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || !bare) {
      throw new Error(`CHAT_ALLOWED_ORIGINS: "${origin}" is not an origin like https://chat.example.com (scheme, host and port only)`);
    }
    return url.origin;
  });
}

/** The README's table of chat settings, from the declarations above. */
export function renderSettingsTable(): string {
  const rows = Object.values(CHAT_SETTINGS as Record<string, NumberSetting>).map((s) => `| \`${s.env}\` | ${s.default} | ${s.unit} | ${s.why} |`);
  rows.push(`| \`${DATA_DIR_SETTING.env}\` | \`${DATA_DIR_SETTING.default}\` | path | ${DATA_DIR_SETTING.why} |`);
  rows.push(`| \`${REDIS_URL_SETTING.env}\` | (empty) | URL | ${REDIS_URL_SETTING.why} |`);
  return ['| variable | default | unit | what it bounds, and why this default |', '|---|---|---|---|', ...rows].join('\n');
}
