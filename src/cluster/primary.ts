/**
 * `memgate serve --workers N` (N ≥ 2): a primary process that forks N workers
 * with node:cluster. Each worker runs the normal proxy (worker.ts); the
 * cluster shares the listening ports and hands connections out round-robin.
 *
 *                      ┌──────────── primary ─────────────┐
 *   admin HTTP ───────▶│ AdminServer   FileStateStore      │  (the state file's lock and its
 *   SIGHUP/TERM/INT ──▶│ (asks workers) (single writer)    │   atomic writes stay in one process)
 *                      └──┬────────────────┬───────────────┘
 *              IPC (ipc.ts)│ hello, state.*, │ state.changed, metrics, status, reload, stop
 *                   ┌──────┴─────┐    ┌──────┴─────┐
 *   clients ──────▶ │  worker 1  │ …  │  worker N  │ ──▶ memcached
 *                   └────────────┘    └────────────┘
 *
 * The primary owns:
 * - the state store. Workers use an IpcStateStore (ipc-store.ts): a change they
 *   ask for is made durable here, then sent to every worker, and the asking
 *   worker's promise resolves only once every worker has confirmed it. Scheduled
 *   rotations fire here and reach the workers the same way.
 * - the admin HTTP server: /tenants and /readyz ask the workers, /metrics
 *   aggregates their registries (prom-client's AggregatorRegistry.aggregate)
 *   with its own, rotate goes through the store, reload re-reads the config
 *   once and hands the validated config to every worker.
 * - the workers' lives: a worker that dies is forked again after a backoff
 *   (100 ms, doubling up to 5 s while workers keep dying young); on
 *   SIGTERM/SIGINT every worker stops gracefully and the primary exits 0 once
 *   they have.
 *
 * Per-tenant limits: ops and bytes budgets are one shared bucket per tenant,
 * here (in memory, or in Redis with a Redis state store); the workers lease
 * slices of it over IPC (ipc-leases.ts), so the limit holds for the tenant as
 * a whole however its connections are spread. Connection caps, flush and
 * stats budgets are ⌈limit / N⌉ per worker (server/tenants.ts `workerShare`).
 * Process-wide limits (limits.maxConnections, per address, memory) stay per worker.
 */
import cluster, { type Worker } from 'node:cluster';
import os from 'node:os';
import { AggregatorRegistry, Counter } from 'prom-client';
import type { Logger } from 'pino';
import { ProcessCounters } from '../admin/counters.js';
import { AdminServer, type AdminTenantView } from '../admin/http.js';
import { createMetrics, type Metrics } from '../admin/metrics.js';
import { ConfigError } from '../config/errors.js';
import type { Config } from '../config/schema.js';
import type { ReloadResult } from '../index.js';
import { openStateStore, type StateStore, type TenantState } from '../state/store.js';
import { LocalLeaseSource, type LeaseSource } from '../state/leases.js';
import { answerLease } from './ipc-leases.js';
import { IpcPeer, workerChannel, type PrimaryCalls, type WorkerCalls } from './ipc.js';

/** Set in a worker's environment: this process is a memgate worker (not, say, a pm2 cluster worker). */
export const WORKER_ENV = 'MEMGATE_CLUSTER_WORKER';

/** First restart delay of a dead worker; doubled while workers keep dying young. */
export const RESTART_MIN_MS = 100;
export const RESTART_MAX_MS = 5000;
/** A worker that lived this long died of something new: its next restart starts at RESTART_MIN_MS again. */
const STABLE_AFTER_MS = 10_000;
/** How long every worker may take to start listening. */
const START_TIMEOUT_MS = 30_000;
/** How long a worker may take to confirm a state change before it is killed (and restarted). */
const BROADCAST_TIMEOUT_MS = 2000;
/** status, metrics: a worker that does not answer in time is left out of the answer. */
const ASK_TIMEOUT_MS = 2000;
const RELOAD_TIMEOUT_MS = 10_000;
/** A graceful stop of a worker: its drain deadline (index.ts, 10 s) plus a margin; then SIGKILL. */
const STOP_TIMEOUT_MS = 15_000;
/** Counted here once per reload; the workers' own counts (one per worker) are left out of /metrics. */
const PRIMARY_ONLY_METRICS: ReadonlySet<string> = new Set(['memgate_reloads_total', 'memgate_reload_failures_total']);

