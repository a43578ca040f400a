// The opening handshake of RFC 6455 §4.2, as pure functions over request headers: does this
// request ask for a WebSocket at all, is it a valid handshake, and what are the bytes of the 101.
//
//   GET /chat HTTP/1.1                           HTTP/1.1 101 Switching Protocols
//   Host: server.example.com                     Upgrade: websocket
//   Upgrade: websocket                  ──▶      Connection: Upgrade
//   Connection: Upgrade                          Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
//   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==  Sec-WebSocket-Protocol: chat   (if the app chose one)
//   Sec-WebSocket-Version: 13
//   Sec-WebSocket-Protocol: chat, superchat
//
// Theory of operation. A request reaches the WebSocket dispatcher only if `isWebSocketRequest`
// says it asks for one (HTTP/1.1, `Connection: upgrade`, `Upgrade: websocket`); anything else is
// served as plain HTTP, since RFC 9110 §7.8 lets a server ignore an Upgrade it will not honour
// (and requires it to in HTTP/1.0). The dispatcher then runs `checkHandshake` once: a verdict of
// refusal carries the status, message and headers to answer with; a valid handshake carries the
// key and the offered subprotocols. The 101 (`acceptResponse`) is written only when the
// application sends `websocket.accept`; until then it may still refuse (403) or answer with any
// HTTP response of its own. ws-transport.ts writes all of these bytes: nothing here does I/O.
import { createHash } from 'node:crypto';
import type { Headers } from './asgi-types.js';
import { hasToken, headerValue } from './http-messages.js';

/** §1.3: the GUID appended to the client's key before hashing. */
export const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** §4.2.2 item 5.4: base64(SHA-1(key + GUID)). */
export function computeAcceptKey(key: string): string {
  return createHash('sha1').update(key + WEBSOCKET_GUID).digest('base64');
}

export type HandshakeResult =
  | { ok: true; key: string; subprotocols: string[] }
  | { ok: false; status: number; message: string; headers?: Headers };

/** The headers of a request as node:http parsed them (names lower-case). */
export interface RequestHead {
  method?: string | undefined;
  httpVersion: string;
  headers: Record<string, string | string[] | undefined>;
  /** Alternating names and values as received (node:http's `rawHeaders`). */
  rawHeaders: string[];
}

/**
 * Does this request ask to become a WebSocket? HTTP/1.1 or later (RFC 9110 §7.8: "A server MUST
 * ignore an Upgrade header field that is received in an HTTP/1.0 request"), with the "upgrade"
 * connection option (§7.8: a sender of Upgrade must list it in Connection; without it the Upgrade
 * is not addressed to us) and an Upgrade naming "websocket". Every other request, whatever its
 * headers, is an ordinary HTTP request.
 */
export function isWebSocketRequest(request: RequestHead): boolean {
  return isHttp11OrLater(request.httpVersion)
    && hasToken(headerValue(request.headers, 'connection'), 'upgrade')
    && hasToken(headerValue(request.headers, 'upgrade'), 'websocket');
}

function isHttp11OrLater(version: string): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major > 1 || (major === 1 && minor >= 1);
}

/**
 * A base64 string that decodes to 16 bytes: 22 characters and "==". The last character also
 * carries 4 padding bits that a canonical encoder sets to 0; decoders ignore them, and so do we
 * (as `ws` does), or clients with sloppy encoders would be refused for no gain.
 */
const KEY_PATTERN = /^[A-Za-z0-9+/]{22}==$/;

/** Checks a request against the client handshake rules of §4.2.1, in the RFC's order. */
export function checkHandshake(request: RequestHead): HandshakeResult {
  const header = (name: string): string | undefined => headerValue(request.headers, name);
  // §4.2.1 item 1: "An HTTP/1.1 or higher GET request".
  if (request.method !== 'GET') return { ok: false, status: 405, message: 'a WebSocket handshake must be a GET request', headers: [['allow', 'GET']] };
  if (!isHttp11OrLater(request.httpVersion)) return { ok: false, status: 400, message: 'a WebSocket handshake needs HTTP/1.1' };
  // Item 2: a Host header field.
  if (!header('host')) return { ok: false, status: 400, message: 'missing Host header' };
  // Items 3 and 4: Upgrade holding "websocket", Connection holding "Upgrade", both case-insensitive.
  if (!hasToken(header('upgrade'), 'websocket')) return { ok: false, status: 400, message: 'the Upgrade header must name "websocket"' };
  if (!hasToken(header('connection'), 'upgrade')) return { ok: false, status: 400, message: 'the Connection header must hold the "upgrade" token' };
  // Item 6: version 13; otherwise §4.4 asks for 426 and the versions we speak.
  if (header('sec-websocket-version') !== '13') {
    return { ok: false, status: 426, message: 'unsupported WebSocket version (this server speaks 13)', headers: [['sec-websocket-version', '13']] };
  }
  // Item 5: "a base64-encoded value that, when decoded, is 16 bytes in length".
  const key = header('sec-websocket-key')?.trim();
  if (!key || !KEY_PATTERN.test(key)) return { ok: false, status: 400, message: 'Sec-WebSocket-Key must be the base64 encoding of 16 bytes' };
  return { ok: true, key, subprotocols: offeredSubprotocols(request.rawHeaders) };
}

/**
 * Item 8: the subprotocols offered, "ordered by preference", over all Sec-WebSocket-Protocol
 * lines in the order received (a client may split its list over several lines); empty elements
 * of the comma-separated list are skipped (RFC 9110 §5.6.1).
 */
export function offeredSubprotocols(rawHeaders: string[]): string[] {
  const offered: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== 'sec-websocket-protocol') continue;
    for (const part of rawHeaders[i + 1]!.split(',')) {
      const name = part.trim();
      if (name) offered.push(name);
    }
  }
  return offered;
}

/**
 * §4.2.2 item 5: the 101 response, with the app's subprotocol and extra headers (which the caller
 * has validated: checkHeaders and isToken in http-messages.ts).
 */
export function acceptResponse(key: string, subprotocol: string | null, extraHeaders: Headers): string {
  let head = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
    + `Sec-WebSocket-Accept: ${computeAcceptKey(key)}\r\n`;
  if (subprotocol !== null) head += `Sec-WebSocket-Protocol: ${subprotocol}\r\n`;
  for (const [name, value] of extraHeaders) head += `${name}: ${value}\r\n`;
  return head + '\r\n';
}
