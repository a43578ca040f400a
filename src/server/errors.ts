// Typed protocol errors. Every way a peer can break RFC 6455 is one `ProtocolError` carrying the
// close code the connection must close with and a stable string code that tests and logs can
// name, in the style of `ws`'s `WS_ERR_*` codes. Errors map to a close code here and nowhere else.
// The code travels with the error to the close path: ws-transport.ts logs, at debug level,
//   closing 1002 WS_ERR_UNMASKED_FRAME: client frames must be masked
// and the application's `websocket.disconnect` carries the close code and the message.
// The rules of RFC 7692 (permessage-deflate) are here too, under the same scheme.
import { CloseCode } from './close-codes.js';

/** Stable names for every protocol violation we detect, with the close code each one earns. */
export const ErrorCodes = {
  WS_ERR_UNMASKED_FRAME: CloseCode.PROTOCOL_ERROR, // §5.1: client frames must be masked
  WS_ERR_MASKED_FRAME: CloseCode.PROTOCOL_ERROR, // §5.1: server frames must not be (a client's rule)
  WS_ERR_RSV_BITS_SET: CloseCode.PROTOCOL_ERROR, // §5.2: RSV1-3 must be 0 without a negotiated extension
  WS_ERR_RSV1_ON_CONTROL_FRAME: CloseCode.PROTOCOL_ERROR, // RFC 7692 §6.1: control frames are never compressed
  WS_ERR_RSV1_ON_CONTINUATION: CloseCode.PROTOCOL_ERROR, // RFC 7692 §6.1: only a message's first frame has RSV1
  WS_ERR_RESERVED_OPCODE: CloseCode.PROTOCOL_ERROR, // §5.2: opcodes 0x3-0x7 and 0xB-0xF are reserved
  WS_ERR_CONTROL_FRAME_TOO_LONG: CloseCode.PROTOCOL_ERROR, // §5.5: control payloads are at most 125 bytes
  WS_ERR_FRAGMENTED_CONTROL_FRAME: CloseCode.PROTOCOL_ERROR, // §5.5: control frames must not be fragmented
  WS_ERR_LENGTH_MSB_SET: CloseCode.PROTOCOL_ERROR, // §5.2: the 64-bit length's most significant bit must be 0
  WS_ERR_NON_MINIMAL_LENGTH: CloseCode.PROTOCOL_ERROR, // §5.2: "the minimal number of bytes MUST be used"
  WS_ERR_UNEXPECTED_CONTINUATION: CloseCode.PROTOCOL_ERROR, // §5.4: continuation with no message started
  WS_ERR_EXPECTED_CONTINUATION: CloseCode.PROTOCOL_ERROR, // §5.4: new data frame inside a fragmented message
  WS_ERR_INVALID_CLOSE_PAYLOAD: CloseCode.PROTOCOL_ERROR, // §5.5.1: a close body of 1 byte
  WS_ERR_INVALID_CLOSE_CODE: CloseCode.PROTOCOL_ERROR, // §7.4: a code that must not be sent
  WS_ERR_INVALID_UTF8: CloseCode.INVALID_PAYLOAD, // §8.1: text must be valid UTF-8
  WS_ERR_INVALID_COMPRESSED_DATA: CloseCode.INVALID_PAYLOAD, // RFC 7692 §7.2.2: the payload must inflate
  WS_ERR_MESSAGE_TOO_BIG: CloseCode.MESSAGE_TOO_BIG, // our bound: --ws-max-size (inflated size, when compressed)
  WS_ERR_TOO_MANY_FRAGMENTS: CloseCode.MESSAGE_TOO_BIG, // our bound on fragment *count*, not only bytes
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export class ProtocolError extends Error {
  /** The close code this violation earns (RFC 6455 §7.4.1). */
  readonly closeCode: number;
  /** A stable name for the violation, e.g. `WS_ERR_UNMASKED_FRAME`. */
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'ProtocolError';
    this.code = code;
    this.closeCode = ErrorCodes[code];
  }
}
