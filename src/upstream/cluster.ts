/**
 * The upstream cluster: every pool of the topology, every server of a pool,
 * and a few pipelined connections per server shared by every client session.
 *
 *   session ─▶ UpstreamLink.send(req) ─▶ pool.serverFor(key) ─▶ server s ─▶ one of its connections
 *               (one per session)          (ring.ts; no hashing      │
 *                                           with one server)          └─ kept while the session has
 *                                                                        requests in flight on s
 *
 * Ordering: a session's requests to one server travel on one connection while
 * any of them is in flight there, so memcached answers them in order (a set
 * then a get of the same key are never reordered). Between servers nothing is
 * ordered here: the session's reply slots are the reorder buffer. A session
 * with nothing in flight on a server picks a connection that is up (starting
 * from its own, by session id), so a broken socket is left at once.
 *
 * Failures: `failureLimit` connection failures of a server in a row (connect
 * errors, timeouts, resets: never what a client sent) mark it down. Its keys
 * then fail at once with `SERVER_ERROR backend failure` (SERVER_DOWN: a multi-get
 * shows them as misses), or with `ejectHosts` the ring is rebuilt over the live
 * servers and its keys go elsewhere. Its connections retry no sooner than
 * `retryAfterMs`; the first reconnect whose `version` probe is answered brings
 * the server back. Up/down changes are logged once at warn.
 *
 * Admin fan-out (fan-out.ts): a plain `stats`, `flush_all`, `cache_memlimit`
 * or `verbosity` that reaches the upstream (only admin tenants' do) goes to
 * every server of the pool; other keyless commands go to the first live server.
 */
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { UpstreamCounterSet, type UpstreamCounters } from '../admin/counters.js';
import { DEFAULT_POOL } from '../config/schema.js';
import { ErrorCode, ProxyError } from '../errors.js';
import type { Request, UpstreamSender } from '../protocol/text/request.js';
import { upstreamKeyBytes } from '../protocol/text/upstream-key.js';
import { Replies } from '../protocol/text/replies.js';
import { failRequest, UpstreamConnection, type ConnectionHealth, type ConnectionTls } from './connection.js';
import { FanOut, isFanOut } from './fan-out.js';
import { buildRing } from './ring.js';
import type { KeyRing, PoolSpec, Topology, UpstreamServerSpec, UpstreamTlsSpec } from './topology.js';

export interface ClusterOptions {
  readonly topology: Topology;
  /** sockets per server, default 2 */
  readonly connectionsPerServer: number;
  readonly connectTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly backoffMinMs: number;
  readonly backoffMaxMs: number;
  /** consecutive failures that mark a server down (default 3) */
  readonly failureLimit?: number;
  /** a server marked down leaves the ring (default false: its keys fail at once) */
  readonly ejectHosts?: boolean;
  /** least time a server marked down waits before it is tried again (default 1000) */
  readonly retryAfterMs?: number;
  readonly logger: Logger;
  /** requests queued per connection while it connects; more fail at once (default 10,000) */
  readonly maxQueued?: number;
  /** send one-key get/gets as mg to memcached 1.6+ (default true) */
  readonly metaGets?: boolean;
  /** where connection resets are counted, per server (the process keeps one across reloads) */
  readonly counters?: UpstreamCounterSet;
}

export interface UpstreamHealth {
  /** "host:port" (or the unix socket path) */
  readonly address: string;
  /** the pool the server belongs to */
  readonly pool: string;
  /** not marked down, and at least one connection to the server is open */
  readonly up: boolean;
  /** marked down after failureLimit failures in a row */
  readonly down: boolean;
  /** requests written (or queued) and not yet answered, over all its connections */
  readonly inFlight: number;
}

export const DEFAULT_MAX_QUEUED = 10_000;

/**
 * `SERVER_ERROR backend failure` for a request refused because its server is
 * marked down: the same bytes as Replies.BACKEND_FAILURE, another Buffer, so
 * a multi-get can show such keys as misses (the backend_miss) while a
 * key whose answer was lost still ends the get with the error.
 */
export const SERVER_DOWN: Buffer = Buffer.from(Replies.BACKEND_FAILURE);

/**
 * Reads a pool's TLS files (once per cluster: a reload reads them again);
 * a file that cannot be read is ERR_CONFIG_INVALID naming the pool and the file.
 */
