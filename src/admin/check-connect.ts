/**
 * `memgate check-config --connect`: after the config validates, try what it
 * points at — every upstream server of every pool, and the state store — and
 * report each one on one line. What an operator runs before a reload.
 *
 *   upstream default 10.0.0.1:11211: ok, memcached 1.6.18 (2 ms)
 *   upstream default 10.0.0.2:11211: UNREACHABLE: connect ECONNREFUSED 10.0.0.2:11211
 *   state file:/var/lib/memgate/state.json: ok, 3 tenants; lock held by pid 41 on host web-2 … (refreshed 2s ago)
 *
 * Every probe is bounded: connecting by upstream.connectTimeoutMs, the reply by
 * upstream.requestTimeoutMs. Probes run concurrently; lines keep config order.
 * Runs in the CLI only, never in the proxy.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import type { Config } from '../config/schema.js';
import { parseStateFile } from '../state/file-store.js';
import { LOCK_STALE_MS, lockPathFor, ownerPathFor } from '../state/lock.js';
import { parseStateUrl, withoutPassword, type StateConfigLike } from '../state/store.js';
import { readUpstreamTls } from '../upstream/cluster.js';
import { memcachedTlsOptions, type ConnectionTls } from '../upstream/connection.js';
import { compileTopology, type UpstreamServerSpec } from '../upstream/topology.js';

export interface ProbeResult {
  /** what was tried: `upstream <pool> <address>` or `state <url without password>` */
  readonly what: string;
  readonly ok: boolean;
  /** `memcached 1.6.18 (2 ms)`, or why it failed */
  readonly detail: string;
}

export interface ProbeTimeouts {
  readonly connectTimeoutMs: number;
  readonly replyTimeoutMs: number;
}

/** A memcached `VERSION` reply longer than this is not memcached. */
const MAX_REPLY_BYTES = 1024;
const CRLF = '\r\n';

/**
 * Connects to one memcached server (TCP, unix socket, TLS when `tlsFiles`, as the proxy does),
 * sends `version`, and resolves with its `VERSION x` (never rejects).
 */
export function probeMemcached(
  server: UpstreamServerSpec,
  tlsFiles: ConnectionTls | null,
  timeouts: ProbeTimeouts,
): Promise<{ ok: boolean; detail: string }> {
  return new Promise((resolve) => {
    const started = Date.now();
    let settled = false;
    let socket: net.Socket;
    const finish = (ok: boolean, detail: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ok, detail });
    };
    let timer = setTimeout(
      () => finish(false, `connect timed out after ${timeouts.connectTimeoutMs} ms`),
      timeouts.connectTimeoutMs,
    );
    const target = server.path !== null ? { path: server.path } : { host: server.host, port: server.port };
    const event = tlsFiles === null ? 'connect' : 'secureConnect';
    try {
      socket =
        tlsFiles === null
          ? net.connect(target)
          : tls.connect({ ...target, ...memcachedTlsOptions(server.host, tlsFiles) });
    } catch (err) {
      socket = new net.Socket();
      finish(false, (err as Error).message);
      return;
    }
    socket.once('error', (err) => finish(false, err.message));
    socket.once('close', () => finish(false, 'closed the connection without a VERSION reply'));
    socket.once(event, () => {
      clearTimeout(timer);
      timer = setTimeout(
        () => finish(false, `no reply to "version" within ${timeouts.replyTimeoutMs} ms`),
        timeouts.replyTimeoutMs,
      );
      socket.write(`version${CRLF}`);
    });
    let reply = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      reply += chunk;
      const end = reply.indexOf(CRLF);
      if (end < 0) {
        if (reply.length > MAX_REPLY_BYTES) finish(false, 'answered "version" with a line too long for memcached');
        return;
      }
      const line = reply.slice(0, end);
      const m = /^VERSION (\S.*)$/.exec(line);
      const ms = Date.now() - started;
      if (m === null) finish(false, `answered "version" with ${JSON.stringify(line.slice(0, 80))}, not VERSION`);
      else finish(true, `memcached ${m[1] ?? ''}${tlsFiles === null ? '' : ' over TLS'} (${ms} ms)`);
    });
  });
}

/**
 * PING and the server's version (INFO), connected exactly as the Redis state
 * store connects (sentinels, state.tls, the same client), but with a bounded
 * connect, one attempt and no retries. Never rejects.
 */
