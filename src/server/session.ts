/**
 * One client connection: bytes in → parse → authorize → forward, and replies
 * out in request order.
 *
 *   socket 'data' ─▶ RequestParser ─▶ onRequest ─┬─▶ local reply (denial, stats, error)
 *                                                └─▶ UpstreamLink.send ─▶ onReply
 *   flush(): write every filled slot from the head of the ReplyQueue
 *
 * Reading pauses while any pause reason is set (client not reading its
 * replies, too many requests in flight, upstream socket full, a flush_all
 * rotation being made durable) and resumes when none is.
 */
import type net from 'node:net';
import {
  countOutcome,
  observeLatencyUs,
  Outcome,
  type ProcessCounters,
  type TenantCounters,
} from '../admin/counters.js';
import type { Logger } from 'pino';
import { Cmd, CommandClass, COMMAND_BY_ID } from '../protocol/text/commands.js';
import { partsBytes, secondsUntil } from '../protocol/text/bytes.js';
import { Replies } from '../protocol/text/replies.js';
import { Request, ReplyStatus, type ReplyOwner, type RequestSink } from '../protocol/text/request.js';
import { RequestParser } from '../protocol/text/request-parser.js';
import { BinaryRequestParser } from '../protocol/binary/parser.js';
import { encodeBinaryReply, binaryNoop, binarySaslMechanisms } from '../protocol/binary/reply.js';
import { isPlainMechanism, parseSaslPlain, SASL_MAX_BODY_BYTES } from '../protocol/binary/sasl.js';
import { DENY_REPLY, Disposition, TENANT_DISPOSITION, rightsDenial, statsGroupDenial } from '../policy/command-deny.js';
import { Rights } from '../policy/compile.js';
import { Admit, ADMIT_NAMES } from '../policy/rate-limit.js';
import type { AuditSampler } from './audit.js';
import type { Authenticator } from './auth.js';
import type { ConnectionLimiter } from './conn-limits.js';
import type { MemoryGuard, MemoryRelief } from './memory-guard.js';
import { checkEnforcedKeys, checkNamespacedKeys } from '../policy/key-prefix.js';
import type { UpstreamCluster, UpstreamLink } from '../upstream/cluster.js';
import { DEFAULT_POOL } from '../config/schema.js';
import { WriteBatch } from '../upstream/write-batch.js';
import { endAndRelease } from './close.js';
import { isMultiGet, MultiGet, type MultiGetHost } from './multiget.js';
import { ReplyQueue } from './reply-queue.js';
import { deferTenantStats, STATS_AT_FLUSH, tenantStatsReply } from './tenant-stats.js';
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

const WHITESPACE = 0x20;
const BINARY_REQUEST_MAGIC = 0x80;
/** Most requests one session has upstream at once (replies of unknown size are buffered as they arrive). */
const MAX_FORWARD_WINDOW = 256;
/** ...and before the first reply has told how large replies are. */
const FIRST_FORWARD_WINDOW = 32;

/** Longest line before authentication: `set <key> <flags> <exptime> <bytes>` with a 250-byte key fits. */
const PRE_AUTH_LINE_BYTES = 1024;

/** One session's replies of one flush; shared, since a flush fills and writes it synchronously. */
const replyBatch = new WriteBatch();

export class ClientSession implements RequestSink, ReplyOwner, MemoryRelief, MultiGetHost, DeadlineMember {
  readonly id: number;
  readonly socket: net.Socket;
  readonly peer: string;
  tenant: TenantRuntime | null;
  /** what the credential that identified the connection allows */
  rights: Rights;
  /** identified by a password (ASCII auth, SASL), not by listener, network or certificate */
  private byPassword: boolean;
  private authFailures: number;
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
  /** the tenant this connection was counted against in the connection limiter */
  private limiterTenant: string | null;
  /** closes an unidentified connection that does not authenticate in time */
  private authTimer: NodeJS.Timeout | null;
  /** monotonic ms by which the request in progress must be whole; 0 when no request is in progress */
  requestDeadlineMs: number;
  /** requests the parser has delivered, and how many it had when the deadline was set */
  private received: number;
  private receivedAtDeadline: number;
  /** when reading last paused: time not reading is not the client's, so it moves the deadline */
  private pausedAtMs: number;