export function readUpstreamTls(spec: UpstreamTlsSpec | null, pool: string): ConnectionTls | null {
  if (spec === null) return null;
  const read = (what: string, path: string | undefined): Buffer | undefined => {
    if (path === undefined) return undefined;
    try {
      return readFileSync(path);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      throw new ProxyError(ErrorCode.CONFIG_INVALID, `upstream pool "${pool}": cannot read tls.${what}: ${message}`);
    }
  };
  return {
    ca: read('ca', spec.ca),
    cert: read('cert', spec.cert),
    key: read('key', spec.key),
    servername: spec.servername,
  };
}

/** One memcached server of a pool: its connections and whether it is marked down. */
export class UpstreamServer implements ConnectionHealth {
  readonly spec: UpstreamServerSpec;
  readonly index: number;
  readonly conns: readonly UpstreamConnection[];
  readonly counters: UpstreamCounters;
  private readonly pool: ServerPool;
  private readonly failureLimit: number;
  private readonly retryAfterMs: number;
  private readonly log: Logger;
  private failures: number;
  /** marked down: its requests fail at once (or, ejected, its keys go to other servers) */
  down: boolean;

  constructor(
    spec: UpstreamServerSpec,
    index: number,
    pool: ServerPool,
    opts: ClusterOptions,
    tls: ConnectionTls | null,
  ) {
    this.spec = spec;
    this.index = index;
    this.pool = pool;
    this.failureLimit = Math.max(1, Math.floor(opts.failureLimit ?? 3));
    this.retryAfterMs = Math.max(1, Math.floor(opts.retryAfterMs ?? 1000));
    this.log = opts.logger.child({ upstream: spec.address, pool: pool.name });
    this.failures = 0;
    this.down = false;
    this.counters = (opts.counters ?? new UpstreamCounterSet()).forServer(spec.address);
    const count = Math.max(1, Math.floor(opts.connectionsPerServer));
    const conns: UpstreamConnection[] = [];
    for (let i = 0; i < count; i++) {
      conns.push(
        new UpstreamConnection({
          host: spec.host,
          port: spec.port,
          path: spec.path,
          address: spec.address,
          tls,
          health: this,
          connectTimeoutMs: opts.connectTimeoutMs,
          requestTimeoutMs: opts.requestTimeoutMs,
          backoffMinMs: opts.backoffMinMs,
          backoffMaxMs: opts.backoffMaxMs,
          maxQueued: opts.maxQueued ?? DEFAULT_MAX_QUEUED,
          metaGets: opts.metaGets ?? true,
          logger: this.log.child({ conn: i }),
          counters: this.counters,
        }),
      );
    }
    this.conns = conns;
  }

  get isUp(): boolean {
    if (this.down) return false;
    for (const c of this.conns) if (c.isUp) return true;
    return false;
  }

  get inFlight(): number {
    let n = 0;
    for (const c of this.conns) n += c.inFlight;
    return n;
  }

  /** `preferred` while its connection is up, else the next one that is, else `preferred`. */
  pickConnection(preferred: number): number {
    const conns = this.conns;
    const n = conns.length;
    if (n === 1 || conns[preferred]?.isUp === true) return preferred;
    for (let i = 1; i < n; i++) {
      const j = preferred + i < n ? preferred + i : preferred + i - n;
      if (conns[j]?.isUp === true) return j;
    }
    return preferred;
  }

  // ---- ConnectionHealth ----

  get retryDelayMs(): number {
    return this.down ? this.retryAfterMs : 0;
  }

  onConnectionBroken(): void {
    this.failures++;
    if (this.down || this.failures < this.failureLimit) return;
    this.down = true;
    this.log.warn(
      { failures: this.failures, retryAfterMs: this.retryAfterMs, ejected: this.pool.ejectHosts },
      'upstream server marked down',
    );
    this.pool.onServerState();
  }

  onConnectionAnswered(): void {
    this.failures = 0;
    if (!this.down) return;
    this.down = false;
    this.log.warn('upstream server back up');
    this.pool.onServerState();
  }
}

