// A raw WebSocket (RFC 6455) and HTTP/1.1 test client on node:net, for the integration tests.
//
// It speaks the protocol byte by byte so that the tests can see exactly what the server writes and
// can send what a well-behaved client never would: unmasked frames, reserved bits and opcodes,
// oversized or fragmented control frames, bad UTF-8, bad close codes, frames cut into single bytes.
//
//   connectRaw(port, {path, headers, key, protocols})  opening handshake (§4.1); resolves with the
//                                                     HTTP response, whatever its status
//   ws.send(opcode, payload, {fin, rsv, mask})         one frame (§5.2), masked with a random key
//   ws.sendRaw(bytes)                                  anything at all
//   ws.nextFrame(timeoutMs)                            the next frame from the server (§5.2 decoding,
//                                                     frames split across TCP chunks are reassembled)
//   ws.waitClose(timeoutMs)                            frames up to the server's close frame
//   ws.waitEnd(timeoutMs)                              the server ending the TCP connection
//
// openHttp(port) gives the same byte reader for plain HTTP: write requests, read responses
// (content-length, chunked or close-delimited bodies), pipelining included. Both speak TLS when
// given a CA certificate to trust (`connectRaw(port, {ca})`, `openHttp(port, ca)`).
//
// waitForOutput / waitForProbe wait for a line in the server's output: the fixtures under
// test/fixtures/ report what the application saw as `PROBE <id> <what> <json>`.
import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import type { RunningServer } from './server.js';

/** RFC 6455 §1.3: the GUID appended to the key before hashing. */
export const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** RFC 6455 §5.2 opcodes. */
export const Op = {
  CONTINUATION: 0x0,
  TEXT: 0x1,
  BINARY: 0x2,
  CLOSE: 0x8,
  PING: 0x9,
  PONG: 0xa,
} as const;

/** RFC 6455 §4.2.2: base64(SHA-1(key + GUID)). */
export function acceptFor(key: string): string {
  return createHash('sha1').update(key + WS_GUID).digest('base64');
}

/** A fresh client key: base64 of 16 random bytes (§4.1). */
export function newKey(): string {
  return randomBytes(16).toString('base64');
}

// ---- a byte reader over a socket ----------------------------------------------------------------

/** A parser looks at the buffered bytes and returns a value plus how many bytes it used, or null
 *  when it needs more. */
type Parser<T> = (buf: Buffer, ended: boolean) => { value: T; used: number } | null;

/**
 * Buffers everything a socket delivers and lets callers await parsed values in order. It never
 * loses bytes between reads, so frames and responses split across (or packed into) TCP chunks are
 * handled the same way.
 */
