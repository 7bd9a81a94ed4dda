/**
 * A tenant's plain `stats`, answered by memgate from that tenant's own
 * counters in memcached's format (`STAT <name> <value>` lines, then `END`).
 * Never the shared server's numbers: those describe every tenant's traffic.
 */
import type { TenantRuntime } from './tenants.js';

const startedAtSec = Math.floor(Date.now() / 1000);

export function tenantStatsReply(t: TenantRuntime, version: string): Buffer {
  const c = t.counters;
  const now = Math.floor(Date.now() / 1000);
  const rows: [string, string | number][] = [
    ['pid', process.pid],
    ['uptime', now - startedAtSec],
    ['time', now],
    ['version', version],
    ['pointer_size', 64],
    ['curr_connections', c.currConnections],
    ['total_connections', c.totalConnections],
    ['cmd_get', c.cmdGet],
    ['cmd_set', c.cmdSet],
    ['cmd_flush', c.cmdFlush],
    ['cmd_touch', c.cmdTouch],
    ['get_hits', c.getHits],
    ['get_misses', c.getMisses],
    ['delete_misses', c.deleteMisses],
    ['delete_hits', c.deleteHits],
    ['incr_misses', c.incrMisses],
    ['incr_hits', c.incrHits],
    ['decr_misses', c.decrMisses],
    ['decr_hits', c.decrHits],
    ['cas_misses', c.casMisses],
    ['cas_hits', c.casHits],
    ['cas_badval', c.casBadval],
    ['touch_hits', c.touchHits],
    ['touch_misses', c.touchMisses],
    ['bytes_read', c.bytesRead],
    ['bytes_written', c.bytesWritten],
    ['memgate_tenant', t.policy.name],
    ['memgate_denied', c.denied],
  ];
  let s = '';
  for (const [name, value] of rows) s += `STAT ${name} ${value}\r\n`;
  s += 'END\r\n';
  return Buffer.from(s, 'latin1');
}
