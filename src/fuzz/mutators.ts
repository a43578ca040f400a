// What the fuzzer sends: attack plans, built from a seeded generator (prng.ts), as pure data.
//
// An attack is one TCP connection. Its plan is a list of steps (write these bytes, wait, send
// FIN, drop the connection) fixed before the connection opens: nothing in it depends on what the
// server answers, so a seed and an attacker's connection number always give the same bytes, and
// `--show A:B` can print them. attacker.ts carries plans out over node:net.
//
// The kinds of attack, and what each aims at:
//
//   garbage         random bytes instead of HTTP                       → node:http's parser, 400
//   http-mutant     a real request (page, health check, POST, upgrade)
//                   with bytes flipped, inserted, deleted, duplicated  → the parser, the HTTP dispatcher
//   pipeline        several valid requests in one write               → keep-alive, pipelining
//   half-handshake  an upgrade request cut anywhere, then FIN, a drop
//                   or silence                                         → head timeout, clean teardown
//   silent          TCP open, nothing sent                             → head timeout
//   slowloris       a request head trickled a byte at a time           → the head timeout (408)
//   frames          a valid handshake, then frames mutated every way
//                   (below), in pieces of any size, ended any way      → the codec, the close handshake
//   fragments       a handshake, then a storm of tiny fragments,
//                   pings between them, past the fragment limit        → §5.4 reassembly, the 1024 bound
//   chat            a handshake, then chat traffic good and bad (JSON,
//                   lobby messages, rooms requests, binary)            → the application
//
// Frame mutations (any of them, several at once): reserved opcodes (§5.2: 0x3-0x7, 0xB-0xF), RSV
// bits without an extension, unmasked client frames (§5.1), lengths that lie (shorter or longer
// than the payload, non-minimal forms, 64-bit lengths with the top bit set or beyond any limit),
// invalid UTF-8 in text and in close reasons (§8.1), control frames over 125 bytes or fragmented
// (§5.5), close codes that may not be sent (§7.4), a 1-byte close payload, continuation frames
// with nothing to continue, a new message inside a fragmented one, and random bit flips.
import { Prng } from './prng.js';

export const ATTACKS = ['garbage', 'http-mutant', 'pipeline', 'half-handshake', 'silent', 'slowloris', 'frames', 'fragments', 'chat'] as const;
export type AttackKind = (typeof ATTACKS)[number];

/**
 * How often each attack is chosen (relative weights). Frame attacks dominate: the codec is the
 * largest surface. Slowloris is rare because one holds an attacker for up to `slowMs`.
 */
const WEIGHTS: Record<AttackKind, number> = {
  garbage: 8, 'http-mutant': 12, pipeline: 6, 'half-handshake': 8, silent: 3, slowloris: 0.5, frames: 40, fragments: 8, chat: 14,
};

export type Step =
  /** Write these bytes; `frames` is how many WebSocket frames they carry (for the figures). */
  | { do: 'write'; bytes: Buffer; frames: number }
  | { do: 'wait'; ms: number }
  /** Half-close: send FIN, keep reading. */
  | { do: 'end' }
  /** Drop the connection at once, without a FIN (an RST if unread bytes remain). */
  | { do: 'destroy' };

export interface Plan {
  kind: AttackKind;
  steps: Step[];
  /** After the last step, keep reading for up to this long (or until the server closes). */
  holdMs: number;
}

export interface PlanSettings {
  /** The server's Host header value (`127.0.0.1:PORT`), so that a matching Origin is accepted. */
  host: string;
  /** The longest a slowloris attack trickles, in ms (the server should cut it off first). */
  slowMs: number;
}

/** Attack plan number `connection` of attacker `attacker`, for the run's seed. */
export function planFor(seed: number, attacker: number, connection: number, settings: PlanSettings): Plan {
  const rng = new Prng(seed, attacker, connection);
  const kind = ATTACKS[rng.weighted(ATTACKS.map((k) => WEIGHTS[k]))]!;
  return BUILDERS[kind](rng, settings);
}

