// Tests for src/log/record.ts: the record framing, with hex fixtures (length BE, CRC-32 BE, payload)
// through the encoder and the decoder, and every way the decoder says 'bad' or 'incomplete'.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RECORD_HEADER_BYTES, describeBadRecord, encodeRecord, encodeRecordInto, readRecord, recordSize, recordSizeBound } from '../src/log/record.js';
import { hex } from './helpers/bytes.js';

// CRC-32 values from the standard polynomial (zlib's crc32; "a" → e8b7be43 is the textbook check).
const FIXTURES: Array<{ name: string; payload: string; bytes: string }> = [
  { name: 'one ASCII byte', payload: 'a', bytes: '00000001 e8b7be43 61' },
  { name: 'a word', payload: 'hello', bytes: '00000005 3610a686 68656c6c6f' },
  { name: 'a chat record (type letter + JSON)', payload: 'm{"id":1}', bytes: '00000009 6a5a55f1 6d7b226964223a317d' },
  { name: 'two-byte UTF-8', payload: 'é', bytes: '00000002 0e048d3e c3a9' },
  { name: 'a surrogate pair (four UTF-8 bytes)', payload: '😀', bytes: '00000004 054db544 f09f9880' },
];

describe('encoding', () => {
  for (const fixture of FIXTURES) {
    test(`${fixture.name}: encodeRecordInto writes the fixture in place and returns the offset after it`, () => {
      const buffer = Buffer.alloc(64, 0xee);
      const end = encodeRecordInto(buffer, 3, fixture.payload);
      const expected = hex(fixture.bytes);
      assert.equal(end, 3 + expected.length);
      assert.deepEqual(buffer.subarray(3, end), expected);
      assert.equal(buffer[2], 0xee, 'nothing before the offset is touched');
      assert.equal(buffer[end], 0xee, 'nothing after the record is touched');
      assert.deepEqual(encodeRecord(fixture.payload), expected);
      assert.deepEqual(encodeRecord(Buffer.from(fixture.payload)), expected);
      assert.equal(recordSize(fixture.payload), expected.length);
      assert.ok(recordSizeBound(fixture.payload) >= expected.length);
    });

    test(`${fixture.name}: readRecord decodes the fixture`, () => {
      const bytes = Buffer.concat([hex('ffff'), hex(fixture.bytes), hex('00')]);
      const record = readRecord(bytes, 2, 100);
      assert.ok(typeof record === 'object');
      assert.equal(record.payload.toString('utf8'), fixture.payload);
      assert.equal(record.next, bytes.length - 1);
    });
  }

  test('records back to back decode in order', () => {
    const bytes = Buffer.concat(FIXTURES.map((f) => hex(f.bytes)));
    const payloads: string[] = [];
    let offset = 0;
    for (;;) {
      const record = readRecord(bytes, offset, 100);
      if (record === 'incomplete') break;
      assert.notEqual(record, 'bad');
      if (record === 'bad') return;
      payloads.push(record.payload.toString());
      offset = record.next;
    }
    assert.equal(offset, bytes.length);
    assert.deepEqual(payloads, FIXTURES.map((f) => f.payload));
  });

  test('a lone surrogate is written as U+FFFD (3 bytes, within the bound)', () => {
    const record = encodeRecord('\ud800');
    assert.deepEqual(record.subarray(RECORD_HEADER_BYTES), hex('efbfbd'));
    assert.equal(recordSizeBound('\ud800'), RECORD_HEADER_BYTES + 3);
  });

  test('an empty payload is refused', () => {
    assert.throws(() => encodeRecordInto(Buffer.alloc(16), 0, ''), RangeError);
    assert.throws(() => encodeRecord(Buffer.alloc(0)), RangeError);
  });

  test('too little room: RangeError, nothing written', () => {
    const buffer = Buffer.alloc(12, 0xee);
    assert.throws(() => encodeRecordInto(buffer, 0, 'hello'), /no room for a 5-byte record/);
    assert.deepEqual(buffer, Buffer.alloc(12, 0xee));
    // Room for the exact size but not the 3-bytes-per-unit bound: still written.
    assert.equal(encodeRecordInto(Buffer.alloc(13), 0, 'hello'), 13);
  });
});

describe('decoding what is not a record', () => {
  const BAD: Array<{ name: string; bytes: string; max: number; reason: RegExp }> = [
    { name: 'a CRC that does not match', bytes: '00000005 3610a687 68656c6c6f', max: 100, reason: /CRC-32 mismatch in a 5-byte record \(stored 3610a687, computed 3610a686\)/ },
    { name: 'a payload byte changed', bytes: '00000005 3610a686 68656c6c6e', max: 100, reason: /CRC-32 mismatch/ },
    { name: 'length 0 (zeros, as a file extended by a crash reads)', bytes: '00000000 00000000 0000', max: 100, reason: /length 0/ },
    { name: 'length 0 with a header alone', bytes: '00000000 00000000', max: 100, reason: /length 0/ },
    { name: 'a length over the limit', bytes: '00000006 00000000 68656c6c6f21', max: 5, reason: /length of 6 bytes, over the limit of 5/ },
    { name: 'a huge garbage length, before its payload could arrive', bytes: 'ffffffff 00000000 61', max: 1 << 20, reason: /length of 4294967295 bytes/ },
  ];
  for (const c of BAD) {
    test(`${c.name}: 'bad'`, () => {
      const bytes = hex(c.bytes);
      assert.equal(readRecord(bytes, 0, c.max), 'bad');
      assert.match(describeBadRecord(bytes, 0, c.max), c.reason);
    });
  }

  const INCOMPLETE: Array<{ name: string; bytes: string }> = [
    { name: 'nothing', bytes: '' },
    { name: 'part of a header', bytes: '000000' },
    { name: 'a header without its payload', bytes: '00000005 3610a686' },
    { name: 'a payload cut short', bytes: '00000005 3610a686 68656c6c' },
  ];
  for (const c of INCOMPLETE) {
    test(`${c.name}: 'incomplete'`, () => {
      assert.equal(readRecord(hex(c.bytes), 0, 100), 'incomplete');
    });
  }

  test('`end` limits the valid bytes: a record past it is incomplete', () => {
    const bytes = hex('00000005 3610a686 68656c6c6f');
    assert.equal(readRecord(bytes, 0, 100, 12), 'incomplete');
    assert.ok(typeof readRecord(bytes, 0, 100, 13) === 'object');
  });

  test('the payload is a view into the buffer, not a copy', () => {
    const bytes = hex('00000001 e8b7be43 61');
    const record = readRecord(bytes, 0, 100);
    assert.ok(typeof record === 'object');
    assert.equal(record.payload.buffer, bytes.buffer);
    assert.equal(record.payload.byteOffset, bytes.byteOffset + RECORD_HEADER_BYTES);
  });
});
