// Integration tests of the chat across worker processes (`--workers N`), with real sockets:
//   - 40 clients on 4 workers (shown by /healthz answering from all four pids, at least two of
//     which hold connections, 40 in all); 5 senders × 20 messages sent concurrently reach every client exactly once,
//     in the same order everywhere, with strictly increasing ids;
//   - SIGKILL of one worker: its clients see an abnormal close (1006), the clients on the other
//     workers keep chatting, and a replacement worker starts serving new clients.
// Both with `--worker-accept round-robin`, where the primary hands connections out in turn, so
// that which worker gets a connection is known. With the default, `kernel`, the kernel picks the
// worker whose accept comes first, and no test can say which one that is (nor that a replacement
// gets any connection at all while the others are free): what holds whoever accepts is tested
// there, 40 clients that all get every message once, in one order, served by workers only.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { ChatClient, closeAll, healthz, within, type ChatMessage, type Health } from './helpers/chat-client.js';
import { startServer, type RunningServer } from './helpers/server.js';

const isChat = (m: ChatMessage): boolean => typeof m.id === 'number';

/** Asks /healthz `count` times on fresh connections; the last answer seen from each pid. */
async function survey(port: number, count: number): Promise<Map<number, Health>> {
  const byPid = new Map<number, Health>();
  for (let i = 0; i < count; i++) {
    const health = await healthz(port);
    byPid.set(health.pid, health);
  }
  return byPid;
}

async function joinMany(server: RunningServer, count: number, prefix: string, into: ChatClient[]): Promise<ChatClient[]> {
  const joined = await Promise.all(Array.from({ length: count }, (_, i) => ChatClient.join(server.wsUrl, `${prefix}${i}`)));
  into.push(...joined);
  return joined;
}

/** 5 of the clients send 20 messages each, all at once: every client gets all 100 once, in one order. */
async function everyMessageOnceInOneOrder(all: ChatClient[]): Promise<void> {
  // 5 senders × 20 messages, all sent at once.
  const senders = all.filter((_, i) => i % 8 === 0);
  assert.equal(senders.length, 5);
  const texts: string[] = [];
  senders.forEach((sender, s) => {
    for (let i = 0; i < 20; i++) {
      const text = `sender ${s} message ${i}`;
      texts.push(text);
      sender.say(`sender ${s}`, text);
    }
  });
  // Wait until everyone has all 100, then publish an end marker: anything (a duplicate) that
  // was still on its way would arrive before it.
  await Promise.all(all.map(async (client) => {
    const want = new Set(texts);
    await client.waitFor((m) => { want.delete(m.message as string); return want.size === 0; }, 15000, 'all 100 messages');
  }));
  all[39]!.say('closer', 'END');
  const logs = await Promise.all(all.map(async (client) => {
    await client.waitFor((m) => m.message === 'END', 10000, 'the END marker');
    return client.received.filter(isChat);
  }));

  const reference = logs[0]!;
  for (const [c, log] of logs.entries()) {
    const got = log.map((m) => m.message);
    assert.equal(got.length, 101, `client ${c} received ${got.length} chat messages, expected 100 + END`);
    assert.equal(new Set(got).size, 101, `client ${c} received a message twice`);
    assert.equal(got[100], 'END');
    assert.deepEqual(new Set(got.slice(0, 100)), new Set(texts), `client ${c} received exactly the 100 messages`);
    // One order everywhere: same ids, same texts, same positions.
    assert.deepEqual(log.map((m) => [m.id, m.message]), reference.map((m) => [m.id, m.message]), `client ${c} saw another order than client 0`);
  }
  const ids = reference.map((m) => m.id!);
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i]! > ids[i - 1]!, `ids strictly increase: ${ids[i - 1]} then ${ids[i]}`);
  assert.equal(ids[99]! - ids[0]!, 99, 'the 100 messages have consecutive ids');
  // Each sender's messages keep the order in which it sent them.
  for (let s = 0; s < 5; s++) {
    const mine = reference.map((m) => m.message as string).filter((t) => t.startsWith(`sender ${s} `));
    assert.deepEqual(mine, Array.from({ length: 20 }, (_, i) => `sender ${s} message ${i}`), `sender ${s}'s order`);
  }
}

describe('chat on 4 workers', () => {
  let server: RunningServer | undefined;
  const clients: ChatClient[] = [];
  after(async () => {
    await closeAll(clients);
    await server?.stop();
  });

  test('40 clients on several workers all get every message once, in one order', async () => {
    server = await startServer({ args: ['--workers', '4', '--worker-accept', 'round-robin'], env: { CHAT_HISTORY_SIZE: '0' } });
    const all = await joinMany(server, 40, 'client ', clients);

    // Round-robin spreads the connections: /healthz, each on a new connection, answers from
    // several workers, and more than one of them holds chat connections.
    const byPid = await survey(server.port, 16);
    const busy = [...byPid.values()].filter((h) => h.connections > 0);
    assert.ok(busy.length >= 2, `at least two workers hold connections: ${JSON.stringify([...byPid.values()])}`);
    for (const health of byPid.values()) {
      assert.notEqual(health.pid, server.proc.pid, 'the primary serves no requests');
      assert.ok(health.connections <= 40);
    }
    // The primary hands connections to its free workers in turn, and each /healthz request ends
    // before the next begins: 16 of them reach each of the 4 workers 4 times.
    assert.equal(byPid.size, 4, `/healthz answered from every worker: ${JSON.stringify([...byPid.values()])}`);
    const total = [...byPid.values()].reduce((sum, h) => sum + h.connections, 0);
    assert.equal(total, 40, `the workers' connections add up to 40 (${JSON.stringify([...byPid.values()])})`);

    await everyMessageOnceInOneOrder(all);
  });
});

