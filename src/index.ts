/**
 * createProxy(config): the one entry used by cli.ts and by tests. It wires
 * the layers together and owns what spans them: start, reload, graceful stop.
 *
 *   listeners ─▶ sessions ─▶ upstream cluster (pools of servers) ─▶ memcached
 *        │           │
 *        └── tenant registry (policy + generations from the state store)
 *   admin HTTP: health, tenants, rotate, reload
 */
import { createRequire } from 'node:module';
import pino, { type Logger } from 'pino';
import type { Config } from './config/schema.js';
import { ProcessCounters, type UpstreamCounterSet } from './admin/counters.js';
import { AdminServer, type AdminTenantView } from './admin/http.js';
import { createMetrics, type Metrics } from './admin/metrics.js';
import { compilePolicy } from './policy/compile.js';
import { AuditSampler } from './server/audit.js';
import { Authenticator } from './server/auth.js';
import { ConnectionLimiter, type ConnectionCaps } from './server/conn-limits.js';
import { MemoryGuard } from './server/memory-guard.js';
import { Listener, type ListenerSpec } from './server/listener.js';
import { ClientSession, type SessionContext } from './server/session.js';
import { TenantRegistry, workerShare, type TenantRuntime } from './server/tenants.js';
import { openStateStore, type StateStore } from './state/store.js';
import { LeaseClient, type LeaseSource } from './state/leases.js';
import { UpstreamCluster } from './upstream/cluster.js';
import { compileTopology } from './upstream/topology.js';

const require = createRequire(import.meta.url);
const pkg = require('../package.json') as { version: string };

export const MEMGATE_VERSION: string = pkg.version;

/** How long a graceful stop waits for replies owed to clients before closing them anyway. */
const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;

export interface ProxyOptions {
  readonly logger?: Logger;
  /** start-up with a corrupt state file: give every tenant a fresh generation instead of refusing */
  readonly rotateAllOnCorrupt?: boolean;
  /** reads the config again (POST /reload); absent: the admin reload endpoint is refused */
  readonly loadConfig?: () => Config;
  readonly shutdownTimeoutMs?: number;
  /**
   * An already-constructed state store to use instead of opening `config.state.url`
   * (a `--workers` worker passes its IpcStateStore: the primary owns the real one).
   * createProxy still calls `open()` and, on stop, `close()` on it.
   */
  readonly store?: StateStore;
  /**
   * `--workers N`: how many worker processes share every per-tenant limit. Each
   * enforces ⌈limit / shareOf⌉ of the tenant's rates, bursts and connection cap
   * (see `workerShare` in server/tenants.ts). Default 1: this process alone.
   */
  readonly shareOf?: number;
  /**
   * Where leased ops/bytes budgets come from (state/leases.ts): a `--workers`
   * worker passes the primary's (IPC). Absent: the store's own (Redis), or none
   * (a single process with the file store keeps plain local buckets).
   */
  readonly leases?: LeaseSource;
}

export interface ReloadResult {
  readonly ok: boolean;
  readonly error?: string;
  readonly closedConnections?: number;
}

export interface Proxy {
  start(): Promise<void>;
  /** graceful: stop accepting, answer what was received, flush state; then close */
  stop(): Promise<void>;
  /** applies a validated config without dropping connections that are still allowed */
  reload(next: Config, source?: string): Promise<ReloadResult>;
  /** bound addresses of the listeners, in config order */
  addresses(): { host: string; port: number }[];
  readonly tenants: TenantRegistry;
  readonly store: StateStore;
  /** the upstream cluster new requests go to */
  readonly pool: UpstreamCluster;
  /** rotate a tenant's generation now (admin API, CLI) */
  rotate(tenant: string, source: string): Promise<void>;
  /** the admin HTTP address, when configured */
  adminAddress(): { host: string; port: number } | null;
  /** this process's registry (a `--workers` primary aggregates its workers' registries) */
  readonly metrics: Metrics;
}