const BUILDERS: Record<AttackKind, (rng: Prng, settings: PlanSettings) => Plan> = {
  garbage(rng) {
    const bytes = rng.bytes(rng.range(1, 4096));
    // Sometimes garbage that starts like HTTP, so the parser gets past the method.
    if (rng.chance(0.3)) Buffer.from(rng.pick(['GET / HTTP/1.1\r\n', 'GET ', 'POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\n'])).copy(bytes);
    return { kind: 'garbage', steps: [...inPieces(rng, bytes, 0), ending(rng)], holdMs: rng.range(0, 500) };
  },

  'http-mutant'(rng, settings) {
    const request = mutateBytes(rng, httpRequest(rng, settings), rng.range(1, 4));
    return { kind: 'http-mutant', steps: [...inPieces(rng, request, 0), ...(rng.chance(0.5) ? [ending(rng)] : [])], holdMs: rng.range(50, 1000) };
  },

  pipeline(rng, settings) {
    const count = rng.range(2, 12);
    const requests: Buffer[] = [];
    for (let i = 0; i < count; i++) requests.push(Buffer.from(plainRequest(rng, settings, i === count - 1 && rng.chance(0.5))));
    return { kind: 'pipeline', steps: [...inPieces(rng, Buffer.concat(requests), 0)], holdMs: rng.range(100, 1500) };
  },

  'half-handshake'(rng, settings) {
    const head = Buffer.from(upgradeRequest(rng, settings, '/chat'));
    const cut = head.subarray(0, rng.int(head.length)); // never the whole head
    const then = rng.pick(['end', 'destroy', 'hold'] as const);
    const steps: Step[] = inPieces(rng, cut, 0);
    if (then !== 'hold') steps.push({ do: then });
    return { kind: 'half-handshake', steps, holdMs: then === 'hold' ? rng.range(100, 3000) : rng.range(0, 200) };
  },

  silent(rng) {
    return { kind: 'silent', steps: [], holdMs: rng.range(50, 3000) };
  },

  slowloris(rng, settings) {
    // One byte at a time, forever as far as the server can tell: a head that never ends.
    const head = Buffer.from(`GET / HTTP/1.1\r\nHost: ${settings.host}\r\n` + 'X-Slow: '.padEnd(8192, 'a'));
    const gapMs = rng.range(100, 1000);
    const steps: Step[] = [];
    let elapsed = 0;
    for (let i = 0; i < head.length && elapsed < settings.slowMs; i++, elapsed += gapMs) {
      steps.push({ do: 'write', bytes: head.subarray(i, i + 1), frames: 0 }, { do: 'wait', ms: gapMs });
    }
    return { kind: 'slowloris', steps, holdMs: 1000 };
  },

  frames(rng, settings) {
    const steps: Step[] = [];
    const handshake = Buffer.from(upgradeRequest(rng, settings, '/chat'));
    const count = rng.range(1, 64);
    const frames: Buffer[] = [];
    for (let i = 0; i < count; i++) frames.push(mutatedFrame(rng));
    // Sent with the handshake (the server must keep early bytes), or after a pause.
    if (rng.chance(0.3)) {
      steps.push(...inPieces(rng, Buffer.concat([handshake, ...frames]), count));
    } else {
      steps.push({ do: 'write', bytes: handshake, frames: 0 }, { do: 'wait', ms: rng.range(0, 30) });
      steps.push(...inPieces(rng, Buffer.concat(frames), count));
    }
    steps.push(...finish(rng));
    return { kind: 'frames', steps, holdMs: rng.range(0, 800) };
  },

  fragments(rng, settings) {
    const steps: Step[] = [{ do: 'write', bytes: Buffer.from(upgradeRequest(rng, settings, '/chat')), frames: 0 }];
    const count = rng.pick([10, 100, 1000, 1023, 1024, 1025, 3000]);
    const opcode = rng.pick([OP.TEXT, OP.BINARY]);
    const frames: Buffer[] = [frame(rng, { opcode, fin: false, payload: fragmentPayload(rng, opcode) })];
    for (let i = 1; i < count; i++) {
      if (rng.chance(0.02)) frames.push(frame(rng, { opcode: OP.PING, payload: rng.bytes(rng.size(125)) }));
      if (rng.chance(0.003)) frames.push(frame(rng, { opcode: OP.TEXT, payload: Buffer.from('x') })); // a new message mid-stream: 1002
      frames.push(frame(rng, { opcode: OP.CONTINUATION, fin: i === count - 1 && rng.chance(0.7), payload: fragmentPayload(rng, opcode) }));
    }
    steps.push(...inPieces(rng, Buffer.concat(frames), frames.length), ...finish(rng));
    return { kind: 'fragments', steps, holdMs: rng.range(0, 800) };
  },

  chat(rng, settings) {
    const steps: Step[] = [{ do: 'write', bytes: Buffer.from(upgradeRequest(rng, settings, '/chat', true)), frames: 0 }];
    const count = rng.range(1, 20);
    for (let i = 0; i < count; i++) {
      const binary = rng.chance(0.03);
      const payload = binary ? rng.bytes(rng.size(256)) : Buffer.from(chatText(rng));
      steps.push({ do: 'write', bytes: frame(rng, { opcode: binary ? OP.BINARY : OP.TEXT, payload }), frames: 1 });
      if (rng.chance(0.3)) steps.push({ do: 'wait', ms: rng.range(0, 50) });
    }
    steps.push(...finish(rng));
    return { kind: 'chat', steps, holdMs: rng.range(0, 1000) };
  },
};

