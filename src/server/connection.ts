// The WebSocket connection state machine (RFC 6455 §5.4-§5.5, §7), sans-I/O: frames in, messages
// and bytes to send out. It never touches a socket; its owner (ws-transport.ts) feeds it received
// bytes and writes what it asks to write, so every rule here is testable with bytes alone.
//
// Theory of operation. States (§4.1, §7.1):
//
//   CONNECTING ──accept()──▶ OPEN ──close() by us──▶ CLOSING ──peer's Close──▶ CLOSED
//                             │                         └──timeout / EOF──────▶ CLOSED (1006)
//                             ├──peer's Close: we answer with a Close─────────▶ CLOSED
//                             ├──protocol error: we send Close(code)──────────▶ CLOSED
//                             └──EOF or transport error───────────────────────▶ CLOSED (1006)
//
// The closing handshake (§7.1.1-§7.1.4):
//
//   peer-initiated                          server-initiated
//   client ──Close(c)──▶ server             server ──Close(c)──▶ client
//   client ◀──Close(c)── server             server ◀──Close(c')─ client
//   server ends TCP first (§7.1.1)          server ends TCP; or, if no Close arrives in time,
//                                           the owner's timer destroys the socket
//
// Entering CLOSED calls `onClose(code, reason)` exactly once: that is what the application sees
// as `websocket.disconnect`. After it, `onEndTransport()` tells the owner to end TCP.
//
// Data messages (§5.4, §8.1). A text message's bytes are checked for UTF-8 as they arrive: each
// fragment, and within a large frame each chunk of it (the parser's onPayloadPart), so invalid
// text fails with 1007 at its first bad bytes. With permessage-deflate negotiated (RFC 7692), a
// message whose first frame has RSV1 set is compressed: its frames are collected (their wire size
// bounded), inflated when the last arrives (deflate-codec.ts, its output bounded by the same
// `maxMessageSize`) and validated as UTF-8 then; the handler only ever sees plain messages.
import { CloseCode, isValidWireCloseCode } from './close-codes.js';
import type { PerMessageDeflate } from './deflate-codec.js';
import { ProtocolError } from './errors.js';
import { FrameParser, Opcode, encodeClosePayload, encodeFrame, isControlOpcode, type Frame, type FrameParserOptions } from './frames.js';
import { Utf8Validator } from './utf8.js';
import { isUtf8 } from 'node:buffer';

export const ConnectionState = {
  CONNECTING: 0,
  OPEN: 1,
  CLOSING: 2,
  CLOSED: 3,
} as const;
export type ConnectionState = (typeof ConnectionState)[keyof typeof ConnectionState];

export interface ConnectionHandler {
  /** Bytes for the peer, in order. */
  onWrite(bytes: Buffer): void;
  /** A complete message: text already validated and decoded, binary as bytes. */
  onMessage(data: string | Buffer): void;
  /** A pong arrived (the heartbeat's proof of life). */
  onPong?(payload: Buffer): void;
  /** Any frame arrived (also proof of life). */
  onActivity?(): void;
  /** The peer broke a rule: the connection is being failed with `error.closeCode` (for logs). */
  onProtocolError?(error: ProtocolError): void;
  /** The connection is over, with the code and reason the application will see. Called once. */
  onClose(code: number, reason: string): void;
  /** The owner should end the TCP connection now (after writing what was written). */
  onEndTransport(): void;
}

export interface ConnectionOptions {
  /** Largest message, in bytes, summed over its fragments (`--ws-max-size`). */
  maxMessageSize: number;
  /** Most fragments one message may have: bounds the count, not only the bytes (see `ws`). */
  maxFragments: number;
}

export class WebSocketConnection implements FrameParserOptions {
  state: ConnectionState = ConnectionState.CONNECTING;
  /** We are the server: client frames must be masked (§5.1). */
  readonly expectMasked = true;
  /** permessage-deflate as negotiated in the handshake, or null: no compression either way. */
  readonly deflate: PerMessageDeflate | null;
  /** RSV1 marks a compressed message once permessage-deflate is negotiated (RFC 7692 §6). */
  readonly rsv1Allowed: boolean;
  private readonly handler: ConnectionHandler;
  private readonly options: ConnectionOptions;
  private readonly parser: FrameParser;
  // The fragmented message being assembled (§5.4); `messageOpcode` 0 when none is open.
  private messageOpcode = 0;
  private messageCompressed = false;
  private messageSize = 0;
  private fragments: Buffer[] = [];
  /**
   * Created for the first text that needs it (fragmented, or arriving in parts) only: most
   * connections never do, and memory per connection counts. Reset when a new text message starts.
   */
  private utf8: Utf8Validator | null = null;
  /** The frame being received is uncompressed text: its parts are validated as they arrive. */
  private frameIsPlainText = false;
  /** Bytes of the frame being received already validated, part by part (onPayloadPart). */
  private frameValidated = 0;

