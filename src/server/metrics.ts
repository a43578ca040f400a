// The server's own counters: what only the server sees (WebSocket handshakes, frames, bytes on
// the wire, HTTP requests), for an application that wants to publish them (the bundled chat's
// GET /metrics renders them in the Prometheus text format; the server itself serves nothing).
//
// One process-wide object of plain numbers, incremented in place where the event happens. That is
// the whole cost on a hot path (a broadcast's send, a socket write): one integer add, with no Map
// lookup, no allocation and no closure per event. Reading them is the reader's job, at its own
// pace: `snapshotServerMetrics()` copies the object, for instance to send it over IPC.
//
// Each process counts its own; with --workers N an application that wants cluster-wide figures
// adds the workers' snapshots up (the chat does that through its primary: src/metrics-cluster.ts).
// Counters only ever grow, except `websocketsOpen`, a gauge.

/** Why a WebSocket handshake did not end in a 101, by the status that answered it. */
export interface RefusedHandshakes {
  /** 400: not a valid handshake (HTTP/1.0, no Host, bad Upgrade/Connection, bad Sec-WebSocket-Key). */
  badRequest: number;
  /** 405: not a GET. */
  methodNotAllowed: number;
  /** 426: a Sec-WebSocket-Version other than 13. */
  unsupportedVersion: number;
  /** 403: the application closed (or returned) before accepting. */
  forbidden: number;
  /** 500: the application raised before accepting. */
  appError: number;
  /** The application answered with an HTTP response of its own (the denial-response extension). */
  appResponse: number;
  /** 503: an upgrade that arrived while the server was shutting down. */
  shuttingDown: number;
  /** Any other status (none today: a new refusal should get a field of its own). */
  other: number;
}

export interface ServerMetrics {
  /** WebSocket connections accepted (101 written) whose closing handshake has not finished. A gauge. */
  websocketsOpen: number;
  /** WebSocket handshakes accepted (101 written). */
  websocketsAccepted: number;
  refused: RefusedHandshakes;
  /** TCP connections refused at once (503, or closed on a TLS port) because --limit-concurrency were open. */
  connectionsDropped: number;
  /** Complete WebSocket messages (text or binary) received from clients. */
  messagesReceived: number;
  /** WebSocket messages the application sent (`websocket.send`). */
  messagesSent: number;
  /** Bytes of WebSocket frames written to sockets: data and control frames; not the handshake's answer. */
  bytesSent: number;
  /** HTTP requests handed to the application (WebSocket handshakes are not HTTP requests here). */
  httpRequests: number;
}

/** This process's counters. Increment in place; never replace the object or its `refused`. */
export const serverMetrics: ServerMetrics = {
  websocketsOpen: 0,
  websocketsAccepted: 0,
  refused: {
    badRequest: 0, methodNotAllowed: 0, unsupportedVersion: 0, forbidden: 0, appError: 0, appResponse: 0, shuttingDown: 0, other: 0,
  },
  connectionsDropped: 0,
  messagesReceived: 0,
  messagesSent: 0,
  bytesSent: 0,
  httpRequests: 0,
};

/** Counts a handshake refused with a plain status (the app's own response is `appResponse`). */
export function countRefusedHandshake(status: number): void {
  const refused = serverMetrics.refused;
  switch (status) {
    case 400: refused.badRequest++; return;
    case 403: refused.forbidden++; return;
    case 405: refused.methodNotAllowed++; return;
    case 426: refused.unsupportedVersion++; return;
    case 500: refused.appError++; return;
    case 503: refused.shuttingDown++; return;
    default: refused.other++;
  }
}

/** A copy of the counters as they are now: plain data, safe to keep or send over IPC. */
export function snapshotServerMetrics(): ServerMetrics {
  return { ...serverMetrics, refused: { ...serverMetrics.refused } };
}
