// Tests for src/bench/stages.ts: the in-process measurement of one worker's delivery path must
// really deliver through the chat's handler, every message to every subscriber (a stage
// benchmark that silently delivered nothing would report a fast, empty path), and report
// per-delivery figures over exactly the turns it measured.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { runStages } from '../src/bench/stages.js';

describe('bench stages', () => {
  test('every message of every measured batch goes through websocket.send for every subscriber', async () => {
    const result = await runStages(7, 5, 3);
    assert.equal(result.deliveries, 7 * 5 * 3);
    assert.equal(result.sent, 7 * 5 * 3, 'the warm-up turns are not counted, the measured ones all are');
    const stages = result.us_per_delivery;
    assert.ok(Math.abs(stages.total - (stages.ipc + stages.deliver + stages.write + stages.after)) < 0.01, 'total is the sum of the stages');
  });
});
