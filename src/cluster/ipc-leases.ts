/**
 * IpcLeaseSource: a `--workers` worker's lease source. Every worker leases
 * slices of a tenant's ops/bytes budget from the primary, which holds the
 * shared bucket (in memory: LocalLeaseSource, or in Redis when the state is
 * there), so a tenant whose traffic all lands on one worker still gets its
 * whole limit, not ⌈limit / N⌉.
 *
 *   worker LeasedBucket ──lease.take {tenant, kind, want, debt, rate, burst}──▶ primary source.lease()
 *                       ◀── { granted, waitMs, up, instances } ──────────┘
 *
 * `up` and `instances` travel with every answer: when the primary's own
 * source (Redis) is unreachable, the workers fall back to their local share
 * (limit ÷ (workers × instances)) and poll `lease.status` until it is back.
 */
import type { BudgetKind, LeaseGrant, LeaseRequest, LeaseSource } from '../state/leases.js';
import type { IpcPeer, PrimaryCalls, WorkerCalls } from './ipc.js';

/** A lease round trip to the primary that takes longer fails (the bucket retries). */
const LEASE_TIMEOUT_MS = 2000;
/** While the primary's source is down: how often to ask whether it is back. */
const STATUS_POLL_MS = 500;

export interface LeaseAnswer extends LeaseGrant {
  /** the primary's source is reachable */
  readonly up: boolean;
  /** live instances behind the primary's source (1 without Redis) */
  readonly instances: number;
}

export class IpcLeaseSource implements LeaseSource {
  private readonly peer: IpcPeer<WorkerCalls, PrimaryCalls>;
  private readonly workers: number;
  private sourceUp = true;
  private sourceInstances = 1;
  private poll: NodeJS.Timeout | null = null;

  constructor(peer: IpcPeer<WorkerCalls, PrimaryCalls>, workers: number) {
    this.peer = peer;
    this.workers = Math.max(1, workers);
  }

  /** every worker of every instance shares the bucket */
  get instances(): number {
    return this.workers * this.sourceInstances;
  }

  get up(): boolean {
    return this.sourceUp;
  }

  async lease(req: LeaseRequest): Promise<LeaseGrant> {
    const a = await this.peer.call('lease.take', req, LEASE_TIMEOUT_MS);
    this.note(a.up, a.instances);
    return a;
  }

  async giveBack(tenant: string, kind: BudgetKind, tokens: number, rate: number, burst: number): Promise<void> {
    await this.peer.call('lease.giveBack', { tenant, kind, tokens, rate, burst }, LEASE_TIMEOUT_MS);
  }

  close(): void {
    if (this.poll !== null) clearInterval(this.poll);
    this.poll = null;
  }

  private note(up: boolean, instances: number): void {
    this.sourceUp = up;
    if (Number.isInteger(instances) && instances >= 1) this.sourceInstances = instances;
    if (!up && this.poll === null) {
      this.poll = setInterval(() => {
        this.peer.call('lease.status', {}, LEASE_TIMEOUT_MS).then(
          (s) => {
            this.note(s.up, s.instances);
            if (s.up) this.close();
          },
          () => undefined,
        );
      }, STATUS_POLL_MS);
      this.poll.unref();
    }
  }
}

/** The primary's side: answers a worker's lease calls from `source`. */
export async function answerLease(source: LeaseSource, args: LeaseRequest): Promise<LeaseAnswer> {
  if (!source.up) return { granted: 0, waitMs: STATUS_POLL_MS, up: false, instances: source.instances };
  try {
    const g = await source.lease(args);
    return { granted: g.granted, waitMs: g.waitMs, up: source.up, instances: source.instances };
  } catch {
    return { granted: 0, waitMs: STATUS_POLL_MS, up: source.up, instances: source.instances };
  }
}
