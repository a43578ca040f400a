// The chat's log in Redis, shared by every server tree that names the same Redis: the I/O half of
// the multi-machine mode. It knows keys, commands and stream ids; what the entries mean is
// shared-chat.ts's business, and who is online is shared-presence.ts's.
//
//   tree A primary ── XADD chat:log (one entry per turn) ──┐
//   tree B primary ── XADD chat:log ───────────────────────┼─▶ Redis stream chat:log ─┐
//                                                          │                         │ XREAD BLOCK
//   every tree's primary ◀── its entries, in the stream's order, each once ─────────────┘ from the last id
//
// Keys (all under one database of the URL):
//   chat:log       a stream: the shared log. Field `t` names the tree that wrote the entry, field
//                  `r` holds the records of one turn of that tree, one per line.
//   chat:presence  a stream, capped at PRESENCE_STREAM_LENGTH: who is online on which tree.
//   chat:snapshot  a hash: `state` (the whole chat, as shared-chat.ts writes it), `pos` (the last
//                  entry it includes), `n` (how many entries that is since the stream began).
//   chat:trimmed   the id below which chat:log was cut (XTRIM MINID), after a snapshot.
//   chat:config    the settings every tree must share (shared-chat.ts checks them at startup).
//
// Theory of operation:
//
//   Two connections. A blocking read holds its connection until data arrives, so the follower
//     reads on a connection of its own (`reader`), and appends, snapshots and presence go on the
//     other (`commands`); each reconnects by itself with backoff (client.ts).
//
//   Follow, never poll. The reader's XREAD BLOCK names the last id this tree applied; Redis
//     answers the moment an entry is added after it, with up to READ_COUNT entries. The block has a
//     timeout only so that a dead connection is noticed (a reply must come within BLOCK_MS plus a
//     margin); a timeout that passes just starts the next read.
//
//   Catch up from the last id. After any disconnect, and at startup, the same read from the same
//     id returns everything this tree has not seen: nothing is missed and nothing applied twice,
//     because an entry's id is its place in the log. At startup the read starts from the
//     snapshot's position (or the beginning), without BLOCK, until it comes back empty.
//
//   Bounded. A snapshot replaces every entry up to its position; when one is stored, the stream
//     is cut back to the *previous* snapshot's position (a Lua script does both atomically, and
//     only if the snapshot is newer than the one stored). So Redis holds about two snapshot
//     intervals of stream, and a tree that fell behind by less than one interval still finds
//     every entry it needs. One that fell further (cut off from Redis, or stalled, while the
//     others went on) finds chat:trimmed above its last id and must start again from the
//     snapshot: the follower asks for chat:trimmed with every read, so it never reads past a cut.
import { once } from 'node:events';
import { RedisClient } from './client.js';
import { RedisConnectionError } from './errors.js';
import type { RespValue } from './resp.js';
import { describeRedisUrl, type RedisUrl } from './url.js';

export const LOG_KEY = 'chat:log';
export const PRESENCE_KEY = 'chat:presence';
export const SNAPSHOT_KEY = 'chat:snapshot';
export const TRIMMED_KEY = 'chat:trimmed';
export const CONFIG_KEY = 'chat:config';

/** Entries per read: a catch-up after an outage comes in slices of this many, one turn each. */
const READ_COUNT = 1000;
/** The pause before the follower retries after a refusal with both connections up (ms). */
const RETRY_PAUSE_MS = 100;
/** How long one blocking read waits for news before it is simply made again (ms). */
const BLOCK_MS = 5000;
/** A blocking read's reply must arrive within BLOCK_MS plus this, or the connection is presumed dead. */
const BLOCK_MARGIN_MS = 5000;
/**
 * The presence stream keeps about this many entries (MAXLEN ~): it only needs to carry news from
 * one read to the next, and a tree that starts reads from the end (shared-presence.ts).
 */
export const PRESENCE_STREAM_LENGTH = 10_000;

/** One entry of chat:log. */
export interface LogEntry {
  readonly id: string;
  /** The tree that wrote it. */
  readonly tree: string;
  /** Its records (shared-chat.ts), in the order that tree appended them. */
  readonly records: readonly string[];
}

/** One entry of chat:presence. */
export interface PresenceEntry {
  readonly tree: string;
  readonly kind: string;
  readonly users: readonly string[];
}

export interface SharedLogHandlers {
  /** Entries of chat:log, in the stream's order, each once; called synchronously with each read. */
  entries(entries: readonly LogEntry[]): void;
  /** Entries of chat:presence written after this tree started (its own too). */
  presence(entries: readonly PresenceEntry[]): void;
  /** The follower is connected again after a loss, and about to catch up. */
  reconnected(): void;
  /**
   * Something this tree cannot recover from while running: it missed entries that were trimmed,
   * or Redis lost entries this tree had applied. The owner stops the tree (a restart starts from
   * Redis's state).
   */
  fatal(message: string): void;
}