export class ByteReader {
  private buf: Buffer = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  /** The server sent FIN (or the socket closed). */
  ended = false;
  /** The socket fully closed. */
  closed = false;
  /** The first socket error (ECONNRESET, EPIPE...), kept for messages; never thrown by itself. */
  error: Error | null = null;
  private readonly closedPromise: Promise<void>;

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
      this.wake();
    });
    socket.on('end', () => { this.ended = true; this.wake(); });
    socket.on('error', (err) => { this.error ??= err; });
    this.closedPromise = new Promise((resolve) => {
      socket.on('close', () => {
        this.ended = true;
        this.closed = true;
        this.wake();
        resolve();
      });
    });
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Bytes received and not yet consumed. */
  get buffered(): Buffer {
    return this.buf;
  }

  /** Resolves with the next parsed value; rejects on timeout or if the stream ends first. */
  async read<T>(parse: Parser<T>, timeoutMs: number, what: string): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const result = parse(this.buf, this.ended);
      if (result) {
        this.buf = this.buf.subarray(result.used);
        return result.value;
      }
      if (this.ended) {
        const why = this.error ? ` (${this.error.message})` : '';
        throw new Error(`connection ended before ${what}${why}; unread bytes: ${hex(this.buf)}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; unread bytes: ${hex(this.buf)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
  }

  /** Resolves once the peer ended the stream (FIN or close); rejects after `timeoutMs`. */
  async waitEnd(timeoutMs: number, what = 'the server to end the connection'): Promise<void> {
    await this.read((_buf, ended) => (ended ? { value: undefined, used: 0 } : null), timeoutMs, what);
  }

  /** Resolves once the socket is fully closed; rejects after `timeoutMs`. */
  async waitClosed(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`socket not closed after ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([this.closedPromise, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Reads everything until the peer ends the stream. */
  async readToEnd(timeoutMs: number): Promise<Buffer> {
    return this.read((buf, ended) => (ended ? { value: Buffer.from(buf), used: buf.length } : null), timeoutMs, 'the end of the stream');
  }
}

/** The first bytes of a buffer in hex, for error messages. */
export function hex(buf: Buffer, max = 64): string {
  const shown = buf.subarray(0, max).toString('hex').replace(/(..)/g, '$1 ').trim();
  return buf.length > max ? `${shown} ... (${buf.length} bytes)` : shown || '(none)';
}

/** A TCP connection, or with `ca` a TLS one that trusts only that CA (for wss:// and https://). */
export async function openSocket(port: number, host = '127.0.0.1', ca?: Buffer): Promise<Socket> {
  const socket = ca === undefined ? connect({ port, host }) : connectTls({ port, host, ca });
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    socket.once(ca === undefined ? 'connect' : 'secureConnect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

/** Writes and resolves once the bytes were handed to the kernel (errors resolve too: the tests
 *  look at what the server answered, not at EPIPE when it already hung up). */
export function write(socket: Socket, bytes: Buffer | string): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed || socket.writableEnded) { resolve(); return; }
    socket.write(bytes, () => resolve());
  });
}

// ---- HTTP/1.1 responses ---------------------------------------------------------------------------

export interface HttpResponse {
  /** e.g. `HTTP/1.1` */
  version: string;
  status: number;
  statusLine: string;
  /** Headers as on the wire, in order. */
  rawHeaders: Array<[string, string]>;
  /** Lower-case name → value (repeated headers joined with `, `). */
  headers: Record<string, string>;
  /** The decoded body (chunks joined). */
  body: Buffer;
  /** The body bytes exactly as they came (chunk framing included). */
  rawBody: Buffer;
  /** The whole response as it came. */
  raw: Buffer;
  /** How the body was delimited. */
  framing: 'none' | 'content-length' | 'chunked' | 'close';
  /** False when the connection ended before the body was complete (truncated response). */
  complete: boolean;
}

interface Head {
  version: string;
  status: number;
  statusLine: string;
  rawHeaders: Array<[string, string]>;
  headers: Record<string, string>;
  length: number;
}

function parseHead(buf: Buffer): Head | null {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const statusLine = lines[0]!;
  const match = /^(HTTP\/\d\.\d) (\d{3})(?: .*)?$/.exec(statusLine);
  if (!match) throw new Error(`malformed status line: ${JSON.stringify(statusLine)}`);
  const rawHeaders: Array<[string, string]> = [];
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`malformed header line: ${JSON.stringify(line)}`);
    const name = line.slice(0, colon);
    const value = line.slice(colon + 1).trim();
    rawHeaders.push([name, value]);
    const lower = name.toLowerCase();
    headers[lower] = lower in headers ? `${headers[lower]}, ${value}` : value;
  }
  return { version: match[1]!, status: Number(match[2]), statusLine, rawHeaders, headers, length: end + 4 };
}

/** Decodes a chunked body from `buf` (§7.1 of RFC 9112); null if incomplete. */
function parseChunked(buf: Buffer): { body: Buffer; used: number } | null {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = buf.indexOf('\r\n', at);
    if (lineEnd < 0) return null;
    const sizeText = buf.subarray(at, lineEnd).toString('latin1').split(';')[0]!.trim();
    if (!/^[0-9a-fA-F]+$/.test(sizeText)) throw new Error(`malformed chunk size ${JSON.stringify(sizeText)} in ${hex(buf)}`);
    const size = parseInt(sizeText, 16);
    at = lineEnd + 2;
    if (size === 0) {
      // Trailer section, then an empty line.
      for (;;) {
        const trailerEnd = buf.indexOf('\r\n', at);
        if (trailerEnd < 0) return null;
        const empty = trailerEnd === at;
        at = trailerEnd + 2;
        if (empty) return { body: Buffer.concat(parts), used: at };
      }
    }
    if (buf.length < at + size + 2) return null;
    parts.push(buf.subarray(at, at + size));
    if (buf.subarray(at + size, at + size + 2).toString('latin1') !== '\r\n') {
      throw new Error(`chunk of ${size} bytes not followed by CRLF: ${hex(buf.subarray(at))}`);
    }
    at += size + 2;
  }
}

