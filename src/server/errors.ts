// Typed protocol errors. Every way a peer can break RFC 6455 is one `ProtocolError` carrying the
// close code the connection must close with and a stable string code that tests and logs can
// name (the way `ws` does with `WS_ERR_*`). Errors map to a close code here and nowhere else.
import { CloseCode } from './close-codes.js';

/** Stable names for every protocol violation we detect, with the close code each one earns. */
export const ErrorCodes = {
  UNMASKED_FRAME: CloseCode.PROTOCOL_ERROR, // §5.1: client frames must be masked
  RSV_BITS_SET: CloseCode.PROTOCOL_ERROR, // §5.2: RSV1-3 must be 0 without a negotiated extension
  RESERVED_OPCODE: CloseCode.PROTOCOL_ERROR, // §5.2: opcodes 0x3-0x7 and 0xB-0xF are reserved
  CONTROL_FRAME_TOO_LONG: CloseCode.PROTOCOL_ERROR, // §5.5: control payloads are at most 125 bytes
  FRAGMENTED_CONTROL_FRAME: CloseCode.PROTOCOL_ERROR, // §5.5: control frames must not be fragmented
  LENGTH_MSB_SET: CloseCode.PROTOCOL_ERROR, // §5.2: the 64-bit length's most significant bit must be 0
  NON_MINIMAL_LENGTH: CloseCode.PROTOCOL_ERROR, // §5.2: "the minimal number of bytes MUST be used"
  UNEXPECTED_CONTINUATION: CloseCode.PROTOCOL_ERROR, // §5.4: continuation with no message started
  EXPECTED_CONTINUATION: CloseCode.PROTOCOL_ERROR, // §5.4: new data frame inside a fragmented message
  INVALID_CLOSE_PAYLOAD: CloseCode.PROTOCOL_ERROR, // §5.5.1: a close body of 1 byte
  INVALID_CLOSE_CODE: CloseCode.PROTOCOL_ERROR, // §7.4: a code that must not be sent
  INVALID_UTF8: CloseCode.INVALID_PAYLOAD, // §8.1: text must be valid UTF-8
  MESSAGE_TOO_BIG: CloseCode.MESSAGE_TOO_BIG, // our bound: --ws-max-size
  TOO_MANY_FRAGMENTS: CloseCode.MESSAGE_TOO_BIG, // our bound on fragment *count*, not only bytes
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export class ProtocolError extends Error {
  /** The close code this violation earns (RFC 6455 §7.4.1). */
  readonly closeCode: number;
  /** A stable name for the violation, e.g. `UNMASKED_FRAME`. */
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'ProtocolError';
    this.code = code;
    this.closeCode = ErrorCodes[code];
  }
}
