// The chat's WebSocket handler: one per connection to /chat. It checks the Origin, subscribes to
// the broadcast hub, accepts, greets, and then does two jobs side by side, as the Python original
// did with two tasks:
//   - the consumer sends what the hub queued for this subscriber (the lobby's history first, then
//     live lobby messages and room messages); it runs when there is something queued, not as a
//     loop waiting on the queue;
//   - the receiver reads the client's messages: a JSON object with an "action" is a rooms request
//     (rooms/session.ts), anything else a lobby message, validated and published.
// On disconnect the subscription is closed and the consumer stops: nothing is left behind.
import { CloseCode } from './server/close-codes.js';
import { CHAT_LIMITS, type ChatConfig } from './config.js';
import type { ChatState } from './chat-state.js';
import type { Receive, Send, WebSocketScope } from './server/asgi-types.js';
import type { Hub, Subscription } from './broadcast.js';
import { RoomSession } from './rooms/session.js';
import { answerBadRequest } from './rooms/requests.js';
import { log } from './server/logger.js';
import { characters } from './text.js';

const GREETING = JSON.stringify({ sender: 'server', message: 'You are connected' });
const GREETING_RECOVERED = JSON.stringify({ sender: 'server', message: 'You are connected', recovered: true });
const GREETING_GAP = JSON.stringify({ sender: 'server', message: 'You are connected', recovered: false });

/** With `since`: whether the history that follows is every message after it (else the last N). */
function greetingAfterResume(recovered: boolean): string {
  return recovered ? GREETING_RECOVERED : GREETING_GAP;
}
/** Messages one client may publish in one turn of the event loop (see the receive loop). */
const PUBLISH_BURST = CHAT_LIMITS.publishBurst.value;

export function websocket(scope: WebSocketScope, receive: Receive, send: Send): Promise<void> {
  // Take what the connection needs from the scope and let the scope go: a suspended async
  // function keeps its arguments alive, and the scope's header strings would otherwise stay in
  // memory for as long as the chat connection lasts, once per connection.
  const { hub, config } = scope.state as unknown as ChatState;
  const client = scope.client?.join(':') ?? 'unknown client';
  const allowed = scope.path === '/chat' && originAllowed(scope.headers, config.allowedOrigins);
  const since = resumeFrom(scope.query_string);
  return chat(allowed && since !== BAD_SINCE, since === BAD_SINCE ? undefined : since, hub, config, client, receive, send);
}

const BAD_SINCE = Symbol('bad since');

/**
 * The lobby's resume: `/chat?since=ID` asks for the lobby messages after id ID instead of the
 * recent history (the greeting then says whether they are all there: `recovered`). A `since` that
 * is not a whole number is refused before the upgrade (403), like any request the chat cannot serve.
 */
export function resumeFrom(queryString: string): number | undefined | typeof BAD_SINCE {
  if (queryString === '') return undefined;
  const raw = new URLSearchParams(queryString).get('since');
  if (raw === null) return undefined;
  const since = /^\d{1,16}$/.test(raw) ? Number(raw) : NaN;
  return Number.isSafeInteger(since) ? since : BAD_SINCE;
}