/** A parser for one HTTP response. `method` matters for HEAD (no body whatever the headers). */
export function responseParser(method = 'GET'): Parser<HttpResponse> {
  return (buf, ended) => {
    const head = parseHead(buf);
    if (!head) return null;
    const rest = buf.subarray(head.length);
    const make = (body: Buffer, bodyLen: number, framing: HttpResponse['framing'], complete: boolean) => ({
      value: {
        version: head.version,
        status: head.status,
        statusLine: head.statusLine,
        rawHeaders: head.rawHeaders,
        headers: head.headers,
        body,
        rawBody: Buffer.from(rest.subarray(0, bodyLen)),
        raw: Buffer.from(buf.subarray(0, head.length + bodyLen)),
        framing,
        complete,
      },
      used: head.length + bodyLen,
    });
    const noBody = method === 'HEAD' || head.status === 101 || head.status === 204 || head.status === 304 || (head.status >= 100 && head.status < 200);
    if (noBody) return make(Buffer.alloc(0), 0, 'none', true);
    if (/\bchunked\b/i.test(head.headers['transfer-encoding'] ?? '')) {
      const chunked = parseChunked(rest);
      if (chunked) return make(Buffer.from(chunked.body), chunked.used, 'chunked', true);
      if (!ended) return null;
      // Truncated: decode what is there as best we can, for the assertion message.
      return make(Buffer.from(rest), rest.length, 'chunked', false);
    }
    if (head.headers['content-length'] !== undefined) {
      const length = Number(head.headers['content-length']);
      if (rest.length >= length) return make(Buffer.from(rest.subarray(0, length)), length, 'content-length', true);
      if (!ended) return null;
      return make(Buffer.from(rest), rest.length, 'content-length', false);
    }
    if (!ended) return null;
    return make(Buffer.from(rest), rest.length, 'close', true);
  };
}

/** A plain HTTP connection: write requests, read responses in order. */
export interface HttpConnection {
  socket: Socket;
  reader: ByteReader;
  write(bytes: Buffer | string): Promise<void>;
  /** The next response; `method` is the request's (HEAD has no body). */
  readResponse(timeoutMs?: number, method?: string): Promise<HttpResponse>;
  close(): void;
}

export async function openHttp(port: number, ca?: Buffer): Promise<HttpConnection> {
  const socket = await openSocket(port, '127.0.0.1', ca);
  const reader = new ByteReader(socket);
  return {
    socket,
    reader,
    write: (bytes) => write(socket, bytes),
    readResponse: (timeoutMs = 5000, method = 'GET') => reader.read(responseParser(method), timeoutMs, `an HTTP response to ${method}`),
    close: () => { socket.destroy(); },
  };
}

/** One request on a fresh connection; resolves with its response and closes the socket. */
export async function httpOnce(port: number, request: string | Buffer, timeoutMs = 5000, method = 'GET'): Promise<HttpResponse> {
  const conn = await openHttp(port);
  try {
    await conn.write(request);
    return await conn.readResponse(timeoutMs, method);
  } finally {
    conn.close();
  }
}

// ---- WebSocket frames ---------------------------------------------------------------------------

export interface Frame {
  fin: boolean;
  /** The three RSV bits as a number 0-7 (RSV1 = 4). */
  rsv: number;
  opcode: number;
  masked: boolean;
  /** How the length was encoded: 0 (7-bit), 2 (16-bit) or 8 (64-bit) extra bytes (§5.2). */
  lengthBytes: 0 | 2 | 8;
  payload: Buffer;
}

export interface SendOptions {
  fin?: boolean;
  /** RSV bits 0-7 (RSV1 = 4, RSV2 = 2, RSV3 = 1). */
  rsv?: number;
  /** Clients must mask (§5.3); false sends the payload in the clear to provoke a 1002. */
  mask?: boolean;
}

/** Encodes one frame (§5.2) the way a client does, or breaks the rules when told to. */
export function encodeFrame(opcode: number, payload: Buffer | string = Buffer.alloc(0), options: SendOptions = {}): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const fin = options.fin ?? true;
  const rsv = options.rsv ?? 0;
  const mask = options.mask ?? true;
  const length = data.length;
  let header: Buffer;
  if (length < 126) {
    header = Buffer.alloc(2);
    header[1] = length;
  } else if (length < 0x10000) {
    header = Buffer.alloc(4);
    header[1] = 126;
    header.writeUInt16BE(length, 2);
  } else {
    header = Buffer.alloc(10);
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(length), 2);
  }
  header[0] = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f);
  if (!mask) return Buffer.concat([header, data]);
  header[1] = header[1]! | 0x80;
  const key = randomBytes(4);
  const masked = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) masked[i] = data[i]! ^ key[i & 3]!;
  return Buffer.concat([header, key, masked]);
}

