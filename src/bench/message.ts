// The delivery benchmarks' chat messages: how publishers write them and receivers read them.
//
// Every measured message carries a text M of fixed length and layout:
//
//   k3f9qz:03:001:000004211:000012345678901:xxxxxxxxxxxxxxxxxxxx…
//   │      │  │   │         │               └ padding up to the message size (--size)
//   │      │  │   │         └ send time, µs on the shared monotonic clock (clock.ts), 15 digits
//   │      │  │   └ the publisher's sequence number, 9 digits
//   │      │  └ publisher index, 3 digits
//   │      └ ramp step, 2 digits: deliveries are counted per step, wherever they land in time
//   └ run id: 6 random characters, so history from earlier runs (or other clients) is ignored
//
// in one of two envelopes (a Framing):
//
//   lobby   the publisher sends `{"sender":"bench","message":"M"}` (--size bytes in all); the
//           server broadcasts `{"id":…,"ts":…,"sender":"bench","message":"M"}`.
//   rooms   the publisher sends `{"action":"new_message","uuid":"k3f9qz-001-000004211","room":…,
//           "text":"M"}` (the uuid holds the publisher and its sequence number, so it is fresh
//           for every message, as the protocol asks); every member receives the answer
//           `{"uuid":…,"action":"new_message","status":"success","room":{…},"message":{"id":…,
//           "room":…,"user":…,"text":"M","ts":…}}`.
//
// M is the same for both at the same --size, so the two scenarios carry the same text and differ
// only in the envelope. The server rebuilds the JSON around M, and its ids, ts and room objects
// change length over time; but M has a fixed length and sits at a place the reader finds without
// parsing: in the lobby it is the last field, so it ends 2 bytes before the end (`"}`); in rooms
// it is the message object's `text`, followed only by `","ts":<digits>}}`, so it ends where the
// last `","ts":` starts. The reader parses M's digits straight from the bytes and never builds a
// string or calls JSON.parse. That matters: a receiving thread handles 100,000 messages a second.
import { Histogram, type HistogramData } from './histogram.js';

/** The lobby's envelope around M, as the publisher sends it. */
const LOBBY_PREFIX = '{"sender":"bench","message":"';
/** The end of every published JSON: M is the last field (lobby `message`, rooms `text`). */
const SUFFIX = '"}';
/** What follows a rooms message's `text` in the server's answer: the message object's last field. */
const ROOMS_TEXT_END = Buffer.from('","ts":', 'latin1');
const RUN = 0, STEP = 7, PUB = 10, SEQ = 14, TS = 24, FIXED = 40;
const STEP_DIGITS = 2, PUB_DIGITS = 3, SEQ_DIGITS = 9, TS_DIGITS = 15;
/** Ramp steps are numbered 0..MAX_STEPS-1 (two digits). */
export const MAX_STEPS = 100;
export const MAX_PUBLISHERS = 1000;
/** The smallest --size that leaves room for the fixed fields. */
export const MIN_SIZE = LOBBY_PREFIX.length + FIXED + SUFFIX.length;
/** Where M sits in what the server sends: see the top. */
export type Framing = 'lobby' | 'rooms';

/** The length of M at a --size: the lobby's published JSON is `size` bytes; rooms carry the same M. */
export function textLength(size: number): number {
  return size - LOBBY_PREFIX.length - SUFFIX.length;
}

/** The rooms request's uuid for a publisher and run: `RUNID-PPP-SSSSSSSSS` (the digits rewritten per message). */
function roomsUuid(runId: string, publisher: number): string {
  return `${runId}-${String(publisher).padStart(PUB_DIGITS, '0')}-${'0'.repeat(SEQ_DIGITS)}`;
}
const COLON = 0x3a, QUOTE = 0x22, BRACE = 0x7d, ZERO = 0x30;

/** A random run id: 6 characters of [0-9a-z]. */
export function newRunId(): string {
  let id = '';
  while (id.length < 6) id += Math.floor(Math.random() * 36).toString(36);
  return id;
}

/** Writes `value` as `width` decimal digits at `offset` (zero-padded; no allocation). */
function writeDigits(target: Buffer, offset: number, width: number, value: number): void {
  for (let i = offset + width - 1; i >= offset; i--) {
    const q = Math.floor(value / 10);
    target[i] = ZERO + (value - q * 10);
    value = q;
  }
}

function readDigits(source: Buffer, offset: number, width: number): number {
  let value = 0;
  for (let i = offset; i < offset + width; i++) value = value * 10 + (source[i]! - ZERO);
  return value;
}

/**
 * One publisher's message, rewritten in place for every send. encodeMaskedFrame copies the
 * payload into the frame it builds, so the same template can be reused at once.
 */
export class MessageTemplate {
  readonly text: Buffer;
  /** Where M starts. */
  private readonly m: number;
  /** Where the uuid's sequence digits start (rooms), or -1 (the lobby has no uuid). */
  private readonly uuidSeq: number;

  /** The lobby's message; with `room`, a rooms `new_message` request for that room. */
  constructor(runId: string, publisher: number, size: number, room: number | null = null) {
    let prefix = LOBBY_PREFIX;
    this.uuidSeq = -1;
    if (room !== null) {
      const head = `{"action":"new_message","uuid":"${roomsUuid(runId, publisher)}`;
      prefix = `${head}","room":${room},"text":"`;
      this.uuidSeq = head.length - SEQ_DIGITS;
    }
    this.m = prefix.length;
    const fixed = `${runId}:00:${String(publisher).padStart(PUB_DIGITS, '0')}:000000000:000000000000000:`;
    this.text = Buffer.from(prefix + fixed + 'x'.repeat(textLength(size) - FIXED) + SUFFIX, 'latin1');
  }

