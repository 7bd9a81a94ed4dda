/**
 * `memgate serve --workers 2` as a real process in front of a real memcached:
 * both workers serve, generations stay correct across workers (flush_all,
 * delayed flush_all, admin rotate), a killed worker is restarted without
 * losing or resurrecting data, /metrics sums the workers, SIGTERM exits 0.
 * In-process: without a lease source a worker enforces its share of each
 * per-tenant limit (the connection cap always). Last, a real --workers 2 with
 * a rate limit: the workers lease from one budget in the primary, so a tenant
 * on one connection gets its whole limit.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { createProxy, type Proxy } from '../../src/index.js';
import { runCli, spawnMemgate, type MemgateProcess } from '../helpers/memgate-process.js';
import { freePort, spawnMemcached, type MemcachedProcess } from '../helpers/spawn-memcached.js';
import { pipelinedGets } from '../helpers/rate-load.js';
import { TextClient } from '../helpers/text-client.js';

const TOKEN = 'workers-token-0123456789';
const CONNECTIONS = 20;

let mc: MemcachedProcess;
let gate: MemgateProcess;
let dir: string;
let shopPort: number;
let blogPort: number;
let adminPort: number;
let configFile: string;
let configText: string;
const open: TextClient[] = [];

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  mc = await spawnMemcached();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgate-workers-'));
  [shopPort, blogPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  configFile = path.join(dir, 'memgate.yaml');
  configText = `listen:
  - { host: 127.0.0.1, port: ${shopPort}, tenant: shop }
  - { host: 127.0.0.1, port: ${blogPort}, tenant: blog }
upstream:
  servers: [ "${mc.address}" ]
admin: { host: 127.0.0.1, port: ${adminPort}, token: "${TOKEN}" }
state: { url: "file:${path.join(dir, 'state.json')}" }
log: { level: warn }
tenants:
  shop: { prefix: "wk-shop${shopPort}:" }
  blog: { prefix: "wk-blog${shopPort}:" }
`;
  fs.writeFileSync(configFile, configText);
  // the admin server opens once every worker listens
  gate = await spawnMemgate(configFile, adminPort, ['--workers', '2']);
});

afterAll(async () => {
  for (const c of open) c.close();
  await gate?.stop();
  await mc?.stop();
});

async function connect(port: number): Promise<TextClient> {
  const c = await TextClient.connect(port);
  open.push(c);
  return c;
}

/** The pid of the worker serving this connection (a tenant's `stats` is answered by memgate itself). */
async function pidOf(c: TextClient): Promise<number> {
  const m = /STAT pid (\d+)\r\n/.exec(await c.request('stats\r\n'));
  if (m?.[1] === undefined) throw new Error('no pid in stats');
  return Number(m[1]);
}

/** The pid serving a new connection, or null when it is not answered within a second. */
async function probePid(port: number): Promise<number | null> {
  const c = await TextClient.connect(port);
  try {
    const m = /STAT pid (\d+)\r\n/.exec(await c.request('stats\r\n', 1000));
    return m?.[1] === undefined ? null : Number(m[1]);
  } catch {
    return null;
  } finally {
    c.close();
  }
}

/** `count` connections to `port`, with the worker pid each landed on. */
async function connections(port: number, count = CONNECTIONS): Promise<{ clients: TextClient[]; pids: number[] }> {
  const clients: TextClient[] = [];
  for (let i = 0; i < count; i++) clients.push(await connect(port));
  const pids = await Promise.all(clients.map(pidOf));
  return { clients, pids };
}

function generationOf(tenant: string): string {
  const state = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8')) as {
    tenants: Record<string, { generation: string }>;
  };
  const g = state.tenants[tenant]?.generation;
  if (g === undefined) throw new Error(`no generation for ${tenant}`);
  return g;
}

