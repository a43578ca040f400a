// The errors of the Redis client, in three kinds that call for three different reactions:
//
//   - RespProtocolError: the bytes from the server broke RESP (or one of our bounds). The parser
//     throws it; the client then drops the connection, since nothing after a broken reply can be
//     matched to its command. A stable `code` names each violation, like the WebSocket codec's
//     WS_ERR_* codes (src/server/errors.ts).
//   - RedisReplyError: Redis answered, with an error (`-ERR ...`, `-WRONGTYPE ...`, RESP3's
//     `!` blob error). The command ran and failed, or was refused; the connection is fine. The
//     parser returns it as a value (it does not throw: a reply error inside an array, as EXEC
//     gives, is just an element); the client rejects that one command with it.
//   - RedisConnectionError: no answer from Redis. `mayHaveExecuted` says whether the command could
//     have run anyway (it was written before the connection was lost) or surely did not (it was
//     refused before being written: not connected, too many commands waiting).
//
// Nothing here carries a password: messages name the host, the port and the command only.

/** Stable names for every way a reply stream can break RESP or our bounds (see resp.ts). */
export const RespErrorCodes = {
  RESP_ERR_BAD_TYPE: 'a reply starts with a byte that is no RESP2/RESP3 type',
  RESP_ERR_BAD_LENGTH: 'a length is not a decimal integer in range (-1 only for RESP2 nulls)',
  RESP_ERR_BAD_VALUE: 'an integer, double, boolean, big number, null or verbatim string is malformed',
  RESP_ERR_MISSING_CRLF: 'a line or a bulk string is not followed by CR LF',
  RESP_ERR_LINE_TOO_LONG: 'a simple string, error or number line is longer than maxLineBytes',
  RESP_ERR_BULK_TOO_LONG: 'a bulk string announces more than maxBulkBytes',
  RESP_ERR_TOO_MANY_ELEMENTS: 'an array, set, map or push announces more than maxElements',
  RESP_ERR_TOO_DEEP: 'aggregates nest deeper than maxDepth',
  RESP_ERR_REPLY_TOO_BIG: 'one reply takes more than maxBufferedBytes',
  RESP_ERR_NESTED_PUSH: 'a push (>) appears inside another reply; it is top-level only',
} as const;

export type RespErrorCode = keyof typeof RespErrorCodes;

export class RespProtocolError extends Error {
  /** A stable name for the violation, e.g. `RESP_ERR_BAD_TYPE`. */
  readonly code: RespErrorCode;

  constructor(code: RespErrorCode, message: string) {
    super(message);
    this.name = 'RespProtocolError';
    this.code = code;
  }
}

/** Redis's own error reply: `-WRONGTYPE Operation against a key ...` has code `WRONGTYPE`. */
export class RedisReplyError extends Error {
  /**
   * The first word of the reply when it is in capitals (`ERR`, `WRONGTYPE`, `NOSCRIPT`, `WRONGPASS`,
   * `NOAUTH`, `BUSYGROUP`...), by Redis's convention; else `ERR`. A caller tests it rather than
   * the text: `NOSCRIPT` is how EVALSHA says "send me the script with EVAL".
   */
  readonly code: string;
  /** The command that earned it (its name, upper case), set by the client; '' from the parser. */
  command = '';

  constructor(text: string) {
    super(text);
    this.name = 'RedisReplyError';
    this.code = /^[A-Z][A-Z_]*(?= |$)/.exec(text)?.[0] ?? 'ERR';
  }
}

/** Every way a command gets no answer from Redis; see `mayHaveExecuted`. */
export const RedisConnectionErrorCodes = {
  /** Refused at once: the client has no ready connection (down, reconnecting, or not started). Not executed. */
  REDIS_ERR_NOT_CONNECTED: false,
  /** The connection was lost (socket closed or failed, or a protocol error) with the command in flight. */
  REDIS_ERR_CONNECTION_LOST: true,
  /** No reply within the command's timeout: the connection is dropped, as it can no longer be trusted. */
  REDIS_ERR_COMMAND_TIMEOUT: true,
  /** The TCP connection and handshake did not complete within connectTimeoutMs. */
  REDIS_ERR_CONNECT_TIMEOUT: false,
  /** Redis refused the handshake: AUTH (wrong password), SELECT (no such db) or HELLO. */
  REDIS_ERR_HANDSHAKE: false,
  /** Refused at once: maxPending commands already await their replies. Not executed. */
  REDIS_ERR_TOO_MANY_PENDING: false,
  /** Refused at once: a blocking command (XREAD BLOCK, BLPOP...) holds this connection. Not executed. */
  REDIS_ERR_BLOCKED: false,
  /** close() was called: in flight, it may have run; issued after, it did not. */
  REDIS_ERR_CLOSED: true,
} as const;

export type RedisConnectionErrorCode = keyof typeof RedisConnectionErrorCodes;

export class RedisConnectionError extends Error {
  readonly code: RedisConnectionErrorCode;
  /**
   * true when the command was written to a connection that was then lost: Redis may have run it
   * (an XADD may be in the stream) and the caller must not assume either outcome. false when the
   * command was never written.
   */
  readonly mayHaveExecuted: boolean;

  constructor(code: RedisConnectionErrorCode, message: string, options?: { cause?: unknown; mayHaveExecuted?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RedisConnectionError';
    this.code = code;
    this.mayHaveExecuted = options?.mayHaveExecuted ?? RedisConnectionErrorCodes[code];
  }
}
