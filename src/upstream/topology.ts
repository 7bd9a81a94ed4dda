/**
 * The upstream as the config describes it, compiled once per config load:
 * named pools of memcached servers, each with its distribution and TLS.
 *
 *   upstream.servers ─▶ pool "default"        tenants without `pool`
 *   upstream.pools.x ─▶ pool "x"              tenants with `pool: x`
 *
 * Nothing here opens a socket: `memgate route` and `check-config` read the
 * same topology the proxy runs on.
 */
import { DEFAULT_POOL, formatHostPort, tryParseServerText, type Config } from '../config/schema.js';

/** The port memcached listens on by default; libmemcached leaves it out of ketama's server string. */
export const MEMCACHED_DEFAULT_PORT = 11211;

export type Distribution = 'ketama' | 'modula';

export interface UpstreamServerSpec {
  /** how the server is shown (metrics, /readyz, `memgate route`): "host:port", "[v6]:port", or the unix socket path */
  readonly address: string;
  /** '' for a unix socket */
  readonly host: string;
  /** 0 for a unix socket */
  readonly port: number;
  /** unix socket path, or null for TCP */
  readonly path: string | null;
  /** share of the ring (ketama) or of the slots (modula); at least 1 */
  readonly weight: number;
  /** the `name` the config gave, or null: ketama then hashes host (port 11211) or host:port */
  readonly name: string | null;
}

/** File paths, as in the config (read when a connection is made). */
export interface UpstreamTlsSpec {
  readonly ca?: string | undefined;
  readonly cert?: string | undefined;
  readonly key?: string | undefined;
  readonly servername?: string | undefined;
}

export interface PoolSpec {
  /** "default" for upstream.servers, else the key under upstream.pools */
  readonly name: string;
  readonly servers: readonly UpstreamServerSpec[];
  readonly distribution: Distribution;
  readonly tls: UpstreamTlsSpec | null;
}

export interface Topology {
  /** every pool by name; "default" always exists */
  readonly pools: ReadonlyMap<string, PoolSpec>;
}

type ServerEntry = Config['upstream']['servers'][number];

/** One config entry as a server spec (the schema has already validated it). */
export function serverSpec(entry: ServerEntry): UpstreamServerSpec {
  if (typeof entry === 'string') {
    const parsed = tryParseServerText(entry);
    if (typeof parsed === 'string') throw new Error(parsed);
    const address = formatHostPort(parsed.host, parsed.port);
    return { address, host: parsed.host, port: parsed.port, path: null, weight: parsed.weight, name: null };
  }
  const name = entry.name ?? null;
  if (entry.path !== undefined) {
    return { address: entry.path, host: '', port: 0, path: entry.path, weight: entry.weight, name };
  }
  const hostText = entry.host ?? '';
  const port = entry.port ?? MEMCACHED_DEFAULT_PORT;
  return {
    address: formatHostPort(hostText, port),
    host: hostText,
    port,
    path: null,
    weight: entry.weight,
    name,
  };
}

function poolSpec(
  name: string,
  servers: readonly ServerEntry[],
  distribution: Distribution,
  tls: UpstreamTlsSpec | undefined,
): PoolSpec {
  return Object.freeze({
    name,
    servers: Object.freeze(servers.map(serverSpec)),
    distribution,
    tls: tls === undefined ? null : Object.freeze({ ...tls }),
  });
}

/** The pools of a validated config. */
export function compileTopology(config: Config): Topology {
  const u = config.upstream;
  const pools = new Map<string, PoolSpec>();
  pools.set(DEFAULT_POOL, poolSpec(DEFAULT_POOL, u.servers, u.distribution, u.tls));
  for (const [name, pool] of Object.entries(u.pools ?? {})) {
    pools.set(name, poolSpec(name, pool.servers, pool.distribution, pool.tls));
  }
  return { pools };
}

/** Picks a server for a key: an index into the server list the ring was built from. */
export interface KeyRing {
  /** `key[start, end)` is the key exactly as memcached stores it (namespace included) */
  pick(key: Buffer, start: number, end: number): number;
}
