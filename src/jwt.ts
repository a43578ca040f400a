// JSON Web Tokens (RFC 7519) in the JWS Compact Serialization (RFC 7515 §7.1), signed HS256
// (HMAC-SHA256, RFC 7518 §3.2), on node:crypto alone. The rooms' `authenticate` action uses
// verifyToken; the operators' minting tool (src/token.ts) and the tests use signToken.
//
// Theory of operation
// -------------------
// A token is three base64url segments joined by dots:
//
//     BASE64URL(header JSON) . BASE64URL(claims JSON) . BASE64URL(HMAC-SHA256(secret, first two))
//     eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MTcwMDAwMDAwMH0.3q2-7w...
//
// base64url (RFC 4648 §5, as RFC 7515 §2 uses it) is base64 with `-` and `_` in place of `+` and
// `/`, and no `=` padding, so a token fits in a URL fragment or a JSON string unescaped. The
// signature covers the *encoded* header and claims (the "signing input", RFC 7515 §5.1), so we
// check it on the text as received, before trusting a byte of what it encodes.
//
// verifyToken checks, in this order, and the first failure is the answer:
//
//   1. a string of at most MAX_TOKEN_BYTES, before anything else: every later step costs time in
//      proportion to the length, so a megabyte of garbage is refused for the price of a compare.
//   2. exactly three segments, each strict base64url: only `A-Z a-z 0-9 - _`, no `=`, and the
//      canonical encoding (re-encoding the decoded bytes gives the same text). Lenient decoders
//      ignore stray characters and trailing bits, which would let many texts carry one signature.
//   3. the header (RFC 7515 §4) is a JSON object whose `alg` is exactly "HS256". The algorithm is
//      the server's choice, never the token's: "none" (RFC 7518 §3.6, an unsigned token),
//      "HS512", "RS256" (the classic confusion where a public key is used as an HMAC secret) and a
//      missing `alg` are all refused. `typ`, if present, must be "JWT" (RFC 7519 §5.1 recommends
//      that spelling; our tool writes it). `crit` (RFC 7515 §4.1.11) lists extensions the reader
//      MUST understand; we understand none, so any `crit` is refused — this also refuses RFC
//      7797's unencoded payloads, which need it. `kid`, `jku`, `jwk`, `x5u`... are ignored: the
//      only key is the server's secret, never one the token points at.
//   4. the signature is HMAC-SHA256(secret, "header.payload") — 32 bytes — compared with
//      crypto.timingSafeEqual, whose time does not depend on where the bytes first differ, so an
//      attacker cannot find the right signature byte by byte from response times. A signature of
//      another length is refused before the compare: the length is in the token itself, so that
//      refusal tells nothing the attacker did not already know.
//   5. only now the claims (RFC 7519 §4) are decoded: a JSON object whose `sub` (§4.1.2) is the
//      user id — a string of 1 to 64 characters (Unicode code points) with no control character
//      (C0, DEL, C1) and no lone surrogate; `exp` (§4.1.4), if present, a number: the token is
//      expired when now >= exp (→ `token_expired`); `nbf` (§4.1.5), if present, a number: the
//      token is refused while now < nbf (→ `bad_token`). `aud` (§4.1.3): a reader that does not
//      identify itself with the audience MUST reject the token, and this server has no audience
//      name, so a token with `aud` is refused. `iat`, `iss`, `jti` and other claims are not
//      checked; they are returned to the caller in `claims`.
//
// No leeway: times are compared exactly, in seconds. The issuer and the server should share a
// clock (NTP); an issuer whose clock runs ahead should mint without `nbf` (our tool never sets it).
// Duplicate member names in the header or claims: JSON.parse keeps the last one, which is what
// RFC 7515 §4 and RFC 7519 §4 allow a parser to do.
//
// The secret is the UTF-8 bytes of CHAT_SECRET as written (it is not base64-decoded), at least
// MIN_SECRET_BYTES long: RFC 7518 §3.2 requires an HS256 key of at least the hash's 256 bits.
import { createHmac, timingSafeEqual } from 'node:crypto';

