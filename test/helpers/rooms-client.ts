// Helpers for the rooms' integration tests (test/rooms*.test.ts), on top of ChatClient
// (chat-client.ts) and Node's own WebSocket:
//   - newSecret() / tokenFor(secret, user): a server's CHAT_SECRET and the tokens it accepts,
//     minted with src/jwt.ts's signToken, as the application in front of the chat would;
//   - RoomsConnection: one /chat connection speaking the rooms protocol. request() sends
//     {"uuid", "action", ...} with a fresh uuid and resolves with the answer carrying that uuid;
//     every frame the server sent stays in `received`, in order, so that a test can check what a
//     connection saw and in which order (pushes included) once everything has arrived;
//   - barrier(): a list_rooms round trip. The primary sends every outcome in handling order, to
//     each worker in order, so once its answer is here, everything the primary sent this
//     connection before handling it is here too: "received nothing" becomes an exact statement;
//   - openSpread(): sequential connections, which cluster round-robin hands to the workers in
//     turn, so `workers` of them put one on every worker.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { signToken } from '../../src/jwt.js';
import { ChatClient, closeAll, type ChatMessage } from './chat-client.js';

/** The protocol's room object. */
export interface RoomObject {
  id: number;
  name: string;
  users: string[];
  online: string[];
}

/** The protocol's message object. */
export interface MessageObject {
  id: number;
  room: number;
  user: string;
  text: string;
  ts: number;
}

/** Any frame from the server, parsed (answers, pushes, the lobby's greeting). */
export type Frame = ChatMessage;

/** A fresh CHAT_SECRET: 32 random bytes, base64url (43 ASCII characters, so 43 bytes as UTF-8). */
export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** A token for `user` signed with `secret` (HS256), with extra claims (exp, nbf...) if given. */
export function tokenFor(secret: string, user: string, claims: Record<string, unknown> = {}): string {
  return signToken({ sub: user, ...claims }, Buffer.from(secret, 'utf8'));
}

let uuidCounter = 0;
/** A uuid no other request of this test process uses (the protocol's [A-Za-z0-9_-]{1,64}). */
export function newUuid(prefix = 'q'): string {
  return `${prefix}-${process.pid}-${++uuidCounter}`;
}

/** The message object of a new_message answer (ChatClient types `message` as the lobby's string). */
export function messageOf(frame: Frame): MessageObject {
  return frame.message as unknown as MessageObject;
}

export function isRoomId(value: unknown): value is number {
  // Ids are integers below 2^53; the store starts them from the clock in microseconds, so they
  // are well beyond 32 bits: a client must not keep them in an int32.
  return Number.isSafeInteger(value) && (value as number) > 2 ** 32;
}

export class RoomsConnection {
  /** The user it authenticated as (set by signIn / a successful authenticate through request()). */
  user: string | null = null;

  constructor(readonly chat: ChatClient) {}

  /** Opens /chat and reads the lobby's greeting. */
  static async open(wsUrl: string, name: string): Promise<RoomsConnection> {
    return new RoomsConnection(await ChatClient.join(wsUrl, name));
  }

  /** Opens /chat and authenticates as `user`; fails unless the answer is a success for `user`. */
  static async signIn(wsUrl: string, secret: string, user: string, name = user): Promise<RoomsConnection> {
    const connection = await RoomsConnection.open(wsUrl, name);
    const answer = await connection.request('authenticate', { token: tokenFor(secret, user) });
    assert.deepEqual(answer, { uuid: answer.uuid, action: 'authenticate', status: 'success', user }, `${name}: authenticate`);
    return connection;
  }

  get name(): string {
    return this.chat.name;
  }

  /** Every frame received so far, in order. */
  get received(): Frame[] {
    return this.chat.received;
  }

  /** Sends a JSON value as one text frame. */
  send(value: unknown): void {
    this.chat.sendText(JSON.stringify(value));
  }