/** Connection caps; a tenant's cap is divided by `shareOf` (workers), the process-wide ones are per process. */
function connectionCaps(config: Config, shareOf: number): ConnectionCaps {
  const perTenant = new Map<string, number>();
  for (const [name, t] of Object.entries(config.tenants)) {
    if (t.limits.connections !== undefined) perTenant.set(name, workerShare(t.limits.connections, shareOf));
  }
  return {
    maxConnections: config.limits.maxConnections,
    maxConnectionsPerAddress: config.limits.maxConnectionsPerAddress,
    tenantConnections: perTenant,
  };
}

function listenerKey(spec: ListenerSpec): string {
  return JSON.stringify([spec.host, spec.port, spec.tenant ?? null, spec.tls ?? null]);
}

function newPool(config: Config, logger: Logger, counters: UpstreamCounterSet): UpstreamCluster {
  const u = config.upstream;
  return new UpstreamCluster({
    topology: compileTopology(config),
    connectionsPerServer: u.connectionsPerServer,
    failureLimit: u.failureLimit,
    ejectHosts: u.ejectHosts,
    retryAfterMs: u.retryAfterMs,
    connectTimeoutMs: u.connectTimeoutMs,
    requestTimeoutMs: u.requestTimeoutMs,
    backoffMinMs: u.backoffMinMs,
    backoffMaxMs: u.backoffMaxMs,
    metaGets: u.metaGets,
    logger: logger.child({ component: 'upstream' }),
    counters,
  });
}

class Memgate implements Proxy, SessionContext {
  readonly store: StateStore;
  private config: Config;
  private readonly opts: ProxyOptions;
  readonly logger: Logger;
  readonly version = MEMGATE_VERSION;
  private currentPool: UpstreamCluster;
  private registry: TenantRegistry | null = null;
  private readonly sessions = new Set<ClientSession>();
  private listeners: Listener[] = [];
  private admin: AdminServer | null = null;
  private connId = 0;
  readonly authenticator: Authenticator;
  readonly connections: ConnectionLimiter;
  readonly memory: MemoryGuard;
  readonly audit: AuditSampler;
  readonly processCounters = new ProcessCounters();
  readonly metrics: Metrics;
  private stopping = false;
  /** leased budgets (Redis, --workers), or null */
  private leaseClient: LeaseClient | null = null;

  constructor(config: Config, opts: ProxyOptions) {
    this.config = config;
    this.opts = opts;
    this.logger = opts.logger ?? pino({ level: config.log.level });
    this.store =
      opts.store ??
      openStateStore(config.state, {
        rotateAllOnCorrupt: opts.rotateAllOnCorrupt ?? false,
        logger: this.logger,
      });
    this.currentPool = newPool(config, this.logger, this.processCounters.upstream);
    this.audit = new AuditSampler(this.logger);
    this.authenticator = new Authenticator(() => this.tenants.policy, config.auth, this.audit);
    this.connections = new ConnectionLimiter(connectionCaps(config, this.shareOf));
    this.memory = new MemoryGuard(config.limits.memoryHighWatermarkBytes, this.logger);
    this.metrics = createMetrics({
      tenants: () => this.liveTenants(),
      upstream: () => this.currentPool.health(),
      process: this.processCounters,
      stateUp: () => this.store.up,
      memoryOverloaded: () => this.memory.overloaded,
    });
  }

  private *liveTenants(): Iterable<{ name: string; counters: TenantRuntime['counters'] }> {
    if (this.registry === null) return;
    this.processCounters.authFailures = this.authenticator.failuresTotal;
    this.processCounters.authLockouts = this.authenticator.lockoutsTotal;
    for (const t of this.registry.all()) if (!t.removed) yield { name: t.policy.name, counters: t.counters };
  }

  // ---- SessionContext: what sessions read from the proxy (reload replaces config and pool) ----

  /** worker processes sharing per-tenant limits (ProxyOptions.shareOf) */
  private get shareOf(): number {
    return this.opts.shareOf ?? 1;
  }

  get auth(): Config['auth'] {
    return this.config.auth;
  }

  get limits(): Config['limits'] {
    return this.config.limits;
  }

