/**
 * IPv4 / IPv6 networks for tenants' `networks:` lists.
 *
 * A network is written as CIDR (`203.0.113.0/24`, `2001:db8::/32`) or as a bare
 * address (`127.0.0.1` = /32, `::1` = /128). Matching is done by `net.BlockList`;
 * this module adds what BlockList does not: parsing with clear messages,
 * rejecting host bits set past the prefix (`10.1.0.0/8` is almost always a typo),
 * and a canonical form so that two tenants claiming the same network can be detected.
 *
 * IPv4-mapped IPv6 (`::ffff:10.1.2.3`, what a dual-stack listener reports for an
 * IPv4 peer) is normalised to IPv4, both in the config and in peer addresses, so
 * `10.0.0.0/8` matches such a peer. Otherwise families never mix: `::/0` means
 * "every IPv6 peer", not "everyone".
 *
 * Not on the hot path: used at config load and once per accepted connection.
 */
import { BlockList, isIP } from 'node:net';

export type IpFamily = 4 | 6;

/** A peer or network address after normalisation (zone id dropped, mapped IPv4 unwrapped). */
export interface NormalizedAddress {
  readonly family: IpFamily;
  /** Canonical text: dotted quad, or RFC 5952 compressed IPv6. */
  readonly address: string;
}

export interface Cidr {
  readonly family: IpFamily;
  /** Canonical network address (host bits zero). */
  readonly network: string;
  readonly prefixLength: number;
  /**
   * Prefix length in IPv6 terms (an IPv4 /n counts as /(96 + n), its place inside
   * `::ffff:0:0/96`), so networks of both families rank on one scale: larger = more specific.
   */
  readonly specificity: number;
  /** `network/prefixLength`, canonical: equal keys mean equal networks. */
  readonly key: string;
  /** Whether the peer address (any textual form, mapped IPv4 included) is inside this network. */
  matches(address: string): boolean;
  /** Same, for an address already passed through `normalizeAddress`. */
  contains(address: NormalizedAddress): boolean;
  toString(): string;
}

const IPV4_BITS = 32;
const IPV6_BITS = 128;
/** Offset of IPv4 inside `::ffff:0:0/96`. */
const MAPPED_PREFIX_BITS = 96;

/**
 * Normalise a textual address: drop an IPv6 zone id (`fe80::1%eth0`), unwrap
 * IPv4-mapped IPv6, canonicalise. `null` when it is not an IP address.
 */
export function normalizeAddress(text: string): NormalizedAddress | null {
  const zone = text.indexOf('%');
  const bare = zone === -1 ? text : text.slice(0, zone);
  const family = isIP(bare);
  if (family === 4) return { family: 4, address: formatIpv4(ipv4Bytes(bare)) };
  if (family !== 6) return null;
  const bytes = ipv6Bytes(bare);
  if (isMappedIpv4(bytes)) return { family: 4, address: formatIpv4(bytes.subarray(12)) };
  return { family: 6, address: formatIpv6(bytes) };
}

/**
 * The key a peer is counted under (connection caps, authentication failures):
 * its normalised address, so one peer is one key on every listener
 * (`::ffff:10.0.0.1` is `10.0.0.1`); the text itself when it is not an address.
 */
export function addressKey(text: string): string {
  return normalizeAddress(text)?.address ?? text;
}

/** Parse `addr/len` or a bare address. Throws `Error` with a message fit for a config problem. */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  const addressText = slash === -1 ? text : text.slice(0, slash);
  const lengthText = slash === -1 ? undefined : text.slice(slash + 1);
  if (addressText.includes('%')) {
    throw new Error(`"${text}": a network may not carry an IPv6 zone id`);
  }
  const family = isIP(addressText);
  if (family !== 4 && family !== 6) {
    throw new Error(`"${text}" is not an IPv4 or IPv6 address or CIDR network`);
  }
  let bytes = family === 4 ? ipv4Bytes(addressText) : ipv6Bytes(addressText);
  const maxBits = family === 4 ? IPV4_BITS : IPV6_BITS;
  let prefixLength = maxBits;
  if (lengthText !== undefined) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(lengthText) || Number(lengthText) > maxBits) {
      throw new Error(`"${text}": prefix length must be an integer from 0 to ${maxBits}`);
    }
    prefixLength = Number(lengthText);
  }
  const masked = maskBytes(bytes, prefixLength);
  if (!bytes.equals(masked)) {
    const suggestion = `${family === 4 ? formatIpv4(masked) : formatIpv6(masked)}/${prefixLength}`;
    throw new Error(`"${text}" has host bits set past /${prefixLength} (did you mean ${suggestion}?)`);
  }
  let resultFamily: IpFamily = family;
  if (family === 6 && prefixLength >= MAPPED_PREFIX_BITS && isMappedIpv4(bytes)) {
    resultFamily = 4;
    bytes = bytes.subarray(12);
    prefixLength -= MAPPED_PREFIX_BITS;
  }
  return makeCidr(resultFamily, bytes, prefixLength);
}

