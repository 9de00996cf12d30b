import { BlockList, isIP } from 'node:net';
import { SfuError } from '@geosfu/common';

/**
 * Normalizes an IP address for lookups: drops an IPv6 zone (`fe80::1%eth0`) and turns an
 * IPv4-mapped IPv6 address (`::ffff:198.51.100.7`, what a dual-stack socket reports for an
 * IPv4 peer) into plain IPv4. Returns undefined for anything that is not an IP address.
 */
export function normalizeIp(address: string): string | undefined {
  let ip = address.trim();
  const zone = ip.indexOf('%');
  if (zone !== -1 && isIP(ip.slice(0, zone)) === 6) ip = ip.slice(0, zone);
  const family = isIP(ip);
  if (family === 0) return undefined;
  if (family === 6) {
    // The WHATWG URL parser prints IPv6 in canonical form (RFC 5952: lowercase, longest
    // zero run compressed, a mapped IPv4 as two hex groups), whatever the input spelling.
    const canonical = new URL(`http://[${ip}]/`).hostname.slice(1, -1);
    const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
    if (mapped?.[1] && mapped[2]) {
      const hi = Number.parseInt(mapped[1], 16);
      const lo = Number.parseInt(mapped[2], 16);
      return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
    }
    return canonical;
  }
  return ip;
}

/** The family of an address `normalizeIp` returned: IPv6 has a colon, IPv4 never. */
export function ipFamily(ip: string): 4 | 6 {
  return ip.includes(':') ? 6 : 4;
}

/**
 * True for addresses that no GeoIP database can place and that mean "this machine or its
 * LAN": RFC 1918 private, RFC 4193 unique local (fc00::/7), loopback, link-local,
 * unspecified. Documentation ranges (RFC 5737, RFC 3849) are deliberately absent: our test
 * fixture maps them to cities. CGNAT (100.64.0.0/10) is absent too: it simply is not in the
 * database. `ip` must be what `normalizeIp` returned (dotted quad, or canonical IPv6 in
 * lower case). Compared in plain JS: node:net's BlockList.check builds a native
 * SocketAddress per string (2.5 µs a call in `npm run bench -- route`, and slow scavenges).
 */
export function isPrivateIp(ip: string, family: 4 | 6): boolean {
  if (family === 4) {
    const dot = ip.indexOf('.');
    const a = Number(ip.slice(0, dot));
    const b = Number(ip.slice(dot + 1, ip.indexOf('.', dot + 1)));
    return (
      a === 10 ||
      a === 127 ||
      a === 0 ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) ||
      (a === 169 && b === 254)
    );
  }
  // Canonical form: a leading zero group is compressed to '::'.
  if (ip.startsWith('::')) return ip === '::' || ip === '::1';
  const head = Number.parseInt(ip.slice(0, ip.indexOf(':')), 16);
  return (head & 0xfe00) === 0xfc00 || (head & 0xffc0) === 0xfe80;
}

/** True for private, loopback, link-local and unspecified addresses (after normalizing). */
export function isPrivateAddress(address: string): boolean {
  const ip = normalizeIp(address);
  if (ip === undefined) return false;
  return isPrivateIp(ip, ipFamily(ip));
}

/** A compiled list of trusted proxies: exact addresses and CIDR ranges, IPv4 and IPv6. */
export type TrustedProxies = (address: string) => boolean;

/**
 * Compiles `['10.0.0.1', '10.1.0.0/16', 'fd00::/8']`. Throws `SfuError('CONFIG_INVALID')`
 * naming the bad entry: the list comes from configuration.
 */
export function trustedProxies(list: readonly string[]): TrustedProxies {
  const blocks = new BlockList();
  for (const entry of list) {
    const [address = '', prefixText, extra] = entry.trim().split('/');
    const ip = normalizeIp(address);
    const family = ip === undefined ? 0 : isIP(ip);
    const maxPrefix = family === 4 ? 32 : 128;
    const prefix = prefixText === undefined ? maxPrefix : Number(prefixText);
    if (
      ip === undefined ||
      extra !== undefined ||
      (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) ||
      prefix > maxPrefix
    ) {
      throw new SfuError(
        'CONFIG_INVALID',
        `trusted proxy ${JSON.stringify(entry)} is neither an IP address nor a CIDR range (e.g. 10.0.0.0/8)`,
      );
    }
    blocks.addSubnet(ip, prefix, family === 4 ? 'ipv4' : 'ipv6');
  }
  return (address: string) => {
    const ip = normalizeIp(address);
    if (ip === undefined) return false;
    return blocks.check(ip, isIP(ip) === 4 ? 'ipv4' : 'ipv6');
  };
}

/** One X-Forwarded-For element: an address, possibly with a port or in brackets. */
function parseForwardedElement(element: string): string | undefined {
  const text = element.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(text);
  if (bracketed?.[1]) return normalizeIp(bracketed[1]);
  const v4port = /^(\d+\.\d+\.\d+\.\d+):\d+$/.exec(text);
  if (v4port?.[1]) return normalizeIp(v4port[1]);
  return normalizeIp(text);
}

/**
 * The address of the client behind a request.
 *
 * X-Forwarded-For is only believed when the socket peer is a trusted proxy; then the list
 * is read from the right (each proxy appends the peer it saw) and the first address that is
 * not itself a trusted proxy is the client. Everything left of it was written by the client
 * or by proxies we do not know, and could be forged. An unparseable element ends the walk
 * at the last address that a trusted proxy vouched for.
 *
 * Returns the normalized address (IPv4-mapped IPv6 as plain IPv4).
 */
export function clientAddress(
  socketAddress: string,
  xForwardedFor: string | readonly string[] | undefined,
  trusted: readonly string[] | TrustedProxies,
): string {
  const peer = normalizeIp(socketAddress) ?? socketAddress;
  const isTrusted = typeof trusted === 'function' ? trusted : trustedProxies(trusted);
  if (xForwardedFor === undefined || !isTrusted(peer)) return peer;
  const header = typeof xForwardedFor === 'string' ? xForwardedFor : xForwardedFor.join(',');
  const elements = header.split(',').filter((e) => e.trim() !== '');
  let client = peer;
  for (let i = elements.length - 1; i >= 0; i--) {
    const address = parseForwardedElement(elements[i] ?? '');
    if (address === undefined) return client;
    client = address;
    if (!isTrusted(address)) return address;
  }
  return client;
}
