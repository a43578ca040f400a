// Tests for src/jwt.ts: verifyToken, signToken, checkSecret and userIdProblem.
//
// Tokens are built by hand here (JSON → base64url → HMAC-SHA256 with node:crypto), not with
// signToken, so that a mistake in signToken cannot hide the same mistake in verifyToken; the one
// external fixture is RFC 7515 Appendix A.1, whose signature was computed by someone else.
// Every refusal is checked by its exact error code and by a word of its message, so that a
// token refused for the wrong reason fails the test.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import {
  MAX_TOKEN_BYTES,
  MIN_SECRET_BYTES,
  checkSecret,
  signToken,
  userIdProblem,
  verifyToken,
  type TokenError,
} from '../src/jwt.js';

const SECRET = Buffer.from('a-test-secret-that-is-32-bytes!!', 'utf8');
const OTHER_SECRET = Buffer.from('another-secret-also-of-32-bytes!', 'utf8');
/** A fixed "now" (2023-11-14T22:13:20Z), so that every time comparison is exact. */
const NOW = 1_700_000_000;

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64url');
const json = (value: unknown): string => b64(JSON.stringify(value));
const hmac = (key: Buffer, input: string): string => createHmac('sha256', key).update(input).digest('base64url');

/** A token with any header and payload *segments* (already encoded), signed with `key`. */
function signSegments(header: string, payload: string, key: Buffer = SECRET): string {
  return `${header}.${payload}.${hmac(key, `${header}.${payload}`)}`;
}
/** A token with any header and claims objects, signed with `key`. */
function mint(claims: unknown, header: unknown = { alg: 'HS256', typ: 'JWT' }, key: Buffer = SECRET): string {
  return signSegments(json(header), json(claims), key);
}

/** A sentence for a person: starts with a capital, ends with a period, says something. */
function assertSentence(message: string): void {
  assert.match(message, /^[A-Z].{15,}\.$/s, `a sentence: ${JSON.stringify(message)}`);
}

function assertRefused(token: unknown, error: TokenError, words: RegExp, now = NOW): void {
  const result = verifyToken(token, SECRET, now);
  assert.equal(result.ok, false, `refused: ${String(token).slice(0, 200)}`);
  if (result.ok) return;
  assert.equal(result.error, error, result.message);
  assert.match(result.message, words);
  assertSentence(result.message);
}

function assertAccepted(token: string, user: string, now = NOW): Record<string, unknown> {
  const result = verifyToken(token, SECRET, now);
  assert.ok(result.ok, result.ok ? '' : `${result.error}: ${result.message}`);
  assert.equal(result.user, user);
  return result.claims;
}

describe('a good token', () => {
  test('built by hand (header JSON → base64url, payload JSON → base64url, HMAC) is accepted with its claims', () => {
    const header = b64('{"alg":"HS256","typ":"JWT"}');
    const payload = b64('{"sub":"alice","exp":1700003600,"role":"admin"}');
    const signature = createHmac('sha256', SECRET).update(`${header}.${payload}`).digest();
    const token = `${header}.${payload}.${signature.toString('base64url')}`;
    const claims = assertAccepted(token, 'alice');
    assert.deepEqual(claims, { sub: 'alice', exp: 1700003600, role: 'admin' });
  });

  test('signToken writes exactly that token: the header {"alg":"HS256","typ":"JWT"}, then the claims', () => {
    const byHand = signSegments(b64('{"alg":"HS256","typ":"JWT"}'), b64('{"sub":"alice","exp":1700003600}'));
    assert.equal(signToken({ sub: 'alice', exp: 1700003600 }, SECRET), byHand);
  });

  test('a header without typ, and with unknown parameters such as kid, is accepted', () => {
    assertAccepted(mint({ sub: 'bob' }, { alg: 'HS256' }), 'bob');
    assertAccepted(mint({ sub: 'bob' }, { alg: 'HS256', kid: 'key-1', jku: 'https://attacker.example/keys' }), 'bob');
  });

  test('user ids: 64 code points (emoji take two UTF-16 units each), spaces, any script', () => {
    const emoji = '😀'.repeat(64);
    assert.equal(emoji.length, 128);
    assertAccepted(mint({ sub: emoji }), emoji);
    assertAccepted(mint({ sub: 'a'.repeat(64) }), 'a'.repeat(64));
    assertAccepted(mint({ sub: 'Zoë Ångström 李' }), 'Zoë Ångström 李');
  });

  test('iat is not checked; other claims are returned as they are', () => {
    const claims = assertAccepted(mint({ sub: 'carol', iat: 'not a number', iss: 'app', jti: 7 }), 'carol');
    assert.deepEqual(claims, { sub: 'carol', iat: 'not a number', iss: 'app', jti: 7 });
  });
});

