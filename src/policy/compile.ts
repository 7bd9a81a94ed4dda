/**
 * Config → compiled tenant policy: everything the per-connection and per-request
 * code needs, precomputed once per load (or reload) and frozen.
 *
 * Prefixes are encoded to Buffers here so the hot path compares bytes, never
 * strings (STYLE.md §2.2). Pure: no sockets, no clock, no I/O.
 */
import { createNetworkMatcher, normalizeAddress, parseCidr, type Cidr } from '../config/cidr.js';
import type { Config, TenantConfig } from '../config/schema.js';

/** Per-tenant limits; 0 = unlimited (the global `limits` still apply). */
export interface TenantLimits {
  readonly opsPerSecond: number;
  /** token bucket size; defaults to opsPerSecond (one second's worth) */
  readonly burst: number;
  readonly bytesPerSecond: number;
  readonly connections: number;
  readonly maxItemBytes: number;
  readonly maxKeysPerGet: number;
}

export interface TenantPolicy {
  readonly name: string;
  readonly admin: boolean;
  readonly mode: 'namespace' | 'enforce';
  /** the secret namespace prefix as bytes (latin1; the schema allows printable ASCII only); empty for admin */
  readonly prefix: Buffer;
  /** enforce mode: keys must start with one of these (default: [prefix]); empty in namespace mode and for admin */
  readonly prefixes: readonly Buffer[];
  /** the source networks this tenant may connect from; null = any address */
  readonly networks: ((addr: string) => boolean) | null;
  readonly hasPassword: boolean;
  readonly limits: TenantLimits;
}

export interface CompiledPolicy {
  readonly tenants: ReadonlyMap<string, TenantPolicy>;
  /**
   * The tenant of a new connection:
   * - on a listener bound to a tenant, that tenant, provided the peer is inside
   *   its `networks` (when it has any);
   * - otherwise the tenant *without a password* one of whose `networks` holds the
   *   peer address, the most specific network winning (longest prefix; IPv4-mapped
   *   IPv6 peers count as IPv4). Tenants with a password are never identified by
   *   address alone, and tenants without `networks` never by address at all.
   * null = unidentified (the connection may only authenticate).
   */
  identify(listenerTenant: string | undefined, peerAddress: string): TenantPolicy | null;
}

interface NetworkRoute {
  readonly cidr: Cidr;
  readonly tenant: TenantPolicy;
}

export function compilePolicy(config: Config): CompiledPolicy {
  const tenants = new Map<string, TenantPolicy>();
  const routes: NetworkRoute[] = [];
  for (const [name, tenantConfig] of Object.entries(config.tenants)) {
    const cidrs = tenantConfig.networks?.map((text) => parseCidr(text)) ?? null;
    const tenant = compileTenant(name, tenantConfig, cidrs);
    tenants.set(name, tenant);
    if (!tenant.hasPassword && cidrs !== null) {
      for (const cidr of cidrs) routes.push({ cidr, tenant });
    }
  }
  // Most specific first; Array.prototype.sort is stable, so equal lengths keep config order.
  routes.sort((a, b) => b.cidr.specificity - a.cidr.specificity);

  return Object.freeze({
    tenants,
    identify(listenerTenant: string | undefined, peerAddress: string): TenantPolicy | null {
      if (listenerTenant !== undefined) {
        const tenant = tenants.get(listenerTenant);
        if (tenant === undefined) return null;
        return tenant.networks === null || tenant.networks(peerAddress) ? tenant : null;
      }
      const peer = normalizeAddress(peerAddress);
      if (peer === null) return null;
      for (const route of routes) {
        if (route.cidr.contains(peer)) return route.tenant;
      }
      return null;
    },
  });
}

function compileTenant(name: string, config: TenantConfig, cidrs: readonly Cidr[] | null): TenantPolicy {
  const admin = config.admin;
  const prefix = admin || config.prefix === undefined ? Buffer.alloc(0) : Buffer.from(config.prefix, 'latin1');
  const allowed =
    admin || config.mode !== 'enforce'
      ? []
      : (config.prefixes ?? (config.prefix === undefined ? [] : [config.prefix])).map((p) => Buffer.from(p, 'latin1'));
  const limits = config.limits;
  const opsPerSecond = limits.opsPerSecond ?? 0;
  return Object.freeze({
    name,
    admin,
    mode: config.mode,
    prefix,
    prefixes: Object.freeze(allowed),
    networks: cidrs === null ? null : createNetworkMatcher(cidrs),
    hasPassword: config.password !== undefined,
    limits: Object.freeze({
      opsPerSecond,
      burst: limits.burst ?? opsPerSecond,
      bytesPerSecond: limits.bytesPerSecond ?? 0,
      connections: limits.connections ?? 0,
      maxItemBytes: limits.maxItemBytes ?? 0,
      maxKeysPerGet: limits.maxKeysPerGet ?? 0,
    }),
  });
}
