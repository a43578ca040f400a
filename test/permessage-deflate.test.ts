// Tests for src/server/permessage-deflate.ts: negotiating permessage-deflate (RFC 7692 §7.1) from
// the request's Sec-WebSocket-Extensions lines. Each rule is a row: the offer as a client sends
// it, and the exact answer (the 101's header value, or null: no compression) with the parameters
// the connection will use; declined offers also say why.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { judgeOffer, negotiatePerMessageDeflate, parseExtensionOffers, type DeflateParameters } from '../src/server/permessage-deflate.js';

const DEFAULT_PARAMETERS: DeflateParameters = { serverMaxWindowBits: 15, clientMaxWindowBits: 15, clientNoContextTakeover: false };

/** Negotiates over Sec-WebSocket-Extensions lines given as they would be received. */
const negotiate = (...lines: string[]) => negotiatePerMessageDeflate(lines.flatMap((line) => ['Sec-WebSocket-Extensions', line]));

interface AcceptCase {
  name: string;
  lines: string[];
  response: string;
  parameters?: Partial<DeflateParameters>;
}

const acceptCases: AcceptCase[] = [
  { name: 'a bare offer: we always add server_no_context_takeover', lines: ['permessage-deflate'], response: 'permessage-deflate; server_no_context_takeover' },
  {
    name: "a browser's offer: client_max_window_bits without a value is left out of the answer",
    lines: ['permessage-deflate; client_max_window_bits'],
    response: 'permessage-deflate; server_no_context_takeover',
  },
  {
    name: 'server_no_context_takeover asked: honoured (it is what we do anyway)',
    lines: ['permessage-deflate; server_no_context_takeover'],
    response: 'permessage-deflate; server_no_context_takeover',
  },
  {
    name: 'client_no_context_takeover: echoed, and no window is kept for the client',
    lines: ['permessage-deflate; client_no_context_takeover'],
    response: 'permessage-deflate; server_no_context_takeover; client_no_context_takeover',
    parameters: { clientNoContextTakeover: true },
  },
  {
    name: 'server_max_window_bits=10: echoed, and we compress with a 1 KiB window',
    lines: ['permessage-deflate; server_max_window_bits=10'],
    response: 'permessage-deflate; server_no_context_takeover; server_max_window_bits=10',
    parameters: { serverMaxWindowBits: 10 },
  },
  {
    name: 'server_max_window_bits=9 and 15 (the ends we support)',
    lines: ['permessage-deflate; server_max_window_bits=9'],
    response: 'permessage-deflate; server_no_context_takeover; server_max_window_bits=9',
    parameters: { serverMaxWindowBits: 9 },
  },
  {
    name: 'client_max_window_bits=12 (a hint): echoed, and we inflate with that window',
    lines: ['permessage-deflate; client_max_window_bits=12'],
    response: 'permessage-deflate; server_no_context_takeover; client_max_window_bits=12',
    parameters: { clientMaxWindowBits: 12 },
  },
  {
    name: 'client_max_window_bits=8: zlib inflates with an 8-bit window, so it is accepted',
    lines: ['permessage-deflate; client_max_window_bits=8'],
    response: 'permessage-deflate; server_no_context_takeover; client_max_window_bits=8',
    parameters: { clientMaxWindowBits: 8 },
  },
  {
    name: 'every parameter at once, in any order',
    lines: ['permessage-deflate; client_max_window_bits=11; client_no_context_takeover; server_max_window_bits=13; server_no_context_takeover'],
    response: 'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=13; client_max_window_bits=11',
    parameters: { serverMaxWindowBits: 13, clientMaxWindowBits: 11, clientNoContextTakeover: true },
  },
  {
    name: 'a quoted value is unquoted (RFC 6455 §9.1)',
    lines: ['permessage-deflate; server_max_window_bits="10"'],
    response: 'permessage-deflate; server_no_context_takeover; server_max_window_bits=10',
    parameters: { serverMaxWindowBits: 10 },
  },
  {
    name: 'whitespace around the separators and the "="',
    lines: ['  permessage-deflate ;  server_max_window_bits = 11 ;client_no_context_takeover  '],
    response: 'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11',
    parameters: { serverMaxWindowBits: 11, clientNoContextTakeover: true },
  },
  {
    name: 'the first offer we support wins, the client preferring it (§5.1)',
    lines: ['permessage-deflate; server_max_window_bits=10, permessage-deflate'],
    response: 'permessage-deflate; server_no_context_takeover; server_max_window_bits=10',
    parameters: { serverMaxWindowBits: 10 },
  },
  {
    name: 'an offer we decline is skipped for the next one (here: server_max_window_bits=8)',
    lines: ['permessage-deflate; server_max_window_bits=8, permessage-deflate; client_max_window_bits'],
    response: 'permessage-deflate; server_no_context_takeover',
  },
  {
    name: 'offers over several header lines count in order',
    lines: ['permessage-deflate; unknown_param', 'x-webkit-deflate-frame', 'permessage-deflate; client_no_context_takeover'],
    response: 'permessage-deflate; server_no_context_takeover; client_no_context_takeover',
    parameters: { clientNoContextTakeover: true },
  },
  {
    name: 'other extensions are ignored, and so are empty list elements',
    lines: ['foo; bar=1, , permessage-deflate ,'],
    response: 'permessage-deflate; server_no_context_takeover',
  },
  {
    name: 'a malformed element is declined, the next one still counts',
    lines: ['permessage-deflate; =10, permessage-deflate'],
    response: 'permessage-deflate; server_no_context_takeover',
  },
];

