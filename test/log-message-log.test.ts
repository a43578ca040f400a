// Tests for src/log/message-log.ts on real files in a temporary directory: group commit (one write
// and one fdatasync per turn's appends, the next group filling during a flight), segments, reopening,
// torn tails and corruption, failed writes and flushes (injected through LogFiles) and their repair,
// and a real full disk (a small tmpfs).
import { afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LogCorruptionError, LogUnavailableError, MessageLog, NODE_FILES, openLog, segmentFileName, type LogFiles, type OpenLogOptions } from '../src/log/message-log.js';
import { encodeRecord } from '../src/log/record.js';
import { mountTmpfs } from './helpers/tmpfs.js';

// ---- helpers ---------------------------------------------------------------------------------------

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()!();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'message-log-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface Opened {
  log: MessageLog;
  records: string[];
  warnings: string[];
}

/** Opens the log in `dir`, collecting what it reads and warns; closes it after the test. */
async function open(dir: string, options: Partial<OpenLogOptions> = {}): Promise<Opened> {
  const records: string[] = [];
  const warnings: string[] = [];
  const log = await openLog({ dir, maxRecordBytes: 1000, warn: (line) => warnings.push(line), ...options }, (payload) => records.push(payload.toString('utf8')));
  cleanups.push(() => void log.close());
  return { log, records, warnings };
}

/** The records in `dir` as a fresh open reads them (the log is closed again). */
async function reread(dir: string, options: Partial<OpenLogOptions> = {}): Promise<string[]> {
  const { log, records } = await open(dir, options);
  await log.close();
  return records;
}

