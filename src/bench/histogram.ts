// A latency histogram with log-linear buckets, for values in whole microseconds.
//
// Why not keep every sample and sort? At 100,000 deliveries a second that is megabytes of numbers
// per second and a sort at the end; a histogram records a sample in a few integer operations,
// takes a fixed 13 KiB, and two histograms merge by adding their arrays (which is how the
// subscriber threads report to the main thread).
//
// The bucket layout (the HdrHistogram idea, in its simplest form):
//
//   values 0..127            one bucket per value: exact
//   values 128..255          64 buckets of width 2
//   values 256..511          64 buckets of width 4
//   ...                      each power of two split into 64 equal buckets
//
// so a value is known to within 1/64 of itself (±0.8 % around the bucket's middle) whatever its
// size, from 1 µs to the 35 minutes that fit in 31 bits. The index of a value v ≥ 128 is computed
// from the position of its highest set bit (Math.clz32 counts the zeros above it):
//
//   msb   = 31 - clz32(v)              7 for 128..255, 8 for 256..511, ...
//   shift = msb - 6                    how many low bits the bucket width hides
//   top   = v >>> shift                the 7 highest bits of v: always 64..127
//   index = 128 + (msb - 7) * 64 + (top - 64)

const EXACT = 128; // values below this have a bucket each
const SUB_BUCKETS = 64; // buckets per power of two above EXACT
const MAX_VALUE = 0x7fffffff; // ~35.8 minutes in µs; larger values are clamped
export const BUCKETS = EXACT + (31 - 7) * SUB_BUCKETS; // 1664

/** Bucket index of a value in µs (0 ≤ v ≤ MAX_VALUE, an integer). */
function indexOf(v: number): number {
  if (v < EXACT) return v;
  const msb = 31 - Math.clz32(v);
  const shift = msb - 6;
  return EXACT + (msb - 7) * SUB_BUCKETS + ((v >>> shift) - SUB_BUCKETS);
}

/** Lowest value that falls in bucket `i`, and the bucket's width. */
function bucketRange(i: number): { low: number; width: number } {
  if (i < EXACT) return { low: i, width: 1 };
  const octave = Math.floor((i - EXACT) / SUB_BUCKETS); // 0 for 128..255
  const top = SUB_BUCKETS + ((i - EXACT) % SUB_BUCKETS);
  const width = 2 ** (octave + 1);
  return { low: top * width, width };
}

export interface LatencySummary {
  /** Samples recorded. */
  count: number;
  p50_ms: number | null;
  p90_ms: number | null;
  p99_ms: number | null;
  p999_ms: number | null;
  max_ms: number | null;
  mean_ms: number | null;
}

/** What a histogram is made of: plain data, so it crosses postMessage by structured clone. */
export interface HistogramData {
  counts: Float64Array;
  count: number;
  sum: number;
  max: number;
}

export class Histogram implements HistogramData {
  // Float64Array rather than Uint32Array: counts never overflow, and 2^53 is plenty.
  counts = new Float64Array(BUCKETS);
  count = 0;
  sum = 0;
  max = 0;

  /** Records one value in µs. Negative values (clock noise between threads) count as 0. */
  record(us: number): void {
    const v = us <= 0 ? 0 : us >= MAX_VALUE ? MAX_VALUE : Math.round(us);
    this.counts[indexOf(v)]!++;
    this.count++;
    this.sum += v;
    if (v > this.max) this.max = v;
  }

  /** Adds another histogram's samples (possibly one that came from another thread). */
  merge(other: HistogramData): void {
    const theirs = other.counts;
    for (let i = 0; i < BUCKETS; i++) this.counts[i]! += theirs[i]!;
    this.count += other.count;
    this.sum += other.sum;
    if (other.max > this.max) this.max = other.max;
  }

  /** The value at quantile q (0..1), in µs: the middle of the bucket holding it, never above max. */
  quantile(q: number): number | null {
    if (this.count === 0) return null;
    const rank = Math.max(1, Math.ceil(q * this.count)); // the rank-th smallest sample
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) {
        const { low, width } = bucketRange(i);
        return Math.min(this.max, low + (width - 1) / 2);
      }
    }
    return this.max;
  }

  summary(): LatencySummary {
    const ms = (us: number | null): number | null => (us === null ? null : Math.round(us) / 1000);
    return {
      count: this.count,
      p50_ms: ms(this.quantile(0.5)),
      p90_ms: ms(this.quantile(0.9)),
      p99_ms: ms(this.quantile(0.99)),
      p999_ms: ms(this.quantile(0.999)),
      max_ms: this.count ? ms(this.max) : null,
      mean_ms: this.count ? ms(this.sum / this.count) : null,
    };
  }

  /** A copy of the data, to post to another thread (the live histogram keeps counting). */
  snapshot(): HistogramData {
    return { counts: this.counts.slice(), count: this.count, sum: this.sum, max: this.max };
  }

  static from(data: HistogramData): Histogram {
    const h = new Histogram();
    h.merge(data);
    return h;
  }
}