describe('RFC 7515 Appendix A.1 (HS256)', () => {
  // The example's key, a JWK "k" (base64url), and its token, as printed in the RFC. Its header
  // and payload contain CR LF, so they are checked as the exact bytes the RFC signed.
  const K = 'AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow';
  const TOKEN =
    'eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9' +
    '.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ' +
    '.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk';
  const key = Buffer.from(K, 'base64url');

  test('the fixture is the RFC\'s: a 64-byte key, and the header and payload it shows', () => {
    assert.equal(key.length, 64);
    const [header, payload] = TOKEN.split('.').map((s) => Buffer.from(s, 'base64url').toString('utf8'));
    assert.equal(header, '{"typ":"JWT",\r\n "alg":"HS256"}');
    assert.equal(payload, '{"iss":"joe",\r\n "exp":1300819380,\r\n "http://example.com/is_root":true}');
  });

  test('its signature verifies: the only refusal is the claims check, for the missing sub', () => {
    // The example has no sub, which the chat requires; a refusal that talks about the subject
    // (and not the signature) shows that the header and the signature passed.
    const result = verifyToken(TOKEN, key, 1300819379);
    assert.deepEqual(result, { ok: false, error: 'bad_token', message: "The token's subject (sub) is missing." });
  });

  test('with another key, the same token is refused for its signature', () => {
    const result = verifyToken(TOKEN, SECRET, 1300819379);
    assert.equal(result.ok, false);
    assert.match(result.ok ? '' : result.message, /signature/);
  });
});

describe('the signature', () => {
  const good = mint({ sub: 'alice' });
  const [header, payload, signature] = good.split('.') as [string, string, string];

  test('signed with another secret: bad_token', () => {
    assertRefused(mint({ sub: 'alice' }, undefined, OTHER_SECRET), 'bad_token', /signature/);
  });

  test('payload changed after signing (sub alice → mallory): bad_token', () => {
    assertRefused(`${header}.${json({ sub: 'mallory' })}.${signature}`, 'bad_token', /signature/);
  });

  test('header changed after signing (typ dropped): bad_token', () => {
    assertRefused(`${json({ alg: 'HS256' })}.${payload}.${signature}`, 'bad_token', /signature/);
  });

  test('one bit of the signature flipped: bad_token', () => {
    const bytes = Buffer.from(signature, 'base64url');
    bytes[0]! ^= 1;
    assertRefused(`${header}.${payload}.${bytes.toString('base64url')}`, 'bad_token', /signature/);
  });

  test('a signature of the wrong length (the right one cut short, or made longer): bad_token', () => {
    const bytes = Buffer.from(signature, 'base64url');
    assertRefused(`${header}.${payload}.${bytes.subarray(0, 31).toString('base64url')}`, 'bad_token', /signature/);
    assertRefused(`${header}.${payload}.${Buffer.concat([bytes, Buffer.of(0)]).toString('base64url')}`, 'bad_token', /signature/);
    assertRefused(`${header}.${payload}.`, 'bad_token', /signature/);
  });

  test('the right signature in a non-canonical spelling (unused low bits set): refused before the compare', () => {
    // 32 bytes take 43 characters, whose last carries 4 bits of data and 2 unused ones. A lenient
    // decoder reads this text as the very same 32 bytes, so only the strict check can refuse it.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(signature.at(-1)!);
    assert.equal(last & 0b11, 0, 'an encoder leaves the unused bits at zero');
    const respelled = signature.slice(0, -1) + alphabet[last | 1];
    assert.deepEqual(Buffer.from(respelled, 'base64url'), Buffer.from(signature, 'base64url'), 'the same bytes');
    assertRefused(`${header}.${payload}.${respelled}`, 'bad_token', /signature.*not canonical/);
  });
});

