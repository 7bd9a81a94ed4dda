/**
 * Config → compiled tenant policy: everything the per-connection and per-request
 * code needs, precomputed once per load (or reload) and frozen.
 *
 * Prefixes are encoded to Buffers here so the hot path compares bytes, never
 * strings (STYLE.md §2.2). Pure: no sockets, no clock, no I/O.
 */
import { createNetworkMatcher, normalizeAddress, parseCidr, type Cidr } from '../config/cidr.js';
import type { Config, CredentialRights, TenantConfig } from '../config/schema.js';
import { parsePasswordHash, type ParsedHash } from './password.js';
import { burstNotes } from './rate-limit.js';

/** Per-tenant limits; 0 = unlimited (the global `limits` still apply). */
export interface TenantLimits {
  readonly opsPerSecond: number;
  /** token bucket size; defaults to opsPerSecond (one second's worth) */
  readonly burst: number;
  readonly bytesPerSecond: number;
  readonly connections: number;
  readonly maxItemBytes: number;
  readonly maxKeysPerGet: number;
  readonly flushesPerMinute: number;
  readonly statsPerSecond: number;
  /** over a budget: reject at once, or delay up to maxDelayMs */
  readonly delayOverLimit: boolean;
  readonly maxDelayMs: number;
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
  /** the upstream pool (a name under upstream.pools, or "default") this tenant's requests go to */
  readonly pool: string;
}

/** What a connection may do once identified. */
export const Rights = {
  READ_WRITE: 0,
  /** storage, delete, arithmetic, touch and flush are refused */
  READ_ONLY: 1,
  /** flush_all is refused */
  NO_FLUSH: 2,
} as const;
export type Rights = (typeof Rights)[keyof typeof Rights];

const RIGHTS_BY_NAME: Record<CredentialRights, Rights> = {
  'read-write': Rights.READ_WRITE,
  'read-only': Rights.READ_ONLY,
  'no-flush': Rights.NO_FLUSH,
};

/** One user name / password of a tenant. */
export interface CompiledCredential {
  readonly username: string;
  readonly tenant: TenantPolicy;
  readonly hash: ParsedHash;
  readonly rights: Rights;
  /** source networks the credential is accepted from; null = any */
  readonly networks: ((addr: string) => boolean) | null;
}

export interface CompiledPolicy {
  readonly tenants: ReadonlyMap<string, TenantPolicy>;
  /** credentials by user name */
  readonly credentials: ReadonlyMap<string, CompiledCredential>;
  /** the tenant a verified client certificate names (SHA-256 fingerprint first, then subject CN), or null */
  identifyCertificate(fingerprint256: string, subjectCN: string | undefined): TenantPolicy | null;
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
  const credentials = compileCredentials(config, tenants);
  const byFingerprint = new Map<string, TenantPolicy>();
  const bySubject = new Map<string, TenantPolicy>();
  for (const [name, tenantConfig] of Object.entries(config.tenants)) {
    const tenant = tenants.get(name);
    if (tenant === undefined || tenantConfig.certificates === undefined) continue;
    for (const fp of tenantConfig.certificates.fingerprints ?? []) byFingerprint.set(normalizeFingerprint(fp), tenant);
    for (const cn of tenantConfig.certificates.subjects ?? []) bySubject.set(cn, tenant);
  }

  return Object.freeze({
    tenants,
    credentials,
    identifyCertificate(fingerprint256: string, subjectCN: string | undefined): TenantPolicy | null {
      const byFp = byFingerprint.get(normalizeFingerprint(fingerprint256));
      if (byFp !== undefined) return byFp;
      return subjectCN === undefined ? null : (bySubject.get(subjectCN) ?? null);
    },
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
    hasPassword: config.password !== undefined || config.credentials !== undefined,
    pool: config.pool,
    limits: Object.freeze({
      opsPerSecond,
      burst: limits.burst ?? opsPerSecond,
      bytesPerSecond: limits.bytesPerSecond ?? 0,
      connections: limits.connections ?? 0,
      maxItemBytes: limits.maxItemBytes ?? 0,
      maxKeysPerGet: limits.maxKeysPerGet ?? 0,
      flushesPerMinute: limits.flushesPerMinute ?? 0,
      statsPerSecond: limits.statsPerSecond ?? 0,
      delayOverLimit: limits.overLimit === 'delay',
      maxDelayMs: limits.maxDelayMs,
    }),
  });
}

/**
 * Lines `memgate check-config` prints about how each tenant's burst and
 * maxKeysPerGet (or item size and bytesPerSecond) interact; empty when none.
 */
export function configBurstNotes(config: Config): string[] {
  const global = { maxKeysPerGet: config.limits.maxKeysPerGet, maxValueBytes: config.limits.maxValueBytes };
  const notes: string[] = [];
  for (const [name, tenant] of Object.entries(config.tenants)) notes.push(...burstNotes(name, tenant.limits, global));
  return notes;
}

/** "AB:CD:…" and "abcd…" name the same fingerprint. */
function normalizeFingerprint(fp: string): string {
  return fp.replaceAll(':', '').toUpperCase();
}

function compileCredentials(
  config: Config,
  tenants: ReadonlyMap<string, TenantPolicy>,
): Map<string, CompiledCredential> {
  const out = new Map<string, CompiledCredential>();
  const add = (
    username: string,
    tenant: TenantPolicy,
    hashText: string,
    rights: Rights,
    networks: readonly string[] | undefined,
  ): void => {
    const hash = parsePasswordHash(hashText);
    if (typeof hash === 'string') throw new Error(`tenant ${tenant.name}: ${hash}`); // the schema already checked
    const matcher = networks === undefined ? tenant.networks : createNetworkMatcher(networks.map((n) => parseCidr(n)));
    out.set(username, Object.freeze({ username, tenant, hash, rights, networks: matcher }));
  };
  for (const [name, tc] of Object.entries(config.tenants)) {
    const tenant = tenants.get(name);
    if (tenant === undefined) continue;
    if (tc.password !== undefined) add(name, tenant, tc.password, Rights.READ_WRITE, undefined);
    for (const c of tc.credentials ?? []) add(c.username, tenant, c.password, RIGHTS_BY_NAME[c.rights], c.networks);
  }
  return out;
}