/** What a tree finds in Redis at startup. */
export interface SharedSnapshot {
  /** The snapshot's state (shared-chat.ts), or null if none was ever stored. */
  readonly state: string | null;
  /** Entries it covers since the stream began (0 without one). */
  readonly entries: number;
}

/** Compares two stream ids ("ms-seq"): negative, zero or positive, as for sort. */
export function compareStreamIds(a: string, b: string): number {
  const dashA = a.indexOf('-');
  const dashB = b.indexOf('-');
  const msA = Number(a.slice(0, dashA));
  const msB = Number(b.slice(0, dashB));
  if (msA !== msB) return msA - msB;
  return Number(a.slice(dashA + 1)) - Number(b.slice(dashB + 1));
}

/** The milliseconds part of a stream id: when Redis added the entry. */
export function streamIdTime(id: string): number {
  return Number(id.slice(0, id.indexOf('-')));
}

/**
 * Stores a snapshot if it is newer than the one stored, and cuts the stream back to the previous
 * one (see "Bounded" at the top). KEYS: snapshot, log, trimmed. ARGV: entries, pos, state.
 * Atomic: no tree can read the new snapshot's position while the stream still lacks the cut, or
 * the other way round.
 */
const STORE_SNAPSHOT = `
local stored = tonumber(redis.call('HGET', KEYS[1], 'n') or '-1')
if stored >= tonumber(ARGV[1]) then return 0 end
local previous = redis.call('HGET', KEYS[1], 'pos')
redis.call('HSET', KEYS[1], 'n', ARGV[1], 'pos', ARGV[2], 'state', ARGV[3])
if previous then
  redis.call('XTRIM', KEYS[2], 'MINID', previous)
  redis.call('SET', KEYS[3], previous)
end
return 1
`;

export class SharedLog {
  /** This tree's name in the log: random per start, so a restarted tree is a new writer. */
  readonly tree: string;
  readonly where: string;
  private readonly commands: RedisClient;
  private readonly reader: RedisClient;
  private handlers: SharedLogHandlers | null = null;
  /** The last chat:log entry handed to entries(). */
  private lastId = '0-0';
  private lastPresenceId = '0-0';
  private closed = false;
  /** Callbacks waiting for the log to be applied up to an id (see afterCatchUp). */
  private readonly catchUpWaiters: Array<{ until: string; done: () => void }> = [];
  /** Entries and reads so far (metrics). */
  readonly stats = { appends: 0, entriesRead: 0, reads: 0 };

  constructor(url: RedisUrl, tree: string) {
    this.tree = tree;
    this.where = describeRedisUrl({ ...url, password: null, username: null });
    this.commands = new RedisClient({ url, commandTimeoutMs: 10_000 });
    this.reader = new RedisClient({ url });
  }

  /** Whether appends are accepted now (the commands connection is up). */
  get connected(): boolean {
    return this.commands.connected;
  }

  /** The id of the last entry applied. */
  get position(): string {
    return this.lastId;
  }

  /**
   * Connects both connections; rejects with a message naming Redis if it cannot be reached (the
   * server then exits 3: a tree that cannot read the shared log has nothing to serve).
   */
  async connect(): Promise<void> {
    try {
      await Promise.all([this.commands.connect(), this.reader.connect()]);
    } catch (error) {
      await this.close();
      throw new Error(`cannot reach Redis at ${this.where}: ${(error as Error).message}`, { cause: error });
    }
  }

  /**
   * Checks that every tree runs with the same settings: the first tree stores `config`, each
   * later one compares. Resolves to the stored text when it differs, else null.
   */
  async checkConfig(config: string): Promise<string | null> {
    await this.commands.command(['SET', CONFIG_KEY, config, 'NX']);
    const stored = await this.commands.command(['GET', CONFIG_KEY]);
    return stored === config ? null : String(stored);
  }

  /** The stored snapshot, if any; the log is then read from its position on. */
  async readSnapshot(): Promise<SharedSnapshot> {
    const reply = await this.commands.command(['HMGET', SNAPSHOT_KEY, 'n', 'pos', 'state']) as Array<string | null>;
    const [n, pos, state] = reply;
    if (n === null || pos === null || state === null) return { state: null, entries: 0 };
    this.lastId = pos;
    return { state, entries: Number(n) };
  }