function durable(log: MessageLog): Promise<Error | null> {
  return new Promise((resolve) => log.whenDurable(resolve));
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function segmentFiles(dir: string): string[] {
  return readdirSync(dir).filter((name) => /^\d{20}\.log$/.test(name)).sort();
}

function bytesOf(payloads: readonly string[]): number {
  return payloads.reduce((sum, payload) => sum + encodeRecord(payload).length, 0);
}

function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: injected by the test`), { code });
}

type Op = keyof LogFiles;

/**
 * NODE_FILES, observed and steerable: every call is counted (`calls`) and every completion recorded
 * (`completed`); an op fails while `failing[op]` holds an errno code; `hold(op)` stops its next call
 * until released; `space` simulates a disk with that many bytes left (a write past it is short, the
 * next fails ENOSPC; truncation gives nothing back); `maxWriteBytes` makes every write short.
 */
class TestFiles implements LogFiles {
  readonly calls: Array<{ op: Op; length?: number }> = [];
  readonly completed: Array<{ op: Op; error: string | null }> = [];
  /** The paths given to open, in order. */
  readonly opened: string[] = [];
  failing: Partial<Record<Op, string>> = {};
  space: number | null = null;
  maxWriteBytes = Number.POSITIVE_INFINITY;
  private readonly holds = new Map<Op, { arrived: () => void; released: Promise<void> }>();
  private waiters: Array<{ predicate: () => boolean; resolve: () => void }> = [];

  count(op: Op): number {
    return this.calls.filter((call) => call.op === op).length;
  }

  hold(op: Op): { arrived: Promise<void>; release: () => void } {
    let arrived!: () => void;
    let release!: () => void;
    const arrivedPromise = new Promise<void>((resolve) => (arrived = resolve));
    const released = new Promise<void>((resolve) => (release = resolve));
    this.holds.set(op, { arrived, released });
    return { arrived: arrivedPromise, release };
  }

  /** Resolves once `predicate` holds, checked now and on the turn after every completed call. */
  until(predicate: () => boolean): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ predicate, resolve }));
  }

  private run<T>(op: Op, length: number | undefined, real: (callback: (error: NodeJS.ErrnoException | null, value?: T) => void) => void, callback: (error: NodeJS.ErrnoException | null, value: T) => void): void {
    this.calls.push(length === undefined ? { op } : { op, length });
    const finish = (error: NodeJS.ErrnoException | null, value?: T): void => {
      this.completed.push({ op, error: error?.code ?? null });
      callback(error, value as T);
      // Checked once what the completion set off (promise continuations) has run.
      setImmediate(() => {
        const waiting = this.waiters;
        this.waiters = [];
        for (const waiter of waiting) {
          if (waiter.predicate()) waiter.resolve();
          else this.waiters.push(waiter);
        }
      });
    };
    const go = (): void => {
      const code = this.failing[op];
      if (code !== undefined) setImmediate(() => finish(errno(code)));
      else real(finish);
    };
    const held = this.holds.get(op);
    if (held) {
      this.holds.delete(op);
      held.arrived();
      void held.released.then(go);
    } else go();
  }

  open(path: string, flags: string, mode: number, callback: (error: NodeJS.ErrnoException | null, fd: number) => void): void {
    this.opened.push(path);
    this.run('open', undefined, (done) => NODE_FILES.open(path, flags, mode, done), callback);
  }
  write(fd: number, buffer: Buffer, offset: number, length: number, position: number, callback: (error: NodeJS.ErrnoException | null, written: number) => void): void {
    this.run<number>('write', length, (done) => {
      let allowed = Math.min(length, this.maxWriteBytes);
      if (this.space !== null) {
        if (this.space === 0) return setImmediate(() => done(errno('ENOSPC')));
        allowed = Math.min(allowed, this.space);
      }
      NODE_FILES.write(fd, buffer, offset, allowed, position, (error, written) => {
        if (!error && this.space !== null) this.space -= written;
        done(error, written);
      });
    }, callback);
  }
  fdatasync(fd: number, callback: (error: NodeJS.ErrnoException | null) => void): void {
    this.run('fdatasync', undefined, (done) => NODE_FILES.fdatasync(fd, done), callback);
  }
  fsync(fd: number, callback: (error: NodeJS.ErrnoException | null) => void): void {
    this.run('fsync', undefined, (done) => NODE_FILES.fsync(fd, done), callback);
  }
  ftruncate(fd: number, length: number, callback: (error: NodeJS.ErrnoException | null) => void): void {
    this.run('ftruncate', length, (done) => NODE_FILES.ftruncate(fd, length, done), callback);
  }
  close(fd: number, callback: (error: NodeJS.ErrnoException | null) => void): void {
    this.run('close', undefined, (done) => NODE_FILES.close(fd, done), callback);
  }
  unlink(path: string, callback: (error: NodeJS.ErrnoException | null) => void): void {
    this.run('unlink', undefined, (done) => NODE_FILES.unlink(path, done), callback);
  }
}

// ---- group commit ----------------------------------------------------------------------------------

describe('group commit', () => {
  test('appends of one turn: one write, one fdatasync, callbacks in the order registered', async () => {
    const dir = tempDir();
    const files = new TestFiles();
    const { log } = await open(dir, { files });
    const order: string[] = [];
    const payloads = Array.from({ length: 100 }, (_, i) => `m{"id":${i}}`);
    for (const [i, payload] of payloads.entries()) {
      log.append(payload);
      if (i % 25 === 0) log.whenDurable((error) => order.push(`${i}:${error}`));
    }
    assert.equal(files.count('write'), 0, 'nothing is written synchronously');
    await durable(log);
    assert.deepEqual(order, ['0:null', '25:null', '50:null', '75:null']);
    assert.equal(log.stats.flushes, 1);
    assert.equal(files.count('write'), 1);
    assert.equal(files.count('fdatasync'), 1);
    assert.deepEqual(log.stats, { flushes: 1, bytesFlushed: bytesOf(payloads), records: 100, segmentBytes: bytesOf(payloads) });
    assert.deepEqual(readFileSync(join(dir, segmentFileName(1))), Buffer.concat(payloads.map((p) => encodeRecord(p))));
  });

  test('appends during a flight go to the next group, which takes off when the flight ends', async () => {
    const dir = tempDir();
    const files = new TestFiles();
    const { log } = await open(dir, { files });
    const order: string[] = [];
    const sync = files.hold('fdatasync');
    log.append('a');
    log.whenDurable((error) => order.push(`a:${error}`));
    await sync.arrived; // group 1 is written and waits for its flush
    log.append('b');
    log.whenDurable((error) => order.push(`b:${error}`));
    await nextTurn();
    log.append('c'); // another turn, still during the flight: the same open group
    log.whenDurable((error) => order.push(`c:${error}`));
    await nextTurn();
    assert.deepEqual(order, [], 'nothing is durable while the flush is held');
    assert.equal(files.count('write'), 1, 'at most one group in flight');
    sync.release();
    await durable(log);
    assert.deepEqual(order, ['a:null', 'b:null', 'c:null']);
    assert.deepEqual(files.calls.filter((c) => c.op === 'write').map((c) => c.length), [bytesOf(['a']), bytesOf(['b', 'c'])]);
    assert.equal(files.count('fdatasync'), 2);
    assert.equal(log.stats.flushes, 2);
    assert.deepEqual(await reread(dir), ['a', 'b', 'c']);
  });

  test('whenDurable with nothing pending calls back on a later tick, with null', async () => {
    const { log } = await open(tempDir());
    let called: Error | null | undefined;
    log.whenDurable((error) => (called = error));
    assert.equal(called, undefined);
    await nextTurn();
    assert.equal(called, null);
  });

  test('a group holds at most maxGroupBytes; a bigger record is a group by itself', async () => {
    const dir = tempDir();
    const files = new TestFiles();
    const { log } = await open(dir, { files, maxGroupBytes: 100 });
    const small = Array.from({ length: 5 }, (_, i) => `${i}`.repeat(40)); // 48 bytes each
    const big = 'x'.repeat(150);
    for (const payload of small) log.append(payload);
    log.append(big);
    log.append('tail');
    await durable(log);
    const writes = files.calls.filter((c) => c.op === 'write').map((c) => c.length);
    assert.deepEqual(writes, [96, 96, 48, 158, 12]);
    assert.equal(log.stats.flushes, 5);
    assert.deepEqual(await reread(dir, { maxGroupBytes: 100 }), [...small, big, 'tail']);
  });

  test('short writes continue where they stopped: still one group, one flush', async () => {
    const dir = tempDir();
    const files = new TestFiles();
    files.maxWriteBytes = 7;
    const { log } = await open(dir, { files });
    const payloads = ['hello', 'wörld', '😀 emoji'];
    for (const payload of payloads) log.append(payload);
    assert.equal(await durable(log), null);
    assert.equal(files.count('write'), Math.ceil(bytesOf(payloads) / 7));
    assert.equal(files.count('fdatasync'), 1);
    assert.equal(log.stats.flushes, 1);
    assert.deepEqual(await reread(dir), payloads);
  });

  test('append refuses an empty or too big record with RangeError, changing nothing', async () => {
    const { log } = await open(tempDir(), { maxRecordBytes: 10 });
    assert.throws(() => log.append(''), RangeError);
    assert.throws(() => log.append('x'.repeat(11)), /a log record of 11 bytes is over the limit of 10/);
    assert.throws(() => log.append('éééééé'), /12 bytes/); // 6 characters, 12 UTF-8 bytes
    log.append('é'.repeat(5)); // 10 bytes: at the limit
    assert.equal(log.stats.records, 1);
    assert.equal(await durable(log), null);
  });

  test('close flushes what is pending, calls the callbacks, then refuses appends', async () => {
    const dir = tempDir();
    const { log } = await open(dir);
    log.append('last words');
    let result: Error | null | undefined;
    log.whenDurable((error) => (result = error));
    await log.close();
    assert.equal(result, null);
    assert.throws(() => log.append('more'), LogUnavailableError);
    assert.equal(log.healthy, false);
    assert.deepEqual(await reread(dir), ['last words']);
  });
});

// ---- segments and reopening ------------------------------------------------------------------------

describe('segments and reopening', () => {
  test('a missing directory is created with segment 1', async () => {
    const dir = join(tempDir(), 'a', 'data');
    const { log, records } = await open(dir);
    assert.deepEqual(records, []);
    assert.deepEqual(log.segments, [1]);
    assert.deepEqual(readdirSync(dir), ['00000000000000000001.log']);
  });

  test("the data directory's entry is fsync'ed at open, also when the caller created the directory", async () => {
    const parent = tempDir();
    const dir = join(parent, 'data');
    mkdirSync(dir);
    const files = new TestFiles();
    const { log } = await open(dir, { files });
    assert.deepEqual(files.opened, [parent]);
    assert.deepEqual(files.calls.map((c) => c.op), ['open', 'fsync', 'close']);
    assert.ok(files.completed.every((c) => c.error === null));
    await log.close();
  });

  test('every record comes back in order across segments; segments roll at segmentBytes', async () => {
    const dir = tempDir();
    const { log } = await open(dir, { segmentBytes: 200 });
    const payloads: string[] = [];
    for (let turn = 0; turn < 20; turn++) {
      for (let i = 0; i < 3; i++) {
        const payload = `m{"turn":${turn},"i":${i}}`;
        payloads.push(payload);
        log.append(payload);
      }
      assert.equal(await durable(log), null);
    }
    assert.ok(log.segments.length > 3, `several segments: ${log.segments.join(',')}`);
    assert.deepEqual(segmentFiles(dir), log.segments.map(segmentFileName));
    for (const name of segmentFiles(dir).slice(0, -1)) {
      const size = statSync(join(dir, name)).size;
      assert.ok(size >= 200, `${name} rolled only once full (${size} bytes)`);
    }
    await log.close();
    const again = await open(dir, { segmentBytes: 200 });
    assert.deepEqual(again.records, payloads);
    assert.deepEqual(again.warnings, []);
    assert.deepEqual(again.log.segments, log.segments);
  });

  test('rollSegment starts the next group in a new file; dropSegmentsBefore deletes the older ones only', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'notes.txt'), 'not the log');
    writeFileSync(join(dir, '123.log'), 'not a segment name');
    const { log } = await open(dir);
    log.append('one');
    log.append('two');
    const second = log.rollSegment();
    assert.equal(second, 2);
    assert.equal(log.rollSegment(), 2, 'nothing appended since: the same segment');
    log.append('three');
    assert.deepEqual(log.segments, [1], 'the file is created when its first group is written');
    await durable(log);
    assert.deepEqual(log.segments, [1, 2]);
    assert.equal(log.stats.segmentBytes, bytesOf(['three']));
    const third = log.rollSegment();
    log.append('four');
    await durable(log);
    assert.deepEqual(log.segments, [1, 2, 3]);
    assert.deepEqual(readFileSync(join(dir, segmentFileName(2))), encodeRecord('three'));

    await log.dropSegmentsBefore(third);
    assert.deepEqual(log.segments, [3]);
    assert.deepEqual(readdirSync(dir).sort(), ['00000000000000000003.log', '123.log', 'notes.txt']);
    await log.dropSegmentsBefore(1000);
    assert.deepEqual(log.segments, [3], 'never the segment being written');
    assert.equal(readFileSync(join(dir, 'notes.txt'), 'utf8'), 'not the log');
    await log.close();
    const again = await open(dir);
    assert.deepEqual(again.records, ['four']);
    assert.deepEqual(again.log.segments, [3]);
    again.log.append('five');
    await durable(again.log);
    assert.deepEqual(segmentFiles(dir), ['00000000000000000003.log'], 'appends go on in the last segment');
  });
});

// ---- torn tails and corruption ---------------------------------------------------------------------

/** Writes `payloads` to a log in `dir` (one turn: one group unless maxGroupBytes splits it) and closes it. */
async function writeLog(dir: string, payloads: readonly string[], options: Partial<OpenLogOptions> = {}): Promise<void> {
  const { log } = await open(dir, options);
  for (const payload of payloads) log.append(payload);
  assert.equal(await durable(log), null);
  await log.close();
}

describe('recovery', () => {
  const payloads = Array.from({ length: 10 }, (_, i) => `m{"id":${i},"text":"message number ${i}"}`);

  test('a last file cut mid-record: the torn tail is cut with a warning, the records before it come back', async () => {
    const dir = tempDir();
    await writeLog(dir, payloads);
    const file = join(dir, segmentFileName(1));
    const full = statSync(file).size;
    const lastStart = full - encodeRecord(payloads[9]!).length;
    truncateSync(file, lastStart + 13);
    const { log, records, warnings } = await open(dir);
    assert.deepEqual(records, payloads.slice(0, 9));
    assert.deepEqual(warnings, [`log: cut a torn tail of 13 bytes at ${file} offset ${lastStart} (a write interrupted by a crash; it was never acknowledged)`]);
    assert.equal(statSync(file).size, lastStart);
    log.append('after the cut');
    await durable(log);
    await log.close();
    assert.deepEqual(await reread(dir), [...payloads.slice(0, 9), 'after the cut']);
  });

  for (const [name, tail] of [
    ['garbage bytes', Buffer.from('a crash left this garbage at the end of the file')],
    ['zeros (a file extended but never filled)', Buffer.alloc(4096)],
    ['three bytes of a header', Buffer.from([0, 0, 1])],
    ['a header with a garbage length', Buffer.from('ffffffff00000000', 'hex')],
  ] as const) {
    test(`${name} after the last record: cut, every record comes back`, async () => {
      const dir = tempDir();
      await writeLog(dir, payloads);
      const file = join(dir, segmentFileName(1));
      const good = statSync(file).size;
      appendFileSync(file, tail);
      const { records, warnings } = await open(dir);
      assert.deepEqual(records, payloads);
      assert.deepEqual(warnings, [`log: cut a torn tail of ${tail.length} bytes at ${file} offset ${good} (a write interrupted by a crash; it was never acknowledged)`]);
      assert.equal(statSync(file).size, good);
    });
  }

  test('a bad record in an earlier segment is corruption: LogCorruptionError names file and offset, nothing changes', async () => {
    const dir = tempDir();
    const { log } = await open(dir, { segmentBytes: 150 });
    for (const payload of payloads) {
      log.append(payload);
      await durable(log);
    }
    await log.close();
    assert.ok(log.segments.length >= 3);
    const middle = join(dir, segmentFileName(log.segments[1]!));
    const bytes = readFileSync(middle);
    const second = encodeRecord(readRecordsOf(bytes)[0]!).length; // the offset of the file's second record
    bytes[second + 8 + 2] ^= 0x01; // a flipped bit in its payload
    writeFileSync(middle, bytes);
    const before = segmentFiles(dir).map((name) => readFileSync(join(dir, name)));
    const error = await openLog({ dir, maxRecordBytes: 1000, segmentBytes: 150, warn: () => assert.fail('no warning') }, () => {}).then(
      () => assert.fail('must refuse'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof LogCorruptionError);
    assert.equal(error.name, 'LogCorruptionError');
    assert.equal(error.file, middle);
    assert.equal(error.offset, second);
    assert.match(error.message, new RegExp(`corrupt at ${escape(middle)} byte ${second}: a CRC-32 mismatch`));
    assert.match(error.message, new RegExp(`truncate -s ${second} ${escape(middle)}`));
    assert.match(error.message, new RegExp(escape(segmentFileName(log.segments[2]!))), 'names the later segments to remove');
    assert.deepEqual(segmentFiles(dir).map((name) => readFileSync(join(dir, name))), before, 'nothing was changed');
  });

  test('a bad record in the last segment further from the end than a group is corruption', async () => {
    const dir = tempDir();
    await writeLog(dir, payloads, { maxGroupBytes: 64 });
    const file = join(dir, segmentFileName(1));
    const bytes = readFileSync(file);
    const third = bytesOf(payloads.slice(0, 2));
    bytes.writeUInt32BE(0, third); // length 0
    writeFileSync(file, bytes);
    await assert.rejects(openLog({ dir, maxRecordBytes: 60, maxGroupBytes: 64 }, () => {}), (error: unknown) => {
      assert.ok(error instanceof LogCorruptionError);
      assert.equal(error.file, file);
      assert.equal(error.offset, third);
      assert.match(error.message, /a record with length 0/);
      return true;
    });
    assert.deepEqual(readFileSync(file), bytes, 'nothing was changed');
  });

  test('a bit flip far from the end is corruption even when maxRecordBytes is far bigger than a group', async () => {
    // The review's case: with the chat's 32 MiB maxRecordBytes, a bad CRC anywhere in the last
    // 32 MiB used to be cut as a torn tail, losing acknowledged records with only a warning.
    const dir = tempDir();
    await writeLog(dir, payloads, { maxGroupBytes: 64, maxRecordBytes: 100_000 });
    const file = join(dir, segmentFileName(1));
    const bytes = readFileSync(file);
    const third = bytesOf(payloads.slice(0, 2));
    bytes[third + 8 + 5] ^= 0x10; // a flipped bit in the third record's payload
    writeFileSync(file, bytes);
    await assert.rejects(openLog({ dir, maxRecordBytes: 100_000, maxGroupBytes: 64, warn: () => assert.fail('no warning') }, () => {}), (error: unknown) => {
      assert.ok(error instanceof LogCorruptionError);
      assert.equal(error.file, file);
      assert.equal(error.offset, third);
      assert.match(error.message, new RegExp(`a CRC-32 mismatch in a ${payloads[2]!.length}-byte record .*, ${bytes.length - third} bytes from the end of the last segment: further than one group \\(64 bytes\\)`));
      return true;
    });
    assert.deepEqual(readFileSync(file), bytes, 'nothing was changed');
  });

  test('a bad record within a group of the end but followed by a valid record is corruption, not a torn tail', async () => {
    const dir = tempDir();
    await writeLog(dir, payloads);
    const file = join(dir, segmentFileName(1));
    const bytes = readFileSync(file);
    const eighth = bytesOf(payloads.slice(0, 7));
    bytes[eighth + 4] ^= 0x01; // a flipped bit in the eighth record's CRC
    writeFileSync(file, bytes);
    const ninth = eighth + encodeRecord(payloads[7]!).length;
    await assert.rejects(openLog({ dir, maxRecordBytes: 1000, warn: () => assert.fail('no warning') }, () => {}), (error: unknown) => {
      assert.ok(error instanceof LogCorruptionError);
      assert.equal(error.offset, eighth);
      assert.match(error.message, new RegExp(`a CRC-32 mismatch .*, followed by a valid record at byte ${ninth}: a crash tears only the end of the last write`));
      assert.match(error.message, new RegExp(`truncate -s ${eighth} ${escape(file)}`), 'says how to repair');
      return true;
    });
    assert.deepEqual(readFileSync(file), bytes, 'nothing was changed');
    // The same bad record with nothing valid after it (the rest of the file gone) is a torn tail.
    truncateSync(file, ninth + 3);
    const { records, warnings } = await open(dir);
    assert.deepEqual(records, payloads.slice(0, 7));
    assert.deepEqual(warnings, [`log: cut a torn tail of ${ninth + 3 - eighth} bytes at ${file} offset ${eighth} (a write interrupted by a crash; it was never acknowledged)`]);
  });

  test('a length field flipped to run past the end of the file is corruption when valid records follow', async () => {
    const dir = tempDir();
    await writeLog(dir, payloads, { maxRecordBytes: 100_000 });
    const file = join(dir, segmentFileName(1));
    const bytes = readFileSync(file);
    const third = bytesOf(payloads.slice(0, 2));
    bytes[third + 1] ^= 0x01; // the length gains 65536: the record now seems to end past the file
    writeFileSync(file, bytes);
    await assert.rejects(openLog({ dir, maxRecordBytes: 100_000 }, () => {}), (error: unknown) => {
      assert.ok(error instanceof LogCorruptionError);
      assert.equal(error.offset, third);
      assert.match(error.message, new RegExp(`a ${65536 + payloads[2]!.length}-byte record cut short .*, followed by a valid record at byte ${third + encodeRecord(payloads[2]!).length}`));
      return true;
    });
    assert.deepEqual(readFileSync(file), bytes, 'nothing was changed');
  });

  test('one record bigger than a group, torn far from the end, is a torn tail (incomplete, or bad up to the end)', async () => {
    const dir = tempDir();
    const big = 'b'.repeat(50_000);
    await writeLog(dir, [...payloads, big], { maxGroupBytes: 1024, maxRecordBytes: 100_000 });
    const file = join(dir, segmentFileName(1));
    const good = bytesOf(payloads);
    const full = readFileSync(file);
    // Its write cut short: incomplete.
    truncateSync(file, good + 30_000);
    let opened = await open(dir, { maxGroupBytes: 1024, maxRecordBytes: 100_000 });
    assert.deepEqual(opened.records, payloads);
    assert.equal(opened.warnings.length, 1);
    await opened.log.close();
    // Its full length on disk but a page in the middle never written (zeros): bad, one record to the end.
    const holed = Buffer.from(full);
    holed.fill(0, good + 8192, good + 12288);
    writeFileSync(file, holed);
    opened = await open(dir, { maxGroupBytes: 1024, maxRecordBytes: 100_000 });
    assert.deepEqual(opened.records, payloads);
    assert.match(opened.warnings[0]!, new RegExp(`cut a torn tail of ${full.length - good} bytes at .* offset ${good} `));
  });

  test('a length field over maxRecordBytes is bad', async () => {
    const dir = tempDir();
    const { log } = await open(dir);
    log.append('x'.repeat(100));
    await durable(log);
    log.rollSegment();
    log.append('y');
    await durable(log);
    await log.close();
    await assert.rejects(openLog({ dir, maxRecordBytes: 99 }, () => {}), (error: unknown) => {
      assert.ok(error instanceof LogCorruptionError);
      assert.equal(error.offset, 0);
      assert.match(error.message, /a record length of 100 bytes, over the limit of 99/);
      return true;
    });
  });

  test('an exception from onRecord rejects openLog and leaves the files as they were', async () => {
    const dir = tempDir();
    await writeLog(dir, payloads);
    const file = join(dir, segmentFileName(1));
    appendFileSync(file, 'torn');
    const size = statSync(file).size;
    await assert.rejects(openLog({ dir, maxRecordBytes: 1000 }, () => { throw new Error('cannot decode'); }), /cannot decode/);
    assert.equal(statSync(file).size, size);
  });
});

function readRecordsOf(bytes: Buffer): string[] {
  const out: string[] = [];
  for (let offset = 0; offset + 8 <= bytes.length; ) {
    const length = bytes.readUInt32BE(offset);
    out.push(bytes.subarray(offset + 8, offset + 8 + length).toString());
    offset += 8 + length;
  }
  return out;
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

// ---- faults ----------------------------------------------------------------------------------------

describe('faults', () => {
  const fast = { first: 1, max: 4 };

  test('a failed fdatasync fails its group and every later one, in order; the log repairs itself and resumes', async () => {
    const dir = tempDir();
    const files = new TestFiles();
    const health: string[] = [];
    const { log, warnings } = await open(dir, { files, maxGroupBytes: 20, retryDelayMs: fast });
    log.onHealthChange = (healthy, cause) => health.push(`${healthy}:${(cause as NodeJS.ErrnoException | undefined)?.code}`);
    log.append('acknowledged');
    assert.equal(await durable(log), null);
    const durableSize = bytesOf(['acknowledged']);

    const order: string[] = [];
    const errors: Error[] = [];
    const record = (name: string) => (error: Error | null) => {
      order.push(name);
      if (error) errors.push(error);
    };
    files.failing.fdatasync = 'EIO';
    const sync = files.hold('fdatasync');
    log.append('lost one');
    log.whenDurable(record('b'));
    await sync.arrived; // the group is written; its flush will fail
    log.append('lost two....'); // 20 bytes: a group
    log.whenDurable(record('c'));
    log.append('lost three..'); // seals the previous group: another group
    log.whenDurable(record('d'));
    sync.release();
    // The repair's fdatasync fails too: it retries, in the same episode, and no callback is called
    // while the cut is not durable (the failed records could still come back).
    await files.until(() => files.count('ftruncate') >= 3);
    assert.deepEqual(order, []);
    assert.equal(log.healthy, false);
    assert.deepEqual(health, ['false:EIO']);
    assert.throws(() => log.append('while broken'), LogUnavailableError);
    assert.equal(log.stats.records, 4, 'a refused append changes nothing');
    const late = durable(log); // joins the failed ones' callbacks, after them
    assert.equal(statSync(join(dir, segmentFileName(1))).size, durableSize, 'cut back to the durable length');
    assert.ok(files.calls.filter((c) => c.op === 'ftruncate').every((c) => c.length === durableSize));
    delete files.failing.fdatasync;
    await files.until(() => order.length === 3);
    assert.deepEqual(order, ['b', 'c', 'd']);
    assert.equal(errors.length, 3);
    for (const error of errors) {
      assert.ok(error instanceof LogUnavailableError);
      assert.equal(error.name, 'LogUnavailableError');
      assert.equal((error.cause as NodeJS.ErrnoException).code, 'EIO');
    }
    assert.ok((await late) instanceof LogUnavailableError, 'whenDurable while broken: an error');
    await files.until(() => health.length === 2);
    assert.deepEqual(health, ['false:EIO', 'true:undefined']);
    assert.equal(log.healthy, true);
    assert.equal(warnings.length, 2);
    assert.match(warnings[0]!, /^log: writes are failing \(EIO: injected by the test\); nothing is acknowledged until they work again$/);
    assert.match(warnings[1]!, /^log: writes work again; resumed after \d+ ms$/);

    log.append('after');
    assert.equal(await durable(log), null);
    await log.close();
    assert.deepEqual(await reread(dir), ['acknowledged', 'after']);
  });

  test('failed records are reported only once their cut is durable: nothing while fdatasync then ftruncate fail, then all in order', async () => {
    const dir = tempDir();
    const files = new TestFiles();
    const { log } = await open(dir, { files, retryDelayMs: fast });
    log.append('acknowledged');
    assert.equal(await durable(log), null);
    const seen: Array<{ name: string; error: Error | null; lastOps: string[] }> = [];
    const record = (name: string) => (error: Error | null) => {
      seen.push({ name, error, lastOps: files.completed.slice(-2).map((c) => `${c.op}:${c.error}`) });
    };
    files.failing.fdatasync = 'EIO';
    files.failing.ftruncate = 'EIO';
    log.append('one');
    log.whenDurable(record('a'));
    log.append('two');
    log.whenDurable(record('b'));
    await files.until(() => files.count('ftruncate') >= 3);
    assert.equal(seen.length, 0, 'nothing is reported while the failed bytes may still be in the file');
    assert.throws(() => log.append('refused at once'), LogUnavailableError);
    delete files.failing.fdatasync; // fdatasync works, the cut still fails
    const truncations = files.count('ftruncate');
    await files.until(() => files.count('ftruncate') >= truncations + 3);
    assert.equal(seen.length, 0);
    delete files.failing.ftruncate;
    await files.until(() => seen.length === 2);
    assert.deepEqual(seen.map((s) => s.name), ['a', 'b']);
    for (const { error } of seen) {
      assert.ok(error instanceof LogUnavailableError);
      assert.equal((error.cause as NodeJS.ErrnoException).code, 'EIO');
    }
    assert.deepEqual(seen[0]!.lastOps, ['ftruncate:null', 'fdatasync:null'], 'called right after the cut was made durable');
    await log.close();
    assert.deepEqual(await reread(dir), ['acknowledged']);
  });

  test('a full disk (short write, then ENOSPC): the partial group is cut off; it resumes once there is room', async () => {
    const dir = tempDir();
    const files = new TestFiles();
    const health: boolean[] = [];
    const { log } = await open(dir, { files, retryDelayMs: fast });
    log.onHealthChange = (healthy) => health.push(healthy);
    log.append('first');
    assert.equal(await durable(log), null);
    const file = join(dir, segmentFileName(1));
    files.space = 10;
    log.append('this group does not fit in ten bytes');
    const error = await durable(log);
    assert.ok(error instanceof LogUnavailableError);
    assert.equal((error.cause as NodeJS.ErrnoException).code, 'ENOSPC');
    // Attempts fail (the probe finds no room) and leave the file at its durable length between them.
    await files.until(() => files.completed.filter((c) => c.op === 'write' && c.error === 'ENOSPC').length >= 3);
    await files.until(() => files.completed.at(-1)?.op === 'fdatasync');
    assert.equal(statSync(file).size, bytesOf(['first']));
    assert.deepEqual(health, [false]);
    files.space = null;
    await files.until(() => health.length === 2);
    assert.deepEqual(health, [false, true]);
    assert.equal(statSync(file).size, bytesOf(['first']), 'the probe is cut off too');
    log.append('second');
    assert.equal(await durable(log), null);
    await log.close();
    assert.deepEqual(await reread(dir), ['first', 'second']);
  });

  test('a new segment that cannot be created: an episode, then the log goes on (the next roll gets a new number)', async () => {
    const dir = tempDir();
    const files = new TestFiles();
    const health: boolean[] = [];
    const { log } = await open(dir, { files, retryDelayMs: fast });
    log.onHealthChange = (healthy) => health.push(healthy);
    log.append('one');
    await durable(log);
    files.failing.open = 'EMFILE';
    assert.equal(log.rollSegment(), 2);
    log.append('two');
    const error = await durable(log);
    assert.ok(error instanceof LogUnavailableError);
    assert.equal((error.cause as NodeJS.ErrnoException).code, 'EMFILE');
    delete files.failing.open;
    await files.until(() => health.length === 2);
    assert.deepEqual(log.segments, [1]);
    assert.equal(log.rollSegment(), 3);
    log.append('three');
    assert.equal(await durable(log), null);
    assert.deepEqual(log.segments, [1, 3]);
    assert.deepEqual(segmentFiles(dir), [segmentFileName(1), segmentFileName(3)]);
    await log.close();
    assert.deepEqual(await reread(dir), ['one', 'three']);
  });

  test('a new segment created but its directory entry not synced: the repair removes the file', async () => {
    const dir = tempDir();
    const files = new TestFiles();
    const { log } = await open(dir, { files, retryDelayMs: fast });
    let resumed!: () => void;
    const resumedPromise = new Promise<void>((resolve) => (resumed = resolve));
    log.onHealthChange = (healthy) => healthy && resumed();
    log.append('one');
    await durable(log);
    files.failing.fsync = 'EIO';
    log.rollSegment();
    log.append('two');
    const failed = durable(log); // called once the half-created segment is removed, durably
    await files.until(() => files.completed.filter((c) => c.op === 'fsync' && c.error === 'EIO').length >= 2);
    delete files.failing.fsync;
    assert.ok((await failed) instanceof LogUnavailableError);
    await resumedPromise;
    assert.deepEqual(segmentFiles(dir), [segmentFileName(1)]);
    assert.deepEqual(log.segments, [1]);
    log.append('three');
    assert.equal(await durable(log), null);
    await log.close();
    assert.deepEqual(await reread(dir), ['one', 'three']);
  });

  test('close during an episode whose cut keeps failing: every callback is called with the error, close resolves', async () => {
    const dir = tempDir();
    const files = new TestFiles();
    const { log } = await open(dir, { files, retryDelayMs: { first: 60_000, max: 60_000 } });
    files.failing.write = 'EIO';
    files.failing.ftruncate = 'EIO';
    log.append('never');
    const settled: Array<Error | null> = [];
    log.whenDurable((error) => settled.push(error));
    await files.until(() => files.count('ftruncate') >= 1);
    assert.equal(settled.length, 0, 'held while the cut fails');
    await log.close();
    assert.equal(settled.length, 1);
    assert.ok(settled[0] instanceof LogUnavailableError);
    assert.equal(files.count('ftruncate'), 2, 'close tried the cut once more');
  });

  test('close during an episode stops the repair and resolves', async () => {
    const dir = tempDir();
    const files = new TestFiles();
    const { log } = await open(dir, { files, retryDelayMs: { first: 60_000, max: 60_000 } });
    const closesAtOpen = files.count('close'); // the directory synced at open
    files.failing.write = 'EIO';
    log.append('never');
    assert.ok((await durable(log)) instanceof LogUnavailableError);
    await log.close();
    assert.equal(files.count('close'), closesAtOpen + 1);
  });
});

// ---- a real full disk ------------------------------------------------------------------------------

describe('disk full, for real', () => {
  test('ENOSPC on a 256 KiB tmpfs: nothing unacknowledged stays, it resumes when space is freed, reopening gives exactly the acknowledged records', async (t) => {
    const tmpfs = mountTmpfs(256 * 1024);
    if ('skip' in tmpfs) {
      t.skip(tmpfs.skip);
      return;
    }
    cleanups.push(() => tmpfs.unmount());
    const filler = join(tmpfs.dir, 'filler');
    writeFileSync(filler, Buffer.alloc(128 * 1024, 1));
    const dir = join(tmpfs.dir, 'data');
    const files = new TestFiles(); // observes the real calls; injects nothing
    const health: boolean[] = [];
    const { log, warnings } = await open(dir, { files, maxRecordBytes: 4096, retryDelayMs: { first: 5, max: 20 } });
    log.onHealthChange = (healthy) => health.push(healthy);
    const file = join(dir, segmentFileName(1));

    const acknowledged: string[] = [];
    let failure: Error | null = null;
    for (let group = 0; failure === null; group++) {
      assert.ok(group < 1000, 'the disk must fill up');
      const payloads = Array.from({ length: 5 }, (_, i) => `m{"group":${group},"i":${i},"text":"${'x'.repeat(900)}"}`);
      for (const payload of payloads) log.append(payload);
      failure = await durable(log);
      if (failure === null) acknowledged.push(...payloads);
    }
    assert.ok(failure instanceof LogUnavailableError);
    assert.equal((failure.cause as NodeJS.ErrnoException).code, 'ENOSPC');
    assert.ok(acknowledged.length > 0);
    assert.throws(() => log.append('while full'), LogUnavailableError);

    // A repair attempt finds no room for its probe; the file is back at its durable length.
    await files.until(() => files.completed.filter((c) => c.op === 'write' && c.error === 'ENOSPC').length >= 2);
    await files.until(() => files.completed.at(-1)?.op === 'fdatasync');
    assert.equal(statSync(file).size, bytesOf(acknowledged));
    assert.deepEqual(health, [false]);

    rmSync(filler);
    await files.until(() => health.length === 2);
    assert.deepEqual(health, [false, true]);
    assert.equal(warnings.length, 2);
    const after = Array.from({ length: 20 }, (_, i) => `m{"after":${i}}`);
    for (const payload of after) log.append(payload);
    assert.equal(await durable(log), null);
    await log.close();
    assert.equal(existsSync(filler), false);
    assert.deepEqual(await reread(dir, { maxRecordBytes: 4096 }), [...acknowledged, ...after]);
  });
});
