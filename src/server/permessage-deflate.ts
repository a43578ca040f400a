// Negotiating permessage-deflate (RFC 7692 §5, §7.1) in the opening handshake, as pure functions
// over the request's Sec-WebSocket-Extensions lines: which offer we accept, with what parameters,
// and the header value that says so in the 101. deflate-codec.ts does the compressing.
//
//   Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10, permessage-deflate
//        │ offers, in the client's order of preference (§5.1), each with its parameters
//        ▼
//   for each permessage-deflate offer: decline it (and try the next) if a parameter is unknown,
//   repeated or has an invalid value, or asks for what we cannot do (§7.1); accept the first left
//        ▼
//   Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; server_max_window_bits=10
//
// Declining an offer is not failing the handshake: with no acceptable offer the connection simply
// runs uncompressed (the 101 has no Sec-WebSocket-Extensions). The parameters (§7.1.1, §7.1.2):
//
//   server_no_context_takeover  the server compresses each message on its own. We declare it in
//                               every answer, offered or not, as §7.1.1.1 allows: a message then
//                               compresses to the same bytes for every connection, so a broadcast
//                               is compressed once and shared, and no compressor state (about
//                               256 KiB in zlib) is kept per connection between messages.
//   client_no_context_takeover  the client will do the same: we keep no history for it. Echoed.
//   server_max_window_bits=N    the client's inflater has a 2^N-byte window: we compress with N.
//                               Echoed; N = 8 is declined, because zlib's raw deflate does not do
//                               an 8-bit window (it refuses it or uses 9), a promise we could not keep.
//   client_max_window_bits[=N]  the client can be told its window size. With a value (a hint) we
//                               echo it and inflate with that window; without one we leave it out
//                               (the client uses 15); when the offer does not name it at all, the
//                               answer must not either (§7.1.2.2).
import { isToken } from './http-messages.js';

/** What the accepted offer means for this connection's compression. */
export interface DeflateParameters {
  /** Window bits we compress with (§7.1.2.1): the offer's server_max_window_bits, else 15. */
  serverMaxWindowBits: number;
  /** Window bits the client compresses with at most, so the window we inflate with (§7.1.2.2). */
  clientMaxWindowBits: number;
  /** The client compresses each message on its own: no history to keep between messages. */
  clientNoContextTakeover: boolean;
}

export interface Negotiated {
  parameters: DeflateParameters;
  /** The Sec-WebSocket-Extensions value of the 101. */
  response: string;
}

/** One extension offered: its name and its parameters in order (value null when none given). */
export interface ExtensionOffer {
  name: string;
  params: [name: string, value: string | null][];
}

export type OfferVerdict =
  | { accepted: true; parameters: DeflateParameters; response: string }
  | { accepted: false; reason: string };

export const EXTENSION_NAME = 'permessage-deflate';

/** "a decimal integer value without leading zeroes between 8 to 15, inclusive" (§7.1.2.1, §7.1.2.2) */
const WINDOW_BITS = /^(?:[89]|1[0-5])$/;

/**
 * Accepts the first permessage-deflate offer we support among all Sec-WebSocket-Extensions lines
 * of the request (`rawHeaders` as node:http gives them), or null: no compression.
 */
export function negotiatePerMessageDeflate(rawHeaders: string[]): Negotiated | null {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== 'sec-websocket-extensions') continue;
    for (const offer of parseExtensionOffers(rawHeaders[i + 1]!)) {
      if (offer === null || offer.name !== EXTENSION_NAME) continue; // malformed, or another extension
      const verdict = judgeOffer(offer.params);
      if (verdict.accepted) return { parameters: verdict.parameters, response: verdict.response };
    }
  }
  return null;
}

