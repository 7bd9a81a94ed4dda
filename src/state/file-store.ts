/**
 * FileStateStore: generations in a local JSON file, the embedded default.
 *
 *   { "version": 1,
 *     "tenants": { "shop": { "generation": "T3m9QxA0", "rotatedAtMs": 1735689600000, "pendingAtMs": null } } }
 *
 * Two copies of the state live in memory:
 *
 *   staged     ──write (one at a time)──▶  file  ──then──▶  committed ──▶ generation() (hot path), onChange
 *   (every change lands here first)                          (what is on disk)
 *
 * A change goes into `staged` and asks for a write. Writes never overlap: a
 * change made while a write is in flight is picked up by the next write, and
 * every change made meanwhile shares that one write (coalescing). Only once a
 * write is durable are its states copied into `committed`, listeners told and
 * the callers' promises resolved. So the hot path never serves a generation
 * that a restart could take back.
 *
 * A write is atomic: temp file in the same directory, fsync, rename over the
 * target, fsync the directory. A crash leaves either the old file or the new
 * one, never a torn one.
 *
 * A write that fails rejects the callers waiting on it, but its changes stay
 * staged and are written by a retry (or the next change): a rotation may land
 * late, never be undone, because only the durable state is ever served.
 *
 * The store holds `<file>.lock` (lock.ts) while open, so `memgate rotate`
 * without a running memgate (updateStateFileOffline) cannot race it.
 *
 * NOTE: store.ts imports this file to construct it, and this file imports
 * store.ts's error class and helpers. Neither uses the other at module top
 * level, so the cycle is safe under ESM.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { StateError } from '../errors.js';
import { LOCK_STALE_MS, acquireStateLock, type StateLock } from './lock.js';
import {
  StateCorruptError,
  freshTenantState,
  tenantStateProblem,
  type StateStore,
  type StateStoreOptions,
  type TenantState,
} from './store.js';

export const STATE_FILE_VERSION = 1;

/** Delay before a failed write is tried again (the changes stay staged meanwhile). */
const WRITE_RETRY_MS = 1000;

/** setTimeout's largest delay (about 24.8 days); a later rotation re-arms when it wakes. */
const MAX_TIMER_MS = 2 ** 31 - 1;

type Listener = (tenant: string, state: TenantState) => void;

interface Waiter {
  resolve(): void;
  reject(err: unknown): void;
}

export class FileStateStore implements StateStore {
  readonly filePath: string;
  private readonly rotateAllOnCorrupt: boolean;
  private readonly waitForStaleLock: boolean;
  private readonly logger: Logger | undefined;
  /** durable state: what generation() serves */
  private readonly committed = new Map<string, TenantState>();
  /** committed plus changes not yet durable; every decision is taken on this one */
  private readonly staged = new Map<string, TenantState>();
  private readonly listeners: Listener[] = [];
  private lock: StateLock | null = null;
  /** set when the lock was lost while open: from then on nothing is written (another process may own the file) */
  private lockLost: StateError | null = null;
  private isOpening = false;
  private isOpen = false;
  private isClosing = false;
  /** a change is staged that no write has picked up yet */
  private isDirty = false;
  /** callers waiting for the next write to start */
  private waiters: Waiter[] = [];
  /** the write loop while it runs */
  private flushing: Promise<void> | null = null;
  private dueTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private writes = 0;
  private rotations = 0;

  constructor(filePath: string, opts: StateStoreOptions = {}) {
    this.filePath = path.resolve(filePath);
    this.rotateAllOnCorrupt = opts.rotateAllOnCorrupt ?? false;
    this.waitForStaleLock = opts.waitForStaleLock ?? true;
    this.logger = opts.logger;
  }

  /** A local file is always reachable (a failed write is an error of that write, not an outage). */
  readonly up = true;

  get rotationsApplied(): number {
    return this.rotations;
  }

  /** Completed writes of the state file, open() included (tests check coalescing with it). */
  get writeCount(): number {
    return this.writes;
  }

