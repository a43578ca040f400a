// One connection's side of the rooms, in its worker: who it is (after `authenticate`), its request
// rate, and what it may ask. It answers locally what needs no primary — malformed requests, a
// request before or a second `authenticate`, a bad or expired token, a request over the rate —
// and hands everything else to the primary through the worker's RoomsClient (client.ts).
//
// Created at the connection's first rooms request: a lobby-only connection costs nothing here.
import type { ChatConfig } from '../config.js';
import { verifyToken } from '../jwt.js';
import type { SubscriberQueue } from '../subscriber-queue.js';
import type { RoomsClient } from './client.js';
import { TokenBucket } from './rate-limit.js';
import { answerError, answerRequestError, parseRoomRequest } from './requests.js';

const ROOMS_DISABLED = 'Rooms are not enabled on this server: its operator can enable them by setting CHAT_SECRET '
  + '(at least 32 bytes) and restarting it. The lobby works without it.';

export class RoomSession {
  private readonly client: RoomsClient;
  private readonly config: ChatConfig;
  private readonly queue: SubscriberQueue;
  private readonly bucket: TokenBucket;
  /** The connection's id in the RoomsClient once it authenticated, else 0. */
  private id = 0;

  constructor(client: RoomsClient, config: ChatConfig, queue: SubscriberQueue, now: number) {
    this.client = client;
    this.config = config;
    this.queue = queue;
    this.bucket = new TokenBucket(config.ratePerSecond, config.rateBurst, now);
  }

  /**
   * Handles one request (a JSON object with an `action`). Returns the answer to send at once, or
   * null when the request went to the primary, which answers it.
   */
  handle(value: Record<string, unknown>, now: number): string | null {
    const request = parseRoomRequest(value, { maxMessageLength: this.config.maxMessageLength, maxMembersPerRoom: this.config.maxRoomMembers });
    // Every request costs a token, a malformed one too: refusing is work as well.
    if (!this.bucket.take(now)) {
      const message = `more than ${this.config.ratePerSecond} requests per second: slow down and retry`;
      return answerRequestError({ error: 'rate_limited', message, uuid: request.uuid, action: request.action });
    }
    if ('error' in request) return answerRequestError(request);
    if (request.action === 'authenticate') {
      const { uuid, action } = request;
      if (this.id !== 0) return answerError(uuid, action, 'already_authenticated', 'this connection is already signed in; open a new connection to sign in as someone else');
      const secret = this.config.secret;
      if (secret === null) return answerError(uuid, action, 'unavailable', ROOMS_DISABLED);
      const verdict = verifyToken(request.token, secret, Math.floor(now / 1000));
      if (!verdict.ok) return answerError(uuid, action, verdict.error, verdict.message);
      // The primary answers (with the user), in order with everything else: see client.ts.
      this.id = this.client.authenticate(this.queue, verdict.user, uuid);
      return null;
    }
    if (this.id === 0) return answerError(request.uuid, request.action, 'unauthenticated', 'sign in first: send {"action": "authenticate", "token": …}');
    this.client.request(this.id, request);
    return null;
  }

  /** The connection closed. */
  close(): void {
    if (this.id !== 0) this.client.closed(this.id);
    this.id = 0;
  }
}
