/**
 * One client connection: bytes in → parse → authorize → forward, and replies
 * out in request order.
 *
 *   socket 'data' ─▶ RequestParser ─▶ onRequest ─▶ dispatch
 *       no tenant yet ─▶ AuthDialogue (auth-dialogue.ts)
 *       authorize() (policy/authorize.ts) ─┬─ FORWARD ─▶ UpstreamLink.send ─▶ onReply
 *                                          ├─ LOCAL / DENY / LIMITED ─▶ LocalAnswers (local-answers.ts)
 *                                          └─ LIMITED, delay mode ─▶ held, dispatched again later
 *   flush(): write every filled slot from the head of the ReplyQueue
 *
 * The session itself keeps reading, the reply slots, flushing, pausing and
 * closing (and, for now, the forward window to the upstream pool). Reading
 * pauses while any pause reason is set (client not reading its replies, too
 * many requests in flight, upstream socket full, local work such as a
 * flush_all rotation or a password check) and resumes when none is.
 *
 * NOTE: a little over STYLE's 600 lines because of the forward window to the
 * upstream pool (forward … pumpWaiting, the MultiGetHost methods), which the
 * cluster work of issue #11 replaces; it is kept here unchanged until then.
 */
import type net from 'node:net';
import { countOutcome, Outcome, type ProcessCounters } from '../admin/counters.js';
import type { Logger } from 'pino';
import { partsBytes } from '../protocol/text/bytes.js';
import { Replies } from '../protocol/text/replies.js';
import { Request, ReplyStatus, type ReplyOwner, type RequestSink } from '../protocol/text/request.js';
import { RequestParser } from '../protocol/text/request-parser.js';
import { BinaryRequestParser } from '../protocol/binary/parser.js';
import { encodeBinaryReply } from '../protocol/binary/reply.js';
import { SASL_MAX_BODY_BYTES } from '../protocol/binary/sasl.js';
import { authorize, LocalAnswer, Verdict, VerdictFields } from '../policy/authorize.js';
import { Rights } from '../policy/compile.js';
import type { AuditSampler } from './audit.js';
import { AuthDialogue, type AuthHost } from './auth-dialogue.js';
import type { Authenticator } from './auth.js';
import type { ConnectionLimiter } from './conn-limits.js';
import type { MemoryGuard, MemoryRelief } from './memory-guard.js';
import type { UpstreamCluster, UpstreamLink } from '../upstream/cluster.js';
import { DEFAULT_POOL } from '../config/schema.js';
import { WriteBatch } from '../upstream/write-batch.js';
import { endAndRelease } from './close.js';
import { answerOversizedSet, deleteInsteadOfOversizedSet } from './oversized-set.js';
import { isMultiGet, MultiGet, type MultiGetHost } from './multiget.js';
import { LocalAnswers } from './local-answers.js';
import { fillSlot, isReplyHidden, ReplyQueue } from './reply-queue.js';
import { accountReply, STATS_AT_FLUSH, tenantStatsReply } from './tenant-stats.js';
import { requestDeadlines, type DeadlineMember } from './request-deadline.js';
import type { TenantRegistry, TenantRuntime } from './tenants.js';

export const PauseReason = {
  CLIENT_WRITE_BLOCKED: 1,
  UPSTREAM_WRITE_BLOCKED: 2,
  IN_FLIGHT_LIMIT: 4,
  LOCAL_WORK: 8,
  MEMORY_WATERMARK: 16,
} as const;

export interface SessionLimits {
  readonly maxLineBytes: number;
  readonly maxValueBytes: number;
  readonly maxKeysPerGet: number;
  readonly maxInFlightPerSession: number;
  readonly maxPendingReplyBytesPerSession: number;
  /** 0 = never */
  readonly idleTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly authTimeoutMs: number;
}

export interface SessionAuthSettings {
  /** accept `set <username> 0 0 <len>` + password as well as "<user> <password>" data */
  readonly usernameAsKey: boolean;
  readonly maxTokenBytes: number;
  readonly maxFailuresPerConnection: number;
}

