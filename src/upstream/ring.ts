/**
 * Key → server placement for one pool.
 *
 * NOTE: a placeholder for issue #11: one server takes every key; with more, a
 * plain modula over a simple hash. The libmemcached-exact ketama ring replaces
 * this body; the signature stays.
 */
import type { Distribution, KeyRing, UpstreamServerSpec } from './topology.js';

const ONE_SERVER: KeyRing = { pick: () => 0 };

/** A ring over `servers` (in config order): pick() returns an index into that list. */
export function buildRing(servers: readonly UpstreamServerSpec[], distribution: Distribution): KeyRing {
  void distribution;
  const n = servers.length;
  if (n <= 1) return ONE_SERVER;
  return {
    pick(key: Buffer, start: number, end: number): number {
      let h = 0;
      for (let i = start; i < end; i++) h = (h * 31 + (key[i] ?? 0)) >>> 0;
      return h % n;
    },
  };
}