describe('the header', () => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['alg "none"', { alg: 'none', typ: 'JWT' }, /algorithm \(alg\) is "none"; this server accepts only HS256/],
    ['alg "HS512"', { alg: 'HS512', typ: 'JWT' }, /"HS512"/],
    ['alg "RS256"', { alg: 'RS256', typ: 'JWT' }, /"RS256"/],
    ['alg "hs256" (the name is case-sensitive, RFC 7515 §4.1.1)', { alg: 'hs256' }, /"hs256"/],
    ['alg missing', { typ: 'JWT' }, /algorithm \(alg\) is missing/],
    ['alg not a string', { alg: 256 }, /algorithm \(alg\) is not a string/],
    ['typ "JOSE"', { alg: 'HS256', typ: 'JOSE' }, /type \(typ\) must be "JWT"/],
    ['typ "jwt"', { alg: 'HS256', typ: 'jwt' }, /type \(typ\) must be "JWT"/],
    ['crit', { alg: 'HS256', crit: ['exp'], exp: 1 }, /crit/],
    ['crit empty', { alg: 'HS256', crit: [] }, /crit/],
    ['crit with b64 (RFC 7797 unencoded payload)', { alg: 'HS256', b64: false, crit: ['b64'] }, /crit/],
    ['an array', ['HS256'], /header is not a JSON object/],
    ['null', null, /header is not a JSON object/],
  ];
  for (const [name, header, words] of cases) {
    test(`${name}: bad_token, even though the HMAC over it is right`, () => {
      assertRefused(mint({ sub: 'alice' }, header), 'bad_token', words);
    });
  }

  test('alg "none" with an empty signature (an unsigned token, RFC 7519 §6.1): bad_token', () => {
    assertRefused(`${json({ alg: 'none' })}.${json({ sub: 'alice' })}.`, 'bad_token', /"none"/);
  });

  test('not JSON: bad_token', () => {
    assertRefused(signSegments(b64('{"alg":"HS256"'), json({ sub: 'alice' })), 'bad_token', /header is not a JSON object/);
    assertRefused(signSegments('', json({ sub: 'alice' })), 'bad_token', /header is not a JSON object/);
  });
});

