// The rooms' primary side: the RoomService (service.ts) behind the IPC of every worker. It turns
// each worker's batched events (ipc.ts) into the service's calls, and the service's output into one
// batched message per worker and per turn. With --workers 1 it runs in the process itself and the
// "IPC" is a direct call, exactly as for the lobby's loop (broadcast.ts).
import { log } from '../server/logger.js';
import type { ChatConfig } from '../config.js';
import type { RoomDelivery, RoomsToPrimary, RoomsToWorker } from './ipc.js';
import { MemoryStore } from './memory-store.js';
import { answerSuccess, type ServiceRequest } from './requests.js';
import { RoomService, type OutletId } from './service.js';
import type { RoomStore } from './store.js';

export class RoomRouter {
  readonly service: RoomService;
  private readonly sendTo: (outlet: OutletId, message: RoomsToWorker) => void;
  /** This turn's deliveries, per worker. */
  private readonly batches = new Map<OutletId, RoomDelivery[]>();
  private flushScheduled = false;

  /** `sendTo` carries a batch to a worker (IPC, with the lobby's flow control, or a direct call). */
  constructor(config: ChatConfig, sendTo: (outlet: OutletId, message: RoomsToWorker) => void, store: RoomStore = new MemoryStore({ historyLimit: config.historySize })) {
    this.sendTo = sendTo;
    this.service = new RoomService(store, {
      historySize: config.historySize,
      maxMembersPerRoom: config.maxRoomMembers,
      maxRoomsPerUser: config.maxRoomsPerUser,
      maxMessageLength: config.maxMessageLength,
    }, {
      reply: (outlet, conn, text) => this.push(outlet, [conn, text]),
      deliver: (outlet, users, text) => this.push(outlet, [users as string[], text]),
    }, Date.now, (delayMs, run) => { setTimeout(run, delayMs).unref(); });
  }

  /** A batch of events from one worker, in the order they happened there. */
  handle(outlet: OutletId, message: RoomsToPrimary): void {
    for (const event of message.m) {
      switch (event.k) {
        case 'open':
          this.service.connectionOpened(outlet, event.u);
          // Its answer leaves behind every outcome handled before it (service.ts, "Order"): the
          // worker makes the connection live when it arrives (client.ts).
          this.service.replyInOrder(outlet, event.c, answerSuccess(event.q, 'authenticate', { user: event.u }));
          break;
        case 'close':
          this.service.connectionClosed(outlet, event.u);
          break;
        case 'req':
          this.service.handle(outlet, event.c, event.u, event.q as ServiceRequest);
          break;
        default:
          log.warning(`Ignoring an unknown rooms event from worker ${outlet}`);
      }
    }
  }

  /** A worker exited: its connections are gone. */
  removeOutlet(outlet: OutletId): void {
    this.batches.delete(outlet);
    this.service.outletGone(outlet);
  }

  private push(outlet: OutletId, delivery: RoomDelivery): void {
    let batch = this.batches.get(outlet);
    if (!batch) this.batches.set(outlet, (batch = []));
    batch.push(delivery);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    for (const [outlet, m] of this.batches) this.sendTo(outlet, { t: 'room:out', m });
    this.batches.clear();
  }
}
