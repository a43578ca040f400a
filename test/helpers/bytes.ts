// Byte fixtures for the codec's unit tests: hex strings as in RFC 6455's examples, and payloads
// with a recognisable pattern.
import assert from 'node:assert/strict';

/** Bytes from a hex string; spaces are ignored, so fixtures can be grouped as the RFC shows them. */
export function hex(text: string): Buffer {
  const clean = text.replace(/\s+/g, '');
  assert.match(clean, /^([0-9a-fA-F]{2})*$/, `bad hex fixture: ${text}`);
  return Buffer.from(clean, 'hex');
}

/** A recognisable payload of `n` bytes (0, 1, 2, ... 255, 0, ...). */
export function pattern(n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = i & 0xff;
  return out;
}
