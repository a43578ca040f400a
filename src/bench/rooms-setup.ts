// Rooms requests during the rooms scenario's setup: signing in and creating rooms, before anything
// is measured. Used by the receiving threads (each member connection authenticates) and by the
// main thread (the publishers authenticate, then create the rooms).
//
// The protocol answers every request with its `uuid` (chat-protocol.md, "Requests and answers"),
// so requests can be pipelined: all are sent at once, and each answer is matched to its request by
// uuid. Pushes (`room_update`, `presence`) carry no uuid and are ignored here. While its requests
// are pending, a connection's handlers are swapped for the matcher's, and restored after, so the
// measuring handlers never see the setup's answers. Setup is not the hot path: plain JSON.parse.
import type { BenchSocket, ClientHandlers } from './client.js';
import { Opcode, encodeMaskedFrame } from '../server/frames.js';

/** A rooms request: `uuid` must be unique among the requests of one requestAll call. */
export interface SetupRequest {
  client: BenchSocket;
  body: { uuid: string; action: string } & Record<string, unknown>;
}

/** The answer to one request: the parsed answer if it came, else why not. */
export type SetupAnswer =
  | { ok: true; answer: Record<string, unknown> }
  | { ok: false; error: string };

/**
 * Sends every request and resolves when each is answered (status "success" → ok; "error" → its
 * error code), its connection closed, or `timeoutMs` passed. Answers come back in request order.
 */
export function requestAll(requests: SetupRequest[], timeoutMs: number): Promise<SetupAnswer[]> {
  const answers: (SetupAnswer | undefined)[] = new Array<SetupAnswer | undefined>(requests.length);
  const byUuid = new Map<string, number>();
  /** Per connection: its requests still pending, and the handlers to restore. */
  const pending = new Map<BenchSocket, { left: Set<number>; saved: ClientHandlers }>();
  for (const [i, request] of requests.entries()) {
    if (byUuid.has(request.body.uuid)) throw new Error(`requestAll: uuid "${request.body.uuid}" used twice`);
    byUuid.set(request.body.uuid, i);
    let entry = pending.get(request.client);
    if (!entry) pending.set(request.client, (entry = { left: new Set(), saved: request.client.handlers }));
    entry.left.add(i);
  }
  let unanswered = requests.length;
  return new Promise((resolve) => {
    if (unanswered === 0) return resolve([]);
    const settle = (i: number, answer: SetupAnswer): void => {
      if (answers[i]) return;
      answers[i] = answer;
      const client = requests[i]!.client;
      const entry = pending.get(client)!;
      entry.left.delete(i);
      if (entry.left.size === 0) {
        client.handlers = entry.saved; // back to measuring
        pending.delete(client);
      }
      if (--unanswered === 0) {
        clearTimeout(timer);
        resolve(answers as SetupAnswer[]);
      }
    };
    const timer = setTimeout(() => {
      for (const entry of [...pending.values()]) for (const i of [...entry.left]) settle(i, { ok: false, error: 'timeout' });
    }, timeoutMs);
    for (const [client, entry] of pending) {
      client.handlers = {
        onReady: () => {},
        onText: (_client, payload) => {
          let value: unknown;
          try {
            value = JSON.parse(payload.toString('utf8'));
          } catch {
            return;
          }
          if (typeof value !== 'object' || value === null) return;
          const answer = value as Record<string, unknown>;
          const i = typeof answer['uuid'] === 'string' ? byUuid.get(answer['uuid']) : undefined;
          if (i === undefined || !entry.left.has(i)) return; // a push, or not ours
          settle(i, answer['status'] === 'success' ? { ok: true, answer } : { ok: false, error: String(answer['error'] ?? 'error') });
        },
        onClose: (closed, error) => {
          const saved = entry.saved;
          for (const i of [...entry.left]) settle(i, { ok: false, error: 'connection closed' });
          saved.onClose(closed, error); // the measuring side counts the drop as well
        },
      };
    }
    for (const request of requests) {
      if (!request.client.ready) {
        settle(byUuid.get(request.body.uuid)!, { ok: false, error: 'connection not open' });
        continue;
      }
      request.client.sendFrame(encodeMaskedFrame(Opcode.TEXT, Buffer.from(JSON.stringify(request.body))));
    }
  });
}

/** Failures by cause, e.g. { "authenticate: bad_token": 3 }. */
export function countFailures(action: string, answers: SetupAnswer[]): Record<string, number> {
  const errors: Record<string, number> = {};
  for (const answer of answers) {
    if (answer.ok) continue;
    const key = `${action}: ${answer.error}`;
    errors[key] = (errors[key] ?? 0) + 1;
  }
  return errors;
}