  /** Fills in the step, sequence and send time (and the uuid); returns the JSON text (the same Buffer). */
  fill(step: number, seq: number, sentUs: number): Buffer {
    writeDigits(this.text, this.m + STEP, STEP_DIGITS, step);
    writeDigits(this.text, this.m + SEQ, SEQ_DIGITS, seq);
    writeDigits(this.text, this.m + TS, TS_DIGITS, Math.round(sentUs));
    if (this.uuidSeq >= 0) writeDigits(this.text, this.uuidSeq, SEQ_DIGITS, seq);
    return this.text;
  }
}

/** Reads a delivered message; the fields of the last successful read stay in the object. */
export class MessageReader {
  step = 0;
  pub = 0;
  seq = 0;
  sentUs = 0;
  private readonly run: Buffer;
  private readonly messageLength: number;
  private readonly framing: Framing;

  constructor(runId: string, size: number, framing: Framing = 'lobby') {
    this.run = Buffer.from(runId, 'latin1');
    this.messageLength = textLength(size);
    this.framing = framing;
  }

  /** True if `payload` is one of this run's messages (then step, pub, seq and sentUs are set). */
  read(payload: Buffer): boolean {
    // Where M ends (see the top): before the closing `"}`, or before the answer's `","ts":`.
    // Buffer.lastIndexOf searches from the end, and the ts field is a few bytes from it.
    let end: number;
    if (this.framing === 'lobby') {
      end = payload.length - 2;
      if (end < 0 || payload[end] !== QUOTE || payload[end + 1] !== BRACE) return false;
    } else {
      end = payload.lastIndexOf(ROOMS_TEXT_END);
      if (end < 0) return false;
    }
    const m = end - this.messageLength;
    if (m < 1 || payload[m - 1] !== QUOTE) return false;
    const run = this.run;
    for (let i = 0; i < run.length; i++) if (payload[m + RUN + i] !== run[i]) return false;
    if (payload[m + STEP - 1] !== COLON || payload[m + FIXED - 1] !== COLON) return false;
    this.step = readDigits(payload, m + STEP, STEP_DIGITS);
    this.pub = readDigits(payload, m + PUB, PUB_DIGITS);
    this.seq = readDigits(payload, m + SEQ, SEQ_DIGITS);
    this.sentUs = readDigits(payload, m + TS, TS_DIGITS);
    return true;
  }
}

/** What a group of connections received, as it crosses threads (see DeliveryCounter.report). */
export interface DeliveryReport {
  /** Deliveries per ramp step. */
  received: Float64Array;
  /** The requested step's latency histogram, when asked for. */
  histogram: HistogramData | null;
  /** Texts that were not this run's messages (history, other clients). */
  foreign: number;
  /** Deliveries whose sequence was not above the last one from the same publisher. */
  outOfOrder: number;
  /** Connections that closed during the run, and the close codes the server gave them. */
  dropped: number;
  closeCodes: Record<string, number>;
}

/**
 * Counts the deliveries of a group of connections: per step, with a latency histogram per step
 * and an order check per (connection, publisher). Used by every receiving thread and by the
 * main thread for its publishers (who receive the broadcast, or their own room messages, too).
 */
export class DeliveryCounter {
  readonly reader: MessageReader;
  private readonly received = new Float64Array(MAX_STEPS);
  private readonly histograms: (Histogram | null)[] = new Array<Histogram | null>(MAX_STEPS).fill(null);
  /** The last sequence seen per (connection, publisher): connection * pubs + publisher. */
  private readonly lastSeq: Int32Array;
  private readonly pubs: number;
  private foreign = 0;
  private outOfOrder = 0;
  private dropped = 0;
  private readonly closeCodes: Record<string, number> = {};

  constructor(runId: string, size: number, connections: number, pubs: number, framing: Framing = 'lobby') {
    this.reader = new MessageReader(runId, size, framing);
    this.pubs = pubs;
    this.lastSeq = new Int32Array(connections * pubs).fill(-1);
  }

  /**
   * Called for every text message; `connection` is 0-based within this counter's group. Returns
   * false for a text that is not one of this run's messages (counted as foreign).
   */
  onText(connection: number, payload: Buffer, receivedAtUs: number): boolean {
    const r = this.reader;
    if (!r.read(payload) || r.step >= MAX_STEPS || r.pub >= this.pubs) {
      this.foreign++;
      return false;
    }
    this.received[r.step]!++;
    const histogram = this.histograms[r.step] ?? (this.histograms[r.step] = new Histogram());
    histogram.record(receivedAtUs - r.sentUs);
    const k = connection * this.pubs + r.pub;
    if (r.seq <= this.lastSeq[k]!) this.outOfOrder++;
    this.lastSeq[k] = r.seq;
    return true;
  }

  onClose(closeCode: number | null, error: string | null): void {
    this.dropped++;
    const key = closeCode !== null ? `close ${closeCode}` : error ?? 'closed';
    this.closeCodes[key] = (this.closeCodes[key] ?? 0) + 1;
  }

  /** A copy of the counts, and of one step's histogram if `step` is given. */
  report(step: number | null): DeliveryReport {
    const histogram = step === null ? null : this.histograms[step]?.snapshot() ?? null;
    return {
      received: this.received.slice(),
      histogram,
      foreign: this.foreign,
      outOfOrder: this.outOfOrder,
      dropped: this.dropped,
      closeCodes: { ...this.closeCodes },
    };
  }
}
