// Tests for src/server/websocket-phases.ts: the WebSocket dispatcher's transition tables, cell by
// cell. Every phase × every message an ASGI application can send (all of the spec's send types,
// lifespan and http ones included, and names and values that are no type at all), and every phase ×
// every event around the application, each with its exact outcome; misuse errors word for word.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  APP_MESSAGES, PHASES, WIRE_EVENTS, WIRE_EVENT_NAMES, appTransition, misuseError,
  type AppTransition, type Phase, type WireEvent, type WireTransition,
} from '../src/server/websocket-phases.js';

/** Every `type` an ASGI 3.0 application sends, in any scope, plus some that are none. */
const SEND_TYPES: unknown[] = [
  'lifespan.startup.complete', 'lifespan.startup.failed', 'lifespan.shutdown.complete', 'lifespan.shutdown.failed',
  'http.response.start', 'http.response.body', 'http.response.trailers',
  'websocket.accept', 'websocket.send', 'websocket.close',
  'websocket.http.response.start', 'websocket.http.response.body',
  // Not types: an unknown name, a near miss, names an object inherits, and values that are no string.
  'websocket.unknown', 'Websocket.Accept', 'constructor', '__proto__', 'toString', '', undefined, null, 42,
];

const show = (type: unknown): string => (typeof type === 'string' ? `'${type}'` : String(type));

/** The allowed cells: (phase, type) → transition. Every other cell of PHASES × SEND_TYPES is misuse. */
const ALLOWED: Record<Phase, Record<string, AppTransition>> = {
  connecting: {
    'websocket.accept': { action: 'accept', next: 'accepted' },
    'websocket.close': { action: 'deny', next: 'closed' },
    'websocket.http.response.start': { action: 'respond', next: 'responding' },
  },
  responding: {
    'websocket.http.response.body': { action: 'respond-body', next: 'responding', nextIfLast: 'closed' },
  },
  accepted: {
    'websocket.send': { action: 'send', next: 'accepted' },
    'websocket.close': { action: 'close', next: 'closing' },
  },
  closing: {},
  closed: {},
};

/** The exact error `send` rejects with, for each phase. */
const MISUSE: Record<Phase, (got: string) => string> = {
  connecting: (got) => `Expected ASGI message 'websocket.accept', 'websocket.close' or 'websocket.http.response.start', but got ${got}`,
  responding: (got) => `Expected ASGI message 'websocket.http.response.body', but got ${got}`,
  accepted: (got) => `Expected ASGI message 'websocket.send' or 'websocket.close', but got ${got}`,
  closing: (got) => `Unexpected ASGI message ${got}, after sending 'websocket.close'`,
  closed: (got) => `Unexpected ASGI message ${got}: the WebSocket connection is closed`,
};

test('the phases are exactly connecting, accepted, responding, closing and closed', () => {
  assert.deepEqual([...PHASES], ['connecting', 'accepted', 'responding', 'closing', 'closed']);
  assert.deepEqual(Object.keys(APP_MESSAGES).sort(), [...PHASES].sort());
  assert.deepEqual(Object.keys(WIRE_EVENTS).sort(), [...PHASES].sort());
});

for (const phase of PHASES) {
  for (const type of SEND_TYPES) {
    const allowed = typeof type === 'string' && Object.hasOwn(ALLOWED[phase], type) ? ALLOWED[phase][type]! : null;
    const outcome = allowed ? `${allowed.action} → ${allowed.next}${allowed.nextIfLast ? ` (last: ${allowed.nextIfLast})` : ''}` : 'misuse';
    test(`app message: ${phase} × ${show(type)} → ${outcome}`, () => {
      const step = appTransition(phase, type);
      if (allowed) {
        assert.deepEqual(step === null ? null : { ...step }, allowed);
      } else {
        assert.equal(step, null);
        const error = misuseError(phase, type);
        assert.ok(error instanceof Error);
        assert.equal(error.message, MISUSE[phase](show(type)));
      }
    });
  }
}

test('APP_MESSAGES has no entries beyond the allowed cells (no type outside SEND_TYPES slips in)', () => {
  for (const phase of PHASES) {
    assert.deepEqual(Object.keys(APP_MESSAGES[phase]).sort(), Object.keys(ALLOWED[phase]).sort(), phase);
  }
});

test('misuse errors name what was expected and what came, in every phase that expects something', () => {
  for (const phase of ['connecting', 'responding', 'accepted'] as const) {
    const message = misuseError(phase, 'http.response.start').message;
    assert.match(message, /^Expected ASGI message /, phase);
    for (const expected of Object.keys(ALLOWED[phase])) assert.ok(message.includes(`'${expected}'`), `${phase}: names ${expected}`);
    assert.ok(message.endsWith(", but got 'http.response.start'"), `${phase}: names what came`);
  }
});

test('the tables are frozen: a dispatcher cannot change them by accident', () => {
  for (const phase of PHASES) {
    assert.ok(Object.isFrozen(APP_MESSAGES[phase]), phase);
    assert.throws(() => { (APP_MESSAGES[phase] as Record<string, AppTransition>)['websocket.send'] = { action: 'send', next: 'closed' }; }, TypeError);
  }
});

// ---- events around the application -----------------------------------------------------------

const WIRE: Record<Phase, Record<WireEvent, WireTransition>> = {
  connecting: {
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

test('the events around the application are exactly these five', () => {
  assert.deepEqual([...WIRE_EVENT_NAMES], ['peer-close', 'transport-lost', 'app-returned', 'app-raised', 'server-shutdown']);
  for (const phase of PHASES) assert.deepEqual(Object.keys(WIRE_EVENTS[phase]).sort(), [...WIRE_EVENT_NAMES].sort(), phase);
});

for (const phase of PHASES) {
  for (const event of WIRE_EVENT_NAMES) {
    const expected = WIRE[phase][event];
    test(`wire event: ${phase} × ${event} → ${expected.action} → ${expected.next}`, () => {
      assert.deepEqual({ ...WIRE_EVENTS[phase][event] }, expected);
    });
  }
}

test('closed is final: no message is allowed and every event is ignored', () => {
  assert.deepEqual(Object.keys(APP_MESSAGES.closed), []);
  for (const event of WIRE_EVENT_NAMES) assert.deepEqual({ ...WIRE_EVENTS.closed[event] }, { action: 'ignore', next: 'closed' });
});

test('every phase but closed can reach closed, through the tables alone', () => {
  const reachable = new Set<Phase>(['connecting']);
  for (let changed = true; changed;) {
    changed = false;
    for (const phase of [...reachable]) {
      const nexts = [
        ...Object.values(APP_MESSAGES[phase]).flatMap((t) => [t.next, ...(t.nextIfLast ? [t.nextIfLast] : [])]),
        ...Object.values(WIRE_EVENTS[phase]).map((t) => t.next),
      ];
      for (const next of nexts) if (!reachable.has(next)) { reachable.add(next); changed = true; }
    }
  }
  assert.deepEqual([...reachable].sort(), [...PHASES].sort(), 'every phase is reachable from connecting');
  for (const phase of PHASES) {
    if (phase === 'closed') continue;
    const direct = Object.values(WIRE_EVENTS[phase]).some((t) => t.next === 'closed');
    assert.ok(direct, `${phase}: some event leads straight to closed (a peer can always leave)`);
  }
});
