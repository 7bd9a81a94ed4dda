/**
 * createProxy(config): the one entry used by cli.ts and by tests.
 */
import { createRequire } from 'node:module';
import pino, { type Logger } from 'pino';
import type { Config } from './config/schema.js';
import { AdminServer, type AdminTenantView } from './admin/http.js';
import { compilePolicy } from './policy/compile.js';
import { Authenticator } from './server/auth.js';
import { ClientSession, type SessionContext } from './server/session.js';
import { Listener } from './server/listener.js';
import { TenantRegistry, type TenantRuntime } from './server/tenants.js';
import { openStateStore, type StateStore } from './state/store.js';
import { UpstreamPool } from './upstream/pool.js';

const require = createRequire(import.meta.url);
const pkg = require('../package.json') as { version: string };

export const MEMGATE_VERSION: string = pkg.version;

export interface ProxyOptions {
  readonly logger?: Logger;
  /** start-up with a corrupt state file: give every tenant a fresh generation instead of refusing */
  readonly rotateAllOnCorrupt?: boolean;
}

export interface Proxy {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** bound addresses of the listeners, in config order */
  addresses(): { host: string; port: number }[];
  readonly tenants: TenantRegistry;
  readonly store: StateStore;
  readonly pool: UpstreamPool;
  /** rotate a tenant's generation now (admin API, CLI) */
  rotate(tenant: string, source: string): Promise<void>;
  /** the admin HTTP address, when configured */
  adminAddress(): { host: string; port: number } | null;
}

export function createProxy(config: Config, opts: ProxyOptions = {}): Proxy {
  const logger = opts.logger ?? pino({ level: config.log.level });
  const policy = compilePolicy(config);
  const store = openStateStore(config.state.url, {
    rotateAllOnCorrupt: opts.rotateAllOnCorrupt ?? false,
    logger,
  });
  const pool = new UpstreamPool({
    servers: config.upstream.servers,
    connectionsPerServer: config.upstream.connectionsPerServer,
    connectTimeoutMs: config.upstream.connectTimeoutMs,
    requestTimeoutMs: config.upstream.requestTimeoutMs,
    backoffMinMs: config.upstream.backoffMinMs,
    backoffMaxMs: config.upstream.backoffMaxMs,
    logger: logger.child({ component: 'upstream' }),
  });
  const sessions = new Set<ClientSession>();
  let connId = 0;
  let tenants: TenantRegistry | null = null;
  const listeners: Listener[] = [];
  let admin: AdminServer | null = null;

  const registry = (): TenantRegistry => {
    if (tenants === null) throw new Error('memgate is not started');
    return tenants;
  };

  async function rotateTenant(name: string, delaySec: number, source: string): Promise<void> {
    if (delaySec > 0) await store.schedule(name, Date.now() + delaySec * 1000);
    else await store.rotate(name);
    logger.info({ audit: 'rotation', tenant: name, source, delaySec }, 'tenant generation rotated');
  }

  const authenticator = new Authenticator(() => registry().policy, config.auth, logger.child({ component: 'auth' }));
  const ctx: SessionContext = {
    get tenants() {
      return registry();
    },
    authenticator,
    auth: config.auth,
    pool,
    logger,
    limits: config.limits,
    version: `${MEMGATE_VERSION} memgate`,
    flushTenant(t: TenantRuntime, delaySec: number, source: string) {
      return rotateTenant(t.policy.name, delaySec, source);
    },
    onSessionClosed(s) {
      sessions.delete(s);
    },
  };

  return {
    get tenants() {
      return registry();
    },
    store,
    pool,
    async start() {
      await store.open([...policy.tenants.keys()]);
      tenants = new TenantRegistry(policy, store);
      pool.start();
      for (const spec of config.listen) {
        const l = new Listener(spec, ctx, sessions, () => ++connId, logger);
        await l.listen();
        listeners.push(l);
        const a = l.address();
        logger.info({ host: a.host, port: a.port, tenant: spec.tenant }, 'listening');
      }
      if (config.admin !== undefined) {
        admin = new AdminServer(
          { host: config.admin.host, port: config.admin.port, token: config.admin.token, logger },
          {
            listTenants: () => listTenants(registry(), store),
            hasTenant: (name) => registry().get(name) !== undefined && !(registry().get(name)?.removed ?? true),
            rotate: async (name, source) => {
              await rotateTenant(name, 0, source);
              return { generationAgeMs: 0 };
            },
            ready: () => pool.health().some((h) => h.up),
          },
        );
        await admin.listen();
        const a = admin.address();
        logger.info({ host: a.host, port: a.port }, 'admin listening');
      }
    },
    async stop() {
      const closing = listeners.map((l) => l.close());
      if (admin !== null) closing.push(admin.close());
      for (const s of sessions) s.destroy();
      await Promise.all(closing);
      await pool.close();
      await store.close();
    },
    addresses() {
      return listeners.map((l) => l.address());
    },
    rotate(tenant, source) {
      return rotateTenant(tenant, 0, source);
    },
    adminAddress() {
      return admin === null ? null : admin.address();
    },
  };
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
      connections: t.counters.currConnections,
      generationAgeMs: st === undefined ? null : now - st.rotatedAtMs,
      pendingRotationInMs: st?.pendingAtMs == null ? null : Math.max(0, st.pendingAtMs - now),
    });
  }
  return out;
}
