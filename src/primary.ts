// The chat's cluster primary (the contract's primary hook, called by the server before it forks):
// the lobby's broadcast loop (broadcast.ts) and the rooms' router (rooms/router.ts), both behind
// the IPC channel of every worker, one outlet per worker.
//
//   worker ──{"t":"chat:…"}──▶ BroadcastLoop ──{"t":"chat:batch"}──▶ workers with subscribers
//   worker ──{"t":"room:in"}──▶ RoomRouter ───{"t":"room:out"}───▶ workers with a member's connection
//
// Both send through the loop's outlets, so one flow control (broadcast.ts) covers all IPC.
import cluster, { type Worker } from 'node:cluster';
import { BroadcastLoop, type Outlet, type ToPrimary } from './broadcast.js';
import { readChatConfig } from './config.js';
import { RoomRouter } from './rooms/router.js';
import { log } from './server/logger.js';

export function startChatPrimary(): { stop(): void } {
  const config = readChatConfig(); // a bad CHAT_* setting throws here: the server exits 3
  const loop = new BroadcastLoop(config.historySize);
  const outlets = new Map<number, Outlet>(); // by cluster worker id
  const rooms = new RoomRouter(config, (id, message) => {
    const outlet = outlets.get(id);
    if (outlet) loop.send(outlet, message);
  });
  const outletOf = (worker: Worker): Outlet => {
    let outlet = outlets.get(worker.id);
    if (!outlet) {
      outlet = {
        id: worker.id,
        subscribers: 0,
        pending: 0,
        deliver: (message, flushed) => {
          if (worker.isConnected()) worker.send(message, undefined, flushed);
          else flushed();
        },
      };
      outlets.set(worker.id, outlet);
      loop.addOutlet(outlet);
    }
    return outlet;
  };
  const onMessage = (worker: Worker, message: ToPrimary): void => {
    const type = message?.t;
    if (type === 'room:in') rooms.handle(outletOf(worker).id, message);
    else if (typeof type === 'string' && type.startsWith('chat:')) loop.handle(outletOf(worker), message);
  };
  const onExit = (worker: Worker): void => {
    const outlet = outlets.get(worker.id);
    if (!outlet) return;
    if (outlet.subscribers > 0) log.info(`Forgetting ${outlet.subscribers} subscribers of worker ${worker.process.pid}`);
    outlets.delete(worker.id);
    loop.removeOutlet(outlet);
    rooms.removeOutlet(worker.id);
  };
  cluster.on('message', onMessage);
  cluster.on('exit', onExit);
  return {
    stop() {
      cluster.off('message', onMessage);
      cluster.off('exit', onExit);
      rooms.service.close();
    },
  };
}
