// Counting text the way a person counts it, shared by every place that limits a length: the lobby's
// sender and message (src/websocket.ts) and the rooms' names, user ids and texts (src/rooms/).
//
// A JavaScript string is UTF-16: an emoji outside the Basic Multilingual Plane is two code units
// (a "surrogate pair"), so `string.length` would count it twice. A limit of "100 characters" means
// 100 code points. JSON can also carry half a pair ("\ud800"), which is not text at all: it cannot
// be encoded as UTF-8, so every consumer downstream would reject or mangle it. Both checks are one
// pass here.

/**
 * Length in Unicode code points, so an emoji counts as one character, as a person would count;
 * null when the text holds a lone surrogate. JSON can carry one ("\ud800"), and it would otherwise
 * slip past the length limit (counted as nothing) and past every UTF-8 consumer downstream.
 */
export function characters(text: string): number | null {
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text.charCodeAt(i + 1); // NaN past the end
      if (!(next >= 0xdc00 && next <= 0xdfff)) return null;
      i++; // a high and a low surrogate: one code point
    } else if (unit >= 0xdc00 && unit <= 0xdfff) {
      return null; // a low surrogate with no high one before it
    }
    count++;
  }
  return count;
}
