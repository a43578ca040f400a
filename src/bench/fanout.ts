// The lobby fan-out scenario: C subscribers and P publishers on /chat; every message a publisher
// sends must reach every connection (the publishers too: the lobby broadcasts to its senders as
// well). This file opens the connections: the subscribers in their threads, the publishers here;
// deliveries.ts paces, counts and judges (the ramp, the fixed run, the figures), as it does for the
// rooms scenario (rooms.ts).
//
// Several server trees can serve one lobby when they share Redis (CHAT_REDIS_URL: main.ts
// --redis). Given their addresses, the scenario splits the subscribers and the publishers evenly
// over the trees; a message sent to one tree must then reach every connection of every tree, so
// what is measured includes the trip through Redis and back into each tree.
import { emptyOpen, mergeOpenResults, openAcross, sourceAddresses, type BenchSocket, type Target } from './client.js';
import {
  measureDeliveries, openErrors, sleep, startThreads,
  type DeliveryOptions, type DeliveryResult, type MessageSource, type ReceiverThread,
} from './deliveries.js';
import { DeliveryCounter, MessageTemplate, newRunId } from './message.js';
import { ULIMIT_HINT, openFilesLimit } from './proc.js';

export interface FanoutOptions extends DeliveryOptions {
  subs: number;
  pubs: number;
  /**
   * Other server trees of the same chat, beside `target` (serverPid then lists every tree's
   * primary). Subscribers and publishers are split evenly over all the trees, `target` first.
   */
  otherTargets?: Target[];
}

export interface FanoutResult extends DeliveryResult {
  scenario: 'fanout';
  subs: number;
  pubs: number;
  /** Server trees the connections were split over (1: one server). */
  trees: number;
}

export async function runFanout(o: FanoutOptions): Promise<FanoutResult> {
  const runId = newRunId();
  const targets = [o.target, ...(o.otherTargets ?? [])];
  const recipientsWanted = o.subs + o.pubs;
  const localAddresses = sourceAddresses(o.target.host, recipientsWanted);
  const threads = Math.max(1, Math.min(o.threads, o.subs));
  const result: FanoutResult = {
    scenario: 'fanout', subs: o.subs, pubs: o.pubs, trees: targets.length, size: o.size, threads, run_id: runId,
    connect: { subscribers: emptyOpen(), publishers: emptyOpen() },
    recipients: 0, steps: [], ramp: null, fixed: null,
    out_of_order: 0, foreign_texts: 0, close_codes: {}, error: null,
  };

  // Each connection is a file descriptor here and one in the server: check the limit first.
  const limit = openFilesLimit();
  if (limit !== null && recipientsWanted + 100 > limit) {
    result.error = `${recipientsWanted} connections need more than the open-files limit of ${limit}: ${ULIMIT_HINT}`;
    return result;
  }

  // ---- connect: subscribers in their threads, then publishers here ----
  const where = targets.length > 1 ? ` over ${targets.length} server trees` : '';
  o.log(`fan-out: opening ${o.subs} subscribers${where} in ${threads} thread(s)${localAddresses ? ` from ${localAddresses.join(', ')}` : ''}`);
  const workers: ReceiverThread[] = startThreads(o.subs, threads, (_first, count) => ({
    targets, count, localAddresses, concurrency: Math.ceil(o.concurrency / threads),
    timeoutMs: o.connectTimeoutS * 1000, runId, size: o.size, pubs: o.pubs, framing: 'lobby', tokens: null,
  }));
  const mainCounter = new DeliveryCounter(runId, o.size, o.pubs, o.pubs);
  let publishers: BenchSocket[] = [];
  try {
    const opened = await Promise.all(workers.map((w) => w.opened));
    result.connect.subscribers = mergeOpenResults(opened.map((x) => x.result));
    const pubResult = await openAcross(targets, {
      count: o.pubs, localAddresses, concurrency: o.pubs, timeoutMs: o.connectTimeoutS * 1000,
      onText: (client, payload) => { mainCounter.onText(client.index, payload, client.receivedAtUs); },
      onClose: (client, error) => mainCounter.onClose(client.closeCode, error),
    });
    publishers = pubResult.clients;
    result.connect.publishers = { ...pubResult, clients: undefined } as FanoutResult['connect']['publishers'];
    const subs = result.connect.subscribers;
    o.log(`fan-out: ${subs.ready}/${o.subs} subscribers ready in ${subs.elapsed_s} s (${subs.handshakes_per_s}/s), ${publishers.length}/${o.pubs} publishers`);
    if (subs.failed > 0 || pubResult.failed > 0) {
      const errors = openErrors(subs, pubResult);
      result.error = `could not open every connection: ${JSON.stringify(errors)}`;
      if (errors['EMFILE'] || errors['ENFILE']) result.error += ` (out of file descriptors: ${ULIMIT_HINT})`;
      if (subs.ready === 0 || publishers.length === 0) return result;
      o.log(`fan-out: ${result.error}; going on with the connections that opened`);
    }
    result.recipients = subs.ready + publishers.length;
    await sleep(500); // let the handshakes' garbage and the server's accept backlog settle

    // Every message reaches every open connection, the publishers' own included.
    const templates = publishers.map((client) => new MessageTemplate(runId, client.index, o.size));
    const seqs = publishers.map(() => 0);
    const recipients = result.recipients;
    const source: MessageSource = {
      next: (i, step, sentUs) => ({ text: templates[i]!.fill(step, seqs[i]!++, sentUs), recipients }),
    };
    await measureDeliveries(o, {
      threads: workers, mainCounter, publishers, source, recipients, publishersReceiveAcks: false, label: 'fan-out',
    }, result);
    return result;
  } catch (error) {
    result.error = (error as Error).message;
    return result;
  } finally {
    for (const client of publishers) client.close();
    await Promise.all(workers.map((w) => w.close().catch(() => {})));
  }
}
