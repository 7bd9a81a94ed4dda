/**
 * RedisStateStore: generations (and rate budgets, see leases.ts) shared by
 * several memgate instances through Redis (ioredis).
 *
 *   instance A                          Redis                          instance B
 *   flush_all ─▶ memgateRotate ───────▶ HSET tenant:shop …  ──PUBLISH rotations──▶ cache updated
 *   cache updated ◀── reply ─────────── (one atomic script)                        (within ms)
 *   OK to the client
 *
 * - `flush_all` answers OK only once the script has changed the hash in Redis;
 *   the local cache (what `generation()` serves, synchronously) takes the new
 *   generation from the script's reply, the other instances from the message.
 * - Every change bumps the hash's `version`; a cache never goes back to a lower
 *   one, so a late message or reply cannot undo a newer rotation.
 * - A missing tenant gets a fresh random generation inside a script (SET NX
 *   semantics): never a reset, and two instances starting together agree.
 * - A delayed `flush_all` is stored as pendingAtMs; every instance arms a
 *   timer, and the script rotates only if the pending time is still the one it
 *   expected, so exactly one instance performs it.
 * - Redis unreachable: the cache keeps serving the last known generations;
 *   rotate/schedule fail at once with a StateError (the session answers
 *   `SERVER_ERROR state store unavailable`), never applied on this instance
 *   alone. ioredis reconnects with backoff; on every (re)connect the store
 *   re-reads every tenant before it reports itself up again.
 * - Instances heartbeat a sorted set (`<keyPrefix>instances`, scored by expiry),
 *   which gives the live-instance count that slices and the fallback share use.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { isIP } from 'node:net';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { StateError } from '../errors.js';
import { newGeneration } from './generation.js';
import type { BudgetKind, LeaseGrant, LeaseRequest, LeaseSource } from './leases.js';
import { GuardedConnector } from './redis-connector.js';
import { BUDGET_SCRIPTS, READ_TENANTS, TENANT_SCRIPTS } from './redis-scripts.js';
import {
  StateCorruptError,
  tenantStateProblem,
  withoutPassword,
  type StateStore,
  type StateStoreOptions,
  type TenantState,
} from './store.js';

/** How long open() waits for Redis before memgate refuses to start. */
const OPEN_TIMEOUT_MS = 5000;
/** A Redis command (script) that takes longer fails: a flush_all never hangs on a stalled Redis. */
const COMMAND_TIMEOUT_MS = 2000;
const HEARTBEAT_MS = 1000;
const HEARTBEAT_TTL_MS = 3000;
/** A due rotation that could not be performed (Redis down) is tried again after this. */
const DUE_RETRY_MS = 1000;
const MAX_TIMER_MS = 2 ** 31 - 1;
const RECONNECT_MIN_MS = 50;
const RECONNECT_MAX_MS = 2000;

type Listener = (tenant: string, state: TenantState) => void;
type ScriptName = keyof typeof TENANT_SCRIPTS | keyof typeof BUDGET_SCRIPTS;

/** state.tls: PEM files for rediss:// (read when the store opens). */
export interface RedisTlsFiles {
  readonly ca?: string | undefined;
  readonly cert?: string | undefined;
  readonly key?: string | undefined;
  readonly servername?: string | undefined;
}

export interface RedisStoreOptions extends StateStoreOptions {
  /** rediss://: CA, client certificate, server name */
  readonly tls?: RedisTlsFiles;
  /** prefix of every key and channel (state.keyPrefix) */
  readonly keyPrefix?: string;
  /** Sentinel addresses "host:port"; the URL's host:port is then ignored */
  readonly sentinels?: readonly string[];
  readonly sentinelName?: string;
  /** tests: build clients another way (ioredis-mock); gets the options memgate would use */
  readonly createClient?: (url: string, options: RedisOptions) => Redis;
}

/** Backoff between reconnect attempts: 50 ms doubling up to 2 s, forever. */
export function reconnectDelayMs(attempt: number): number {
  return Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** Math.min(attempt - 1, 10));
}

