/**
 * TCP listeners. Each accepted connection becomes a ClientSession, identified
 * by the listener's bound tenant or by its source network.
 */
import { constants as cryptoConstants } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { Rights } from '../policy/compile.js';
import { Replies } from '../protocol/text/replies.js';
import { addressKey } from '../config/cidr.js';
import { endAndRelease } from './close.js';
import { CONN_REJECT_NAMES, ConnReject } from './conn-limits.js';
import { ClientSession, type SessionContext } from './session.js';
import type { TenantRuntime } from './tenants.js';

export interface TlsSpec {
  readonly cert: string;
  readonly key: string;
  readonly ca?: string | undefined;
  readonly requireClientCert?: boolean | undefined;
}

export interface ListenerSpec {
  readonly host: string;
  readonly port: number;
  readonly tenant?: string | undefined;
  readonly tls?: TlsSpec | undefined;
}

function readTlsFiles(spec: TlsSpec): tls.SecureContextOptions {
  return {
    cert: fs.readFileSync(spec.cert),
    key: fs.readFileSync(spec.key),
    ...(spec.ca !== undefined ? { ca: fs.readFileSync(spec.ca) } : {}),
  };
}

export class Listener {
  readonly spec: ListenerSpec;
  private readonly server: net.Server;
  private readonly ctx: SessionContext;
  private readonly log: Logger;
  private readonly sessions: Set<ClientSession>;
  private nextId: () => number;

