// The fan-out benchmark's chat messages: how publishers write them and subscribers read them.
//
// A publisher sends `{"sender":"bench","message":"M"}`, where M has a fixed length and layout:
//
//   k3f9qz:03:001:000004211:000012345678901:xxxxxxxxxxxxxxxxxxxx…
//   │      │  │   │         │               └ padding up to the message size (--size)
//   │      │  │   │         └ send time, µs on the shared monotonic clock (clock.ts), 15 digits
//   │      │  │   └ the publisher's sequence number, 9 digits
//   │      │  └ publisher index, 3 digits
//   │      └ ramp step, 2 digits: deliveries are counted per step, wherever they land in time
//   └ run id: 6 random characters, so history from earlier runs (or other clients) is ignored
//
// The server broadcasts `{"id":…,"ts":…,"sender":"bench","message":"M"}`: it rebuilds the JSON
// around M, and the id and ts change length over time. But the message is the *last* field and M
// has a fixed length, so M sits exactly at [length - 2 - |M|, length - 2): the reader finds it
// without searching, parses its digits straight from the bytes, and never builds a string or
// calls JSON.parse. That matters: a subscriber thread handles 100,000 messages a second here.
import { Histogram, type HistogramData } from './histogram.js';

const PREFIX = '{"sender":"bench","message":"';
const SUFFIX = '"}';
const RUN = 0, STEP = 7, PUB = 10, SEQ = 14, TS = 24, FIXED = 40;
const STEP_DIGITS = 2, PUB_DIGITS = 3, SEQ_DIGITS = 9, TS_DIGITS = 15;
/** Ramp steps are numbered 0..MAX_STEPS-1 (two digits). */
export const MAX_STEPS = 100;
export const MAX_PUBLISHERS = 1000;
/** The smallest --size that leaves room for the fixed fields. */
export const MIN_SIZE = PREFIX.length + FIXED + SUFFIX.length;
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
  private readonly m = PREFIX.length; // where M starts

  constructor(runId: string, publisher: number, size: number) {
    const messageLength = size - PREFIX.length - SUFFIX.length;
    const fixed = `${runId}:00:${String(publisher).padStart(PUB_DIGITS, '0')}:000000000:000000000000000:`;
    this.text = Buffer.from(PREFIX + fixed + 'x'.repeat(messageLength - FIXED) + SUFFIX, 'latin1');
  }

  /** Fills in the step, sequence and send time; returns the JSON text (the same Buffer). */
  fill(step: number, seq: number, sentUs: number): Buffer {
    writeDigits(this.text, this.m + STEP, STEP_DIGITS, step);
    writeDigits(this.text, this.m + SEQ, SEQ_DIGITS, seq);
    writeDigits(this.text, this.m + TS, TS_DIGITS, Math.round(sentUs));
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

  constructor(runId: string, size: number) {
    this.run = Buffer.from(runId, 'latin1');
    this.messageLength = size - PREFIX.length - SUFFIX.length;
  }

  /** True if `payload` is one of this run's messages (then step, pub, seq and sentUs are set). */
  read(payload: Buffer): boolean {
    const end = payload.length - 2;
    const m = end - this.messageLength;
    if (m < 1 || payload[end] !== QUOTE || payload[end + 1] !== BRACE || payload[m - 1] !== QUOTE) return false;
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
 * and an order check per (connection, publisher). Used by every subscriber thread and by the
 * main thread for its publishers (who receive the broadcast too).
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

  constructor(runId: string, size: number, connections: number, pubs: number) {
    this.reader = new MessageReader(runId, size);
    this.pubs = pubs;
    this.lastSeq = new Int32Array(connections * pubs).fill(-1);
  }

  /** Called for every text message; `connection` is 0-based within this counter's group. */
  onText(connection: number, payload: Buffer, receivedAtUs: number): void {
    const r = this.reader;
    if (!r.read(payload) || r.step >= MAX_STEPS || r.pub >= this.pubs) {
      this.foreign++;
      return;
    }
    this.received[r.step]!++;
    const histogram = this.histograms[r.step] ?? (this.histograms[r.step] = new Histogram());
    histogram.record(receivedAtUs - r.sentUs);
    const k = connection * this.pubs + r.pub;
    if (r.seq <= this.lastSeq[k]!) this.outOfOrder++;
    this.lastSeq[k] = r.seq;
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