async function adminPost(urlPath: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${adminPort}${urlPath}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function metrics(): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

/** The value of one series in Prometheus text, 0 when absent. */
function series(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? 0 : Number(line.slice(name.length + 1));
}

const hit = (key: string, value: string): string => `VALUE ${key} 0 ${value.length}\r\n${value}\r\nEND\r\n`;

async function everyone(clients: TextClient[], cmd: string): Promise<string[]> {
  return Promise.all(clients.map((c) => c.request(cmd)));
}

describe('memgate serve --workers 2', () => {
  it('serves on both workers, each connection with correct, namespaced answers', async () => {
    const { clients, pids } = await connections(shopPort);
    expect(new Set(pids).size).toBe(2);
    expect(pids).not.toContain(gate.child.pid);
    await Promise.all(
      clients.map(async (c, i) => {
        expect(await c.request(`set k${i} 0 0 ${String(i).length}\r\n${i}\r\n`)).toBe('STORED\r\n');
      }),
    );
    // every connection reads every other's key, whichever worker wrote it
    for (const [j, c] of clients.entries()) {
      const i = (j + 7) % clients.length;
      expect(await c.request(`get k${i}\r\n`)).toBe(hit(`k${i}`, String(i)));
    }
    // upstream, the key carries the tenant's prefix and the (shared) generation
    const direct = await connect(mc.port);
    const upstreamKey = `wk-shop${shopPort}:${generationOf('shop')}k3`;
    expect(await direct.request(`get ${upstreamKey}\r\nget k3\r\n`)).toBe(`${hit(upstreamKey, '3')}END\r\n`);
    // the other tenant sees none of it
    const blog = await connect(blogPort);
    expect(await blog.request('get k3\r\n')).toBe('END\r\n');
  });

  it('flush_all on one connection hides the keys on every connection as soon as it answers OK', async () => {
    const { clients, pids } = await connections(shopPort);
    expect(new Set(pids).size).toBe(2);
    const [first] = clients;
    if (first === undefined) throw new Error('no client');
    expect(await first.request('set fl 0 0 3\r\nold\r\n')).toBe('STORED\r\n');
    expect(await everyone(clients, 'get fl\r\n')).toEqual(clients.map(() => hit('fl', 'old')));
    expect(await first.request('flush_all\r\n')).toBe('OK\r\n');
    // no wait: the OK means every worker already uses the new generation
    expect(await everyone(clients, 'get fl\r\n')).toEqual(clients.map(() => 'END\r\n'));
    expect(await clients[11]?.request('set fl 0 0 3\r\nnew\r\n')).toBe('STORED\r\n');
    expect(await everyone(clients, 'get fl\r\n')).toEqual(clients.map(() => hit('fl', 'new')));
  });

  it('a delayed flush_all takes effect on every worker at the delay', async () => {
    const { clients, pids } = await connections(shopPort);
    expect(new Set(pids).size).toBe(2);
    expect(await clients[3]?.request('set later 0 0 1\r\n1\r\n')).toBe('STORED\r\n');
    expect(await clients[4]?.request('flush_all 1\r\n')).toBe('OK\r\n');
    expect(await everyone(clients, 'get later\r\n')).toEqual(clients.map(() => hit('later', '1')));
    const deadline = Date.now() + 5000;
    let replies = await everyone(clients, 'get later\r\n');
    while (replies.some((r) => r !== 'END\r\n') && Date.now() < deadline) {
      await sleep(100);
      replies = await everyone(clients, 'get later\r\n');
    }
    expect(replies).toEqual(clients.map(() => 'END\r\n'));
  });

  it('restarts a worker killed with -9; the generation survives: no resurrection, no loss', async () => {
    const before = await metrics();
    const { clients, pids } = await connections(shopPort, 4);
    const [c0] = clients;
    if (c0 === undefined) throw new Error('no client');
    expect(await c0.request('set pre 0 0 3\r\npre\r\n')).toBe('STORED\r\n');
    expect(await c0.request('flush_all\r\n')).toBe('OK\r\n');
    expect(await c0.request('set post 0 0 4\r\npost\r\n')).toBe('STORED\r\n');
    const generation = generationOf('shop');

    const victim = pids[0] ?? 0;
    process.kill(victim, 'SIGKILL');
    await Promise.all(clients.filter((_, i) => pids[i] === victim).map((c) => c.waitClosed()));

    // new connections reach a new worker in the dead one's place.
    // NOTE: node:cluster may hand a connection accepted in the instant before the primary sees the
    // death to the dead worker; that connection is never answered. Probes give up on it.
    const deadline = Date.now() + 15_000;
    let seen = new Set<number>();
    while (Date.now() < deadline) {
      const probed = await Promise.all([1, 2, 3, 4].map(() => probePid(shopPort)));
      seen = new Set(probed.filter((p): p is number => p !== null));
      if (seen.size === 2 && !seen.has(victim)) break;
      await sleep(100);
    }
    expect(seen.size).toBe(2);
    expect(seen.has(victim)).toBe(false);

    const after = await connections(shopPort, 6);
    expect(await everyone(after.clients, 'get pre\r\n')).toEqual(after.clients.map(() => 'END\r\n'));
    expect(await everyone(after.clients, 'get post\r\n')).toEqual(after.clients.map(() => hit('post', 'post')));
    expect(generationOf('shop')).toBe(generation);
    // the survivors kept serving all along
    for (const [i, c] of clients.entries()) {
      if (pids[i] !== victim) expect(await c.request('get post\r\n')).toBe(hit('post', 'post'));
    }
    const now = await metrics();
    expect(series(now, 'memgate_worker_restarts_total')).toBe(series(before, 'memgate_worker_restarts_total') + 1);
  });

  it('the admin API on the primary rotates a tenant for every worker', async () => {
    const { clients, pids } = await connections(shopPort);
    expect(new Set(pids).size).toBe(2);
    expect(await clients[0]?.request('set adm 0 0 1\r\na\r\n')).toBe('STORED\r\n');
    expect(await everyone(clients, 'get adm\r\n')).toEqual(clients.map(() => hit('adm', 'a')));
    const before = generationOf('shop');
    const r = await adminPost('/tenants/shop/rotate');
    expect(r.status).toBe(200);
    expect(r.body.rotated).toBe(true);
    expect(generationOf('shop')).not.toBe(before);
    expect(await everyone(clients, 'get adm\r\n')).toEqual(clients.map(() => 'END\r\n'));

    const tenants = await fetch(`http://127.0.0.1:${adminPort}/tenants`);
    const body = (await tenants.json()) as { tenants: { name: string; connections: number }[] };
    const shop = body.tenants.find((t) => t.name === 'shop');
    // the connections this file opened and still holds, over both workers
    expect(shop?.connections).toBeGreaterThanOrEqual(CONNECTIONS);
    expect((await fetch(`http://127.0.0.1:${adminPort}/readyz`)).status).toBe(200);
  });

  it('/metrics sums the tenant counters of both workers', async () => {
    const before = await metrics();
    const sets = 'memgate_requests_total{tenant="blog",command="set",outcome="ok"}';
    const gets = 'memgate_requests_total{tenant="blog",command="get",outcome="ok"}';
    const opened = 'memgate_client_connections_opened_total{tenant="blog"}';
    const { clients, pids } = await connections(blogPort, 10);
    expect(new Set(pids).size).toBe(2); // each worker counted some of them
    await Promise.all(
      clients.map(async (c, i) => {
        expect(await c.request(`set m${i} 0 0 1\r\nm\r\nget m${i}\r\n`)).toBe(`STORED\r\n${hit(`m${i}`, 'm')}`);
      }),
    );
    // a flush_all on each worker and one rotation by the admin API (counted by the primary)
    for (const pid of new Set(pids)) expect(await clients[pids.indexOf(pid)]?.request('flush_all\r\n')).toBe('OK\r\n');
    expect((await adminPost('/tenants/blog/rotate')).status).toBe(200);
    const after = await metrics();
    expect(series(after, sets) - series(before, sets)).toBe(10);
    expect(series(after, gets) - series(before, gets)).toBe(10);
    expect(series(after, opened) - series(before, opened)).toBe(10);
    expect(series(after, 'memgate_upstream_up{server="' + mc.address + '"}')).toBe(1);
    expect(series(after, 'memgate_rotations_total') - series(before, 'memgate_rotations_total')).toBe(3);
  });

  it('the primary holds the state file lock: a second memgate on the same state file is refused', async () => {
    const statePath = path.join(dir, 'state.json');
    expect(fs.readFileSync(`${statePath}.lock-owner`, 'utf8')).toMatch(new RegExp(`^pid ${gate.child.pid} on host `));
    const second = path.join(dir, 'second.yaml');
    fs.writeFileSync(
      second,
      `listen:
  - { host: 127.0.0.1, port: ${await freePort()}, tenant: shop }
upstream:
  servers: [ "${mc.address}" ]
state: { url: "file:${statePath}" }
log: { level: fatal }
tenants:
  shop: { prefix: "wk-shop${shopPort}:" }
`,
    );
    const r = await runCli(['serve', '--config', second, '--workers', '2']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(
        `^memgate: state file ${statePath} is in use by another memgate \\(pid ${gate.child.pid} on host [^\\n]*\\n$`,
      ),
    );
  });

  it('SIGHUP to the primary reloads every worker with the new config', async () => {
    const newsPort = await freePort();
    fs.writeFileSync(
      configFile,
      configText
        .replace('upstream:', `  - { host: 127.0.0.1, port: ${newsPort}, tenant: news }\nupstream:`)
        .concat(`  news: { prefix: "wk-news${shopPort}:" }\n`),
    );
    gate.child.kill('SIGHUP');
    const deadline = Date.now() + 10_000;
    let pids: number[] = [];
    while (Date.now() < deadline) {
      const probed = await Promise.all([1, 2, 3, 4, 5, 6].map(() => probePid(newsPort).catch(() => null)));
      pids = probed.filter((p): p is number => p !== null);
      if (new Set(pids).size === 2) break;
      await sleep(100);
    }
    expect(new Set(pids).size).toBe(2);
    const news = await connect(newsPort);
    expect(await news.request('set n 0 0 1\r\nn\r\nget n\r\n')).toBe(`STORED\r\n${hit('n', 'n')}`);
    expect(generationOf('news')).toMatch(/^[0-9A-Za-z]{8}$/);
    const r = await adminPost('/reload');
    expect(r.status).toBe(200);
    expect(r.body.reloaded).toBe(true);
  });

  it('exits 0 on SIGTERM, after every worker has stopped', async () => {
    const { pids } = await connections(shopPort, 4);
    await gate.stop();
    expect(gate.child.exitCode).toBe(0);
    for (const pid of new Set(pids)) expect(() => process.kill(pid, 0)).toThrow();
  });
});

describe('memgate serve --workers 2 that cannot start', () => {
  it('exits 1 when the workers cannot listen', async () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'memgate-workers-fail-'));
    const file = path.join(d, 'memgate.yaml');
    fs.writeFileSync(
      file,
      `listen:
  - { host: 127.0.0.1, port: ${mc.port}, tenant: shop }
upstream:
  servers: [ "${mc.address}" ]
state: { url: "file:${path.join(d, 'state.json')}" }
log: { level: fatal }
tenants:
  shop: { prefix: "fail:" }
`,
    );
    const r = await runCli(['serve', '--config', file, '--workers', '2']);
    expect(r.code).toBe(1);
    // the primary released the state file's lock on the way out
    expect(fs.existsSync(path.join(d, 'state.json.lock'))).toBe(false);
  });
});

