/**
 * Live per-tenant state shared by every session of a tenant: the compiled
 * policy, the current namespace (prefix + generation) and the counters.
 *
 * A rotation replaces `ns` with a new Buffer; requests already parsed keep the
 * Buffer they captured, so a reply is always checked against the namespace its
 * request was sent with.
 */
import { TenantCounters } from '../admin/counters.js';
import type { CompiledPolicy, TenantPolicy } from '../policy/compile.js';
import type { StateStore } from '../state/store.js';

export class TenantRuntime {
  policy: TenantPolicy;
  /** namespace bytes prepended to keys, null when keys pass unchanged (enforce mode, admin) */
  ns: Buffer | null;
  readonly counters: TenantCounters;
  /** true once the tenant was removed from the config */
  removed: boolean;

  constructor(policy: TenantPolicy, generation: string) {
    this.policy = policy;
    this.ns = null;
    this.counters = new TenantCounters();
    this.removed = false;
    this.setGeneration(generation);
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

  constructor(policy: CompiledPolicy, store: StateStore) {
    this.policy = policy;
    this.store = store;
    for (const [name, p] of policy.tenants) this.byName.set(name, new TenantRuntime(p, store.generation(name)));
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
  replacePolicy(policy: CompiledPolicy): void {
    this.policy = policy;
    for (const [name, rt] of this.byName) {
      const p = policy.tenants.get(name);
      if (p === undefined) rt.removed = true;
      else {
        rt.policy = p;
        rt.removed = false;
        rt.setGeneration(this.store.generation(name));
      }
    }
    for (const [name, p] of policy.tenants) {
      if (!this.byName.has(name)) this.byName.set(name, new TenantRuntime(p, this.store.generation(name)));
    }
  }
}
