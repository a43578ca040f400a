// Tests for src/server/errors.ts: every protocol violation's stable `WS_ERR_*` name and the close
// code it earns (RFC 6455 §7.4.1), and what a ProtocolError carries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCodes, ProtocolError } from '../src/server/errors.js';

test('ErrorCodes: every name and its close code, exactly', () => {
  assert.deepEqual({ ...ErrorCodes }, {
    WS_ERR_UNMASKED_FRAME: 1002,
    WS_ERR_MASKED_FRAME: 1002,
    WS_ERR_RSV_BITS_SET: 1002,
    WS_ERR_RSV1_ON_CONTROL_FRAME: 1002,
    WS_ERR_RSV1_ON_CONTINUATION: 1002,
    WS_ERR_RESERVED_OPCODE: 1002,
    WS_ERR_CONTROL_FRAME_TOO_LONG: 1002,
    WS_ERR_FRAGMENTED_CONTROL_FRAME: 1002,
    WS_ERR_LENGTH_MSB_SET: 1002,
    WS_ERR_NON_MINIMAL_LENGTH: 1002,
    WS_ERR_UNEXPECTED_CONTINUATION: 1002,
    WS_ERR_EXPECTED_CONTINUATION: 1002,
    WS_ERR_INVALID_CLOSE_PAYLOAD: 1002,
    WS_ERR_INVALID_CLOSE_CODE: 1002,
    WS_ERR_INVALID_UTF8: 1007,
    WS_ERR_INVALID_COMPRESSED_DATA: 1007,
    WS_ERR_MESSAGE_TOO_BIG: 1009,
    WS_ERR_TOO_MANY_FRAGMENTS: 1009,
  });
});

test('ProtocolError carries its name, the close code the name maps to, and the message', () => {
  const error = new ProtocolError('WS_ERR_INVALID_UTF8', 'text message is not valid UTF-8');
  assert.ok(error instanceof Error);
  assert.equal(error.name, 'ProtocolError');
  assert.equal(error.code, 'WS_ERR_INVALID_UTF8');
  assert.equal(error.closeCode, 1007);
  assert.equal(error.message, 'text message is not valid UTF-8');
  assert.equal(String(error), 'ProtocolError: text message is not valid UTF-8');
});
