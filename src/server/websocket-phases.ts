// The phases of one ASGI WebSocket session (asgi-websocket.ts) and every way out of each, as data,
// in the manner of h11's _state.py: everything that decides what the dispatcher does next lives in
// the two tables below, and the dispatcher only carries out the action a table names. Pure: no
// I/O, no session; test/websocket-phases.test.ts checks every cell.
//
// Two kinds of input move a session (ASGI "HTTP & WebSocket" spec, WebSocket section; the
// contract's "WebSocket" rules):
//   - the messages the application sends (APP_MESSAGES): a message with no entry for the current
//     phase is misuse, and `send` rejects with an error naming what was expected and what came;
//   - what happens around it (WIRE_EVENTS): the peer's Close (or a protocol error: the codec
//     closes with the rule's code), the transport lost (TCP dropped, EOF, a timeout: 1006), the
//     application returning or raising, the server shutting down.
//
//                              ┌─ websocket.send ─┐
//                              ▼                  │
//   CONNECTING ───accept───▶ ACCEPTED ────────────┘
//    │   │                    │  │
//    │   │                    │  └─ websocket.close, app returned (Close 1000),
//    │   │                    │     app raised (Close 1011) ─────────────────────▶ CLOSING
//    │   │                    │                                                      │
//    │   │                    └─ peer close, lost, shutdown (Close 1001) ──┐         │ peer close,
//    │   │                                                                 ▼         │ lost, shutdown
//    │   └─ websocket.close, app returned (403), app raised (500), ──▶  CLOSED ◀─────┘
//    │      lost, shutdown                                                 ▲
//    │                                                                     │
//    └─ websocket.http.response.start ──▶ RESPONDING ─ last body; app ─────┘
//                                          │    ▲     returned or raised
//                                          └────┘     (abort); lost; shutdown
//                                   body with more_body
//
// CLOSED is final: the application's `receive` answers `websocket.disconnect` from then on, and
// every `send` rejects.
import { unexpectedMessage } from './asgi-errors.js';

export type Phase = 'connecting' | 'accepted' | 'responding' | 'closing' | 'closed';
export const PHASES: readonly Phase[] = ['connecting', 'accepted', 'responding', 'closing', 'closed'];

/** What the dispatcher does with an application message the table allows. */
export type AppAction =
  | 'accept' // write the 101 with the app's subprotocol and headers (§4.2.2)
  | 'deny' // refuse the handshake: HTTP 403
  | 'respond' // start the app's own HTTP response (the denial-response extension)
  | 'respond-body' // a part of that response's body
  | 'send' // a text or binary message
  | 'close'; // start the closing handshake with the app's code and reason (§7.1.2)

export interface AppTransition {
  action: AppAction;
  /** The phase once the action is done. */
  next: Phase;
  /** For a message with `more_body`: the phase after the last one (`more_body` false). */
  nextIfLast?: Phase;
}

/** (phase, application message type) → action and next phase. Absent: misuse. */
export const APP_MESSAGES: Readonly<Record<Phase, Readonly<Record<string, AppTransition>>>> = {
  connecting: row({
    'websocket.accept': { action: 'accept', next: 'accepted' },
    'websocket.close': { action: 'deny', next: 'closed' },
    'websocket.http.response.start': { action: 'respond', next: 'responding' },
  }),
  responding: row({
    'websocket.http.response.body': { action: 'respond-body', next: 'responding', nextIfLast: 'closed' },
  }),
  accepted: row({
    'websocket.send': { action: 'send', next: 'accepted' },
    'websocket.close': { action: 'close', next: 'closing' },
  }),
  closing: row({}),
  closed: row({}),
};

export type WireEvent = 'peer-close' | 'transport-lost' | 'app-returned' | 'app-raised' | 'server-shutdown';
export const WIRE_EVENT_NAMES: readonly WireEvent[] = ['peer-close', 'transport-lost', 'app-returned', 'app-raised', 'server-shutdown'];