describe('the shape of the token', () => {
  const good = mint({ sub: 'alice' });
  const [header, payload, signature] = good.split('.') as [string, string, string];

  test('not a string: bad_token', () => {
    for (const value of [undefined, null, 42, {}, [good], Buffer.from(good)]) {
      assertRefused(value, 'bad_token', /must be a string/);
    }
  });

  test('two, four, one or five segments: bad_token saying how many', () => {
    assertRefused(`${header}.${payload}`, 'bad_token', /three parts.*has 2/);
    assertRefused(`${good}.${signature}`, 'bad_token', /three parts.*has 4/);
    assertRefused('', 'bad_token', /three parts.*has 1/);
    assertRefused('....', 'bad_token', /three parts.*has 5/);
  });

  test('padding "=" in any segment: bad_token', () => {
    // The 36-character header needs no padding; a 2-byte payload does in plain base64.
    const padded = Buffer.from('{}').toString('base64');
    assert.equal(padded, 'e30=');
    assertRefused(signSegments(header, padded), 'bad_token', /payload is padded/);
    assertRefused(`${header}.${payload}.${signature}=`, 'bad_token', /signature is padded/);
    assertRefused(`${header}==.${payload}.${signature}`, 'bad_token', /header is padded/);
  });

  test('characters outside base64url ("+", "/", space, non-ASCII, a newline): bad_token', () => {
    for (const bad of ['a+b', 'a/b', 'a b', 'é', 'ab\n']) {
      assertRefused(signSegments(header, bad), 'bad_token', /payload contains characters outside base64url/);
    }
    assertRefused(`${header}.${payload}.${signature.replaceAll('-', '+').replaceAll('_', '/')}x/`, 'bad_token', /signature contains characters outside/);
  });

  test('a segment whose length leaves one character over (no encoder writes it): bad_token', () => {
    let overlong = payload;
    while (overlong.length % 4 !== 1) overlong += 'A';
    assertRefused(signSegments(header, overlong), 'bad_token', /payload is not canonical/);
  });

  test('the size cap: a token of MAX_TOKEN_BYTES is accepted, one byte more is refused though well signed', () => {
    // Grow a claim until the whole token has the wanted length (the signature is always 43
    // characters; base64url reaches every length but those that are 1 modulo 4).
    const tokenOfLength = (length: number): string => {
      for (let padding = 0; padding < length; padding++) {
        const token = mint({ sub: 'alice', pad: 'x'.repeat(padding) });
        if (token.length === length) return token;
        if (token.length > length) break;
      }
      throw new Error(`no token of length ${length}`);
    };
    assert.equal(MAX_TOKEN_BYTES, 4096);
    assertAccepted(tokenOfLength(MAX_TOKEN_BYTES), 'alice');
    assertRefused(tokenOfLength(MAX_TOKEN_BYTES + 1), 'bad_token', /longer than 4096 characters/);
  });

  test('the size cap comes first: a megabyte of anything gets the size answer, not a parsing one', () => {
    assertRefused('.'.repeat(1 << 20), 'bad_token', /longer than 4096/);
    assertRefused('é'.repeat(MAX_TOKEN_BYTES + 1), 'bad_token', /longer than 4096/);
  });
});

describe('the claims', () => {
  test('payload not a JSON object (array, string, number, null, not JSON, empty): bad_token', () => {
    for (const payload of [json(['alice']), json('alice'), json(42), json(null), b64('{"sub":"alice"'), '']) {
      assertRefused(signSegments(json({ alg: 'HS256' }), payload), 'bad_token', /payload is not a JSON object/);
    }
  });

  const subCases: Array<[string, unknown, RegExp]> = [
    ['missing', undefined, /subject \(sub\) is missing/],
    ['empty', '', /subject \(sub\) is empty/],
    ['65 characters', 'a'.repeat(65), /subject \(sub\) is longer than 64 characters/],
    ['65 emoji', '😀'.repeat(65), /longer than 64 characters/],
    ['a number', 42, /subject \(sub\) must be a string/],
    ['null', null, /must be a string/],
    ['an array', ['alice'], /must be a string/],
    ['a NUL (C0)', 'ali\u0000ce', /control character/],
    ['a newline (C0)', 'alice\n', /control character/],
    ['DEL', 'alice\u007f', /control character/],
    ['NEL (C1)', 'alice\u0085', /control character/],
    ['a lone surrogate', 'alice\ud800', /control character/],
  ];
  for (const [name, sub, words] of subCases) {
    test(`sub ${name}: bad_token`, () => {
      assertRefused(mint(sub === undefined ? { exp: NOW + 60 } : { sub }), 'bad_token', words);
    });
  }

  test('exp: expired when now >= exp, exactly (token_expired, saying when)', () => {
    assertRefused(mint({ sub: 'alice', exp: NOW }), 'token_expired', /expired at 2023-11-14T22:13:20\.000Z/);
    assertRefused(mint({ sub: 'alice', exp: NOW - 3600 }), 'token_expired', /expired at 2023-11-14T21:13:20\.000Z/);
    assertRefused(mint({ sub: 'alice', exp: NOW }), 'token_expired', /expired/, NOW + 0.5);
    assertAccepted(mint({ sub: 'alice', exp: NOW + 1 }), 'alice');
    assertAccepted(mint({ sub: 'alice', exp: NOW }), 'alice', NOW - 0.001);
  });

  test('nbf: refused while now < nbf (bad_token, "not valid before"), accepted from nbf on', () => {
    assertRefused(mint({ sub: 'alice', nbf: NOW + 60 }), 'bad_token', /not valid before 2023-11-14T22:14:20\.000Z/);
    assertAccepted(mint({ sub: 'alice', nbf: NOW }), 'alice');
    assertAccepted(mint({ sub: 'alice', nbf: NOW - 60, exp: NOW + 60 }), 'alice');
  });

  test('exp or nbf not a number (a string, null, beyond a double): bad_token', () => {
    assertRefused(mint({ sub: 'alice', exp: String(NOW + 60) }), 'bad_token', /exp claim must be a number/);
    assertRefused(mint({ sub: 'alice', exp: null }), 'bad_token', /exp claim must be a number/);
    assertRefused(signSegments(json({ alg: 'HS256' }), b64('{"sub":"alice","exp":1e999}')), 'bad_token', /exp claim must be a number/);
    assertRefused(mint({ sub: 'alice', nbf: 'tomorrow' }), 'bad_token', /nbf claim must be a number/);
  });

  test('times beyond what a Date can show are described in seconds', () => {
    assertRefused(mint({ sub: 'alice', nbf: 1e300 }), 'bad_token', /not valid before 1e\+300 seconds since the epoch/);
  });

  test('aud (RFC 7519 §4.1.3: a reader that is not the audience must refuse): bad_token', () => {
    assertRefused(mint({ sub: 'alice', aud: 'chat' }), 'bad_token', /audience \(aud\)/);
  });
});

