// The chat's WebSocket handler: one per connection to /chat. It subscribes to the broadcast hub,
// accepts, greets, and then does two jobs side by side, as the Python original did with two tasks:
//   - the consumer sends what the hub queued for this subscriber (history first, then live
//     messages); it runs when there is something queued, not as a loop waiting on the queue;
//   - the receiver reads the client's messages, validates them and publishes the valid ones.
// On disconnect the subscription is closed and the consumer stops: nothing is left behind.
import { CloseCode } from './server/close-codes.js';
import { CHAT_LIMITS, type ChatConfig } from './config.js';
import type { ChatState } from './chat-state.js';
import type { Receive, Send, WebSocketScope } from './server/asgi-types.js';
import type { Hub, Subscription } from './broadcast.js';
import { log } from './server/logger.js';

const GREETING = JSON.stringify({ sender: 'server', message: 'You are connected' });
/** Messages one client may publish in one turn of the event loop (see the receive loop). */
const PUBLISH_BURST = CHAT_LIMITS.publishBurst.value;

export function websocket(scope: WebSocketScope, receive: Receive, send: Send): Promise<void> {
  // Take what the connection needs from the scope and let the scope go: a suspended async
  // function keeps its arguments alive, and the scope's header strings would otherwise stay in
  // memory for as long as the chat connection lasts, once per connection.
  const { hub, config } = scope.state as unknown as ChatState;
  const client = scope.client?.join(':') ?? 'unknown client';
  return chat(scope.path === '/chat', hub, config, client, receive, send);
}

async function chat(pathOk: boolean, hub: Hub, config: ChatConfig, client: string, receive: Receive, send: Send): Promise<void> {
  const connect = await receive();
  if (connect.type !== 'websocket.connect') return;
  if (!pathOk) {
    await send({ type: 'websocket.close' }); // before accept: the server answers 403
    return;
  }

  // Subscribe before accepting, so the history is queued by the time the client can read.
  const subscription = await hub.subscribe(() => {
    log.warning(`Closing a slow consumer (${client}): its queue overflowed`);
    send({ type: 'websocket.close', code: CloseCode.POLICY_VIOLATION, reason: 'slow consumer' }).catch(() => {});
  });

  try {
    await send({ type: 'websocket.accept' });
    await send({ type: 'websocket.send', text: GREETING });
  } catch {
    subscription.close();
    return;
  }
  // The consumer runs whenever the hub queues something for this subscriber (and now, for the
  // history): see subscriber-queue.ts. Meanwhile this function reads what the client sends.
  subscription.queue.onReady = () => void sendQueued(subscription, send);
  void sendQueued(subscription, send);
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
      const checked = checkChatMessage(event.text, config);
      if ('error' in checked) await send({ type: 'websocket.send', text: JSON.stringify({ sender: 'server', error: checked.error }) });
      else hub.publish(checked.tail);
    }
  } catch {
    // send rejected: the connection is gone; the finally below cleans up.
  } finally {
    subscription.close(); // unsubscribes; a consumer still running finds the queue closed and stops
  }
}

/** The consumer: sends what is queued for this subscriber until the queue is empty, then stops. */
async function sendQueued(subscription: Subscription, send: Send): Promise<void> {
  try {
    for (let texts = subscription.queue.takeAll(); texts !== null; texts = subscription.queue.takeAll()) {
      // All that is queued, at once: the server writes these frames to the socket as one write.
      for (const text of texts) await send({ type: 'websocket.send', text });
    }
  } catch {
    subscription.close(); // send rejected: the client is gone
  }
}

/**
 * Validates a client's message `{"sender": string, "message": string}` and returns the tail of
 * the JSON the server will broadcast (`"sender":…,"message":…}`), or what is wrong. The server
 * rebuilds every message from the two fields, so no client can add fields or set id or ts.
 */
export function checkChatMessage(text: string, config: ChatConfig): { tail: string } | { error: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { error: 'not valid JSON: send {"sender": "...", "message": "..."}' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { error: 'expected a JSON object {"sender": "...", "message": "..."}' };
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

/**
 * Length in Unicode code points, so an emoji counts as one character, as a person would count;
 * null when the text holds a lone surrogate. JSON can carry one ("\ud800"), and it would otherwise
 * slip past the length limit (counted as nothing) and past every UTF-8 consumer downstream.
 */
function characters(text: string): number | null {
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text.charCodeAt(i + 1); // NaN past the end
      if (!(next >= 0xdc00 && next <= 0xdfff)) return null;
      i++; // a high and a low surrogate: one code point
    } else if (unit >= 0xdc00 && unit <= 0xdfff) {
      return null; // a low surrogate with no high one before it
    }
    count++;
  }
  return count;
}