  /**
   * Reads everything after the snapshot, handing it to `entries` slice by slice, until the end
   * of the stream. Throws if part of what this tree needs was trimmed meanwhile (another tree
   * stored two snapshots in the meantime: start again).
   */
  async catchUp(entries: (entries: readonly LogEntry[]) => void): Promise<void> {
    for (;;) {
      const from = this.lastId;
      const reply = await this.commands.command(['XREAD', 'COUNT', READ_COUNT, 'STREAMS', LOG_KEY, from]);
      // Checked after the read: a cut made before it may have taken entries after `from`.
      await this.checkReadable(from);
      const read = this.parseLog(reply);
      if (read.length === 0) break;
      entries(read);
    }
    // Presence: only what is written from now on (older entries describe trees long gone, or
    // are repeated by the live trees when this one says hello: shared-presence.ts).
    const last = await this.commands.command(['XREVRANGE', PRESENCE_KEY, '+', '-', 'COUNT', 1]) as Array<[string, unknown]>;
    if (last.length > 0) this.lastPresenceId = last[0][0];
  }

  /** Starts following the log (and presence): `handlers` get everything after the catch-up. */
  follow(handlers: SharedLogHandlers): void {
    this.handlers = handlers;
    void this.followLoop();
  }

  /** Appends one entry: this turn's records. Resolves when Redis has it; rejects if it cannot. */
  append(records: readonly string[]): Promise<RespValue> {
    this.stats.appends++;
    return this.commands.command(['XADD', LOG_KEY, '*', 't', this.tree, 'r', records.join('\n')]);
  }

  /**
   * Appends a presence entry. Never rejects: presence is best effort (shared-presence.ts repeats
   * what matters after an outage); the promise only says when it is done.
   */
  appendPresence(kind: string, users: readonly string[]): Promise<void> {
    if (!this.commands.connected) return Promise.resolve();
    return this.commands.command(['XADD', PRESENCE_KEY, 'MAXLEN', '~', PRESENCE_STREAM_LENGTH, '*', 't', this.tree, 'k', kind, 'u', users.join('\n')]).then(() => {}, () => {});
  }

  /** Stores a snapshot that covers `entries` entries, up to `pos` (see STORE_SNAPSHOT). */
  storeSnapshot(entries: number, pos: string, state: string): Promise<RespValue> {
    return this.commands.command(['EVAL', STORE_SNAPSHOT, 3, SNAPSHOT_KEY, LOG_KEY, TRIMMED_KEY, entries, pos, state]);
  }

  /**
   * Calls `done` once this tree has applied the log up to its end as it is *now* (asked of Redis
   * on the commands connection, once that is up): every entry appended before is then known.
   * Used to settle writes whose fate an outage left unknown (shared-chat.ts).
   */
  afterCatchUp(done: () => void): void {
    const ask = (): void => {
      if (this.closed) return;
      this.commands.command(['XREVRANGE', LOG_KEY, '+', '-', 'COUNT', 1]).then((reply) => {
        const last = reply as Array<[string, unknown]>;
        const until = last.length > 0 ? last[0][0] : '0-0';
        if (compareStreamIds(until, this.lastId) <= 0) return done();
        this.catchUpWaiters.push({ until, done });
      }, () => {
        // Down again: try once it is back.
        once(this.commands, 'connected').then(ask, () => {});
      });
    };
    if (this.commands.connected) ask();
    else once(this.commands, 'connected').then(ask, () => {});
  }

  /** Stops following and closes both connections. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([this.commands.close(), this.reader.close()]);
  }

  /** The commands connection came back (the owner announces its presence again). */
  onCommandsConnected(listener: () => void): void {
    this.commands.on('connected', listener);
  }

  onCommandsLost(listener: () => void): void {
    this.commands.on('disconnected', listener);
  }

  // ---------------------------------------------------------------------------------------------

  private async followLoop(): Promise<void> {
    let lost = false;
    while (!this.closed) {
      try {
        if (lost) {
          lost = false;
          await this.checkReadable(this.lastId);
          this.handlers!.reconnected();
        }
        // The cut, asked just before the read on the same connection (one write: Redis runs the
        // two back to back). A read from an id below the cut does not fail: it returns the
        // entries after the cut, and this tree would apply them with a hole in its copy. That
        // happens without any disconnect to a tree that stalled while the others went on (a
        // SIGSTOP, a paused VM, a long pause of the event loop): the entries Redis had already
        // sent it are whole, the next read is the one that skips.
        const from = this.lastId;
        const [trimmed, reply] = await Promise.all([
          this.reader.command(['GET', TRIMMED_KEY]) as Promise<string | null>,
          this.reader.command(
            ['XREAD', 'COUNT', READ_COUNT, 'BLOCK', BLOCK_MS, 'STREAMS', LOG_KEY, PRESENCE_KEY, from, this.lastPresenceId],
            { timeoutMs: BLOCK_MS + BLOCK_MARGIN_MS },
          ),
        ]);
        if (trimmed !== null && compareStreamIds(from, trimmed) < 0) {
          this.handlers!.fatal(trimmedPast(from, trimmed));
          return;
        }
        this.stats.reads++;
        this.take(reply);
      } catch (error) {
        if (this.closed) return;
        if (!(error instanceof RedisConnectionError)) {
          this.handlers!.fatal(`reading the shared log from Redis at ${this.where} failed: ${(error as Error).message}`);
          return;
        }
        // The reader reconnects by itself (client.ts); read again, from the same id, once it has,
        // and once the commands connection has too: checkReadable runs on it. Its commands are
        // refused at once while it is down, so without this wait a reader that is back first
        // would retry the check in a loop of microtasks that never yields to the event loop,
        // starving the very reconnect it waits for (the primary hung at full CPU).
        lost = true;
        if (!this.reader.connected) await once(this.reader, 'connected').catch(() => {});
        if (!this.commands.connected) await once(this.commands, 'connected').catch(() => {});
        // Both up, and yet refused (too many commands pending on the commands connection, say):
        // a short pause, so that a retry cannot spin without ever yielding to the event loop.
        else if (this.reader.connected) await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
      }
    }
  }