describe("a worker's share of per-tenant limits (ProxyOptions.shareOf)", () => {
  let proxy: Proxy;
  beforeAll(async () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'memgate-share-'));
    const config = parseConfigText(
      `listen:
  - { host: 127.0.0.1, port: 0, tenant: shop }
upstream:
  servers: [ "${mc.address}" ]
state: { url: "file:${path.join(d, 'state.json')}" }
tenants:
  shop: { prefix: "share:", limits: { opsPerSecond: 1, burst: 8, connections: 3, maxKeysPerGet: 2 } }
`,
      'share.yaml',
      {},
    );
    proxy = createProxy(config, { logger: pino({ level: 'silent' }), shareOf: 2 });
    await proxy.start();
  });
  afterAll(async () => {
    await proxy?.stop();
  });

  it('admits ⌈burst / 2⌉ requests and ⌈connections / 2⌉ connections', async () => {
    const port = proxy.addresses()[0]?.port ?? 0;
    const a = await connect(port);
    const b = await connect(port);
    // burst 8 → 4 here (the refill of 1/s → 1 is too slow to matter within this test)
    // (no trailing `version`: it would be over the limit too)
    a.send('get x\r\n'.repeat(6));
    const want = 'END\r\n'.repeat(4) + 'SERVER_ERROR rate limited\r\n'.repeat(2);
    let replies = '';
    while (replies.length < want.length) replies += await a.readUntil('\r\n');
    expect(replies).toBe(want);
    // connections 3 → 2 here (a and b): a third is refused
    const c = await connect(port);
    await c.waitClosed();
    expect(c.take().toString('latin1')).toBe('ERROR Too many open connections\r\n');
    expect(b.closed).toBe(false);
  });
});

