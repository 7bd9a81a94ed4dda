/**
 * The channel between a `--workers` primary and its workers: small JSON
 * messages over the cluster IPC pipe (`process.send` in a worker,
 * `worker.send` in the primary). Either side calls the other; every call has
 * an id and gets exactly one reply, or fails after a timeout.
 *
 *   worker ──{ memgate: 1, type: 'req', id: 7, kind: 'state.rotate', args: { tenant: 'shop' } }──▶ primary
 *   worker ◀──{ memgate: 1, type: 'res', id: 7, ok: true, value: { generation: …, … } }────────── primary
 *
 * Ordering: messages on one pipe arrive in the order they were sent, and a
 * side handles them one by one. The state relay relies on it: the primary
 * sends a worker the new state (`state.changed`) before its reply to that
 * worker's `state.rotate`, so by the time the reply is read the worker already
 * serves the new generation.
 *
 * Nothing here is on the hot path: calls happen at start, on flush_all, on
 * admin requests and on scrapes.
 */
import type { Worker } from 'node:cluster';
import type { Config } from '../config/schema.js';
import type { ReloadResult } from '../index.js';
import type { TenantState } from '../state/store.js';

/** A tenant → state table as it crosses the pipe (JSON has no Map). */
export type StateEntries = Record<string, TenantState>;

/** What a worker reports about itself (GET /tenants, /readyz on the primary). */
export interface WorkerStatus {
  readonly pid: number;
  /** an upstream server is reachable (the single-process /readyz rule) */
  readonly ready: boolean;
  /** open client connections by tenant */
  readonly connections: Record<string, number>;
}

/** What a worker learns from the primary before it starts. */
export interface WorkerHello {
  readonly config: Config;
  /** 1..N, stable across restarts of the worker in that slot (logs say `worker: <slot>`) */
  readonly slot: number;
  /** N: how many workers share each per-tenant limit */
  readonly workers: number;
}

/** A call's arguments and result, by kind. */
interface Call<A, R> {
  readonly args: A;
  readonly result: R;
}

type NoArgs = Record<string, never>;

/** Calls a worker makes to the primary. */
export interface WorkerCalls {
  /** the worker's first call: its config (the primary's, admin section removed), its slot and the worker count */
  hello: Call<NoArgs, WorkerHello>;
  /** the worker's proxy is listening */
  started: Call<{ pid: number }, null>;
  'state.open': Call<{ tenants: readonly string[] }, StateEntries>;
  'state.rotate': Call<{ tenant: string }, TenantState>;
  'state.schedule': Call<{ tenant: string; atMs: number }, TenantState>;
  'state.addTenants': Call<{ tenants: readonly string[] }, null>;
  /** a slice of a tenant's shared ops/bytes budget (ipc-leases.ts) */
  'lease.take': Call<
    { tenant: string; kind: 'ops' | 'bytes'; want: number; debt: number; rate: number; burst: number },
    { granted: number; waitMs: number; up: boolean; instances: number }
  >;
  /** unused tokens back to the shared budget */
  'lease.giveBack': Call<{ tenant: string; kind: 'ops' | 'bytes'; tokens: number; rate: number; burst: number }, null>;
  /** whether the primary's lease source is reachable (polled while it is not) */
  'lease.status': Call<NoArgs, { up: boolean; instances: number }>;
}

/** Calls the primary makes to a worker. */
export interface PrimaryCalls {
  /** a tenant's durable state changed: use it, then answer */
  'state.changed': Call<{ tenant: string; state: TenantState }, null>;
  /** the worker's registry as `Registry.getMetricsAsJSON()` */
  metrics: Call<NoArgs, object[]>;
  status: Call<NoArgs, WorkerStatus>;
  reload: Call<{ config: Config; source: string }, ReloadResult>;
  /** stop gracefully, then exit 0 */
  stop: Call<NoArgs, null>;
}

/** A table of calls: each kind maps to its Call (checked against the table itself, so interfaces fit). */
type Calls<T> = { [K in keyof T]: Call<unknown, unknown> };

export type Handlers<In extends Calls<In>> = {
  [K in keyof In]?: (args: In[K]['args']) => In[K]['result'] | Promise<In[K]['result']>;
};

/** A call failed: no answer in time, the other side is gone, or it answered with an error. */
export class IpcError extends Error {
  constructor(message: string, options?: { readonly cause?: unknown }) {
    super(message, options);
    this.name = 'IpcError';
  }
}

/** The two ends a peer needs: process (in a worker) or a cluster Worker (in the primary) both fit. */
export interface Channel {
  send(message: unknown, callback: (err: Error | null) => void): void;
  onMessage(listener: (message: unknown) => void): void;
  offMessage(listener: (message: unknown) => void): void;
}