  /** Hands a read's entries to the handlers: the log's first, then presence. */
  private take(reply: RespValue): void {
    if (reply === null) return;
    for (const [key, items] of reply as Array<[string, Array<[string, string[]]>]>) {
      if (key === LOG_KEY) {
        const entries = this.entriesOf(items);
        if (entries.length > 0) this.handlers!.entries(entries);
      } else if (key === PRESENCE_KEY && items.length > 0) {
        this.lastPresenceId = items[items.length - 1][0];
        this.handlers!.presence(items.map(([, fields]) => {
          const f = fieldsOf(fields);
          return { tree: f.t ?? '', kind: f.k ?? '', users: f.u ? f.u.split('\n') : [] };
        }));
      }
    }
    this.settleCatchUpWaiters();
  }

  private parseLog(reply: RespValue): LogEntry[] {
    if (reply === null) return [];
    const streams = reply as Array<[string, Array<[string, string[]]>]>;
    return streams.length === 0 ? [] : this.entriesOf(streams[0][1]);
  }

  /** Parses entries and advances lastId past them. */
  private entriesOf(items: Array<[string, string[]]>): LogEntry[] {
    const entries: LogEntry[] = [];
    for (const [id, fields] of items) {
      const f = fieldsOf(fields);
      entries.push({ id, tree: f.t ?? '', records: f.r ? f.r.split('\n') : [] });
      this.lastId = id;
    }
    this.stats.entriesRead += entries.length;
    return entries;
  }

  private settleCatchUpWaiters(): void {
    for (let i = 0; i < this.catchUpWaiters.length;) {
      const waiter = this.catchUpWaiters[i];
      if (compareStreamIds(waiter.until, this.lastId) <= 0) {
        this.catchUpWaiters.splice(i, 1);
        waiter.done();
      } else {
        i++;
      }
    }
  }

  /**
   * Checks that the log can be read on from `from`: nothing after it was trimmed away (the tree
   * was cut off for longer than a snapshot interval), and Redis still has `from` itself, the last
   * entry this tree applied. A Redis that restarted without its last writes (no append-only file,
   * or the last second of `appendfsync everysec`) lost entries this tree applied and the others
   * may never see: the trees now disagree, and only a restart from Redis's state agrees again.
   */
  private async checkReadable(from: string): Promise<void> {
    const [trimmed, here] = await Promise.all([
      this.commands.command(['GET', TRIMMED_KEY]) as Promise<string | null>,
      from === '0-0' ? Promise.resolve([]) : this.commands.command(['XRANGE', LOG_KEY, from, from]) as Promise<Array<[string, unknown]>>,
    ]);
    if (trimmed !== null && compareStreamIds(from, trimmed) < 0) throw new SharedLogGapError(trimmedPast(from, trimmed));
    if (from !== '0-0' && here.length === 0 && (trimmed === null || compareStreamIds(from, trimmed) >= 0)) {
      throw new SharedLogGapError(`Redis at ${this.where} no longer has entry ${from}, which this tree applied (did Redis restart without its append-only file, or lose its last second with appendfsync everysec?): restart this tree to serve what Redis has`);
    }
  }
}

/** Why a tree that read up to `from` cannot go on: Redis cut the stream back to `trimmed`, past it. */
function trimmedPast(from: string, trimmed: string): string {
  return `this tree read the shared log up to ${from}, and Redis cut it back to ${trimmed} meanwhile (the tree was cut off, or stalled, for longer than a snapshot interval): restart it, and it starts from the snapshot`;
}

/** See checkReadable: this tree cannot go on from where it is. */
export class SharedLogGapError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SharedLogGapError';
  }
}

/** A stream entry's fields ([name, value, name, value...]) as an object. */
function fieldsOf(fields: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) out[fields[i]] = fields[i + 1];
  return out;
}