  constructor(handler: ConnectionHandler, options: ConnectionOptions, deflate: PerMessageDeflate | null = null) {
    this.handler = handler;
    this.options = options;
    this.deflate = deflate;
    this.rsv1Allowed = deflate !== null;
    // The connection is the parser's sink itself (expectMasked, onHeader, onFrame below), so no
    // closures are allocated per connection.
    this.parser = new FrameParser(this);
  }

  /** The handshake is done (101 written): frames may flow. */
  accept(): void {
    if (this.state === ConnectionState.CONNECTING) this.state = ConnectionState.OPEN;
  }

  /** Feeds bytes received from the peer. */
  receiveData(chunk: Buffer): void {
    if (this.state !== ConnectionState.OPEN && this.state !== ConnectionState.CLOSING) return;
    try {
      this.parser.push(chunk);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      this.fail(error);
    }
  }

  /** The peer ended TCP (or it broke) without completing the closing handshake: 1006 (§7.1.5). */
  receiveEof(): void {
    if (this.state === ConnectionState.CLOSED) return;
    this.parser.halt();
    this.state = ConnectionState.CLOSED;
    this.handler.onClose(CloseCode.ABNORMAL_CLOSURE, '');
    this.handler.onEndTransport();
  }

  /** Sends a text message as one unfragmented frame (compressed when negotiated and worth it). */
  sendText(text: string): void {
    this.sendFrameBytes(this.deflate?.textFrame(text) ?? encodeFrame(Opcode.TEXT, Buffer.from(text)));
  }

  /** Sends a binary message as one unfragmented frame (compressed when negotiated and worth it). */
  sendBinary(bytes: Uint8Array): void {
    this.sendFrameBytes(this.deflate?.frame(Opcode.BINARY, bytes) ?? encodeFrame(Opcode.BINARY, bytes));
  }

  /** Sends an already encoded data frame (a broadcast encoded once for many connections). */
  sendFrameBytes(frame: Buffer): void {
    if (this.state !== ConnectionState.OPEN) throw new Error('the WebSocket is not open');
    this.handler.onWrite(frame);
  }

  ping(payload: Uint8Array = EMPTY): void {
    if (this.state === ConnectionState.OPEN) this.handler.onWrite(encodeFrame(Opcode.PING, payload));
  }

  /**
   * Starts the closing handshake (§7.1.2): sends Close and waits in CLOSING for the peer's Close.
   * The owner bounds the wait with a timer and calls `receiveEof()` when it expires.
   */
  close(code: number = CloseCode.NORMAL, reason = ''): void {
    if (!isValidWireCloseCode(code)) throw new RangeError(`close code ${code} must not be sent (RFC 6455 §7.4)`);
    if (this.state !== ConnectionState.OPEN) return; // before the 101 there is no WebSocket to close
    this.handler.onWrite(encodeFrame(Opcode.CLOSE, encodeClosePayload(code, truncateReason(reason))));
    this.state = ConnectionState.CLOSING;
  }

  /**
   * "Fail the WebSocket Connection" (§7.1.7): send Close with the error's code, report that code to
   * the application, and end TCP without waiting for an answer. The error's stable name
   * (`WS_ERR_...`) goes to the handler first, so logs name the rule that was broken.
   */
  private fail(error: ProtocolError): void {
    const code = error.closeCode;
    const reason = error.message;
    this.parser.halt();
    this.handler.onProtocolError?.(error);
    if (this.state === ConnectionState.OPEN) {
      this.handler.onWrite(encodeFrame(Opcode.CLOSE, encodeClosePayload(code, truncateReason(reason))));
    }
    this.state = ConnectionState.CLOSED;
    this.handler.onClose(code, reason);
    this.handler.onEndTransport();
  }

