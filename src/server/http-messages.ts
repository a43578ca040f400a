// HTTP/1.1 message helpers shared by both dispatchers, as pure functions over strings: the header
// grammar of RFC 9110 §5 (which names and values an application may send, and whether a
// comma-separated header holds a token), and the bytes of a plain response written by hand on a
// raw socket (RFC 9112 §4-§6), for the answers node:http cannot write because it has already
// handed the socket over (a refused WebSocket handshake, the WebSocket denial response).
//
// Nothing here touches a socket; ws-transport.ts writes what these functions build.
import { STATUS_CODES } from 'node:http';
import type { Headers } from './asgi-types.js';

/** RFC 9110 §5.6.2 token characters: header names, subprotocol names, Connection options. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Header values are latin1 on the wire (the contract), so nothing above U+00FF; and no CR, LF or
 * NUL, which would let a value inject headers (response splitting).
 */
const SAFE_VALUE = /^[^\r\n\0\u0100-\uffff]*$/;

/** Is `value` a non-empty string of RFC 9110 §5.6.2 token characters? */
export function isToken(value: unknown): boolean {
  return typeof value === 'string' && TOKEN.test(value);
}

/** Does a comma-separated header value hold `token` (case-insensitive, RFC 9110 §5.6.1)? */
export function hasToken(value: string | undefined, token: string): boolean {
  if (!value) return false;
  for (const part of value.split(',')) if (part.trim().toLowerCase() === token) return true;
  return false;
}

/** A request header as one string: node:http gives repeated ones (not joined by it) as an array. */
export function headerValue(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

/** Validates application-supplied headers, so that no app can split a response. Throws TypeError. */
export function checkHeaders(headers: Headers, what: string): void {
  for (const pair of headers) {
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') {
      throw new TypeError(`${what}: headers must be [name, value] pairs of strings`);
    }
    if (!TOKEN.test(pair[0])) throw new TypeError(`${what}: invalid header name ${JSON.stringify(pair[0])}`);
    if (!SAFE_VALUE.test(pair[1])) throw new TypeError(`${what}: invalid characters in the value of header ${pair[0]}`);
  }
}

/**
 * The head of a plain HTTP response on a raw socket (refusals before the 101, and the app's
 * denial response). Close-delimited unless the app gave a Content-Length: the socket is ended
 * after the body, so no framing is needed (RFC 9112 §6.3 item 8). `Connection: close` is added
 * unless the headers already carry a Connection header.
 */
export function plainResponseHead(status: number, headers: Headers): string {
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
  for (const [name, value] of headers) head += `${name}: ${value}\r\n`;
  if (!headers.some(([name]) => name.toLowerCase() === 'connection')) head += 'Connection: close\r\n';
  return head + '\r\n';
}

/** A complete short plain-text HTTP response: `message` and a newline, with its Content-Length. */
export function plainResponse(status: number, message: string, headers: Headers = []): string {
  const body = message + '\n';
  return plainResponseHead(status, [
    ...headers,
    ['Content-Type', 'text/plain; charset=utf-8'],
    ['Content-Length', String(Buffer.byteLength(body))],
  ]) + body;
}
