// `npm run crash-loop -- [--kills N] [--workers W] [--seed S]`: the message log's promise (issue 9),
// tested the hard way. Over and over: start the server's whole tree on one data directory, put it
// under load, kill every process of it with SIGKILL at a random instant, restart it, and check
// that nothing acknowledged was lost and nothing was stored twice.
//
// One cycle:
//   1. Start `node dist/main.js --workers W` as a process group of its own (server-process.ts,
//      detached), on the same CHAT_DATA_DIR every time. Small segments (64 KiB by default) make
//      the log roll and checkpoint (chat-log.ts) every few hundred messages, so kills also land
//      in the middle of checkpoints and of old segments' deletion.
//   2. Load: rooms publishers (one connection per user, every user a member of every room) keep a
//      window of new_message requests outstanding, each with its own uuid; lobby publishers keep
//      a window of lobby messages outstanding. An answer `success` to a new_message is its
//      acknowledgement; a lobby message counts as acknowledged once any connection received it
//      (the server delivers it to nobody before it is durable).
//   3. After a random delay (seeded: the same --seed gives the same instants), kill(-pgid,
//      SIGKILL): the primary and every worker at once, as a power loss would stop them.
//   4. Restart, sign in again, and resend every new_message that had no answer, with its same
//      uuid and text (what a client does after a reconnect). Each must succeed: with the original
//      message if it had reached the disk, else as a new one. Never both.
//   5. Check each room with select_room `since` the last id checked in it: the answer must be
//      recovered: true and be exactly the acknowledged and the resent messages, in id order (so
//      nothing lost, nothing changed, nothing twice, nothing unknown). Each connection's
//      acknowledged messages must have ids in the order it sent them. Then select_room without
//      `since` must be the room's last N as checked so far. The lobby likewise, through
//      `/chat?since=`: every delivered message there with the same id and content, no text twice.
//
// At the end one line: `kills: N, acknowledged messages checked: M, lost: 0, duplicated: 0`; exit
// code 1 if anything was lost or duplicated (or any other check failed, which is printed), 2 on
// bad flags. It needs Node's WebSocket client: run with --experimental-websocket on Node 20
// (`npm run crash-loop` does).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { describeRedisUrl, type RedisUrl } from '../redis/url.js';
import { checkRedisUrl, flushRedis } from './redis-target.js';
import { parseArgs } from 'node:util';
import { signToken } from '../jwt.js';
import { startServer } from './server-process.js';

const USAGE = `Usage: npm run crash-loop -- [options]   (or: node --experimental-websocket dist/bench/crash-loop.js)

Kills the chat server's whole process tree with SIGKILL at random instants under load, restarts it
on the same data directory, and checks that every acknowledged message is still there, once.

  --kills N             kill/restart cycles (default 20)
  --workers W           server worker processes (default 4)
  --seed S              seed of the random kill instants (default: random; printed)
  --min-ms A, --max-ms B  a kill comes A to B ms after the load starts (default 200 to 1500)
  --segment-bytes B     CHAT_LOG_SEGMENT_BYTES (default 65536, the smallest: many checkpoints)
  --keep                keep the data directory (its path is printed)
  --redis URL           Redis as the log instead (CHAT_REDIS_URL): the URL's database is emptied
                        (FLUSHDB) first; Redis stays up, the tree is killed; a snapshot every
                        100 entries (CHAT_REDIS_SNAPSHOT_EVERY), so kills land around snapshots
  -h, --help            this text`;

/** Users, rooms, lobby publishers, and the requests each keeps outstanding. */
const USERS = ['ann', 'ben', 'cat', 'dan'];
const ROOMS = 2;
const ROOM_WINDOW = 8;
const LOBBY_PUBLISHERS = 2;
const LOBBY_WINDOW = 4;
/** CHAT_HISTORY_SIZE: a cycle publishes far fewer per room, so `since` always finds its id. */
const HISTORY = 10_000;

interface MessageObject { id: number; room: number; user: string; text: string; ts: number }
interface LobbyMessage { id: number; ts: number; sender: string; message: string }
type Frame = Record<string, unknown>;