  constructor(
    spec: ListenerSpec,
    ctx: SessionContext,
    sessions: Set<ClientSession>,
    nextId: () => number,
    log: Logger,
  ) {
    this.spec = spec;
    this.ctx = ctx;
    this.sessions = sessions;
    this.nextId = nextId;
    this.log = log;
    // allowHalfOpen: a client that shuts down its sending side (`nc`, `printf … | nc -q1`) still gets the
    // replies to what it sent, as from memcached; the session ends its side once they are written
    const socketOpts = { noDelay: true, keepAlive: true, keepAliveInitialDelay: 60_000, allowHalfOpen: true };
    const t = spec.tls;
    if (t === undefined) {
      this.server = net.createServer(socketOpts);
      this.server.on('connection', (socket: net.Socket) => {
        if (this.admit(socket, true)) this.accept(socket);
      });
    } else {
      const requestCert = t.ca !== undefined;
      this.server = tls.createServer(
        {
          ...socketOpts,
          // half-open only once the handshake is done (accept): a client that closes before it must be
          // released at once, not when the handshake times out
          allowHalfOpen: false,
          ...readTlsFiles(t),
          requestCert,
          // with a CA, clients without a verified certificate fail the handshake unless told otherwise
          rejectUnauthorized: requestCert && t.requireClientCert !== false,
          minVersion: 'TLSv1.2',
          // a silent TCP connection must not hold a descriptor for node's default two minutes
          handshakeTimeout: ctx.limits.authTimeoutMs,
          secureOptions: tlsSecureOptions(requestCert),
        },
        (socket) => this.accept(socket),
      );
      // counted at TCP accept, before the handshake (tls.Server's own 'connection' listener ran first)
      this.server.on('connection', (socket: net.Socket) => this.admit(socket, false));
      // with a listener here, node leaves the failed socket open (a handshake timeout too): close it
      this.server.on('tlsClientError', (err, socket) => {
        // sampled: a flood of silent or refused connections must not flood the log
        const fields = { err: err.message, peer: socket.remoteAddress };
        this.ctx.audit.event('info', 'tls-handshake-failed', '-', fields, 'TLS handshake failed');
        socket.destroy();
      });
    }
    this.server.on('error', (err) => this.log.error({ err, host: spec.host, port: spec.port }, 'listener error'));
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      // a deep accept queue: a burst of connections must not be dropped by the kernel
      this.server.listen({ port: this.spec.port, host: this.spec.host, backlog: 4096 }, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
  }

  /** The bound address (useful with port 0 in tests). */
  address(): { host: string; port: number } {
    const a = this.server.address();
    if (a === null || typeof a === 'string') return { host: this.spec.host, port: this.spec.port };
    return { host: a.address, port: a.port };
  }

  /**
   * Stops accepting. Connections already accepted stay open (net.Server's own
   * close callback would wait for every one of them to end, which a reload or
   * a graceful stop must not do), so this resolves once the port is released.
   */
  close(): Promise<void> {
    if (!this.server.listening) return Promise.resolve();
    this.server.close();
    return new Promise((resolve) => setImmediate(resolve));
  }

  /** Re-reads the certificate files (SIGHUP); new handshakes use them, open connections are kept. */
  reloadTls(): void {
    const t = this.spec.tls;
    if (t !== undefined && this.server instanceof tls.Server) this.server.setSecureContext(readTlsFiles(t));
  }

  /**
   * A TCP connection was accepted (for TLS: before the handshake): counts it
   * against the process-wide and per-address caps, released when the TCP
   * socket closes. Over a cap it is closed at once: a plain one after
   * memcached's reply, a TLS one without a word (nothing can be said before
   * the handshake).
   */
  private admit(socket: net.Socket, plain: boolean): boolean {
    const addr = peerKey(socket);
    const refused = this.ctx.connections.tryAcquire(null, addr);
    if (refused !== ConnReject.OK) {
      this.refuse(socket, '-', addr, refused, plain);
      return false;
    }
    socket.once('close', () => this.ctx.connections.release(null, addr));
    return true;
  }

  private refuse(socket: net.Socket, tenant: string, addr: string, refused: ConnReject, canReply: boolean): void {
    this.ctx.processCounters.connectionsRejected++;
    this.ctx.audit.event(
      'warn',
      'connection-refused',
      tenant,
      { peer: addr, cap: CONN_REJECT_NAMES[refused] },
      'connection refused: too many open connections',
    );
    // memcached's own words when it is over its connection limit
    if (canReply) endAndRelease(socket, Replies.TOO_MANY_CONNECTIONS);
    else socket.destroy();
  }

  private accept(socket: net.Socket): void {
    const id = this.nextId();
    const peerAddress = socket.remoteAddress ?? '';
    // identity precedence: a verified client certificate, then a password, then listener or network
    let byCert: TenantRuntime | null = null;
    if (socket instanceof tls.TLSSocket) {
      socket.allowHalfOpen = true;
      byCert = this.identifyCertificate(socket, peerAddress);
    }
    const tenant = byCert ?? this.ctx.tenants.identify(this.spec.tenant, peerAddress);
    if (tenant !== null) {
      const refused = this.ctx.connections.tryAttachTenant(tenant.policy.name);
      if (refused !== ConnReject.OK) {
        this.refuse(socket, tenant.policy.name, peerKey(socket), refused, true);
        return;
      }
    }
    this.ctx.processCounters.connectionsAccepted++;
    const log = this.log.child({
      conn: id,
      peer: `${peerAddress}:${socket.remotePort ?? 0}`,
      tenant: tenant?.policy.name,
    });
    const session = new ClientSession(id, socket, this.ctx, tenant, log);
    if (byCert !== null) session.rights = Rights.READ_WRITE;
    this.sessions.add(session);
    log.debug('client connected');
  }

  /**
   * The tenant named by a certificate verified in this handshake, when the
   * peer is inside the tenant's `networks` (as for its password).
   *
   * A resumed TLS session is never taken as a certificate: the client proved
   * nothing in it (the session may not even be its own), yet OpenSSL reports
   * the original peer's certificate and verify result. Listeners that request
   * certificates also issue no tickets (tlsSecureOptions), so a resumption is
   * not normally offered; this check keeps any that happens from identifying.
   */
  private identifyCertificate(socket: tls.TLSSocket, peerAddress: string): TenantRuntime | null {
    if (!socket.authorized || socket.isSessionReused()) return null;
    const cert = socket.getPeerCertificate();
    if (cert === null || typeof cert.fingerprint256 !== 'string' || cert.fingerprint256 === '') return null;
    const cn = cert.subject?.CN;
    const policy = this.ctx.tenants.policy.identifyCertificate(
      cert.fingerprint256,
      typeof cn === 'string' ? cn : undefined,
    );
    if (policy === null) return null;
    if (policy.networks !== null && !policy.networks(peerAddress)) {
      this.ctx.audit.event(
        'warn',
        'certificate-network-refused',
        policy.name,
        { peer: peerAddress },
        "certificate not accepted from outside the tenant's networks",
      );
      return null;
    }
    const rt = this.ctx.tenants.get(policy.name);
    return rt === undefined || rt.removed ? null : rt;
  }
}

/** The source address connections are counted under (cidr.ts addressKey). */
function peerKey(socket: net.Socket): string {
  return addressKey(socket.remoteAddress ?? '');
}

/**
 * OpenSSL options for a TLS listener: client-initiated renegotiation is refused
 * (TLS 1.2; 1.3 has none), and where certificates identify tenants no session
 * tickets are issued (TLS 1.2 tickets; for 1.3, OpenSSL then issues stateful
 * tickets, which node's server never stores, so no PSK resumption either).
 */
function tlsSecureOptions(requestCert: boolean): number {
  const c = cryptoConstants;
  return c.SSL_OP_NO_RENEGOTIATION | (requestCert ? c.SSL_OP_NO_TICKET : 0);
}
