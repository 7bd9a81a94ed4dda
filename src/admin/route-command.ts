/**
 * `memgate route --config F [--tenant T] KEY…`: which memcached server holds a key.
 *
 *   client key ─▶ the key memcached stores ─▶ the pool's ring ─▶ "KEY host:port"
 *                 (namespace tenant: prefix + generation + key, or the digest form
 *                  for a long key, by the proxy's own upstream-key.ts; enforce and
 *                  admin tenants, and no --tenant: the key unchanged)
 *
 * Contacts no server and changes no state: a namespace tenant's generation is
 * read from the state file, never created or rotated here, so a tenant that
 * has none yet (memgate never ran with it) is an error rather than a guess.
 */
import fs from 'node:fs';
import type { Config } from '../config/schema.js';
import { DEFAULT_POOL } from '../config/schema.js';
import { compilePolicy } from '../policy/compile.js';
import { checkEnforcedKeys, checkNamespacedKeys } from '../policy/key-prefix.js';
import { isKey } from '../protocol/text/bytes.js';
import { MAX_KEY_BYTES } from '../protocol/limits.js';
import { Request } from '../protocol/text/request.js';
import { upstreamKeyBytes } from '../protocol/text/upstream-key.js';
import { parseStateFile } from '../state/file-store.js';
import { parseStateUrl } from '../state/store.js';
import { buildRing } from '../upstream/ring.js';
import { compileTopology, type KeyRing, type PoolSpec } from '../upstream/topology.js';
import { CliError } from './cli-actions.js';

/** Where a tenant's (or the raw default pool's) keys go. */
export interface RouteTarget {
  readonly pool: PoolSpec;
  readonly ring: KeyRing;
  /** namespace bytes (prefix + generation) prepended to every key, or null */
  readonly ns: Buffer | null;
  /** enforce mode: the prefixes a key must start with; null otherwise */
  readonly prefixes: readonly Buffer[] | null;
  /** for messages: `tenant "shop"` or `the default pool` */
  readonly label: string;
}

/** The tenant's current generation from the file state store, read-only. */
function storedGeneration(config: Config, tenant: string): string {
  const loc = parseStateUrl(config.state.url);
  if (loc.kind !== 'file') {
    throw new CliError(
      `route --tenant reads a namespace tenant's generation from a file state store; state.url ${config.state.url} is not one`,
    );
  }
  let text: string;
  try {
    text = fs.readFileSync(loc.path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new CliError(
        `tenant "${tenant}" has no generation yet: state file ${loc.path} does not exist (memgate creates it at start; route never does)`,
      );
    }
    throw new CliError(`cannot read state file ${loc.path}: ${(err as Error).message}`);
  }
  const state = parseStateFile(loc.path, text).get(tenant);
  if (state === undefined) {
    throw new CliError(
      `tenant "${tenant}" has no generation yet in state file ${loc.path} (memgate creates it at start; route never does)`,
    );
  }
  if (state.pendingAtMs !== null && state.pendingAtMs <= Date.now()) {
    throw new CliError(
      `tenant "${tenant}" has a rotation due since ${new Date(state.pendingAtMs).toISOString()} that memgate has not made yet: its keys will move to a generation not chosen yet`,
    );
  }
  return state.generation;
}

