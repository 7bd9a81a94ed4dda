/**
 * A tenant's plain `stats`, answered by memgate from that tenant's own
 * counters in memcached's format (`STAT <name> <value>` lines, then `END`).
 * Never the shared server's numbers: those describe every tenant's traffic.
 *
 * The reply is built when its slot is written, not when the request is
 * parsed: the counters are kept at reply time (session.ts `account`), so a
 * `stats` pipelined after a `set` and a `get` counts both, as memcached's
 * does. Until then its slot holds STATS_AT_FLUSH.
 *
 * Every value is one token, and the names are memcached's (in memcached's
 * order), then memgate's own: `version` is memcached's version string as the
 * `version` command shows it, learnt from the upstream (asked at start, and
 * by a `stats` while it is unknown, e.g. the upstream was down; and from every
 * `version` reply passing through), `unknown` until then; `memgate_version`
 * is memgate's.
 */
import { Cmd } from '../protocol/text/commands.js';
import { Request, ReplyStatus, type ReplyOwner } from '../protocol/text/request.js';
import type { UpstreamPool } from '../upstream/pool.js';
import type { TenantRuntime } from './tenants.js';

const startedAtSec = Math.floor(Date.now() / 1000);

/** A stats request's reply until its slot is written; the session then calls tenantStatsReply. Never mutated. */
export const STATS_AT_FLUSH: Buffer[] = [];

/** `STAT version` before any upstream has told its version (one token, like every value). */
const VERSION_UNKNOWN = 'unknown';

const VERSION_LINE = Buffer.from('version', 'latin1');
const VERSION_REPLY = /^VERSION ([\x21-\x7e]{1,64})(?:\r\n)?$/;

/**
 * memcached's version string, as learnt from the upstream; one per process
 * (every upstream of a memgate is expected to run the same memcached).
 */
class UpstreamVersion implements ReplyOwner {
  value: string | null = null;
  private asking = false;

  /** Asks the upstream on `slot` for its version, unless a question is already out. */
  ask(pool: UpstreamPool, slot: number): void {
    if (this.asking) return;
    this.asking = true;
    const req = new Request();
    req.cmd = Cmd.VERSION;
    req.line = VERSION_LINE;
    req.argsStart = VERSION_LINE.length;
    req.argsEnd = VERSION_LINE.length;
    req.owner = this;
    pool.send(slot, req);
  }

  /** The reply to ask() (a failure leaves the version unknown; the next stats asks again). */
  onReply(req: Request): void {
    this.asking = false;
    this.note(req);
  }

  /** Learns the version from any answered `version` request (a client's, or ask()'s). */
  note(req: Request): void {
    const parts = req.reply;
    if (req.status !== ReplyStatus.OK || parts === null || parts.length === 0) return;
    const text = (parts.length === 1 ? parts[0] : Buffer.concat(parts))?.toString('latin1') ?? '';
    const m = VERSION_REPLY.exec(text);
    if (m !== null && m[1] !== undefined) this.value = m[1];
  }
}

const upstreamVersion = new UpstreamVersion();

/**
 * Fills a plain `stats` slot with STATS_AT_FLUSH (answered, to be built when
 * written), and asks the upstream for its version while it is not known yet.
 */
export function deferTenantStats(req: Request, pool: UpstreamPool, slot: number): void {
  req.reply = STATS_AT_FLUSH;
  req.status = ReplyStatus.OK;
  req.done = true;
  if (upstreamVersion.value === null) upstreamVersion.ask(pool, slot);
}

/** Asks the upstream for memcached's version (at start, so the first `stats` already knows it). */
export function askUpstreamVersion(pool: UpstreamPool): void {
  upstreamVersion.ask(pool, pool.assign());
}

/** A client's `version` request was answered: learn memcached's version from it. */
export function noteVersionReply(req: Request): void {
  upstreamVersion.note(req);
}

/**
 * The stats reply of `t` now. `unwrittenBytes`: reply bytes already taken
 * for this write but not yet added to `bytes_written` (the replies before
 * this one in the same write).
 */
export function tenantStatsReply(t: TenantRuntime, memgateVersion: string, unwrittenBytes = 0): Buffer {
  const c = t.counters;
  const now = Math.floor(Date.now() / 1000);
  const rows: [string, string | number][] = [
    ['pid', process.pid],
    ['uptime', now - startedAtSec],
    ['time', now],
    ['version', upstreamVersion.value ?? VERSION_UNKNOWN],
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
    ['bytes_written', c.bytesWritten + unwrittenBytes],
    ['memgate_version', memgateVersion],
    ['memgate_tenant', t.policy.name],
    ['memgate_denied', c.denied],
  ];
  let s = '';
  for (const [name, value] of rows) s += `STAT ${name} ${value}\r\n`;
  s += 'END\r\n';
  return Buffer.from(s, 'latin1');
}
