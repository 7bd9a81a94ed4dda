/**
 * Live per-tenant state shared by every session of a tenant: the compiled
 * policy, the current namespace (prefix + generation) and the counters.
 *
 * A rotation replaces `ns` with a new Buffer; requests already parsed keep the
 * Buffer they captured, so a reply is always checked against the namespace its
 * request was sent with.
 */
import { TenantCounters } from '../admin/counters.js';
import type { CompiledPolicy, TenantLimits, TenantPolicy } from '../policy/compile.js';
import {
  budgetParametersFromLimits,
  TenantBudgets,
  type BudgetParameters,
  type SharedBuckets,
} from '../policy/rate-limit.js';
import type { LeasedBucket } from '../state/leases.js';
import { CommandClass } from '../protocol/text/commands.js';

/** The global bounds budgets are sized against. */
export interface GlobalLimits {
  readonly maxKeysPerGet: number;
  readonly maxValueBytes: number;
}

const orUndefined = (n: number): number | undefined => (n > 0 ? n : undefined);

/**
 * One worker's share of a per-tenant limit when `shareOf` processes enforce it
 * together (`memgate serve --workers N`): ⌈n / shareOf⌉, at least 1; 0 (no
 * limit) stays 0. With shareOf 1 (a single process) it is `n` itself.
 *
 * NOTE: an approximation. Each worker enforces its share alone, so the tenant's
 * total is exact only when its traffic is spread evenly over the workers (the
 * cluster's round-robin accept does that for connections); rounding up lets at
 * most shareOf − 1 extra through per budget.
 */
export function workerShare(n: number, shareOf: number): number {
  if (n <= 0 || shareOf <= 1) return n;
  return Math.max(1, Math.ceil(n / shareOf));
}

function budgetParameters(l: TenantLimits, global: GlobalLimits, shareOf: number, leased: boolean): BudgetParameters {
  // rates and bursts are divided; the per-request bounds (item size, keys per get) are not.
  // Leased ops/bytes budgets are whole: the instances share one bucket (state/leases.ts).
  const statsPerSecond = workerShare(l.statsPerSecond, shareOf);
  const opsShare = leased ? 1 : shareOf;
  return budgetParametersFromLimits(
    {
      opsPerSecond: orUndefined(workerShare(l.opsPerSecond, opsShare)),
      burst: orUndefined(workerShare(l.burst, opsShare)),
      bytesPerSecond: orUndefined(workerShare(l.bytesPerSecond, opsShare)),
      maxItemBytes: orUndefined(l.maxItemBytes),
      maxKeysPerGet: orUndefined(l.maxKeysPerGet),
    },
    global,
    {
      flushesPerMinute: workerShare(l.flushesPerMinute, shareOf),
      perClassPerSecond: statsPerSecond > 0 ? { [CommandClass.STATS]: statsPerSecond } : {},
    },
  );
}
import type { StateStore } from '../state/store.js';
import type { LeaseClient } from '../state/leases.js';

/** TenantBudgets' shared buckets for one tenant, leased through `leases`. */
function sharedBuckets(tenant: string, leases: LeaseClient): SharedBuckets {
  return {
    create: (kind, rate, burst) => leases.bucket(tenant, kind, rate, burst),
    drop: (bucket) => leases.drop(bucket as LeasedBucket),
  };
}

export class TenantRuntime {
  policy: TenantPolicy;
  /** namespace bytes prepended to keys, null when keys pass unchanged (enforce mode, admin) */
  ns: Buffer | null;
  readonly counters: TenantCounters;
  /** rate budgets; kept (levels and all) across a reload, reconfigured in place */
  readonly budgets: TenantBudgets;
  /** true once the tenant was removed from the config */
  removed: boolean;

  /** how many worker processes share this tenant's rate budgets (1: this process alone); see workerShare */
  private readonly shareOf: number;
  /** ops/bytes budgets leased from a shared bucket (Redis, a --workers primary); null: local only */
  private readonly leased: boolean;

  constructor(
    policy: TenantPolicy,
    generation: string,
    global: GlobalLimits,
    shareOf = 1,
    leases: LeaseClient | null = null,
  ) {
    this.policy = policy;
    this.ns = null;
    this.counters = new TenantCounters();
    this.shareOf = shareOf;
    this.leased = leases !== null;
    this.budgets = new TenantBudgets(
      budgetParameters(policy.limits, global, shareOf, this.leased),
      leases === null ? null : sharedBuckets(policy.name, leases),
    );
    this.removed = false;
    this.setGeneration(generation);
  }

  setPolicy(policy: TenantPolicy, global: GlobalLimits): void {
    this.policy = policy;
    this.budgets.reconfigure(budgetParameters(policy.limits, global, this.shareOf, this.leased));
  }

  setGeneration(generation: string): void {
    const p = this.policy;
    this.ns = p.admin || p.mode !== 'namespace' ? null : Buffer.concat([p.prefix, Buffer.from(generation, 'latin1')]);
  }
}

export class TenantRegistry {
  private readonly byName = new Map<string, TenantRuntime>();
  policy: CompiledPolicy;
  private readonly store: StateStore;
  /** worker processes sharing each tenant's rate budgets (`--workers N`); 1 for a single process */
  private readonly shareOf: number;
  private readonly leases: LeaseClient | null;

  constructor(
    policy: CompiledPolicy,
    store: StateStore,
    global: GlobalLimits,
    shareOf = 1,
    leases: LeaseClient | null = null,
  ) {
    this.policy = policy;
    this.store = store;
    this.shareOf = shareOf;
    this.leases = leases;
    for (const [name, p] of policy.tenants) {
      this.byName.set(name, new TenantRuntime(p, store.generation(name), global, shareOf, leases));
    }
    store.onChange((tenant, state) => {
      this.byName.get(tenant)?.setGeneration(state.generation);
    });
  }

  get(name: string): TenantRuntime | undefined {
    return this.byName.get(name);
  }

  all(): IterableIterator<TenantRuntime> {
    return this.byName.values();
  }

  /** The runtime for a new connection, or null when it is not identified. */
  identify(listenerTenant: string | undefined, peerAddress: string): TenantRuntime | null {
    const p = this.policy.identify(listenerTenant, peerAddress);
    return p === null ? null : (this.byName.get(p.name) ?? null);
  }

  /** Swaps in a reloaded policy: kept tenants get the new policy, new ones a runtime, removed ones are marked. */
  replacePolicy(policy: CompiledPolicy, global: GlobalLimits): void {
    this.policy = policy;
    for (const [name, rt] of this.byName) {
      const p = policy.tenants.get(name);
      if (p === undefined) rt.removed = true;
      else {
        rt.setPolicy(p, global);
        rt.removed = false;
        rt.setGeneration(this.store.generation(name));
      }
    }
    for (const [name, p] of policy.tenants) {
      if (!this.byName.has(name)) {
        this.byName.set(name, new TenantRuntime(p, this.store.generation(name), global, this.shareOf, this.leases));
      }
    }
  }
}
