/**
 * One memcached server behind an UpstreamCluster, addressed by connection
 * ("slot") as the per-connection tests need: send(slot, req) writes on that
 * very connection, so a test can break one socket and watch the other.
 */
import type { Logger } from 'pino';
import type { UpstreamCounterSet, UpstreamCounters } from '../../src/admin/counters.js';
import { DEFAULT_POOL } from '../../src/config/schema.js';
import { ErrorCode, ProxyError } from '../../src/errors.js';
import type { Request } from '../../src/protocol/text/request.js';
import { UpstreamCluster, type UpstreamServer } from '../../src/upstream/cluster.js';
import type { UpstreamConnection } from '../../src/upstream/connection.js';
import { serverSpec, type Topology } from '../../src/upstream/topology.js';

export interface UpstreamOptions {
  servers: readonly string[];
  connectionsPerServer: number;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  logger: Logger;
  maxQueued?: number;
  metaGets?: boolean;
  counters?: UpstreamCounterSet;
  failureLimit?: number;
}

export function topologyOf(pools: Record<string, readonly string[]>): Topology {
  const map = new Map(
    Object.entries(pools).map(([name, servers]) => [
      name,
      { name, servers: servers.map((s) => serverSpec(s)), distribution: 'ketama' as const, tls: null },
    ]),
  );
  return { pools: map };
}

export class UpstreamPool {
  readonly cluster: UpstreamCluster;
  private readonly server: UpstreamServer;

  constructor(opts: UpstreamOptions) {
    if (opts.servers.length === 0) throw new ProxyError(ErrorCode.CONFIG_INVALID, 'upstream.servers is empty');
    this.cluster = new UpstreamCluster({
      ...opts,
      // a test server may fail many times; these tests are about connections, not marking servers down
      failureLimit: opts.failureLimit ?? 1_000_000,
      topology: topologyOf({ [DEFAULT_POOL]: opts.servers.slice(0, 1) }),
    });
    const server = this.cluster.pool(DEFAULT_POOL).servers[0];
    if (server === undefined) throw new Error('no server');
    this.server = server;
  }

  get counters(): UpstreamCounters {
    return this.server.counters;
  }

  get serverVersion(): string | null {
    return this.cluster.serverVersion;
  }

  start(): void {
    this.cluster.start();
  }

  conn(slot: number): UpstreamConnection {
    const c = this.server.conns[slot % this.server.conns.length];
    if (c === undefined) throw new RangeError(`no slot ${slot}`);
    return c;
  }

  send(slot: number, req: Request): void {
    this.conn(slot).send(req);
  }

  isBlocked(slot: number): boolean {
    return this.conn(slot).isBlocked;
  }

  onDrain(slot: number, cb: () => void): void {
    this.conn(slot).onDrain(cb);
  }

  health(): { address: string; up: boolean; inFlight: number }[] {
    return this.cluster.health().map((h) => ({ address: h.address, up: h.up, inFlight: h.inFlight }));
  }

  close(): Promise<void> {
    return this.cluster.close();
  }
}
