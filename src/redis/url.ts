// Where Redis is, from one URL: `redis://[[user]:password@]host[:port][/db]`, the form Redis's
// own tools and most clients accept (https://www.iana.org/assignments/uri-schemes/prov/redis).
// The port defaults to 6379 and the database to 0. A bad URL throws an Error whose message says
// what is wrong without repeating the URL (it may hold a password): the caller prefixes the name of
// the setting it came from, e.g. `CHAT_REDIS_URL: the port must be ...`, and exits.
//
// `rediss://` (Redis over TLS) is refused with its own message: we do not speak TLS to Redis yet.

export interface RedisUrl {
  /** A host name or an IP address (an IPv6 address without its brackets). */
  host: string;
  port: number;
  /** For `AUTH username password` (Redis 6 ACLs); null sends `AUTH password` alone. */
  username: string | null;
  /** null: no AUTH at all. */
  password: string | null;
  /** The database SELECTed after connecting; 0 is not selected (it is the default). */
  db: number;
}

export const DEFAULT_REDIS_PORT = 6379;

/** Parses a redis:// URL, or throws an Error saying what is wrong with it (never echoing a password). */
export function parseRedisUrl(text: string): RedisUrl {
  const trimmed = text.trim();
  if (trimmed === '') throw new Error('is empty: expected redis://[[user]:password@]host:port[/db]');
  let url: URL;
  try {
    url = new URL(trimmed);
  } catch {
    throw new Error('is not a valid URL (is the port 1 to 65535? is a special character of the password %-escaped?): expected redis://[[user]:password@]host:port[/db]');
  }
  if (url.protocol === 'rediss:') throw new Error('uses rediss:// (Redis over TLS), which this server does not support: use redis://, over a trusted network or a TLS tunnel');
  if (url.protocol !== 'redis:') throw new Error(`has the scheme ${url.protocol.slice(0, 20)}//: expected redis://[[user]:password@]host:port[/db]`);
  // WHATWG URL keeps the brackets of an IPv6 host, which node:net does not want.
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '') throw new Error('has no host: expected redis://[[user]:password@]host:port[/db]');

  let port = DEFAULT_REDIS_PORT;
  if (url.port !== '') {
    // URL already refused ports that are not digits or above 65535; 0 is not a port to connect to.
    port = Number(url.port);
    if (port < 1) throw new Error(`has the port ${url.port}: a port is 1 to 65535`);
  }

  let db = 0;
  const path = url.pathname;
  if (path !== '' && path !== '/') {
    const match = /^\/(\d{1,9})\/?$/.exec(path);
    if (match === null) throw new Error(`has the path ${JSON.stringify(path.slice(0, 40))}: the only path allowed is a database number, as in redis://host:6379/2`);
    db = Number(match[1]);
  }
  if (url.search !== '') throw new Error('has a query (?...): options in the URL are not supported, only redis://[[user]:password@]host:port[/db]');
  if (url.hash !== '') throw new Error('has a fragment (#...): a # in a password must be written %23');

  const username = url.username === '' ? null : decodePart(url.username, 'user name');
  const password = url.password === '' ? null : decodePart(url.password, 'password');
  if (username !== null && password === null) throw new Error('has a user name but no password: write redis://user:password@host:port');
  return { host, port, username, password, db };
}

function decodePart(encoded: string, what: string): string {
  try {
    return decodeURIComponent(encoded);
  } catch {
    throw new Error(`has a ${what} with a bad %-escape: write a % as %25`);
  }
}

/** The URL for logs: the password replaced by `***` (the user name is kept). */
export function describeRedisUrl(url: RedisUrl): string {
  const host = url.host.includes(':') ? `[${url.host}]` : url.host;
  const auth = url.password === null ? '' : `${url.username === null ? '' : encodeURIComponent(url.username)}:***@`;
  return `redis://${auth}${host}:${url.port}${url.db === 0 ? '' : `/${url.db}`}`;
}
