// Does the server's memory level off under sustained abuse? The rule the fuzzer applies, as a
// pure function over RSS samples so it can be tested with numbers alone.
//
// A server under steady load first grows (V8's heap expands to its working size, caches and
// histories fill up to their bounds, the allocator keeps freed pages), then should stay put. A
// leak keeps growing for as long as the load lasts. So the run is cut into thirds by time:
//
//   first third    warming up: ignored
//   middle third   the level reached: its highest sample, M
//   last third     must not rise much above it: its highest sample, L
//
//   plateau  ⇔  L ≤ M × (1 + percent/100) + slackKiB
//
// Maxima rather than means, so that a garbage collection dip does not hide growth, and comparing
// the last third to the middle one rather than to the start, so the warm-up is not held against
// the server. `slackKiB` absorbs the noise of small heaps, where one extra V8 page is a large
// percentage. A leak of a fixed size per connection or per frame fails this in a long enough run:
// it grows the last third by as much as it grew the middle one.

export interface RssSample {
  /** Milliseconds since the attack started. */
  t: number;
  /** Resident memory of the whole server tree, KiB. */
  kib: number;
}

export interface PlateauVerdict {
  /** Highest RSS in the middle third, KiB (null: no sample there). */
  middleMaxKiB: number | null;
  /** Highest RSS in the last third, KiB. */
  lastMaxKiB: number | null;
  /** How far the last third rose above the middle one, percent (negative: it fell). */
  growthPercent: number | null;
  /** The rule held (true), failed (false), or could not be judged for lack of samples (null). */
  plateau: boolean | null;
}

export function judgePlateau(samples: readonly RssSample[], durationMs: number, percent: number, slackKiB: number): PlateauVerdict {
  let middle: number | null = null;
  let last: number | null = null;
  for (const { t, kib } of samples) {
    if (t >= durationMs * 2 / 3) last = Math.max(last ?? 0, kib);
    else if (t >= durationMs / 3) middle = Math.max(middle ?? 0, kib);
  }
  if (middle === null || last === null) return { middleMaxKiB: middle, lastMaxKiB: last, growthPercent: null, plateau: null };
  return {
    middleMaxKiB: middle,
    lastMaxKiB: last,
    growthPercent: Math.round((last / middle - 1) * 1000) / 10,
    plateau: last <= middle * (1 + percent / 100) + slackKiB,
  };
}
