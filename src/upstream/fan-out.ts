/**
 * Server-wide commands of an admin tenant, sent to every server of its pool.
 *
 *   admin:  stats ──▶ FanOut ─┬─▶ server 0: stats ─▶ STAT pid 1 … END ─┐
 *                             ├─▶ server 1: stats ─▶ STAT pid 7 … END ─┼─▶ one STAT list: counters
 *                             └─▶ server 2: stats ─▶ STAT pid 9 … END ─┘   summed, the rest from server 0
 *
 *   flush_all / cache_memlimit / verbosity: OK when every server said OK, else the first
 *   other reply (in server order).
 *
 * Only admin tenants' requests reach the upstream with these commands: a
 * tenant's stats, flush_all and verbosity are answered by memgate, and its
 * cache_memlimit is refused. `stats <group>` (settings, items, slabs, …) is
 * not fanned out: it goes to the pool's first live server.
 *
 * NOTE: stats is summed only when every server answered; when one did not,
 * the reply is its error (a total over fewer servers would look right and
 * be wrong). With `ejectHosts` a server marked down has left the pool: it is
 * not asked (unless every server is down).
 */
import { Cmd } from '../protocol/text/commands.js';
import { ReplyStatus, Request, type ReplyOwner } from '../protocol/text/request.js';
import type { UpstreamLink } from './cluster.js';

const SPACE = 0x20;

/** True for the commands sent to every server of the pool. */
export function isFanOut(req: Request): boolean {
  switch (req.cmd) {
    case Cmd.FLUSH_ALL:
    case Cmd.CACHE_MEMLIMIT:
    case Cmd.VERBOSITY:
      return true;
    case Cmd.STATS: {
      for (let i = req.argsStart; i < req.argsEnd; i++) if (req.line[i] !== SPACE) return false;
      return true;
    }
    default:
      return false;
  }
}

/**
 * `stats` counters that add up over servers (items, bytes, connections,
 * commands, hits, memory); every other STAT (pid, uptime, time, version,
 * settings, rusage, …) is the first server's.
 */
const SUMMED_STATS: ReadonlySet<string> = new Set([
  'curr_items',
  'total_items',
  'bytes',
  'limit_maxbytes',
  'curr_connections',
  'total_connections',
  'rejected_connections',
  'connection_structures',
  'reserved_fds',
  'response_obj_oom',
  'response_obj_count',
  'response_obj_bytes',
  'read_buf_oom',
  'cmd_get',
  'cmd_set',
  'cmd_flush',
  'cmd_touch',
  'cmd_meta',
  'get_hits',
  'get_misses',
  'get_expired',
  'get_flushed',
  'delete_misses',
  'delete_hits',
  'incr_misses',
  'incr_hits',
  'decr_misses',
  'decr_hits',
  'cas_misses',
  'cas_hits',
  'cas_badval',
  'touch_hits',
  'touch_misses',
  'store_too_large',
  'store_no_memory',
  'auth_cmds',
  'auth_errors',
  'bytes_read',
  'bytes_written',
  'accepting_conns',
  'listen_disabled_num',
  'conn_yields',
  'hash_bytes',
  'expired_unfetched',
  'evicted_unfetched',
  'evicted_active',
  'evictions',
  'reclaimed',
  'crawler_reclaimed',
  'crawler_items_checked',
  'lrutail_reflocked',
  'moves_to_cold',
  'moves_to_warm',
  'moves_within_lru',
  'direct_reclaims',
  'lru_bumps_dropped',
  'malloc_fails',
  'slabs_moved',
  'slab_reassign_rescues',
  'slab_reassign_evictions_nomem',
  'slab_reassign_chunk_rescues',
  'slab_reassign_inline_reclaim',
  'slab_reassign_busy_items',
  'slab_reassign_busy_deletes',
  'total_malloced',
  'unexpected_napi_ids',
  'round_robin_fallback',
]);

const STAT_LINE = /^STAT (\S+) (.*)$/;
const INTEGER = /^[0-9]{1,20}$/;

/**
 * One `STAT … END` list from the answers of every server: the first
 * server's lines in its order, a summed counter carrying the sum over all
 * of them (when every value is an integer). Returns null when a reply is not
 * a STAT list.
 */