/** What the dispatcher does when something happens around the application. */
export type WireAction =
  | 'report-disconnect' // the app's receive gets websocket.disconnect with the transport's code
  | 'deny-403' // refuse the handshake: HTTP 403 (the app returned without accepting)
  | 'deny-500' // refuse the handshake: HTTP 500 (the app raised before accepting)
  | 'close-1000' // Close 1000: the app returned without closing
  | 'close-1011' // Close 1011: the app raised
  | 'abort' // destroy the socket: a denial response left unfinished
  | 'close-going-away' // Close 1001 "server shutting down", and the app sees that disconnect now
  | 'abort-going-away' // destroy the socket (no WebSocket yet), and the app sees 1001 now
  | 'report-going-away' // our Close is already out: the app sees 1001 now
  | 'ignore'; // nothing left to do

export interface WireTransition {
  action: WireAction;
  next: Phase;
}

/** (phase, event) → action and next phase. Every cell is filled: nothing around us is misuse. */
export const WIRE_EVENTS: Readonly<Record<Phase, Readonly<Record<WireEvent, WireTransition>>>> = {
  connecting: {
    // Frames are read only after the 101, so no Close arrives now; a FIN or a reset may.
    'peer-close': { action: 'report-disconnect', next: 'closed' },
    'transport-lost': { action: 'report-disconnect', next: 'closed' },
    'app-returned': { action: 'deny-403', next: 'closed' },
    'app-raised': { action: 'deny-500', next: 'closed' },
    'server-shutdown': { action: 'abort-going-away', next: 'closed' },
  },
  responding: {
    'peer-close': { action: 'report-disconnect', next: 'closed' },
    'transport-lost': { action: 'report-disconnect', next: 'closed' },
    'app-returned': { action: 'abort', next: 'closed' },
    'app-raised': { action: 'abort', next: 'closed' },
    'server-shutdown': { action: 'abort-going-away', next: 'closed' },
  },
  accepted: {
    'peer-close': { action: 'report-disconnect', next: 'closed' },
    'transport-lost': { action: 'report-disconnect', next: 'closed' },
    'app-returned': { action: 'close-1000', next: 'closing' },
    'app-raised': { action: 'close-1011', next: 'closing' },
    'server-shutdown': { action: 'close-going-away', next: 'closed' },
  },
  closing: {
    // Waiting for the peer's Close, bounded by the transport's close timer (then: transport-lost).
    'peer-close': { action: 'report-disconnect', next: 'closed' },
    'transport-lost': { action: 'report-disconnect', next: 'closed' },
    'app-returned': { action: 'ignore', next: 'closing' },
    'app-raised': { action: 'ignore', next: 'closing' },
    'server-shutdown': { action: 'report-going-away', next: 'closed' },
  },
  closed: {
    'peer-close': { action: 'ignore', next: 'closed' },
    'transport-lost': { action: 'ignore', next: 'closed' },
    'app-returned': { action: 'ignore', next: 'closed' },
    'app-raised': { action: 'ignore', next: 'closed' },
    'server-shutdown': { action: 'ignore', next: 'closed' },
  },
};

/** The table's entry for an application message, or null when it may not be sent in `phase`. */
export function appTransition(phase: Phase, type: unknown): AppTransition | null {
  // A type that is not a string cannot name an entry (and is never used as a property key).
  return typeof type === 'string' ? APP_MESSAGES[phase][type] ?? null : null;
}

/** The error for a message `phase` does not allow: what was expected, and what came instead. */
export function misuseError(phase: Phase, got: unknown): Error {
  const expected = Object.keys(APP_MESSAGES[phase]);
  if (expected.length > 0) return unexpectedMessage(got, expected);
  const shown = typeof got === 'string' ? `'${got}'` : String(got);
  if (phase === 'closing') return new Error(`Unexpected ASGI message ${shown}, after sending 'websocket.close'`);
  return new Error(`Unexpected ASGI message ${shown}: the WebSocket connection is closed`);
}

/** A table row without a prototype, so that no message type ('constructor'...) finds an entry by inheritance. */
function row(entries: Record<string, AppTransition>): Readonly<Record<string, AppTransition>> {
  return Object.freeze(Object.assign(Object.create(null) as Record<string, AppTransition>, entries));
}
