/**
 * What memgate answers itself for an identified tenant, once policy/authorize.ts
 * has decided a request is not forwarded:
 *
 *   LOCAL    quit (no reply, end of stream), verbosity (`OK`, never forwarded),
 *            plain stats (the tenant's own counters, built when written:
 *            tenant-stats.ts), flush_all (a rotation of the tenant's
 *            generation; the requests after it wait until it is durable),
 *            binary NOOP
 *   DENY     the verdict's reply in the request's place, counted (errors, or
 *            a denial with an audit line where DENY_AUDIT_REASON names one)
 *   LIMITED  refused: `SERVER_ERROR rate limited` (or its over-burst words),
 *            counted by budget and audited
 *
 * Each answer fills the request's slot (reply-queue.ts); the session writes
 * it in order. SASL on an identified connection belongs to the auth dialogue
 * (auth-dialogue.ts), a delayed request to the session's holding.
 */
import type { Logger } from 'pino';
import { countOutcome, Outcome } from '../admin/counters.js';
import { binaryNoop } from '../protocol/binary/reply.js';
import { secondsUntil } from '../protocol/text/bytes.js';
import { COMMAND_BY_ID } from '../protocol/text/commands.js';
import { ErrorCode, hasErrorCode } from '../errors.js';
import { Replies } from '../protocol/text/replies.js';
import { ReplyStatus, type Request } from '../protocol/text/request.js';
import { DENY_AUDIT_REASON, DenyCause, LocalAnswer, type VerdictFields } from '../policy/authorize.js';
import { ADMIT_NAMES } from '../policy/rate-limit.js';
import { fillSlot } from './reply-queue.js';
import type { SessionContext } from './session.js';
import { deferTenantStats } from './tenant-stats.js';
import type { TenantRuntime } from './tenants.js';

/** What local answers need of their session (ClientSession). */
export interface LocalAnswerHost {
  readonly peer: string;
  /** the request ends the stream: nothing more is read, nothing after it answered */
  cutOffStream(): void;
  /** requests after the one being answered wait, reading paused, until afterLocalWork */
  holdForLocalWork(): void;
  /** answers the held-for request, then runs the held ones */
  afterLocalWork(req: Request, reply: Buffer, status: ReplyStatus): void;
}

/** One session's local answers. */
export class LocalAnswers {
  private readonly host: LocalAnswerHost;
  private readonly ctx: SessionContext;
  private readonly log: Logger;

  constructor(host: LocalAnswerHost, ctx: SessionContext, log: Logger) {
    this.host = host;
    this.ctx = ctx;
    this.log = log;
  }

  /** A LOCAL verdict of `t`'s request (LocalAnswer; SASL excepted: auth-dialogue.ts). */
  answer(t: TenantRuntime, req: Request, how: LocalAnswer): void {
    switch (how) {
      case LocalAnswer.QUIT:
        this.host.cutOffStream();
        fillSlot(req, null, ReplyStatus.NONE);
        return;
      case LocalAnswer.VERBOSITY:
        // answered OK and never forwarded: it must not change the shared server
        fillSlot(req, Replies.OK, ReplyStatus.OK);
        return;
      case LocalAnswer.STATS:
        deferTenantStats(req); // built when written: it counts what is answered before it
        return;
      case LocalAnswer.FLUSH_ALL:
        this.flushAll(t, req);
        return;
      case LocalAnswer.NOOP:
        fillSlot(req, binaryNoop(req), ReplyStatus.OK);
        return;
      default:
        fillSlot(req, Replies.ERROR, ReplyStatus.ERROR);
    }
  }

  /** A DENY verdict: counted, audited where it is an audited denial, answered in place. */
  refuse(t: TenantRuntime, req: Request, v: VerdictFields): void {
    const cause = v.cause;
    if (cause === DenyCause.BAD_REQUEST || cause === DenyCause.ITEM_TOO_LARGE) {
      t.counters.errors++;
      if (cause === DenyCause.ITEM_TOO_LARGE) req.value = null; // its bytes were swallowed; drop them now
    } else {
      const reason = DENY_AUDIT_REASON[cause] ?? null;
      if (reason !== null) this.noteDenial(t, req, reason);
    }
    fillSlot(req, v.reply, ReplyStatus.ERROR);
  }

  /** A LIMITED verdict with a reply: refused in the request's place, counted by budget, audited. */
  refuseOverLimit(t: TenantRuntime, req: Request, v: VerdictFields): void {
    const budget = v.budget;
    t.counters.rateLimited++;
    t.counters.rateLimitedBy[budget] = (t.counters.rateLimitedBy[budget] ?? 0) + 1;
    countOutcome(t.counters, req.cmd, Outcome.RATE_LIMITED);
    req.outcomeCounted = true;
    this.ctx.audit.event(
      'info',
      'rate-limited',
      t.policy.name,
      { peer: this.host.peer, budget: ADMIT_NAMES[budget] },
      'request over the rate limit',
    );
    fillSlot(req, v.reply, ReplyStatus.ERROR);
  }

  private noteDenial(t: TenantRuntime, req: Request, reason: string): void {
    t.counters.denied++;
    countOutcome(t.counters, req.cmd, Outcome.DENIED);
    req.outcomeCounted = true;
    const command = COMMAND_BY_ID[req.cmd]?.name ?? 'unknown';
    this.ctx.audit.event('info', 'denied', t.policy.name, { peer: this.host.peer, command, reason }, 'request denied');
  }

  /**
   * A tenant's flush_all rotates its namespace. Requests after it in the same
   * pipeline must see the new generation, so they are held until the rotation
   * is durable.
   */
  private flushAll(t: TenantRuntime, req: Request): void {
    t.counters.cmdFlush++;
    const host = this.host;
    host.holdForLocalWork();
    const delay = secondsUntil(req.delay, Date.now()); // over 30 days: an absolute time, as in memcached
    this.ctx.flushTenant(t, delay, host.peer).then(
      () => host.afterLocalWork(req, Replies.OK, ReplyStatus.OK),
      (err: unknown) => {
        this.log.error({ err }, 'flush_all rotation failed');
        const unavailable = hasErrorCode(err, ErrorCode.STATE_UNAVAILABLE);
        host.afterLocalWork(req, unavailable ? Replies.STATE_UNAVAILABLE : Replies.BACKEND_FAILURE, ReplyStatus.ERROR);
      },
    );
  }
}
