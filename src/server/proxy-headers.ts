// Behind a reverse proxy (--proxy-headers): who the client really is and which scheme it used,
// from the X-Forwarded-For and X-Forwarded-Proto headers that a trusted proxy adds, as uvicorn's
// proxy headers middleware does. Pure: headers and addresses in, `client` and scheme out.
//
// Theory of operation. Behind a proxy the TCP peer is the proxy, not the client. Each proxy on
// the way appends the address it got the connection from to X-Forwarded-For, so the header reads
// "client, proxy1, proxy2" and our peer is the last proxy. Only what trusted proxies appended can
// be believed: anything further left may have been written by the client itself. So, when the
// peer is trusted, walk the list from the right, skipping trusted proxies; the first address that
// is not trusted is the client. If every one is trusted (the client is itself one of our hosts,
// or `*` trusts everyone), the leftmost is the best we know. X-Forwarded-Proto says whether the
// client reached the proxy over TLS. From a peer that is not trusted both headers change nothing:
// anyone could otherwise claim any address, or claim a secure origin it does not have.
//
//   client 203.0.113.7 ──▶ proxy 10.0.0.2 ──▶ proxy 127.0.0.1 ──▶ this server
//   X-Forwarded-For: 203.0.113.7, 10.0.0.2        trusted: 127.0.0.1, 10.0.0.0/8
//   peer 127.0.0.1 trusted → from the right: 10.0.0.2 trusted, 203.0.113.7 not → the client
import { BlockList, isIP } from 'node:net';
import type { Address, Headers } from './asgi-types.js';

/** The peers whose X-Forwarded-* headers are believed: addresses, networks, or everyone (`*`). */
export class TrustedProxies {
  readonly everyone: boolean;
  // node:net's BlockList is an address set with network (CIDR) matching, despite its name; it
  // also matches an IPv4-mapped IPv6 peer (`::ffff:127.0.0.1`, how a server listening on `::`
  // sees IPv4 clients) against IPv4 entries.
  private readonly set = new BlockList();

  /** `entries` as parseTrustedProxies returns them. */
  constructor(entries: readonly string[]) {
    this.everyone = entries.includes('*');
    for (const entry of entries) {
      if (entry === '*') continue;
      const [address, prefix] = entry.split('/') as [string, string | undefined];
      const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
      if (prefix === undefined) this.set.addAddress(address, family);
      else this.set.addSubnet(address, Number(prefix), family);
    }
  }

  trusts(address: string): boolean {
    if (this.everyone) return true;
    const version = isIP(address);
    // Not an IP address at all (an X-Forwarded-For entry such as "unknown"): never a proxy of ours.
    if (version === 0) return false;
    return this.set.check(address, version === 6 ? 'ipv6' : 'ipv4');
  }
}

/**
 * Parses a comma-separated list of IP addresses, networks (`10.0.0.0/8`, `fd00::/8`) and `*`.
 * Returns the entries, trimmed; throws an Error naming the first one that is none of these.
 */
export function parseTrustedProxies(list: string): string[] {
  const entries = list.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
  if (entries.length === 0) throw new Error(`no address, network or "*" in "${list}"`);
  for (const entry of entries) {
    if (entry === '*' || isIP(entry) !== 0) continue;
    const slash = entry.indexOf('/');
    const version = slash === -1 ? 0 : isIP(entry.slice(0, slash));
    const prefix = entry.slice(slash + 1);
    const bits = version === 6 ? 128 : 32;
    if (version === 0 || !/^\d{1,3}$/.test(prefix) || Number(prefix) > bits) {
      throw new Error(`"${entry}" is not an IP address, a network such as 10.0.0.0/8, or "*"`);
    }
  }
  return entries;
}

/** What the connection scope says about the client once the proxy's headers are applied. */
export interface ForwardedConnection {
  client: Address;
  /** The client used TLS (to the proxy, or to us): scheme https / wss. */
  secure: boolean;
}

/**
 * Applies X-Forwarded-For and X-Forwarded-Proto when `peer` (the TCP peer, `[address, port]`) is
 * trusted; otherwise the peer stays the client and `secure` what the connection is.
 */
export function applyProxyHeaders(
  headers: Headers, peer: [string, number], secure: boolean, trusted: TrustedProxies,
): ForwardedConnection {
  let client: Address = peer;
  if (!trusted.trusts(peer[0])) return { client, secure };
  let forwardedFor: string | undefined;
  let forwardedProto: string | undefined;
  for (const [name, value] of headers) {
    // Several X-Forwarded-For lines are one list (RFC 9110 §5.3); of several X-Forwarded-Proto
    // lines the last counts, as in uvicorn.
    if (name === 'x-forwarded-for') forwardedFor = forwardedFor === undefined ? value : `${forwardedFor},${value}`;
    else if (name === 'x-forwarded-proto') forwardedProto = value;
  }
  if (forwardedProto !== undefined) {
    // One scheme, or nothing: a list ("https, http") is not something we can pick from safely.
    const scheme = forwardedProto.trim().toLowerCase();
    if (scheme === 'https' || scheme === 'wss') secure = true;
    else if (scheme === 'http' || scheme === 'ws') secure = false;
  }
  if (forwardedFor !== undefined) {
    const host = forwardedClient(forwardedFor, trusted);
    // The proxy's header does not say the client's port: 0, as uvicorn reports it.
    if (host !== null) client = [host, 0];
  }
  return { client, secure };
}

/** The rightmost X-Forwarded-For entry that is not a trusted proxy, else the leftmost; null if empty. */
export function forwardedClient(forwardedFor: string, trusted: TrustedProxies): string | null {
  const hosts = forwardedFor.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
  if (hosts.length === 0) return null;
  for (let i = hosts.length - 1; i >= 0; i--) if (!trusted.trusts(hosts[i]!)) return hosts[i]!;
  return hosts[0]!;
}
