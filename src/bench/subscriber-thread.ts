// A worker thread that holds a share of a delivery benchmark's receivers: the lobby fan-out's
// subscribers, or the rooms scenario's members.
//
// Why a thread: reading is the load generator's expensive side. With 1000 subscribers, every
// published message becomes 1000 socket reads and frame parses here, which on a small machine
// costs about what the server spends writing them. Run on the main thread, that work would delay
// the publishers' pacing timer, and the offered rate would sag exactly when it matters. In its own
// thread (its own event loop, its own libuv loop and sockets) it cannot; and with more cores,
// several threads share the receivers (--threads).
//
// For rooms, each connection signs in (`authenticate` with its user's token, rooms-setup.ts) once
// open; a connection is counted ready when its answer arrived: from then on the server delivers
// its user's room messages to it (chat-protocol.md).
//
// The main thread talks to it with messages:
//   workerData                     → which server(s), how many connections, the run's message
//                                    format (and for rooms, each connection's token)
//   ← { type: 'opened', opened }     when every connection is ready (signed in) or failed
//   { type: 'report', id, step }  →  ← { type: 'report', id, report }   counts (and a histogram)
//   { type: 'close', id }         →  ← { type: 'closed', id }           connections closed
import { parentPort, workerData } from 'node:worker_threads';
import { openAcross, type BenchSocket, type OpenResult, type Target } from './client.js';
import { DeliveryCounter, type Framing } from './message.js';
import { countFailures, requestAll } from './rooms-setup.js';

export interface SubscriberThreadData {
  /**
   * The server, or the server trees of one chat (main.ts --redis): the thread's connections are
   * split evenly over them (openAcross), so every thread holds a share of each tree's.
   */
  targets: Target[];
  count: number;
  localAddresses: string[] | null;
  concurrency: number;
  timeoutMs: number;
  runId: string;
  size: number;
  pubs: number;
  framing: Framing;
  /** Rooms: the token of each connection (by its index in this thread), to authenticate with. */
  tokens: string[] | null;
}

/** What a thread reports once its connections are open (and signed in). */
export interface ThreadOpened {
  result: Omit<OpenResult, 'clients'>;
  /** Rooms: the indexes (in this thread) of the connections that signed in; null for the lobby. */
  signedIn: number[] | null;
}

export type ToSubscriberThread = { type: 'report'; id: number; step: number | null } | { type: 'close'; id: number };

const data = workerData as SubscriberThreadData;
const port = parentPort!;
const counter = new DeliveryCounter(data.runId, data.size, data.count, data.pubs, data.framing);
let clients: BenchSocket[] = [];

const result = await openAcross(data.targets, {
  count: data.count,
  localAddresses: data.localAddresses,
  concurrency: data.concurrency,
  timeoutMs: data.timeoutMs,
  // The hot path: one call per delivered message. BenchSocket.index is the connection's number
  // within this thread, and receivedAtUs the arrival time of the chunk the message came in.
  onText: (client, payload) => counter.onText(client.index, payload, client.receivedAtUs),
  onClose: (client, error) => counter.onClose(client.closeCode, error),
});
clients = result.clients;
let signedIn: number[] | null = null;
if (data.tokens !== null) {
  const tokens = data.tokens;
  const answers = await requestAll(clients.map((client) => ({
    client, body: { uuid: `auth-${client.index}`, action: 'authenticate', token: tokens[client.index]! },
  })), data.timeoutMs);
  signedIn = clients.filter((_, i) => answers[i]!.ok).map((client) => client.index);
  // A connection that did not sign in receives nothing: count it as failed, with the cause.
  const failures = countFailures('authenticate', answers);
  for (const [cause, n] of Object.entries(failures)) {
    result.errors[cause] = (result.errors[cause] ?? 0) + n;
    result.ready -= n;
    result.failed += n;
  }
}
const opened: ThreadOpened = { result: { ...result, clients: undefined } as Omit<OpenResult, 'clients'>, signedIn };
port.postMessage({ type: 'opened', opened });

port.on('message', (message: ToSubscriberThread) => {
  if (message.type === 'report') {
    port.postMessage({ type: 'report', id: message.id, report: counter.report(message.step) });
    return;
  }
  // close: stop counting closes as drops, start the closing handshakes, and answer once every
  // socket is gone (or after 3 s); then leaving the port lets the thread end.
  const open = new Set(clients.filter((client) => !client.socket.destroyed));
  const done = (): void => {
    port.postMessage({ type: 'closed', id: message.id });
    port.close();
  };
  if (open.size === 0) return done();
  const timer = setTimeout(done, 3000);
  for (const client of open) {
    client.handlers = {
      onReady: () => {},
      onText: () => {},
      onClose: () => {
        open.delete(client);
        if (open.size === 0) {
          clearTimeout(timer);
          done();
        }
      },
    };
    client.close();
  }
});
