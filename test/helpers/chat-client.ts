// Helpers for the chat's integration tests (test/chat*.test.ts):
//   - ChatClient: a chat participant over Node's built-in WebSocket (run node with
//     --experimental-websocket). It keeps every message it receives, parsed, in order, and lets a
//     test await the next one or the first one matching a predicate, always with a bounded
//     timeout whose error says what was expected and what came instead.
//   - healthz(port): GET /healthz on a fresh TCP connection (no keep-alive), so that with
//     --workers N the cluster's round-robin hands each request to the next worker.
//   - within(promise, ms, what): a promise bounded by a timeout that names what was awaited.
import { request } from 'node:http';

/** A message from the chat server: a chat message, the greeting, or an error reply. */
export interface ChatMessage {
  id?: number;
  ts?: number;
  sender?: string;
  message?: string;
  error?: string;
  [key: string]: unknown;
}

export interface CloseInfo {
  code: number;
  reason: string;
  wasClean: boolean;
}

/** Rejects after `ms` with an error naming what was awaited. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export class ChatClient {
  /** Every message received so far, parsed, in arrival order. */
  readonly received: ChatMessage[] = [];
  /** Set once the socket closed. */
  closeInfo: CloseInfo | null = null;
  /** Resolves when the socket closes, with the close code as Node reports it (1006: abnormal). */
  readonly closed: Promise<CloseInfo>;
  private cursor = 0;
  private readonly waiters = new Set<() => void>();

  private constructor(readonly ws: WebSocket, readonly name: string) {
    this.closed = new Promise((resolve) => {
      ws.addEventListener('close', (event) => {
        this.closeInfo = { code: event.code, reason: event.reason, wasClean: event.wasClean };
        this.wake();
        resolve(this.closeInfo);
      });
    });
    ws.addEventListener('message', (event) => {
      if (typeof event.data !== 'string') {
        this.received.push({ error: `unexpected binary message from the server (${String(event.data)})` });
      } else {
        this.received.push(JSON.parse(event.data) as ChatMessage);
      }
      this.wake();
    });
  }

  /** Opens a WebSocket to `wsUrl + path`; resolves once it is open. */
  static async connect(wsUrl: string, options: { path?: string; name?: string; timeoutMs?: number } = {}): Promise<ChatClient> {
    const url = `${wsUrl}${options.path ?? '/chat'}`;
    const ws = new WebSocket(url);
    const client = new ChatClient(ws, options.name ?? url);
    const opened = new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve());
      ws.addEventListener('error', () => reject(new Error(`WebSocket ${url} failed to open`)));
    });
    try {
      await within(opened, options.timeoutMs ?? 5000, `WebSocket ${url} to open`);
    } catch (error) {
      ws.close();
      throw error;
    }
    return client;
  }

  /** Opens a client and reads the greeting, which must be the first message. */
  static async join(wsUrl: string, name?: string): Promise<ChatClient> {
    const client = await ChatClient.connect(wsUrl, name === undefined ? {} : { name });
    const greeting = await client.next(5000, 'the greeting');
    if (greeting.sender !== 'server' || greeting.message !== 'You are connected') {
      client.close();
      throw new Error(`${client.name}: expected the greeting first, got ${JSON.stringify(greeting)}`);
    }
    return client;
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends `{"sender": sender, "message": message}`. */
  say(sender: string, message: string): void {
    this.ws.send(JSON.stringify({ sender, message }));
  }

  /** Sends any text (JSON or not) as one text message. */
  sendText(text: string): void {
    this.ws.send(text);
  }

  sendBinary(bytes: Uint8Array): void {
    this.ws.send(bytes);
  }

  /** Messages not yet returned by next() or waitFor(). */
  get unread(): ChatMessage[] {
    return this.received.slice(this.cursor);
  }

  /** The next unread message; rejects on timeout or if the socket closes first. */
  next(timeoutMs = 5000, what = 'the next message'): Promise<ChatMessage> {
    return this.waitFor(() => true, timeoutMs, what);
  }

  /**
   * Skips unread messages up to the first one matching `predicate` and returns it; rejects on
   * timeout or if the socket closes first, listing what was skipped.
   */
  waitFor(predicate: (message: ChatMessage) => boolean, timeoutMs = 5000, what = 'a matching message'): Promise<ChatMessage> {
    const start = this.cursor;
    return this.watch(() => {
      while (this.cursor < this.received.length) {
        const message = this.received[this.cursor++]!;
        if (predicate(message)) return message;
      }
      return null;
    }, timeoutMs, (why) => `${this.name}: ${why} while waiting for ${what}; skipped: ${this.describe(start)}`);
  }

  /**
   * The first message received so far or later (read or not) that matches `predicate`; does not
   * move the cursor, so it can run alongside next()/waitFor().
   */
  seen(predicate: (message: ChatMessage) => boolean, timeoutMs = 5000, what = 'a matching message'): Promise<ChatMessage> {
    let scanned = 0;
    return this.watch(() => {
      for (; scanned < this.received.length; scanned++) {
        if (predicate(this.received[scanned]!)) return this.received[scanned]!;
      }
      return null;
    }, timeoutMs, (why) => `${this.name}: ${why} before ${what} (${this.received.length} messages received)`);
  }

  /**
   * Resolves with what `scan` finds, running it now and after every message; rejects once the
   * socket closes or `timeoutMs` passes, with `failure(why)` as the message.
   */
  private watch(scan: () => ChatMessage | null, timeoutMs: number, failure: (why: string) => string): Promise<ChatMessage> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const found = scan();
        if (found !== null) {
          finish();
          resolve(found);
          return true;
        }
        if (this.closeInfo) {
          finish();
          reject(new Error(failure(`closed (${this.closeInfo.code})`)));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(failure(`timed out after ${timeoutMs} ms`)));
      }, timeoutMs);
      const waiter = (): void => { check(); };
      const finish = (): void => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      if (!check()) this.waiters.add(waiter);
    });
  }

  /** Drops everything received so far (to keep memory flat during long runs). */
  forget(): void {
    this.received.length = 0;
    this.cursor = 0;
  }

  /** Resolves with the close once the socket closed; rejects after `timeoutMs`. */
  waitClosed(timeoutMs = 5000): Promise<CloseInfo> {
    return within(this.closed, timeoutMs, `${this.name} to be closed`);
  }

  close(): void {
    if (this.ws.readyState === WebSocket.CONNECTING || this.ws.readyState === WebSocket.OPEN) this.ws.close();
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  private describe(from: number): string {
    const skipped = this.received.slice(from, this.cursor);
    if (skipped.length === 0) return '(nothing)';
    const shown = skipped.slice(-5).map((m) => JSON.stringify(m).slice(0, 200));
    return `${skipped.length} message(s), last: ${shown.join(' | ')}`;
  }
}

export interface Health {
  status: string;
  pid: number;
  connections: number;
  slow_consumers_closed: number;
}

/** GET /healthz on a new TCP connection (no agent, `Connection: close`). */
export function healthz(port: number, timeoutMs = 5000): Promise<Health> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/healthz', agent: false, headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`/healthz answered ${res.statusCode}: ${body}`));
        try {
          resolve(JSON.parse(body) as Health);
        } catch {
          reject(new Error(`/healthz answered non-JSON: ${body}`));
        }
      });
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`/healthz did not answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** Closes every client that is still open and waits (bounded) for the closes. */
export async function closeAll(clients: Iterable<ChatClient>): Promise<void> {
  const waits: Promise<unknown>[] = [];
  for (const client of clients) {
    client.close();
    waits.push(within(client.closed, 3000, 'close').catch(() => {}));
  }
  await Promise.all(waits);
}