  flushTenant(t: TenantRuntime, delaySec: number, source: string): Promise<void> {
    return this.rotateTenant(t.policy.name, delaySec, source);
  }

  onSessionClosed(s: ClientSession): void {
    this.sessions.delete(s);
  }

  get tenants(): TenantRegistry {
    if (this.registry === null) throw new Error('memgate is not started');
    return this.registry;
  }

  get pool(): UpstreamCluster {
    return this.currentPool;
  }

  async start(): Promise<void> {
    const policy = compilePolicy(this.config);
    await this.store.open([...policy.tenants.keys()]);
    // memgate_rotations_total: the rotations the store made (a delayed flush_all counts when it fires)
    this.processCounters.rotations = this.store.rotationsApplied;
    this.store.onChange(() => (this.processCounters.rotations = this.store.rotationsApplied));
    const leases = this.opts.leases ?? (this.store as { leases?: LeaseSource }).leases;
    if (leases !== undefined) this.leaseClient = new LeaseClient(leases);
    this.registry = new TenantRegistry(policy, this.store, this.config.limits, this.shareOf, this.leaseClient);
    this.currentPool.start();
    this.memory.start();
    for (const spec of this.config.listen) this.listeners.push(await this.openListener(spec));
    if (this.config.admin !== undefined) {
      const a = this.config.admin;
      this.admin = new AdminServer(
        { host: a.host, port: a.port, token: a.token, logger: this.logger },
        {
          listTenants: () => listTenants(this.tenants, this.store),
          hasTenant: (name) => {
            const t = this.tenants.get(name);
            return t !== undefined && !t.removed;
          },
          rotate: async (name, source) => {
            await this.rotateTenant(name, 0, source);
            return { generationAgeMs: 0 };
          },
          reload: () => this.reloadFromSource('admin-api'),
          metrics: () => this.metrics.render(),
          metricsContentType: this.metrics.contentType,
          ready: () => this.currentPool.isReady(),
          stateUp: () => this.store.up,
          upstream: () => this.currentPool.health(),
        },
      );
      await this.admin.listen();
      const addr = this.admin.address();
      this.logger.info({ host: addr.host, port: addr.port }, 'admin listening');
    }
  }

  private async openListener(spec: ListenerSpec): Promise<Listener> {
    const l = new Listener(spec, this, this.sessions, () => ++this.connId, this.logger);
    await l.listen();
    const a = l.address();
    this.logger.info({ host: a.host, port: a.port, tenant: spec.tenant, tls: spec.tls !== undefined }, 'listening');
    return l;
  }

  async rotateTenant(name: string, delaySec: number, source: string): Promise<void> {
    if (delaySec > 0) await this.store.schedule(name, Date.now() + delaySec * 1000);
    else await this.store.rotate(name);
    this.logger.info({ audit: 'rotation', tenant: name, source, delaySec }, 'tenant generation rotated');
  }

  rotate(tenant: string, source: string): Promise<void> {
    return this.rotateTenant(tenant, 0, source);
  }

  /** POST /reload: read the config again through opts.loadConfig and apply it. */
  private async reloadFromSource(source: string): Promise<ReloadResult> {
    const load = this.opts.loadConfig;
    if (load === undefined) return { ok: false, error: 'this memgate was not started from a config file' };
    let next: Config;
    try {
      next = load();
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      this.processCounters.reloadFailures++;
      this.logger.error(
        { audit: 'reload', source, ok: false, error },
        'reload refused: invalid config; keeping the old one',
      );
      return { ok: false, error };
    }
    return this.reload(next, source);
  }

