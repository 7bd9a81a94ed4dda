/**
 * Which commands a tenant may run. Pure data derived from the command table:
 * a bitset by command id for tenants, and the stats sub-command rules.
 *
 * Admin tenants run everything, forwarded unchanged; these rules are for
 * every other tenant.
 */
import { COMMANDS, Cmd, CommandClass, COMMAND_COUNT } from '../protocol/text/commands.js';
import { notAllowed } from '../protocol/text/replies.js';

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