/** Decodes one frame from the front of `buf` (§5.2); null until it is all there. */
export function parseFrame(buf: Buffer): { value: Frame; used: number } | null {
  if (buf.length < 2) return null;
  const b0 = buf[0]!;
  const b1 = buf[1]!;
  const masked = (b1 & 0x80) !== 0;
  let length = b1 & 0x7f;
  let at = 2;
  let lengthBytes: 0 | 2 | 8 = 0;
  if (length === 126) {
    if (buf.length < 4) return null;
    length = buf.readUInt16BE(2);
    at = 4;
    lengthBytes = 2;
  } else if (length === 127) {
    if (buf.length < 10) return null;
    const big = buf.readBigUInt64BE(2);
    if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`server frame claims ${big} bytes`);
    length = Number(big);
    at = 10;
    lengthBytes = 8;
  }
  let key: Buffer | null = null;
  if (masked) {
    if (buf.length < at + 4) return null;
    key = buf.subarray(at, at + 4);
    at += 4;
  }
  if (buf.length < at + length) return null;
  const payload = Buffer.from(buf.subarray(at, at + length));
  if (key) for (let i = 0; i < length; i++) payload[i] = payload[i]! ^ key[i & 3]!;
  return {
    value: { fin: (b0 & 0x80) !== 0, rsv: (b0 >> 4) & 7, opcode: b0 & 0x0f, masked, lengthBytes, payload },
    used: at + length,
  };
}

/** A close frame's payload: 2-byte code then UTF-8 reason (§5.5.1); empty payload → no code. */
export function closePayload(code?: number, reason = ''): Buffer {
  if (code === undefined) return Buffer.alloc(0);
  const buf = Buffer.alloc(2);
  buf.writeUInt16BE(code, 0);
  return Buffer.concat([buf, Buffer.from(reason, 'utf8')]);
}

export interface CloseInfo {
  /** The code in the server's close frame, or null when its payload was empty. */
  code: number | null;
  reason: string;
  /** Non-close frames that came before the close frame. */
  before: Frame[];
  frame: Frame;
}

export interface ConnectOptions {
  path?: string;
  /** Extra or replacing request headers (a value of null leaves that default header out). */
  headers?: Record<string, string | null>;
  /** The Sec-WebSocket-Key to send (default: a fresh valid one). */
  key?: string;
  /** Sent as `Sec-WebSocket-Protocol: a, b`. */
  protocols?: string[];
  /** Request line's method and version (default GET, HTTP/1.1). */
  method?: string;
  httpVersion?: string;
  timeoutMs?: number;
  /** Connect over TLS (wss://), trusting this CA certificate. */
  ca?: Buffer;
}

export interface RawWebSocket {
  /** The server's HTTP response to the upgrade (status 101 when accepted). */
  response: HttpResponse;
  status: number;
  headers: Record<string, string>;
  key: string;
  socket: Socket;
  reader: ByteReader;
  send(opcode: number, payload?: Buffer | string, options?: SendOptions): Promise<void>;
  sendText(text: string): Promise<void>;
  sendBinary(bytes: Buffer): Promise<void>;
  /** A (masked) close frame with the given code and reason; no code → empty payload. */
  sendClose(code?: number, reason?: string): Promise<void>;
  sendRaw(bytes: Buffer): Promise<void>;
  nextFrame(timeoutMs?: number): Promise<Frame>;
  /** Reads frames until the server's close frame; rejects if the TCP connection ends first. */
  waitClose(timeoutMs?: number): Promise<CloseInfo>;
  /** Resolves when the server ends the TCP connection. */
  waitEnd(timeoutMs?: number): Promise<void>;
  /** Drops the TCP connection at once (no close frame). */
  destroy(): void;
}