/** Longest token accepted, checked before any decoding. Tokens are ASCII, so characters = bytes. */
export const MAX_TOKEN_BYTES = 4096;
/** Shortest CHAT_SECRET, in UTF-8 bytes (RFC 7518 §3.2: a key at least as long as the hash). */
export const MIN_SECRET_BYTES = 32;
/** Longest user id, in Unicode code points (the chat protocol's "Identity"). */
export const MAX_USER_ID_LENGTH = 64;
/** A command that prints a good secret: 32 random bytes, base64url (43 characters). */
export const GENERATE_SECRET_COMMAND = `export CHAT_SECRET=$(node -e "console.log(require('node:crypto').randomBytes(32).toString('base64url'))")`;

export type TokenError = 'bad_token' | 'token_expired';
export type VerifyResult =
  | { ok: true; user: string; claims: Record<string, unknown> }
  | { ok: false; error: TokenError; message: string };

/** The only header we write, and the only `alg` we read. */
const HEADER = { alg: 'HS256', typ: 'JWT' } as const;
/** HMAC-SHA256 output length, in bytes. */
const SIGNATURE_BYTES = 32;
/** The base64url alphabet (RFC 4648 §5), without padding. */
const BASE64URL = /^[A-Za-z0-9_-]*$/;
/** C0 controls, DEL and C1 controls; `\p{Cs}` with the u flag matches only a lone surrogate. */
const CONTROL_OR_LONE_SURROGATE = /[\u0000-\u001f\u007f-\u009f]|\p{Cs}/u;

/**
 * Checks a token and returns the user it proves, or the protocol error code with a sentence for a
 * person (it goes into `error_message`). `nowSeconds` is seconds since the epoch (fractions allowed).
 */
export function verifyToken(token: unknown, secret: Buffer, nowSeconds: number): VerifyResult {
  requireSecretLength(secret, 'verifyToken');
  if (typeof token !== 'string') return refuse('The token must be a string.');
  // 1. The size cap, before any work proportional to the length. A string's length in UTF-16
  //    units is at most its UTF-8 byte count, and any non-ASCII token fails step 2 anyway.
  if (token.length > MAX_TOKEN_BYTES) {
    return refuse(`The token is longer than ${MAX_TOKEN_BYTES} characters.`);
  }

  // 2. Three strict base64url segments (RFC 7515 §7.1).
  const segments = token.split('.');
  if (segments.length !== 3) {
    return refuse(`A token has three parts separated by dots; this one has ${segments.length}.`);
  }
  const [headerText, payloadText, signatureText] = segments as [string, string, string];
  for (const [segment, name] of [[headerText, 'header'], [payloadText, 'payload'], [signatureText, 'signature']] as const) {
    const problem = base64urlProblem(segment);
    if (problem !== null) return refuse(`The token's ${name} ${problem}.`);
  }

  // 3. The header: HS256 and nothing we do not understand.
  const header = parseJsonObject(headerText);
  if (header === null) return refuse("The token's header is not a JSON object.");
  if (header.alg !== HEADER.alg) {
    const alg = header.alg === undefined ? 'missing' : typeof header.alg === 'string' ? `"${printable(header.alg)}"` : 'not a string';
    return refuse(`The token's algorithm (alg) is ${alg}; this server accepts only HS256.`);
  }
  if ('typ' in header && header.typ !== HEADER.typ) {
    return refuse('The token\'s type (typ) must be "JWT" when present.');
  }
  if ('crit' in header) {
    return refuse('The token requires extensions (crit) that this server does not support.');
  }

  // 4. The signature, in constant time, over the segments exactly as received.
  const given = Buffer.from(signatureText, 'base64url');
  const expected = createHmac('sha256', secret).update(`${headerText}.${payloadText}`).digest();
  if (given.length !== SIGNATURE_BYTES || !timingSafeEqual(given, expected)) {
    return refuse('The token\'s signature does not match: it was not signed with this server\'s secret, or it was altered.');
  }

  // 5. The claims, now that we know the server's secret signed them.
  const claims = parseJsonObject(payloadText);
  if (claims === null) return refuse("The token's payload is not a JSON object.");
  const userProblem = userIdProblem(claims.sub);
  if (userProblem !== null) return refuse(`The token's subject (sub) ${userProblem}.`);
  for (const name of ['exp', 'nbf'] as const) {
    if (name in claims && !(typeof claims[name] === 'number' && Number.isFinite(claims[name]))) {
      return refuse(`The token's ${name} claim must be a number of seconds since the epoch.`);
    }
  }
  if ('aud' in claims) {
    return refuse('The token names an audience (aud), and this server has none; mint it without aud.');
  }
  const exp = claims.exp as number | undefined;
  if (exp !== undefined && nowSeconds >= exp) {
    return { ok: false, error: 'token_expired', message: `The token expired at ${describeTime(exp)}.` };
  }
  const nbf = claims.nbf as number | undefined;
  if (nbf !== undefined && nowSeconds < nbf) {
    return refuse(`The token is not valid before ${describeTime(nbf)}.`);
  }
  return { ok: true, user: claims.sub as string, claims };
}

