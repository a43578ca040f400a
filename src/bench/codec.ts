// The codec scenario: the throughput of the project's frame codec (src/server/frames.ts) alone,
// in this process, with no socket. For payloads of 16 B, 1 KiB and 64 KiB it times:
//
//   parse          FrameParser on a stream of masked client frames (what a server receives),
//                  fed in 64 KiB chunks as a socket delivers them, unmasking included;
//   encode         encodeFrame: a server frame (unmasked), one Buffer per frame;
//   encode masked  encodeMaskedFrame: a client frame, random key and masking included;
//   unmask         unmask() alone, in place: the XOR loop both of the others lean on.
//
// Each case runs a short warm-up (so the JIT has compiled it), then repeats batches until it has
// run for --codec-time seconds, and reports payload megabytes (10^6 bytes) per second and frames
// per second. Small frames measure the per-frame overhead; large ones the per-byte loop.
import { FrameParser, Opcode, encodeFrame, encodeMaskedFrame, unmask } from '../server/frames.js';

export interface CodecRow {
  operation: 'parse' | 'encode' | 'encode masked' | 'unmask';
  payload_bytes: number;
  mb_per_s: number;
  frames_per_s: number;
}

export const CODEC_SIZES = [16, 1024, 64 * 1024];
const CHUNK = 64 * 1024; // a typical socket read
const STREAM_BYTES = 1024 * 1024; // one parse pass walks about 1 MiB of frames

/** Runs `batch` (which handles `framesPerBatch` frames) for about `seconds`; frames per second. */
function measure(seconds: number, framesPerBatch: number, batch: () => void): number {
  const warmUntil = performance.now() + Math.min(200, seconds * 250);
  while (performance.now() < warmUntil) batch();
  let frames = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  let now = start;
  while (now < end) {
    batch();
    frames += framesPerBatch;
    now = performance.now();
  }
  return frames / ((now - start) / 1000);
}

export function runCodec(seconds: number, log: (line: string) => void): CodecRow[] {
  const rows: CodecRow[] = [];
  let sink = 0; // results are added here and printed in a log line: nothing is dead code to the JIT
  for (const size of CODEC_SIZES) {
    const payload = Buffer.alloc(size, 'a');

    // parse: a stream of masked frames cut into 64 KiB chunks (views, no copy). The parser
    // unmasks payloads *in place*, so each pass flips the stream's payloads between masked and
    // clear text; the headers and keys are untouched, so every pass parses the same frames.
    const frame = encodeMaskedFrame(Opcode.TEXT, payload);
    const count = Math.max(1, Math.floor(STREAM_BYTES / frame.length));
    const stream = Buffer.concat(Array.from({ length: count }, () => encodeMaskedFrame(Opcode.TEXT, payload)));
    const chunks: Buffer[] = [];
    for (let offset = 0; offset < stream.length; offset += CHUNK) chunks.push(stream.subarray(offset, offset + CHUNK));
    let parsed = 0;
    const parser = new FrameParser({ expectMasked: true, onFrame: (f) => { parsed += f.payload.length; } });
    const parseRate = measure(seconds, count, () => {
      for (const chunk of chunks) parser.push(chunk);
    });
    rows.push(row('parse', size, parseRate));

    const encodeRate = measure(seconds, 256, () => {
      for (let i = 0; i < 256; i++) sink += encodeFrame(Opcode.TEXT, payload).length;
    });
    rows.push(row('encode', size, encodeRate));

    const maskedRate = measure(seconds, 256, () => {
      for (let i = 0; i < 256; i++) sink += encodeMaskedFrame(Opcode.TEXT, payload).length;
    });
    rows.push(row('encode masked', size, maskedRate));

    const key = Buffer.from([0x12, 0x34, 0x56, 0x78]);
    const data = Buffer.alloc(size, 'b');
    const unmaskRate = measure(seconds, 256, () => {
      for (let i = 0; i < 256; i++) unmask(data, key);
    });
    rows.push(row('unmask', size, unmaskRate));
    sink += parsed + data[0]!;
    log(`codec: ${size} B done`);
  }
  log(`codec: checksum ${sink % 1000}`);
  return rows;
}

function row(operation: CodecRow['operation'], size: number, framesPerS: number): CodecRow {
  return {
    operation,
    payload_bytes: size,
    mb_per_s: Math.round((framesPerS * size) / 1e6 * 10) / 10,
    frames_per_s: Math.round(framesPerS),
  };
}