/** ioredis options for `url` (and sentinels). The URL itself carries user, password, db and TLS (rediss://). */
export function redisClientOptions(
  url: string,
  sentinels: readonly string[] | undefined,
  sentinelName: string,
): RedisOptions {
  const base: RedisOptions = {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: COMMAND_TIMEOUT_MS,
    connectTimeout: OPEN_TIMEOUT_MS,
    retryStrategy: reconnectDelayMs,
  };
  if (sentinels === undefined) return base;
  const u = new URL(url);
  const db = Number(u.pathname.slice(1) || '0');
  return {
    ...base,
    sentinels: sentinels.map((s) => {
      const i = s.lastIndexOf(':');
      return { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
    }),
    name: sentinelName,
    ...(u.username === '' ? {} : { username: decodeURIComponent(u.username) }),
    ...(u.password === '' ? {} : { password: decodeURIComponent(u.password) }),
    db: Number.isInteger(db) ? db : 0,
    ...(u.protocol === 'rediss:' ? { tls: {}, enableTLSForSentinelMode: true } : {}),
  };
}

const isTlsUrl = (url: string): boolean => url.startsWith('rediss://');

/**
 * Everything a client of the store connects with: redisClientOptions plus
 * state.tls's files for rediss:// (read now). The store, `memgate state show`
 * and `check-config --connect` all connect through this and newRedisClient.
 */
export function redisConnectionOptions(url: string, opts: RedisStoreOptions): RedisOptions {
  const base = redisClientOptions(url, opts.sentinels, opts.sentinelName ?? 'mymaster');
  return opts.tls === undefined || !isTlsUrl(url) ? base : { ...base, tls: readTls(url, opts.tls) };
}

/** TLS options from state.tls (used with rediss:// only); a file that cannot be read is a StateError naming it. */
function readTls(url: string, files: RedisTlsFiles): NonNullable<RedisOptions['tls']> {
  const read = (what: string, file: string | undefined): Buffer | undefined => {
    if (file === undefined) return undefined;
    try {
      return fs.readFileSync(file);
    } catch (err) {
      throw new StateError(`cannot read state.tls.${what} ${file}: ${(err as Error).message}`, { cause: err });
    }
  };
  const ca = read('ca', files.ca);
  const cert = read('cert', files.cert);
  const key = read('key', files.key);
  let servername = files.servername;
  if (servername === undefined) {
    const host = new URL(url).hostname;
    if (isIP(host) === 0) servername = host;
  }
  return {
    ...(ca === undefined ? {} : { ca }),
    ...(cert === undefined ? {} : { cert }),
    ...(key === undefined ? {} : { key }),
    ...(servername === undefined ? {} : { servername }),
  };
}

/** A client as the store makes them: the URL (or sentinels), sockets through GuardedConnector. */
export function newRedisClient(url: string, options: RedisOptions): Redis {
  return options.sentinels === undefined
    ? new Redis(url, { ...options, Connector: GuardedConnector })
    : new Redis(options);
}

/** `[generation, rotatedAtMs, pendingAtMs, version, rotated?]` as the scripts return it. */
type ScriptState = [string, string, string, string, number?];

export class RedisStateStore implements StateStore {
  /** the URL with its password replaced, for messages and logs */
  readonly where: string;
  readonly keyPrefix: string;
  private readonly url: string;
  private options: RedisOptions;
  private readonly tlsFiles: RedisTlsFiles | undefined;
  private readonly createClient: (url: string, options: RedisOptions) => Redis;
  private readonly logger: Logger | undefined;
  private readonly instanceId = randomUUID();
  private cmd: Redis | null = null;
  private sub: Redis | null = null;
  private readonly states = new Map<string, TenantState>();
  private readonly versions = new Map<string, number>();
  private readonly tenants = new Set<string>();
  private readonly listeners: Listener[] = [];
  private readonly upListeners: ((up: boolean) => void)[] = [];
  private isOpen = false;
  private isClosing = false;
  private isUp = false;
  /** a resync is running; another (re)connect asks for one more */
  private resyncing: Promise<void> | null = null;
  private resyncAgain = false;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private dueTimer: NodeJS.Timeout | null = null;
  private liveInstances = 1;
  private rotations = 0;
  readonly leases: LeaseSource;

  constructor(url: string, opts: RedisStoreOptions = {}) {
    this.url = url;
    this.where = withoutPassword(url);
    this.keyPrefix = opts.keyPrefix ?? 'memgate:';
    this.options = redisClientOptions(url, opts.sentinels, opts.sentinelName ?? 'mymaster');
    this.tlsFiles = opts.tls;
    this.createClient = opts.createClient ?? newRedisClient;
    this.logger = opts.logger;
    this.leases = new RedisLeaseSource(this);
  }

  get rotationsApplied(): number {
    return this.rotations;
  }

  /** Redis answers and every tenant was re-read since the last (re)connect. */
  get up(): boolean {
    return this.isUp;
  }

  /** live memgate instances sharing this Redis and key prefix (last known while down), at least 1 */
  get instances(): number {
    return this.liveInstances;
  }

  /** Told true/false on every change of `up` (metrics, readiness are read on demand instead). */
  onUpChange(listener: (up: boolean) => void): void {
    this.upListeners.push(listener);
  }

  async open(tenants: readonly string[]): Promise<void> {
    if (this.isOpen) throw new Error(`state store ${this.where} is already open`);
    for (const t of tenants) this.tenants.add(t);
    if (this.tlsFiles !== undefined && isTlsUrl(this.url))
      this.options = { ...this.options, tls: readTls(this.url, this.tlsFiles) };
    const cmd = this.createClient(this.url, this.options);
    const sub = this.createClient(this.url, { ...this.options, enableOfflineQueue: true });
    // ioredis emits 'error' on every failed attempt; the state changes are logged once each, below
    let lastError: Error | null = null;
    cmd.on('error', (err: Error) => (lastError = err));
    sub.on('error', () => undefined);
    for (const [name, lua] of Object.entries(TENANT_SCRIPTS)) cmd.defineCommand(name, { numberOfKeys: 1, lua });
    for (const [name, lua] of Object.entries(BUDGET_SCRIPTS)) cmd.defineCommand(name, { numberOfKeys: 1, lua });
    this.cmd = cmd;
    this.sub = sub;
    try {
      await withTimeout(
        Promise.all([cmd.connect(), sub.connect()]),
        OPEN_TIMEOUT_MS,
        `no answer in ${OPEN_TIMEOUT_MS} ms`,
      );
      sub.on('message', (channel: string, message: string) => this.onMessage(channel, message));
      await sub.subscribe(this.channel);
      await this.syncAll();
      await this.heartbeat();
    } catch (err) {
      cmd.disconnect();
      sub.disconnect();
      this.cmd = null;
      this.sub = null;
      if (err instanceof StateCorruptError) throw err;
      // "Connection is closed." says less than the socket's own error (ECONNREFUSED, a TLS failure, NOAUTH)
      const why = (lastError as Error | null)?.message ?? (err as Error).message;
      throw new StateError(`cannot reach Redis at ${this.where}: ${why}`, { cause: err });
    }
    this.isOpen = true;
    this.setUp(true);
    cmd.on('close', () => this.setUp(false));
    sub.on('close', () => this.setUp(false));
    cmd.on('ready', () => this.resyncSoon());
    sub.on('ready', () => this.resyncSoon());
    this.heartbeatTimer = setInterval(() => void this.heartbeat().catch(() => undefined), HEARTBEAT_MS);
    this.heartbeatTimer.unref();
    this.armDueTimer();
  }

  generation(tenant: string): string {
    const s = this.states.get(tenant);
    if (s === undefined) throw new Error(`unknown tenant "${tenant}" in state store ${this.where}`);
    return s.generation;
  }

  get(tenant: string): TenantState | undefined {
    return this.states.get(tenant);
  }

  list(): ReadonlyMap<string, TenantState> {
    return new Map(this.states);
  }

  async rotate(tenant: string): Promise<TenantState> {
    const r = await this.runTenantScript('memgateRotate', tenant, []);
    return r;
  }

  async schedule(tenant: string, atMs: number): Promise<TenantState> {
    if (!Number.isFinite(atMs)) throw new TypeError(`schedule(${tenant}): atMs must be a finite number, got ${atMs}`);
    const r = await this.runTenantScript('memgateSchedule', tenant, [String(Math.round(atMs))]);
    this.armDueTimer();
    return r;
  }

  async addTenants(tenants: readonly string[]): Promise<void> {
    const added = tenants.filter((t) => !this.tenants.has(t));
    for (const t of added) this.tenants.add(t);
    for (const t of added) await this.runTenantScript('memgateEnsure', t, []);
    this.armDueTimer();
  }

  onChange(listener: Listener): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {
    if (!this.isOpen) return;
    this.isClosing = true;
    if (this.heartbeatTimer !== null) clearInterval(this.heartbeatTimer);
    if (this.dueTimer !== null) clearTimeout(this.dueTimer);
    this.heartbeatTimer = null;
    this.dueTimer = null;
    const cmd = this.cmd;
    const sub = this.sub;
    if (cmd !== null && this.isUp) {
      await this.run('memgateHeartbeat', `${this.keyPrefix}instances`, [this.instanceId, Date.now(), 0]).catch(
        () => undefined,
      );
    }
    await Promise.all([cmd?.quit().catch(() => cmd.disconnect()), sub?.quit().catch(() => sub.disconnect())]);
    this.isOpen = false;
    this.isUp = false;
    this.cmd = null;
    this.sub = null;
  }

  // ── budgets (RedisLeaseSource) ───────────────────────────────────────────

  /** @internal */
  async leaseTokens(req: LeaseRequest): Promise<LeaseGrant> {
    const args = [req.want, req.rate, req.burst, Date.now(), req.debt];
    const r = (await this.run('memgateLease', this.budgetKey(req.tenant, req.kind), args)) as [number, number];
    return { granted: Number(r[0]), waitMs: Number(r[1]) };
  }

  /** @internal */
  async giveBackTokens(tenant: string, kind: BudgetKind, n: number, rate: number, burst: number): Promise<void> {
    await this.run('memgateGiveBack', this.budgetKey(tenant, kind), [n, rate, burst, Date.now()]);
  }

  // ── internals ────────────────────────────────────────────────────────────

  private get channel(): string {
    return `${this.keyPrefix}rotations`;
  }

  private tenantKey(tenant: string): string {
    return `${this.keyPrefix}tenant:${tenant}`;
  }

  private budgetKey(tenant: string, kind: BudgetKind): string {
    return `${this.keyPrefix}budget:${tenant}:${kind}`;
  }

  /** Runs a script; refused at once while Redis is not up (no offline queue: nothing is applied later behind our back). */
  private run(name: ScriptName, key: string, args: readonly (string | number)[]): Promise<unknown> {
    const cmd = this.cmd;
    if (cmd === null || this.isClosing) return Promise.reject(new StateError(`state store ${this.where} is not open`));
    const fn = (cmd as unknown as Record<string, (...a: (string | number)[]) => Promise<unknown>>)[name];
    if (fn === undefined) return Promise.reject(new Error(`script ${name} is not defined`));
    return fn.call(cmd, key, ...args);
  }

  /** A tenant script: fresh generations and the time are drawn here; the reply updates the cache. */
  private async runTenantScript(
    name: keyof typeof TENANT_SCRIPTS,
    tenant: string,
    extra: readonly string[],
  ): Promise<TenantState> {
    if (!this.isOpen && name !== 'memgateEnsure') throw new StateError(`state store ${this.where} is not open`);
    // (memgateEnsure is how a reconnect re-reads: it runs before the store reports up again)
    if (this.isOpen && !this.isUp && name !== 'memgateEnsure') {
      throw new StateError(
        `Redis at ${this.where} is unreachable: not changing ${tenant} (it would not reach the other instances)`,
      );
    }
    let r: ScriptState;
    try {
      r = (await this.run(name, this.tenantKey(tenant), [
        newGeneration(),
        newGeneration(),
        String(Date.now()),
        this.channel,
        tenant,
        ...extra,
      ])) as ScriptState;
    } catch (err) {
      if (err instanceof StateError) throw err;
      throw new StateError(`Redis at ${this.where}: ${(err as Error).message}`, { cause: err });
    }
    if (Number(r[4] ?? 0) === 1) {
      this.rotations++;
      this.logger?.info(
        { audit: 'rotation', tenant, source: name === 'memgateRotate' ? 'redis' : 'scheduled' },
        'generation rotated in Redis',
      );
    }
    return this.applyScriptState(tenant, r);
  }

  private applyScriptState(tenant: string, r: ScriptState): TenantState {
    const state = this.parseState(tenant, r[0], r[1], r[2]);
    this.apply(tenant, state, Number(r[3]));
    return this.states.get(tenant) ?? state;
  }

  private parseState(tenant: string, generation: string, rotatedAtMs: string, pendingAtMs: string): TenantState {
    return parseTenantHash(`${this.where} ${this.tenantKey(tenant)}`, generation, rotatedAtMs, pendingAtMs);
  }

  /** Takes a state unless the cache already has this version or a newer one. */
  private apply(tenant: string, state: TenantState, version: number): void {
    const known = this.versions.get(tenant);
    if (known !== undefined && Number.isFinite(version) && version <= known) return;
    const previous = this.states.get(tenant);
    this.versions.set(tenant, version);
    this.states.set(tenant, state);
    if (previous?.pendingAtMs !== state.pendingAtMs) this.armDueTimer();
    if (
      previous !== undefined &&
      previous.generation === state.generation &&
      previous.rotatedAtMs === state.rotatedAtMs &&
      previous.pendingAtMs === state.pendingAtMs
    ) {
      return;
    }
    for (const listener of this.listeners) {
      try {
        listener(tenant, state);
      } catch (err) {
        this.logger?.error({ err, tenant }, 'state change listener threw');
      }
    }
  }

  /** `version|tenant|generation|rotatedAtMs|pendingAtMs` from another instance (or this one). */
  private onMessage(channel: string, message: string): void {
    if (channel !== this.channel) return;
    const parts = message.split('|');
    if (parts.length !== 5) return;
    const [version = '', tenant = '', generation = '', rotatedAtMs = '', pendingAtMs = ''] = parts;
    try {
      this.apply(tenant, this.parseState(tenant, generation, rotatedAtMs, pendingAtMs), Number(version));
    } catch (err) {
      this.logger?.warn({ err, tenant }, 'ignored a malformed rotation message');
    }
  }

  /** Creates missing tenants, applies overdue rotations, reads everything else: the whole cache, fresh. */
  private async syncAll(): Promise<void> {
    for (const t of this.tenants) await this.runTenantScript('memgateEnsure', t, []);
    // tenants other instances know (their configs may differ): read only, never created here
    const cmd = this.cmd;
    if (cmd === null) return;
    const others = [...this.states.keys()].filter((t) => !this.tenants.has(t));
    if (others.length === 0) return;
    const rows = (await cmd.eval(READ_TENANTS, others.length, ...others.map((t) => this.tenantKey(t)))) as (
      [string, string, string, string] | null
    )[];
    others.forEach((t, i) => {
      const row = rows[i];
      if (row) this.applyScriptState(t, row);
    });
  }

  /** A (re)connect: re-read every tenant, then report up. Runs one at a time; a connect meanwhile asks for another. */
  private resyncSoon(): void {
    if (!this.isOpen || this.isClosing) return;
    if (this.resyncing !== null) {
      this.resyncAgain = true;
      return;
    }
    this.resyncing = (async () => {
      do {
        this.resyncAgain = false;
        if (this.cmd?.status !== 'ready' || this.sub?.status !== 'ready') return;
        try {
          await this.syncAll();
          await this.heartbeat();
        } catch (err) {
          this.logger?.warn(
            { err: (err as Error).message, redis: this.where },
            'state re-read after reconnect failed; retrying',
          );
          this.resyncAgain = true;
          await new Promise((r) => setTimeout(r, DUE_RETRY_MS).unref());
          continue;
        }
        this.setUp(true);
      } while (this.resyncAgain && !this.isClosing);
    })().finally(() => {
      this.resyncing = null;
    });
  }

  private setUp(up: boolean): void {
    if (this.isClosing || up === this.isUp) return;
    this.isUp = up;
    if (up) this.logger?.warn({ redis: this.where }, 'state store reachable again: every tenant re-read');
    else {
      this.logger?.warn(
        { redis: this.where, instances: this.liveInstances },
        'state store unreachable: serving the last known generations; flush_all and rotate are refused; rate limits use the local share',
      );
    }
    for (const l of this.upListeners) l(up);
    if (up) this.armDueTimer();
  }

  private async heartbeat(): Promise<void> {
    const n = await this.run('memgateHeartbeat', `${this.keyPrefix}instances`, [
      this.instanceId,
      Date.now(),
      HEARTBEAT_TTL_MS,
    ]);
    const count = Number(n);
    if (Number.isInteger(count) && count >= 1) this.liveInstances = count;
  }

  private armDueTimer(delayFloorMs = 0): void {
    if (this.dueTimer !== null) clearTimeout(this.dueTimer);
    this.dueTimer = null;
    if (!this.isOpen || this.isClosing) return;
    let earliest = Infinity;
    for (const s of this.states.values())
      if (s.pendingAtMs !== null && s.pendingAtMs < earliest) earliest = s.pendingAtMs;
    if (earliest === Infinity) return;
    const delayMs = Math.min(Math.max(earliest - Date.now(), delayFloorMs), MAX_TIMER_MS);
    this.dueTimer = setTimeout(() => void this.fireDue(), delayMs);
    this.dueTimer.unref();
  }

  /** Every instance tries; the script's compare lets exactly one rotate each due tenant. */
  private async fireDue(): Promise<void> {
    this.dueTimer = null;
    const now = Date.now();
    let failed = false;
    for (const [tenant, s] of this.states) {
      if (s.pendingAtMs === null || s.pendingAtMs > now) continue;
      if (!this.isUp) {
        failed = true;
        continue;
      }
      try {
        await this.runTenantScript('memgateFireDue', tenant, [String(s.pendingAtMs)]);
      } catch (err) {
        failed = true;
        this.logger?.warn({ err: (err as Error).message, tenant }, 'scheduled rotation not applied yet; retrying');
      }
    }
    this.armDueTimer(failed ? DUE_RETRY_MS : 0);
  }
}

/** The lease source over the store's Redis connection. */
class RedisLeaseSource implements LeaseSource {
  private readonly store: RedisStateStore;

  constructor(store: RedisStateStore) {
    this.store = store;
  }

  get instances(): number {
    return this.store.instances;
  }

  get up(): boolean {
    return this.store.up;
  }

  lease(req: LeaseRequest): Promise<LeaseGrant> {
    return this.store.leaseTokens(req);
  }

  giveBack(tenant: string, kind: BudgetKind, tokens: number, rate: number, burst: number): Promise<void> {
    return this.store.giveBackTokens(tenant, kind, tokens, rate, burst);
  }
}

/** A tenant hash's fields as strings (pendingAtMs '' = none) → a checked TenantState; StateCorruptError names `where`. */
function parseTenantHash(where: string, generation: string, rotatedAtMs: string, pendingAtMs: string): TenantState {
  const s = {
    generation,
    rotatedAtMs: Number(rotatedAtMs),
    pendingAtMs: pendingAtMs === '' || pendingAtMs === null ? null : Number(pendingAtMs),
  };
  const problem = tenantStateProblem(s);
  if (problem !== null) throw new StateCorruptError(where, problem);
  return Object.freeze(s);
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(what)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * `memgate state show` without a running memgate: the tenants' states as
 * Redis has them (read only: nothing is created). Missing tenants are absent.
 */
export async function readRedisStates(
  url: string,
  tenants: readonly string[],
  opts: RedisStoreOptions = {},
): Promise<Map<string, TenantState>> {
  const store = new RedisStateStore(url, opts);
  const options = redisConnectionOptions(url, opts);
  const client = (opts.createClient ?? newRedisClient)(url, { ...options, retryStrategy: () => null });
  let lastError: Error | null = null;
  client.on('error', (err: Error) => (lastError = err));
  try {
    await withTimeout(client.connect(), OPEN_TIMEOUT_MS, `no answer in ${OPEN_TIMEOUT_MS} ms`);
    const prefix = store.keyPrefix;
    const out = new Map<string, TenantState>();
    if (tenants.length === 0) return out;
    const rows = (await client.eval(READ_TENANTS, tenants.length, ...tenants.map((t) => `${prefix}tenant:${t}`))) as (
      [string, string, string, string] | null
    )[];
    tenants.forEach((t, i) => {
      const row = rows[i];
      if (!row) return;
      out.set(t, parseTenantHash(`${store.where} ${prefix}tenant:${t}`, row[0], row[1], row[2]));
    });
    return out;
  } catch (err) {
    if (err instanceof StateCorruptError) throw err;
    const why = (lastError as Error | null)?.message ?? (err as Error).message;
    throw new StateError(`cannot reach Redis at ${store.where}: ${why}`, { cause: err });
  } finally {
    client.disconnect();
  }
}

/**
 * `memgate rotate` without a running memgate: a RedisStateStore opened just
 * for this tenant; running instances (if any) get the rotation by pub/sub.
 */
export async function rotateInRedis(url: string, tenant: string, opts: RedisStoreOptions = {}): Promise<TenantState> {
  const store = new RedisStateStore(url, opts);
  await store.open([tenant]);
  try {
    return await store.rotate(tenant);
  } finally {
    await store.close();
  }
}
