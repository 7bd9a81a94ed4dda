/**
 * What happens to a decoded request of an identified tenant: the one
 * decision between the parser and the upstream (DESIGN.md: identify →
 * authorize → rewrite).
 *
 *   request ─▶ authorize(tenant, rights, req, nowMs, maxKeysPerGet, verdict)
 *                 │
 *                 ├─ FORWARD  upstream, keys under `verdict.ns` (null: unchanged)
 *                 ├─ LOCAL    memgate answers it itself: `verdict.local` says how
 *                 ├─ DENY     refused with `verdict.reply`; `verdict.cause` says why
 *                 └─ LIMITED  over a budget: refused with `verdict.reply`, or
 *                             (delay mode) `reply` null, to be held `delayMs` and decided again
 *
 * The checks run in this order, the first that applies deciding:
 *   1. the parser's own error reply, then the tenant's item size (a value pipelined
 *      behind an authentication, or on a binary session, was read under the global limit)
 *   2. binary-only commands (noop, SASL) and quit: local
 *   3. the credential's rights (read-only, no-flush)
 *   4. the rate budgets (charged here: one op per key, at least one; value bytes for storage)
 *   5. admin tenants: forward everything, keys unchanged
 *   6. the tenant's disposition of the command: forward (keys checked against the
 *      namespace or the enforced prefixes, then the keys-per-get limit), answer
 *      locally (verbosity, plain stats, flush_all) or deny
 *
 * Pure policy: no sockets, no session, no clock of its own (`nowMs` comes in);
 * the only state it changes is the tenant's budgets, which a request that is
 * admitted is charged to. Allocation-free: the answer is the verdict kind, with
 * its fields written into `out`, one record the caller reuses for every request.
 * The caller does the rest: counting, auditing, replying, holding.
 */
import { COMMAND_BY_ID, Cmd } from '../protocol/text/commands.js';
import { Replies } from '../protocol/text/replies.js';
import type { Request } from '../protocol/text/request.js';
import { DENY_REPLY, Disposition, TENANT_DISPOSITION, rightsDenial, statsGroupDenial } from './command-deny.js';
import { Rights, type TenantPolicy } from './compile.js';
import { checkEnforcedKeys, checkNamespacedKeys } from './key-prefix.js';
import { Admit } from './rate-limit.js';

/** authorize's answer. */
export const Verdict = {
  FORWARD: 1,
  LOCAL: 2,
  DENY: 3,
  LIMITED: 4,
} as const;
export type Verdict = (typeof Verdict)[keyof typeof Verdict];

/** How memgate answers a LOCAL request itself. */
export const LocalAnswer = {
  NONE: 0,
  /** end the stream; no reply */
  QUIT: 1,
  /** `OK`, never forwarded: it must not change the shared server */
  VERBOSITY: 2,
  /** plain `stats`: the tenant's own counters */
  STATS: 3,
  /** the tenant's flush_all: a rotation of its generation */
  FLUSH_ALL: 4,
  /** binary NOOP */
  NOOP: 5,
  /** binary SASL on an identified connection (the auth dialogue answers it) */
  SASL: 6,
} as const;
export type LocalAnswer = (typeof LocalAnswer)[keyof typeof LocalAnswer];

/** Why a request was denied: what the caller counts and audits. */
export const DenyCause = {
  NONE: 0,
  /** the parser's reply for a malformed request (`req.error`); counted as an error */
  BAD_REQUEST: 1,
  /** a value over the tenant's item size; counted as an error (its bytes were swallowed) */
  ITEM_TOO_LARGE: 2,
  /** the credential's rights refuse it; audited */
  RIGHTS: 3,
  /** enforce mode: a key outside the tenant's prefixes; audited */
  OUTSIDE_PREFIXES: 4,
  /** namespace mode: a key too long once namespaced (memcached's own reply) */
  KEY_TOO_LONG: 5,
  /** more keys than the keys-per-get limit */
  TOO_MANY_KEYS: 6,
  /** a command tenants may not run; audited */
  COMMAND: 7,
  /** a `stats <group>` tenants may not see; audited */
  STATS_GROUP: 8,
  /** a command (or `stats` sub-command) memcached does not know either: `ERROR` */
  UNKNOWN: 9,
  /** flush_all of an enforce-mode tenant (its keys carry no generation to rotate); audited */
  ENFORCE_FLUSH: 10,
} as const;
export type DenyCause = (typeof DenyCause)[keyof typeof DenyCause];