  constructor(id: number, socket: net.Socket, ctx: SessionContext, tenant: TenantRuntime | null, log: Logger) {
    this.id = id;
    this.socket = socket;
    this.peer = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
    this.ctx = ctx;
    this.log = log;
    this.tenant = tenant;
    this.rights = Rights.READ_WRITE;
    this.byPassword = false;
    this.authFailures = 0;
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
    this.limiterTenant = tenant?.policy.name ?? null;
    this.authTimer = null;
    this.requestDeadlineMs = 0;
    this.received = 0;
    this.receivedAtDeadline = 0;
    this.pausedAtMs = 0;
    if (tenant !== null) {
      tenant.counters.currConnections++;
      tenant.counters.totalConnections++;
      this.applyTenantLimits(tenant);
    } else {
      this.authTimer = setTimeout(() => this.onAuthTimeout(), ctx.limits.authTimeoutMs);
      this.authTimer.unref();
    }
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
  private boundInput(on: boolean): void {
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
      if (req.cmd === Cmd.SET && req.binary === null && (req.error === null || req.error === Replies.TOO_LARGE)) {
        this.authenticate(req);
        return;
      }
      if (req.binary !== null && req.error === null && this.answerSasl(req)) return;
      // memcached closes a connection that sends anything before authenticating
      this.cutOffStream();
      this.complete(req, Replies.UNAUTHENTICATED, ReplyStatus.ERROR);
      return;
    }
    if (req.error !== null || this.isOverItemLimit(t, req)) {
      t.counters.errors++;
      this.complete(req, req.error ?? Replies.TOO_LARGE, ReplyStatus.ERROR);
      return;
    }
    const cmd = req.cmd;
    if (req.binary !== null && this.answerBinaryOnly(req)) return;
    if (cmd === Cmd.QUIT) {
      this.cutOffStream();
      this.complete(req, null, ReplyStatus.NONE);
      return;
    }
    if (this.rights !== Rights.READ_WRITE) {
      const denial = rightsDenial(this.rights, req);
      if (denial !== null) {
        this.noteDenial(req, 'credential rights');
        this.complete(req, denial, ReplyStatus.ERROR);
        return;
      }
    }
    const p = t.policy;
    if (!t.budgets.isUnlimited && this.overBudget(t, req)) return;
    if (p.admin) {
      req.ns = null;
      this.forward(req);
      return;
    }
    const disposition = TENANT_DISPOSITION[cmd];
    if (disposition === Disposition.FORWARD) {
      const ns = t.ns;
      const denial = ns !== null ? checkNamespacedKeys(req, ns.length) : checkEnforcedKeys(req, p.prefixes);
      if (denial !== null) {
        if (denial !== Replies.BAD_FORMAT) this.noteDenial(req, 'key outside the tenant prefixes');
        this.complete(req, denial, ReplyStatus.ERROR);
        return;
      }
      const maxKeys = p.limits.maxKeysPerGet > 0 ? p.limits.maxKeysPerGet : this.ctx.limits.maxKeysPerGet;
      if (req.keys.length > maxKeys * 2) {
        this.complete(req, Replies.TOO_MANY_KEYS, ReplyStatus.ERROR);
        return;
      }
      req.ns = ns;
      this.forward(req);
    } else if (disposition === Disposition.LOCAL) {
      this.answerLocally(t, req);
    } else {
      this.noteDenial(req, 'command not allowed');
      this.complete(req, DENY_REPLY[cmd] ?? Replies.ERROR, ReplyStatus.ERROR);
    }
  }

