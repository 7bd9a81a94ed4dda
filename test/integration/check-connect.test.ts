/**
 * `memgate check-config --connect`: every upstream server of every pool (TCP,
 * unix socket, TLS) and the state store, one line each, exit 1 when any is
 * unreachable. Real memcached and redis-server; one port is left closed, one
 * memcached is stopped (SIGSTOP) so that it accepts but never answers.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeMemcached, probeRedis, probeStateFile } from '../../src/admin/check-connect.js';
import { withoutPassword } from '../../src/state/store.js';
import { runCli } from '../helpers/memgate-process.js';
import { freePort, spawnMemcached, waitForPort, type MemcachedProcess } from '../helpers/spawn-memcached.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgate-connect-'));
const f = (name: string): string => path.join(dir, name);
const timeouts = { connectTimeoutMs: 500, replyTimeoutMs: 500 };
let plain: MemcachedProcess;
let tlsMc: MemcachedProcess;
let unixMc: ChildProcess;
let redis: ChildProcess;
let redisPort: number;
let closedPort: number;
const socketPath = f('memcached.sock');

function tcp(host: string, port: number) {
  return { address: `${host}:${port}`, host, port, path: null, weight: 1, name: null };
}

async function until(what: string, ok: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  // a self-signed server certificate for 127.0.0.1, its own CA
  execFileSync(
    'openssl',
    [
      ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=memcached'],
      ...['-keyout', f('server.key'), '-out', f('server.pem'), '-addext', 'subjectAltName=IP:127.0.0.1'],
    ],
    { stdio: 'ignore' },
  );
  const root = process.getuid?.() === 0 ? ['-u', 'root'] : [];
  [plain, tlsMc] = await Promise.all([
    spawnMemcached(),
    spawnMemcached(['-Z', '-o', `ssl_chain_cert=${f('server.pem')},ssl_key=${f('server.key')}`]),
  ]);
  unixMc = spawn('memcached', ['-U', '0', '-s', socketPath, '-m', '16', ...root], { stdio: 'ignore' });
  closedPort = await freePort();
  redisPort = await freePort();
  redis = spawn(
    'redis-server',
    ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: 'ignore' },
  );
  await Promise.all([waitForPort('127.0.0.1', redisPort), until('the unix socket', () => fs.existsSync(socketPath))]);
});

afterAll(async () => {
  await Promise.all([plain?.stop(), tlsMc?.stop()]);
  unixMc?.kill('SIGTERM');
  redis?.kill('SIGTERM');
  fs.rmSync(dir, { recursive: true, force: true });
});

function writeConfig(name: string, servers: string, extra = ''): string {
  const file = f(name);
  fs.writeFileSync(
    file,
    `
listen:
  - { host: 127.0.0.1, port: 0, tenant: shop }
upstream:
  servers: [ ${servers} ]
  connectTimeoutMs: 500
  requestTimeoutMs: 500
${extra}
state: { url: "file:${f('state.json')}" }
tenants:
  shop: { prefix: "shop:" }
`,
  );
  return file;
}

describe('memgate check-config --connect', () => {
  it('reports every server of every pool and the state store, one line each, exit 0 when all answer', async () => {
    const config = writeConfig(
      'all-up.yaml',
      `"${plain.address}"`,
      `  pools:
    secure: { servers: [ "${tlsMc.address}" ], tls: { ca: "${f('server.pem')}" } }
    local: { servers: [ { path: "${socketPath}" } ] }`,
    );
    const r = await runCli(['check-config', '--connect', '--config', config]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^config OK: 1 tenant, 1 listener$/);
    expect(lines.slice(1)).toEqual([
      expect.stringMatching(
        new RegExp(`^upstream default ${plain.address}: ok, memcached 1\\.6\\.\\d+ \\(\\d+ ms\\)$`),
      ),
      expect.stringMatching(new RegExp(`^upstream secure ${tlsMc.address}: ok, memcached 1\\.6\\.\\d+ over TLS`)),
      expect.stringMatching(new RegExp(`^upstream local ${socketPath}: ok, memcached 1\\.6\\.\\d+ `)),
      `state file:${f('state.json')}: ok, no state file yet (made at first start); not locked (no memgate running on it)`,
    ]);
  });

  it('names the unreachable server (a closed port) and exits 1; the others still report ok', async () => {
    const config = writeConfig('one-down.yaml', `"${plain.address}", "127.0.0.1:${closedPort}"`);
    const r = await runCli(['check-config', '--connect', '--config', config]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`^upstream default ${plain.address}: ok, memcached `, 'm'));
    expect(r.stdout).toMatch(
      new RegExp(`^upstream default 127\\.0\\.0\\.1:${closedPort}: UNREACHABLE: connect ECONNREFUSED`, 'm'),
    );
    expect(r.stdout).toMatch(/^state file:.*: ok, /m);
  });

  it('a TLS pool whose certificate does not verify is unreachable', async () => {
    // no `ca`: the self-signed certificate is not among the system CAs
    const config = writeConfig(
      'bad-ca.yaml',
      `"${plain.address}"`,
      `  pools:\n    secure: { servers: [ "${tlsMc.address}" ], tls: {} }`,
    );
    const r = await runCli(['check-config', '--connect', '--config', config]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`^upstream secure ${tlsMc.address}: UNREACHABLE: .*self.signed`, 'm'));
  });

  it('without --connect nothing is contacted (the closed port passes)', async () => {
    const config = writeConfig('offline.yaml', `"127.0.0.1:${closedPort}"`);
    const r = await runCli(['check-config', '--config', config]);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(/upstream|UNREACHABLE/);
  });
});

describe('probeMemcached', () => {
  it('gives up on a server that accepts but never answers, within the reply timeout', async () => {
    const stopped = await spawnMemcached();
    try {
      await stopped.pause();
      const r = await probeMemcached(tcp(stopped.host, stopped.port), null, timeouts);
      expect(r).toEqual({ ok: false, detail: 'no reply to "version" within 500 ms' });
    } finally {
      stopped.child.kill('SIGKILL');
    }
  });

  it('a plain-text probe of a TLS-only server does not pass', async () => {
    const r = await probeMemcached(tcp(tlsMc.host, tlsMc.port), null, timeouts);
    expect(r.ok).toBe(false);
  });
});

describe('state store probes', () => {
  it('redis: PING and the server version; a closed port is unreachable', async () => {
    const up = await probeRedis({ url: `redis://127.0.0.1:${redisPort}/0` }, timeouts);
    expect(up.ok).toBe(true);
    expect(up.detail).toMatch(/^redis \d+\.\d+\.\d+, PING answered \(\d+ ms\)$/);
    const down = await probeRedis({ url: `redis://127.0.0.1:${closedPort}/0` }, timeouts);
    expect(down.ok).toBe(false);
    expect(down.detail).toMatch(/ECONNREFUSED|Connection is closed/);
  });

  it('file: a missing directory and a corrupt file are failures; a lock held by a live memgate is not', async () => {
    expect((await probeStateFile(path.join(dir, 'nope', 'state.json'))).detail).toMatch(/^directory .*nope: ENOENT/);
    fs.writeFileSync(f('corrupt.json'), '{ not json');
    const corrupt = await probeStateFile(f('corrupt.json'));
    expect(corrupt.ok).toBe(false);
    expect(corrupt.detail).toContain('corrupt.json');
    fs.writeFileSync(f('held.json'), JSON.stringify({ version: 1, tenants: {} }));
    fs.mkdirSync(f('held.json.lock'));
    fs.writeFileSync(f('held.json.lock-owner'), 'pid 7 on host web-2 since 2026-12-03T10:00:00.000Z\n');
    const held = await probeStateFile(f('held.json'));
    expect(held).toEqual({
      ok: true,
      detail: expect.stringMatching(/^0 tenants; lock held by pid 7 on host web-2 since .* \(refreshed \d+s ago\)$/),
    });
  });

  it('never shows a password of the state URL', () => {
    expect(withoutPassword('redis://user:s3cret@host:6379/0')).toBe('redis://user:***@host:6379/0');
    expect(withoutPassword('redis://:s3cret@host/0')).toBe('redis://:***@host/0');
    expect(withoutPassword('file:/var/lib/memgate/state.json')).toBe('file:/var/lib/memgate/state.json');
  });
});