/** Opens a TCP connection, sends the opening handshake and reads the server's HTTP response. */
export async function connectRaw(port: number, options: ConnectOptions = {}): Promise<RawWebSocket> {
  const key = options.key ?? newKey();
  const defaults: Record<string, string | null> = {
    Host: `127.0.0.1:${port}`,
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': key,
    'Sec-WebSocket-Version': '13',
  };
  if (options.protocols) defaults['Sec-WebSocket-Protocol'] = options.protocols.join(', ');
  const merged: Record<string, string | null> = { ...defaults };
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    // Replace a default case-insensitively, so `connection` overrides `Connection`.
    for (const existing of Object.keys(merged)) if (existing.toLowerCase() === name.toLowerCase()) delete merged[existing];
    merged[name] = value;
  }
  const lines = [`${options.method ?? 'GET'} ${options.path ?? '/'} ${options.httpVersion ?? 'HTTP/1.1'}`];
  for (const [name, value] of Object.entries(merged)) if (value !== null) lines.push(`${name}: ${value}`);
  const socket = await openSocket(port, '127.0.0.1', options.ca);
  const reader = new ByteReader(socket);
  await write(socket, `${lines.join('\r\n')}\r\n\r\n`);
  let response: HttpResponse;
  try {
    response = await reader.read(responseParser(options.method ?? 'GET'), options.timeoutMs ?? 5000, 'the handshake response');
  } catch (err) {
    socket.destroy();
    throw err;
  }

  const ws: RawWebSocket = {
    response,
    status: response.status,
    headers: response.headers,
    key,
    socket,
    reader,
    send: (opcode, payload = Buffer.alloc(0), sendOptions = {}) => write(socket, encodeFrame(opcode, payload, sendOptions)),
    sendText: (text) => write(socket, encodeFrame(Op.TEXT, text)),
    sendBinary: (bytes) => write(socket, encodeFrame(Op.BINARY, bytes)),
    sendClose: (code, reason) => write(socket, encodeFrame(Op.CLOSE, closePayload(code, reason))),
    sendRaw: (bytes) => write(socket, bytes),
    nextFrame: (timeoutMs = 5000) => reader.read((buf) => parseFrame(buf), timeoutMs, 'a frame from the server'),
    async waitClose(timeoutMs = 5000) {
      const before: Frame[] = [];
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const left = Math.max(1, deadline - Date.now());
        let frame: Frame;
        try {
          frame = await reader.read((buf) => parseFrame(buf), left, 'a close frame from the server');
        } catch (err) {
          const seen = before.map((f) => `opcode ${f.opcode} ${JSON.stringify(f.payload.toString('utf8').slice(0, 40))}`).join('; ');
          throw new Error(`${(err as Error).message}${seen ? `; frames before: ${seen}` : ''}`);
        }
        if (frame.opcode !== Op.CLOSE) { before.push(frame); continue; }
        const code = frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : null;
        return { code, reason: frame.payload.subarray(2).toString('utf8'), before, frame };
      }
    },
    waitEnd: (timeoutMs = 5000) => reader.waitEnd(timeoutMs),
    destroy: () => { socket.destroy(); },
  };
  return ws;
}

// ---- what the server process prints ------------------------------------------------------------

/** Resolves with the first match of `pattern` in the server's output (stdout + stderr), as soon as
 *  it is printed; rejects after `timeoutMs`, or if the server exits first, saying what was awaited. */
export function waitForOutput(server: RunningServer, pattern: RegExp, timeoutMs = 5000, what = String(pattern)): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const streams = [server.proc.stdout!, server.proc.stderr!];
    const done = () => {
      clearTimeout(timer);
      for (const stream of streams) stream.off('data', check);
      server.proc.off('exit', onExit);
    };
    const check = () => {
      const match = pattern.exec(server.output());
      if (match) { done(); resolve(match); }
    };
    const onExit = () => {
      // The last chunks may still be in the pipes: look once more on the next turn.
      setImmediate(() => {
        const match = pattern.exec(server.output());
        done();
        if (match) resolve(match);
        else reject(new Error(`server exited before printing ${what}; output:\n${server.output()}`));
      });
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; output:\n${server.output().slice(-3000)}`));
    }, timeoutMs);
    // The helper's own 'data' listener was added first, so output() already holds each chunk here.
    for (const stream of streams) stream.on('data', check);
    server.proc.on('exit', onExit);
    check();
  });
}

/** Waits for a fixture's `PROBE <id> <what> <json>` line and returns the parsed JSON. */
export async function waitForProbe<T = Record<string, unknown>>(server: RunningServer, id: string, what: string, timeoutMs = 5000): Promise<T> {
  const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const match = await waitForOutput(server, new RegExp(`^PROBE ${escape(id)} ${escape(what)} (.*)$`, 'm'), timeoutMs, `the app's report "PROBE ${id} ${what}"`);
  return JSON.parse(match[1]!) as T;
}