/** The servers of one pool and the ring that places keys on them. */
export class ServerPool {
  readonly name: string;
  readonly servers: readonly UpstreamServer[];
  readonly ejectHosts: boolean;
  /** more than one server: keys are hashed */
  readonly isMulti: boolean;
  private readonly spec: PoolSpec;
  private readonly fullRing: KeyRing;
  /** the ring keys are placed by: the full one, or (ejectHosts) one over the live servers */
  private ring: KeyRing;
  /** ring index → server index, when the ring is over the live servers only; null for the full ring */
  private liveIndex: Int32Array | null;

  constructor(spec: PoolSpec, opts: ClusterOptions) {
    this.name = spec.name;
    this.spec = spec;
    this.ejectHosts = opts.ejectHosts ?? false;
    const tls = readUpstreamTls(spec.tls, spec.name);
    this.servers = spec.servers.map((s, i) => new UpstreamServer(s, i, this, opts, tls));
    this.isMulti = this.servers.length > 1;
    this.fullRing = buildRing(spec.servers, spec.distribution);
    this.ring = this.fullRing;
    this.liveIndex = null;
  }

  /** The server index for key `i` of `req` (its upstream bytes, namespace included). */
  serverForKey(req: Request, i: number): number {
    const key = upstreamKeyBytes(req, i);
    const at = this.ring.pick(key, 0, key.length);
    const live = this.liveIndex;
    return live === null ? at : (live[at] ?? 0);
  }

  /** The first server not marked down (keyless commands), else the first. */
  firstLive(): number {
    const servers = this.servers;
    for (let i = 0; i < servers.length; i++) if (servers[i]?.down !== true) return i;
    return 0;
  }

  /** A server went down or came back: with ejectHosts, place keys over the live servers only. */
  onServerState(): void {
    if (!this.ejectHosts || !this.isMulti) return;
    const live: number[] = [];
    for (const s of this.servers) if (!s.down) live.push(s.index);
    if (live.length === this.servers.length || live.length === 0) {
      // all live: the configured ring; none: keep it (every key fails at once)
      this.ring = this.fullRing;
      this.liveIndex = null;
      return;
    }
    const specs = live.map((i) => this.spec.servers[i]).filter((s): s is UpstreamServerSpec => s !== undefined);
    this.ring = buildRing(specs, this.spec.distribution);
    this.liveIndex = Int32Array.from(live);
  }

  /** memcached's version string from the first server that answered a version probe; null before. */
  get serverVersion(): string | null {
    for (const s of this.servers) for (const c of s.conns) if (c.version !== null) return c.version;
    return null;
  }
}

/**
 * One session's view of a pool: which connection of each server it is on and
 * how many of its requests are in flight there. Made by UpstreamCluster.link().
 */
export class UpstreamLink implements UpstreamSender {
  readonly cluster: UpstreamCluster;
  readonly pool: ServerPool;
  /** per server: the connection this session sends on */
  private readonly connOf: Int32Array;
  /** per server: this session's requests in flight there */
  private readonly inFlightAt: Int32Array;
  /** connections written to since the last blockedConnection() */
  private readonly touched: UpstreamConnection[];

