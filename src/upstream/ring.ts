/**
 * Key → server placement for one pool, exactly as libmemcached places keys, so
 * memgate finds the items that libmemcached-based clients (pylibmc, php-memcached,
 * the libmemcached tools) and twemproxy (`hash: md5, distribution: ketama`) stored.
 *
 * ketama (MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, libmemcached/hosts.cc update_continuum):
 *
 *   server i ── points(i) = floor(f32(f32(f32(f32(w_i / W) × 160) / 4) × live) + 1e-10) × 4
 *      │        (every step rounded to a 32-bit float, as the C code computes it: with
 *      │         25, 47, 50 … equal servers that is 156 points each, not 160)
 *      ├─ md5("host-0")          → 4 points (digest bytes 0-3, 4-7, 8-11, 12-15, little-endian)
 *      ├─ md5("host-1")          → 4 points          "host:port-k" when port ≠ 11211,
 *      └─ … points(i)/4 digests                      "name-k" with a configured name
 *
 *   continuum: every point sorted by (value, server index)
 *   key:       h = md5(key) bytes 0-3 little-endian → the first point ≥ h, wrapping to the first
 *
 * modula (MEMCACHED_DISTRIBUTION_MODULA with libmemcached's default hash):
 *   one_at_a_time(key) % number of servers. Weights play no part (libmemcached ignores
 *   them for modula; the config schema refuses them there). libhashkit reads the key
 *   through a signed `char`, so a byte ≥ 0x80 enters the hash sign-extended.
 *
 * `pick` is on the request path: one MD5 of the key (node:crypto) and a binary
 * search over a Uint32Array; with one server it returns 0 without hashing.
 */
import crypto, { createHash } from 'node:crypto';
import { ketamaName } from './ketama-name.js';
import type { Distribution, KeyRing, UpstreamServerSpec } from './topology.js';

/** libmemcached's MEMCACHED_POINTS_PER_SERVER_KETAMA: points per server when all weigh the same. */
export const KETAMA_POINTS_PER_SERVER = 160;
/** Points taken from one MD5 digest (4 bytes each). */
const POINTS_PER_DIGEST = 4;
/** The 0.0000000001F libmemcached adds before flooring, as a 32-bit float. */
const FLOOR_NUDGE = Math.fround(0.0000000001);
/** Continuum entries are sorted as value × 2^21 + owner in a Float64Array: exact below 2^53. */
const OWNER_BITS = 2 ** 21;

const ONE_SERVER: KeyRing = { pick: () => 0 };
const NO_SERVER: KeyRing = { pick: () => -1 };

/**
 * The ketama point count of each server (0 for one that is not live), computed
 * in 32-bit floats step by step like update_continuum.
 */
export function ketamaPointCounts(servers: readonly UpstreamServerSpec[], live?: readonly boolean[]): number[] {
  let liveCount = 0;
  let totalWeight = 0;
  servers.forEach((server, i) => {
    if (live !== undefined && live[i] !== true) return;
    liveCount++;
    totalWeight += server.weight;
  });
  const f = Math.fround;
  return servers.map((server, i) => {
    if (live !== undefined && live[i] !== true) return 0;
    const pct = f(f(server.weight) / f(totalWeight));
    const share = f(f(f(pct * KETAMA_POINTS_PER_SERVER) / POINTS_PER_DIGEST) * f(liveCount));
    return Math.floor(f(share + FLOOR_NUDGE)) * POINTS_PER_DIGEST;
  });
}

/** The string hashed for digest `index` of a server: `name-i`, `host-i` (port 11211), `host:port-i`; a unix socket is `path:0-i`. */
export function ketamaServerString(server: UpstreamServerSpec, index: number): string {
  return `${ketamaName(server.host, server.port, server.path, server.name)}-${index}`;
}

/** A sorted continuum: `values[j]` is a point, `owners[j]` the index of its server. */
export interface Continuum {
  readonly values: Uint32Array;
  readonly owners: Uint32Array;
}

