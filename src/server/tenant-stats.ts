/**
 * A tenant's plain `stats`, answered by memgate from that tenant's own
 * counters in memcached's format (`STAT <name> <value>` lines, then `END`).
 * Never the shared server's numbers: those describe every tenant's traffic.
 *
 * The reply is built when its slot is written, not when the request is
 * parsed: the counters are kept at reply time (accountReply, below), so a
 * `stats` pipelined after a `set` and a `get` counts both, as memcached's
 * does. Until then its slot holds STATS_AT_FLUSH.
 *
 * Every value is one token, and the names are memcached's (in memcached's
 * order), then memgate's own: `version` is memcached's version string as the
 * `version` command shows it, from the upstream connections' own version
 * probe (every connection asks `version` first; upstream/connection.ts),
 * `unknown` until one has answered; `memgate_version` is memgate's.
 */
import { countOutcome, observeLatencyUs, Outcome, type TenantCounters } from '../admin/counters.js';
import { OpKind, opcodeInfo } from '../protocol/binary/header.js';
import { Cmd, CommandClass, COMMAND_BY_ID } from '../protocol/text/commands.js';
import { ReplyStatus, type Request } from '../protocol/text/request.js';
import type { TenantRuntime } from './tenants.js';

const startedAtSec = Math.floor(Date.now() / 1000);

/** A stats request's reply until its slot is written; the session then calls tenantStatsReply. Never mutated. */
export const STATS_AT_FLUSH: Buffer[] = [];

/** `STAT version` before any upstream has told its version (one token, like every value). */
const VERSION_UNKNOWN = 'unknown';

/** Fills a plain `stats` slot with STATS_AT_FLUSH: answered, to be built when written. */
export function deferTenantStats(req: Request): void {
  req.reply = STATS_AT_FLUSH;
  req.status = ReplyStatus.OK;
  req.done = true;
}

/**
 * The stats reply of `t` now. `unwrittenBytes`: reply bytes already taken
 * for this write but not yet added to `bytes_written` (the replies before
 * this one in the same write).
 */
