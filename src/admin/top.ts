/**
 * `memgate top`: a live terminal view of a running memgate, one line per
 * tenant, read from the admin API's GET /metrics (the same numbers Prometheus
 * sees; with `--workers` the primary sums its workers there).
 *
 *   memgate top — 127.0.0.1:9211 — 13:20:01 — every 1s — sort: ops/s
 *   upstream: 127.0.0.1:11211 up   10.0.0.2:11211 DOWN        state: up
 *   TENANT          OPS/S   HIT%   ERR/S    RL/S  CONNS    IN/S   OUT/S
 *   shop           1234.5  93.1%    0.0     0.0      4   12.3K   45.6K
 *
 * Rates are the difference of two scrapes over the time between them. Keys
 * (raw mode, a terminal only): o h e r c b n sort by that column, s cycles,
 * q (or Ctrl-C) quits. When stdout is not a terminal, frames are plain text
 * without escape codes; `--once` prints one frame (two scrapes one interval
 * apart) and exits.
 */
import http from 'node:http';
import https from 'node:https';
import { InvalidArgumentError } from 'commander';
import { ADMIN_TOKEN_ENV, formatHostPort, type Config } from '../config/schema.js';
import { CliError } from './cli-actions.js';

/** One sample of the text exposition: `name{a="x"} value`. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Parses Prometheus' text format (what prom-client writes); comment and unparsable lines are skipped. */
export function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (m === null) continue;
    const labels: Record<string, string> = {};
    for (const pair of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1] ?? ''] = (pair[2] ?? '').replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    const raw = m[3] ?? '';
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw);
    out.push({ name: m[1] ?? '', labels, value });
  }
  return out;
}

/** A tenant's running totals at one scrape. */
export interface TenantTotals {
  requests: number;
  /** retrieval requests that found an item / found none (get, gets, gat, gats, mg) */
  hits: number;
  misses: number;
  errors: number;
  rateLimited: number;
  connections: number;
  bytesIn: number;
  bytesOut: number;
}

export interface Snapshot {
  readonly atMs: number;
  readonly tenants: ReadonlyMap<string, TenantTotals>;
  readonly upstream: readonly { readonly server: string; readonly up: boolean }[];
  /** memgate_state_up, or null when the metric is absent */
  readonly stateUp: boolean | null;
}

const RETRIEVAL = new Set(['get', 'gets', 'gat', 'gats', 'mg']);

/** Per-tenant metrics that `top` sums over their other labels into one TenantTotals field. */
const PER_TENANT_SUM: ReadonlyMap<string, keyof TenantTotals> = new Map([
  ['memgate_rate_limited_total', 'rateLimited'],
  ['memgate_client_connections', 'connections'],
  ['memgate_client_received_bytes_total', 'bytesIn'],
  ['memgate_client_sent_bytes_total', 'bytesOut'],
] as const);

function emptyTotals(): TenantTotals {
  return { requests: 0, hits: 0, misses: 0, errors: 0, rateLimited: 0, connections: 0, bytesIn: 0, bytesOut: 0 };
}

/** The numbers `top` shows, from one /metrics scrape. */
export function snapshotOf(samples: readonly Sample[], atMs: number): Snapshot {
  const tenants = new Map<string, TenantTotals>();
  const of = (name: string | undefined): TenantTotals | null => {
    if (name === undefined) return null;
    let t = tenants.get(name);
    if (t === undefined) {
      t = emptyTotals();
      tenants.set(name, t);
    }
    return t;
  };
  const upstream = new Map<string, boolean>();
  let stateUp: boolean | null = null;
  for (const s of samples) {
    const field = PER_TENANT_SUM.get(s.name);
    if (field !== undefined) {
      const t = of(s.labels.tenant);
      if (t !== null) t[field] += s.value;
      continue;
    }
    switch (s.name) {
      case 'memgate_requests_total': {
        const t = of(s.labels.tenant);
        if (t === null) break;
        t.requests += s.value;
        const outcome = s.labels.outcome;
        if (outcome === 'error') t.errors += s.value;
        if (RETRIEVAL.has(s.labels.command ?? '')) {
          if (outcome === 'ok') t.hits += s.value;
          else if (outcome === 'miss') t.misses += s.value;
        }
        break;
      }
      case 'memgate_upstream_up': {
        // `server` (one label per cluster server) or `upstream` (a single pool)
        const server = s.labels.server ?? s.labels.upstream ?? '?';
        upstream.set(server, (upstream.get(server) ?? false) || s.value >= 1);
        break;
      }
      case 'memgate_state_up':
        stateUp = s.value >= 1;
        break;
      default:
        break;
    }
  }
  return { atMs, tenants, upstream: [...upstream].map(([server, up]) => ({ server, up })), stateUp };
}