/** mulberry32: a small seeded generator, so that a failing run can be repeated. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One /chat connection: every frame it receives, parsed, and waiters on them. */
class Connection {
  readonly frames: Frame[] = [];
  private readonly waiters = new Set<() => void>();
  closed = false;

  private constructor(readonly ws: WebSocket) {
    ws.addEventListener('message', (event) => {
      this.frames.push(JSON.parse(String(event.data)) as Frame);
      for (const waiter of [...this.waiters]) waiter();
    });
    ws.addEventListener('close', () => {
      this.closed = true;
      for (const waiter of [...this.waiters]) waiter();
    });
  }

  /** Opens `url` and waits for the greeting (returned). */
  static async open(url: string): Promise<{ connection: Connection; greeting: Frame }> {
    const ws = new WebSocket(url);
    const connection = new Connection(ws);
    const greeting = await connection.waitFor((frame) => frame.sender === 'server', `the greeting of ${url}`);
    return { connection, greeting };
  }

  send(value: unknown): void {
    if (!this.closed) this.ws.send(JSON.stringify(value));
  }

  /**
   * The first frame from index `from` on (default: the first frame received) that matches;
   * rejects on close or after 15 s. Answers are looked for from the request on, so that a
   * thousand waiters do not each scan every frame that came before.
   */
  waitFor(match: (frame: Frame) => boolean, what: string, from = 0): Promise<Frame> {
    return new Promise((resolve, reject) => {
      let scanned = from;
      const check = (): void => {
        for (; scanned < this.frames.length; scanned++) {
          if (match(this.frames[scanned])) return finish(() => resolve(this.frames[scanned]));
        }
        if (this.closed) finish(() => reject(new Error(`the connection closed before ${what}`)));
      };
      const timer = setTimeout(() => finish(() => reject(new Error(`timed out waiting for ${what}`))), 15_000);
      const finish = (settle: () => void): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        settle();
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Sends a rooms request and resolves with its answer. */
  request(uuid: string, action: string, fields: Record<string, unknown>): Promise<Frame> {
    const from = this.frames.length; // frames arrive in later turns: the answer cannot be before this
    this.send({ uuid, action, ...fields });
    return this.waitFor((frame) => frame.uuid === uuid && frame.action === action, `the answer to ${action} ${uuid}`, from);
  }

  close(): void {
    if (this.ws.readyState === WebSocket.CONNECTING || this.ws.readyState === WebSocket.OPEN) this.ws.close();
  }
}

/** A new_message sent during a cycle: its request, and the acknowledged message once answered. */
interface Sent { uuid: string; room: number; text: string; connection: number; acked: MessageObject | null }

interface Totals { checked: number; lost: number; duplicated: number; problems: string[] }

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        kills: { type: 'string', default: '20' },
        workers: { type: 'string', default: '4' },
        seed: { type: 'string' },
        'min-ms': { type: 'string', default: '200' },
        'max-ms': { type: 'string', default: '1500' },
        'segment-bytes': { type: 'string', default: '65536' },
        keep: { type: 'boolean', default: false },
        redis: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const whole = (name: string, text: string, min: number): number => {
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < min) {
      console.error(`--${name} must be a whole number of at least ${min}, not ${JSON.stringify(text)}\n\n${USAGE}`);
      process.exit(2);
    }
    return n;
  };
  const kills = whole('kills', values.kills, 1);
  const workers = whole('workers', values.workers, 1);
  const seed = values.seed === undefined ? randomBytes(4).readUInt32BE(0) : whole('seed', values.seed, 0);
  const minMs = whole('min-ms', values['min-ms'], 0);
  const maxMs = whole('max-ms', values['max-ms'], minMs);
  const next = random(seed);

  const dir = mkdtempSync(join(tmpdir(), 'chat-crash-loop-'));
  const secretText = randomBytes(32).toString('base64url');
  const secret = Buffer.from(secretText, 'utf8');
  const env = {
    CHAT_DATA_DIR: dir,
    CHAT_SECRET: secretText,
    CHAT_HISTORY_SIZE: String(HISTORY),
    CHAT_QUEUE_MAX_MESSAGES: String(4 * HISTORY),
    CHAT_QUEUE_MAX_BYTES: String(64 * 1024 * 1024),
    CHAT_RATE_PER_SECOND: '1000000',
    CHAT_RATE_BURST: '1000000',
    CHAT_LOG_SEGMENT_BYTES: values['segment-bytes'],
  };
  let redisUrl: RedisUrl | null = null;
  if (values.redis !== undefined) {
    try {
      redisUrl = checkRedisUrl(values.redis);
    } catch (error) {
      console.error(`${(error as Error).message}\n\n${USAGE}`);
      process.exit(2);
    }
    // A fresh chat, as with a fresh data directory: what an earlier run left is not this run's.
    const removed = await flushRedis(redisUrl);
    Object.assign(env, { CHAT_REDIS_URL: values.redis, CHAT_REDIS_SNAPSHOT_EVERY: '100' });
    console.log(`crash loop: Redis ${describeRedisUrl(redisUrl)} is the log (its database emptied: ${removed} keys removed)`);
  }
  console.log(`crash loop: --kills ${kills} --workers ${workers} --seed ${seed}, ${redisUrl === null ? `data directory ${dir}` : 'Redis'}`);

  const totals: Totals = { checked: 0, lost: 0, duplicated: 0, problems: [] };
  /** Per room: every message checked so far, in id order; the lobby: the last id checked. */
  const roomLog = new Map<number, MessageObject[]>();
  let lobbyCheckedUpTo: number | null = null;
  let inFlight: Sent[] = [];
  /** The last cycle's acknowledged room requests and delivered lobby messages, checked after the restart. */
  let pendingAcked: Sent[] = [];
  let pendingLobby = new Map<number, LobbyMessage>();
  let rooms: number[] = [];
  let counter = 0;
  const uuid = (): string => `c${seed}-${++counter}`;
  const started = Date.now();

  try {
    for (let cycle = 1; cycle <= kills + 1; cycle++) {
      const last = cycle === kills + 1; // the final start only checks
      const server = await startServer(workers, [], env, { detached: true });
      const base = `ws://${server.host}:${server.port}/chat`;
      const users: Connection[] = [];
      const lobby: Connection[] = [];
      try {
        for (const user of USERS) {
          const { connection } = await Connection.open(base);
          const answer = await connection.request(uuid(), 'authenticate', { token: signToken({ sub: user }, secret) });
          if (answer.status !== 'success') throw new Error(`authenticate ${user}: ${JSON.stringify(answer)}`);
          users.push(connection);
        }
        if (rooms.length === 0) {
          for (let r = 0; r < ROOMS; r++) {
            const answer = await users[0].request(uuid(), 'create_room', { name: `room ${r}`, users: USERS });
            if (answer.status !== 'success') throw new Error(`create_room: ${JSON.stringify(answer)}`);
            const id = (answer.room as { id: number }).id;
            rooms.push(id);
            roomLog.set(id, []);
          }
        }

        // 4. The requests left without an answer by the last kill, resent with their uuids.
        const resent: MessageObject[] = [];
        for (const sent of inFlight) {
          const answer = await users[sent.connection].request(sent.uuid, 'new_message', { room: sent.room, text: sent.text });
          const message = answer.message as MessageObject | undefined;
          if (answer.status !== 'success' || message?.text !== sent.text) {
            totals.problems.push(`cycle ${cycle}: the resent ${sent.uuid} was answered ${JSON.stringify(answer).slice(0, 300)}`);
            continue;
          }
          resent.push(message);
        }
        const resentCount = inFlight.length;
        inFlight = [];

        // 5. What the last kill left (nothing before the first cycle's load).
        await checkRooms(users[0], rooms, roomLog, pendingAcked, resent, cycle, totals);
        lobbyCheckedUpTo = await checkLobby(base, lobbyCheckedUpTo, pendingLobby, cycle, totals);
        if (cycle > 1) {
          console.log(`kill ${cycle - 1}/${kills}: ${pendingAcked.length} room messages acknowledged, ${resentCount} resent, ${pendingLobby.size} lobby messages delivered; checked (${Math.round((Date.now() - started) / 1000)} s)`);
        }
        pendingAcked = [];
        pendingLobby = new Map();
        if (last) {
          await server.stop();
          break;
        }

        // 2. Load, and 3. the kill at a random instant.
        for (let p = 0; p < LOBBY_PUBLISHERS; p++) lobby.push((await Connection.open(base)).connection);
        const cycleSent: Sent[] = [];
        let stopped = false;
        const publishRoom = (c: number): void => {
          if (stopped) return;
          const sent: Sent = { uuid: uuid(), room: rooms[Math.floor(next() * rooms.length)], text: `t${counter}-${cycle}`, connection: c, acked: null };
          cycleSent.push(sent);
          users[c].request(sent.uuid, 'new_message', { room: sent.room, text: sent.text }).then((answer) => {
            if (answer.status === 'success') sent.acked = answer.message as MessageObject;
            else totals.problems.push(`cycle ${cycle}: ${sent.uuid} answered ${JSON.stringify(answer).slice(0, 300)}`);
            publishRoom(c);
          }, () => { /* the kill: left in flight */ });
        };
        const publishLobby = (p: number): void => {
          if (stopped) return;
          const text = `lobby-${seed}-${++counter}`;
          const from = lobby[p].frames.length;
          lobby[p].send({ sender: `p${p}`, message: text });
          lobby[p].waitFor((frame) => frame.message === text, text, from).then(() => publishLobby(p), () => {});
        };
        for (let c = 0; c < users.length; c++) for (let w = 0; w < ROOM_WINDOW; w++) publishRoom(c);
        for (let p = 0; p < lobby.length; p++) for (let w = 0; w < LOBBY_WINDOW; w++) publishLobby(p);
        const delay = minMs + Math.floor(next() * (maxMs - minMs + 1));
        await new Promise((resolve) => setTimeout(resolve, delay));
        stopped = true;
        await server.killTree();
        // Frames already in this side's socket buffers still arrive: wait for every socket to close.
        await Promise.all([...users, ...lobby].map((c) => c.waitFor(() => false, 'the close', c.frames.length).catch(() => {})));

        pendingAcked = cycleSent.filter((sent) => sent.acked !== null);
        inFlight = cycleSent.filter((sent) => sent.acked === null);
        for (const connection of [...users, ...lobby]) {
          for (const frame of connection.frames) {
            // Older ones (the greeting's history, the checker's marker) were checked already.
            if (typeof frame.id === 'number' && frame.id > lobbyCheckedUpTo! && frame.action === undefined && frame.sender !== 'server') pendingLobby.set(frame.id, frame as unknown as LobbyMessage);
          }
        }
      } finally {
        for (const connection of [...users, ...lobby]) connection.close();
        if (server.exitedWith === null) await server.killTree();
      }
    }
  } catch (error) {
    totals.problems.push(`stopped: ${(error as Error).stack ?? String(error)}`);
  } finally {
    if (values.keep) console.log(`data directory kept: ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
  for (const problem of totals.problems.slice(0, 20)) console.log(`problem: ${problem}`);
  console.log(`kills: ${kills}, acknowledged messages checked: ${totals.checked}, lost: ${totals.lost}, duplicated: ${totals.duplicated}`);
  if (totals.lost > 0 || totals.duplicated > 0 || totals.problems.length > 0) process.exitCode = 1;
}

/**
 * Each room since the last id checked must be exactly the acknowledged and the resent messages,
 * in id order; then its last N must be what was checked so far.
 */
async function checkRooms(reader: Connection, rooms: number[], roomLog: Map<number, MessageObject[]>, acked: Sent[], resent: MessageObject[], cycle: number, totals: Totals): Promise<void> {
  // Each connection's acknowledged messages have ids in the order it sent them (per room).
  for (const room of rooms) {
    const lastIdOf = new Map<number, number>();
    for (const sent of acked) {
      if (sent.room !== room) continue;
      const previous = lastIdOf.get(sent.connection) ?? 0;
      if (sent.acked!.id <= previous) totals.problems.push(`cycle ${cycle}: ${sent.uuid} was acknowledged with id ${sent.acked!.id}, not above its connection's previous ${previous}`);
      lastIdOf.set(sent.connection, sent.acked!.id);
    }
  }
  for (const room of rooms) {
    const checked = roomLog.get(room)!;
    const since = checked.length > 0 ? checked[checked.length - 1].id : 0;
    const expected = [...acked.filter((sent) => sent.room === room).map((sent) => sent.acked!), ...resent.filter((m) => m.room === room)];
    // A resent request answered with its original message is the same message: count it once.
    const byId = new Map<number, MessageObject>();
    for (const m of expected) byId.set(m.id, m);
    const wanted = [...byId.values()].sort((a, b) => a.id - b.id);
    const answer = await reader.request(`check-${room}-${cycle}-${Date.now()}`, 'select_room', { room, since });
    if (answer.status !== 'success' || answer.recovered !== true) {
      totals.problems.push(`cycle ${cycle}: select_room ${room} since ${since}: ${JSON.stringify(answer).slice(0, 300)}`);
      continue;
    }
    const got = answer.room_messages as MessageObject[];
    const gotById = new Map(got.map((m) => [m.id, m]));
    const texts = new Map<string, number>();
    for (const m of got) texts.set(m.text, (texts.get(m.text) ?? 0) + 1);
    for (const [text, n] of texts) {
      if (n > 1) {
        totals.duplicated += n - 1;
        totals.problems.push(`cycle ${cycle}: room ${room} holds "${text}" ${n} times`);
      }
    }
    for (const m of wanted) {
      totals.checked++;
      if (JSON.stringify(gotById.get(m.id)) !== JSON.stringify(m)) {
        totals.lost++;
        totals.problems.push(`cycle ${cycle}: room ${room} lost or changed ${JSON.stringify(m)} (there: ${JSON.stringify(gotById.get(m.id))})`);
      }
    }
    if (JSON.stringify(got) !== JSON.stringify(wanted)) {
      const unknown = got.filter((m) => !byId.has(m.id));
      if (unknown.length > 0) totals.problems.push(`cycle ${cycle}: room ${room} holds ${unknown.length} message(s) nobody sent or resent, e.g. ${JSON.stringify(unknown[0])}`);
      else if (got.length === wanted.length) totals.problems.push(`cycle ${cycle}: room ${room}'s messages are out of order`);
    }
    checked.push(...got);
    const whole = await reader.request(`whole-${room}-${cycle}-${Date.now()}`, 'select_room', { room });
    if (JSON.stringify(whole.room_messages) !== JSON.stringify(checked.slice(-HISTORY))) {
      totals.problems.push(`cycle ${cycle}: room ${room}'s last ${HISTORY} differ from what was checked before`);
    }
  }
}

/**
 * The lobby since the last id checked: `recovered`, no text twice, every delivered message there
 * unchanged. Returns the newest id it saw (its own marker's).
 */
async function checkLobby(base: string, since: number | null, delivered: Map<number, LobbyMessage>, cycle: number, totals: Totals): Promise<number> {
  const { connection, greeting } = await Connection.open(since === null ? base : `${base}?since=${since}`);
  try {
    if (since !== null && greeting.recovered !== true) totals.problems.push(`cycle ${cycle}: the lobby resumed from ${since} with ${JSON.stringify(greeting)}`);
    const marker = `marker-${cycle}-${Date.now()}`;
    connection.send({ sender: 'checker', message: marker });
    const markerFrame = await connection.waitFor((frame) => frame.message === marker, 'the lobby marker');
    const history = connection.frames.filter((frame) => typeof frame.id === 'number' && frame.sender !== 'server') as unknown as LobbyMessage[];
    const before = history.slice(0, history.findIndex((m) => m.message === marker));
    const texts = new Map<string, number>();
    for (const m of before) texts.set(m.message, (texts.get(m.message) ?? 0) + 1);
    for (const [text, n] of texts) {
      if (n > 1) {
        totals.duplicated += n - 1;
        totals.problems.push(`cycle ${cycle}: the lobby holds "${text}" ${n} times`);
      }
    }
    const byId = new Map(before.map((m) => [m.id, m]));
    for (const [id, m] of delivered) {
      totals.checked++;
      if (JSON.stringify(byId.get(id)) !== JSON.stringify(m)) {
        totals.lost++;
        totals.problems.push(`cycle ${cycle}: the lobby lost or changed ${JSON.stringify(m)}`);
      }
    }
    return markerFrame.id as number;
  } finally {
    connection.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