/** `--workers`: 0 means one per CPU. */
export function resolveWorkerCount(flag: number): number {
  return flag === 0 ? os.availableParallelism() : flag;
}

/** True in a process forked by ClusterPrimary. */
export function isMemgateWorker(): boolean {
  return cluster.isWorker && process.env[WORKER_ENV] === '1';
}

export interface PrimaryOptions {
  /** N ≥ 2 */
  readonly workers: number;
  readonly logger: Logger;
  readonly rotateAllOnCorrupt: boolean;
  /** re-reads the config file (SIGHUP, POST /reload) */
  readonly loadConfig: () => Config;
}

type PrimaryPeer = IpcPeer<PrimaryCalls, WorkerCalls>;

interface Slot {
  /** 1..N, kept by the worker that replaces a dead one */
  readonly index: number;
  worker: Worker | null;
  peer: PrimaryPeer | null;
  /** it said hello: its state store listens for state.changed */
  joined: boolean;
  /** its proxy listens */
  started: boolean;
  forkedAtMs: number;
  /** the delay before the last restart (0: none yet) */
  restartDelayMs: number;
  restartTimer: NodeJS.Timeout | null;
}

/** The worker's config: the primary's, without the admin section (the primary serves admin). */
function workerConfig(config: Config): Config {
  return { ...config, admin: undefined };
}

function describeExit(code: number | null, signal: string | null): string {
  return signal !== null ? `killed by ${signal}` : `exit code ${code ?? '?'}`;
}

export class ClusterPrimary {
  private config: Config;
  private readonly opts: PrimaryOptions;
  private readonly logger: Logger;
  private readonly store: StateStore;
  private readonly leases: LeaseSource;
  private readonly slots: Slot[];
  private admin: AdminServer | null = null;
  private readonly counters = new ProcessCounters();
  private readonly metrics: Metrics;
  private restarts = 0;
  /** state changes still being confirmed by the workers */
  private readonly broadcasts = new Set<Promise<void>>();
  private phase: 'idle' | 'starting' | 'running' | 'stopping' = 'idle';
  private startWaiter: { resolve(): void; reject(err: Error): void } | null = null;
  private stopped: Promise<void> | null = null;

  constructor(config: Config, opts: PrimaryOptions) {
    if (!Number.isInteger(opts.workers) || opts.workers < 2) throw new RangeError('a cluster needs at least 2 workers');
    this.config = config;
    this.opts = opts;
    this.logger = opts.logger;
    this.store = openStateStore(config.state, { rotateAllOnCorrupt: opts.rotateAllOnCorrupt, logger: this.logger });
    // the workers' shared budgets: in Redis when the state is there (every instance shares them), else here
    this.leases = (this.store as { leases?: LeaseSource }).leases ?? new LocalLeaseSource(1);
    this.slots = Array.from({ length: opts.workers }, (_, i) => ({
      index: i + 1,
      worker: null,
      peer: null,
      joined: false,
      started: false,
      forkedAtMs: 0,
      restartDelayMs: 0,
      restartTimer: null,
    }));
    // the primary's own series: rotations from the admin API, reloads; the workers' come with each scrape
    this.metrics = createMetrics({
      tenants: () => [],
      upstream: () => [],
      process: this.counters,
      stateUp: () => this.store.up,
    });
    const restarts = (): number => this.restarts;
    new Counter({
      name: 'memgate_worker_restarts_total',
      help: 'Workers the primary forked again after they died (--workers)',
      registers: [this.metrics.registry],
      collect(this: Counter) {
        this.reset();
        this.inc(restarts());
      },
    });
  }

