// Tests for src/bench/handshakes.ts: every layer of the ladder must really complete the
// handshakes it counts (the clients wait for the 101 and the greeting of every connection, so a
// layer that answered nothing would hang here rather than report a fast, empty figure).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { LAYERS, runHandshakes } from '../src/bench/handshakes.js';

describe('bench handshakes', () => {
  test('each layer completes every handshake, greeting included, in each repeat', async () => {
    const result = await runHandshakes(20, 2);
    assert.equal(result.conns, 20);
    assert.equal(result.runs.length, 2);
    for (const run of result.runs) assert.deepEqual(Object.keys(run), [...LAYERS]);
    for (const layer of LAYERS) assert.ok(result.cpu_us_per_handshake[layer] > 0, `${layer}: a CPU figure`);
  });
});