  /** Rules that can be judged from a header alone, checked before its payload is buffered. */
  onHeader(_fin: boolean, opcode: number, length: number, rsv1: boolean): void {
    if (isControlOpcode(opcode)) return; // the parser already checked control frames (§5.5)
    const continuation = opcode === Opcode.CONTINUATION;
    if (continuation) {
      // §5.4: a continuation frame only continues a fragmented message already started.
      if (this.messageOpcode === 0) throw new ProtocolError('WS_ERR_UNEXPECTED_CONTINUATION', 'continuation frame without a message to continue');
      if (this.fragments.length + 1 > this.options.maxFragments) {
        throw new ProtocolError('WS_ERR_TOO_MANY_FRAGMENTS', `message has more than ${this.options.maxFragments} fragments`);
      }
    } else if (this.messageOpcode !== 0) {
      // §5.4: fragments of one message are not interleaved with another data message.
      throw new ProtocolError('WS_ERR_EXPECTED_CONTINUATION', 'a new data frame arrived before the fragmented message ended');
    }
    // Our bound: close with 1009 as soon as the announced bytes would exceed the limit. For a
    // compressed message the limit is on its inflated size (checked as it inflates); its wire
    // size may exceed it by what deflate adds to incompressible data, no more.
    const compressed = continuation ? this.messageCompressed : rsv1;
    const total = (continuation ? this.messageSize : 0) + length;
    const limit = compressed ? maxCompressedSize(this.options.maxMessageSize) : this.options.maxMessageSize;
    if (total > limit) {
      throw new ProtocolError('WS_ERR_MESSAGE_TOO_BIG', `message of ${total} bytes or more exceeds the ${this.options.maxMessageSize}-byte limit`);
    }
    // §8.1, fail fast: the text of an uncompressed text message is validated as it arrives.
    this.frameIsPlainText = !compressed && (opcode === Opcode.TEXT || (continuation && this.messageOpcode === Opcode.TEXT));
    this.frameValidated = 0;
    // A new text message starts from a clean validator (created on first use: see below).
    if (this.frameIsPlainText && !continuation) this.utf8?.reset();
  }

  /** Part of a large frame's payload, as it arrives: validate text now, keep the rest for onFrame. */
  onPayloadPart(part: Buffer): void {
    if (!this.frameIsPlainText) return;
    if (!(this.utf8 ??= new Utf8Validator()).update(part)) throw new ProtocolError('WS_ERR_INVALID_UTF8', 'text message is not valid UTF-8');
    this.frameValidated += part.length;
  }

  /** A complete frame from the parser. */
  onFrame(frame: Frame): void {
    this.handler.onActivity?.();
    switch (frame.opcode) {
      case Opcode.TEXT:
      case Opcode.BINARY:
      case Opcode.CONTINUATION:
        this.handleDataFrame(frame);
        return;
      case Opcode.PING:
        // §5.5.2-§5.5.3: answer a ping with a pong carrying the same payload, as soon as
        // practical, also between the fragments of a message (control frames may interleave).
        if (this.state === ConnectionState.OPEN) this.handler.onWrite(encodeFrame(Opcode.PONG, frame.payload));
        return;
      case Opcode.PONG:
        // §5.5.3: an unsolicited pong is allowed and needs no answer; it only proves liveness.
        this.handler.onPong?.(frame.payload);
        return;
      case Opcode.CLOSE:
        this.handleClose(frame.payload);
        return;
    }
  }

