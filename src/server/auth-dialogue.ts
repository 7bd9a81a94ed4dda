/**
 * Who a connection is: the authentication dialogue of one client session.
 *
 *   not identified ──ASCII auth (set + "<user> <password>") or SASL PLAIN──▶ identified
 *        │   anything else: CLIENT_ERROR unauthenticated, then close              │
 *        └── authTimeoutMs without a tenant: close          a new SASL AUTH ──────┘
 *                                                           (by password only) unauthenticates first
 *
 * A connection identified by its listener, network or TLS certificate starts
 * identified. Checking a password is asynchronous (scrypt, a lock-out
 * check): the session holds the requests after the attempt, reading paused,
 * until it is decided, so they run under the identity it yields.
 *
 * The dialogue owns the identity's bookkeeping: the tenant's connection
 * counters, the connection limiter's per-tenant count and the auth timer. The
 * session keeps `tenant` and `rights` (every request reads them) and lends
 * what the dialogue needs through AuthHost.
 */
import type net from 'node:net';
import type { Logger } from 'pino';
import { isPlainMechanism, parseSaslPlain } from '../protocol/binary/sasl.js';
import { binarySaslMechanisms } from '../protocol/binary/reply.js';
import { Cmd } from '../protocol/text/commands.js';
import { Replies } from '../protocol/text/replies.js';
import { ReplyStatus, type Request } from '../protocol/text/request.js';
import { Rights } from '../policy/compile.js';
import type { LocalAnswerHost } from './local-answers.js';
import { fillSlot } from './reply-queue.js';
import type { SessionContext } from './session.js';
import type { TenantRuntime } from './tenants.js';

/** What the dialogue needs of its session (ClientSession): a local answer's needs, and the identity. */
export interface AuthHost extends LocalAnswerHost {
  tenant: TenantRuntime | null;
  rights: Rights;
  readonly socket: net.Socket;
  readonly isClosed: boolean;
  /** bounds the input to one authentication (on), or lifts the bound */
  boundInput(on: boolean): void;
  /** the tenant's item limit for the parser */
  applyTenantLimits(t: TenantRuntime): void;
}

export class AuthDialogue {
  private readonly host: AuthHost;
  private readonly ctx: SessionContext;
  private readonly log: Logger;
  /** identified by a password (ASCII auth, SASL), not by listener, network or certificate */
  private byPassword: boolean;
  private failures: number;
  /** the tenant this connection was counted against in the connection limiter */
  private limiterTenant: string | null;
  /** closes an unidentified connection that does not authenticate in time */
  private timer: NodeJS.Timeout | null;

  /** `tenant`: the identity the listener gave the connection (already attached to the limiter), or null. */
  constructor(host: AuthHost, ctx: SessionContext, log: Logger, tenant: TenantRuntime | null) {
    this.host = host;
    this.ctx = ctx;
    this.log = log;
    this.byPassword = false;
    this.failures = 0;
    this.limiterTenant = tenant?.policy.name ?? null;
    this.timer = null;
    if (tenant !== null) {
      tenant.counters.currConnections++;
      tenant.counters.totalConnections++;
    } else {
      this.startTimer();
    }
  }

  /**
   * A request before the connection has a tenant: an authentication, or
   * (memcached closes a connection that sends anything else first)
   * `CLIENT_ERROR unauthenticated` and the end of the stream.
   */
  answerUnidentified(req: Request): void {
    if (req.cmd === Cmd.SET && req.binary === null && (req.error === null || req.error === Replies.TOO_LARGE)) {
      this.authenticate(req);
      return;
    }
    if (req.binary !== null && req.error === null && this.answerSasl(req)) return;
    this.host.cutOffStream();
    fillSlot(req, Replies.UNAUTHENTICATED, ReplyStatus.ERROR);
  }

  /** Binary SASL once the connection has a tenant. */
  answerIdentified(req: Request): void {
    switch (req.cmd) {
      case Cmd.SASL_AUTH:
        // memcached: a new AUTH first unauthenticates the connection, so a failed one
        // never leaves it acting as the identity of an earlier AUTH
        if (this.byPassword) {
          this.unauthenticate();
          this.answerSasl(req);
          return;
        }
        fillSlot(req, Replies.AUTH_FAILURE, ReplyStatus.ERROR);
        return;
      case Cmd.SASL_LIST_MECHS:
        // already identified (by certificate, listener or network, or an earlier AUTH)
        fillSlot(req, binarySaslMechanisms(req), ReplyStatus.OK);
        return;
      default:
        fillSlot(req, Replies.AUTH_FAILURE, ReplyStatus.ERROR);
    }
  }

