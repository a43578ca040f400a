// The rooms scenario: R rooms of M members each, P publishers (at most one per room); every
// message a publisher sends to a room must reach every member's connection, the publisher's own
// included (chat-protocol.md, `new_message`). This file signs everyone in and creates the rooms;
// deliveries.ts paces, counts and judges, as it does for the lobby fan-out (fanout.ts).
//
// Setup, before anything is measured:
//
//   1. users and tokens: room r has members `RUN-rR-mK` (K = 1..M-1) and its publisher `RUN-pP`
//      (P = r mod publishers), so with fewer publishers than rooms a publisher is a member of
//      several rooms and publishes to them in turn. Each user's token is signed here with the
//      server's secret (signToken, src/jwt.ts), as the application in front of the chat would.
//   2. the members connect in the receiving threads and `authenticate` (subscriber-thread.ts);
//   3. the publishers connect here and `authenticate`, then each creates its rooms with
//      `create_room`, the members in `users`: the server makes every member live at once.
//
// Then a publisher sends `{"action":"new_message","uuid":…,"room":…,"text":M}` with a fresh uuid
// for every message (message.ts), and every member's connection receives the server's answer, the
// message object with M in its `text`. Counting, as the protocol has it:
//   - a delivery is one member connection reached: M per message (the M-1 members and the
//     publisher), if all of them signed in;
//   - the publisher's own copy *is* the answer to its request, its acknowledgement: there is no
//     separate one to wait for. So the publishers' receipts are counted as deliveries, and shown
//     apart as acknowledgements (acks = messages answered);
//   - an error answer (`rate_limited`, `unavailable`...) reaches the publisher alone and delivers
//     nothing: counted by code, and the step's delivery ratio shows what it cost.
// Latency is from the send (the time written in M) to the receipt, for members and publishers alike.
//
// The server started by the benchmark gets a fresh CHAT_SECRET and its per-connection rate limit
// raised far above what the publishers offer (roomsServerEnv): the benchmark measures how much
// the rooms deliver, not how the limiter refuses. Against --url, the server's own limits apply.
import { randomBytes } from 'node:crypto';
import { emptyOpen, mergeOpenResults, openMany, sourceAddresses, type BenchSocket } from './client.js';
import {
  measureDeliveries, openErrors, sleep, startThreads,
  type DeliveryOptions, type DeliveryResult, type MessageSource, type ReceiverThread,
} from './deliveries.js';
import { DeliveryCounter, MessageTemplate, newRunId } from './message.js';
import { ULIMIT_HINT, openFilesLimit } from './proc.js';
import { countFailures, requestAll } from './rooms-setup.js';
import { signToken } from '../jwt.js';
import { CHAT_SETTINGS } from '../config.js';

export interface RoomsOptions extends DeliveryOptions {
  rooms: number;
  /** Members per room, the publisher included. */
  members: number;
  publishers: number;
  /** The server's CHAT_SECRET, to sign the users' tokens. */
  secret: Buffer;
}

export interface RoomsResult extends DeliveryResult {
  scenario: 'rooms';
  rooms: number;
  members: number;
  publishers: number;
  /** Member connections (in the threads) plus publishers. */
  connections: number;
  setup: {
    /** Connections whose `authenticate` succeeded, of `connections`. */
    signed_in: number;
    rooms_created: number;
    /** From the first connect to the last room created. */
    elapsed_s: number;
    errors: Record<string, number>;
  };
  /** Error answers the publishers got during the measured steps, by error code. */
  error_answers: Record<string, number>;
}

/**
 * The rate limit the benchmark's server gets, per second and as a burst: the highest both settings
 * accept (config.ts), far above what one publisher offers.
 */
export const BENCH_RATE = String(Math.min(CHAT_SETTINGS.ratePerSecond.max, CHAT_SETTINGS.rateBurst.max));

/**
 * The environment of a server started for the rooms scenario: a fresh secret (CHAT_SECRET, 32
 * random bytes as base64url: 43 bytes, above jwt.ts's minimum), the rate limit raised
 * (CHAT_RATE_PER_SECOND, CHAT_RATE_BURST), and the room limits raised where the scenario goes
 * beyond their defaults (CHAT_MAX_ROOM_MEMBERS, CHAT_MAX_ROOMS_PER_USER).
 */