async function chat(allowed: boolean, since: number | undefined, hub: Hub, config: ChatConfig, client: string, receive: Receive, send: Send): Promise<void> {
  const connect = await receive();
  if (connect.type !== 'websocket.connect') return;
  if (!allowed) {
    await send({ type: 'websocket.close' }); // before accept: the server answers 403
    return;
  }

  // Subscribe before accepting, so the history is queued by the time the client can read.
  const subscription = await hub.subscribe(() => {
    log.warning(`Closing a slow consumer (${client}): its queue overflowed`);
    send({ type: 'websocket.close', code: CloseCode.POLICY_VIOLATION, reason: 'slow consumer' }).catch(() => {});
  }, since);
  // A message the primary could not accept (the message log failed) gets an error line, like an
  // invalid one: the sender knows it reached nobody, and may send it again.
  const publisher = hub.addPublisher((error) => {
    send({ type: 'websocket.send', text: JSON.stringify({ sender: 'server', error }) }).catch(() => {});
  });

  try {
    await send({ type: 'websocket.accept' });
    await send({ type: 'websocket.send', text: since === undefined ? GREETING : greetingAfterResume(subscription.recovered === true) });
  } catch {
    hub.removePublisher(publisher);
    subscription.close();
    return;
  }
  // The consumer runs whenever the hub queues something for this subscriber (and now, for the
  // history): see subscriber-queue.ts. Meanwhile this function reads what the client sends.
  subscription.queue.onReady = () => sendQueued(hub, subscription, send);
  sendQueued(hub, subscription, send);
  let rooms: RoomSession | null = null; // made at the first rooms request
  try {
    for (let received = 1; ; received++) {
      await hub.ready(); // holds reading while the broadcast IPC is backlogged (see broadcast.ts)
      // Fairness: all the frames of one TCP read arrive in one turn of the event loop. Letting
      // the loop turn every few messages keeps one client's burst from becoming one giant
      // broadcast batch (which would overflow every subscriber's queue at once).
      if (received % PUBLISH_BURST === 0) await new Promise(setImmediate);
      const event = await receive();
      if (event.type === 'websocket.disconnect') break;
      if (event.type !== 'websocket.receive') continue;
      if (event.text === undefined) {
        await send({ type: 'websocket.close', code: CloseCode.UNSUPPORTED_DATA, reason: 'binary messages are not accepted' });
        break;
      }
      const value = parseJson(event.text);
      if (value === NOT_JSON) {
        await send({ type: 'websocket.send', text: NOT_JSON_ANSWER });
      } else if (isObject(value) && 'action' in value) {
        rooms ??= new RoomSession(hub.rooms, config, subscription.queue, Date.now());
        const answer = rooms.handle(value, Date.now());
        if (answer !== null) await send({ type: 'websocket.send', text: answer });
      } else {
        const checked = checkLobbyMessage(value, config);
        if ('error' in checked) await send({ type: 'websocket.send', text: JSON.stringify({ sender: 'server', error: checked.error }) });
        else hub.publish(checked.tail, publisher);
      }
    }
  } catch {
    // send rejected: the connection is gone; the finally below cleans up.
  } finally {
    rooms?.close();
    hub.removePublisher(publisher);
    subscription.close(); // unsubscribes; a consumer still running finds the queue closed and stops
  }
}

const NOT_JSON = Symbol('not JSON');
/**
 * Text that is not JSON is neither a lobby message nor a rooms request, so its answer has the
 * fields of both error shapes: the lobby's `{"sender": "server", "error": text}` and the rooms'
 * `{"action": "error", "status": "error", "error": "bad_request", "error_message": text}`.
 */
const NOT_JSON_ANSWER = JSON.stringify({
  ...JSON.parse(answerBadRequest('not valid JSON: send {"sender": "...", "message": "..."} or a rooms request with an "action"')) as object,
  sender: 'server',
});

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return NOT_JSON;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The protocol's Origin rule: a browser always sends Origin, and may open /chat only from the
 * page's own origin (its host and port equal to the Host header) or one listed in
 * CHAT_ALLOWED_ORIGINS; anything else is refused (403) before the upgrade, so that another site's
 * page cannot use a visitor's browser to talk here. A client without Origin is not a browser.
 *
 * Host and port, not the scheme, as the protocol says: behind a proxy that terminates TLS the
 * server sees a plain connection from an https page, and must still know that page as its own.
 * A Host without a port means the Origin's scheme's default port. X-Forwarded-Host is not read
 * (uvicorn does not read it either): a proxy must pass the Host header on unchanged, or the
 * page's origin be listed in CHAT_ALLOWED_ORIGINS.
 */
export function originAllowed(headers: Array<[string, string]>, allowedOrigins: readonly string[]): boolean {
  let origin: string | undefined;
  let host: string | undefined;
  for (const [name, value] of headers) {
    if (name === 'origin') origin = value;
    else if (name === 'host') host = value;
  }
  if (origin === undefined) return true;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false; // "null" (a sandboxed page, a file) and other non-origins
  }
  if (allowedOrigins.includes(url.origin)) return true;
  if (host === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) return false;
  try {
    // Through URL with the Origin's scheme, so that a default port written out (":443") or left
    // out compares equal.
    return new URL(`${url.protocol}//${host}`).host === url.host;
  } catch {
    return false;
  }
}