  private handleDataFrame(frame: Frame): void {
    // §7.1.2: after sending a Close we may discard data until the peer's Close arrives.
    const discard = this.state !== ConnectionState.OPEN;
    const validated = this.frameValidated;
    this.frameValidated = 0;
    const whole = frame.opcode !== Opcode.CONTINUATION && frame.fin; // a message in one frame
    if (whole && !frame.rsv1 && validated === 0) {
      // Fast path: a whole message in one frame. Validate with Node's native UTF-8 check.
      if (discard) return;
      if (frame.opcode === Opcode.TEXT) {
        if (!isUtf8(frame.payload)) throw new ProtocolError('WS_ERR_INVALID_UTF8', 'text message is not valid UTF-8');
        this.handler.onMessage(frame.payload.toString('utf8'));
      } else {
        // Copy: the payload may be a view into a socket chunk that the parser no longer owns.
        this.handler.onMessage(Buffer.from(frame.payload));
      }
      return;
    }
    if (frame.opcode !== Opcode.CONTINUATION) {
      this.messageOpcode = frame.opcode;
      this.messageCompressed = frame.rsv1;
      this.messageSize = 0;
    }
    const isText = this.messageOpcode === Opcode.TEXT;
    const compressed = this.messageCompressed;
    // §8.1, fail fast: validate each fragment as it arrives, not the whole message at its end
    // (minus what was validated part by part already). Compressed text is validated once inflated.
    if (isText && !compressed) {
      if (!(this.utf8 ??= new Utf8Validator()).update(frame.payload.subarray(validated))) throw new ProtocolError('WS_ERR_INVALID_UTF8', 'text message is not valid UTF-8');
      if (frame.fin && !this.utf8!.atBoundary) throw new ProtocolError('WS_ERR_INVALID_UTF8', 'text message ends inside a UTF-8 sequence');
    }
    if (!frame.fin) {
      this.messageSize += frame.payload.length;
      if (!discard) this.fragments.push(Buffer.from(frame.payload)); // copy: see above
      return;
    }
    // The message's last frame: hand the message over.
    const fragments = this.fragments;
    this.fragments = [];
    this.messageOpcode = 0;
    this.messageSize = 0;
    if (discard) return;
    // The message is decoded, joined or inflated before onFrame returns: no copy of this one.
    fragments.push(frame.payload);
    if (compressed) return this.deliverCompressed(isText, fragments);
    const data = fragments.length === 1 ? fragments[0]! : Buffer.concat(fragments);
    this.handler.onMessage(isText ? data.toString('utf8') : data);
  }

  /** RFC 7692 §7.2.2: inflate a compressed message (bounded), validate it, hand it over. */
  private deliverCompressed(isText: boolean, parts: Buffer[]): void {
    const data = this.deflate!.inflate(parts, this.options.maxMessageSize);
    if (!isText) return this.handler.onMessage(data);
    if (!isUtf8(data)) throw new ProtocolError('WS_ERR_INVALID_UTF8', 'text message is not valid UTF-8');
    this.handler.onMessage(data.toString('utf8'));
  }

  /** §5.5.1 and §7.1.5: parse the peer's Close, answer it (or complete ours), then end TCP. */
  private handleClose(payload: Buffer): void {
    let code: number = CloseCode.NO_STATUS_RECEIVED; // §7.1.5: no code in the frame → 1005
    let reason = '';
    if (payload.length === 1) throw new ProtocolError('WS_ERR_INVALID_CLOSE_PAYLOAD', 'a close frame payload cannot be 1 byte long');
    if (payload.length >= 2) {
      code = payload.readUInt16BE(0);
      if (!isValidWireCloseCode(code)) throw new ProtocolError('WS_ERR_INVALID_CLOSE_CODE', `close code ${code} must not be sent`);
      const reasonBytes = payload.subarray(2);
      if (!isUtf8(reasonBytes)) throw new ProtocolError('WS_ERR_INVALID_UTF8', 'close reason is not valid UTF-8');
      reason = reasonBytes.toString('utf8');
    }
    this.parser.halt(); // nothing after a Close frame is read (§5.5.1)
    if (this.state === ConnectionState.OPEN) {
      // §5.5.1: answer with a Close, echoing the code we received (none if there was none).
      const echo = code === CloseCode.NO_STATUS_RECEIVED ? null : code;
      this.handler.onWrite(encodeFrame(Opcode.CLOSE, encodeClosePayload(echo)));
    }
    this.state = ConnectionState.CLOSED;
    this.handler.onClose(code, reason);
    this.handler.onEndTransport(); // §7.1.1: the server closes TCP first
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * The most wire bytes a compressed message within `maxMessageSize` may take: deflate can expand
 * incompressible data a little (zlib's deflateBound() allows about 1/8 more for its least
 * efficient settings, plus a few bytes), so a message at the limit is not refused for that.
 */
export function maxCompressedSize(maxMessageSize: number): number {
  return maxMessageSize + Math.ceil(maxMessageSize / 8) + 64;
}

/** A Close payload holds at most 125 bytes: a 2-byte code and 123 bytes of reason (§5.5). */
export function truncateReason(reason: string): string {
  if (Buffer.byteLength(reason) <= 123) return reason;
  let kept = '';
  let size = 0;
  for (const character of reason) { // whole code points, so the cut never splits a character
    size += Buffer.byteLength(character);
    if (size > 123) break;
    kept += character;
  }
  return kept;
}