  async reload(next: Config, source = 'signal'): Promise<ReloadResult> {
    const prev = this.config;
    try {
      const policy = compilePolicy(next);
      await this.store.addTenants([...policy.tenants.keys()]);
      // listeners first: a new one that cannot bind fails the reload before anything changed
      const keep = new Map(prev.listen.map((s) => [listenerKey(s), true]));
      const wanted = new Set(next.listen.map(listenerKey));
      const kept: Listener[] = [];
      const removed: Listener[] = [];
      for (const l of this.listeners) (wanted.has(listenerKey(l.spec)) ? kept : removed).push(l);
      await Promise.all(removed.map((l) => l.close()));
      const opened: Listener[] = [];
      try {
        for (const spec of next.listen) if (!keep.has(listenerKey(spec))) opened.push(await this.openListener(spec));
      } catch (err) {
        await Promise.all(opened.map((l) => l.close()));
        for (const l of removed) await l.listen().catch(() => undefined);
        throw err;
      }
      for (const l of kept) l.reloadTls();
      this.listeners = [...kept, ...opened];

      this.config = next;
      this.tenants.replacePolicy(policy, next.limits);
      this.authenticator.reconfigure(next.auth);
      this.connections.reconfigure(connectionCaps(next, this.shareOf));
      this.memory.reconfigure(next.limits.memoryHighWatermarkBytes);
      if (JSON.stringify(prev.upstream) !== JSON.stringify(next.upstream)) this.replacePool(next);
      const closed = this.closeDisallowedSessions();
      this.processCounters.reloads++;
      this.logger.info({ audit: 'reload', source, ok: true, closedConnections: closed }, 'config reloaded');
      return { ok: true, closedConnections: closed };
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      this.processCounters.reloadFailures++;
      this.logger.error({ audit: 'reload', source, ok: false, error }, 'reload failed; keeping the old config');
      return { ok: false, error };
    }
  }

  /**
   * Requests go to a new cluster; a session moves to it when it has nothing
   * in flight on the old one (ClientSession.upstreamLink), and the old one
   * closes once no session has requests in flight there.
   */
  private replacePool(next: Config): void {
    const old = this.currentPool;
    this.currentPool = newPool(next, this.logger, this.processCounters.upstream);
    this.currentPool.start();
    const timer = setInterval(() => {
      for (const s of this.sessions) if (s.usesUpstream(old)) return;
      clearInterval(timer);
      void old.close();
    }, 1000);
    timer.unref();
  }

  /** A reload that removes a tenant, or a network it may connect from, closes its connections. */
  private closeDisallowedSessions(): number {
    let closed = 0;
    for (const s of this.sessions) {
      const t = s.tenant;
      if (t === null) continue;
      const networks = t.policy.networks;
      if (t.removed || (networks !== null && !networks(s.socket.remoteAddress ?? ''))) {
        s.destroy();
        closed++;
      }
    }
    return closed;
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const closing: Promise<void>[] = this.listeners.map((l) => l.close());
    if (this.admin !== null) closing.push(this.admin.close());
    for (const s of this.sessions) s.drain();
    const deadline = Date.now() + (this.opts.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_TIMEOUT_MS);
    while (this.sessions.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    if (this.sessions.size > 0) {
      this.logger.warn(
        { connections: this.sessions.size },
        'shutdown deadline passed; closing the remaining connections',
      );
      for (const s of this.sessions) s.destroy();
    }
    await Promise.all(closing);
    this.memory.stop();
    await this.currentPool.close();
    await this.leaseClient?.close();
    await this.store.close();
  }

  addresses(): { host: string; port: number }[] {
    return this.listeners.map((l) => l.address());
  }

  adminAddress(): { host: string; port: number } | null {
    return this.admin === null ? null : this.admin.address();
  }
}

export function createProxy(config: Config, opts: ProxyOptions = {}): Proxy {
  return new Memgate(config, opts);
}

function listTenants(tenants: TenantRegistry, store: StateStore): AdminTenantView[] {
  const now = Date.now();
  const out: AdminTenantView[] = [];
  for (const t of tenants.all()) {
    if (t.removed) continue;
    const st = store.get(t.policy.name);
    out.push({
      name: t.policy.name,
      mode: t.policy.admin ? 'admin' : t.policy.mode,
      admin: t.policy.admin,
      pool: t.policy.pool,
      connections: t.counters.currConnections,
      generationAgeMs: st === undefined ? null : now - st.rotatedAtMs,
      pendingRotationInMs: st?.pendingAtMs == null ? null : Math.max(0, st.pendingAtMs - now),
    });
  }
  return out;
}