/**
 * Mints a token: the fixed header {"alg":"HS256","typ":"JWT"}, the claims as given (not checked,
 * so that tests can mint bad ones), and their HMAC-SHA256 signature.
 */
export function signToken(claims: Record<string, unknown>, secret: Buffer): string {
  requireSecretLength(secret, 'signToken');
  const signingInput = `${encodeJson(HEADER)}.${encodeJson(claims)}`;
  return `${signingInput}.${createHmac('sha256', secret).update(signingInput).digest('base64url')}`;
}

/**
 * Reads CHAT_SECRET's value: null when unset or empty (rooms are disabled), its UTF-8 bytes when
 * at least MIN_SECRET_BYTES long; otherwise throws an Error that names CHAT_SECRET (and never
 * shows the secret).
 */
export function checkSecret(raw: string | undefined): Buffer | null {
  if (raw === undefined || raw === '') return null;
  const secret = Buffer.from(raw, 'utf8');
  if (secret.length < MIN_SECRET_BYTES) {
    throw new Error(`CHAT_SECRET must be at least ${MIN_SECRET_BYTES} bytes long, got ${secret.length}; generate one with: ${GENERATE_SECRET_COMMAND}`);
  }
  return secret;
}

/**
 * Why `value` is not a user id (1 to 64 code points, no control character, no lone surrogate),
 * as the end of a sentence ("must be a string"), or null when it is one.
 */
export function userIdProblem(value: unknown): string | null {
  if (typeof value !== 'string') return value === undefined ? 'is missing' : 'must be a string';
  if (value === '') return 'is empty';
  // Cheap bound before counting code points: each is at most two UTF-16 units.
  if (value.length > 2 * MAX_USER_ID_LENGTH || [...value].length > MAX_USER_ID_LENGTH) {
    return `is longer than ${MAX_USER_ID_LENGTH} characters`;
  }
  if (CONTROL_OR_LONE_SURROGATE.test(value)) return 'contains a control character';
  return null;
}

function refuse(message: string): VerifyResult {
  return { ok: false, error: 'bad_token', message };
}

/** A programming error, not a bad token: the caller must have passed the secret through checkSecret. */
function requireSecretLength(secret: Buffer, caller: string): void {
  if (secret.length < MIN_SECRET_BYTES) {
    throw new Error(`${caller} needs a secret of at least ${MIN_SECRET_BYTES} bytes (see checkSecret)`);
  }
}

/** Why a segment is not strict, canonical base64url, or null when it is. */
function base64urlProblem(segment: string): string | null {
  if (segment.includes('=')) return 'is padded with "="; tokens use base64url without padding';
  if (!BASE64URL.test(segment)) return 'contains characters outside base64url (A-Z, a-z, 0-9, "-" and "_")';
  // One leftover character carries 6 bits, less than a byte: no encoder produces it. Other
  // non-canonical texts set bits that the last character's unused low bits should leave at zero.
  if (Buffer.from(segment, 'base64url').toString('base64url') !== segment) {
    return 'is not canonical base64url';
  }
  return null;
}

/** The decoded JSON object, or null when the segment is not JSON or not a plain object. */
function parseJsonObject(segment: string): Record<string, unknown> | null {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    return null;
  }
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}

function encodeJson(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

/** A NumericDate as an ISO time, or as seconds when it is beyond what Date can show. */
function describeTime(seconds: number): string {
  const date = new Date(seconds * 1000);
  return Number.isNaN(date.getTime()) ? `${seconds} seconds since the epoch` : date.toISOString();
}

/** A token's text quoted in a message: at most 20 characters, control characters replaced. */
function printable(text: string): string {
  const codePoints = Array.from(text); // so that the cut never splits a surrogate pair
  const short = codePoints.length > 20 ? `${codePoints.slice(0, 20).join('')}…` : text;
  return short.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}