  async open(tenants: readonly string[]): Promise<void> {
    if (this.isOpen || this.isOpening) throw new Error(`state store ${this.filePath} is already open`);
    this.isOpening = true;
    try {
      this.lock = await acquireStateLock(this.filePath, {
        onLost: (err) => this.lockWasLost(err),
        waitForStale: this.waitForStaleLock,
        onWait: (lockPath, ageMs) =>
          this.logger?.warn(
            { file: this.filePath, lock: lockPath, lockAgeMs: ageMs, staleAfterMs: LOCK_STALE_MS },
            'state file lock is held: waiting to see whether its holder is alive (it refreshes it) or gone (it turns stale)',
          ),
      });
    } finally {
      this.isOpening = false;
    }
    this.lockLost = null;
    this.committed.clear();
    this.staged.clear();
    try {
      await removeTempFiles(this.filePath);
      const loaded = await this.load();
      const nowMs = Date.now();
      let overdue = 0;
      for (const name of tenants) {
        if (!loaded.has(name)) loaded.set(name, freshTenantState(undefined, nowMs));
      }
      for (const [name, s] of loaded) {
        if (s.pendingAtMs !== null && s.pendingAtMs <= nowMs) {
          loaded.set(name, freshTenantState(s, nowMs));
          overdue++;
          this.logger?.info(
            { audit: 'rotation', tenant: name, source: 'scheduled', dueAtMs: s.pendingAtMs },
            'overdue scheduled rotation applied at start',
          );
        }
      }
      await writeStateFileAtomic(this.filePath, loaded);
      this.writes++;
      this.rotations += overdue;
      for (const [name, s] of loaded) {
        this.committed.set(name, s);
        this.staged.set(name, s);
      }
    } catch (err) {
      await this.lock.release();
      this.lock = null;
      throw err;
    }
    this.isOpen = true;
    this.armDueTimer();
  }

  generation(tenant: string): string {
    const s = this.committed.get(tenant);
    if (s === undefined) throw new Error(`unknown tenant "${tenant}" in state store ${this.filePath}`);
    return s.generation;
  }

  get(tenant: string): TenantState | undefined {
    return this.committed.get(tenant);
  }

  list(): ReadonlyMap<string, TenantState> {
    return new Map(this.committed);
  }

  async rotate(tenant: string): Promise<TenantState> {
    const previous = this.stagedState(tenant);
    const next = freshTenantState(previous, Date.now());
    this.staged.set(tenant, next);
    this.armDueTimer(); // the pending rotation it cleared may have been the earliest
    await this.persist();
    return next;
  }

  async schedule(tenant: string, atMs: number): Promise<TenantState> {
    if (!Number.isFinite(atMs)) throw new TypeError(`schedule(${tenant}): atMs must be a finite number, got ${atMs}`);
    const previous = this.stagedState(tenant);
    // memcached: a later flush_all replaces a pending one, so this overwrites pendingAtMs.
    const next: TenantState = Object.freeze({ ...previous, pendingAtMs: atMs });
    this.staged.set(tenant, next);
    this.armDueTimer();
    await this.persist();
    return next;
  }

  async addTenants(tenants: readonly string[]): Promise<void> {
    this.assertOpen();
    const nowMs = Date.now();
    let added = 0;
    for (const name of tenants) {
      if (this.staged.has(name)) continue;
      this.staged.set(name, freshTenantState(undefined, nowMs));
      added++;
    }
    if (added > 0) await this.persist();
  }

  onChange(listener: Listener): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {
    if (!this.isOpen) return;
    this.isClosing = true;
    this.clearTimers();
    while (this.flushing !== null) await this.flushing;
    this.isOpen = false;
    this.isClosing = false;
    await this.lock?.release();
    this.lock = null;
  }

  // ── internals ──────────────────────────────────────────────────────────────

  private assertOpen(): void {
    if (!this.isOpen || this.isClosing) throw new StateError(`state store ${this.filePath} is not open`);
  }

  private stagedState(tenant: string): TenantState {
    this.assertOpen();
    const s = this.staged.get(tenant);
    if (s === undefined) throw new Error(`unknown tenant "${tenant}" in state store ${this.filePath}`);
    return s;
  }

  /** Resolves once everything staged before this call is on disk. */
  private persist(): Promise<void> {
    // (checked here, not only in flushLoop: a loop that never awaits would end before `flushing` is set)
    if (this.lockLost !== null) return Promise.reject(this.lockLost);
    this.isDirty = true;
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (this.flushing === null) this.flushing = this.flushLoop();
    return done;
  }

  /** The single writer: one write at a time, each taking every change staged before it started. */
  private async flushLoop(): Promise<void> {
    while (this.isDirty) {
      this.isDirty = false;
      const waiters = this.waiters;
      this.waiters = [];
      const snapshot = new Map(this.staged);
      if (this.lockLost !== null) {
        // lost while the previous write was in flight
        for (const w of waiters) w.reject(this.lockLost);
        continue;
      }
      try {
        await writeStateFileAtomic(this.filePath, snapshot);
      } catch (err) {
        const failure = new StateError(`cannot write state file ${this.filePath}: ${(err as Error).message}`, {
          cause: err,
        });
        this.logger?.error({ err: failure }, 'state write failed; the change stays pending and is retried');
        for (const w of waiters) w.reject(failure);
        this.scheduleRetry();
        continue;
      }
      this.writes++;
      this.commit(snapshot);
      for (const w of waiters) w.resolve();
    }
    this.flushing = null;
  }