describe('a worker killed with SIGKILL', () => {
  let server: RunningServer | undefined;
  const clients: ChatClient[] = [];
  after(async () => {
    await closeAll(clients);
    await server?.stop();
  });

  test('its clients are dropped, the others keep chatting, and a replacement serves new clients', async () => {
    server = await startServer({ args: ['--workers', '3', '--worker-accept', 'round-robin'], env: { CHAT_HISTORY_SIZE: '0' } });
    const first = await joinMany(server, 9, 'before ', clients);

    // Learn every worker's pid (round-robin: a few requests reach all three).
    let byPid = new Map<number, Health>();
    for (let round = 0; round < 10 && byPid.size < 3; round++) {
      for (const [pid, health] of await survey(server.port, 3)) byPid.set(pid, health);
    }
    assert.equal(byPid.size, 3, `found the three workers: ${[...byPid.keys()].join(', ')}`);
    const originals = new Set(byPid.keys());
    const victim = [...byPid.values()].sort((a, b) => b.connections - a.connections)[0]!;
    assert.ok(victim.connections > 0, `the victim holds connections: ${JSON.stringify(victim)}`);
    const onVictim = victim.connections;
    // Nothing may be in flight when the worker dies, so that the count is exact.
    process.kill(victim.pid, 'SIGKILL');

    // Exactly that worker's clients are dropped, with an abnormal closure.
    const closedOnes: ChatClient[] = [];
    await within(new Promise<void>((resolve) => {
      for (const client of first) {
        void client.closed.then(() => {
          closedOnes.push(client);
          if (closedOnes.length === onVictim) resolve();
        });
      }
    }), 5000, `the ${onVictim} clients of worker ${victim.pid} to be closed`);
    for (const client of closedOnes) assert.equal(client.closeInfo!.code, 1006, `${client.name}: close code`);
    const survivors = first.filter((c) => !closedOnes.includes(c));
    assert.equal(survivors.length, 9 - onVictim);

    // The survivors keep chatting: a message sent after the kill reaches all of them.
    survivors[0]!.say('survivor', 'still here');
    await Promise.all(survivors.map((c) => c.waitFor((m) => m.message === 'still here', 5000, '"still here" after the kill')));
    assert.equal(closedOnes.length, onVictim, 'no survivor was dropped');
    assert.ok(survivors.every((c) => c.isOpen));

    // A replacement worker appears (first restart after ~100 ms).
    const deadline = Date.now() + 10000;
    let replacement: number | undefined;
    let lastError: unknown = null;
    while (replacement === undefined) {
      assert.ok(Date.now() < deadline, `no new worker pid answered /healthz within 10 s (last error: ${String(lastError)})`);
      let health: Health;
      try {
        health = await healthz(server.port);
      } catch (error) {
        // The primary may hand a connection to the dead worker before it has noticed the death.
        lastError = error;
        continue;
      }
      assert.notEqual(health.pid, victim.pid, 'the killed worker answered /healthz');
      if (!originals.has(health.pid)) replacement = health.pid;
      else await new Promise((resolve) => setTimeout(resolve, 20));
    }

    // New clients connect; round-robin puts some on the replacement, and everyone chats.
    const fresh = await joinMany(server, 6, 'after ', clients);
    byPid = new Map();
    for (let round = 0; round < 10 && !(byPid.get(replacement)?.connections); round++) {
      for (const [pid, health] of await survey(server.port, 3)) byPid.set(pid, health);
    }
    assert.ok((byPid.get(replacement)?.connections ?? 0) > 0, `the replacement ${replacement} holds new clients: ${JSON.stringify([...byPid.values()])}`);
    assert.ok(!byPid.has(victim.pid));

    const everyone = [...survivors, ...fresh];
    fresh.forEach((client, i) => client.say(`fresh ${i}`, `hello from fresh ${i}`));
    await Promise.all(everyone.map(async (client) => {
      const want = new Set(fresh.map((_, i) => `hello from fresh ${i}`));
      await client.waitFor((m) => { want.delete(m.message as string); return want.size === 0; }, 5000, 'every fresh client\'s hello');
    }));
    assert.ok(everyone.every((c) => c.isOpen));
    assert.match(server.output(), new RegExp(`Worker ${victim.pid} died`), 'the primary logged the crash');
  });
});

describe('chat on 4 workers accepting from the kernel (the default)', () => {
  let server: RunningServer | undefined;
  const clients: ChatClient[] = [];
  after(async () => {
    await closeAll(clients);
    await server?.stop();
  });

  test('40 clients, wherever the kernel put them, all get every message once, in one order', async () => {
    server = await startServer({ args: ['--workers', '4'], env: { CHAT_HISTORY_SIZE: '0' } });
    const all = await joinMany(server, 40, 'client ', clients);
    // Every request is served by a worker, never by the primary (which only supervises).
    for (const health of (await survey(server.port, 8)).values()) {
      assert.notEqual(health.pid, server.proc.pid, 'the primary serves no requests');
      assert.ok(health.connections <= 40);
    }
    await everyMessageOnceInOneOrder(all);
  });
});