/** What a session needs from the proxy; one object shared by all sessions. */
export interface SessionContext {
  readonly tenants: TenantRegistry;
  readonly authenticator: Authenticator;
  /** auth settings, limits and pool are replaced by a config reload; sessions read them when needed */
  readonly auth: SessionAuthSettings;
  /** the upstream cluster new requests go to (a reload replaces it) */
  readonly pool: UpstreamCluster;
  readonly logger: Logger;
  readonly limits: SessionLimits;
  /** memgate's own version, one word (`STAT memgate_version`) */
  readonly version: string;
  readonly connections: ConnectionLimiter;
  readonly memory: MemoryGuard;
  readonly audit: AuditSampler;
  readonly processCounters: ProcessCounters;
  /**
   * A tenant's flush_all: rotate its generation now (delaySec 0) or schedule it.
   * Resolves once the change is durable.
   */
  flushTenant(tenant: TenantRuntime, delaySec: number, source: string): Promise<void>;
  onSessionClosed(session: ClientSession): void;
}

const BINARY_REQUEST_MAGIC = 0x80;
/** Most requests one session has upstream at once (replies of unknown size are buffered as they arrive). */
const MAX_FORWARD_WINDOW = 256;
/** ...and before the first reply has told how large replies are. */
const FIRST_FORWARD_WINDOW = 32;

/** Longest line before authentication: `set <key> <flags> <exptime> <bytes>` with a 250-byte key fits. */
const PRE_AUTH_LINE_BYTES = 1024;

/** One session's replies of one flush; shared, since a flush fills and writes it synchronously. */
const replyBatch = new WriteBatch();

export class ClientSession implements RequestSink, ReplyOwner, MemoryRelief, MultiGetHost, DeadlineMember, AuthHost {
  readonly id: number;
  readonly socket: net.Socket;
  readonly peer: string;
  tenant: TenantRuntime | null;
  /** what the credential that identified the connection allows */
  rights: Rights;
  private readonly ctx: SessionContext;
  private readonly log: Logger;
  /** the text parser, or the binary one once the first byte said so (0x80, as memcached decides) */
  private parser: RequestParser | BinaryRequestParser;
  private protocolKnown: boolean;
  private readonly queue: ReplyQueue;
  /**
   * The tenant's pool in the upstream cluster; replaced (by a reload, or a
   * tenant whose pool changed) only while nothing is in flight, so requests
   * stay in order, or at once when the connection is another tenant's now
   * (upstreamLink()). Null until the first request is forwarded.
   */
  private link: UpstreamLink | null;
  /** the tenant `link` was made for */
  private linkTenant: TenantRuntime | null;
  private pauseReasons: number;
  private flushScheduled: boolean;
  private closed: boolean;
  /**
   * Nothing more is read; the connection closes once the replies owed are
   * written. Set by cutOffStream(), by the client shutting down its sending side and
   * by a graceful stop (drain).
   */
  private ending: boolean;
  /**
   * A request ended the stream (quit, unauthenticated, fatal): requests after
   * it get no reply, even ones already parsed and held. Implies `ending`.
   */
  private cutOffFlag: boolean;
  /** requests parsed while local work (a rotation) is pending; dispatched in order after it */
  private held: Request[] | null;
  private readonly flushBound: () => void;
  private readonly upstreamDrainBound: () => void;
  /** requests sent upstream and not answered yet */
  private forwarded: number;
  /** requests parsed and due upstream, waiting for the forward window */
  private readonly waiting: (Request | undefined)[];
  private waitingHead: number;
  private pumping: boolean;
  /** bytes of the largest reply this session has had: sizes the forward window */
  private largestReplyBytes: number;
  /** the multi-key get being answered in pieces (multiget.ts); nothing after it is forwarded until it is finished */
  private multi: MultiGet | null;
  /** monotonic ms, read once per chunk */
  private nowMs: number;
  /** monotonic ms by which the request in progress must be whole; 0 when no request is in progress */
  requestDeadlineMs: number;
  /** requests the parser has delivered, and how many it had when the deadline was set */
  private received: number;
  private receivedAtDeadline: number;
  /** when reading last paused: time not reading is not the client's, so it moves the deadline */
  private pausedAtMs: number;
  /** authorize's answer for the request being dispatched; one record, rewritten for every request */
  private readonly verdict: VerdictFields;
  /** who the connection is: authentication, the identity's counters, the auth timer */
  private readonly auth: AuthDialogue;
  /** what memgate answers itself: local commands, denials, rate limits */
  private readonly local: LocalAnswers;