/** One line of the table: rates over the last interval (null before a second scrape). */
export interface TenantRow {
  readonly name: string;
  readonly opsPerSec: number | null;
  /** hits / (hits + misses) over the interval, or over all time before a second scrape; null when no retrievals */
  readonly hitRatio: number | null;
  readonly errorsPerSec: number | null;
  readonly rateLimitedPerSec: number | null;
  readonly connections: number;
  readonly bytesInPerSec: number | null;
  readonly bytesOutPerSec: number | null;
}

export function rowsOf(prev: Snapshot | null, cur: Snapshot): TenantRow[] {
  const seconds = prev === null ? 0 : (cur.atMs - prev.atMs) / 1000;
  const rows: TenantRow[] = [];
  for (const [name, t] of cur.tenants) {
    const p = prev?.tenants.get(name) ?? emptyTotals();
    // a counter that went down: memgate restarted; count from zero
    const delta = (now: number, before: number): number => (now >= before ? now - before : now);
    const rate = (now: number, before: number): number | null => (seconds > 0 ? delta(now, before) / seconds : null);
    const hits = seconds > 0 ? delta(t.hits, p.hits) : t.hits;
    const misses = seconds > 0 ? delta(t.misses, p.misses) : t.misses;
    rows.push({
      name,
      opsPerSec: rate(t.requests, p.requests),
      hitRatio: hits + misses > 0 ? hits / (hits + misses) : null,
      errorsPerSec: rate(t.errors, p.errors),
      rateLimitedPerSec: rate(t.rateLimited, p.rateLimited),
      connections: t.connections,
      bytesInPerSec: rate(t.bytesIn, p.bytesIn),
      bytesOutPerSec: rate(t.bytesOut, p.bytesOut),
    });
  }
  return rows;
}

export interface SortKey {
  /** the key that selects it */
  readonly key: string;
  readonly label: string;
  readonly value: (r: TenantRow) => number | string;
}

/** In the order `s` cycles through them. Numbers sort high first, names A to Z. */
export const SORT_KEYS: readonly SortKey[] = Object.freeze([
  { key: 'o', label: 'ops/s', value: (r: TenantRow) => r.opsPerSec ?? -1 },
  { key: 'h', label: 'hit ratio', value: (r: TenantRow) => r.hitRatio ?? -1 },
  { key: 'e', label: 'errors/s', value: (r: TenantRow) => r.errorsPerSec ?? -1 },
  { key: 'r', label: 'rate-limited/s', value: (r: TenantRow) => r.rateLimitedPerSec ?? -1 },
  { key: 'c', label: 'connections', value: (r: TenantRow) => r.connections },
  { key: 'b', label: 'bytes/s', value: (r: TenantRow) => (r.bytesInPerSec ?? -1) + (r.bytesOutPerSec ?? 0) },
  { key: 'n', label: 'tenant', value: (r: TenantRow) => r.name },
]);

export function sortKeyFor(key: string): SortKey | undefined {
  return SORT_KEYS.find((k) => k.key === key);
}

export function sortRows(rows: readonly TenantRow[], by: SortKey): TenantRow[] {
  return [...rows].sort((a, b) => {
    const va = by.value(a);
    const vb = by.value(b);
    if (typeof va === 'string' || typeof vb === 'string') return String(va).localeCompare(String(vb));
    return vb - va || a.name.localeCompare(b.name);
  });
}

