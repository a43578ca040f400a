// One connection's side of the rooms, in its worker: who it is (after `authenticate`), its request
// rate, and what it may ask. It answers locally what needs no primary — malformed requests, a
// request before or a second `authenticate`, a bad or expired token, a request over the rate —
// and hands everything else to the primary through the worker's RoomsClient (client.ts).
//
// Created at the connection's first rooms request: a lobby-only connection costs nothing here.
//
// A token's `exp` ends the session it opened, not only the sign-in: when it passes, the
// connection stops receiving room messages (a timer, armed only for signed-in connections) and its
// next request is answered `token_expired`; it may authenticate again with a new token.
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
  /** When the token the connection signed in with expires (ms since the epoch), or Infinity. */
  private expiresAt = Infinity;
  private expiryTimer: NodeJS.Timeout | null = null;
  /** The session ended because its token expired (until the next authenticate). */
  private expired = false;

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
    const { uuid, action } = request;
    const secret = this.config.secret;
    if (secret === null) return answerError(uuid, action, 'unavailable', ROOMS_DISABLED);
    if (now >= this.expiresAt) this.expire(); // the timer may not have run yet
    if (request.action === 'authenticate') {
      if (this.id !== 0) return answerError(uuid, action, 'already_authenticated', 'this connection is already signed in; open a new connection to sign in as someone else');
      const verdict = verifyToken(request.token, secret, Math.floor(now / 1000));
      if (!verdict.ok) return answerError(uuid, action, verdict.error, verdict.message);
      // The primary answers (with the user), in order with everything else: see client.ts.
      this.id = this.client.authenticate(this.queue, verdict.user, uuid);
      this.expired = false;
      const exp = verdict.claims.exp;
      if (typeof exp === 'number') this.armExpiry(exp * 1000, now);
      return null;
    }
    if (this.expired) return answerError(uuid, action, 'token_expired', 'the token this connection signed in with has expired: authenticate again with a new one');
    if (this.id === 0) return answerError(uuid, action, 'unauthenticated', 'sign in first: send {"action": "authenticate", "token": …}');
    this.client.request(this.id, request);
    return null;
  }

  /** The connection closed. */
  close(): void {
    if (this.id !== 0) this.client.closed(this.id);
    this.id = 0;
    this.expiresAt = Infinity;
    if (this.expiryTimer !== null) clearTimeout(this.expiryTimer);
    this.expiryTimer = null;
  }

  private armExpiry(expiresAt: number, now: number): void {
    this.expiresAt = expiresAt;
    // setTimeout takes at most 2^31 - 1 ms (about 24.8 days); a later expiry re-arms from there.
    this.expiryTimer = setTimeout(sessionExpiryTick, Math.min(expiresAt - now, MAX_TIMER_MS), this);
    this.expiryTimer.unref();
  }

  /** The timer fired: expire at the token's time, or wait on for a distant one. */
  expiryTick(): void {
    this.expiryTimer = null;
    const now = Date.now();
    if (now >= this.expiresAt) this.expire();
    else this.armExpiry(this.expiresAt, now);
  }

  /** The token's time has passed: the connection leaves the rooms (the primary counts it offline). */
  private expire(): void {
    this.close();
    this.expired = true;
  }
}

const MAX_TIMER_MS = 2 ** 31 - 1;

/** A module-level timer callback, so no closure is allocated per connection. */
function sessionExpiryTick(session: RoomSession): void {
  session.expiryTick();
}