/** Every ketama point of the live servers, sorted by (value, server index) as libmemcached's qsort comparator does. */
export function ketamaContinuum(servers: readonly UpstreamServerSpec[], live?: readonly boolean[]): Continuum {
  if (servers.length >= OWNER_BITS) throw new RangeError(`a pool of ${servers.length} servers is too large`);
  const counts = ketamaPointCounts(servers, live);
  const total = counts.reduce((sum, n) => sum + n, 0);
  const keys = new Float64Array(total);
  let next = 0;
  servers.forEach((server, owner) => {
    const digests = (counts[owner] ?? 0) / POINTS_PER_DIGEST;
    for (let i = 0; i < digests; i++) {
      const digest = createHash('md5').update(ketamaServerString(server, i), 'utf8').digest();
      for (let p = 0; p < POINTS_PER_DIGEST; p++) keys[next++] = digest.readUInt32LE(p * 4) * OWNER_BITS + owner;
    }
  });
  keys.sort();
  const values = new Uint32Array(total);
  const owners = new Uint32Array(total);
  for (let j = 0; j < total; j++) {
    const k = keys[j] ?? 0;
    const owner = k % OWNER_BITS;
    owners[j] = owner;
    values[j] = (k - owner) / OWNER_BITS;
  }
  return { values, owners };
}

/** crypto.hash (Node 20.12+, one native call), or createHash on an older Node 20. */
const md5Latin1: (data: Buffer) => string =
  typeof crypto.hash === 'function'
    ? (data) => crypto.hash('md5', data, 'binary')
    : (data) => createHash('md5').update(data).digest('binary');

/**
 * libhashkit's md5 key hash: the first 4 digest bytes, little-endian.
 * NOTE: the digest comes back as a 'binary' (latin1) string, one char per byte: cheaper
 * than a Buffer, which node:crypto would allocate for every key.
 */
export function md5KeyHash(key: Buffer, start: number, end: number): number {
  const d = md5Latin1(key.subarray(start, end));
  return ((d.charCodeAt(3) << 24) | (d.charCodeAt(2) << 16) | (d.charCodeAt(1) << 8) | d.charCodeAt(0)) >>> 0;
}

/** libhashkit's one_at_a_time (libmemcached's default key hash), bytes read as signed char. */
export function oneAtATimeHash(key: Buffer, start: number, end: number): number {
  let value = 0;
  for (let i = start; i < end; i++) {
    const byte = key[i] ?? 0;
    const val = byte >= 0x80 ? (byte | 0xffffff00) >>> 0 : byte;
    value = (value + val) >>> 0;
    value = (value + (value << 10)) >>> 0;
    value = (value ^ (value >>> 6)) >>> 0;
  }
  value = (value + (value << 3)) >>> 0;
  value = (value ^ (value >>> 11)) >>> 0;
  value = (value + (value << 15)) >>> 0;
  return value;
}

/** Index of the first point ≥ hash, wrapping to 0 past the last one. */
export function firstPointAtOrAbove(values: Uint32Array, hash: number): number {
  let left = 0;
  let right = values.length;
  while (left < right) {
    const middle = (left + right) >>> 1;
    if ((values[middle] ?? 0) < hash) left = middle + 1;
    else right = middle;
  }
  return right === values.length ? 0 : right;
}

class KetamaRing implements KeyRing {
  private readonly values: Uint32Array;
  private readonly owners: Uint32Array;

  constructor(continuum: Continuum) {
    this.values = continuum.values;
    this.owners = continuum.owners;
  }

  pick(key: Buffer, start: number, end: number): number {
    return this.owners[firstPointAtOrAbove(this.values, md5KeyHash(key, start, end))] ?? -1;
  }
}

class ModulaRing implements KeyRing {
  /** the server index of each slot: every server, or only the live ones */
  private readonly slots: Uint32Array;

  constructor(slots: Uint32Array) {
    this.slots = slots;
  }

  pick(key: Buffer, start: number, end: number): number {
    return this.slots[oneAtATimeHash(key, start, end) % this.slots.length] ?? -1;
  }
}

/**
 * A ring over `servers` (in config order): pick() returns an index into that list.
 *
 * `live` (optional, by server index) leaves servers out, as libmemcached's
 * auto-eject (and twemproxy's auto_eject_hosts) does: ketama rebuilds the
 * continuum over the live servers and their weights, so only the keys of the
 * missing servers move; modula spreads over the live servers in order. With no
 * live server, pick() returns -1.
 */
export function buildRing(
  servers: readonly UpstreamServerSpec[],
  distribution: Distribution,
  live?: readonly boolean[],
): KeyRing {
  const indexes: number[] = [];
  servers.forEach((_, i) => {
    if (live === undefined || live[i] === true) indexes.push(i);
  });
  if (indexes.length === 0) return NO_SERVER;
  if (servers.length === 1) return ONE_SERVER;
  if (indexes.length === 1) {
    const only = indexes[0] ?? 0;
    return { pick: () => only };
  }
  if (distribution === 'modula') return new ModulaRing(Uint32Array.from(indexes));
  return new KetamaRing(ketamaContinuum(servers, live));
}