describe('memgate serve --workers 2: one budget for the tenant, leased by the workers from the primary', () => {
  const RATE = 400;
  const BURST = 100;
  let limited: MemgateProcess;
  let port: number;

  beforeAll(async () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'memgate-leases-'));
    port = await freePort();
    const file = path.join(d, 'memgate.yaml');
    fs.writeFileSync(
      file,
      `listen:
  - { host: 127.0.0.1, port: ${port}, tenant: shop }
upstream:
  servers: [ "${mc.address}" ]
state: { url: "file:${path.join(d, 'state.json')}" }
log: { level: warn }
tenants:
  shop: { prefix: "lease${port}:", limits: { opsPerSecond: ${RATE}, burst: ${BURST} } }
`,
    );
    limited = await spawnMemgate(file, port, ['--workers', '2']);
  });

  afterAll(async () => {
    await limited?.stop();
  });

  it('a tenant with all its traffic on one connection (one worker) still gets its whole limit, not ⌈limit / 2⌉', async () => {
    const r = await pipelinedGets([port], 3000);
    const whole = (RATE * r.elapsedMs) / 1000 + BURST;
    console.log(
      `--workers 2, one connection: admitted ${r.admitted} in ${r.elapsedMs.toFixed(0)} ms (whole limit ${whole.toFixed(0)}, ` +
        `ratio ${(r.admitted / whole).toFixed(3)})`,
    );
    expect(r.other).toBe(0);
    expect(r.refused).toBeGreaterThan(0);
    expect(r.admitted).toBeGreaterThanOrEqual(whole * 0.9);
    expect(r.admitted).toBeLessThanOrEqual(whole * 1.1);
  }, 20_000);

  it('two connections (both workers) share the one limit: together still rate × T + burst', async () => {
    // several connections, so that the round-robin accept puts some on each worker
    const r = await pipelinedGets([port, port, port, port], 3000);
    const whole = (RATE * r.elapsedMs) / 1000 + BURST;
    expect(r.other).toBe(0);
    expect(r.admitted).toBeGreaterThanOrEqual(whole * 0.9);
    expect(r.admitted).toBeLessThanOrEqual(whole * 1.1);
  }, 20_000);
});