  /** Opens the state, forks the workers and waits until each listens, then opens the admin server. */
  async start(): Promise<void> {
    if (!cluster.isPrimary) throw new Error('a cluster primary cannot run inside a cluster worker');
    this.phase = 'starting';
    await this.store.open(Object.keys(this.config.tenants));
    // memgate_rotations_total: every rotation is made by this store (the workers' stores report 0)
    this.counters.rotations = this.store.rotationsApplied;
    this.store.onChange((tenant, state) => {
      this.counters.rotations = this.store.rotationsApplied;
      this.broadcast(tenant, state);
    });
    const allStarted = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`the workers did not all start within ${START_TIMEOUT_MS} ms`)),
        START_TIMEOUT_MS,
      );
      this.startWaiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
    });
    for (const slot of this.slots) this.fork(slot);
    await allStarted;
    this.startWaiter = null;
    if (this.phase !== 'starting') return; // stopped meanwhile
    this.phase = 'running';
    if (this.config.admin !== undefined) await this.startAdmin(this.config.admin);
  }

  /** SIGHUP, POST /reload: re-read the config once, then apply it in every worker. */
  async reload(source: string): Promise<ReloadResult> {
    let next: Config;
    try {
      next = this.opts.loadConfig();
    } catch (err) {
      const problems = err instanceof ConfigError ? err.lines() : [String(err)];
      this.counters.reloadFailures++;
      this.logger.error({ audit: 'reload', source, ok: false, problems }, 'reload refused: invalid config');
      return { ok: false, error: err instanceof Error ? err.message : String(err) };
    }
    try {
      await this.store.addTenants(Object.keys(next.tenants));
      await this.settleBroadcasts();
    } catch (err) {
      this.counters.reloadFailures++;
      const error = err instanceof Error ? err.message : String(err);
      this.logger.error({ audit: 'reload', source, ok: false, error }, 'reload failed; keeping the old config');
      return { ok: false, error };
    }
    // workers forked from now on start with the new config (unless every worker refuses it, below)
    const prev = this.config;
    this.config = next;
    const results = await Promise.all(
      this.liveSlots().map(async (slot): Promise<ReloadResult> => {
        try {
          const r = await slot.peer.call('reload', { config: workerConfig(next), source }, RELOAD_TIMEOUT_MS);
          return r.ok ? r : { ok: false, error: `worker ${slot.index}: ${r.error ?? 'failed'}` };
        } catch (err) {
          return { ok: false, error: `worker ${slot.index}: ${(err as Error).message}` };
        }
      }),
    );
    const failed = results.filter((r) => !r.ok);
    const closedConnections = results.reduce((n, r) => n + (r.closedConnections ?? 0), 0);
    if (failed.length > 0) {
      // NOTE: the config was validated once, here, so workers usually agree: all refuse (say, a
      // listener that cannot bind), and then the old config stays for new workers too. A partial
      // reload means a worker was unwell; the error names it, and the applied config stays.
      if (failed.length === results.length) this.config = prev;
      const error = failed.map((r) => r.error).join('; ');
      this.counters.reloadFailures++;
      this.logger.error({ audit: 'reload', source, ok: false, error }, 'reload failed in a worker');
      return { ok: false, error, closedConnections };
    }
    this.counters.reloads++;
    this.logger.info({ audit: 'reload', source, ok: true, closedConnections }, 'config reloaded in every worker');
    return { ok: true, closedConnections };
  }

  /** Graceful: each worker drains and exits, then the admin server and the state store close. */
  stop(): Promise<void> {
    this.stopped ??= this.stopNow();
    return this.stopped;
  }

  // ── workers ────────────────────────────────────────────────────────────────

  private fork(slot: Slot): void {
    slot.restartTimer = null;
    const worker = cluster.fork({ [WORKER_ENV]: '1' });
    const peer: PrimaryPeer = new IpcPeer(workerChannel(worker), `worker ${slot.index}`);
    slot.worker = worker;
    slot.peer = peer;
    slot.joined = false;
    slot.started = false;
    slot.forkedAtMs = Date.now();
    peer.handle({
      hello: () => {
        slot.joined = true;
        return { config: workerConfig(this.config), slot: slot.index, workers: this.slots.length };
      },
      started: ({ pid }) => {
        slot.started = true;
        this.logger.info({ worker: slot.index, workerPid: pid }, 'worker started');
        if (this.startWaiter !== null && this.slots.every((s) => s.started)) this.startWaiter.resolve();
        return null;
      },
      'state.open': async ({ tenants }) => {
        await this.store.addTenants(tenants);
        await this.settleBroadcasts();
        return Object.fromEntries(this.store.list());
      },
      'state.rotate': async ({ tenant }) => {
        await this.store.rotate(tenant);
        await this.settleBroadcasts();
        return this.stateOf(tenant);
      },
      'state.schedule': async ({ tenant, atMs }) => {
        await this.store.schedule(tenant, atMs);
        await this.settleBroadcasts();
        return this.stateOf(tenant);
      },
      'state.addTenants': async ({ tenants }) => {
        await this.store.addTenants(tenants);
        await this.settleBroadcasts();
        return null;
      },
      'lease.take': (args) => answerLease(this.leases, args),
      'lease.giveBack': async ({ tenant, kind, tokens, rate, burst }) => {
        if (this.leases.up) await this.leases.giveBack(tenant, kind, tokens, rate, burst).catch(() => undefined);
        return null;
      },
      'lease.status': () => ({ up: this.leases.up, instances: this.leases.instances }),
    });
    worker.on('exit', (code: number | null, signal: string | null) => this.onExit(slot, worker, code, signal));
  }

  private onExit(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    if (slot.worker !== worker) return;
    slot.peer?.close('gone');
    slot.worker = null;
    slot.peer = null;
    slot.joined = false;
    slot.started = false;
    const how = describeExit(code, signal);
    if (this.phase === 'stopping') {
      this.logger.info({ worker: slot.index, workerPid: worker.process.pid, how }, 'worker stopped');
      return;
    }
    if (this.phase === 'starting') {
      this.startWaiter?.reject(new Error(`worker ${slot.index} exited while starting (${how})`));
      return;
    }
    const lived = Date.now() - slot.forkedAtMs;
    const delay =
      slot.restartDelayMs === 0 || lived >= STABLE_AFTER_MS
        ? RESTART_MIN_MS
        : Math.min(RESTART_MAX_MS, slot.restartDelayMs * 2);
    slot.restartDelayMs = delay;
    this.restarts++;
    this.logger.warn(
      { worker: slot.index, workerPid: worker.process.pid, how, livedMs: lived, restartInMs: delay },
      'worker died; forking it again',
    );
    slot.restartTimer = setTimeout(() => this.fork(slot), delay);
  }

  /** Slots whose worker said hello (so it answers calls). */
  private liveSlots(): (Slot & { peer: PrimaryPeer; worker: Worker })[] {
    return this.slots.filter((s): s is Slot & { peer: PrimaryPeer; worker: Worker } => s.peer !== null && s.joined);
  }

  /** Asks every started worker; one that does not answer in time is left out. */
  private async askAll<K extends 'metrics' | 'status'>(kind: K): Promise<PrimaryCalls[K]['result'][]> {
    const answers: PrimaryCalls[K]['result'][] = [];
    await Promise.all(
      this.liveSlots()
        .filter((s) => s.started)
        .map((s) =>
          s.peer.call(kind, {}, ASK_TIMEOUT_MS).then(
            (answer) => answers.push(answer),
            (err: unknown) => this.logger.warn({ worker: s.index, err }, `worker did not answer ${kind}`),
          ),
        ),
    );
    return answers;
  }

  private async stopNow(): Promise<void> {
    const wasRunning = this.phase !== 'idle';
    this.phase = 'stopping';
    this.startWaiter?.reject(new Error('stopped while starting'));
    for (const s of this.slots) {
      if (s.restartTimer !== null) clearTimeout(s.restartTimer);
      s.restartTimer = null;
    }
    const closingAdmin = this.admin?.close() ?? Promise.resolve();
    const live = this.slots.flatMap((s) => (s.worker === null ? [] : [{ slot: s, worker: s.worker }]));
    const exited = live.map(({ worker }) =>
      worker.isDead() ? Promise.resolve() : new Promise<void>((r) => worker.once('exit', () => r())),
    );
    for (const { slot, worker } of live) {
      const askToStop = slot.joined && slot.peer !== null ? slot.peer.call('stop', {}, ASK_TIMEOUT_MS) : null;
      // a worker that has not said hello yet has no connections: a signal is enough
      if (askToStop === null) worker.process.kill('SIGTERM');
      else askToStop.catch(() => worker.process.kill('SIGTERM'));
    }
    const deadline = setTimeout(() => {
      for (const { slot, worker } of live) {
        if (worker.isDead()) continue;
        this.logger.warn(
          { worker: slot.index, workerPid: worker.process.pid },
          'worker did not stop in time; killing it',
        );
        worker.process.kill('SIGKILL');
      }
    }, STOP_TIMEOUT_MS);
    await Promise.all(exited);
    clearTimeout(deadline);
    await closingAdmin;
    if (wasRunning) {
      await this.settleBroadcasts();
      await this.store.close();
    }
  }

  // ── state relay ────────────────────────────────────────────────────────────

  /**
   * The store's onChange: send the new state to every worker that said hello.
   * Callers that changed state wait for `settleBroadcasts()` before answering.
   *
   * NOTE: a live worker that does not confirm in BROADCAST_TIMEOUT_MS is killed
   * (and forked again, reading the state afresh): a stalled worker must never
   * keep serving a generation that a flush_all has already answered OK for.
   */
  private broadcast(tenant: string, state: TenantState): void {
    const confirmations = this.liveSlots().map(({ index, peer, worker }) =>
      peer.call('state.changed', { tenant, state }, BROADCAST_TIMEOUT_MS).then(
        () => undefined,
        (err: unknown) => {
          if (worker.isDead() || !worker.isConnected()) return; // gone: its replacement opens with a fresh copy
          this.logger.error(
            { worker: index, workerPid: worker.process.pid, tenant, err },
            'worker did not confirm a state change; killing it',
          );
          worker.process.kill('SIGKILL');
        },
      ),
    );
    const done = Promise.all(confirmations).then(() => undefined);
    this.broadcasts.add(done);
    void done.finally(() => this.broadcasts.delete(done));
  }

  /** Resolves once every state change sent so far is confirmed by the workers (or they are gone). */
  private async settleBroadcasts(): Promise<void> {
    while (this.broadcasts.size > 0) await Promise.all([...this.broadcasts]);
  }

  private stateOf(tenant: string): TenantState {
    const s = this.store.get(tenant);
    if (s === undefined) throw new Error(`unknown tenant "${tenant}"`);
    return s;
  }

  // ── admin ──────────────────────────────────────────────────────────────────

  private async startAdmin(a: NonNullable<Config['admin']>): Promise<void> {
    this.admin = new AdminServer(
      { host: a.host, port: a.port, token: a.token, logger: this.logger },
      {
        listTenants: () => this.listTenants(),
        hasTenant: (name) => Object.hasOwn(this.config.tenants, name),
        rotate: async (name, source) => {
          await this.store.rotate(name);
          await this.settleBroadcasts();
          this.logger.info({ audit: 'rotation', tenant: name, source, delaySec: 0 }, 'tenant generation rotated');
          return { generationAgeMs: 0 };
        },
        reload: () => this.reload('admin-api'),
        metrics: () => this.renderMetrics(),
        metricsContentType: this.metrics.contentType,
        ready: async () => (await this.askAll('status')).some((s) => s.ready),
        stateUp: () => this.store.up,
      },
    );
    await this.admin.listen();
    const addr = this.admin.address();
    this.logger.info({ host: addr.host, port: addr.port }, 'admin listening');
  }

  /** GET /tenants: the config's tenants, connections summed over the workers. */
  private async listTenants(): Promise<AdminTenantView[]> {
    const statuses = await this.askAll('status');
    const now = Date.now();
    return Object.entries(this.config.tenants).map(([name, t]) => {
      const st = this.store.get(name);
      return {
        name,
        mode: t.admin ? 'admin' : t.mode,
        admin: t.admin,
        pool: t.pool,
        connections: statuses.reduce((n, s) => n + (s.connections[name] ?? 0), 0),
        generationAgeMs: st === undefined ? null : now - st.rotatedAtMs,
        pendingRotationInMs: st?.pendingAtMs == null ? null : Math.max(0, st.pendingAtMs - now),
      };
    });
  }

  /**
   * GET /metrics: every worker's registry plus the primary's, aggregated by each
   * metric's `aggregator` (sum for memgate's counters and gauges, max for
   * memgate_upstream_up). A worker that does not answer in time is left out, and
   * a restarted worker's counters start again from 0 (a counter reset to Prometheus).
   */
  private async renderMetrics(): Promise<string> {
    const own = await this.metrics.registry.getMetricsAsJSON();
    const fromWorkers = (await this.askAll('metrics')).map((list) =>
      list.filter((m) => !PRIMARY_ONLY_METRICS.has((m as { name?: string }).name ?? '')),
    );
    return AggregatorRegistry.aggregate([own, ...fromWorkers]).metrics();
  }
}
