// The rooms' worker side: which of this worker's connections belong to which user, and the way to
// the primary, where the rooms live (router.ts). Tokens and requests are checked before they get
// here (websocket.ts); this only moves them, and hands what comes back to the connections' queues.
//
// Theory of operation:
//   Connections are numbered by this worker. A connection joins its user's set when its token is
//     checked, but it is *live*, reached by room messages, only from the moment the primary's answer
//     to its `authenticate` arrives: the primary handles events in order and sends in order, so
//     every room message handled after the authentication comes after that answer, and none handled
//     before it does. A connection never receives a message from before its authentication as a
//     push (select_room gives it the history instead), so it never gets one twice.
//   Delivery: `[users, text]` reaches every live connection of those users here. Every connection's
//     copy is the same string in its bounded queue (subscriber-queue.ts), where it waits with the
//     lobby's messages: a slow reader is closed with 1008 "slow consumer" whatever it falls behind on,
//     and the server encodes the frame once for all of them (server/frame-cache.ts).
//   Batching: what this worker's connections do in one turn travels as one IPC message, sent by
//     the hub together with the lobby's (broadcast.ts, Hub.flushOutbox).
import type { SubscriberQueue } from '../subscriber-queue.js';
import type { RoomDelivery, RoomEvent } from './ipc.js';

interface RoomConnection {
  queue: SubscriberQueue;
  user: string | null;
  /** The primary answered its authentication: room messages reach it from now on. */
  live: boolean;
}

export class RoomsClient {
  /** Hands an event to the hub, which sends this turn's events as one IPC message (broadcast.ts). */
  private readonly queue: (event: RoomEvent) => void;
  private readonly connections = new Map<number, RoomConnection>();
  /** user → ids of its connections on this worker (authenticated, live or about to be). */
  private readonly byUser = new Map<string, Set<number>>();
  private nextConnection = 1;

  constructor(queue: (event: RoomEvent) => void) {
    this.queue = queue;
  }

  /** A connection whose token was checked: registers it and tells the primary. Returns its id. */
  authenticate(queue: SubscriberQueue, user: string, uuid: string): number {
    const id = this.nextConnection++;
    this.connections.set(id, { queue, user, live: false });
    let ids = this.byUser.get(user);
    if (!ids) this.byUser.set(user, (ids = new Set()));
    ids.add(id);
    this.queue({ k: 'open', c: id, u: user, q: uuid });
    return id;
  }

  /** A checked request of an authenticated connection. */
  request(id: number, request: { uuid: string }): void {
    const connection = this.connections.get(id);
    if (connection?.user) this.queue({ k: 'req', c: id, u: connection.user, q: request });
  }

  /** The connection closed: forget it, and tell the primary (it counts who is online). */
  closed(id: number): void {
    const connection = this.connections.get(id);
    if (!connection) return;
    this.connections.delete(id);
    const user = connection.user!;
    const ids = this.byUser.get(user)!;
    ids.delete(id);
    if (ids.size === 0) this.byUser.delete(user);
    this.queue({ k: 'close', c: id, u: user });
  }

  /** What the primary sent: answers to one connection, messages to users' connections. */
  receive(deliveries: RoomDelivery[]): void {
    for (const [to, text] of deliveries) {
      if (typeof to === 'number') {
        const connection = this.connections.get(to);
        if (!connection) continue; // it closed meanwhile
        connection.live = true; // the first answer it gets is the one to its authenticate
        connection.queue.push(text, Buffer.byteLength(text));
        continue;
      }
      const size = Buffer.byteLength(text); // once per message, not per connection
      for (const user of to) {
        const ids = this.byUser.get(user);
        if (!ids) continue;
        for (const id of ids) {
          const connection = this.connections.get(id)!;
          if (connection.live) connection.queue.push(text, size);
        }
      }
    }
  }
}
