// Tests for src/bench/message.ts: the benchmark's messages in both envelopes. The templates must
// be what the server accepts (the rooms request passes the server's own parseRoomRequest), and the
// reader must find the text in exactly what the server sends back (a lobby broadcast, a rooms
// answer built by the server's own answerSuccess), and refuse everything else.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DeliveryCounter, MessageReader, MessageTemplate, textLength } from '../src/bench/message.js';
import { answerError, answerSuccess, parseRoomRequest } from '../src/rooms/requests.js';

const RUN = 'k3f9qz';
const SIZE = 128;

/** What the lobby broadcasts for a published `{"sender","message"}` text (websocket.ts rebuilds it). */
function lobbyBroadcast(published: Buffer, id: number): Buffer {
  const { sender, message } = JSON.parse(published.toString()) as { sender: string; message: string };
  return Buffer.from(JSON.stringify({ id, ts: 1_764_000_000_000, sender, message }));
}

/** What every member receives for a `new_message` request (the service's answer, field for field). */
function roomsAnswer(request: Buffer, room: number, messageId: number): Buffer {
  const { uuid, text } = JSON.parse(request.toString()) as { uuid: string; text: string };
  const users = ['alice', 'bob', 'carol'];
  return Buffer.from(answerSuccess(uuid, 'new_message', {
    room: { id: room, name: 'bench', users, online: users },
    message: { id: messageId, room, user: 'alice', text, ts: 1_764_000_000_000 },
  }));
}

describe('MessageTemplate', () => {
  test('the lobby message is --size bytes of valid JSON with the text at the end', () => {
    const text = new MessageTemplate(RUN, 7, SIZE).fill(3, 42, 123_456_789);
    assert.equal(text.length, SIZE);
    const value = JSON.parse(text.toString()) as { sender: string; message: string };
    assert.equal(value.sender, 'bench');
    assert.equal(value.message.length, textLength(SIZE));
    assert.equal(value.message.slice(0, 40), `${RUN}:03:007:000000042:000000123456789:`);
  });

  test('the rooms request is a new_message the server accepts, with a fresh uuid per message', () => {
    const template = new MessageTemplate(RUN, 7, SIZE, 1_764_000_000_000_001);
    const first = JSON.parse(template.fill(1, 41, 5).toString()) as Record<string, unknown>;
    const second = JSON.parse(template.fill(1, 42, 6).toString()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(first), ['action', 'uuid', 'room', 'text']);
    assert.equal(first['uuid'], `${RUN}-007-000000041`);
    assert.equal(second['uuid'], `${RUN}-007-000000042`);
    assert.equal(first['room'], 1_764_000_000_000_001);
    const parsed = parseRoomRequest(second, { maxMessageLength: 4096, maxMembersPerRoom: 100 });
    assert.deepEqual(parsed, { action: 'new_message', uuid: `${RUN}-007-000000042`, room: 1_764_000_000_000_001, text: second['text'] });
  });

  test('both envelopes carry the same text at the same --size', () => {
    const lobby = JSON.parse(new MessageTemplate(RUN, 1, 200).fill(2, 3, 4).toString()) as { message: string };
    const rooms = JSON.parse(new MessageTemplate(RUN, 1, 200, 9).fill(2, 3, 4).toString()) as { text: string };
    assert.equal(rooms.text, lobby.message);
  });
});

describe('MessageReader', () => {
  test('reads step, publisher, sequence and send time from a lobby broadcast', () => {
    const reader = new MessageReader(RUN, SIZE, 'lobby');
    const sent = new MessageTemplate(RUN, 12, SIZE).fill(5, 987_654_321, 123_456_789_012_345);
    assert.equal(reader.read(lobbyBroadcast(sent, 99)), true);
    assert.deepEqual([reader.step, reader.pub, reader.seq, reader.sentUs], [5, 12, 987_654_321, 123_456_789_012_345]);
  });

  test('reads the same fields from a rooms answer, whatever the lengths of ids and ts before the text', () => {
    const reader = new MessageReader(RUN, SIZE, 'rooms');
    for (const [room, id] of [[1, 1], [1_764_000_000_000_001, 1_764_000_000_000_123]] as const) {
      const sent = new MessageTemplate(RUN, 3, SIZE, room).fill(9, 77, 555);
      assert.equal(reader.read(roomsAnswer(sent, room, id)), true);
      assert.deepEqual([reader.step, reader.pub, reader.seq, reader.sentUs], [9, 3, 77, 555]);
    }
  });

  test('refuses what is not one of this run\'s messages', () => {
    const reader = new MessageReader(RUN, SIZE, 'rooms');
    const otherRun = new MessageTemplate('zzzzzz', 3, SIZE, 5).fill(1, 1, 1);
    assert.equal(reader.read(roomsAnswer(otherRun, 5, 1)), false);
    const otherSize = new MessageTemplate(RUN, 3, SIZE + 1, 5).fill(1, 1, 1);
    assert.equal(reader.read(roomsAnswer(otherSize, 5, 1)), false);
    assert.equal(reader.read(Buffer.from(JSON.stringify({ action: 'room_update', room: { id: 5, name: 'x', users: [], online: [] } }))), false);
    assert.equal(reader.read(Buffer.from(answerError(`${RUN}-003-000000001`, 'new_message', 'rate_limited', 'slow down'))), false);
    assert.equal(reader.read(Buffer.from('')), false);
    // A lobby broadcast is not a rooms answer, and the other way round.
    const lobby = lobbyBroadcast(new MessageTemplate(RUN, 3, SIZE).fill(1, 1, 1), 1);
    assert.equal(reader.read(lobby), false);
    assert.equal(new MessageReader(RUN, SIZE, 'lobby').read(roomsAnswer(new MessageTemplate(RUN, 3, SIZE, 5).fill(1, 1, 1), 5, 1)), false);
  });
});

describe('DeliveryCounter', () => {
  test('counts per step, says which texts were foreign, and catches a repeat', () => {
    const counter = new DeliveryCounter(RUN, SIZE, 2, 4, 'rooms');
    const template = new MessageTemplate(RUN, 2, SIZE, 8);
    const answer = (step: number, seq: number): Buffer => roomsAnswer(template.fill(step, seq, 1000), 8, seq);
    assert.equal(counter.onText(0, answer(1, 0), 1500), true);
    assert.equal(counter.onText(1, answer(1, 0), 1700), true);
    assert.equal(counter.onText(0, answer(2, 1), 2000), true);
    assert.equal(counter.onText(0, answer(2, 1), 2000), true); // a repeat: counted, and out of order
    assert.equal(counter.onText(0, Buffer.from('{"action":"presence","room":8,"online":[]}'), 2000), false);
    const report = counter.report(1);
    assert.deepEqual([report.received[1], report.received[2]], [2, 2]);
    assert.equal(report.foreign, 1);
    assert.equal(report.outOfOrder, 1);
    assert.equal(report.histogram?.count, 2);
    assert.equal(report.histogram?.max, 700);
  });
});