// ---- HTTP ---------------------------------------------------------------------------------------

function upgradeRequest(rng: Prng, settings: PlanSettings, path: string, wellFormed = false): string {
  const key = rng.bytes(16).toString('base64');
  const lines = [`GET ${path} HTTP/1.1`, `Host: ${settings.host}`, 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Key: ${key}`, 'Sec-WebSocket-Version: 13'];
  if (!wellFormed) {
    // A foreign Origin is refused with 403; the page's own is accepted; none is accepted too.
    const origin = rng.weighted([6, 1, 3]);
    if (origin === 1) lines.push('Origin: http://evil.example');
    else if (origin === 2) lines.push(`Origin: http://${settings.host}`);
    if (rng.chance(0.1)) lines.push('Sec-WebSocket-Protocol: chat, superchat');
    if (rng.chance(0.1)) lines.push('Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits');
  }
  return lines.join('\r\n') + '\r\n\r\n';
}

/** A valid request of some kind: the page, the health check, a 404, a POST (405), HEAD. */
function plainRequest(rng: Prng, settings: PlanSettings, close: boolean): string {
  const connection = close ? 'Connection: close\r\n' : '';
  switch (rng.int(5)) {
    case 0: return `GET / HTTP/1.1\r\nHost: ${settings.host}\r\n${connection}\r\n`;
    case 1: return `GET /healthz HTTP/1.1\r\nHost: ${settings.host}\r\n${connection}\r\n`;
    case 2: return `HEAD / HTTP/1.1\r\nHost: ${settings.host}\r\nIf-None-Match: "x"\r\n${connection}\r\n`;
    case 3: return `GET /nope/${rng.next()} HTTP/1.1\r\nHost: ${settings.host}\r\n${connection}\r\n`;
    default: {
      const body = rng.bytes(rng.size(2048)).toString('latin1');
      return `POST / HTTP/1.1\r\nHost: ${settings.host}\r\nContent-Length: ${Buffer.byteLength(body, 'latin1')}\r\n${connection}\r\n${body}`;
    }
  }
}

/** A request to mutate: plain, upgrade, chunked, or with odd but legal forms. */
function httpRequest(rng: Prng, settings: PlanSettings): Buffer {
  switch (rng.int(5)) {
    case 0: return Buffer.from(plainRequest(rng, settings, false), 'latin1');
    case 1: return Buffer.from(upgradeRequest(rng, settings, rng.pick(['/chat', '/', '/healthz'])));
    case 2: return Buffer.from(`POST /upload HTTP/1.1\r\nHost: ${settings.host}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`);
    case 3: return Buffer.from(`GET http://${settings.host}/healthz HTTP/1.0\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n`);
    default: return Buffer.from(`OPTIONS * HTTP/1.1\r\nHost: ${settings.host}\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n`);
  }
}

/** Interesting bytes to insert into HTTP: line ends, separators, NUL, high bytes. */
const HTTP_SPICE = ['\r\n', '\n', '\r', ':', ' ', '\t', '\0', '\x7f', '\xff', 'Content-Length: 99999999\r\n', 'Transfer-Encoding: chunked\r\n', '\r\n\r\n'];

