/**
 * The state store: each tenant's current generation, durable across restarts.
 *
 * Two implementations sit behind one interface: a local JSON file (the
 * embedded default, file-store.ts) and Redis (shared by several memgate
 * instances, redis-store.ts). The hot path only ever calls `generation()`, which is a
 * synchronous Map lookup; everything that changes state is async and resolves
 * only once the change is durable.
 *
 * Safety rule for every implementation: a generation is never reset to a known
 * value. Missing state means a fresh random generation, so items written under
 * a lost generation stay unreachable.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { ProxyError } from '../errors.js';
import { FileStateStore } from './file-store.js';
import { isGeneration, newGeneration } from './generation.js';
import { RedisStateStore, type RedisStoreOptions, type RedisTlsFiles } from './redis-store.js';

export interface TenantState {
  /** current generation (see generation.ts) */
  readonly generation: string;
  /** wall clock (Date.now()) of the last rotation, or of the first generation */
  readonly rotatedAtMs: number;
  /** wall clock of a scheduled rotation (flush_all <delay>), or null */
  readonly pendingAtMs: number | null;
}

export interface StateStore {
  /** Loads state. Tenants with no state get fresh random generations; overdue pending rotations are applied now. All of it is durable before this resolves. */
  open(tenants: readonly string[]): Promise<void>;
  /** Current generation, synchronous, from memory (hot path). Throws if the tenant is unknown. */
  generation(tenant: string): string;
  get(tenant: string): TenantState | undefined;
  list(): ReadonlyMap<string, TenantState>;
  /** Replaces the generation now (clears a pending one). Durable BEFORE the promise resolves. */
  rotate(tenant: string): Promise<TenantState>;
  /** Schedules a rotation at `atMs` (wall clock); replaces any pending one. Durable before resolve. The store performs it when due. */
  schedule(tenant: string, atMs: number): Promise<TenantState>;
  /** Adds tenants that appeared on config reload (fresh generations); never forgets removed ones' state. */
  addTenants(tenants: readonly string[]): Promise<void>;
  /**
   * Rotations this store has made since it was created: rotate(), scheduled
   * ones when they fire, overdue ones applied at open (memgate_rotations_total).
   * A schedule that a later one replaces is never counted. A store that only
   * relays another's changes (cluster/ipc-store.ts) reports 0: that one counts.
   */
  readonly rotationsApplied: number;
  /**
   * False while the store cannot make changes that every instance sees (Redis
   * unreachable): generations are served from the last known state, rotations
   * are refused. Always true for the file store.
   */
  readonly up: boolean;
  /** Called after every change (rotation, scheduled rotation fired, external reload). */
  onChange(listener: (tenant: string, state: TenantState) => void): void;
  close(): Promise<void>;
}

/** The stored state could not be understood. Names the file (or key) and the problem. */
export class StateCorruptError extends ProxyError {
  /** the file (or, for Redis, the key) that is corrupt */
  readonly file: string;
  /** what is wrong with it, e.g. `tenants.shop.generation is not an 8-character [0-9A-Za-z] token` */
  readonly problem: string;

  constructor(file: string, problem: string, options?: { readonly cause?: unknown }) {
    super('ERR_STATE_CORRUPT', `state file ${file} is corrupt: ${problem}`, options);
    this.name = 'StateCorruptError';
    this.file = file;
    this.problem = problem;
  }
}

export interface StateStoreOptions {
  /** a corrupt state gives every tenant a fresh generation (and is kept aside) instead of refusing to start */
  readonly rotateAllOnCorrupt?: boolean;
  readonly logger?: Logger;
  /**
   * The file store, when its lock is held at open(): wait to see whether the
   * holder is alive (it refreshes the lock: fail) or not (the lock turns stale:
   * take it over). Default true; false fails at once (lock.ts waitForStale).
   */
  readonly waitForStaleLock?: boolean;
}

export type StateLocation =
  { readonly kind: 'file'; readonly path: string } | { readonly kind: 'redis'; readonly url: string };

/**
 * Parses `state.url`: "file:PATH" (PATH relative to the working directory, or
 * a "file:///abs/path" URL) or "redis://…" / "rediss://…".
 */
export function parseStateUrl(url: string): StateLocation {
  if (url.startsWith('redis://') || url.startsWith('rediss://')) return { kind: 'redis', url };
  if (url.startsWith('file://')) return { kind: 'file', path: fileURLToPath(url) };
  if (url.startsWith('file:')) {
    const p = url.slice('file:'.length);
    if (p === '') throw new Error(`state url "${url}" has no path; use file:PATH`);
    return { kind: 'file', path: path.resolve(p) };
  }
  throw new Error(`unsupported state url "${url}": use file:PATH or redis://HOST:PORT/DB`);
}

/** `redis://user:***@host:6379/0`: the password of a URL replaced, for messages. */
export function withoutPassword(url: string): string {
  try {
    const u = new URL(url);
    if (u.password === '') return url;
    u.password = '***';
    return u.href;
  } catch {
    return url.replace(/\/\/([^/@:]*):[^/@]*@/, '//$1:***@');
  }
}

/** The config's `state` section, as far as opening a store needs it. */
export interface StateConfigLike {
  readonly url: string;
  readonly keyPrefix?: string;
  readonly sentinels?: readonly string[] | undefined;
  readonly sentinelName?: string;
  readonly tls?: RedisTlsFiles | undefined;
}

/** The store for `state.url` (a string, or the whole `state` section for Redis's options). Does no I/O: call `open()` next. */
export function openStateStore(state: string | StateConfigLike, opts: RedisStoreOptions = {}): StateStore {
  const cfg: StateConfigLike = typeof state === 'string' ? { url: state } : state;
  const where = parseStateUrl(cfg.url);
  if (where.kind === 'redis') {
    return new RedisStateStore(where.url, {
      ...opts,
      ...(cfg.keyPrefix === undefined ? {} : { keyPrefix: cfg.keyPrefix }),
      ...(cfg.sentinels === undefined ? {} : { sentinels: cfg.sentinels }),
      ...(cfg.sentinelName === undefined ? {} : { sentinelName: cfg.sentinelName }),
      ...(cfg.tls === undefined ? {} : { tls: cfg.tls }),
    });
  }
  return new FileStateStore(where.path, opts);
}

/**
 * A tenant's state right after a rotation at `nowMs`: a fresh generation
 * (never the previous one), no pending rotation.
 */
export function freshTenantState(previous: TenantState | undefined, nowMs: number): TenantState {
  let generation = newGeneration();
  // NOTE: a repeat is a 1 in 2e14 event, but a rotation that keeps the old generation would be a flush that flushes nothing.
  while (previous !== undefined && generation === previous.generation) generation = newGeneration();
  return Object.freeze({ generation, rotatedAtMs: nowMs, pendingAtMs: null });
}

/** Why `value` is not a valid TenantState (a phrase naming the field), or null when it is. */
export function tenantStateProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'is not an object';
  const v = value as Record<string, unknown>;
  if (!isGeneration(v['generation'])) return 'generation is not an 8-character [0-9A-Za-z] token';
  const rotatedAtMs = v['rotatedAtMs'];
  if (typeof rotatedAtMs !== 'number' || !Number.isFinite(rotatedAtMs) || rotatedAtMs < 0) {
    return 'rotatedAtMs is not a non-negative number';
  }
  const pendingAtMs = v['pendingAtMs'];
  if (pendingAtMs !== null && (typeof pendingAtMs !== 'number' || !Number.isFinite(pendingAtMs))) {
    return 'pendingAtMs is neither null nor a number';
  }
  return null;
}