/** The pool, ring and key rewrite for `tenant` (undefined: raw keys on the default pool). */
export function routeTarget(config: Config, tenant: string | undefined): RouteTarget {
  const topology = compileTopology(config);
  const poolOf = (name: string): PoolSpec => {
    const pool = topology.pools.get(name);
    if (pool === undefined) throw new CliError(`pool "${name}" is not configured`);
    return pool;
  };
  if (tenant === undefined) {
    const pool = poolOf(DEFAULT_POOL);
    return {
      pool,
      ring: buildRing(pool.servers, pool.distribution),
      ns: null,
      prefixes: null,
      label: 'the default pool',
    };
  }
  const policy = compilePolicy(config).tenants.get(tenant);
  const tenantConfig = Object.hasOwn(config.tenants, tenant) ? config.tenants[tenant] : undefined;
  if (policy === undefined || tenantConfig === undefined) {
    const known = Object.keys(config.tenants).join(', ');
    throw new CliError(`no tenant named ${JSON.stringify(tenant)} in the config (tenants: ${known})`);
  }
  const pool = poolOf(tenantConfig.pool);
  const ring = buildRing(pool.servers, pool.distribution);
  const label = `tenant "${tenant}"`;
  if (policy.admin) return { pool, ring, ns: null, prefixes: null, label };
  if (policy.mode === 'enforce') return { pool, ring, ns: null, prefixes: policy.prefixes, label };
  const ns = Buffer.concat([policy.prefix, Buffer.from(storedGeneration(config, tenant), 'latin1')]);
  return { pool, ring, ns, prefixes: null, label };
}

/** Why memgate would not store `key` for this target, or null; `what` names the key in the message. */
function keyProblem(target: RouteTarget, req: Request, what: string): string | null {
  const key = req.line;
  if (key.length === 0) return `${what} is empty`;
  if (key.length > MAX_KEY_BYTES) return `${what} is ${key.length} bytes: memcached keys are at most ${MAX_KEY_BYTES}`;
  if (!isKey(key, 0, key.length, MAX_KEY_BYTES)) return `${what} contains a space or a control character`;
  if (target.prefixes !== null && checkEnforcedKeys(req, target.prefixes) !== null) {
    return `${what} does not start with one of ${target.label}'s prefixes (memgate answers CLIENT_ERROR access denied)`;
  }
  if (target.ns !== null && checkNamespacedKeys(req, target.ns) !== null) {
    return `${what} is too long for ${target.label}'s namespace`;
  }
  return null;
}

/** The server address for one client key, or a message saying why there is none. */
export function routeKey(target: RouteTarget, key: Buffer, what = 'key'): { server: string } | { problem: string } {
  const req = new Request();
  req.line = key;
  req.keys = [0, key.length];
  req.ns = target.ns;
  const problem = keyProblem(target, req, what);
  if (problem !== null) return { problem };
  const stored = upstreamKeyBytes(req, 0);
  const server = target.pool.servers[target.ring.pick(stored, 0, stored.length)];
  if (server === undefined) return { problem: `${what}: the pool has no server for it` };
  return { server: server.address };
}

export interface RouteOutput {
  /** `KEY host:port\n` per routable key, in input order (keys as their bytes) */
  readonly stdout: Buffer;
  /** one message per key that cannot be routed */
  readonly problems: readonly string[];
}

/** Routes every key; `fromStdin` numbers the keys as lines in the messages. */
export function routeCommand(
  config: Config,
  tenant: string | undefined,
  keys: readonly Buffer[],
  fromStdin: boolean,
): RouteOutput {
  const target = routeTarget(config, tenant);
  const out: Buffer[] = [];
  const problems: string[] = [];
  const space = Buffer.from(' ');
  keys.forEach((key, i) => {
    const what = fromStdin ? `line ${i + 1}: key` : `key ${JSON.stringify(key.toString('utf8'))}`;
    const routed = routeKey(target, key, what);
    if ('problem' in routed) problems.push(routed.problem);
    else out.push(key, space, Buffer.from(`${routed.server}\n`));
  });
  return { stdout: Buffer.concat(out), problems };
}

/** Stdin as keys: one per line (LF or CRLF); the newline after the last key is optional. */
export function splitKeyLines(input: Buffer): Buffer[] {
  const keys: Buffer[] = [];
  let start = 0;
  while (start < input.length) {
    let end = input.indexOf(0x0a, start);
    const next = end === -1 ? input.length : end + 1;
    if (end === -1) end = input.length;
    if (end > start && input[end - 1] === 0x0d) end--;
    keys.push(input.subarray(start, end));
    start = next;
  }
  return keys;
}