describe('secrets', () => {
  test('checkSecret: unset or empty is null (rooms disabled)', () => {
    assert.equal(checkSecret(undefined), null);
    assert.equal(checkSecret(''), null);
  });

  test('checkSecret: 32 bytes or more are the UTF-8 bytes of the string, as written', () => {
    assert.equal(MIN_SECRET_BYTES, 32);
    assert.deepEqual(checkSecret('x'.repeat(32)), Buffer.from('x'.repeat(32)));
    // 11 euro signs are 11 characters but 33 bytes: bytes count, not characters.
    assert.deepEqual(checkSecret('€'.repeat(11)), Buffer.from('€'.repeat(11), 'utf8'));
  });

  test('checkSecret: shorter than 32 bytes throws an Error naming CHAT_SECRET, without the secret', () => {
    const short = 'hunter2-hunter2-hunter2-hunter2'; // 31 bytes
    assert.throws(() => checkSecret(short), (error: Error) => {
      assert.match(error.message, /CHAT_SECRET must be at least 32 bytes long, got 31/);
      assert.ok(!error.message.includes(short), 'the secret is not shown');
      return true;
    });
    assert.throws(() => checkSecret('€'.repeat(10)), /CHAT_SECRET .* got 30/); // 10 characters, 30 bytes
  });

  test('verifyToken and signToken refuse to work with a short key (a caller that skipped checkSecret)', () => {
    assert.throws(() => verifyToken(mint({ sub: 'alice' }), Buffer.alloc(0), NOW), /at least 32 bytes/);
    assert.throws(() => signToken({ sub: 'alice' }, Buffer.from('short')), /at least 32 bytes/);
  });
});

describe('userIdProblem', () => {
  test('null for a user id, the end of a sentence otherwise', () => {
    assert.equal(userIdProblem('alice'), null);
    assert.equal(userIdProblem('😀'.repeat(64)), null);
    assert.equal(userIdProblem(undefined), 'is missing');
    assert.equal(userIdProblem(7), 'must be a string');
    assert.equal(userIdProblem(''), 'is empty');
    assert.equal(userIdProblem('a'.repeat(65)), 'is longer than 64 characters');
    assert.equal(userIdProblem('a\u009fb'), 'contains a control character');
  });
});