/** The audit log's reason for a denial, by DenyCause; null: not an audited denial. */
export const DENY_AUDIT_REASON: readonly (string | null)[] = Object.freeze([
  null,
  null,
  null,
  'credential rights',
  'key outside the tenant prefixes',
  null,
  null,
  'command not allowed',
  'stats group not allowed',
  null,
  'flush_all in enforce mode',
]);

/** The tenant budgets authorize charges (policy/rate-limit.ts TenantBudgets). */
export interface AuthorizeBudgets {
  readonly isUnlimited: boolean;
  admit(nowMs: number, klass: number, ops: number, bytes: number): Admit;
  exceedsOpsBurst(ops: number): boolean;
  delayMsFor(nowMs: number, klass: number, ops: number, bytes: number): number;
}

/** What authorize reads of a tenant (server/tenants.ts TenantRuntime has it). */
export interface AuthorizeTenant {
  readonly policy: TenantPolicy;
  /** the current namespace (prefix + generation); null when keys pass unchanged (enforce, admin) */
  readonly ns: Buffer | null;
  readonly budgets: AuthorizeBudgets;
}

/** The fields of a verdict; one record per session, rewritten by every authorize call. */
export class VerdictFields {
  /** FORWARD: the namespace the keys go upstream under; null: unchanged */
  ns: Buffer | null;
  /** LOCAL: how */
  local: LocalAnswer;
  /** DENY, LIMITED: the reply in the request's place; LIMITED with null: delayed */
  reply: Buffer | null;
  /** DENY: why */
  cause: DenyCause;
  /** LIMITED: the budget that is short */
  budget: Admit;
  /** LIMITED and delayed: milliseconds until the budget allows it (decide again then) */
  delayMs: number;

  constructor() {
    this.ns = null;
    this.local = LocalAnswer.NONE;
    this.reply = null;
    this.cause = DenyCause.NONE;
    this.budget = Admit.OK;
    this.delayMs = 0;
  }
}

const WHITESPACE = 0x20;

function forward(out: VerdictFields, ns: Buffer | null): Verdict {
  out.ns = ns;
  return Verdict.FORWARD;
}

function local(out: VerdictFields, how: LocalAnswer): Verdict {
  out.local = how;
  return Verdict.LOCAL;
}

function deny(out: VerdictFields, cause: DenyCause, reply: Buffer): Verdict {
  out.cause = cause;
  out.reply = reply;
  return Verdict.DENY;
}

/**
 * Decides what happens to `req` of tenant `t`, on a connection whose
 * credential grants `rights`, at monotonic time `nowMs`. `maxKeysPerGet`
 * is the global keys-per-get limit (the tenant's own, when set, wins).
 * Returns the verdict; its fields are in `out`.
 */
export function authorize(
  t: AuthorizeTenant,
  rights: Rights,
  req: Request,
  nowMs: number,
  maxKeysPerGet: number,
  out: VerdictFields,
): Verdict {
  if (req.error !== null) return deny(out, DenyCause.BAD_REQUEST, req.error);
  const p = t.policy;
  if (isOverItemLimit(p, req)) return deny(out, DenyCause.ITEM_TOO_LARGE, Replies.TOO_LARGE);
  const cmd = req.cmd;
  if (req.binary !== null) {
    if (cmd === Cmd.BIN_NOOP) return local(out, LocalAnswer.NOOP);
    if (cmd === Cmd.SASL_AUTH || cmd === Cmd.SASL_LIST_MECHS || cmd === Cmd.SASL_STEP) {
      return local(out, LocalAnswer.SASL);
    }
  }
  if (cmd === Cmd.QUIT) return local(out, LocalAnswer.QUIT);
  if (rights !== Rights.READ_WRITE) {
    const denial = rightsDenial(rights, req);
    if (denial !== null) return deny(out, DenyCause.RIGHTS, denial);
  }
  if (!t.budgets.isUnlimited && isOverBudget(t, req, nowMs, out)) return Verdict.LIMITED;
  if (p.admin) return forward(out, null);
  const disposition = TENANT_DISPOSITION[cmd];
  if (disposition === Disposition.FORWARD) return checkKeys(t, req, maxKeysPerGet, out);
  if (disposition === Disposition.LOCAL) return answerLocally(p, req, out);
  return deny(out, DenyCause.COMMAND, DENY_REPLY[cmd] ?? Replies.ERROR);
}