/** §7.1: accept one permessage-deflate offer (and say how), or decline it (and say why). */
export function judgeOffer(params: ExtensionOffer['params']): OfferVerdict {
  const seen = new Set<string>();
  let clientNoContextTakeover = false;
  let serverMaxWindowBits: number | null = null;
  let clientMaxWindowBits: number | null | undefined; // undefined: not named; null: named, no value
  for (const [name, value] of params) {
    // §7.1: decline an offer that has "multiple extension parameters with the same name".
    if (seen.has(name)) return { accepted: false, reason: `parameter ${name} given twice` };
    seen.add(name);
    switch (name) {
      case 'server_no_context_takeover':
        if (value !== null) return { accepted: false, reason: `${name} takes no value` };
        break; // we always compress without context takeover, asked or not (see the top)
      case 'client_no_context_takeover':
        if (value !== null) return { accepted: false, reason: `${name} takes no value` };
        clientNoContextTakeover = true;
        break;
      case 'server_max_window_bits':
        if (value === null || !WINDOW_BITS.test(value)) return { accepted: false, reason: `${name} needs a value from 8 to 15` };
        if (value === '8') return { accepted: false, reason: `${name}=8: zlib's raw deflate has no 8-bit window` };
        serverMaxWindowBits = Number(value);
        break;
      case 'client_max_window_bits':
        if (value !== null && !WINDOW_BITS.test(value)) return { accepted: false, reason: `${name} must be from 8 to 15` };
        clientMaxWindowBits = value === null ? null : Number(value);
        break;
      default:
        // §7.1: decline an offer with "an extension parameter not defined for use in an offer".
        return { accepted: false, reason: `unknown parameter ${name}` };
    }
  }
  let response = `${EXTENSION_NAME}; server_no_context_takeover`;
  if (clientNoContextTakeover) response += '; client_no_context_takeover';
  if (serverMaxWindowBits !== null) response += `; server_max_window_bits=${serverMaxWindowBits}`;
  // §7.1.2.2: only when the offer named it, and only with a value; a hint is taken as given.
  if (typeof clientMaxWindowBits === 'number') response += `; client_max_window_bits=${clientMaxWindowBits}`;
  return {
    accepted: true,
    parameters: {
      serverMaxWindowBits: serverMaxWindowBits ?? 15,
      clientMaxWindowBits: clientMaxWindowBits ?? 15,
      clientNoContextTakeover,
    },
    response,
  };
}

/**
 * Parses one Sec-WebSocket-Extensions value (RFC 6455 §9.1):
 *
 *   extension-list = 1#extension
 *   extension      = extension-token *( ";" extension-param )
 *   extension-param = token [ "=" (token | quoted-string) ]
 *
 * with optional whitespace around the separators. Each element of the list becomes an offer, or
 * null when it is malformed (then it is declined; the other elements still count). Empty elements
 * are skipped (RFC 9110 §5.6.1). A quoted value is unescaped, and must then be a token (§9.1).
 */
export function parseExtensionOffers(value: string): (ExtensionOffer | null)[] {
  const offers: (ExtensionOffer | null)[] = [];
  for (const element of splitOutsideQuotes(value, ',')) {
    if (element.trim() === '') continue;
    offers.push(parseOffer(element));
  }
  return offers;
}

function parseOffer(element: string): ExtensionOffer | null {
  const [head, ...rest] = splitOutsideQuotes(element, ';');
  const name = head!.trim();
  if (!isToken(name)) return null;
  const params: ExtensionOffer['params'] = [];
  for (const part of rest) {
    const equals = part.indexOf('=');
    const paramName = (equals < 0 ? part : part.slice(0, equals)).trim();
    if (!isToken(paramName)) return null;
    if (equals < 0) {
      params.push([paramName, null]);
      continue;
    }
    let paramValue: string | null = part.slice(equals + 1).trim();
    if (paramValue.startsWith('"')) paramValue = unquote(paramValue);
    if (paramValue === null || !isToken(paramValue)) return null;
    params.push([paramName, paramValue]);
  }
  return { name, params };
}

/**
 * Splits `text` at each `separator` that is not inside a quoted-string. An unterminated quote
 * runs to the end of the text (the element holding it is then malformed, as unquote says).
 */
function splitOutsideQuotes(text: string, separator: ',' | ';'): string[] {
  const pieces: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const character = text[i];
    if (quoted) {
      if (character === '\\') i++; // a quoted-pair: the next character is taken as it is
      else if (character === '"') quoted = false;
    } else if (character === '"') {
      quoted = true;
    } else if (character === separator) {
      pieces.push(text.slice(start, i));
      start = i + 1;
    }
  }
  pieces.push(text.slice(start));
  return pieces;
}

/** The content of a whole quoted-string (RFC 9110 §5.6.4), unescaped; null if it is not one. */
function unquote(text: string): string | null {
  let content = '';
  for (let i = 1; i < text.length; i++) {
    const character = text[i]!;
    if (character === '\\') {
      if (i + 1 >= text.length) return null;
      content += text[++i];
    } else if (character === '"') {
      return i === text.length - 1 ? content : null; // nothing may follow the closing quote
    } else {
      content += character;
    }
  }
  return null; // no closing quote
}