export function tenantStatsReply(
  t: TenantRuntime,
  memgateVersion: string,
  upstreamVersion: string | null,
  unwrittenBytes = 0,
): Buffer {
  const c = t.counters;
  const now = Math.floor(Date.now() / 1000);
  const rows: [string, string | number][] = [
    ['pid', process.pid],
    ['uptime', now - startedAtSec],
    ['time', now],
    ['version', upstreamVersion ?? VERSION_UNKNOWN],
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

/**
 * Counts a completed request in its tenant's stats, in memcached's terms,
 * when its reply is written (so a `stats` counts what was answered before
 * it). Denials and rate limits were counted where they were decided.
 */
export function accountReply(c: TenantCounters, req: Request, nowMs: number): void {
  const spec = COMMAND_BY_ID[req.cmd];
  if (spec === undefined) return;
  const s = req.status;
  if (req.sentAtMs > 0) observeLatencyUs(c, spec.klass, (nowMs - req.sentAtMs) * 1000);
  // denials and rate limits were counted where they were decided
  if (s === ReplyStatus.ERROR) {
    if (!req.outcomeCounted) countOutcome(c, req.cmd, Outcome.ERROR);
    return;
  }
  // a multi-get with keys on a down server was counted as backend_miss (session onBackendMiss)
  if (!req.outcomeCounted) {
    countOutcome(c, req.cmd, s === ReplyStatus.MISS || s === ReplyStatus.NOT_FOUND ? Outcome.MISS : Outcome.OK);
  }
  switch (spec.klass) {
    case CommandClass.READ: {
      if (req.cmd !== Cmd.ME) countRead(c, req);
      return;
    }
    case CommandClass.WRITE:
      c.cmdSet++;
      if (isCasStore(req)) {
        if (s === ReplyStatus.STORED || s === ReplyStatus.HD) c.casHits++;
        else if (s === ReplyStatus.EXISTS) c.casBadval++;
        else if (s === ReplyStatus.NOT_FOUND) c.casMisses++;
      }
      return;
    case CommandClass.DELETE:
      if (s === ReplyStatus.DELETED || s === ReplyStatus.HD) c.deleteHits++;
      else if (s === ReplyStatus.NOT_FOUND) c.deleteMisses++;
      return;
    case CommandClass.ARITH: {
      const hit = s === ReplyStatus.NUMBER || s === ReplyStatus.HD || s === ReplyStatus.OK;
      if (isDecrement(req)) {
        if (hit) c.decrHits++;
        else c.decrMisses++;
      } else if (hit) c.incrHits++;
      else c.incrMisses++;
      return;
    }
    case CommandClass.TOUCH:
      c.cmdTouch++;
      if (s === ReplyStatus.TOUCHED) c.touchHits++;
      else c.touchMisses++;
      return;
    default:
  }
}

const META_TTL_FLAG = 0x54; // 'T'
const META_CAS_FLAG = 0x43; // 'C'
const META_MODE_FLAG = 0x4d; // 'M'

/** Where the meta flag `flag` of `req` is in `req.line` (its letter), or -1. */
function metaFlagAt(req: Request, flag: number): number {
  const flags = req.metaFlags;
  for (let i = 0; i < flags.length; i += 2) {
    const at = flags[i] ?? 0;
    if (req.line[at] === flag) return at;
  }
  return -1;
}

function hasTtlFlag(req: Request): boolean {
  return metaFlagAt(req, META_TTL_FLAG) >= 0;
}

/**
 * A store memcached counts in cas_hits / cas_badval / cas_misses: `cas`; an
 * `ms` with `C` in set or replace mode (an add or append with `C` is not,
 * proto_text.c); a binary SET, ADD or REPLACE with a cas (sent as `ms … C`;
 * proto_bin.c makes every one of them a cas).
 */
export function isCasStore(req: Request): boolean {
  if (req.cmd === Cmd.CAS) return true;
  if (req.cmd !== Cmd.MS || metaFlagAt(req, META_CAS_FLAG) < 0) return false;
  if (req.binary !== null) return opcodeInfo(req.binary.opcode).kind === OpKind.STORE;
  const m = metaFlagAt(req, META_MODE_FLAG);
  const mode = m < 0 ? 0x73 : (req.line[m + 1] ?? 0) | 0x20; // lower case; 's' without a mode
  return mode === 0x73 || mode === 0x72; // 's', 'r'
}

/** `decr`, or an `ma` in decrement mode (`MD`, `Md`, `M-`; binary DECR is sent as `ma … MD`). */
export function isDecrement(req: Request): boolean {
  if (req.cmd === Cmd.DECR) return true;
  if (req.cmd !== Cmd.MA) return false;
  const m = metaFlagAt(req, META_MODE_FLAG);
  const mode = m < 0 ? 0 : (req.line[m + 1] ?? 0);
  return mode === 0x44 || mode === 0x64 || mode === 0x2d;
}

/**
 * A completed read (get, gets, gat, gats, mg) in the tenant's counters, as
 * memcached 1.6 counts it: a get's keys in cmd_get / get_hits / get_misses;
 * a gat's or gats' keys in cmd_touch / touch_hits / touch_misses only; a
 * meta get with `T` as a touch when it hits and as a get miss when it misses
 * (memcached learns of the `T` only on a hit); a binary TOUCH or GAT (sent
 * upstream as `mg … T`) as a touch, hit or miss (proto_bin.c).
 */
export function countRead(c: TenantCounters, req: Request): void {
  const keys = req.keys.length >> 1;
  let hits = req.hits;
  let touch = req.cmd === Cmd.GAT || req.cmd === Cmd.GATS;
  if (req.cmd === Cmd.MG) {
    hits = req.status === ReplyStatus.OK || req.status === ReplyStatus.HD ? 1 : 0;
    if (req.binary !== null) {
      const kind = opcodeInfo(req.binary.opcode).kind;
      touch = kind === OpKind.TOUCH || kind === OpKind.GAT;
    } else touch = hits > 0 && hasTtlFlag(req);
  }
  if (touch) {
    c.cmdTouch += keys;
    c.touchHits += hits;
    c.touchMisses += keys - hits;
  } else {
    c.cmdGet += keys;
    c.getHits += hits;
    c.getMisses += keys - hits;
  }
}