  /** The connection is now `t`'s, with `rights`; false when the tenant's connection limit refuses it. */
  identifyAs(t: TenantRuntime, rights: Rights): boolean {
    if (this.ctx.connections.tryAttachTenant(t.policy.name) !== 0) return false;
    this.limiterTenant = t.policy.name;
    const host = this.host;
    host.tenant = t;
    host.rights = rights;
    t.counters.currConnections++;
    t.counters.totalConnections++;
    host.applyTenantLimits(t);
    this.stopTimer();
    return true;
  }

  /** The connection closed: its identity's counts are given back. */
  release(): void {
    this.stopTimer();
    // the listener releases the connection itself (counted at TCP accept) when the socket closes
    if (this.limiterTenant !== null) this.ctx.connections.detachTenant(this.limiterTenant);
    const t = this.host.tenant;
    if (t !== null) t.counters.currConnections--;
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
      this.host.cutOffStream();
      fillSlot(req, Replies.AUTH_TOKEN_TOO_LONG, ReplyStatus.ERROR);
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
        fillSlot(req, binarySaslMechanisms(req), ReplyStatus.OK);
        return true;
      case Cmd.SASL_AUTH: {
        const plain =
          req.keys.length >= 2 && isPlainMechanism(req.line, req.keys[0] ?? 0, req.keys[1] ?? 0)
            ? parseSaslPlain(req.value)
            : null;
        if (plain === null) {
          this.failures++;
          if (this.failures >= this.ctx.auth.maxFailuresPerConnection) this.host.cutOffStream();
          fillSlot(req, Replies.AUTH_FAILURE, ReplyStatus.ERROR);
        } else {
          this.checkCredentials(req, plain.user, plain.password);
        }
        return true;
      }
      case Cmd.SASL_STEP:
        fillSlot(req, Replies.AUTH_FAILURE, ReplyStatus.ERROR);
        return true;
      default:
        return false;
    }
  }

  /** Verifies a user name and password (ASCII auth, SASL PLAIN); requests after it wait. */
  private checkCredentials(req: Request, user: Buffer, password: Buffer): void {
    const settings = this.ctx.auth;
    const host = this.host;
    host.holdForLocalWork();
    host.boundInput(false);
    const addr = host.socket.remoteAddress ?? '';
    this.ctx.authenticator.verify(user, password, addr).then(
      (result) => {
        if (host.isClosed) return;
        if (result.ok) {
          const t = this.ctx.tenants.get(result.tenant);
          if (t !== undefined && !t.removed) {
            if (this.identifyAs(t, result.rights)) {
              this.byPassword = true;
              host.afterLocalWork(req, Replies.STORED, ReplyStatus.STORED);
            } else {
              // memcached's words when it refuses a connection
              host.cutOffStream();
              host.afterLocalWork(req, Replies.TOO_MANY_CONNECTIONS, ReplyStatus.ERROR);
            }
            return;
          }
        }
        this.failures++;
        host.boundInput(true);
        if (!result.ok && (result.lockedOut || this.failures >= settings.maxFailuresPerConnection)) {
          host.cutOffStream();
        }
        const busy = !result.ok && result.busy;
        host.afterLocalWork(req, busy ? Replies.AUTH_BUSY : Replies.AUTH_FAILURE, ReplyStatus.ERROR);
      },
      (err: unknown) => {
        this.log.error({ err }, 'authentication check failed');
        host.cutOffStream();
        host.afterLocalWork(req, Replies.AUTH_FAILURE, ReplyStatus.ERROR);
      },
    );
  }

  /** The connection is no longer its password identity's (a new SASL AUTH is being checked). */
  private unauthenticate(): void {
    const host = this.host;
    const t = host.tenant;
    if (t === null) return;
    if (this.limiterTenant !== null) this.ctx.connections.detachTenant(this.limiterTenant);
    this.limiterTenant = null;
    t.counters.currConnections--;
    host.tenant = null;
    this.byPassword = false;
    host.rights = Rights.READ_WRITE;
    host.boundInput(true);
    this.startTimer();
  }

  private startTimer(): void {
    this.timer = setTimeout(() => this.onTimeout(), this.ctx.limits.authTimeoutMs);
    this.timer.unref();
  }

  private stopTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private onTimeout(): void {
    this.timer = null;
    const host = this.host;
    if (host.tenant !== null || host.isClosed) return;
    this.log.info({ audit: 'auth-timeout', peer: host.peer }, 'closing a connection that did not authenticate in time');
    host.socket.destroy();
  }
}