for (const c of acceptCases) {
  test(`negotiate: ${c.name}`, () => {
    assert.deepEqual(negotiate(...c.lines), { response: c.response, parameters: { ...DEFAULT_PARAMETERS, ...c.parameters } });
  });
}

interface DeclineCase {
  name: string;
  offer: string;
  /** Why judgeOffer declines it (null: the element is malformed and never reaches it). */
  reason: string | null;
}

// §7.1: "A server MUST decline an extension negotiation offer for this extension if any of the
// following conditions are met": unknown parameter, invalid value, a parameter twice, or one we
// cannot do. Declined means no compression, never a failed handshake.
const declineCases: DeclineCase[] = [
  { name: 'an unknown parameter', offer: 'permessage-deflate; mystery', reason: 'unknown parameter mystery' },
  { name: 'an unknown parameter with a value', offer: 'permessage-deflate; level=9', reason: 'unknown parameter level' },
  { name: 'a parameter name in another case (names are exact)', offer: 'permessage-deflate; Server_No_Context_Takeover', reason: 'unknown parameter Server_No_Context_Takeover' },
  { name: 'server_no_context_takeover twice', offer: 'permessage-deflate; server_no_context_takeover; server_no_context_takeover', reason: 'parameter server_no_context_takeover given twice' },
  { name: 'client_max_window_bits twice', offer: 'permessage-deflate; client_max_window_bits; client_max_window_bits=10', reason: 'parameter client_max_window_bits given twice' },
  { name: 'server_no_context_takeover with a value', offer: 'permessage-deflate; server_no_context_takeover=1', reason: 'server_no_context_takeover takes no value' },
  { name: 'client_no_context_takeover with a value', offer: 'permessage-deflate; client_no_context_takeover=true', reason: 'client_no_context_takeover takes no value' },
  { name: 'server_max_window_bits without a value', offer: 'permessage-deflate; server_max_window_bits', reason: 'server_max_window_bits needs a value from 8 to 15' },
  { name: 'server_max_window_bits=7', offer: 'permessage-deflate; server_max_window_bits=7', reason: 'server_max_window_bits needs a value from 8 to 15' },
  { name: 'server_max_window_bits=16', offer: 'permessage-deflate; server_max_window_bits=16', reason: 'server_max_window_bits needs a value from 8 to 15' },
  { name: 'server_max_window_bits=010 (a leading zero)', offer: 'permessage-deflate; server_max_window_bits=010', reason: 'server_max_window_bits needs a value from 8 to 15' },
  { name: 'server_max_window_bits=8: zlib cannot compress with an 8-bit window', offer: 'permessage-deflate; server_max_window_bits=8', reason: "server_max_window_bits=8: zlib's raw deflate has no 8-bit window" },
  { name: 'client_max_window_bits=16', offer: 'permessage-deflate; client_max_window_bits=16', reason: 'client_max_window_bits must be from 8 to 15' },
  { name: 'client_max_window_bits=abc', offer: 'permessage-deflate; client_max_window_bits=abc', reason: 'client_max_window_bits must be from 8 to 15' },
  { name: 'an empty quoted value', offer: 'permessage-deflate; server_max_window_bits=""', reason: null },
  { name: 'a quoted value that is not a token once unquoted', offer: 'permessage-deflate; server_max_window_bits="1 0"', reason: null },
  { name: 'an unterminated quote', offer: 'permessage-deflate; client_max_window_bits="10', reason: null },
  { name: 'text after a closing quote', offer: 'permessage-deflate; client_max_window_bits="10"x', reason: null },
  { name: 'a parameter without a name', offer: 'permessage-deflate; =10', reason: null },
  { name: 'an empty parameter', offer: 'permessage-deflate;', reason: null },
  { name: 'a name that is not a token', offer: 'permessage deflate', reason: null },
];

for (const c of declineCases) {
  test(`decline: ${c.name}`, () => {
    assert.equal(negotiate(c.offer), null, 'no compression');
    const [parsed] = parseExtensionOffers(c.offer);
    if (c.reason === null) {
      assert.equal(parsed, null, 'a malformed element');
    } else {
      assert.deepEqual(judgeOffer(parsed!.params), { accepted: false, reason: c.reason });
    }
  });
}

test('negotiate: no Sec-WebSocket-Extensions line, or an empty one: no compression', () => {
  assert.equal(negotiatePerMessageDeflate(['Host', 'x', 'Sec-WebSocket-Protocol', 'permessage-deflate']), null);
  assert.equal(negotiate(''), null);
  assert.equal(negotiate(' , '), null);
});

test('negotiate: the header name is matched in any case (node:http keeps it as received)', () => {
  assert.deepEqual(negotiatePerMessageDeflate(['sec-websocket-EXTENSIONS', 'permessage-deflate'])?.response, 'permessage-deflate; server_no_context_takeover');
});

test('parseExtensionOffers: names, parameters and values as parsed, quoted-pairs unescaped', () => {
  assert.deepEqual(parseExtensionOffers('a; b; c=1, d; e="f\\g", h'), [
    { name: 'a', params: [['b', null], ['c', '1']] },
    { name: 'd', params: [['e', 'fg']] },
    { name: 'h', params: [] },
  ]);
  // A comma inside a quoted string does not split the list (the element is then malformed)...
  assert.deepEqual(parseExtensionOffers('a; b="1,2", c'), [null, { name: 'c', params: [] }]);
  // ...and an unterminated quote runs to the end of the line.
  assert.deepEqual(parseExtensionOffers('a; b="1, c'), [null]);
});
