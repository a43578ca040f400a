// Every limit and default of the server, declared once, here: its value, its unit, what it bounds,
// what happens at the bound, and why the value is what it is (as uvicorn's config.py holds every
// setting in one place). The code that enforces a limit reads its value from here into a
// module-level constant, so the hot paths pay nothing for the indirection; the command-line
// defaults, the usage text and the README's tables are drawn from the same declarations
// (options.ts, src/readme-tables.ts), and test/limits.test.ts fails when any of them drifts.
//
// Numbers the protocols fix are not declared here but beside the rule they come from (RFC 6455's
// 125-byte control frames and 123-byte close reasons, in frames.ts and connection.ts): nobody may
// choose them. Nor are the sizes of internal buffers that bound nothing a peer controls (the
// masking-key pool in frames.ts).
//
// This module imports nothing: the chat's own limits live in src/config.ts, and the server never
// imports the application.

/** A fixed limit (or default) of the server. */
export interface Limit {
  value: number;
  /** The unit of `value`: `bytes`, `ms`, `s`, `messages`... */
  unit: string;
  /** What it bounds. */
  what: string;
  /** What happens when the bound is reached. */
  atBound: string;
  /** Why this value. */
  why: string;
}

/** A limit the operator sets with a command-line flag; `value` is the flag's default. */
export interface FlagLimit extends Limit {
  flag: `--${string}`;
  /** The smallest and largest values the flag accepts (in `unit`). */
  min: number;
  max: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;
/** The longest any of the time flags may be set to: a day. */
const MAX_SECONDS = 86_400;

export const SERVER_LIMITS = {
  // ---- HTTP (node:http does the parsing; these are the bounds we give it) ---------------------
  requestHeadBytes: {
    value: 16 * KiB, unit: 'bytes',
    what: 'a request head: request line and headers',
    atBound: '431 Request Header Fields Too Large, connection closed',
    why: 'node\'s own default, stated so that it is visible and tested: a browser\'s head, cookies included, is a few KiB',
  },
  timeoutRequestHead: {
    flag: '--timeout-request-head', value: 20, unit: 's', min: 0.1, max: 300,
    what: 'time a client has to send its request head (from connecting, or from the first byte of a later request on a kept-alive connection)',
    atBound: '408 Request Timeout, connection closed (checked every second, not node\'s default of every 30 s)',
    why: 'a slow-loris client, trickling bytes to hold a connection, is cut off; any real client sends its head in well under a second. At most the whole request\'s bound (node requires it), at least a tenth of a second',
  },
  tlsHandshakeTimeoutMs: {
    value: 20_000, unit: 'ms',
    what: 'time a client has to complete the TLS handshake (with --ssl-certfile)',
    atBound: 'the socket is destroyed',
    why: 'the request head\'s bound, for the step before it: node\'s default of 120 s would let a client hold a connection six times longer without sending a byte of HTTP',
  },
  tlsFileBytes: {
    value: 1024 * 1024, unit: 'bytes',
    what: 'a TLS file (`--ssl-certfile`, `--ssl-keyfile`, `--ssl-ca-certs`) read at startup',
    atBound: 'startup stops with a line naming the flag, exit 1',
    why: 'a key or chain is a few KiB, a public CA bundle a few hundred; a path to something else (/dev/zero, a log) must not hang or swell startup',
  },
  requestTimeoutMs: {
    value: 300_000, unit: 'ms',
    what: 'time a client has to send a whole request, body included',
    atBound: '408 Request Timeout, connection closed',
    why: 'node\'s own default, stated: an upload may be slow, but not endless',
  },
  bodyReadAheadBytes: {
    value: 64 * KiB, unit: 'bytes',
    what: 'request-body bytes read ahead of the application',
    atBound: 'the socket is paused until the app reads (TCP pushes back on the client)',
    why: 'a few socket reads\' worth keeps an app that reads promptly from waiting, and a slow app never makes the server buffer an upload',
  },
  timeoutKeepAlive: {
    flag: '--timeout-keep-alive', value: 5, unit: 's', min: 0, max: MAX_SECONDS,
    what: 'how long an idle keep-alive HTTP connection stays open',
    atBound: 'the connection is closed; `0` closes each one after its response',
    why: 'uvicorn\'s default: long enough for a page\'s follow-up requests, short enough that idle clients do not pile up',
  },

  // ---- WebSocket ------------------------------------------------------------------------------
  wsMaxSize: {
    flag: '--ws-max-size', value: 1 * MiB, unit: 'bytes', min: 1, max: 2 ** 31 - 1,
    what: 'a WebSocket message received, all fragments together',
    atBound: 'close 1009, as soon as the frame header announcing it arrives (before its payload is buffered)',
    why: 'a message is buffered whole before the app sees it, so this is also what one message can make the server hold; 1 MiB is far above any chat message (uvicorn allows 16 MiB)',
  },
  deflateThresholdBytes: {
    value: 128, unit: 'bytes',
    what: 'messages sent uncompressed although permessage-deflate was negotiated (with --ws-per-message-deflate)',
    atBound: 'a message of this size or more is compressed (received compressed messages are bounded by --ws-max-size after inflating: close 1009 as soon as inflating passes it)',
    why: 'deflate saves almost nothing on short messages (measured on chat JSON: 3 % at 60 bytes, 14 % at 100, 45 % at 300) for a fixed cost per call',
  },
  maxFragments: {
    value: 1024, unit: 'fragments',
    what: 'the frames one WebSocket message arrives in',
    atBound: 'close 1009',
    why: 'each fragment costs a header parse and a Buffer whatever its size: bound the count, not only the bytes (a flood of 1-byte fragments); no real client splits a message this finely',
  },
  earlyBytes: {
    value: 64 * KiB, unit: 'bytes',
    what: 'bytes a client sends before the handshake completes (while the app decides)',
    atBound: 'the socket is destroyed',
    why: 'a well-behaved client sends nothing before the 101; this allows an eager one its first frames, not a flood',
  },
  inboxPauseMessages: {
    value: 64, unit: 'messages',
    what: 'messages received and not yet taken by the app (`receive`)',
    atBound: 'the socket is paused (TCP pushes back on the client) until the inbox is back under the resume marks',
    why: 'enough to absorb a burst while the app is busy; bounded by count as well as bytes, since 64 messages of the largest size would be 64 × --ws-max-size',
  },
  inboxPauseBytes: {
    value: 1 * MiB, unit: 'bytes',
    what: 'bytes of the messages received and not yet taken by the app',
    atBound: 'the socket is paused, as for the message count',
    why: 'the same bound in bytes: one --ws-max-size message at the default',
  },
  inboxResumeMessages: {
    value: 16, unit: 'messages',
    what: 'the inbox count under which reading resumes (with the bytes under their mark too)',
    atBound: 'the socket is read again',
    why: 'a quarter of the pause mark: resuming only once the app has taken most of the backlog avoids pausing and resuming on every message',
  },
  inboxResumeBytes: {
    value: 256 * KiB, unit: 'bytes',
    what: 'the inbox bytes under which reading resumes (with the count under its mark too)',
    atBound: 'the socket is read again',
    why: 'a quarter of the pause mark, for the same reason',
  },
  sendHighWaterBytes: {
    value: 64 * KiB, unit: 'bytes',
    what: 'bytes queued to one socket and not yet sent (this turn\'s frames and the socket\'s own buffer)',
    atBound: '`send` waits for `drain`, and the socket is not read: a peer that does not read its pongs or broadcasts cannot make the server write more',
    why: 'about one TCP receive window: enough to keep a healthy connection\'s pipe full between turns, while 10,000 stuck peers hold at most 640 MiB, not whatever they were sent',
  },
  maxJoinedBytes: {
    value: 64 * KiB, unit: 'bytes',
    what: 'one socket\'s frames of one turn copied into a single Buffer (write coalescing)',
    atBound: 'above it the frames are not copied but handed to the socket together, for one writev()',
    why: 'joining small frames saves a write per frame and is shared by every socket that got the same run; past a few pages, copying costs more than it saves',
  },
  frameCacheEntries: {
    value: 4096, unit: 'frames',
    what: 'encoded text frames kept for reuse by other sends of the same text (per process)',
    atBound: 'the oldest entry is evicted',
    why: 'a text is hot while it fans out, then never again: thousands cover every broadcast in flight',
  },
  frameCacheBytes: {
    value: 8 * MiB, unit: 'bytes',
    what: 'bytes of the frames kept in the frame cache',
    atBound: 'the oldest entries are evicted; a frame larger than a sixteenth of this is never cached',
    why: 'bounds the cache whatever the message sizes; one huge text would only evict the useful entries',
  },
  wsPingInterval: {
    flag: '--ws-ping-interval', value: 20, unit: 's', min: 0, max: MAX_SECONDS,
    what: 'time between heartbeat pings on an open WebSocket',
    atBound: 'a ping is sent; `0` sends none',
    why: 'uvicorn\'s default; well under the minute after which proxies and NATs commonly drop an idle connection',
  },
  wsPingTimeout: {
    flag: '--ws-ping-timeout', value: 20, unit: 's', min: 0, max: MAX_SECONDS,
    what: 'silence after a heartbeat ping (no pong, no frame at all)',
    atBound: 'the connection is dropped; the app sees 1006. `0` never drops',
    why: 'uvicorn\'s default; a peer whose network went away is noticed within a minute, and a slow one is not dropped',
  },
  closeTimeoutMs: {
    value: 5000, unit: 'ms',
    what: 'a closing connection: the peer\'s Close after ours, or its FIN after our end of TCP',
    atBound: 'the socket is destroyed',
    why: 'a peer that is there answers within a round trip; one that is not must not hold the socket',
  },

  // ---- the process ----------------------------------------------------------------------------
  limitConcurrency: {
    flag: '--limit-concurrency', value: 10_000, unit: 'connections', min: 1, max: 10_000_000,
    what: 'connections open at once in one process',
    atBound: 'a new connection is answered `503 Service Unavailable` (`Connection: close`) at once and closed, and the application never sees it; on a TLS port, where a plain answer would be garbage, it is closed without a word',
    why: 'about 75 MiB when all are idle (7.5 KiB each, see Performance): affordable on a small machine. The process needs as many file descriptors: raise `ulimit -n` to match',
  },
  timeoutGracefulShutdown: {
    flag: '--timeout-graceful-shutdown', value: 10, unit: 's', min: 0, max: MAX_SECONDS,
    what: 'shutdown on SIGINT/SIGTERM: open connections finishing, then `lifespan.shutdown`',
    atBound: 'the remaining connections are closed, a warning says so, and the process exits',
    why: 'time for in-flight requests and closing handshakes; a deploy should not wait on a client that never finishes',
  },
  maxWorkers: {
    value: 256, unit: 'processes',
    what: 'worker processes (`--workers`)',
    atBound: 'a larger `--workers` is refused: exit 2, with a line saying so',
    why: 'each worker is a whole V8 heap, and more workers than cores only adds memory and context switches: this catches a typo, not a tuning',
  },
  workerKillMarginMs: {
    value: 5000, unit: 'ms',
    what: 'how long after --timeout-graceful-shutdown the primary waits for its workers to exit',
    atBound: 'the workers still running are killed (SIGKILL)',
    why: 'workers bound their own shutdown; the margin is for their exit itself, under load',
  },
  firstRestartDelayMs: {
    value: 100, unit: 'ms',
    what: 'the wait before a crashed worker is replaced',
    atBound: 'the new worker is forked; the wait doubles with each crash in a row',
    why: 'a single crash costs a tenth of a second of one worker, and a worker that dies as it starts is not forked in a tight loop',
  },
  maxRestartDelayMs: {
    value: 30_000, unit: 'ms',
    what: 'the longest wait before a crashed worker is replaced',
    atBound: 'the doubling stops',
    why: 'a crash loop cannot spin the machine, and a worker is still back within half a minute once the cause is gone',
  },
  stableAfterMs: {
    value: 10_000, unit: 'ms',
    what: 'how long a worker must stay up for its crash to count as new, not part of a loop',
    atBound: 'the restart delay goes back to the first one',
    why: 'longer than any start-up, so a worker that crashes while starting keeps backing off',
  },
  workerSemiSpaceMiB: {
    value: 1, unit: 'MiB',
    what: 'each half of a cluster worker\'s V8 young generation (`--max-semi-space-size`), unless the operator chose one',
    atBound: 'the young generation grows no further: scavenges come more often',
    why: 'with 10,000 idle connections on 4 workers, 7.1 KiB per connection instead of 12.8; about a tenth more CPU per delivery at moderate fan-out rates, none measurable at the highest',
  },
} as const satisfies Record<string, Limit | FlagLimit>;

export type ServerLimitName = keyof typeof SERVER_LIMITS;