/** `count` random edits of a byte string: flip, insert, delete, duplicate, truncate. */
export function mutateBytes(rng: Prng, input: Buffer, count: number): Buffer {
  let bytes = input;
  for (let i = 0; i < count && bytes.length > 0; i++) {
    const at = rng.int(bytes.length);
    switch (rng.int(6)) {
      case 0: { // flip bits of one byte
        bytes = Buffer.from(bytes);
        bytes[at] = bytes[at]! ^ (1 << rng.int(8) | rng.next() & 0xff);
        break;
      }
      case 1: // insert something interesting
        bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from(rng.pick(HTTP_SPICE), 'latin1'), bytes.subarray(at)]);
        break;
      case 2: // delete a range
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1 + rng.size(32))]);
        break;
      case 3: { // duplicate a range
        const piece = bytes.subarray(at, at + 1 + rng.size(64));
        bytes = Buffer.concat([bytes.subarray(0, at), piece, piece, bytes.subarray(at)]);
        break;
      }
      case 4: // truncate
        bytes = bytes.subarray(0, at);
        break;
      default: { // a long run of one byte: huge header values, long lines
        const run = Buffer.alloc(rng.size(20000), rng.pick([0x61, 0x20, 0x3a, 0x0d]));
        bytes = Buffer.concat([bytes.subarray(0, at), run, bytes.subarray(at)]);
      }
    }
  }
  return bytes;
}

// ---- frames -------------------------------------------------------------------------------------

const OP = { CONTINUATION: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;
const RESERVED_OPCODES = [0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf];

export interface FrameSpec {
  opcode: number;
  payload: Buffer;
  fin?: boolean;
  /** RSV1-3 as three bits (0-7). */
  rsv?: number;
  /** Client frames must be masked (§5.1); false sends one in the clear. */
  masked?: boolean;
  /** The length written in the header, when it should lie about the payload's. */
  announced?: number;
  /** Use the 16-bit (126) or 64-bit (127) length form even where a shorter one fits. */
  lengthForm?: 7 | 16 | 64;
}

/** Encodes a client frame exactly as specified, lies included. Masking keys come from `rng`. */
export function frame(rng: Prng, spec: FrameSpec): Buffer {
  const fin = spec.fin ?? true;
  const masked = spec.masked ?? true;
  const length = spec.announced ?? spec.payload.length;
  const form = spec.lengthForm ?? (length < 126 ? 7 : length < 65536 ? 16 : 64);
  const header = Buffer.alloc(2 + (form === 16 ? 2 : form === 64 ? 8 : 0) + (masked ? 4 : 0));
  header[0] = (fin ? 0x80 : 0) | ((spec.rsv ?? 0) & 7) << 4 | (spec.opcode & 0xf);
  const maskBit = masked ? 0x80 : 0;
  let offset = 2;
  if (form === 7) {
    header[1] = maskBit | (length & 0x7f);
  } else if (form === 16) {
    header[1] = maskBit | 126;
    header.writeUInt16BE(length & 0xffff, 2);
    offset = 4;
  } else {
    header[1] = maskBit | 127;
    header.writeUInt32BE(Math.floor(length / 0x100000000) >>> 0, 2);
    header.writeUInt32BE(length >>> 0, 6);
    offset = 10;
  }
  const payload = Buffer.from(spec.payload);
  if (masked) {
    const key = rng.bytes(4);
    key.copy(header, offset);
    for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ key[i & 3]!;
  }
  return Buffer.concat([header, payload]);
}

/** One frame, valid or broken in one or more of the ways listed at the top of this file. */
export function mutatedFrame(rng: Prng): Buffer {
  const spec = baseFrame(rng);
  const mutations = rng.weighted([3, 4, 2, 1]); // 0 to 3 mutations, one most often
  for (let i = 0; i < mutations; i++) {
    switch (rng.int(11)) {
      case 0: spec.opcode = rng.pick(RESERVED_OPCODES); break;
      case 1: spec.rsv = rng.range(1, 7); break;
      case 2: spec.masked = false; break;
      case 3: spec.announced = Math.max(0, spec.payload.length - 1 - rng.size(spec.payload.length)); break; // shorter
      case 4: spec.announced = spec.payload.length + 1 + rng.size(200_000); break; // longer: eats what follows
      case 5: spec.lengthForm = rng.pick([16, 64] as const); break; // non-minimal
      case 6: spec.announced = rng.pick([2 ** 63, 2 ** 53, 2 ** 40, 2 ** 32, 2 ** 31, 1048577]); spec.lengthForm = 64; break; // huge
      case 7: spec.fin = false; break; // fragmented (of a control frame: 1002)
      case 8: spec.payload = Buffer.concat([spec.payload, rng.bytes(rng.range(126 - Math.min(125, spec.payload.length), 400))]); break; // oversize
      case 9: spec.opcode = OP.CONTINUATION; break; // nothing to continue
      default: {
        const bytes = frame(rng, spec); // random bit flips in the encoded frame
        for (let n = rng.range(1, 4); n > 0; n--) { const at = rng.int(bytes.length); bytes[at] = bytes[at]! ^ (1 << rng.int(8)); }
        return bytes;
      }
    }
  }
  return frame(rng, spec);
}

function baseFrame(rng: Prng): FrameSpec {
  switch (rng.weighted([5, 2, 2, 1, 2, 1])) {
    case 0: return { opcode: OP.TEXT, payload: Buffer.from(chatText(rng)) };
    case 1: return { opcode: OP.TEXT, payload: invalidUtf8(rng) };
    case 2: return { opcode: OP.BINARY, payload: rng.bytes(rng.size(rng.chance(0.05) ? 70_000 : 1024)) };
    case 3: return { opcode: rng.pick([OP.PING, OP.PONG]), payload: rng.bytes(rng.size(125)) };
    case 4: return { opcode: OP.CLOSE, payload: closePayload(rng) };
    default: return { opcode: OP.TEXT, payload: Buffer.from(chatText(rng)), fin: false };
  }
}

/** §7.4: codes that may be sent and codes that may not; reasons valid, invalid or too long. */
function closePayload(rng: Prng): Buffer {
  switch (rng.int(5)) {
    case 0: return Buffer.alloc(0);
    case 1: return Buffer.from([rng.next() & 0xff]); // 1 byte: no room for a code
    default: {
      const code = rng.pick([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999, 0, 999, 1004, 1005, 1006, 1012, 1015, 1016, 2999, 5000, 65535]);
      const reason = rng.weighted([4, 2, 1]);
      const text = reason === 0 ? Buffer.from('bye') : reason === 1 ? invalidUtf8(rng) : Buffer.alloc(rng.range(124, 200), 0x61);
      const payload = Buffer.alloc(2);
      payload.writeUInt16BE(code);
      return Buffer.concat([payload, text]);
    }
  }
}

/** Byte sequences UTF-8 forbids (RFC 3629), alone or inside valid text. */
const BAD_UTF8 = [
  [0x80], [0xbf], [0xc0, 0x80], [0xc1, 0xbf], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xed, 0xbf, 0xbf],
  [0xf4, 0x90, 0x80, 0x80], [0xf5, 0x80, 0x80, 0x80], [0xff], [0xfe], [0xe2, 0x82], [0xf0, 0x9f, 0x98], [0xc3],
];

