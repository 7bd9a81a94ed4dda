/**
 * Admin HTTP API (node:http; loopback by default).
 *
 *   GET  /metrics                 Prometheus metrics
 *   GET  /healthz                 200 while the process runs
 *   GET  /readyz                  200 when every upstream pool has a server up; lists each server
 *   GET  /tenants                 tenants with mode, connections and generation age (never secrets)
 *   POST /tenants/:name/rotate    rotate the tenant's generation now   (bearer token)
 *   POST /reload                  re-read the config file and apply it  (bearer token)
 *
 * Anything that changes state needs `Authorization: Bearer <admin token>`;
 * with no token configured those endpoints are refused outright. Errors are
 * JSON `{ "error": "<message>" }`.
 */
import http from 'node:http';
import { timingSafeEqual, createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { ErrorCode, hasErrorCode } from '../errors.js';

export interface AdminTarget {
  /** tenants for GET /tenants (a `--workers` primary asks its workers, hence the promise) */
  listTenants(): AdminTenantView[] | Promise<AdminTenantView[]>;
  rotate(tenant: string, source: string): Promise<{ generationAgeMs: number }>;
  hasTenant(tenant: string): boolean;
  /** re-reads and applies the config; on an invalid config the old one stays */
  reload(): Promise<{ ok: boolean; error?: string; closedConnections?: number }>;
  ready(): boolean | Promise<boolean>;
  /** false while the shared state (Redis) is unreachable: /readyz says "degraded" (still 200: it serves) */
  stateUp?(): boolean | Promise<boolean>;
  /** each upstream server, for the body of GET /readyz (absent: the body has no server list) */
  upstream?(): readonly { readonly address: string; readonly pool: string; readonly up: boolean }[];
  /** Prometheus text, counters copied at scrape time */
  metrics(): Promise<string>;
  readonly metricsContentType: string;
}

export interface AdminTenantView {
  readonly name: string;
  readonly mode: string;
  readonly admin: boolean;
  /** the upstream pool the tenant's requests go to */
  readonly pool: string;
  readonly connections: number;
  readonly generationAgeMs: number | null;
  readonly pendingRotationInMs: number | null;
}

export interface AdminServerOptions {
  readonly host: string;
  readonly port: number;
  readonly token: string | undefined;
  readonly logger: Logger;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Constant-time comparison of a presented bearer token with the configured one. */
export function tokenMatches(header: string | undefined, token: string | undefined): boolean {
  if (token === undefined || token.length === 0 || header === undefined) return false;
  const m = /^Bearer (.+)$/.exec(header);
  if (m === null || m[1] === undefined) return false;
  return timingSafeEqual(digest(m[1]), digest(token));
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export class AdminServer {
  private readonly server: http.Server;
  private readonly opts: AdminServerOptions;
  private readonly target: AdminTarget;

  constructor(opts: AdminServerOptions, target: AdminTarget) {
    this.opts = opts;
    this.target = target;
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        opts.logger.error({ err }, 'admin request failed');
        if (!res.headersSent) send(res, 500, { error: 'internal error' });
      });
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.opts.port, this.opts.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  address(): { host: string; port: number } {
    const a = this.server.address();
    if (a === null || typeof a === 'string') return { host: this.opts.host, port: this.opts.port };
    return { host: a.address, port: a.port };
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    req.resume(); // no endpoint reads a body
    if (method === 'GET' && path === '/healthz') return send(res, 200, { status: 'ok' });
    if (method === 'GET' && path === '/metrics') {
      const text = await this.target.metrics();
      res.writeHead(200, { 'content-type': this.target.metricsContentType, 'content-length': Buffer.byteLength(text) });
      res.end(text);
      return;
    }
    if (method === 'GET' && path === '/readyz') {
      const ok = await this.target.ready();
      const stateUp = (await this.target.stateUp?.()) ?? true;
      const servers = this.target.upstream?.().map((u) => ({ server: u.address, pool: u.pool, up: u.up }));
      const list = servers === undefined ? {} : { servers };
      if (ok && !stateUp) return send(res, 200, { status: 'degraded', state: 'unreachable', ...list });
      const body = stateUp
        ? { status: ok ? 'ready' : 'not ready', ...list }
        : { status: 'not ready', state: 'unreachable', ...list };
      return send(res, ok ? 200 : 503, body);
    }
    if (method === 'GET' && path === '/tenants') return send(res, 200, { tenants: await this.target.listTenants() });
    if (path === '/reload') {
      if (method !== 'POST') return send(res, 405, { error: 'use POST' });
      if (!this.authorize(req, res)) return;
      this.opts.logger.info({ audit: 'admin', action: 'reload', peer: req.socket.remoteAddress }, 'admin reload');
      const r = await this.target.reload();
      return send(
        res,
        r.ok ? 200 : 400,
        r.ok ? { reloaded: true, closedConnections: r.closedConnections ?? 0 } : { error: r.error },
      );
    }
    const rotate = /^\/tenants\/([^/]+)\/rotate$/.exec(path);
    if (rotate !== null) {
      if (method !== 'POST') return send(res, 405, { error: 'use POST' });
      if (!this.authorize(req, res)) return;
      const name = decodeURIComponent(rotate[1] ?? '');
      if (!this.target.hasTenant(name)) return send(res, 404, { error: `no tenant named ${JSON.stringify(name)}` });
      const source = `admin-api ${req.socket.remoteAddress ?? '?'}`;
      let r: { generationAgeMs: number };
      try {
        r = await this.target.rotate(name, source);
      } catch (err) {
        // the shared state is unreachable: nothing was applied anywhere
        if (!hasErrorCode(err, ErrorCode.STATE_UNAVAILABLE)) throw err;
        this.opts.logger.warn({ audit: 'admin', action: 'rotate', tenant: name, ok: false }, 'admin rotate refused');
        return send(res, 503, { error: (err as Error).message });
      }
      this.opts.logger.info(
        { audit: 'admin', action: 'rotate', tenant: name, peer: req.socket.remoteAddress },
        'admin rotate',
      );
      return send(res, 200, { tenant: name, rotated: true, generationAgeMs: r.generationAgeMs });
    }
    return send(res, 404, { error: `no such endpoint: ${method} ${path}` });
  }

  private authorize(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    if (this.opts.token === undefined || this.opts.token.length === 0) {
      send(res, 403, { error: 'no admin token is configured: state-changing endpoints are disabled' });
      return false;
    }
    if (!tokenMatches(req.headers.authorization, this.opts.token)) {
      this.opts.logger.warn({ audit: 'admin-auth-failure', peer: req.socket.remoteAddress }, 'admin request refused');
      send(res, 401, { error: 'missing or wrong bearer token' });
      return false;
    }
    return true;
  }
}