/**
 * A promise the consumer has seen fulfilled. A settled promise stays settled, so a `send` that
 * returns this very object again has already succeeded and needs no await. This server returns one
 * shared fulfilled promise whenever the frame went through at once (asgi-websocket.ts), so in the
 * common case a delivery costs no await, no promise job and no suspended function; any other
 * promise (a wait for 'drain', a rejection, another server's fresh promise per call) is awaited,
 * so the contract's backpressure and errors work as before.
 */
let knownFulfilled: Promise<void> | null = null;

/** Where a consumer stopped: a `send` to await, then texts[next..] and the rest of the queue. */
interface Waiting {
  sent: Promise<void>;
  texts: string[];
  next: number;
}

/**
 * The consumer: sends what is queued for this subscriber until the queue is empty, then stops.
 * Plain synchronous code while every send is known fulfilled (above); it goes async only for a
 * send that must be awaited, and comes back here after it.
 */
function sendQueued(hub: Hub, subscription: Subscription, send: Send): void {
  const waiting = sendAtOnce(hub, subscription, send, subscription.queue.takeAll(), 0);
  if (waiting !== null) void sendAfterWaits(hub, subscription, send, waiting);
}

/** Sends texts[from..], then each batch the queue holds, until a send must be awaited (returned). */
function sendAtOnce(hub: Hub, subscription: Subscription, send: Send, texts: string[] | null, from: number): Waiting | null {
  // All that is queued, at once: the server writes these frames to the socket as one write.
  for (let i = from; texts !== null; texts = subscription.queue.takeAll(), i = 0) {
    for (; i < texts.length; i++) {
      const sent = send({ type: 'websocket.send', text: texts[i]! });
      if (sent !== knownFulfilled) return { sent, texts, next: i + 1 };
      hub.delivered++; // an integer add per delivery: all that metrics cost here (metrics.ts)
    }
  }
  return null;
}

async function sendAfterWaits(hub: Hub, subscription: Subscription, send: Send, first: Waiting): Promise<void> {
  try {
    for (let waiting: Waiting | null = first; waiting !== null; waiting = sendAtOnce(hub, subscription, send, waiting.texts, waiting.next)) {
      await waiting.sent;
      knownFulfilled = waiting.sent;
      hub.delivered++;
    }
  } catch {
    subscription.close(); // send rejected: the client is gone
  }
}

/**
 * Validates a client's lobby message, as text (see checkLobbyMessage).
 */
export function checkChatMessage(text: string, config: ChatConfig): { tail: string } | { error: string } {
  const value = parseJson(text);
  if (value === NOT_JSON) return { error: 'not valid JSON: send {"sender": "...", "message": "..."}' };
  return checkLobbyMessage(value, config);
}

/**
 * Validates a client's lobby message `{"sender": string, "message": string}`, parsed, and returns
 * the tail of the JSON the server will broadcast (`"sender":…,"message":…}`), or what is wrong.
 * The server rebuilds every message from the two fields, so no client can add fields or set id or ts.
 */
export function checkLobbyMessage(value: unknown, config: ChatConfig): { tail: string } | { error: string } {
  if (!isObject(value)) return { error: 'expected a JSON object {"sender": "...", "message": "..."}' };
  const { sender, message } = value as Record<string, unknown>;
  if (typeof sender !== 'string') return { error: '"sender" must be a string' };
  if (typeof message !== 'string') return { error: '"message" must be a string' };
  if (sender.trim() === '') return { error: '"sender" must not be empty' };
  if (message.trim() === '') return { error: '"message" must not be empty' };
  const senderLength = characters(sender);
  const messageLength = characters(message);
  if (senderLength === null || messageLength === null) return { error: 'text must be well-formed Unicode (no lone surrogates)' };
  if (senderLength > config.maxSenderLength) return { error: `"sender" is longer than ${config.maxSenderLength} characters` };
  if (messageLength > config.maxMessageLength) return { error: `"message" is longer than ${config.maxMessageLength} characters` };
  if (sender.trim().toLowerCase() === 'server') return { error: '"sender" cannot be "server"' };
  return { tail: `"sender":${JSON.stringify(sender)},"message":${JSON.stringify(message)}}` };
}