  constructor(cluster: UpstreamCluster, pool: ServerPool, seed: number) {
    this.cluster = cluster;
    this.pool = pool;
    const n = pool.servers.length;
    this.connOf = new Int32Array(n);
    this.inFlightAt = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const conns = pool.servers[i]?.conns.length ?? 1;
      this.connOf[i] = (seed + i) % conns;
    }
    this.touched = [];
  }

  /**
   * Sends `req` to the server its key maps to (keyless: the first live one;
   * admin-wide commands: every server). Never throws: on any failure `req` is
   * completed through `req.owner.onReply`, possibly at once.
   */
  send(req: Request): void {
    const pool = this.pool;
    if (!pool.isMulti) {
      this.sendTo(0, req);
      return;
    }
    if (req.keys.length >= 2) {
      this.sendTo(pool.serverForKey(req, 0), req);
      return;
    }
    if (isFanOut(req)) {
      new FanOut(req, this).start();
      return;
    }
    this.sendTo(pool.firstLive(), req);
  }

  /** Sends `req` to server `s` of the pool, on this session's connection there. */
  sendTo(s: number, req: Request): void {
    const server = this.pool.servers[s];
    if (server === undefined || server.down) {
      req.upstreamServer = -1;
      failRequest(req, SERVER_DOWN);
      return;
    }
    let c = this.connOf[s] ?? 0;
    if (this.inFlightAt[s] === 0) {
      c = server.pickConnection(c);
      this.connOf[s] = c;
    }
    const conn = server.conns[c];
    if (conn === undefined) {
      failRequest(req, SERVER_DOWN);
      return;
    }
    req.upstreamServer = s;
    req.upstreamLink = this;
    this.inFlightAt[s] = (this.inFlightAt[s] ?? 0) + 1;
    if (!this.touched.includes(conn)) this.touched.push(conn);
    conn.send(req);
  }

  /** `req` (sent by send/sendTo) has its reply: one less in flight on its server. */
  answered(req: Request): void {
    const s = req.upstreamServer;
    if (s < 0 || req.upstreamLink !== this) return;
    req.upstreamServer = -1;
    req.upstreamLink = null;
    const n = this.inFlightAt[s] ?? 0;
    if (n > 0) this.inFlightAt[s] = n - 1;
  }

  /** True while any request of this session is in flight on any server. */
  get hasInFlight(): boolean {
    const f = this.inFlightAt;
    for (let i = 0; i < f.length; i++) if ((f[i] ?? 0) > 0) return true;
    return false;
  }

  /**
   * A connection this session wrote to since the last call whose socket is
   * not taking writes (the session pauses until it drains), else null.
   * Servers the session did not write to never pause it.
   */
  blockedConnection(): UpstreamConnection | null {
    const t = this.touched;
    let blocked: UpstreamConnection | null = null;
    for (let i = 0; i < t.length && blocked === null; i++) {
      const c = t[i];
      if (c !== undefined && c.isBlocked) blocked = c;
    }
    t.length = 0;
    return blocked;
  }

  /** memcached's version string for this pool, null before any probe was answered. */
  get serverVersion(): string | null {
    return this.pool.serverVersion;
  }
}

export class UpstreamCluster {
  readonly pools: ReadonlyMap<string, ServerPool>;
  private readonly defaultPool: ServerPool;

  constructor(opts: ClusterOptions) {
    const pools = new Map<string, ServerPool>();
    for (const [name, spec] of opts.topology.pools) {
      if (spec.servers.length === 0) throw new ProxyError(ErrorCode.CONFIG_INVALID, `upstream pool "${name}" is empty`);
      pools.set(name, new ServerPool(spec, opts));
    }
    const def = pools.get(DEFAULT_POOL);
    if (def === undefined) throw new ProxyError(ErrorCode.CONFIG_INVALID, 'upstream.servers is empty');
    this.pools = pools;
    this.defaultPool = def;
  }

  /** Begins connecting every connection of every server. */
  start(): void {
    for (const p of this.pools.values()) for (const s of p.servers) for (const c of s.conns) c.start();
  }

  /** The pool named `name` (a tenant's `pool`), the default one when there is none such. */
  pool(name: string): ServerPool {
    return this.pools.get(name) ?? this.defaultPool;
  }

  /** A session's link to pool `name`; `seed` (the session id) spreads sessions over each server's connections. */
  link(name: string, seed: number): UpstreamLink {
    return new UpstreamLink(this, this.pool(name), seed);
  }

  /** memcached's version string from the default pool; null before any probe was answered. */
  get serverVersion(): string | null {
    return this.defaultPool.serverVersion;
  }

  /** One entry per server of every pool. */
  health(): UpstreamHealth[] {
    const out: UpstreamHealth[] = [];
    for (const p of this.pools.values()) {
      for (const s of p.servers) {
        out.push({ address: s.spec.address, pool: p.name, up: s.isUp, down: s.down, inFlight: s.inFlight });
      }
    }
    return out;
  }

  /** Every pool has at least one server up (/readyz). */
  isReady(): boolean {
    for (const p of this.pools.values()) {
      let any = false;
      for (const s of p.servers) if (s.isUp) any = true;
      if (!any) return false;
    }
    return true;
  }

  /** Stops taking requests, lets the replies in flight arrive (bounded by requestTimeoutMs), closes. */
  async close(): Promise<void> {
    const all: Promise<void>[] = [];
    for (const p of this.pools.values()) for (const s of p.servers) for (const c of s.conns) all.push(c.close());
    await Promise.all(all);
  }
}