export function roomsServerEnv(rooms: number, members: number, publishers: number): Record<string, string> {
  const env: Record<string, string> = {
    CHAT_SECRET: randomBytes(32).toString('base64url'),
    CHAT_RATE_PER_SECOND: BENCH_RATE,
    CHAT_RATE_BURST: BENCH_RATE,
  };
  if (members > CHAT_SETTINGS.maxRoomMembers.default) env['CHAT_MAX_ROOM_MEMBERS'] = String(members);
  const roomsPerPublisher = Math.ceil(rooms / publishers);
  if (roomsPerPublisher > CHAT_SETTINGS.maxRoomsPerUser.default) env['CHAT_MAX_ROOMS_PER_USER'] = String(roomsPerPublisher);
  return env;
}

const ERROR_STATUS = Buffer.from('"status":"error"', 'latin1');

export async function runRooms(o: RoomsOptions): Promise<RoomsResult> {
  const runId = newRunId();
  const listeners = o.rooms * (o.members - 1); // the members who do not publish, in the threads
  const connections = listeners + o.publishers;
  const localAddresses = sourceAddresses(o.target.host, connections);
  const threads = Math.max(1, Math.min(o.threads, listeners));
  const result: RoomsResult = {
    scenario: 'rooms', rooms: o.rooms, members: o.members, publishers: o.publishers, connections,
    size: o.size, threads, run_id: runId,
    connect: { subscribers: emptyOpen(), publishers: emptyOpen() },
    recipients: o.members, steps: [], ramp: null, fixed: null,
    out_of_order: 0, foreign_texts: 0, close_codes: {}, error: null,
    setup: { signed_in: 0, rooms_created: 0, elapsed_s: 0, errors: {} },
    error_answers: {},
  };

  const limit = openFilesLimit();
  if (limit !== null && connections + 100 > limit) {
    result.error = `${connections} connections need more than the open-files limit of ${limit}: ${ULIMIT_HINT}`;
    return result;
  }

  // ---- 1. users and tokens ----
  const perRoom = o.members - 1;
  const memberUser = (g: number): string => `${runId}-r${Math.floor(g / perRoom)}-m${(g % perRoom) + 1}`;
  const publisherUser = (p: number): string => `${runId}-p${p}`;
  const expires = Math.floor(Date.now() / 1000) + 24 * 3600; // tokens end, as every token should
  const token = (user: string): string => signToken({ sub: user, exp: expires }, o.secret);
  const setupStartedMs = performance.now();

  // ---- 2. members: connect and sign in, in their threads ----
  o.log(`rooms: opening and signing in ${listeners} members of ${o.rooms} rooms in ${threads} thread(s)${localAddresses ? ` from ${localAddresses.join(', ')}` : ''}`);
  const firsts: number[] = [];
  const workers: ReceiverThread[] = startThreads(listeners, threads, (first, count) => {
    firsts.push(first);
    return {
      targets: [o.target], count, localAddresses, concurrency: Math.ceil(o.concurrency / threads),
      timeoutMs: o.connectTimeoutS * 1000, runId, size: o.size, pubs: o.publishers, framing: 'rooms',
      tokens: Array.from({ length: count }, (_, i) => token(memberUser(first + i))),
    };
  });
  const mainCounter = new DeliveryCounter(runId, o.size, o.publishers, o.publishers, 'rooms');
  let publishers: BenchSocket[] = [];
  try {
    const opened = await Promise.all(workers.map((w) => w.opened));
    result.connect.subscribers = mergeOpenResults(opened.map((x) => x.result));
    /** Per room: its members' connections that signed in (the publisher's not counted). */
    const liveMembers = new Array<number>(o.rooms).fill(0);
    opened.forEach((x, t) => { for (const i of x.signedIn ?? []) liveMembers[Math.floor((firsts[t]! + i) / perRoom)]!++; });

    // ---- 3. publishers: connect, sign in, create the rooms ----
    const pubResult = await openMany({
      target: o.target, count: o.publishers, localAddresses, concurrency: o.publishers, timeoutMs: o.connectTimeoutS * 1000,
      onText: (client, payload) => {
        // Not a message of this run: an error answer is worth counting (pushes are not).
        if (!mainCounter.onText(client.index, payload, client.receivedAtUs) && payload.includes(ERROR_STATUS)) {
          const code = errorCode(payload);
          result.error_answers[code] = (result.error_answers[code] ?? 0) + 1;
        }
      },
      onClose: (client, error) => mainCounter.onClose(client.closeCode, error),
    });
    publishers = pubResult.clients;
    result.connect.publishers = { ...pubResult, clients: undefined } as RoomsResult['connect']['publishers'];
    const auth = await requestAll(publishers.map((client) => ({
      client, body: { uuid: `auth-p${client.index}`, action: 'authenticate', token: token(publisherUser(client.index)) },
    })), o.connectTimeoutS * 1000);
    const signedIn = publishers.filter((_, i) => auth[i]!.ok);
    const byIndex = new Map(signedIn.map((client) => [client.index, client]));
    const creations = [];
    for (let r = 0; r < o.rooms; r++) {
      const client = byIndex.get(r % o.publishers);
      if (!client) continue; // its publisher did not sign in: the room is not made
      const users = Array.from({ length: perRoom }, (_, k) => memberUser(r * perRoom + k));
      creations.push({ r, request: { client, body: { uuid: `create-${r}`, action: 'create_room', name: `bench ${runId} room ${r}`, users } } });
    }
    const created = await requestAll(creations.map((c) => c.request), o.connectTimeoutS * 1000);
    /** Room r's id on the server, or null if it was not created. */
    const roomIds = new Array<number | null>(o.rooms).fill(null);
    creations.forEach((c, i) => {
      const answer = created[i]!;
      if (answer.ok) roomIds[c.r] = (answer.answer['room'] as { id: number }).id;
    });

    const members = result.connect.subscribers;
    result.setup = {
      signed_in: members.ready + signedIn.length,
      rooms_created: roomIds.filter((id) => id !== null).length,
      elapsed_s: Math.round(performance.now() - setupStartedMs) / 1000,
      errors: { ...openErrors(members, pubResult), ...countFailures('authenticate', auth), ...countFailures('create_room', created) },
    };
    o.log(`rooms: ${result.setup.signed_in}/${connections} connections signed in, ${result.setup.rooms_created}/${o.rooms} rooms created in ${result.setup.elapsed_s} s`);
    if (Object.keys(result.setup.errors).length > 0) {
      const errors = result.setup.errors;
      result.error = `could not set up every connection and room: ${JSON.stringify(errors)}`;
      if (errors['EMFILE'] || errors['ENFILE']) result.error += ` (out of file descriptors: ${ULIMIT_HINT})`;
      if (result.setup.rooms_created === 0) return result;
      o.log(`rooms: ${result.error}; going on with the rooms that were made`);
    }
    await sleep(500); // let the room_update pushes, the handshakes' garbage and the accept backlog settle

    // ---- measure: each publisher sends to its rooms in turn ----
    const active = signedIn
      .map((client) => ({ client, rooms: roomIndexes(client.index, o.rooms, o.publishers).filter((r) => roomIds[r] !== null) }))
      .filter((p) => p.rooms.length > 0);
    const templates = new Map<number, MessageTemplate>();
    for (const p of active) for (const r of p.rooms) templates.set(r, new MessageTemplate(runId, p.client.index, o.size, roomIds[r]!));
    const seqs = active.map(() => 0);
    const turns = active.map(() => 0);
    // Deliveries per message: the room's signed-in members and the publisher itself (its ack).
    const source: MessageSource = {
      next: (i, step, sentUs) => {
        const rooms = active[i]!.rooms;
        const r = rooms[turns[i]!++ % rooms.length]!;
        return { text: templates.get(r)!.fill(step, seqs[i]!++, sentUs), recipients: liveMembers[r]! + 1 };
      },
    };
    await measureDeliveries(o, {
      threads: workers, mainCounter, publishers: active.map((p) => p.client), source, recipients: o.members,
      publishersReceiveAcks: true, label: 'rooms',
    }, result);
    return result;
  } catch (error) {
    result.error = (error as Error).message;
    return result;
  } finally {
    for (const client of publishers) client.close();
    await Promise.all(workers.map((w) => w.close().catch(() => {})));
  }
}

/** The rooms publisher `p` creates and publishes to: p, p + publishers, p + 2 × publishers... */
function roomIndexes(p: number, rooms: number, publishers: number): number[] {
  const mine: number[] = [];
  for (let r = p; r < rooms; r += publishers) mine.push(r);
  return mine;
}

/** The `error` code of an error answer ("unparsable" if it is not the JSON the protocol promises). */
function errorCode(payload: Buffer): string {
  try {
    const code = (JSON.parse(payload.toString('utf8')) as { error?: unknown }).error;
    return typeof code === 'string' ? code : 'error';
  } catch {
    return 'unparsable';
  }
}
