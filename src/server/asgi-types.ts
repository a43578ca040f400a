// The ASGI-style contract as TypeScript types (../shared/contract.md; asgiref's ASGI 3.0 specs).
//
// An application is `async (scope, receive, send) => void`. The server calls it once per HTTP
// request, once per WebSocket connection, and once for the lifespan of the process. Names are
// ASGI's, snake_case, unchanged, so the Python spec text documents these types too.

/** ASGI 3.0 application: called once per scope. */
export type Application = (scope: Scope, receive: Receive, send: Send) => Promise<void>;
/** Resolves with the next event for this scope. */
export type Receive = () => Promise<ReceiveEvent>;
/** Rejects once the connection is gone (ASGI: "send ... after the connection closed"). */
export type Send = (event: SendEvent) => Promise<void>;

/** `headers` as on the wire: latin1 strings; names lower-case in scopes, any case when sent. */
export type Headers = Array<[string, string]>;
/** `[host, port]` of a peer, or null when unknown (e.g. a Unix socket). */
export type Address = [string, number] | null;
/** Filled by the app during lifespan startup; each request scope gets a shallow copy. */
export type State = Record<string, unknown>;

export interface LifespanScope {
  type: 'lifespan';
  asgi: { version: '3.0'; spec_version: '2.0' };
  state: State;
}

/** Fields shared by HTTP and WebSocket scopes (ASGI "HTTP & WebSocket" spec, connection scope). */
export interface ConnectionScope {
  asgi: { version: '3.0'; spec_version: '2.3' };
  http_version: '1.0' | '1.1';
  /** Percent-decoded UTF-8 path. */
  path: string;
  /** The undecoded path from the request line. */
  raw_path: string;
  /** The undecoded query string, without the `?`. */
  query_string: string;
  root_path: string;
  headers: Headers;
  client: Address;
  server: Address;
  state: State;
}

export interface HttpScope extends ConnectionScope {
  type: 'http';
  method: string;
  /** `https` over TLS, or from a trusted proxy's X-Forwarded-Proto (--proxy-headers). */
  scheme: 'http' | 'https';
}

export interface WebSocketScope extends ConnectionScope {
  type: 'websocket';
  http_version: '1.1';
  /** `wss` over TLS, or from a trusted proxy's X-Forwarded-Proto (--proxy-headers). */
  scheme: 'ws' | 'wss';
  subprotocols: string[];
  extensions: { 'websocket.http.response': Record<string, never> };
}

export type Scope = LifespanScope | HttpScope | WebSocketScope;

// ---- events the application receives ----------------------------------------------------------

export interface LifespanStartupEvent { type: 'lifespan.startup' }
export interface LifespanShutdownEvent { type: 'lifespan.shutdown' }
export interface HttpRequestEvent { type: 'http.request'; body: Uint8Array; more_body: boolean }
export interface HttpDisconnectEvent { type: 'http.disconnect' }
export interface WebSocketConnectEvent { type: 'websocket.connect' }
/** Exactly one of `text` and `bytes` is present. */
export type WebSocketReceiveEvent =
  | { type: 'websocket.receive'; text: string; bytes?: undefined }
  | { type: 'websocket.receive'; bytes: Uint8Array; text?: undefined };
export interface WebSocketDisconnectEvent { type: 'websocket.disconnect'; code: number; reason: string }

export type ReceiveEvent =
  | LifespanStartupEvent | LifespanShutdownEvent
  | HttpRequestEvent | HttpDisconnectEvent
  | WebSocketConnectEvent | WebSocketReceiveEvent | WebSocketDisconnectEvent;

// ---- events the application sends (optional fields get ASGI's defaults) -----------------------

export interface LifespanStartupCompleteEvent { type: 'lifespan.startup.complete' }
export interface LifespanStartupFailedEvent { type: 'lifespan.startup.failed'; message?: string }
export interface LifespanShutdownCompleteEvent { type: 'lifespan.shutdown.complete' }
export interface LifespanShutdownFailedEvent { type: 'lifespan.shutdown.failed'; message?: string }
export interface HttpResponseStartEvent {
  type: 'http.response.start';
  status: number;
  headers?: Headers;
  trailers?: boolean;
}
export interface HttpResponseBodyEvent { type: 'http.response.body'; body?: Uint8Array; more_body?: boolean }
export interface WebSocketAcceptEvent { type: 'websocket.accept'; subprotocol?: string | null; headers?: Headers }
export type WebSocketSendEvent =
  | { type: 'websocket.send'; text: string; bytes?: undefined | null }
  | { type: 'websocket.send'; bytes: Uint8Array; text?: undefined | null };
export interface WebSocketCloseEvent { type: 'websocket.close'; code?: number; reason?: string }
export interface WebSocketHttpResponseStartEvent {
  type: 'websocket.http.response.start';
  status: number;
  headers?: Headers;
}
export interface WebSocketHttpResponseBodyEvent {
  type: 'websocket.http.response.body';
  body?: Uint8Array;
  more_body?: boolean;
}

export type SendEvent =
  | LifespanStartupCompleteEvent | LifespanStartupFailedEvent
  | LifespanShutdownCompleteEvent | LifespanShutdownFailedEvent
  | HttpResponseStartEvent | HttpResponseBodyEvent
  | WebSocketAcceptEvent | WebSocketSendEvent | WebSocketCloseEvent
  | WebSocketHttpResponseStartEvent | WebSocketHttpResponseBodyEvent;
