// The chat's cluster primary (the contract's primary hook, called by the server before it forks):
// the lobby's broadcast loop (broadcast.ts) and the rooms' router (rooms/router.ts), both behind
// the IPC channel of every worker, one outlet per worker.
//
//   worker ──{"t":"chat:…"}──▶ BroadcastLoop ──{"t":"chat:batch"}──▶ workers that follow (broadcast.ts)
//   worker ──{"t":"room:in"}──▶ RoomRouter ───{"t":"room:out"}───▶ workers with a member's connection
//
// Both send through the loop's outlets, so one flow control (broadcast.ts) covers all IPC. A scrape
// of /metrics is answered here too (metrics-cluster.ts): {"t":"metrics:…"}, outside that flow
// control, since it is a few small messages per scrape and must not wait behind a paused chat; the
// message log's figures (chat_log_*) come from here, where the log lives.
import cluster, { type Worker } from 'node:cluster';
import { type Outlet, type ToPrimary } from './broadcast.js';
import { openChatMemory } from './chat-memory.js';
import { readChatConfig } from './config.js';
import { snapshotPrimary } from './metrics.js';
import { MetricsCollector, type MetricsToPrimary } from './metrics-cluster.js';
import { RoomRouter } from './rooms/router.js';
import { log } from './server/logger.js';

export async function startChatPrimary(): Promise<{ stop(): Promise<void> }> {
  const config = readChatConfig(); // a bad CHAT_* setting throws here: the server exits 3
  // The message log is read back before this returns, so before any worker is forked.
  const { loop, store, chatLog, shared, close } = await openChatMemory(config);
  const outlets = new Map<number, Outlet>(); // by cluster worker id
  const rooms = new RoomRouter(config, (id, message) => {
    const outlet = outlets.get(id);
    if (outlet) loop.send(outlet, message);
  }, store);
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
  // Every live worker has a backlog figure, 0 for one that has no outlet yet (it has said nothing).
  const metrics = new MetricsCollector(() => snapshotPrimary(rooms.service, Object.values(cluster.workers ?? {})
    .filter((worker): worker is Worker => worker !== undefined)
    .map((worker) => ({ pid: worker.process.pid ?? 0, pending: outlets.get(worker.id)?.pending ?? 0 }))
    .sort((a, b) => a.pid - b.pid), chatLog, shared));
  const onMessage = (worker: Worker, message: ToPrimary | MetricsToPrimary): void => {
    const type = message?.t;
    if (type === 'room:in') rooms.handle(outletOf(worker).id, message);
    else if (type === 'metrics:ask' || type === 'metrics:report') metrics.handle(worker, message);
    else if (typeof type === 'string' && type.startsWith('chat:')) loop.handle(outletOf(worker), message as ToPrimary);
  };
  const onExit = (worker: Worker): void => {
    metrics.workerGone(worker);
    const outlet = outlets.get(worker.id);
    if (!outlet) return;
    // A worker that follows serves its subscribers from its mirror: the primary has no count of them.
    if (outlet.subscribers > 0 || outlet.following) log.info(`Forgetting the subscribers of worker ${worker.process.pid}`);
    outlets.delete(worker.id);
    loop.removeOutlet(outlet);
    rooms.removeOutlet(worker.id);
  };
  cluster.on('message', onMessage);
  cluster.on('exit', onExit);
  return {
    async stop() {
      cluster.off('message', onMessage);
      cluster.off('exit', onExit);
      rooms.service.close();
      await close(); // after the last worker exited: nothing more is published
    },
  };
}