/** The worker's end: its own process. */
export function processChannel(): Channel {
  if (process.send === undefined) throw new Error('not a cluster worker: this process has no IPC channel');
  return {
    send: (message, callback) => {
      process.send?.(message, undefined, undefined, callback);
    },
    onMessage: (listener) => process.on('message', listener),
    offMessage: (listener) => process.off('message', listener),
  };
}

/** The primary's end of one worker. */
export function workerChannel(worker: Worker): Channel {
  return {
    // NOTE: the callback form, always: without it a send on a closed pipe is an 'error' event that kills the primary
    send: (message, callback) => {
      worker.send(message as object, undefined, undefined, callback);
    },
    onMessage: (listener) => worker.on('message', listener),
    offMessage: (listener) => worker.off('message', listener),
  };
}

interface Request {
  readonly memgate: 1;
  readonly type: 'req';
  readonly id: number;
  readonly kind: string;
  readonly args: unknown;
}

interface Reply {
  readonly memgate: 1;
  readonly type: 'res';
  readonly id: number;
  readonly ok: boolean;
  readonly value?: unknown;
  readonly error?: string;
}

interface Pending {
  readonly kind: string;
  readonly timer: NodeJS.Timeout;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

function isMessage(m: unknown): m is Request | Reply {
  return typeof m === 'object' && m !== null && (m as { memgate?: unknown }).memgate === 1;
}

/**
 * One end of the pipe: `call()` the other side (calls of kind `Out`), answer
 * its calls (of kind `In`) with the handlers given to `handle()`.
 */
export class IpcPeer<Out extends Calls<Out>, In extends Calls<In>> {
  private readonly channel: Channel;
  /** who is at the other end, for error messages ("the memgate primary", "worker 2") */
  private readonly other: string;
  private readonly pending = new Map<number, Pending>();
  private handlers: Handlers<In> = {};
  private nextId = 1;
  private closed = false;
  private readonly listener = (m: unknown): void => this.receive(m);

  constructor(channel: Channel, other: string) {
    this.channel = channel;
    this.other = other;
    channel.onMessage(this.listener);
  }

  /** Adds (or replaces) handlers for calls from the other side. */
  handle(handlers: Handlers<In>): void {
    this.handlers = { ...this.handlers, ...handlers };
  }

  /** Calls the other side; rejects with an IpcError after `timeoutMs` without an answer. */
  call<K extends keyof Out & string>(kind: K, args: Out[K]['args'], timeoutMs: number): Promise<Out[K]['result']> {
    if (this.closed) return Promise.reject(new IpcError(`${kind}: the channel to ${this.other} is closed`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new IpcError(`${kind}: no answer from ${this.other} in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { kind, timer, resolve: resolve as (v: unknown) => void, reject });
      const message: Request = { memgate: 1, type: 'req', id, kind, args };
      this.channel.send(message, (err) => {
        if (err !== null) this.settle(id, new IpcError(`${kind}: cannot reach ${this.other}: ${err.message}`));
      });
    });
  }

  /** Stops listening; calls still waiting fail at once. */
  close(reason = 'closed'): void {
    if (this.closed) return;
    this.closed = true;
    this.channel.offMessage(this.listener);
    for (const id of [...this.pending.keys()]) {
      const kind = this.pending.get(id)?.kind ?? '?';
      this.settle(id, new IpcError(`${kind}: the channel to ${this.other} is ${reason}`));
    }
  }

  private settle(id: number, err: Error | null, value?: unknown): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (err === null) p.resolve(value);
    else p.reject(err);
  }

  private receive(m: unknown): void {
    if (!isMessage(m)) return; // not ours (another library's messages share the pipe)
    if (m.type === 'res') {
      const error = m.ok ? null : new IpcError(`${this.pending.get(m.id)?.kind ?? '?'}: ${m.error ?? 'failed'}`);
      this.settle(m.id, error, m.value);
      return;
    }
    void this.answer(m);
  }

  private async answer(m: Request): Promise<void> {
    const table = this.handlers as Record<string, ((args: unknown) => unknown) | undefined>;
    const handler = Object.hasOwn(table, m.kind) ? table[m.kind] : undefined;
    let reply: Reply;
    try {
      if (handler === undefined) throw new Error(`no handler for "${m.kind}"`);
      const value = await handler(m.args);
      reply = { memgate: 1, type: 'res', id: m.id, ok: true, value: value ?? null };
    } catch (err) {
      reply = { memgate: 1, type: 'res', id: m.id, ok: false, error: err instanceof Error ? err.message : String(err) };
    }
    // a reply to a side that has gone away is dropped: nobody waits for it
    if (!this.closed) this.channel.send(reply, () => undefined);
  }
}
