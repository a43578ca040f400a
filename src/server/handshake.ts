// The opening handshake of RFC 6455 §4.2, as pure functions over request headers: is this a
// WebSocket upgrade, is it a valid one, and what are the bytes of the answer.
//
//   GET /chat HTTP/1.1                           HTTP/1.1 101 Switching Protocols
//   Host: server.example.com                     Upgrade: websocket
//   Upgrade: websocket                  ──▶      Connection: Upgrade
//   Connection: Upgrade                          Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
//   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==  Sec-WebSocket-Protocol: chat   (if the app chose one)
//   Sec-WebSocket-Version: 13
//   Sec-WebSocket-Protocol: chat, superchat
//
// The 101 is written only when the application sends `websocket.accept`; until then the
// application may still refuse (403) or answer with any HTTP response of its own.
import { createHash } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Headers } from './asgi-types.js';

/** §1.3: the GUID appended to the client's key before hashing. */
export const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** §4.2.2 item 5.4: base64(SHA-1(key + GUID)). */
export function computeAcceptKey(key: string): string {
  return createHash('sha1').update(key + WEBSOCKET_GUID).digest('base64');
}

/** Does a comma-separated header value hold `token` (case-insensitive, RFC 9110 §5.6.1)? */
export function hasToken(value: string | undefined, token: string): boolean {
  if (!value) return false;
  for (const part of value.split(',')) if (part.trim().toLowerCase() === token) return true;
  return false;
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
 * A base64 string that decodes to 16 bytes: 22 characters and "==". The last character also
 * carries 4 padding bits that a canonical encoder sets to 0; decoders ignore them, and so do we
 * (as `ws` does), or clients with sloppy encoders would be refused for no gain.
 */
const KEY_PATTERN = /^[A-Za-z0-9+/]{22}==$/;

/** Checks a request against the client handshake rules of §4.2.1, in the RFC's order. */
export function checkHandshake(request: RequestHead): HandshakeResult {
  const header = (name: string): string | undefined => {
    const value = request.headers[name];
    return Array.isArray(value) ? value.join(', ') : value;
  };
  // §4.2.1 item 1: "An HTTP/1.1 or higher GET request".
  if (request.method !== 'GET') return { ok: false, status: 405, message: 'a WebSocket handshake must be a GET request', headers: [['allow', 'GET']] };
  if (request.httpVersion !== '1.1') return { ok: false, status: 400, message: 'a WebSocket handshake needs HTTP/1.1' };
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

/** Item 8: the subprotocols offered, "ordered by preference", over all Sec-WebSocket-Protocol lines. */
function offeredSubprotocols(rawHeaders: string[]): string[] {
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

/** RFC 9110 §5.6.2 token characters, for header names and subprotocols the application supplies. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

export function isToken(value: unknown): boolean {
  return typeof value === 'string' && TOKEN.test(value);
}
/**
 * Header values are latin1 on the wire (the contract), so nothing above U+00FF; and no CR, LF or
 * NUL, which would let a value inject headers (response splitting).
 */
const SAFE_VALUE = /^[^\r\n\0\u0100-\uffff]*$/;

/** Validates application-supplied headers, so that no app can split a response. Throws Error. */
export function checkHeaders(headers: Headers, what: string): void {
  for (const pair of headers) {
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') {
      throw new TypeError(`${what}: headers must be [name, value] pairs of strings`);
    }
    if (!TOKEN.test(pair[0])) throw new TypeError(`${what}: invalid header name ${JSON.stringify(pair[0])}`);
    if (!SAFE_VALUE.test(pair[1])) throw new TypeError(`${what}: invalid characters in the value of header ${pair[0]}`);
  }
}

/** §4.2.2 item 5: the 101 response, with the app's subprotocol and extra headers. */
export function acceptResponse(key: string, subprotocol: string | null, extraHeaders: Headers): string {
  let head = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
    + `Sec-WebSocket-Accept: ${computeAcceptKey(key)}\r\n`;
  if (subprotocol !== null) head += `Sec-WebSocket-Protocol: ${subprotocol}\r\n`;
  for (const [name, value] of extraHeaders) head += `${name}: ${value}\r\n`;
  return head + '\r\n';
}

/**
 * The head of a plain HTTP response on a raw socket (refusals before the 101, and the app's
 * denial response). Close-delimited unless the app gave a Content-Length: the socket is ended
 * after the body, so no framing is needed (RFC 9112 §6.3 item 8).
 */
export function plainResponseHead(status: number, headers: Headers): string {
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
  for (const [name, value] of headers) head += `${name}: ${value}\r\n`;
  if (!headers.some(([name]) => name.toLowerCase() === 'connection')) head += 'Connection: close\r\n';
  return head + '\r\n';
}

/** A complete short plain-text HTTP response, for refusing a handshake. */
export function plainResponse(status: number, message: string, headers: Headers = []): string {
  const body = message + '\n';
  return plainResponseHead(status, [
    ...headers,
    ['Content-Type', 'text/plain; charset=utf-8'],
    ['Content-Length', String(Buffer.byteLength(body))],
  ]) + body;
}
