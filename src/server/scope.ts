// Builds the connection scope shared by `http` and `websocket` scopes (ASGI "HTTP & WebSocket"
// spec, "HTTP Connection Scope") from a request that node:http parsed.
import type { IncomingMessage } from 'node:http';
import type { ConnectionScope, Headers, State } from './asgi-types.js';

/** The connection-scope fields that come from the request (the caller adds type, asgi, version). */
export type ScopeBase = Omit<ConnectionScope, 'asgi' | 'http_version'>;

export function connectionScope(request: IncomingMessage, rootPath: string, state: State): ScopeBase {
  const target = request.url ?? '/';
  const question = target.indexOf('?');
  const rawPath = question === -1 ? target : target.slice(0, question);
  const raw = request.rawHeaders;
  const headers: Headers = new Array(raw.length / 2);
  for (let i = 0; i < raw.length; i += 2) headers[i / 2] = [raw[i]!.toLowerCase(), raw[i + 1]!];
  const socket = request.socket;
  return {
    path: decodePath(rawPath),
    raw_path: rawPath,
    query_string: question === -1 ? '' : target.slice(question + 1),
    root_path: rootPath,
    headers,
    client: socket.remoteAddress ? [socket.remoteAddress, socket.remotePort ?? 0] : null,
    server: socket.localAddress ? [socket.localAddress, socket.localPort ?? 0] : null,
    // ASGI lifespan "state": each connection gets a shallow copy of what startup stored.
    state: { ...state },
  };
}

/**
 * Percent-decodes a path as UTF-8. decodeURIComponent throws on a malformed escape or invalid
 * UTF-8; like Python's urllib.parse.unquote (what uvicorn uses), we never reject a path for that:
 * bad escapes stay as they are and invalid bytes become U+FFFD.
 */
export function decodePath(rawPath: string): string {
  if (!rawPath.includes('%')) return rawPath;
  try {
    return decodeURIComponent(rawPath);
  } catch {
    const bytes: number[] = [];
    for (let i = 0; i < rawPath.length; i++) {
      const hex = rawPath.slice(i + 1, i + 3);
      if (rawPath[i] === '%' && /^[0-9A-Fa-f]{2}$/.test(hex)) {
        bytes.push(parseInt(hex, 16));
        i += 2;
      } else {
        for (const byte of Buffer.from(rawPath[i]!)) bytes.push(byte);
      }
    }
    return Buffer.from(bytes).toString('utf8');
  }
}