  /**
   * Sends {"uuid", "action", ...fields} and resolves with the first frame, received from now on,
   * that carries this uuid and action (its answer; for new_message, the acknowledgement).
   */
  async request(action: string, fields: Record<string, unknown> = {}, options: { uuid?: string; timeoutMs?: number } = {}): Promise<Frame> {
    const uuid = options.uuid ?? newUuid(action);
    // Frames arrive in later turns of the event loop: none can slip in between these two lines.
    this.send({ uuid, action, ...fields });
    const answer = await this.next((m) => m.uuid === uuid && m.action === action, `the answer to ${action} ${uuid}`, options.timeoutMs);
    if (action === 'authenticate' && answer.status === 'success') this.user = answer.user as string;
    return answer;
  }

  /** request(), and fails with the answer unless it is a success. */
  async ok(action: string, fields: Record<string, unknown> = {}, uuid?: string): Promise<Frame> {
    const answer = await this.request(action, fields, uuid === undefined ? {} : { uuid });
    assert.equal(answer.status, 'success', `${this.name}: ${action} ${JSON.stringify(fields).slice(0, 200)} answered ${JSON.stringify(answer)}`);
    return answer;
  }

  /** Sends one message and resolves with the acknowledged message object. */
  async say(room: number, text: string, uuid?: string): Promise<MessageObject> {
    return messageOf(await this.ok('new_message', { room, text }, uuid));
  }

  /** A list_rooms round trip: everything the primary sent this connection before it is here (see the top). */
  async barrier(): Promise<void> {
    await this.ok('list_rooms');
  }

  /** Resolves with the first frame received from now on (not before) that matches. */
  next(predicate: (frame: Frame) => boolean, what: string, timeoutMs = 10_000): Promise<Frame> {
    const from = this.received.length;
    let index = 0; // ChatClient.seen offers each frame once, in order, from the first one
    return this.chat.seen((frame) => index++ >= from && predicate(frame), timeoutMs, what);
  }

  /** Resolves with the first frame received so far or later that matches. */
  seen(predicate: (frame: Frame) => boolean, what: string, timeoutMs = 10_000): Promise<Frame> {
    return this.chat.seen(predicate, timeoutMs, what);
  }

  /** The new_message frames of `room` received so far (acknowledgement and deliveries), in order. */
  messageFrames(room: number): Frame[] {
    return this.received.filter((m) => m.action === 'new_message' && m.status === 'success' && messageOf(m).room === room);
  }

  /** The message objects of `room` received so far, in order. */
  messages(room: number): MessageObject[] {
    return this.messageFrames(room).map((m) => messageOf(m));
  }

  /** The room_update pushes of `room` received so far. */
  roomUpdates(room: number): Frame[] {
    return this.received.filter((m) => m.action === 'room_update' && (m.room as RoomObject).id === room);
  }

  /** The presence pushes of `room` received so far. */
  presence(room: number): Frame[] {
    return this.received.filter((m) => m.action === 'presence' && m.room === room);
  }

  /** Waits until `count` messages of `room` have arrived. */
  async waitForMessages(room: number, count: number, timeoutMs = 15_000): Promise<MessageObject[]> {
    await this.seen(() => this.messageFrames(room).length >= count, `${count} messages of room ${room}`, timeoutMs);
    return this.messages(room);
  }

  close(): void {
    this.chat.close();
  }

  /** Closes and waits until the socket is closed. */
  async closeAndWait(): Promise<void> {
    this.chat.close();
    await this.chat.waitClosed(5000);
  }
}

/**
 * Opens `count` connections one after another (each waits for the previous one to be open), all
 * signed in as `user`. Cluster round-robin hands connections to the workers strictly in turn when
 * they arrive one at a time, so `count` = workers puts one connection on every worker.
 */
export async function openSpread(wsUrl: string, secret: string, user: string, count: number, into: RoomsConnection[]): Promise<RoomsConnection[]> {
  const opened: RoomsConnection[] = [];
  for (let i = 0; i < count; i++) {
    const connection = await RoomsConnection.signIn(wsUrl, secret, user, `${user}#${i}`);
    opened.push(connection);
    into.push(connection);
  }
  return opened;
}

/** Closes every connection still open (bounded wait). */
export async function closeConnections(connections: Iterable<RoomsConnection>): Promise<void> {
  await closeAll([...connections].map((connection) => connection.chat));
}

/** Resolves after `ms` (only to let the clock move past a millisecond; never as a wait for an event). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