/** Like `parseCidr`, but returns the problem instead of throwing (for schema validation). */
export function tryParseCidr(text: string): { cidr: Cidr; error?: undefined } | { cidr?: undefined; error: string } {
  try {
    return { cidr: parseCidr(text) };
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
}

/**
 * One predicate for a list of networks: true when the address is inside any of them.
 *
 * The rule: an IPv4 peer (mapped ones included, after normalisation) is matched
 * only against the list's IPv4 networks, an IPv6 peer only against its IPv6
 * networks. One BlockList per family, because a single BlockList checks an IPv4
 * address against IPv6 rules too (as `::ffff:a.b.c.d`), which made `::/0` admit
 * every IPv4 peer.
 */
export function createNetworkMatcher(cidrs: readonly Cidr[]): (address: string) => boolean {
  const v4 = new BlockList();
  const v6 = new BlockList();
  for (const cidr of cidrs) {
    (cidr.family === 4 ? v4 : v6).addSubnet(cidr.network, cidr.prefixLength, familyName(cidr.family));
  }
  return (address: string): boolean => {
    const peer = normalizeAddress(address);
    if (peer === null) return false;
    return peer.family === 4 ? v4.check(peer.address, 'ipv4') : v6.check(peer.address, 'ipv6');
  };
}

function makeCidr(family: IpFamily, bytes: Buffer, prefixLength: number): Cidr {
  const network = family === 4 ? formatIpv4(bytes) : formatIpv6(bytes);
  const list = new BlockList();
  list.addSubnet(network, prefixLength, familyName(family));
  const contains = (peer: NormalizedAddress): boolean =>
    peer.family === family && list.check(peer.address, familyName(family));
  const key = `${network}/${prefixLength}`;
  return Object.freeze({
    family,
    network,
    prefixLength,
    specificity: family === 4 ? MAPPED_PREFIX_BITS + prefixLength : prefixLength,
    key,
    contains,
    matches(address: string): boolean {
      const peer = normalizeAddress(address);
      return peer !== null && contains(peer);
    },
    toString: () => key,
  });
}

function familyName(family: IpFamily): 'ipv4' | 'ipv6' {
  return family === 4 ? 'ipv4' : 'ipv6';
}

/** `text` must already satisfy `isIP(text) === 4` (no leading zeros, four parts). */
function ipv4Bytes(text: string): Buffer {
  const out = Buffer.alloc(4);
  const parts = text.split('.');
  for (let i = 0; i < 4; i++) out[i] = Number(parts[i] ?? 0);
  return out;
}

/** `text` must already satisfy `isIP(text) === 6` and carry no zone id. */
function ipv6Bytes(text: string): Buffer {
  const toGroups = (part: string): number[] => {
    const groups: number[] = [];
    if (part === '') return groups;
    for (const group of part.split(':')) {
      if (group.includes('.')) {
        const v4 = ipv4Bytes(group);
        groups.push(v4.readUInt16BE(0), v4.readUInt16BE(2));
      } else {
        groups.push(parseInt(group, 16));
      }
    }
    return groups;
  };
  const gap = text.indexOf('::');
  const head = toGroups(gap === -1 ? text : text.slice(0, gap));
  const tail = gap === -1 ? [] : toGroups(text.slice(gap + 2));
  const zeros = new Array<number>(8 - head.length - tail.length).fill(0);
  const out = Buffer.alloc(16);
  [...head, ...zeros, ...tail].forEach((group, i) => out.writeUInt16BE(group, i * 2));
  return out;
}

/** `::ffff:a.b.c.d`: ten zero bytes, then 0xff 0xff. */
function isMappedIpv4(bytes: Buffer): boolean {
  if (bytes.length !== 16 || bytes[10] !== 0xff || bytes[11] !== 0xff) return false;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return true;
}

function maskBytes(bytes: Buffer, prefixLength: number): Buffer {
  const out = Buffer.from(bytes);
  for (let i = 0; i < out.length; i++) {
    const bitsHere = Math.min(8, Math.max(0, prefixLength - i * 8));
    out[i] = (out[i] ?? 0) & ((0xff << (8 - bitsHere)) & 0xff);
  }
  return out;
}

function formatIpv4(bytes: Buffer): string {
  return `${bytes[0] ?? 0}.${bytes[1] ?? 0}.${bytes[2] ?? 0}.${bytes[3] ?? 0}`;
}

/** RFC 5952: lower-case hex, no leading zeros, the longest run (≥ 2) of zero groups as `::`. */
function formatIpv6(bytes: Buffer): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i));
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (list: number[]): string => list.map((g) => g.toString(16)).join(':');
  if (bestStart === -1) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}