export function mergeStats(replies: readonly string[]): string | null {
  const first = replies[0];
  if (first === undefined) return null;
  const sums = new Map<string, bigint>();
  const parsed: [string, string][][] = [];
  for (const text of replies) {
    if (!text.endsWith('END\r\n')) return null;
    const lines: [string, string][] = [];
    const body = text.slice(0, -'END\r\n'.length);
    for (const line of body.split('\r\n')) {
      if (line === '') continue;
      const m = STAT_LINE.exec(line);
      if (m === null) return null;
      lines.push([m[1] ?? '', m[2] ?? '']);
    }
    parsed.push(lines);
  }
  const notSummable = new Set<string>();
  for (const lines of parsed) {
    for (const [name, value] of lines) {
      if (!SUMMED_STATS.has(name)) continue;
      if (!INTEGER.test(value)) notSummable.add(name);
      else sums.set(name, (sums.get(name) ?? 0n) + BigInt(value));
    }
  }
  let out = '';
  for (const [name, value] of parsed[0] ?? []) {
    const sum = sums.get(name);
    out += `STAT ${name} ${sum !== undefined && !notSummable.has(name) ? sum.toString() : value}\r\n`;
  }
  return `${out}END\r\n`;
}

const OK_LINE = Buffer.from('OK\r\n', 'latin1');

function isOkLine(reply: Buffer[] | null): boolean {
  return reply !== null && Buffer.concat(reply).equals(OK_LINE);
}

/** A copy of `parent` for one server (keyless: its line, arguments and delay). */
function copyFor(parent: Request, owner: ReplyOwner): Request {
  const r = new Request();
  r.cmd = parent.cmd;
  r.line = parent.line;
  r.argsStart = parent.argsStart;
  r.argsEnd = parent.argsEnd;
  r.numStart = parent.numStart;
  r.numEnd = parent.numEnd;
  r.delay = parent.delay;
  r.noreply = parent.noreply;
  r.ns = parent.ns;
  r.owner = owner;
  return r;
}

/** One admin-wide request in flight on every server of a pool; completes its parent once all answered. */
export class FanOut implements ReplyOwner {
  private readonly parent: Request;
  private readonly link: UpstreamLink;
  private readonly parts: Request[];
  private left: number;

  /** the servers asked, in pool order: every one, or with ejectHosts the ones not marked down (if any) */
  private readonly targets: number[];

  constructor(parent: Request, link: UpstreamLink) {
    this.parent = parent;
    this.link = link;
    this.parts = [];
    const servers = link.pool.servers;
    const live = link.pool.ejectHosts ? servers.filter((s) => !s.down).map((s) => s.index) : [];
    this.targets = live.length > 0 ? live : servers.map((s) => s.index);
    this.left = this.targets.length;
  }

  start(): void {
    const targets = this.targets;
    for (let i = 0; i < targets.length; i++) this.parts.push(copyFor(this.parent, this));
    for (let i = 0; i < targets.length; i++) {
      const part = this.parts[i];
      if (part !== undefined) this.link.sendTo(targets[i] ?? 0, part);
    }
    // the request's latency counts from its first write
    this.parent.sentAtMs = this.parts[0]?.sentAtMs ?? 0;
  }

  onReply(part: Request): void {
    this.link.answered(part);
    this.left--;
    if (this.left === 0) this.finish();
  }

  private finish(): void {
    const parent = this.parent;
    const parts = this.parts;
    const isStats = parent.cmd === Cmd.STATS;
    let failed: Request | undefined;
    for (const p of parts) {
      if (p.status !== ReplyStatus.OK || (!isStats && !isOkLine(p.reply))) {
        failed = p;
        break;
      }
    }
    if (failed !== undefined) {
      parent.reply = failed.reply;
      parent.status = failed.status;
    } else if (isStats) {
      const merged = mergeStats(parts.map((p) => Buffer.concat(p.reply ?? []).toString('latin1')));
      parent.reply = merged === null ? (parts[0]?.reply ?? null) : [Buffer.from(merged, 'latin1')];
      parent.status = ReplyStatus.OK;
    } else {
      parent.reply = parts[0]?.reply ?? null;
      parent.status = ReplyStatus.OK;
    }
    for (const p of parts) p.reply = null;
    parent.done = true;
    parent.owner?.onReply(parent);
  }
}
