/**
 * What `memgate rotate` and `memgate state show` do, kept out of cli.ts.
 *
 * rotate: ask the running memgate (admin API, bearer token); when nothing
 * answers there, update the state file itself under its lock — which fails
 * clearly if a memgate holds the file after all — or, with a Redis store,
 * rotate in Redis directly (running instances get it by pub/sub).
 * state show: reads the file, or Redis (read only).
 */
import fs from 'node:fs';
import http from 'node:http';
import type { Config } from '../config/schema.js';
import { parseStateFile, updateStateFileOffline } from '../state/file-store.js';
import { readRedisStates, rotateInRedis, type RedisStoreOptions } from '../state/redis-store.js';
import { freshTenantState, parseStateUrl, withoutPassword, type TenantState } from '../state/store.js';

export class CliError extends Error {}

function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

interface HttpAnswer {
  status: number;
  body: Record<string, unknown>;
}

function post(host: string, port: number, path: string, token: string | undefined): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    const req = http.request({ host, port, path, method: 'POST', headers, timeout: 10_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        let body: Record<string, unknown> = {};
        try {
          body = JSON.parse(text) as Record<string, unknown>;
        } catch {
          body = { error: text };
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('timeout', () => req.destroy(new Error('admin API timed out')));
    req.on('error', reject);
    req.end();
  });
}

function adminConnectHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '::1';
  return host;
}

function redisOptions(config: Config): RedisStoreOptions {
  const s = config.state;
  return {
    keyPrefix: s.keyPrefix,
    sentinelName: s.sentinelName,
    ...(s.tls === undefined ? {} : { tls: s.tls }),
    ...(s.sentinels === undefined ? {} : { sentinels: s.sentinels }),
  };
}

/** Rotates `tenant`; returns the line to print. */
export async function rotateCommand(config: Config, tenant: string): Promise<string> {
  if (!Object.prototype.hasOwnProperty.call(config.tenants, tenant)) {
    throw new CliError(`no tenant named ${JSON.stringify(tenant)} in the config`);
  }
  const admin = config.admin;
  if (admin !== undefined) {
    const host = adminConnectHost(admin.host);
    let answer: HttpAnswer | null = null;
    try {
      answer = await post(host, admin.port, `/tenants/${encodeURIComponent(tenant)}/rotate`, admin.token);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ECONNREFUSED') throw new CliError(`admin API at ${host}:${admin.port}: ${(err as Error).message}`);
    }
    if (answer !== null) {
      if (answer.status !== 200) {
        throw new CliError(`admin API at ${host}:${admin.port} refused: ${String(answer.body.error ?? answer.status)}`);
      }
      const age = typeof answer.body.generationAgeMs === 'number' ? answer.body.generationAgeMs : 0;
      return `rotated ${tenant}: new generation is ${formatAge(age)} old (running memgate at ${host}:${admin.port})`;
    }
  }
  const loc = parseStateUrl(config.state.url);
  if (loc.kind === 'redis') {
    const st = await rotateInRedis(loc.url, tenant, redisOptions(config));
    const age = Date.now() - st.rotatedAtMs;
    return `rotated ${tenant}: new generation is ${formatAge(age)} old (in Redis at ${withoutPassword(loc.url)}; running instances follow)`;
  }
  const file = loc.path;
  const names = Object.keys(config.tenants);
  const tenants = await updateStateFileOffline(file, (state) => {
    for (const name of names) if (!state.has(name)) state.set(name, freshTenantState(undefined, Date.now()));
    state.set(tenant, freshTenantState(state.get(tenant), Date.now()));
  });
  const st = tenants.get(tenant);
  const age = st === undefined ? 0 : Date.now() - st.rotatedAtMs;
  return `rotated ${tenant}: new generation is ${formatAge(age)} old (state file ${file}; no memgate was running)`;
}

/** The `state show` table: tenant, generation age, pending rotation. Never generations or prefixes. */
export async function stateShowCommand(config: Config): Promise<string> {
  const loc = parseStateUrl(config.state.url);
  let state: Map<string, TenantState>;
  if (loc.kind === 'redis') {
    state = await readRedisStates(loc.url, Object.keys(config.tenants), redisOptions(config));
  } else {
    try {
      state = parseStateFile(loc.path, fs.readFileSync(loc.path, 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') state = new Map();
      else throw err;
    }
  }
  const now = Date.now();
  const rows = [['tenant', 'generation age', 'pending rotation']];
  const names = new Set([...Object.keys(config.tenants), ...state.keys()]);
  for (const name of [...names].sort()) {
    const st = state.get(name);
    const inConfig = Object.prototype.hasOwnProperty.call(config.tenants, name);
    const age = st === undefined ? 'none yet (fresh at start)' : formatAge(now - st.rotatedAtMs);
    const pending = st?.pendingAtMs == null ? '-' : `in ${formatAge(st.pendingAtMs - now)}`;
    rows.push([inConfig ? name : `${name} (not in config)`, age, pending]);
  }
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return (
    rows
      .map((r) =>
        r
          .map((c, i) => c.padEnd(widths[i] ?? 0))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}