/**
 * The tenant's item limit. The parser applies it only to values whose header
 * it reads after the tenant is known; a value read under the global limit
 * (pipelined behind an authentication, or on a binary session) is refused
 * here (its bytes are already swallowed).
 */
function isOverItemLimit(p: TenantPolicy, req: Request): boolean {
  const item = p.limits.maxItemBytes;
  return item > 0 && req.bytes > item && COMMAND_BY_ID[req.cmd]?.hasValue === true;
}

/**
 * Charges the tenant's budgets: one op per key (at least one), value bytes
 * for storage. Over budget, the request is refused (`SERVER_ERROR rate
 * limited`, or its own words when it names more keys than the burst: it can
 * never be admitted), or in delay mode delayed, when the budget allows it
 * within maxDelayMs. True when over budget (`out` says how).
 */
function isOverBudget(t: AuthorizeTenant, req: Request, nowMs: number, out: VerdictFields): boolean {
  const spec = COMMAND_BY_ID[req.cmd];
  if (spec === undefined) return false;
  const keys = req.keys.length >> 1;
  const ops = keys > 0 ? keys : 1;
  const bytes = spec.hasValue ? req.bytes : 0;
  const budgets = t.budgets;
  const admitted = budgets.admit(nowMs, spec.klass, ops, bytes);
  if (admitted === Admit.OK) return false;
  out.budget = admitted;
  const overBurst = admitted === Admit.RATE_OPS && budgets.exceedsOpsBurst(ops);
  const limits = t.policy.limits;
  if (limits.delayOverLimit && !overBurst) {
    const wait = budgets.delayMsFor(nowMs, spec.klass, ops, bytes);
    if (wait <= limits.maxDelayMs) {
      out.reply = null;
      out.delayMs = wait;
      return true;
    }
  }
  out.reply = overBurst ? Replies.OVER_BURST : Replies.RATE_LIMITED;
  out.delayMs = 0;
  return true;
}

/** A forwarded command's keys: inside the namespace (or the enforced prefixes), and not too many. */
function checkKeys(t: AuthorizeTenant, req: Request, maxKeysPerGet: number, out: VerdictFields): Verdict {
  const ns = t.ns;
  const p = t.policy;
  if (ns !== null) {
    const denial = checkNamespacedKeys(req, ns);
    if (denial !== null) return deny(out, DenyCause.KEY_TOO_LONG, denial);
  } else {
    const denial = checkEnforcedKeys(req, p.prefixes);
    if (denial !== null) return deny(out, DenyCause.OUTSIDE_PREFIXES, denial);
  }
  const maxKeys = p.limits.maxKeysPerGet > 0 ? p.limits.maxKeysPerGet : maxKeysPerGet;
  if (req.keys.length > maxKeys * 2) return deny(out, DenyCause.TOO_MANY_KEYS, Replies.TOO_MANY_KEYS);
  return forward(out, ns);
}

/** The commands a tenant's disposition answers locally (quit and binary ones are decided before). */
function answerLocally(p: TenantPolicy, req: Request, out: VerdictFields): Verdict {
  switch (req.cmd) {
    case Cmd.VERBOSITY:
      return local(out, LocalAnswer.VERBOSITY);
    case Cmd.FLUSH_ALL:
      // enforce mode: keys carry no generation, so a rotation would answer OK and clear nothing
      if (p.mode !== 'namespace') return deny(out, DenyCause.ENFORCE_FLUSH, DENY_REPLY[Cmd.FLUSH_ALL] ?? Replies.ERROR);
      return local(out, LocalAnswer.FLUSH_ALL);
    case Cmd.STATS:
      return statsVerdict(req, out);
    default:
      return deny(out, DenyCause.UNKNOWN, Replies.ERROR);
  }
}

/**
 * Plain `stats` is answered from the tenant's own counters; memcached's
 * groups are refused in its words; any other sub-command is unknown to
 * memcached too (`ERROR`).
 */
function statsVerdict(req: Request, out: VerdictFields): Verdict {
  if (req.argsEnd <= req.argsStart) return local(out, LocalAnswer.STATS);
  let end = req.argsStart;
  while (end < req.argsEnd && req.line[end] !== WHITESPACE) end++;
  const denial = statsGroupDenial(req.line, req.argsStart, end);
  if (denial !== undefined) return deny(out, DenyCause.STATS_GROUP, denial);
  return deny(out, DenyCause.UNKNOWN, Replies.ERROR);
}