export async function probeRedis(
  state: StateConfigLike,
  timeouts: ProbeTimeouts,
): Promise<{ ok: boolean; detail: string }> {
  const { newRedisClient, redisConnectionOptions } = await import('../state/redis-store.js');
  const started = Date.now();
  let client: Awaited<ReturnType<typeof newRedisClient>>;
  try {
    const options = redisConnectionOptions(state.url, {
      ...(state.sentinels === undefined ? {} : { sentinels: state.sentinels }),
      ...(state.sentinelName === undefined ? {} : { sentinelName: state.sentinelName }),
      ...(state.tls === undefined ? {} : { tls: state.tls }),
    });
    client = newRedisClient(state.url, {
      ...options,
      connectTimeout: timeouts.connectTimeoutMs,
      commandTimeout: timeouts.replyTimeoutMs,
      retryStrategy: () => null,
    });
  } catch (err) {
    return { ok: false, detail: (err as Error).message };
  }
  // the socket's own error (a refused certificate, ECONNREFUSED) says more than the rejected promise's
  let lastError: Error | null = null;
  client.on('error', (err: Error) => (lastError = err));
  try {
    await client.connect();
    const pong = await client.ping();
    if (pong !== 'PONG') return { ok: false, detail: `answered PING with ${JSON.stringify(pong)}` };
    const info = await client.info('server');
    const version = /^redis_version:(\S+)/m.exec(info)?.[1] ?? 'unknown version';
    return { ok: true, detail: `redis ${version}, PING answered (${Date.now() - started} ms)` };
  } catch (err) {
    return { ok: false, detail: ((lastError as Error | null) ?? (err as Error)).message };
  } finally {
    client.disconnect();
  }
}

function formatSeconds(ms: number): string {
  return `${Math.round(ms / 1000)}s`;
}

/**
 * The file store: its directory exists and is writable (the state is written
 * by temp file + rename, the lock is a directory beside it), the file, if any,
 * parses, and who holds the lock. A lock held by a running memgate is normal.
 */
export async function probeStateFile(file: string): Promise<{ ok: boolean; detail: string }> {
  const dir = path.dirname(file);
  try {
    const st = await fsp.stat(dir);
    if (!st.isDirectory()) return { ok: false, detail: `${dir} is not a directory` };
    await fsp.access(dir, fs.constants.R_OK | fs.constants.W_OK | fs.constants.X_OK);
  } catch (err) {
    return { ok: false, detail: `directory ${dir}: ${(err as Error).message}` };
  }
  let what: string;
  try {
    const text = await fsp.readFile(file, 'utf8');
    await fsp.access(file, fs.constants.R_OK | fs.constants.W_OK);
    const n = parseStateFile(file, text).size;
    what = `${n} tenant${n === 1 ? '' : 's'}`;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return { ok: false, detail: (err as Error).message };
    what = 'no state file yet (made at first start)';
  }
  const lock = await fsp.stat(lockPathFor(file)).catch(() => null);
  if (lock === null) return { ok: true, detail: `${what}; not locked (no memgate running on it)` };
  const owner = (await fsp.readFile(ownerPathFor(file), 'utf8').catch(() => '')).trim();
  const ageMs = Math.max(0, Date.now() - lock.mtimeMs);
  const by = owner === '' ? 'a memgate' : owner;
  if (ageMs > LOCK_STALE_MS) return { ok: true, detail: `${what}; stale lock of ${by} (taken over at the next start)` };
  return { ok: true, detail: `${what}; lock held by ${by} (refreshed ${formatSeconds(ageMs)} ago)` };
}

/** Probes every upstream server of every pool and the state store; results in config order. */
export async function checkConnections(config: Config): Promise<ProbeResult[]> {
  const timeouts: ProbeTimeouts = {
    connectTimeoutMs: config.upstream.connectTimeoutMs,
    replyTimeoutMs: config.upstream.requestTimeoutMs,
  };
  const probes: Promise<ProbeResult>[] = [];
  for (const pool of compileTopology(config).pools.values()) {
    // the pool's TLS files, read once as the proxy reads them; unreadable: every server of the pool fails with why
    let tlsFiles: ConnectionTls | null = null;
    let unreadable: string | null = null;
    try {
      tlsFiles = readUpstreamTls(pool.tls, pool.name);
    } catch (err) {
      unreadable = (err as Error).message;
    }
    for (const server of pool.servers) {
      const what = `upstream ${pool.name} ${server.address}`;
      const probe =
        unreadable === null
          ? probeMemcached(server, tlsFiles, timeouts)
          : Promise.resolve({ ok: false, detail: unreadable });
      probes.push(probe.then((r) => ({ what, ...r })));
    }
  }
  const what = `state ${withoutPassword(config.state.url)}`;
  const loc = parseStateUrl(config.state.url);
  const state = loc.kind === 'file' ? probeStateFile(loc.path) : probeRedis(config.state, timeouts);
  probes.push(state.then((r) => ({ what, ...r })));
  return Promise.all(probes);
}

/** One line per probe, `<what>: ok, <detail>` or `<what>: UNREACHABLE: <detail>`. */
export function formatProbeResults(results: readonly ProbeResult[]): string {
  return results.map((r) => `${r.what}: ${r.ok ? 'ok, ' : 'UNREACHABLE: '}${r.detail}`).join('\n') + '\n';
}
