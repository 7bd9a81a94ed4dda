/**
 * TCP listeners. Each accepted connection becomes a ClientSession, identified
 * by the listener's bound tenant or by its source network.
 */
import net from 'node:net';
import type { Logger } from 'pino';
import { ClientSession, type SessionContext } from './session.js';

export interface ListenerSpec {
  readonly host: string;
  readonly port: number;
  readonly tenant?: string | undefined;
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
    this.server = net.createServer({ noDelay: true, keepAlive: true, keepAliveInitialDelay: 60_000 }, (socket) =>
      this.accept(socket),
    );
    this.server.on('error', (err) => this.log.error({ err, host: spec.host, port: spec.port }, 'listener error'));
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen(this.spec.port, this.spec.host, () => {
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

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: net.Socket): void {
    const id = this.nextId();
    const peerAddress = socket.remoteAddress ?? '';
    const tenant = this.ctx.tenants.identify(this.spec.tenant, peerAddress);
    const log = this.log.child({
      conn: id,
      peer: `${peerAddress}:${socket.remotePort ?? 0}`,
      tenant: tenant?.policy.name,
    });
    const session = new ClientSession(id, socket, this.ctx, tenant, log);
    this.sessions.add(session);
    log.debug('client connected');
  }
}