  /** Copies a durable snapshot into `committed` and tells listeners about what changed. */
  private commit(snapshot: ReadonlyMap<string, TenantState>): void {
    for (const [name, s] of snapshot) {
      const previous = this.committed.get(name);
      if (previous === s) continue;
      if (previous !== undefined && previous.generation !== s.generation) this.rotations++;
      this.committed.set(name, s);
      for (const listener of this.listeners) {
        try {
          listener(name, s);
        } catch (err) {
          this.logger?.error({ err, tenant: name }, 'state change listener threw');
        }
      }
    }
  }

  /**
   * The lock was removed or taken over while this store held it. Another
   * process may be writing the file now, so this one never writes it again:
   * every later change fails with this error. Restart memgate to take the lock
   * again.
   */
  private lockWasLost(err: StateError): void {
    this.lockLost = err;
    this.logger?.error(
      { err, file: this.filePath },
      'state file lock lost: no further state changes are written; restart memgate once only one uses this state file',
    );
  }

  private scheduleRetry(): void {
    if (this.isClosing || !this.isOpen || this.retryTimer !== null) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.isClosing || !this.isOpen) return;
      this.persist().catch(() => {
        // logged by flushLoop
      });
    }, WRITE_RETRY_MS);
    this.retryTimer.unref();
  }

  /** One timer, for the earliest pending rotation of any tenant. */
  private armDueTimer(): void {
    if (this.dueTimer !== null) clearTimeout(this.dueTimer);
    this.dueTimer = null;
    if (this.isClosing) return;
    let earliest = Infinity;
    for (const s of this.staged.values()) {
      if (s.pendingAtMs !== null && s.pendingAtMs < earliest) earliest = s.pendingAtMs;
    }
    if (earliest === Infinity) return;
    const delayMs = Math.min(Math.max(earliest - Date.now(), 0), MAX_TIMER_MS);
    this.dueTimer = setTimeout(() => this.rotateDue(), delayMs);
    this.dueTimer.unref();
  }

  /** Applies every pending rotation whose time has come, then re-arms for the next one. */
  private rotateDue(): void {
    this.dueTimer = null;
    if (!this.isOpen || this.isClosing) return;
    // Timers may wake a little early, or the wall clock may have moved back: only what is due now rotates.
    const nowMs = Date.now();
    const rotated: { tenant: string; dueAtMs: number }[] = [];
    for (const [name, s] of this.staged) {
      if (s.pendingAtMs === null || s.pendingAtMs > nowMs) continue;
      this.staged.set(name, freshTenantState(s, nowMs));
      rotated.push({ tenant: name, dueAtMs: s.pendingAtMs });
    }
    this.armDueTimer();
    if (rotated.length === 0) return;
    this.persist().then(
      () => {
        for (const r of rotated) {
          this.logger?.info({ audit: 'rotation', source: 'scheduled', ...r }, 'scheduled rotation applied');
        }
      },
      () => {
        // logged by flushLoop, and retried
      },
    );
  }

  private clearTimers(): void {
    if (this.dueTimer !== null) clearTimeout(this.dueTimer);
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.dueTimer = null;
    this.retryTimer = null;
  }

  /** The file's tenants; empty when the file does not exist; fresh-for-all (after setting it aside) when corrupt and allowed. */
  private async load(): Promise<Map<string, TenantState>> {
    const text = await readStateText(this.filePath);
    if (text === null) {
      this.logger?.info({ file: this.filePath }, 'no state file: every tenant gets a fresh generation');
      return new Map();
    }
    try {
      return parseStateFile(this.filePath, text);
    } catch (err) {
      if (!(err instanceof StateCorruptError) || !this.rotateAllOnCorrupt) throw err;
      const aside = `${this.filePath}.corrupt-${Date.now()}`;
      await fsp.rename(this.filePath, aside);
      this.logger?.warn(
        { file: this.filePath, keptAs: aside, problem: err.problem },
        'state file is corrupt: every tenant gets a fresh generation (rotateAllOnCorrupt)',
      );
      return new Map();
    }
  }
}

// ── file format and atomic I/O (shared with updateStateFileOffline) ──────────

