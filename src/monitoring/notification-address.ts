// Which network addresses a notification may be sent to. A channel's URL is chosen by a tenant, so
// the server must not become their way into the network it runs in (cloud metadata, databases,
// admin ports on loopback): every address a delivery would connect to is judged here first.
import { isIP, isIPv4, isIPv6 } from 'node:net';

const V4_REFUSED: Array<[base: number, bits: number, what: string]> = [
  [ipv4ToInt('0.0.0.0'), 8, 'unspecified ("this network")'],
  [ipv4ToInt('10.0.0.0'), 8, 'private (RFC 1918)'],
  [ipv4ToInt('100.64.0.0'), 10, 'carrier-grade NAT (RFC 6598)'],
  [ipv4ToInt('127.0.0.0'), 8, 'loopback'],
  [ipv4ToInt('169.254.0.0'), 16, 'link-local (cloud metadata)'],
  [ipv4ToInt('172.16.0.0'), 12, 'private (RFC 1918)'],
  [ipv4ToInt('192.0.0.0'), 24, 'IETF protocol assignments'],
  [ipv4ToInt('192.168.0.0'), 16, 'private (RFC 1918)'],
  [ipv4ToInt('198.18.0.0'), 15, 'benchmarking'],
  [ipv4ToInt('224.0.0.0'), 4, 'multicast'],
  [ipv4ToInt('240.0.0.0'), 4, 'reserved or broadcast'],
];

function ipv4ToInt(a: string): number {
  return a.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

function refusedV4(address: string): string | null {
  const n = ipv4ToInt(address);
  for (const [base, bits, what] of V4_REFUSED) {
    const size = 2 ** (32 - bits);
    if (n >= base && n < base + size) return what;
  }
  return null;
}

/** The eight 16-bit groups of an IPv6 address (a trailing dotted IPv4 part included). */
function ipv6Groups(address: string): number[] {
  let a = address.toLowerCase().replace(/%.*$/, '');
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (dotted) {
    const n = ipv4ToInt(dotted[1]);
    a = a.slice(0, -dotted[1].length) + `${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const [head, tail] = a.split('::');
  const parse = (s: string | undefined) => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const h = parse(head);
  const t = parse(tail);
  const zeros = a.includes('::') ? new Array(8 - h.length - t.length).fill(0) : [];
  return [...h, ...zeros, ...t];
}

function refusedV6(address: string): string | null {
  const g = ipv6Groups(address);
  const embeddedV4 = () => `${g[6] >> 8}.${g[6] & 0xff}.${g[7] >> 8}.${g[7] & 0xff}`;
  const firstSixZero = g.slice(0, 5).every((x) => x === 0);
  // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible) reach the IPv4 address inside them.
  if (firstSixZero && (g[5] === 0xffff || (g[5] === 0 && (g[6] !== 0 || g[7] > 1)))) {
    const inner = refusedV4(embeddedV4());
    return inner && `IPv4-mapped ${inner}`;
  }
  // NAT64 (64:ff9b::/96) translates to the IPv4 address inside it.
  if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0)) {
    const inner = refusedV4(embeddedV4());
    return inner && `NAT64 ${inner}`;
  }
  if (g.every((x) => x === 0)) return 'unspecified';
  if (g.slice(0, 7).every((x) => x === 0) && g[7] === 1) return 'loopback';
  if ((g[0] & 0xffc0) === 0xfe80) return 'link-local';
  if ((g[0] & 0xffc0) === 0xfec0) return 'site-local';
  if ((g[0] & 0xfe00) === 0xfc00) return 'unique-local';
  if ((g[0] & 0xff00) === 0xff00) return 'multicast';
  return null;
}

/**
 * Why a notification may not be sent to `address` (an IPv4 or IPv6 literal, IPv6 without
 * brackets): loopback, private, carrier-grade NAT, link-local, unique-local, multicast, unspecified
 * or reserved, also when written as an IPv4-mapped, IPv4-compatible or NAT64 IPv6 address; null
 * for a public address. A string that is no IP address is refused.
 */
export function refusedAddress(address: string): string | null {
  if (isIPv4(address)) return refusedV4(address);
  if (isIPv6(address.replace(/%.*$/, ''))) return refusedV6(address);
  return 'not an IP address';
}

/** The host of a URL as an IP literal (IPv6 without brackets), or null when it is a name. */
export function ipLiteral(hostname: string): string | null {
  const bare = hostname.replace(/^\[(.*)\]$/, '$1');
  return isIP(bare) ? bare : null;
}
