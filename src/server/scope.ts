// Builds the connection scope shared by `http` and `websocket` scopes (ASGI "HTTP & WebSocket"
// spec, "HTTP Connection Scope") from a request that node:http (or node:https) parsed.
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Address, ConnectionScope, Headers, State } from './asgi-types.js';
import { applyProxyHeaders, type TrustedProxies } from './proxy-headers.js';

/**
 * The connection-scope fields that come from the request (the caller adds type, asgi, version),
 * and the scheme as HTTP names it: a WebSocket scope turns it into `ws` / `wss`.
 */
export type ScopeBase = Omit<ConnectionScope, 'asgi' | 'http_version'> & { scheme: 'http' | 'https' };

/** What the server settings say about building scopes. */
export interface ScopeSettings {
  rootPath: string;
  /** Peers whose X-Forwarded-For/-Proto are believed (--proxy-headers); null: nobody's. */
  trustedProxies: TrustedProxies | null;
}

export function connectionScope(request: IncomingMessage, settings: ScopeSettings, state: State): ScopeBase {
  const target = request.url ?? '/';
  const question = target.indexOf('?');
  const rawPath = question === -1 ? target : target.slice(0, question);
  const raw = request.rawHeaders;
  const headers: Headers = new Array(raw.length / 2);
  for (let i = 0; i < raw.length; i += 2) headers[i / 2] = [raw[i]!.toLowerCase(), raw[i + 1]!];
  const socket = request.socket;
  let client: Address = socket.remoteAddress ? [socket.remoteAddress, socket.remotePort ?? 0] : null;
  // A TLSSocket (node:https) says `encrypted`; a plain socket has no such field.
  let secure = (socket as Partial<TLSSocket>).encrypted === true;
  if (settings.trustedProxies !== null && client !== null) {
    ({ client, secure } = applyProxyHeaders(headers, client, secure, settings.trustedProxies));
  }
  return {
    scheme: secure ? 'https' : 'http',
    path: decodePath(rawPath),
    raw_path: rawPath,
    query_string: question === -1 ? '' : target.slice(question + 1),
    root_path: settings.rootPath,
    headers,
    client,
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

/** `host:port` of a scope's `client`, for log lines (`?` when there is none). */
export function describeClient(client: Address): string {
  return client === null ? '?' : `${client[0]}:${client[1]}`;
}