  /**
   * Charges the tenant's budgets: one op per key (at least one), value bytes
   * for storage. Over budget, the request is answered `SERVER_ERROR rate
   * limited` in its place, or in delay mode held (with everything after it)
   * until the budget allows, up to maxDelayMs. Returns true when the request
   * was taken care of here.
   */
  private overBudget(t: TenantRuntime, req: Request): boolean {
    const spec = COMMAND_BY_ID[req.cmd];
    if (spec === undefined) return false;
    const keys = req.keys.length >> 1;
    const ops = keys > 0 ? keys : 1;
    const bytes = spec.hasValue ? req.bytes : 0;
    const verdict = t.budgets.admit(this.nowMs, spec.klass, ops, bytes);
    if (verdict === Admit.OK) return false;
    // never admissible: refused at once, with its own words, in either mode
    const overBurst = verdict === Admit.RATE_OPS && t.budgets.exceedsOpsBurst(ops);
    if (t.policy.limits.delayOverLimit && !overBurst) {
      const wait = t.budgets.delayMsFor(this.nowMs, spec.klass, ops, bytes);
      if (wait <= t.policy.limits.maxDelayMs) {
        this.held = [];
        this.setPause(PauseReason.LOCAL_WORK);
        setTimeout(() => this.afterDelay(req), wait + 1);
        return true;
      }
    }
    t.counters.rateLimited++;
    t.counters.rateLimitedBy[verdict] = (t.counters.rateLimitedBy[verdict] ?? 0) + 1;
    countOutcome(t.counters, req.cmd, Outcome.RATE_LIMITED);
    req.outcomeCounted = true;
    this.ctx.audit.event(
      'info',
      'rate-limited',
      t.policy.name,
      { peer: this.peer, budget: ADMIT_NAMES[verdict] },
      'request over the rate limit',
    );
    this.complete(req, overBurst ? Replies.OVER_BURST : Replies.RATE_LIMITED, ReplyStatus.ERROR);
    return true;
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

  private answerLocally(t: TenantRuntime, req: Request): void {
    switch (req.cmd) {
      case Cmd.VERBOSITY:
        // answered OK and never forwarded: it must not change the shared server
        this.complete(req, Replies.OK, ReplyStatus.OK);
        return;
      case Cmd.STATS:
        this.answerStats(t, req);
        return;
      case Cmd.FLUSH_ALL:
        this.flushAll(t, req);
        return;
      default:
        this.complete(req, Replies.ERROR, ReplyStatus.ERROR);
    }
  }

  private answerStats(t: TenantRuntime, req: Request): void {
    if (req.argsEnd <= req.argsStart) {
      deferTenantStats(req); // built when written: it counts what is answered before it
      return;
    }
    let end = req.argsStart;
    while (end < req.argsEnd && req.line[end] !== WHITESPACE) end++;
    const denial = statsGroupDenial(req.line, req.argsStart, end);
    if (denial !== undefined) this.noteDenial(req, 'stats group not allowed');
    this.complete(req, denial ?? Replies.ERROR, ReplyStatus.ERROR);
  }

  /**
   * A tenant's flush_all rotates its namespace. Requests after it in the same
   * pipeline must see the new generation, so they are held until the rotation
   * is durable.
   */
  private flushAll(t: TenantRuntime, req: Request): void {
    t.counters.cmdFlush++;
    this.held = [];
    this.setPause(PauseReason.LOCAL_WORK);
    const delay = secondsUntil(req.delay, Date.now()); // over 30 days: an absolute time, as in memcached
    this.ctx.flushTenant(t, delay, this.peer).then(
      () => this.afterLocalWork(req, Replies.OK, ReplyStatus.OK),
      (err: unknown) => {
        this.log.error({ err }, 'flush_all rotation failed');
        this.afterLocalWork(req, Replies.BACKEND_FAILURE, ReplyStatus.ERROR);
      },
    );
  }

  private afterLocalWork(req: Request, reply: Buffer, status: ReplyStatus): void {
    this.complete(req, reply, status);
    const held = this.held;
    this.held = null;
    this.clearPause(PauseReason.LOCAL_WORK);
    if (held !== null) {
      // another flush_all or auth among the held requests holds the ones after it again;
      // once the stream is ending, the rest get no reply (their slots are emptied)
      for (const r of held) {
        if (this.cutOffFlag) this.complete(r, null, ReplyStatus.NONE);
        else this.dispatchOrHold(r);
      }
    }
    this.flush();
  }

  private dispatchOrHold(req: Request): void {
    if (this.held !== null) this.held.push(req);
    else this.dispatch(req);
  }

  /**
   * memcached's ASCII auth: the first command is `set <any> <flags> <exptime> <bytes>`
   * whose data is "<username> <password>" (or, with `auth.usernameAsKey`, the
   * key is the user name and the data the password). Requests after it wait
   * until the check is done.
   */
  private authenticate(req: Request): void {
    const settings = this.ctx.auth;
    if (req.bytes > settings.maxTokenBytes) {
      this.cutOffStream();
      this.complete(req, Replies.AUTH_TOKEN_TOO_LONG, ReplyStatus.ERROR);
      return;
    }
    const token = req.value === null ? Buffer.alloc(0) : Buffer.concat(req.value);
    const space = token.indexOf(0x20);
    let user: Buffer;
    let password: Buffer;
    if (space > 0) {
      user = token.subarray(0, space);
      password = token.subarray(space + 1);
    } else if (settings.usernameAsKey && req.keys.length >= 2) {
      user = req.line.subarray(req.keys[0], req.keys[1]);
      password = token;
    } else {
      user = token;
      password = Buffer.alloc(0);
    }
    this.checkCredentials(req, user, password);
  }

  /**
   * Binary SASL before authentication: LIST_MECHS answers PLAIN, AUTH with
   * PLAIN checks the credentials like ASCII auth does. Returns false for any
   * other command (the caller refuses it).
   */
  private answerSasl(req: Request): boolean {
    switch (req.cmd) {
      case Cmd.SASL_LIST_MECHS:
        this.complete(req, binarySaslMechanisms(req), ReplyStatus.OK);
        return true;
      case Cmd.SASL_AUTH: {
        const plain =
          req.keys.length >= 2 && isPlainMechanism(req.line, req.keys[0] ?? 0, req.keys[1] ?? 0)
            ? parseSaslPlain(req.value)
            : null;
        if (plain === null) {
          this.authFailures++;
          if (this.authFailures >= this.ctx.auth.maxFailuresPerConnection) this.cutOffStream();
          this.complete(req, Replies.AUTH_FAILURE, ReplyStatus.ERROR);
        } else {
          this.checkCredentials(req, plain.user, plain.password);
        }
        return true;
      }
      case Cmd.SASL_STEP:
        this.complete(req, Replies.AUTH_FAILURE, ReplyStatus.ERROR);
        return true;
      default:
        return false;
    }
  }

  /** Binary commands memgate answers itself once the connection has a tenant. */
  private answerBinaryOnly(req: Request): boolean {
    switch (req.cmd) {
      case Cmd.BIN_NOOP:
        this.complete(req, binaryNoop(req), ReplyStatus.OK);
        return true;
      case Cmd.SASL_AUTH:
        // memcached: a new AUTH first unauthenticates the connection, so a failed one
        // never leaves it acting as the identity of an earlier AUTH
        if (this.byPassword) {
          this.unauthenticate();
          return this.answerSasl(req);
        }
        this.complete(req, Replies.AUTH_FAILURE, ReplyStatus.ERROR);
        return true;
      case Cmd.SASL_LIST_MECHS:
      case Cmd.SASL_STEP:
        // already identified (by certificate, listener or network, or an earlier AUTH)
        if (req.cmd === Cmd.SASL_LIST_MECHS) this.complete(req, binarySaslMechanisms(req), ReplyStatus.OK);
        else this.complete(req, Replies.AUTH_FAILURE, ReplyStatus.ERROR);
        return true;
      default:
        return false;
    }
  }

  /** Verifies a user name and password (ASCII auth, SASL PLAIN); requests after it wait. */
  private checkCredentials(req: Request, user: Buffer, password: Buffer): void {
    const settings = this.ctx.auth;
    this.held = [];
    this.setPause(PauseReason.LOCAL_WORK);
    this.boundInput(false);
    const addr = this.socket.remoteAddress ?? '';
    this.ctx.authenticator.verify(user, password, addr).then(
      (result) => {
        if (this.closed) return;
        if (result.ok) {
          const t = this.ctx.tenants.get(result.tenant);
          if (t !== undefined && !t.removed) {
            if (this.identifyAs(t, result.rights)) {
              this.byPassword = true;
              this.afterLocalWork(req, Replies.STORED, ReplyStatus.STORED);
            } else {
              // memcached's words when it refuses a connection
              this.cutOffStream();
              this.afterLocalWork(req, Replies.TOO_MANY_CONNECTIONS, ReplyStatus.ERROR);
            }
            return;
          }
        }
        this.authFailures++;
        this.boundInput(true);
        if (!result.ok && (result.lockedOut || this.authFailures >= settings.maxFailuresPerConnection)) {
          this.cutOffStream();
        }
        const busy = !result.ok && result.busy;
        this.afterLocalWork(req, busy ? Replies.AUTH_BUSY : Replies.AUTH_FAILURE, ReplyStatus.ERROR);
      },
      (err: unknown) => {
        this.log.error({ err }, 'authentication check failed');
        this.cutOffStream();
        this.afterLocalWork(req, Replies.AUTH_FAILURE, ReplyStatus.ERROR);
      },
    );
  }

  /** The connection is now `t`'s, with `rights` (authentication, TLS certificate). */
  identifyAs(t: TenantRuntime, rights: Rights): boolean {
    if (this.ctx.connections.tryAttachTenant(t.policy.name) !== 0) return false;
    this.limiterTenant = t.policy.name;
    this.tenant = t;
    this.rights = rights;
    t.counters.currConnections++;
    t.counters.totalConnections++;
    this.applyTenantLimits(t);
    if (this.authTimer !== null) clearTimeout(this.authTimer);
    this.authTimer = null;
    return true;
  }

  /**
   * The tenant's item limit, checked on every request: the parser applies it
   * only to values whose header it reads after the tenant is known, and a value
   * pipelined behind an authentication, or sent on a binary session, was read
   * under the global limit. Its bytes are already swallowed; it is dropped here.
   */
  private isOverItemLimit(t: TenantRuntime, req: Request): boolean {
    const item = t.policy.limits.maxItemBytes;
    if (item <= 0 || req.bytes <= item || COMMAND_BY_ID[req.cmd]?.hasValue !== true) return false;
    req.value = null;
    return true;
  }

  /** The connection is no longer its password identity's (a new SASL AUTH is being checked). */
  private unauthenticate(): void {
    const t = this.tenant;
    if (t === null) return;
    if (this.limiterTenant !== null) this.ctx.connections.detachTenant(this.limiterTenant);
    this.limiterTenant = null;
    t.counters.currConnections--;
    this.tenant = null;
    this.byPassword = false;
    this.rights = Rights.READ_WRITE;
    this.boundInput(true);
    this.authTimer = setTimeout(() => this.onAuthTimeout(), this.ctx.limits.authTimeoutMs);
    this.authTimer.unref();
  }

  /** A tenant's smaller item limit makes the parser swallow larger values without buffering them. */
  private applyTenantLimits(t: TenantRuntime): void {
    if (!(this.parser instanceof RequestParser)) return; // the binary parser is made with the tenant's limit
    const item = t.policy.limits.maxItemBytes;
    this.parser.setMaxValueBytes(
      item > 0 ? Math.min(item, this.ctx.limits.maxValueBytes) : this.ctx.limits.maxValueBytes,
    );
  }

  private onAuthTimeout(): void {
    this.authTimer = null;
    if (this.tenant !== null || this.closed) return;
    this.log.info({ audit: 'auth-timeout', peer: this.peer }, 'closing a connection that did not authenticate in time');
    this.socket.destroy();
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

  private noteDenial(req: Request, reason: string): void {
    const t = this.tenant;
    if (t === null) return;
    t.counters.denied++;
    countOutcome(t.counters, req.cmd, Outcome.DENIED);
    req.outcomeCounted = true;
    const command = COMMAND_BY_ID[req.cmd]?.name ?? 'unknown';
    this.ctx.audit.event('info', 'denied', t.policy.name, { peer: this.peer, command, reason }, 'request denied');
  }

  private complete(req: Request, reply: Buffer | null, status: ReplyStatus): void {
    req.reply = reply === null ? null : [reply];
    req.status = status;
    req.done = true;
  }

  // ---- output ----

  onReply(req: Request): void {
    this.forwarded--;
    req.upstreamLink?.answered(req);
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
      if (counters !== undefined) account(counters, req, nowMs);
      if (req.reply === STATS_AT_FLUSH) {
        const t = this.tenant;
        const version = t === null ? null : this.ctx.pool.pool(t.policy.pool).serverVersion;
        req.reply = t === null ? null : [tenantStatsReply(t, this.ctx.version, version, batch.bytes)];
      }
      const reply = req.binary !== null ? encodeBinaryReply(req) : isHidden(req) ? null : req.reply;
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
  private cutOffStream(): void {
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
    if (this.authTimer !== null) clearTimeout(this.authTimer);
    requestDeadlines.unwatch(this);
    this.ctx.memory.forget(this);
    // the listener releases the connection itself (counted at TCP accept) when the socket closes
    if (this.limiterTenant !== null) this.ctx.connections.detachTenant(this.limiterTenant);
    if (this.tenant !== null) this.tenant.counters.currConnections--;
    this.ctx.onSessionClosed(this);
  }
}

/** noreply hides everything but errors; meta q hides EN on mg and HD on ms, md, ma. */
function isHidden(req: Request): boolean {
  if (req.noreply) return req.status !== ReplyStatus.ERROR;
  if (!req.metaQuiet) return false;
  if (req.cmd === Cmd.MG) return req.status === ReplyStatus.MISS;
  return req.status === ReplyStatus.HD;
}

/** Tenant stats from a completed request, in memcached's terms. */
function account(c: TenantCounters, req: Request, nowMs: number): void {
  const spec = COMMAND_BY_ID[req.cmd];
  if (spec === undefined) return;
  const s = req.status;
  if (req.sentAtMs > 0) observeLatencyUs(c, spec.klass, (nowMs - req.sentAtMs) * 1000);
  // denials and rate limits were counted where they were decided
  if (s === ReplyStatus.ERROR) {
    if (!req.outcomeCounted) countOutcome(c, req.cmd, Outcome.ERROR);
    return;
  }
  // a multi-get with keys on a down server was counted as backend_miss (onBackendMiss)
  if (!req.outcomeCounted) {
    countOutcome(c, req.cmd, s === ReplyStatus.MISS || s === ReplyStatus.NOT_FOUND ? Outcome.MISS : Outcome.OK);
  }
  switch (spec.klass) {
    case CommandClass.READ: {
      if (req.cmd === Cmd.ME) return;
      const keys = req.keys.length >> 1;
      c.cmdGet += keys;
      c.getHits += req.hits;
      c.getMisses += keys - req.hits;
      if (req.cmd === Cmd.GAT || req.cmd === Cmd.GATS) {
        c.cmdTouch += keys;
        c.touchHits += req.hits;
        c.touchMisses += keys - req.hits;
      }
      return;
    }
    case CommandClass.WRITE:
      c.cmdSet++;
      if (req.cmd === Cmd.CAS) {
        if (s === ReplyStatus.STORED) c.casHits++;
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
      if (req.cmd === Cmd.DECR) {
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
