/**
 * A tenant's flush_all rotates its generation instead of flushing memcached,
 * and the generation is durable: flushed data never comes back.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, spawnMemcached, type MemcachedProcess } from '../helpers/spawn-memcached.js';
import { startProxy, TWO_TENANTS_YAML, type RunningProxy } from '../helpers/proxy.js';
import { TextClient } from '../helpers/text-client.js';
import { runCli, spawnMemgate } from '../helpers/memgate-process.js';

let mc: MemcachedProcess;

beforeAll(async () => {
  mc = await spawnMemcached();
});

afterAll(async () => {
  await mc?.stop();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('flush_all in process', () => {
  let gate: RunningProxy;
  beforeAll(async () => {
    gate = await startProxy(TWO_TENANTS_YAML, mc.address);
  });
  afterAll(async () => {
    await gate?.stop();
  });

  it("makes tenant A's keys vanish, keeps B's, and sends no real flush upstream", async () => {
    const a = await TextClient.connect(gate.port(0));
    const b = await TextClient.connect(gate.port(1));
    expect(await a.request('set fa 0 0 3\r\nold\r\n')).toBe('STORED\r\n');
    expect(await b.request('set fb 0 0 3\r\nbbb\r\n')).toBe('STORED\r\n');
    const oldKey = `a7Zk2:${gate.proxy.store.generation('alpha')}fa`;
    expect(await a.request('flush_all\r\nget fa\r\n')).toBe('OK\r\nEND\r\n');
    expect(await b.request('get fb\r\n')).toBe('VALUE fb 0 3\r\nbbb\r\nEND\r\n');
    const d = await TextClient.connect(mc.port);
    expect(await d.request(`get ${oldKey}\r\n`)).toBe(`VALUE ${oldKey} 0 3\r\nold\r\nEND\r\n`);
    d.close();
    expect(await a.request('set fa 0 0 3\r\nnew\r\nget fa\r\n')).toBe('STORED\r\nVALUE fa 0 3\r\nnew\r\nEND\r\n');
    expect(await a.request('flush_all noreply\r\nget fa\r\n')).toBe('END\r\n');
    a.close();
    b.close();
  });

  it('acts at the delay and not before, and a later flush_all replaces a pending one', async () => {
    const a = await TextClient.connect(gate.port(0));
    expect(await a.request('set delayed 0 0 1\r\n1\r\n')).toBe('STORED\r\n');
    expect(await a.request('flush_all 2\r\n')).toBe('OK\r\n');
    await sleep(900);
    expect(await a.request('get delayed\r\n')).toBe('VALUE delayed 0 1\r\n1\r\nEND\r\n');
    const deadline = Date.now() + 5000;
    let reply = '';
    while (Date.now() < deadline) {
      reply = await a.request('get delayed\r\n');
      if (reply === 'END\r\n') break;
      await sleep(100);
    }
    expect(reply).toBe('END\r\n');

    expect(await a.request('set later 0 0 1\r\n1\r\nflush_all 1\r\nflush_all 60\r\n')).toBe('STORED\r\nOK\r\nOK\r\n');
    await sleep(1600);
    expect(await a.request('get later\r\n')).toBe('VALUE later 0 1\r\n1\r\nEND\r\n');
    expect(await a.request('flush_all\r\nget later\r\n')).toBe('OK\r\nEND\r\n');
    a.close();
  });

  it('counts in memgate_rotations_total a delayed flush_all when it fires, and a replaced one never', async () => {
    const rotationsTotal = async (): Promise<number> =>
      Number(/^memgate_rotations_total (\d+)$/m.exec(await gate.proxy.metrics.render())?.[1]);
    const a = await TextClient.connect(gate.port(0));
    const start = await rotationsTotal();
    expect(await a.request('flush_all 1\r\n')).toBe('OK\r\n');
    expect(await rotationsTotal()).toBe(start); // asked for, not made yet
    const before = gate.proxy.store.generation('alpha');
    for (let i = 0; i < 100 && gate.proxy.store.generation('alpha') === before; i++) await sleep(50);
    expect(gate.proxy.store.generation('alpha')).not.toBe(before);
    expect(await rotationsTotal()).toBe(start + 1); // fired

    expect(await a.request('flush_all 60\r\nflush_all\r\n')).toBe('OK\r\nOK\r\n'); // the second replaces the first
    expect(await rotationsTotal()).toBe(start + 2);
    a.close();
  });

  it('never brings back an earlier item over 12 consecutive rotations', async () => {
    const a = await TextClient.connect(gate.port(0));
    const generations = new Set<string>();
    for (let i = 0; i < 12; i++) {
      expect(await a.request(`set r${i} 0 0 2\r\nv${i % 10}\r\nset same 0 0 2\r\nv${i % 10}\r\n`)).toBe(
        'STORED\r\nSTORED\r\n',
      );
      generations.add(gate.proxy.store.generation('alpha'));
      expect(await a.request('flush_all\r\n')).toBe('OK\r\n');
      const keys = Array.from({ length: i + 1 }, (_, j) => `r${j}`).join(' ');
      expect(await a.request(`get ${keys} same\r\n`)).toBe('END\r\n');
    }
    generations.add(gate.proxy.store.generation('alpha'));
    expect(generations.size).toBe(13);
    a.close();
  });
});

describe('durable state across restarts', () => {
  async function setup(): Promise<{ dir: string; configFile: string; port: number; statePath: string }> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgate-rot-'));
    const port = await freePort();
    const statePath = path.join(dir, 'state.json');
    const configFile = path.join(dir, 'memgate.yaml');
    fs.writeFileSync(
      configFile,
      `listen:
  - { host: 127.0.0.1, port: ${port}, tenant: shop }
upstream:
  servers: [ "${mc.address}" ]
state: { url: "file:${statePath}" }
log: { level: warn }
tenants:
  shop: { prefix: "s${port}:" }
`,
    );
    return { dir, configFile, port, statePath };
  }

  // each start after kill -9 waits (up to 10 s) for the killed memgate's state lock to turn stale
  const afterKill = { timeoutMs: 30_000 };

  it(
    'keeps flushed data gone after kill -9 right after OK, and keeps post-flush data',
    { timeout: 90_000 },
    async () => {
      const { configFile, port } = await setup();
      let gate = await spawnMemgate(configFile, port);
      try {
        const c = await TextClient.connect(port);
        expect(await c.request('set before 0 0 3\r\nold\r\n')).toBe('STORED\r\n');
        c.send('flush_all\r\n');
        expect(await c.readUntil('\r\n')).toBe('OK\r\n');
        await gate.kill9();
        c.close();
        gate = await spawnMemgate(configFile, port, [], afterKill);
        const c2 = await TextClient.connect(port);
        expect(await c2.request('get before\r\n')).toBe('END\r\n');
        expect(await c2.request('set after 0 0 3\r\nnew\r\n')).toBe('STORED\r\n');
        await gate.kill9();
        c2.close();
        gate = await spawnMemgate(configFile, port, [], afterKill);
        const c3 = await TextClient.connect(port);
        expect(await c3.request('get before after\r\n')).toBe('VALUE after 0 3\r\nnew\r\nEND\r\n');
        c3.close();
      } finally {
        await gate.stop();
      }
    },
  );

  it('refuses to start on a corrupt state file, naming it, unless told to rotate everything', async () => {
    const { configFile, port, statePath } = await setup();
    let gate = await spawnMemgate(configFile, port);
    const c = await TextClient.connect(port);
    expect(await c.request('set precious 0 0 1\r\n1\r\n')).toBe('STORED\r\n');
    c.close();
    await gate.stop();
    fs.writeFileSync(statePath, '{ "version": 1, "tenants": { "shop": { "generation": ');
    const refused = await runCli(['serve', '--config', configFile]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr + refused.stdout).toContain(statePath);
    gate = await spawnMemgate(configFile, port, ['--rotate-all-on-corrupt-state']);
    try {
      const c2 = await TextClient.connect(port);
      expect(await c2.request('get precious\r\n')).toBe('END\r\n');
      c2.close();
    } finally {
      await gate.stop();
    }
  });

  it('gives fresh generations when the state file is deleted: old items never reappear', async () => {
    const { configFile, port, statePath } = await setup();
    let gate = await spawnMemgate(configFile, port);
    const c = await TextClient.connect(port);
    expect(await c.request('set lost 0 0 1\r\n1\r\n')).toBe('STORED\r\n');
    c.close();
    await gate.stop();
    fs.rmSync(statePath);
    gate = await spawnMemgate(configFile, port);
    try {
      const c2 = await TextClient.connect(port);
      expect(await c2.request('get lost\r\n')).toBe('END\r\n');
      c2.close();
    } finally {
      await gate.stop();
    }
  });
});

describe('memgate rotate and memgate state show', () => {
  it('rotates through the running memgate’s admin API, and offline through the state file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgate-cli-'));
    const port = await freePort();
    const adminPort = await freePort();
    const statePath = path.join(dir, 'state.json');
    const configFile = path.join(dir, 'memgate.yaml');
    fs.writeFileSync(
      configFile,
      `listen:
  - { host: 127.0.0.1, port: ${port}, tenant: shop }
upstream:
  servers: [ "${mc.address}" ]
admin: { host: 127.0.0.1, port: ${adminPort} }
state: { url: "file:${statePath}" }
log: { level: warn }
tenants:
  shop: { prefix: "cli${port}:" }
`,
    );
    const env = { MEMGATE_ADMIN_TOKEN: 'test-token-0123456789' };
    const child = await spawnMemgateWithEnv(configFile, port, env);
    try {
      const c = await TextClient.connect(port);
      expect(await c.request('set rk 0 0 1\r\n1\r\n')).toBe('STORED\r\n');
      const r = await runCli(['rotate', 'shop', '--config', configFile], env);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/rotated shop/);
      expect(await c.request('get rk\r\n')).toBe('END\r\n');
      const wrong = await runCli(['rotate', 'shop', '--config', configFile], {
        MEMGATE_ADMIN_TOKEN: 'wrong-token-0123456789',
      });
      expect(wrong.code).not.toBe(0);
      const unknown = await runCli(['rotate', 'nobody', '--config', configFile], env);
      expect(unknown.code).not.toBe(0);
      expect(unknown.stderr).toMatch(/nobody/);
      expect(await c.request('set rk2 0 0 1\r\n2\r\n')).toBe('STORED\r\n');
      c.close();
    } finally {
      await child.stop();
    }
    const before = JSON.parse(fs.readFileSync(statePath, 'utf8')) as { tenants: { shop: { generation: string } } };
    const offline = await runCli(['rotate', 'shop', '--config', configFile], env);
    expect(offline.code).toBe(0);
    expect(offline.stdout).toMatch(/rotated shop/);
    const after = JSON.parse(fs.readFileSync(statePath, 'utf8')) as { tenants: { shop: { generation: string } } };
    expect(after.tenants.shop.generation).not.toBe(before.tenants.shop.generation);
    const show = await runCli(['state', 'show', '--config', configFile], env);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/shop/);
    expect(show.stdout).not.toContain(after.tenants.shop.generation);
    expect(show.stdout).not.toContain(`cli${port}:`);
    const restarted = await spawnMemgateWithEnv(configFile, port, env);
    try {
      const c = await TextClient.connect(port);
      expect(await c.request('get rk rk2\r\n')).toBe('END\r\n');
      c.close();
    } finally {
      await restarted.stop();
    }
  });
});

async function spawnMemgateWithEnv(configFile: string, port: number, env: Record<string, string>) {
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(env)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  try {
    return await spawnMemgate(configFile, port);
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}
