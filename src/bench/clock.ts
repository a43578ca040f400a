// One clock for every thread of the load generator, in microseconds.
//
// Latency is "received at" minus "sent at", and the two readings are taken by different threads:
// the publishers run on the main thread, the subscribers on worker threads. performance.now()
// will not do across threads: each thread counts from its own start (its own timeOrigin).
// process.hrtime.bigint() reads CLOCK_MONOTONIC, which is the same for every thread and process
// of the machine, but it allocates a BigInt per call. So each thread measures, once, the offset
// between its performance.now() and the monotonic clock, and from then on reads
// performance.now() (cheap, a double) plus that offset.
//
// The offset is measured as the middle of a performance.now() pair that brackets an hrtime
// read; the tightest pair of 50 tries wins, so the error is well under a microsecond. (Both
// clocks are CLOCK_MONOTONIC underneath, so the offset does not drift.)

function measureOffsetUs(): number {
  performance.now(); // the first call loads perf_hooks: keep it out of the measurement
  process.hrtime.bigint();
  let bestSpread = Infinity;
  let offset = 0;
  for (let i = 0; i < 50; i++) {
    const before = performance.now();
    const mono = Number(process.hrtime.bigint()) / 1000;
    const after = performance.now();
    if (after - before < bestSpread) {
      bestSpread = after - before;
      offset = mono - ((before + after) / 2) * 1000;
    }
  }
  return offset;
}

const OFFSET_US = measureOffsetUs();

/** CLOCK_MONOTONIC in microseconds (fractional): comparable between the threads of this machine. */
export function monoUs(): number {
  return performance.now() * 1000 + OFFSET_US;
}