function human(n: number | null): string {
  if (n === null) return '-';
  const abs = Math.abs(n);
  if (abs >= 1e9) return `${(n / 1e9).toFixed(1)}G`;
  if (abs >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (abs >= 1e4) return `${(n / 1e3).toFixed(1)}K`;
  return n.toFixed(1);
}

const COLUMNS = ['TENANT', 'OPS/S', 'HIT%', 'ERR/S', 'RL/S', 'CONNS', 'IN/S', 'OUT/S'] as const;
const WIDTHS = [16, 9, 7, 8, 8, 7, 8, 8] as const;

function tableLine(cells: readonly string[]): string {
  return cells.map((c, i) => (i === 0 ? c.padEnd(WIDTHS[0]) : c.padStart(WIDTHS[i] ?? 8))).join('');
}

export interface FrameInfo {
  readonly target: string;
  readonly intervalSec: number;
  readonly sort: SortKey;
  /** set when the last scrape failed */
  readonly error: string | null;
  /** show the key help line (a terminal) */
  readonly interactive: boolean;
}

/** The lines of one frame (no escape codes), `width` columns at most. */
export function renderFrame(snap: Snapshot | null, rows: readonly TenantRow[], info: FrameInfo, width = 200): string[] {
  const time = new Date(snap?.atMs ?? Date.now()).toISOString().slice(11, 19);
  const lines = [`memgate top - ${info.target} - ${time} UTC - every ${info.intervalSec}s - sort: ${info.sort.label}`];
  if (info.interactive) lines.push('keys: o h e r c b n sort, s next sort, q quit');
  if (info.error !== null) lines.push(`admin API: ${info.error}`);
  if (snap !== null) {
    const servers = snap.upstream.map((u) => `${u.server} ${u.up ? 'up' : 'DOWN'}`).join('   ');
    const state = snap.stateUp === null ? '' : `   state: ${snap.stateUp ? 'up' : 'DOWN'}`;
    lines.push(`upstream: ${servers === '' ? '(none reported)' : servers}${state}`);
  }
  lines.push(tableLine(COLUMNS));
  for (const r of sortRows(rows, info.sort)) {
    lines.push(
      tableLine([
        r.name.length > 15 ? `${r.name.slice(0, 14)}~` : r.name,
        human(r.opsPerSec),
        r.hitRatio === null ? '-' : `${(r.hitRatio * 100).toFixed(1)}%`,
        human(r.errorsPerSec),
        human(r.rateLimitedPerSec),
        String(r.connections),
        human(r.bytesInPerSec),
        human(r.bytesOutPerSec),
      ]),
    );
  }
  return lines.map((l) => (l.length > width ? l.slice(0, width) : l));
}

export interface TopOptions {
  /** `http://host:port` of the admin API */
  readonly baseUrl: string;
  readonly token: string | undefined;
  readonly intervalSec: number;
  readonly once: boolean;
  readonly sort: SortKey;
}

/** GET /metrics; rejects on a refused connection, a timeout or a status other than 200. */
export function fetchMetrics(baseUrl: string, token: string | undefined, timeoutMs: number): Promise<string> {
  const url = new URL('/metrics', baseUrl);
  const get = url.protocol === 'https:' ? https.get : http.get;
  const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
  return new Promise((resolve, reject) => {
    const req = get(url, { headers, timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        if (res.statusCode === 200) resolve(text);
        else reject(new Error(`GET ${url.href}: HTTP ${res.statusCode ?? '?'} ${text.slice(0, 200)}`));
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url.href}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

const ESC = '\x1b[';
const ALT_SCREEN_ON = `${ESC}?1049h${ESC}?25l`;
const ALT_SCREEN_OFF = `${ESC}?25h${ESC}?1049l`;
const HOME_CLEAR = `${ESC}H${ESC}2J`;
const CTRL_C = '\x03';

/**
 * Runs the view until `q` (terminal) or after one frame (`--once`); resolves
 * with the exit code (1: `--once` and the admin API did not answer).
 */
export async function runTop(opts: TopOptions): Promise<number> {
  const out = process.stdout;
  const interactive = out.isTTY && !opts.once;
  const intervalMs = Math.round(opts.intervalSec * 1000);
  const timeoutMs = Math.max(1000, intervalMs);
  const target = new URL(opts.baseUrl).host;
  let sort = opts.sort;
  let prev: Snapshot | null = null;
  let rows: TenantRow[] = [];
  let error: string | null = null;

  const scrape = async (): Promise<void> => {
    try {
      const snap = snapshotOf(parseExposition(await fetchMetrics(opts.baseUrl, opts.token, timeoutMs)), Date.now());
      rows = rowsOf(prev, snap);
      prev = snap;
      error = null;
    } catch (err) {
      error = (err as Error).message;
    }
  };
  const frame = (): string[] =>
    renderFrame(prev, rows, { target, intervalSec: opts.intervalSec, sort, error, interactive }, out.columns ?? 200);

  if (opts.once) {
    await scrape();
    if (error === null) {
      await new Promise((r) => setTimeout(r, intervalMs));
      await scrape();
    }
    out.write(`${frame().join('\n')}\n`);
    return error === null ? 0 : 1;
  }

  return new Promise<number>((resolve) => {
    let timer: NodeJS.Timeout | null = null;
    let done = false;
    const draw = (): void => {
      if (interactive) out.write(`${HOME_CLEAR}${frame().join('\n')}`);
      else out.write(`${frame().join('\n')}\n\n`);
    };
    const tick = (): void => {
      void scrape().then(() => {
        if (done) return;
        draw();
        timer = setTimeout(tick, intervalMs);
      });
    };
    const quit = (): void => {
      if (done) return;
      done = true;
      if (timer !== null) clearTimeout(timer);
      if (process.stdin.isTTY) process.stdin.setRawMode(false);
      process.stdin.pause();
      if (interactive) out.write(ALT_SCREEN_OFF);
      resolve(0);
    };
    const onKey = (data: string): void => {
      for (const ch of data) {
        if (ch === 'q' || ch === 'Q' || ch === CTRL_C) return quit();
        const next = ch === 's' ? SORT_KEYS[(SORT_KEYS.indexOf(sort) + 1) % SORT_KEYS.length] : sortKeyFor(ch);
        if (next !== undefined && next !== sort) {
          sort = next;
          draw();
        }
      }
    };
    if (interactive) out.write(ALT_SCREEN_ON);
    if (process.stdin.isTTY) {
      process.stdin.setRawMode(true);
      process.stdin.setEncoding('utf8');
      process.stdin.on('data', onKey);
      process.stdin.resume();
    }
    process.once('SIGINT', quit);
    process.once('SIGTERM', quit);
    if (interactive) out.on('resize', draw);
    tick();
  });
}

/** `--interval <seconds>`: a number from 0.1 to 3600. */
export function parseIntervalSeconds(value: string): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || !(n >= 0.1 && n <= 3600)) {
    throw new InvalidArgumentError('must be a number of seconds from 0.1 to 3600');
  }
  return n;
}

/** `--sort <key>`: one of the sort keys. */
export function parseSortKey(value: string): SortKey {
  const k = sortKeyFor(value);
  if (k === undefined) {
    throw new InvalidArgumentError(`must be one of ${SORT_KEYS.map((x) => `${x.key} (${x.label})`).join(', ')}`);
  }
  return k;
}

function wildcardToLoopback(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '::1';
  return host;
}

/**
 * Where `top` reads: `--admin host:port` (or an http(s) URL), else the config's
 * `admin` section. The token: MEMGATE_ADMIN_TOKEN, else the config's admin.token
 * (GET /metrics needs none today; sent in case a proxy in front asks for it).
 */
export function topTarget(
  admin: string | undefined,
  config: Config | null,
  env: NodeJS.ProcessEnv,
): { baseUrl: string; token: string | undefined } {
  const envToken = env[ADMIN_TOKEN_ENV];
  const token = envToken !== undefined && envToken !== '' ? envToken : config?.admin?.token;
  if (admin !== undefined) {
    if (/^https?:\/\//.test(admin)) return { baseUrl: admin, token };
    const m = /^(\[[^\]]+\]|[^:]+)(?::(\d{1,5}))?$/.exec(admin);
    if (m === null) throw new CliError(`--admin ${JSON.stringify(admin)}: use host:port or http://host:port`);
    return { baseUrl: `http://${m[1] ?? ''}:${m[2] ?? '9211'}`, token };
  }
  if (config === null) throw new CliError('top needs --admin host:port or --config with an admin section');
  if (config.admin === undefined) {
    throw new CliError('the config has no admin section: memgate top reads the admin API (admin: { host, port })');
  }
  const host = wildcardToLoopback(config.admin.host);
  return { baseUrl: `http://${formatHostPort(host, config.admin.port)}`, token };
}

/** `memgate top`'s flags (cli.ts). */
export interface TopFlags {
  readonly config?: string;
  readonly admin?: string;
  readonly interval: number;
  readonly sort: SortKey;
  readonly once?: boolean;
}

/** `memgate top`: resolves the admin API, runs the view; the exit code. A bad target is one line on stderr. */
export async function topCommand(flags: TopFlags, config: Config | null): Promise<number> {
  let target: { baseUrl: string; token: string | undefined };
  try {
    target = topTarget(flags.admin, config, process.env);
  } catch (err) {
    if (!(err instanceof CliError)) throw err;
    process.stderr.write(`memgate: ${err.message}\n`);
    return 1;
  }
  return runTop({ ...target, intervalSec: flags.interval, once: flags.once === true, sort: flags.sort });
}