export function invalidUtf8(rng: Prng): Buffer {
  const before = Buffer.from('é'.repeat(rng.size(8)) + 'ok'.repeat(rng.size(8)));
  const bad = Buffer.from(rng.pick(BAD_UTF8));
  const after = rng.chance(0.5) ? Buffer.from('€') : Buffer.alloc(0);
  return Buffer.concat([before, bad, after]);
}

/** A fragment's payload: a few bytes, for text sometimes splitting a character or breaking UTF-8. */
function fragmentPayload(rng: Prng, opcode: number): Buffer {
  if (opcode === OP.TEXT) {
    const choice = rng.weighted([20, 2, 1]);
    if (choice === 1) return Buffer.from([0xe2, 0x82, 0xac].slice(0, rng.range(1, 2))); // half a '€'
    if (choice === 2) return invalidUtf8(rng);
  }
  return rng.bytes(rng.size(8));
}

/** Text the chat receives: lobby messages good and bad, rooms requests, non-JSON. */
export function chatText(rng: Prng): string {
  const word = (): string => rng.bytes(rng.size(24)).toString('base64url');
  switch (rng.int(10)) {
    case 0: case 1: case 2: return JSON.stringify({ sender: `fuzz${rng.int(100)}`, message: word() || 'x' });
    case 3: return JSON.stringify({ sender: 'x'.repeat(rng.size(100)), message: 'y'.repeat(rng.size(5000)) });
    case 4: return JSON.stringify({ sender: rng.pick([null, 1, [], {}, 'server', '']), message: rng.pick([null, 2, 'hi', ''.padEnd(rng.size(10), '\u0000')]) });
    case 5: return `{"sender":"s","message":"${'\\ud800'.repeat(rng.size(50))}"}`;
    case 6: return JSON.stringify({
      uuid: rng.chance(0.8) ? word() || 'u' : 'bad uuid!', action: rng.pick(['authenticate', 'create_room', 'add_users', 'leave_room', 'list_rooms', 'select_room', 'new_message', 'nope']),
      token: rng.chance(0.5) ? `${word()}.${word()}.${word()}` : undefined, room: rng.pick([1, -1, 'x', 2 ** 60, undefined]), name: word(), users: [word()], text: word(),
    });
    case 7: return rng.bytes(rng.size(64)).toString('latin1').replace(/[\ud800-\udfff]/g, '?'); // not JSON (as text: valid UTF-8)
    case 8: return rng.pick(['[]', 'null', '1e999', '"str"', '{"action":{}}', '{"sender":"a","message":"b","extra":1}', '{'.repeat(rng.size(2000))]);
    default: return JSON.stringify({ sender: 'fuzz', message: '€😀'.repeat(rng.size(200)) });
  }
}

