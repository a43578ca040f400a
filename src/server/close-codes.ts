// Close codes of RFC 6455 §7.4, one named table with what each means, and the rule (§7.4.1,
// §7.4.2 and the IANA registry) for which codes may appear in a Close frame on the wire.

/** RFC 6455 §7.4.1 status codes, plus the IANA-registered 1012-1014. */
export const CloseCode = {
  /** 1000: the purpose of the connection has been fulfilled. */
  NORMAL: 1000,
  /** 1001: an endpoint is going away (server shutting down, page navigated away). */
  GOING_AWAY: 1001,
  /** 1002: the peer broke the protocol (bad framing, bad close frame...). */
  PROTOCOL_ERROR: 1002,
  /** 1003: a type of data the endpoint cannot accept (e.g. binary where only text makes sense). */
  UNSUPPORTED_DATA: 1003,
  /** 1005: reserved; no status code was present. Never sent; reported to the app. */
  NO_STATUS_RECEIVED: 1005,
  /** 1006: reserved; the connection closed without a Close frame. Never sent; reported to the app. */
  ABNORMAL_CLOSURE: 1006,
  /** 1007: data inconsistent with the message type (non-UTF-8 text). */
  INVALID_PAYLOAD: 1007,
  /** 1008: a message violated the endpoint's policy (generic; e.g. "slow consumer"). */
  POLICY_VIOLATION: 1008,
  /** 1009: a message too big to process. */
  MESSAGE_TOO_BIG: 1009,
  /** 1010: (client only) the server did not negotiate a required extension. */
  MANDATORY_EXTENSION: 1010,
  /** 1011: the server met an unexpected condition (the app raised). */
  INTERNAL_ERROR: 1011,
  /** 1012: the service is restarting (IANA; uvicorn sends it on shutdown). */
  SERVICE_RESTART: 1012,
  /** 1013: try again later (IANA). */
  TRY_AGAIN_LATER: 1013,
  /** 1014: bad gateway (IANA). */
  BAD_GATEWAY: 1014,
  /** 1015: reserved; the TLS handshake failed. Never sent. */
  TLS_HANDSHAKE: 1015,
} as const;

/**
 * May `code` appear in a Close frame on the wire? (§7.4.1, §7.4.2)
 * - below 1000: not used;
 * - 1000-1003, 1007-1014: defined (1012-1014 by IANA);
 * - 1004 (reserved), 1005, 1006, 1015 (reserved "must not be sent"): invalid on the wire;
 * - 1016-2999: reserved for future RFCs, invalid until defined;
 * - 3000-3999 (registered with IANA) and 4000-4999 (private use): valid;
 * - 5000 and up: not defined, invalid.
 */
export function isValidWireCloseCode(code: number): boolean {
  if (code >= 3000 && code <= 4999) return true;
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014);
}
