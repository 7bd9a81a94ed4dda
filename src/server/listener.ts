/**
 * TCP listeners. Each accepted connection becomes a ClientSession, identified
 * by the listener's bound tenant or by its source network.
 */
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { Rights } from '../policy/compile.js';
import { Replies } from '../protocol/text/replies.js';
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
      this.server = net.createServer(socketOpts, (socket) => this.accept(socket));
    } else {
      const requestCert = t.ca !== undefined;
      this.server = tls.createServer(
        {
          ...socketOpts,
          ...readTlsFiles(t),
          requestCert,
          // with a CA, clients without a verified certificate fail the handshake unless told otherwise
          rejectUnauthorized: requestCert && t.requireClientCert !== false,
          minVersion: 'TLSv1.2',
        },
        (socket) => this.accept(socket),
      );
      this.server.on('tlsClientError', (err, socket) =>
        this.log.info({ err: err.message, peer: socket.remoteAddress }, 'TLS handshake failed'),
      );
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

  private accept(socket: net.Socket): void {
    const id = this.nextId();
    const peerAddress = socket.remoteAddress ?? '';
    // identity precedence: a verified client certificate, then a password, then listener or network
    const byCert = socket instanceof tls.TLSSocket ? this.identifyCertificate(socket) : null;
    const tenant = byCert ?? this.ctx.tenants.identify(this.spec.tenant, peerAddress);
    const refused = this.ctx.connections.tryAcquire(tenant?.policy.name ?? null, peerAddress);
    if (refused !== ConnReject.OK) {
      this.ctx.processCounters.connectionsRejected++;
      this.ctx.audit.event(
        'warn',
        'connection-refused',
        tenant?.policy.name ?? '-',
        { peer: peerAddress, cap: CONN_REJECT_NAMES[refused] },
        'connection refused: too many open connections',
      );
      // memcached's own words when it is over its connection limit
      socket.on('error', () => undefined);
      socket.end(Replies.TOO_MANY_CONNECTIONS);
      return;
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
   * The tenant named by a verified client certificate. A resumed TLS session
   * may carry no certificate: it is then not identified this way.
   */
  private identifyCertificate(socket: tls.TLSSocket): TenantRuntime | null {
    if (!socket.authorized) return null;
    const cert = socket.getPeerCertificate();
    if (cert === null || typeof cert.fingerprint256 !== 'string' || cert.fingerprint256 === '') return null;
    const cn = cert.subject?.CN;
    const policy = this.ctx.tenants.policy.identifyCertificate(
      cert.fingerprint256,
      typeof cn === 'string' ? cn : undefined,
    );
    if (policy === null) return null;
    const rt = this.ctx.tenants.get(policy.name);
    return rt === undefined || rt.removed ? null : rt;
  }
}
