// Tests for src/server/close-codes.ts: the CloseCode table (RFC 6455 §7.4.1 and the IANA registry)
// and isValidWireCloseCode, the rule (§7.4.1, §7.4.2) for which codes may appear in a Close frame.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CloseCode, isValidWireCloseCode } from '../src/server/close-codes.js';

const wireCases: { code: number; valid: boolean; why: string }[] = [
  { code: 0, valid: false, why: 'below 1000: not used' },
  { code: 1, valid: false, why: 'below 1000: not used' },
  { code: 999, valid: false, why: 'below 1000: not used' },
  { code: 1000, valid: true, why: 'normal closure' },
  { code: 1001, valid: true, why: 'going away' },
  { code: 1002, valid: true, why: 'protocol error' },
  { code: 1003, valid: true, why: 'unsupported data' },
  { code: 1004, valid: false, why: 'reserved' },
  { code: 1005, valid: false, why: 'no status: must not be sent' },
  { code: 1006, valid: false, why: 'abnormal closure: must not be sent' },
  { code: 1007, valid: true, why: 'invalid payload data' },
  { code: 1008, valid: true, why: 'policy violation' },
  { code: 1009, valid: true, why: 'message too big' },
  { code: 1010, valid: true, why: 'mandatory extension' },
  { code: 1011, valid: true, why: 'internal error' },
  { code: 1012, valid: true, why: 'service restart (IANA)' },
  { code: 1013, valid: true, why: 'try again later (IANA)' },
  { code: 1014, valid: true, why: 'bad gateway (IANA)' },
  { code: 1015, valid: false, why: 'TLS handshake: must not be sent' },
  { code: 1016, valid: false, why: 'reserved for future RFCs' },
  { code: 2000, valid: false, why: 'reserved for future RFCs' },
  { code: 2999, valid: false, why: 'reserved for future RFCs' },
  { code: 3000, valid: true, why: 'first IANA-registered code' },
  { code: 3999, valid: true, why: 'last IANA-registered code' },
  { code: 4000, valid: true, why: 'first private-use code' },
  { code: 4999, valid: true, why: 'last private-use code' },
  { code: 5000, valid: false, why: 'undefined' },
  { code: 65535, valid: false, why: 'largest 16-bit value: undefined' },
];

for (const c of wireCases) {
  test(`isValidWireCloseCode(${c.code}) is ${c.valid}: ${c.why}`, () => {
    assert.equal(isValidWireCloseCode(c.code), c.valid);
  });
}

test('isValidWireCloseCode over the whole 16-bit range: exactly 1000-1003, 1007-1014, 3000-4999', () => {
  const valid: number[] = [];
  for (let code = 0; code <= 0xffff; code++) if (isValidWireCloseCode(code)) valid.push(code);
  const expected = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014];
  for (let code = 3000; code <= 4999; code++) expected.push(code);
  assert.deepEqual(valid, expected);
});

test('CloseCode names the §7.4.1 and IANA codes with their numbers', () => {
  assert.deepEqual({ ...CloseCode }, {
    NORMAL: 1000,
    GOING_AWAY: 1001,
    PROTOCOL_ERROR: 1002,
    UNSUPPORTED_DATA: 1003,
    NO_STATUS_RECEIVED: 1005,
    ABNORMAL_CLOSURE: 1006,
    INVALID_PAYLOAD: 1007,
    POLICY_VIOLATION: 1008,
    MESSAGE_TOO_BIG: 1009,
    MANDATORY_EXTENSION: 1010,
    INTERNAL_ERROR: 1011,
    SERVICE_RESTART: 1012,
    TRY_AGAIN_LATER: 1013,
    BAD_GATEWAY: 1014,
    TLS_HANDSHAKE: 1015,
  });
});

test('the codes reported to the application but never sent are invalid on the wire', () => {
  for (const code of [CloseCode.NO_STATUS_RECEIVED, CloseCode.ABNORMAL_CLOSURE, CloseCode.TLS_HANDSHAKE]) {
    assert.equal(isValidWireCloseCode(code), false, String(code));
  }
});
