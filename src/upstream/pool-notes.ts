/**
 * `check-config` notes about the pools (advice, not errors): a server listed in
 * two pools is shared by the tenants of both, so a tenant given a pool of its
 * own to keep others from evicting its items does not get that protection.
 */
import type { Topology } from './topology.js';

export function sharedServerNotes(topology: Topology): string[] {
  const poolsOf = new Map<string, string[]>();
  for (const pool of topology.pools.values()) {
    for (const server of pool.servers) {
      const pools = poolsOf.get(server.address) ?? [];
      if (!pools.includes(pool.name)) pools.push(pool.name);
      poolsOf.set(server.address, pools);
    }
  }
  const notes: string[] = [];
  for (const [address, pools] of poolsOf) {
    if (pools.length < 2) continue;
    notes.push(
      `server ${address} is in pools ${pools.join(', ')}: their tenants share its memory, so one pool's tenants can evict the others' items`,
    );
  }
  return notes;
}
