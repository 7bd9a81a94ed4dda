/**
 * Which commands a tenant may run. Pure data derived from the command table:
 * a bitset by command id for tenants, and the stats sub-command rules.
 *
 * Admin tenants run everything, forwarded unchanged; these rules are for
 * every other tenant.
 */
import { COMMANDS, Cmd, CommandClass, COMMAND_COUNT } from '../protocol/text/commands.js';
import { notAllowed, Replies } from '../protocol/text/replies.js';
import type { Request } from '../protocol/text/request.js';
import { Rights } from './compile.js';

/** What memgate does with a command for a (non-admin) tenant. */
export const Disposition = {
  /** forward upstream with keys rewritten */
  FORWARD: 1,
  /** refuse with `CLIENT_ERROR <name> not allowed` */
  DENY: 2,
  /** answered by memgate itself (stats, verbosity, quit, flush_all) */
  LOCAL: 3,
} as const;
export type Disposition = (typeof Disposition)[keyof typeof Disposition];

/**
 * Tenant disposition by command id. Admin families (lru_crawler, watch,
 * shutdown, slabs, lru, cache_memlimit, misbehave, debugtime, extstore) are
 * denied; stats, verbosity, quit and flush_all are answered locally.
 */
export const TENANT_DISPOSITION: Uint8Array = (() => {
  const d = new Uint8Array(COMMAND_COUNT);
  for (const c of COMMANDS) {
    d[c.id] = c.klass === CommandClass.ADMIN ? Disposition.DENY : Disposition.FORWARD;
  }
  d[Cmd.STATS] = Disposition.LOCAL;
  d[Cmd.VERBOSITY] = Disposition.LOCAL;
  d[Cmd.QUIT] = Disposition.LOCAL;
  d[Cmd.FLUSH_ALL] = Disposition.LOCAL;
  for (const c of COMMANDS) if (c.binaryOnly) d[c.id] = Disposition.LOCAL;
  return d;
})();

/** The denial reply for an admin-family command, by command id. */
export const DENY_REPLY: readonly (Buffer | undefined)[] = (() => {
  const out: (Buffer | undefined)[] = new Array<Buffer | undefined>(COMMAND_COUNT).fill(undefined);
  for (const c of COMMANDS) {
    if (c.klass === CommandClass.ADMIN) out[c.id] = notAllowed(c.name);
  }
  out[Cmd.FLUSH_ALL] = notAllowed('flush_all');
  return out;
})();

/**
 * memcached's `stats <sub>` groups. A tenant's plain `stats` is answered from
 * its own counters; every group below is refused (they describe or change the
 * shared server, and `stats sizes` in a loop is a known way to hurt it); any
 * other sub-command is unknown to memcached too and answers `ERROR`.
 */
export const STATS_GROUPS: readonly string[] = Object.freeze([
  'settings',
  'items',
  'slabs',
  'sizes',
  'sizes_enable',
  'sizes_disable',
  'detail',
  'cachedump',
  'conns',
  'reset',
  'extstore',
  'proxy',
  'proxyfuncs',
  'proxybe',
]);

const STATS_GROUP_REPLIES: readonly { name: Buffer; reply: Buffer }[] = STATS_GROUPS.map((g) => ({
  name: Buffer.from(g, 'latin1'),
  reply: notAllowed(`stats ${g}`),
}));

/**
 * The reply for a tenant's `stats <sub>`, given the sub-command's first token
 * as `line[start, end)`: a denial for a known group, undefined for an unknown one.
 */
export function statsGroupDenial(line: Buffer, start: number, end: number): Buffer | undefined {
  for (const g of STATS_GROUP_REPLIES) {
    if (end - start === g.name.length && line.compare(g.name, 0, g.name.length, start, end) === 0) return g.reply;
  }
  return undefined;
}

const T = 0x54; // 'T': meta flag that updates the TTL
const N = 0x4e; // 'N': meta flag that creates the item on a miss
const E = 0x45; // 'E': meta flag that sets the CAS value

/** True when a meta get would change the item (vivify on miss, new TTL, new CAS). */
function metaGetModifies(req: Request): boolean {
  const flags = req.metaFlags;
  for (let i = 0; i < flags.length; i += 2) {
    const c = req.line[flags[i] ?? 0];
    if (c === T || c === N || c === E) return true;
  }
  return false;
}

/**
 * What a credential's rights refuse: read-only refuses every command that
 * changes an item (storage, delete, arithmetic, touch, gat, a meta get that
 * vivifies or re-times) and flush_all; no-flush refuses flush_all.
 */
export function rightsDenial(rights: Rights, req: Request): Buffer | null {
  if (rights === Rights.READ_WRITE) return null;
  const cmd = req.cmd;
  if (cmd === Cmd.FLUSH_ALL) return notAllowed('flush_all');
  if (rights !== Rights.READ_ONLY) return null;
  const klass = COMMANDS_BY_ID_KLASS[cmd];
  if (klass === CommandClass.WRITE || klass === CommandClass.DELETE || klass === CommandClass.ARITH) {
    return Replies.ACCESS_DENIED;
  }
  if (klass === CommandClass.TOUCH || cmd === Cmd.GAT || cmd === Cmd.GATS) return Replies.ACCESS_DENIED;
  if (cmd === Cmd.MG && metaGetModifies(req)) return Replies.ACCESS_DENIED;
  return null;
}

const COMMANDS_BY_ID_KLASS: Uint8Array = (() => {
  const k = new Uint8Array(COMMAND_COUNT);
  for (const c of COMMANDS) k[c.id] = c.klass;
  return k;
})();
