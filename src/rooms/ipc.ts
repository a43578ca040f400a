// The messages rooms traffic uses between a worker (client.ts) and the primary (router.ts), over
// node:cluster IPC, or by direct calls in a single process. Like the lobby's (broadcast.ts), each
// side batches what one turn of the event loop produces into one message.

/** What happened on a worker's connection, in the order it happened. */
export type RoomEvent =
  /** Connection `c` of user `u` authenticated (its token checked); `q` is the request's uuid. */
  | { k: 'open'; c: number; u: string; q: string }
  /** Connection `c` of user `u` closed. */
  | { k: 'close'; c: number; u: string }
  /** Connection `c` of user `u` asks; `q` is a request checked by parseRoomRequest. */
  | { k: 'req'; c: number; u: string; q: unknown };

/**
 * What the primary sends a worker: `[conn, text]` answers one connection; `[users, text]` goes to
 * every open connection of those users on that worker (the same text object for every worker).
 */
export type RoomDelivery = [number, string] | [string[], string];

export type RoomsToPrimary = { t: 'room:in'; m: RoomEvent[] };
export type RoomsToWorker = { t: 'room:out'; m: RoomDelivery[] };
