/**
 * The upstream pool: a few pipelined connections to memcached shared by every
 * client session.
 *
 *   sessions:   s1  s2  s3  s4  s5 ...
 *   slots:       0   1   0   1   0       assign(): round robin, kept for life
 *   sockets:   [conn 0]  [conn 1]        connectionsPerServer of servers[0]
 *
 * A session keeps its slot while it has requests in flight, so they travel in
 * order on one socket and memcached answers them in order (a set followed by a
 * get on the same key can never be reordered). A session with nothing in
 * flight asks route() first: when its socket is broken (waiting out its
 * backoff) or still reconnecting, it moves to a healthy socket of the same
 * server at once, instead of failing until its own socket is back.
 *
 *   conn 0 breaks ─▶ its in-flight requests fail (only those) ─▶ sessions on slot 0
 *   now have nothing in flight ─▶ route(0) = 1 ─▶ their next requests go to conn 1
 *
 * Backpressure stays per socket: a session watches the slot it last sent on.
 *
 * NOTE: only servers[0] is used for now; key → server selection (ketama) will
 * live in select.ts and split multi-gets per server.
 */
import type { Logger } from 'pino';
import { UpstreamCounterSet, type UpstreamCounters } from '../admin/counters.js';
import { ErrorCode, ProxyError } from '../errors.js';
import type { Request } from '../protocol/text/request.js';
import { UpstreamConnection } from './connection.js';

export interface UpstreamOptions {
  /** "host:port" (IPv6 as "[::1]:11211"); only servers[0] is used for now */
  servers: readonly string[];
  /** sockets per server, default 2 */
  connectionsPerServer: number;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  logger: Logger;
  /** requests queued per connection while it connects; more fail at once (default 10,000) */
  maxQueued?: number;
  /** send one-key get/gets as mg to memcached 1.6+ (default true) */
  metaGets?: boolean;
  /** where connection resets are counted, per server (the process keeps one across reloads); a private set when absent */
  counters?: UpstreamCounterSet;
}

export interface UpstreamHealth {
  /** "host:port" */
  address: string;
  /** at least one connection to the server is open */
  up: boolean;
  /** requests written (or queued) and not yet answered, over all its connections */
  inFlight: number;
}

export const DEFAULT_MAX_QUEUED = 10_000;

/** Splits "host:port" / "[v6]:port"; throws ERR_CONFIG_INVALID when it is neither. */
export function parseHostPort(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  let host = colon > 0 ? address.slice(0, colon) : '';
  const portText = colon > 0 ? address.slice(colon + 1) : '';
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : 0;
  if (host === '' || port < 1 || port > 65535) {
    throw new ProxyError(ErrorCode.CONFIG_INVALID, `upstream server "${address}" is not host:port`);
  }
  return { host, port };
}

export class UpstreamPool {
  private readonly conns: readonly UpstreamConnection[];
  private readonly address: string;
  /** resets of servers[0]'s connections, by reason */
  readonly counters: UpstreamCounters;
  private nextSlot: number;

  constructor(opts: UpstreamOptions) {
    const first = opts.servers[0];
    if (first === undefined) throw new ProxyError(ErrorCode.CONFIG_INVALID, 'upstream.servers is empty');
    const { host, port } = parseHostPort(first);
    const count = Math.max(1, Math.floor(opts.connectionsPerServer));
    const address = `${host.includes(':') ? `[${host}]` : host}:${port}`;
    const counters = (opts.counters ?? new UpstreamCounterSet()).forServer(address);
    const conns: UpstreamConnection[] = [];
    for (let i = 0; i < count; i++) {
      conns.push(
        new UpstreamConnection({
          host,
          port,
          connectTimeoutMs: opts.connectTimeoutMs,
          requestTimeoutMs: opts.requestTimeoutMs,
          backoffMinMs: opts.backoffMinMs,
          backoffMaxMs: opts.backoffMaxMs,
          maxQueued: opts.maxQueued ?? DEFAULT_MAX_QUEUED,
          metaGets: opts.metaGets ?? true,
          logger: opts.logger.child({ upstream: first, conn: i }),
          counters,
        }),
      );
    }
    this.conns = conns;
    this.address = address;
    this.counters = counters;
    this.nextSlot = 0;
  }

  /** Number of slots (connections) assign() hands out. */
  get size(): number {
    return this.conns.length;
  }

  /** Begins connecting every connection. */
  start(): void {
    for (const c of this.conns) c.start();
  }

  /** A slot for a new client session (round robin). */
  assign(): number {
    const slot = this.nextSlot;
    this.nextSlot = slot + 1 >= this.conns.length ? 0 : slot + 1;
    return slot;
  }

  /**
   * The slot a session whose requests are all answered should send on next:
   * `slot` itself while its connection is up, else the next connection that
   * is up, else `slot` (every socket of the server is down or connecting).
   * Only for a session with nothing in flight: moving one with requests in
   * flight could reorder them.
   */
  route(slot: number): number {
    const n = this.conns.length;
    const at = this.slotIndex(slot);
    if (this.conns[at]?.isUp === true) return at;
    for (let i = 1; i < n; i++) {
      const j = at + i < n ? at + i : at + i - n;
      if (this.conns[j]?.isUp === true) return j;
    }
    return at;
  }

  /**
   * Encodes `req`, writes it on the slot's connection and expects its reply.
   * On any failure `req` is completed with `SERVER_ERROR backend failure`
   * (or the encoder's refusal) through `req.owner.onReply`, possibly at once.
   */
  send(slot: number, req: Request): void {
    this.conn(slot).send(req);
  }

  /** The slot's socket did not take the last write ('drain' has not come yet). */
  isBlocked(slot: number): boolean {
    return this.conn(slot).isBlocked;
  }

  /** `cb` runs once when the slot is writable again. */
  onDrain(slot: number, cb: () => void): void {
    this.conn(slot).onDrain(cb);
  }

  /** memcached's version string, from the first connection whose version probe was answered; null before. */
  get serverVersion(): string | null {
    for (const c of this.conns) if (c.version !== null) return c.version;
    return null;
  }

  /** One entry per server. */
  health(): UpstreamHealth[] {
    let up = false;
    let inFlight = 0;
    for (const c of this.conns) {
      if (c.isUp) up = true;
      inFlight += c.inFlight;
    }
    return [{ address: this.address, up, inFlight }];
  }

  /** Stops taking requests, lets the replies in flight arrive (bounded by requestTimeoutMs), closes. */
  async close(): Promise<void> {
    await Promise.all(this.conns.map((c) => c.close()));
  }

  private conn(slot: number): UpstreamConnection {
    const c = this.conns[this.slotIndex(slot)];
    if (c === undefined) throw new RangeError(`no upstream slot ${slot}`);
    return c;
  }

  /** `slot` as an index into conns (any integer wraps round). */
  private slotIndex(slot: number): number {
    const n = this.conns.length;
    return slot >= 0 && slot < n ? slot : ((slot % n) + n) % n;
  }
}