// ---- how bytes go out, and how a connection ends -----------------------------------------------

/**
 * Splits `bytes` into writes: whole, in a few pieces, or (rarely, for short inputs) a byte at a
 * time, with short waits between some pieces, so the server sees every split of a frame or head.
 * `frames` is credited to the first piece.
 */
function inPieces(rng: Prng, bytes: Buffer, frames: number): Step[] {
  const steps: Step[] = [];
  const mode = rng.weighted([5, 4, bytes.length <= 256 ? 1 : 0]);
  if (mode === 0 || bytes.length < 2) return [{ do: 'write', bytes, frames }];
  let offset = 0;
  let credit = frames;
  while (offset < bytes.length) {
    const size = mode === 2 ? 1 : 1 + rng.size(Math.max(1, Math.ceil(bytes.length / 2)));
    steps.push({ do: 'write', bytes: bytes.subarray(offset, offset + size), frames: credit });
    credit = 0;
    offset += size;
    if (rng.chance(0.2)) steps.push({ do: 'wait', ms: rng.range(0, 20) });
  }
  return steps;
}

/** How a WebSocket attack ends: a valid close, a broken one, a FIN, a drop, a cut frame, or nothing. */
function finish(rng: Prng): Step[] {
  switch (rng.int(6)) {
    case 0: return [{ do: 'write', bytes: frame(rng, { opcode: OP.CLOSE, payload: Buffer.from([0x03, 0xe8]) }), frames: 1 }];
    case 1: return [{ do: 'write', bytes: frame(rng, { opcode: OP.CLOSE, payload: closePayload(rng) }), frames: 1 }];
    case 2: return [{ do: 'end' }];
    case 3: return [{ do: 'destroy' }];
    case 4: { // a frame cut short, then FIN or a drop
      const cut = frame(rng, { opcode: OP.TEXT, payload: Buffer.from(chatText(rng)) });
      return [{ do: 'write', bytes: cut.subarray(0, rng.int(cut.length)), frames: 1 }, rng.chance(0.5) ? { do: 'end' } : { do: 'destroy' }];
    }
    default: return []; // just hold: the server's ping or our own timeout ends it
  }
}

function ending(rng: Prng): Step {
  return rng.chance(0.5) ? { do: 'end' } : { do: 'destroy' };
}

/** A plan as text, for `--show`: each step, bytes in hex (shortened). */
export function describePlan(plan: Plan): string {
  const lines = [`attack ${plan.kind}, then hold ${plan.holdMs} ms`];
  for (const step of plan.steps) {
    if (step.do === 'write') {
      const hex = step.bytes.subarray(0, 64).toString('hex').replace(/(..)/g, '$1 ').trim();
      lines.push(`  write ${step.bytes.length} B${step.frames ? ` (${step.frames} frames)` : ''}: ${hex}${step.bytes.length > 64 ? ' …' : ''}`);
    } else if (step.do === 'wait') {
      lines.push(`  wait ${step.ms} ms`);
    } else {
      lines.push(`  ${step.do}`);
    }
  }
  return lines.join('\n');
}
