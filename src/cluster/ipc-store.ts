/**
 * IpcStateStore: the StateStore of a `--workers` worker. The primary owns the
 * real store (a FileStateStore holds a lock, so only one process may open it);
 * a worker keeps a copy of its state and asks the primary for every change.
 *
 *   worker                                   primary
 *   flush_all ─▶ rotate(shop) ──state.rotate──▶ FileStateStore.rotate (durable)
 *                                               └─ onChange ─▶ state.changed ─▶ every worker (each answers)
 *   copy updated, listeners told ◀─state.changed─┘
 *   rotate() resolves ◀──────────── reply ───── once every worker has answered
 *
 * So a tenant's flush_all answers OK only once the new generation is durable
 * AND every worker uses it: a get on any connection after the OK misses.
 * Scheduled rotations fire in the primary's store and reach the workers the
 * same way.
 *
 * `generation()` (the hot path) is a synchronous Map lookup in the copy.
 * A change the primary sends before `open()` has answered is kept; `open()`
 * then replaces the whole copy with the primary's snapshot, which is newer
 * (the pipe keeps order).
 */
import { StateError } from '../errors.js';
import type { StateStore, TenantState } from '../state/store.js';
import type { IpcPeer, PrimaryCalls, WorkerCalls } from './ipc.js';

/** How long a worker waits for the primary to make a change durable and tell every worker. */
export const STATE_CALL_TIMEOUT_MS = 5000;

type Listener = (tenant: string, state: TenantState) => void;

export class IpcStateStore implements StateStore {
  private readonly peer: IpcPeer<WorkerCalls, PrimaryCalls>;
  private readonly timeoutMs: number;
  private readonly states = new Map<string, TenantState>();
  private readonly listeners: Listener[] = [];
  private isOpen = false;
  /** the primary's store makes (and counts) every rotation */
  readonly rotationsApplied = 0;
  /** the primary reports its store's reachability (/readyz, memgate_state_up); a refused change comes back as an error */
  readonly up = true;

  constructor(peer: IpcPeer<WorkerCalls, PrimaryCalls>, timeoutMs = STATE_CALL_TIMEOUT_MS) {
    this.peer = peer;
    this.timeoutMs = timeoutMs;
    peer.handle({
      'state.changed': ({ tenant, state }) => {
        this.apply(tenant, state);
        return null;
      },
    });
  }

  async open(tenants: readonly string[]): Promise<void> {
    if (this.isOpen) throw new Error('state store is already open');
    const entries = await this.request('state.open', { tenants }, 'open');
    this.states.clear();
    for (const [name, s] of Object.entries(entries)) this.states.set(name, Object.freeze({ ...s }));
    this.isOpen = true;
  }

  generation(tenant: string): string {
    const s = this.states.get(tenant);
    if (s === undefined) throw new Error(`unknown tenant "${tenant}" in the primary's state`);
    return s.generation;
  }

  get(tenant: string): TenantState | undefined {
    return this.states.get(tenant);
  }

  list(): ReadonlyMap<string, TenantState> {
    return new Map(this.states);
  }

  /** Resolves once the rotation is durable and every worker (this one too) uses it. */
  async rotate(tenant: string): Promise<TenantState> {
    this.assertOpen();
    const state = await this.request('state.rotate', { tenant }, `rotate ${tenant}`);
    // the primary's state.changed came before this reply (one pipe, in order): the copy already has it
    return this.states.get(tenant) ?? state;
  }

  async schedule(tenant: string, atMs: number): Promise<TenantState> {
    this.assertOpen();
    if (!Number.isFinite(atMs)) throw new TypeError(`schedule(${tenant}): atMs must be a finite number, got ${atMs}`);
    const state = await this.request('state.schedule', { tenant, atMs }, `schedule a rotation of ${tenant}`);
    return this.states.get(tenant) ?? state;
  }

  async addTenants(tenants: readonly string[]): Promise<void> {
    this.assertOpen();
    await this.request('state.addTenants', { tenants }, 'add tenants');
  }

  onChange(listener: Listener): void {
    this.listeners.push(listener);
  }

  /** Stops using the copy; the primary's store stays open (the primary closes it). */
  close(): Promise<void> {
    this.isOpen = false;
    return Promise.resolve();
  }

  /** A state the primary made durable: keep it and tell the listeners (the tenant registry). */
  private apply(tenant: string, state: TenantState): void {
    const s = Object.freeze({ ...state });
    this.states.set(tenant, s);
    for (const listener of this.listeners) listener(tenant, s);
  }

  private assertOpen(): void {
    if (!this.isOpen) throw new StateError('state store is not open');
  }

  private async request<K extends keyof WorkerCalls & `state.${string}`>(
    kind: K,
    args: WorkerCalls[K]['args'],
    what: string,
  ): Promise<WorkerCalls[K]['result']> {
    try {
      return await this.peer.call(kind, args, this.timeoutMs);
    } catch (err) {
      throw new StateError(`cannot ${what} through the memgate primary: ${(err as Error).message}`, { cause: err });
    }
  }
}