  constructor(id: number, socket: net.Socket, ctx: SessionContext, tenant: TenantRuntime | null, log: Logger) {
    this.id = id;
    this.socket = socket;
    this.peer = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
    this.ctx = ctx;
    this.log = log;
    this.tenant = tenant;
    this.rights = Rights.READ_WRITE;
    this.protocolKnown = false;
    this.parser = new RequestParser(this, {
      maxLineBytes: ctx.limits.maxLineBytes,
      maxValueBytes: ctx.limits.maxValueBytes,
    });
    if (tenant === null) this.boundInput(true);
    this.queue = new ReplyQueue();
    this.link = null;
    this.linkTenant = null;
    this.pauseReasons = 0;
    this.flushScheduled = false;
    this.closed = false;
    this.ending = false;
    this.cutOffFlag = false;
    this.held = null;
    this.flushBound = () => this.flush();
    this.upstreamDrainBound = () => this.clearPause(PauseReason.UPSTREAM_WRITE_BLOCKED);
    this.forwarded = 0;
    this.waiting = [];
    this.waitingHead = 0;
    this.pumping = false;
    this.largestReplyBytes = 0;
    this.multi = null;
    this.nowMs = performance.now();
    this.requestDeadlineMs = 0;
    this.received = 0;
    this.receivedAtDeadline = 0;
    this.pausedAtMs = 0;
    this.verdict = new VerdictFields();
    this.auth = new AuthDialogue(this, ctx, log, tenant);
    this.local = new LocalAnswers(this, ctx, log);
    if (tenant !== null) this.applyTenantLimits(tenant);
    // one timer per connection (not per request) for idle connections; stalled requests: trackDeadline()
    const idle = ctx.limits.idleTimeoutMs;
    if (idle > 0) socket.setTimeout(idle);
    socket.on('timeout', () => this.onSocketTimeout());
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => {
      this.clearPause(PauseReason.CLIENT_WRITE_BLOCKED);
      this.flush();
      this.pumpWaiting();
    });
    // the client will send nothing more: answer what it sent, then close (the listener allows half-open sockets)
    socket.on('end', () => this.drain());
    socket.on('error', (err) => this.log.debug({ err }, 'client socket error'));
    socket.on('close', () => this.onClose());
  }

  // ---- input ----

  private onData(chunk: Buffer): void {
    if (this.tenant !== null) this.tenant.counters.bytesRead += chunk.length;
    if (this.ending) return;
    this.nowMs = performance.now();
    if (!this.protocolKnown) this.chooseProtocol(chunk);
    this.parser.feed(chunk);
    if (this.requestDeadlineMs !== 0 || this.parser.isMidRequest) this.trackDeadline();
    if (this.ctx.memory.overloaded && !this.closed) {
      this.setPause(PauseReason.MEMORY_WATERMARK);
      this.ctx.memory.wait(this);
    }
    this.flush();
    const blocked = this.link?.blockedConnection() ?? null;
    if (!this.closed && blocked !== null) {
      this.setPause(PauseReason.UPSTREAM_WRITE_BLOCKED);
      blocked.onDrain(this.upstreamDrainBound);
    }
  }

  private chooseProtocol(chunk: Buffer): void {
    this.protocolKnown = true;
    if (chunk[0] !== BINARY_REQUEST_MAGIC) return;
    const limits = this.ctx.limits;
    const item = this.tenant?.policy.limits.maxItemBytes ?? 0;
    this.parser = new BinaryRequestParser(this, {
      maxValueBytes: item > 0 ? Math.min(item, limits.maxValueBytes) : limits.maxValueBytes,
    });
    if (this.tenant === null) this.boundInput(true);
  }

  /**
   * Before authentication only an authentication is expected, so the input is
   * bounded to one: a line of PRE_AUTH_LINE_BYTES, a value of auth.maxTokenBytes
   * (over it: CLIENT_ERROR auth token too long, and close, before the value is
   * read), a binary body of a SASL exchange. Lifted while an attempt is being
   * checked (what is pipelined behind it may be the tenant's own requests; the
   * socket is paused meanwhile) and once the connection has a tenant.
   */
  boundInput(on: boolean): void {
    const p = this.parser;
    if (p instanceof BinaryRequestParser) {
      p.setFatalBodyBytes(on ? SASL_MAX_BODY_BYTES : 0);
      return;
    }
    const bound = on
      ? { lineBytes: PRE_AUTH_LINE_BYTES, valueBytes: this.ctx.auth.maxTokenBytes, reply: Replies.AUTH_TOKEN_TOO_LONG }
      : null;
    p.setInputBound(bound, this.ctx.limits);
    if (!on && this.tenant !== null) this.applyTenantLimits(this.tenant);
  }

  onRequest(req: Request): void {
    this.received++;
    if (this.ending) return;
    req.owner = this;
    this.queue.push(req);
    if (this.queue.length > this.ctx.limits.maxInFlightPerSession) this.setPause(PauseReason.IN_FLIGHT_LIMIT);
    if (this.held !== null) {
      this.held.push(req);
      return;
    }
    this.dispatch(req);
  }

  onFatal(reply: Buffer): void {
    this.endWith(reply);
  }

  /**
   * After a chunk: a request still incomplete gets a deadline from the chunk
   * its first byte came in (kept while the same request goes on arriving);
   * once none is in progress, the deadline is dropped.
   */
  private trackDeadline(): void {
    if (!this.parser.isMidRequest || this.ending) {
      this.requestDeadlineMs = 0;
      requestDeadlines.unwatch(this);
      return;
    }
    if (this.requestDeadlineMs !== 0 && this.received === this.receivedAtDeadline) return;
    const timeoutMs = this.ctx.limits.requestTimeoutMs;
    this.requestDeadlineMs = this.nowMs + timeoutMs;
    this.receivedAtDeadline = this.received;
    requestDeadlines.watch(this, timeoutMs);
  }

  /** The request in progress is not whole by its deadline: answer (the parser says how) and close. */
  onRequestDeadline(): void {
    if (this.pauseReasons !== 0 && !this.closed) return; // not reading: clearPause() moves the deadline
    this.requestDeadlineMs = 0;
    requestDeadlines.unwatch(this);
    if (this.closed || this.ending) return;
    this.log.info({ peer: this.peer }, 'closing a connection whose request was not received in time');
    this.parser.expire();
  }

  private dispatch(req: Request): void {
    const t = this.tenant;
    if (t === null) {
      this.auth.answerUnidentified(req);
      return;
    }
    const v = this.verdict;
    let verdict = authorize(t, this.rights, req, this.nowMs, this.ctx.limits.maxKeysPerGet, v);
    if (verdict === Verdict.DENY && v.reply === Replies.TOO_LARGE && deleteInsteadOfOversizedSet(req)) {
      // a too-large SET still drops the old item, as in memcached: it goes on as a delete (oversized-set.ts)
      t.counters.errors++;
      verdict = authorize(t, this.rights, req, this.nowMs, this.ctx.limits.maxKeysPerGet, v);
    }
    switch (verdict) {
      case Verdict.FORWARD:
        req.ns = v.ns;
        this.forward(req);
        return;
      case Verdict.LOCAL:
        if (v.local === LocalAnswer.SASL) this.auth.answerIdentified(req);
        else this.local.answer(t, req, v.local);
        return;
      case Verdict.LIMITED:
        if (v.reply === null) this.delay(req, v.delayMs);
        else this.local.refuseOverLimit(t, req, v);
        return;
      default:
        this.local.refuse(t, req, v);
    }
  }

  /**
   * Delay mode: the request is over a budget that allows it within
   * maxDelayMs. It is held (with everything after it) for `waitMs` and then
   * dispatched again (and charged again).
   */
  private delay(req: Request, waitMs: number): void {
    this.holdForLocalWork();
    setTimeout(() => this.afterDelay(req), waitMs + 1);
  }

  /** Delay mode: the held request's wait is over; run it (it is charged again) and the ones held after it. */
  private afterDelay(req: Request): void {
    if (this.closed) return;
    const held = this.held;
    this.held = null;
    this.clearPause(PauseReason.LOCAL_WORK);
    this.nowMs = performance.now();
    this.dispatch(req);
    if (held !== null) for (const r of held) this.dispatchOrHold(r);
    this.flush();
  }

  /**
   * Sends `req` upstream, or queues it behind earlier waiting ones. Replies
   * are buffered for the client as they come back, so what may be in flight
   * is bounded by reply bytes, not just by count:
   *
   *   window = maxPendingReplyBytes / largest reply seen (1 .. MAX_FORWARD_WINDOW;
   *            FIRST_FORWARD_WINDOW until a reply has been seen)
   *
   * and nothing is forwarded while the client's unread replies exceed
   * maxPendingReplyBytes. A slow reader of large values then holds a few
   * megabytes, not its whole pipeline's worth.
   */
  private forward(req: Request): void {
    if (this.waitingHead < this.waiting.length || this.multi !== null || !this.mayForward()) {
      this.waiting.push(req);
      return;
    }
    this.sendNow(req);
  }

  /** A multi-key get is answered in pieces (multiget.ts); everything else goes upstream as it is. */
  private sendNow(req: Request): void {
    if (isMultiGet(req)) {
      const limits = this.ctx.limits;
      this.multi = new MultiGet(req, this, limits.maxValueBytes, limits.maxPendingReplyBytesPerSession);
      this.multi.pump();
      return;
    }
    const link = this.upstreamLink();
    this.forwarded++;
    link.send(req);
  }

  /**
   * The link to send on: the current one, or, with nothing in flight, a new
   * one when a reload replaced the cluster or the tenant's pool changed
   * (order cannot be lost then).
   */
  private upstreamLink(): UpstreamLink {
    const link = this.link;
    const cluster = this.ctx.pool;
    const tenant = this.tenant;
    const pool = tenant?.policy.pool ?? DEFAULT_POOL;
    if (link !== null && link.cluster === cluster && link.pool.name === pool) return link;
    // the same tenant waits for its requests in flight (a server may be in both); another tenant
    // (a new SASL AUTH) never sends to the previous one's pool: their keyspaces are apart anyway
    if (link !== null && link.hasInFlight && this.linkTenant === tenant) return link;
    const next = cluster.link(pool, this.id);
    this.link = next;
    this.linkTenant = tenant;
    return next;
  }

  /** The session sends on `cluster`, or has requests in flight there (a reload closes an old one when unused). */
  usesUpstream(cluster: UpstreamCluster): boolean {
    return this.link !== null && this.link.cluster === cluster && this.link.hasInFlight;
  }

  // ---- MultiGetHost ----

  sendUpstream(req: Request): void {
    this.upstreamLink().send(req);
  }

  onBackendMiss(parent: Request): void {
    const t = this.tenant;
    if (t === null) return;
    countOutcome(t.counters, parent.cmd, Outcome.BACKEND_MISS);
    parent.outcomeCounted = true;
  }

  onMultiGetProgress(): void {
    if (this.closed || this.flushScheduled) return;
    this.flushScheduled = true;
    process.nextTick(this.flushBound);
  }

  replyBudgetLeft(): number {
    const held = this.multi?.heldAndReservedBytes ?? 0;
    const bound = this.ctx.limits.maxPendingReplyBytesPerSession;
    return bound - this.socket.writableLength - held - this.forwarded * this.largestReplyBytes;
  }

  isIdleApartFrom(): boolean {
    return this.forwarded === 0 && this.socket.writableLength < this.ctx.limits.maxPendingReplyBytesPerSession;
  }

  /** Writes what the multi-get at the head has ready; true once its reply is complete. */
  private writeMultiGet(req: Request, batch: WriteBatch): boolean {
    const m = this.multi;
    return m !== null && m.parent === req && m.writeReady(batch, this.socket.writableLength);
  }

  private mayForward(): boolean {
    const bound = this.ctx.limits.maxPendingReplyBytesPerSession;
    if (this.socket.writableLength >= bound) return false;
    const largest = this.largestReplyBytes;
    const window =
      largest > 0 ? Math.max(1, Math.min(MAX_FORWARD_WINDOW, Math.floor(bound / largest))) : FIRST_FORWARD_WINDOW;
    return this.forwarded < window;
  }

  /** Forwards waiting requests, in order, while the window allows. */
  private pumpWaiting(): void {
    if (this.pumping || this.closed) return;
    this.pumping = true;
    const m = this.multi;
    if (m !== null) {
      if (m.finished) this.multi = null;
      else m.pump();
    }
    while (this.waitingHead < this.waiting.length && this.multi === null && this.mayForward()) {
      const r = this.waiting[this.waitingHead];
      this.waiting[this.waitingHead++] = undefined;
      if (r !== undefined) this.sendNow(r);
    }
    if (this.waitingHead === this.waiting.length) {
      this.waiting.length = 0;
      this.waitingHead = 0;
    }
    this.pumping = false;
  }

  /** Requests after the one being answered are held, reading paused, until afterLocalWork (a rotation, an auth check, a delay). */
  holdForLocalWork(): void {
    this.held = [];
    this.setPause(PauseReason.LOCAL_WORK);
  }

  /** The local work is done: `req` gets its reply, and the requests held after it run (or are held again). */
  afterLocalWork(req: Request, reply: Buffer, status: ReplyStatus): void {
    fillSlot(req, reply, status);
    const held = this.held;
    this.held = null;
    this.clearPause(PauseReason.LOCAL_WORK);
    if (held !== null) {
      // another flush_all or auth among the held requests holds the ones after it again;
      // once the stream is ending, the rest get no reply (their slots are emptied)
      for (const r of held) {
        if (this.cutOffFlag) fillSlot(r, null, ReplyStatus.NONE);
        else this.dispatchOrHold(r);
      }
    }
    this.flush();
  }

  private dispatchOrHold(req: Request): void {
    if (this.held !== null) this.held.push(req);
    else this.dispatch(req);
  }

  /** A tenant's smaller item limit makes the parser swallow larger values without buffering them. */
  applyTenantLimits(t: TenantRuntime): void {
    if (!(this.parser instanceof RequestParser)) return; // the binary parser is made with the tenant's limit
    const item = t.policy.limits.maxItemBytes;
    this.parser.setMaxValueBytes(
      item > 0 ? Math.min(item, this.ctx.limits.maxValueBytes) : this.ctx.limits.maxValueBytes,
    );
  }

  /** No bytes for idleTimeoutMs: close the connection if nothing is owed to it. */
  private onSocketTimeout(): void {
    if (this.closed) return;
    const idle = this.ctx.limits.idleTimeoutMs;
    if (idle > 0 && this.queue.length === 0 && this.held === null) {
      this.log.debug({ peer: this.peer }, 'closing an idle connection');
      if (this.tenant !== null) this.tenant.counters.idleKicks++;
      this.socket.destroy();
    }
  }

  onMemoryRelief(): void {
    this.clearPause(PauseReason.MEMORY_WATERMARK);
  }

  // ---- output ----

  onReply(req: Request): void {
    this.forwarded--;
    req.upstreamLink?.answered(req);
    if (req.oversizedSet) answerOversizedSet(req);
    const bytes = req.reply === null ? 0 : partsBytes(req.reply);
    if (bytes > this.largestReplyBytes) this.largestReplyBytes = bytes;
    if (this.closed || this.flushScheduled) return;
    // an earlier slot is still empty: nothing to write yet (unless a multi-get waits for the window)
    if (this.queue.peek() !== req && this.multi === null) return;
    this.flushScheduled = true;
    process.nextTick(this.flushBound);
  }

  /** Writes every filled slot from the head, in order; never past an empty head. */
  private flush(): void {
    this.flushScheduled = false;
    if (this.closed) return;
    const socket = this.socket;
    const counters = this.tenant?.counters;
    const nowMs = performance.now();
    const batch = replyBatch;
    let req = this.queue.peek();
    while (req !== undefined && (req.done || this.writeMultiGet(req, batch))) {
      if (counters !== undefined) accountReply(counters, req, nowMs);
      if (req.reply === STATS_AT_FLUSH) {
        const t = this.tenant;
        const version = t === null ? null : this.ctx.pool.pool(t.policy.pool).serverVersion;
        req.reply = t === null ? null : [tenantStatsReply(t, this.ctx.version, version, batch.bytes)];
      }
      const reply = req.binary !== null ? encodeBinaryReply(req) : isReplyHidden(req) ? null : req.reply;
      if (reply !== null) {
        for (let i = 0; i < reply.length; i++) {
          const b = reply[i];
          if (b !== undefined) batch.push(b);
        }
      }
      this.queue.shift();
      req.reply = null;
      req.value = null;
      req = this.queue.peek();
    }
    if (!batch.isEmpty) {
      if (counters !== undefined) counters.bytesWritten += batch.bytes;
      batch.writeTo(socket);
    }
    if (this.waitingHead < this.waiting.length || this.multi !== null) this.pumpWaiting();
    if (this.ending && this.queue.length === 0) {
      this.closeGracefully();
      return;
    }
    if (this.queue.length <= this.ctx.limits.maxInFlightPerSession) this.clearPause(PauseReason.IN_FLIGHT_LIMIT);
    if (socket.writableLength > this.ctx.limits.maxPendingReplyBytesPerSession) {
      this.setPause(PauseReason.CLIENT_WRITE_BLOCKED);
    }
  }

  // ---- pause / close ----

  private setPause(reason: number): void {
    if (this.pauseReasons === 0) {
      this.socket.pause();
      this.pausedAtMs = performance.now();
    }
    this.pauseReasons |= reason;
  }

  private clearPause(reason: number): void {
    if ((this.pauseReasons & reason) === 0) return;
    this.pauseReasons &= ~reason;
    if (this.pauseReasons !== 0) return;
    if (this.requestDeadlineMs !== 0) this.requestDeadlineMs += performance.now() - this.pausedAtMs;
    if (!this.closed && !this.ending) this.socket.resume();
  }

  /** Queues `reply` after the replies already owed, then closes. */
  endWith(reply: Buffer): void {
    if (this.ending || this.closed) return;
    const req = new Request();
    req.reply = [reply];
    req.status = ReplyStatus.ERROR;
    req.done = true;
    this.queue.push(req);
    this.cutOffStream();
    this.flush();
  }

  private closeGracefully(): void {
    if (this.closed) return;
    endAndRelease(this.socket);
  }

  /** A request ended the stream: nothing more is read, and nothing after it is answered (cutOffFlag). */
  cutOffStream(): void {
    this.cutOffFlag = true;
    this.ending = true;
  }

  /**
   * Graceful end (shutdown, or the client shut down its sending side): read
   * nothing more, answer every request already received (held ones too), then
   * close.
   */
  drain(): void {
    if (this.closed) return;
    this.ending = true;
    if (this.queue.length === 0) this.closeGracefully();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Closes at once (config reload removed the tenant, shutdown deadline). */
  destroy(): void {
    this.socket.destroy();
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.clear();
    this.multi?.abandon();
    this.multi = null;
    requestDeadlines.unwatch(this);
    this.ctx.memory.forget(this);
    this.auth.release();
    this.ctx.onSessionClosed(this);
  }
}