/** The file's text, or null when it does not exist. Other read errors are thrown. */
async function readStateText(filePath: string): Promise<string | null> {
  try {
    return await fsp.readFile(filePath, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new StateError(`cannot read state file ${filePath}: ${(err as Error).message}`, { cause: err });
  }
}

/** Parses and checks the file's text; throws StateCorruptError naming the file and the first problem. */
export function parseStateFile(filePath: string, text: string): Map<string, TenantState> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new StateCorruptError(filePath, `not valid JSON (${(err as Error).message})`, { cause: err });
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new StateCorruptError(filePath, 'top level is not an object');
  }
  const d = doc as Record<string, unknown>;
  if (d['version'] !== STATE_FILE_VERSION) {
    throw new StateCorruptError(filePath, `version is ${JSON.stringify(d['version'])}, expected ${STATE_FILE_VERSION}`);
  }
  const tenants = d['tenants'];
  if (typeof tenants !== 'object' || tenants === null || Array.isArray(tenants)) {
    throw new StateCorruptError(filePath, 'tenants is not an object');
  }
  const out = new Map<string, TenantState>();
  for (const [name, value] of Object.entries(tenants)) {
    const problem = tenantStateProblem(value);
    if (problem !== null) throw new StateCorruptError(filePath, `tenants.${name}: ${problem}`);
    const v = value as TenantState;
    out.set(name, Object.freeze({ generation: v.generation, rotatedAtMs: v.rotatedAtMs, pendingAtMs: v.pendingAtMs }));
  }
  return out;
}

/** The file's text for these tenants: sorted by name, so diffs of the file stay readable. */
export function formatStateFile(tenants: ReadonlyMap<string, TenantState>): string {
  const obj: Record<string, TenantState> = {};
  for (const name of [...tenants.keys()].sort()) {
    const s = tenants.get(name);
    if (s === undefined) continue;
    obj[name] = { generation: s.generation, rotatedAtMs: s.rotatedAtMs, pendingAtMs: s.pendingAtMs };
  }
  return `${JSON.stringify({ version: STATE_FILE_VERSION, tenants: obj }, null, 2)}\n`;
}

let tempCounter = 0;

function tempPrefix(filePath: string): string {
  return `${path.basename(filePath)}.tmp-`;
}

/**
 * temp file (same directory) → write → fsync → rename over the target → fsync the directory.
 * The rename is atomic; the directory fsync makes the rename itself survive a power loss.
 */
export async function writeStateFileAtomic(filePath: string, tenants: ReadonlyMap<string, TenantState>): Promise<void> {
  const dir = path.dirname(filePath);
  const tmp = path.join(dir, `${tempPrefix(filePath)}${process.pid}-${++tempCounter}`);
  const text = formatStateFile(tenants);
  try {
    const fh = await fsp.open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, filePath);
  } catch (err) {
    await fsp.unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fsyncDirectory(dir);
}

async function fsyncDirectory(dir: string): Promise<void> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(dir, 'r');
  } catch (err) {
    // Some platforms cannot open a directory for reading (Windows); the rename is still atomic there.
    if (isUnsupportedDirSync(err)) return;
    throw err;
  }
  try {
    await fh.sync();
  } catch (err) {
    if (!isUnsupportedDirSync(err)) throw err;
  } finally {
    await fh.close();
  }
}

function isUnsupportedDirSync(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'EISDIR' || code === 'EINVAL' || code === 'EPERM' || code === 'ENOTSUP';
}

/**
 * Leftover temp files of writes that never reached their rename (a crash).
 * Called with the lock held, so no live writer owns any of them.
 */
async function removeTempFiles(filePath: string): Promise<void> {
  const dir = path.dirname(filePath);
  const prefix = tempPrefix(filePath);
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return; // the write that follows reports a missing directory clearly
  }
  for (const name of names) {
    if (name.startsWith(prefix)) await fsp.unlink(path.join(dir, name)).catch(() => undefined);
  }
}

/**
 * `memgate rotate` when no memgate is running: takes the lock (failing with
 * "state file is in use by memgate (pid N)" when a live memgate holds it),
 * reads the file (missing: no tenants; corrupt: StateCorruptError), lets
 * `mutate` change the tenants, checks them, writes atomically and releases.
 * Returns the state that was written.
 *
 *   await updateStateFileOffline(p, (tenants) => tenants.set('shop', freshTenantState(tenants.get('shop'), Date.now())));
 */
export async function updateStateFileOffline(
  filePath: string,
  mutate: (tenants: Map<string, TenantState>) => void,
): Promise<ReadonlyMap<string, TenantState>> {
  const abs = path.resolve(filePath);
  let lockLost: StateError | null = null;
  const lock = await acquireStateLock(abs, { onLost: (err) => (lockLost = err) });
  try {
    await removeTempFiles(abs);
    const text = await readStateText(abs);
    const tenants = text === null ? new Map<string, TenantState>() : parseStateFile(abs, text);
    mutate(tenants);
    for (const [name, s] of tenants) {
      const problem = tenantStateProblem(s);
      if (problem !== null) throw new TypeError(`updateStateFileOffline: tenant "${name}": ${problem}`);
    }
    if (lockLost !== null) throw lockLost;
    await writeStateFileAtomic(abs, tenants);
    return tenants;
  } finally {
    await lock.release();
  }
}
