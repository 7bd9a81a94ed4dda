/**
 * Operating memgate as a process: the admin API, reload (SIGHUP and POST
 * /reload) and graceful shutdown on SIGTERM.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, spawnMemcached, type MemcachedProcess } from '../helpers/spawn-memcached.js';
import { spawnMemgate } from '../helpers/memgate-process.js';
import { TextClient } from '../helpers/text-client.js';

const TOKEN = 'lifecycle-token-0123456789';
let mc: MemcachedProcess;

beforeAll(async () => {
  mc = await spawnMemcached();
});

afterAll(async () => {
  await mc?.stop();
});

interface Setup {
  dir: string;
  configFile: string;
  shopPort: number;
  blogPort: number;
  adminPort: number;
  write(withBlog: boolean, extra?: string): void;
}

async function setup(): Promise<Setup> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgate-life-'));
  const [shopPort, blogPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  const configFile = path.join(dir, 'memgate.yaml');
  const write = (withBlog: boolean, extra = ''): void => {
    fs.writeFileSync(
      configFile,
      `listen:
  - { host: 127.0.0.1, port: ${shopPort}, tenant: shop }
${withBlog ? `  - { host: 127.0.0.1, port: ${blogPort}, tenant: blog }\n` : ''}upstream:
  servers: [ "${mc.address}" ]
admin: { host: 127.0.0.1, port: ${adminPort}, token: "${TOKEN}" }
state: { url: "file:${path.join(dir, 'state.json')}" }
log: { level: warn }
tenants:
  shop: { prefix: "life-shop${shopPort}:" }
${withBlog ? `  blog: { prefix: "life-blog${shopPort}:" }\n` : ''}${extra}`,
    );
  };
  write(true);
  return { dir, configFile, shopPort, blogPort, adminPort, write };
}

async function http(
  port: number,
  method: string,
  urlPath: string,
  token?: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`http://127.0.0.1:${port}${urlPath}`, { method, headers });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function waitFor(check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('admin API', () => {
  it('answers health and tenants, and refuses state changes without the token', async () => {
    const s = await setup();
    const gate = await spawnMemgate(s.configFile, s.shopPort);
    try {
      await waitFor(
        async () => (await http(s.adminPort, 'GET', '/readyz').catch(() => ({ status: 0 }))).status === 200,
      );
      expect((await http(s.adminPort, 'GET', '/healthz')).status).toBe(200);
      const tenants = await http(s.adminPort, 'GET', '/tenants');
      const names = (tenants.body.tenants as { name: string }[]).map((t) => t.name).sort();
      expect(names).toEqual(['blog', 'shop']);
      expect(JSON.stringify(tenants.body)).not.toContain('life-shop');
      expect((await http(s.adminPort, 'POST', '/tenants/shop/rotate')).status).toBe(401);
      expect((await http(s.adminPort, 'POST', '/tenants/shop/rotate', 'wrong-token-0123456789')).status).toBe(401);
      expect((await http(s.adminPort, 'POST', '/reload')).status).toBe(401);
      expect((await http(s.adminPort, 'POST', '/tenants/nobody/rotate', TOKEN)).status).toBe(404);
      expect((await http(s.adminPort, 'POST', '/tenants/shop/rotate', TOKEN)).status).toBe(200);
    } finally {
      await gate.stop();
    }
  });
});

describe('reload', () => {
  it('keeps serving with the old config when the new one is invalid', async () => {
    const s = await setup();
    const gate = await spawnMemgate(s.configFile, s.shopPort);
    try {
      const c = await TextClient.connect(s.shopPort);
      expect(await c.request('set r 0 0 1\r\n1\r\n')).toBe('STORED\r\n');
      fs.writeFileSync(s.configFile, fs.readFileSync(s.configFile, 'utf8') + 'bogus: 1\n');
      const r = await http(s.adminPort, 'POST', '/reload', TOKEN);
      expect(r.status).toBe(400);
      expect(String(r.body.error)).toMatch(/bogus/);
      gate.child.kill('SIGHUP');
      await new Promise((res) => setTimeout(res, 300));
      expect(await c.request('get r\r\n')).toBe('VALUE r 0 1\r\n1\r\nEND\r\n');
      const c2 = await TextClient.connect(s.blogPort);
      expect(await c2.request('get r\r\n')).toBe('END\r\n');
      c.close();
      c2.close();
    } finally {
      await gate.stop();
    }
  });

  it('closes a removed tenant’s connections and keeps the others, without restarting', async () => {
    const s = await setup();
    const gate = await spawnMemgate(s.configFile, s.shopPort);
    try {
      const shop = await TextClient.connect(s.shopPort);
      const blog = await TextClient.connect(s.blogPort);
      expect(await shop.request('set k 0 0 1\r\n1\r\n')).toBe('STORED\r\n');
      expect(await blog.request('set k 0 0 1\r\n2\r\n')).toBe('STORED\r\n');
      s.write(false);
      gate.child.kill('SIGHUP');
      await blog.waitClosed(5000);
      expect(await shop.request('get k\r\n')).toBe('VALUE k 0 1\r\n1\r\nEND\r\n');
      await waitFor(async () => {
        const c = await TextClient.connect(s.blogPort).catch(() => null);
        c?.close();
        return c === null;
      });
      // and back: a reload through the API adds the tenant and its listener again
      s.write(true);
      const r = await http(s.adminPort, 'POST', '/reload', TOKEN);
      expect(r.status).toBe(200);
      const again = await TextClient.connect(s.blogPort);
      expect(await again.request('get k\r\n')).toBe('VALUE k 0 1\r\n2\r\nEND\r\n');
      again.close();
      shop.close();
    } finally {
      await gate.stop();
    }
  });
});

describe('graceful shutdown', () => {
  it('answers every request received before SIGTERM, then exits 0', async () => {
    const s = await setup();
    const gate = await spawnMemgate(s.configFile, s.shopPort);
    const c = await TextClient.connect(s.shopPort);
    const value = 'v'.repeat(1000);
    expect(await c.request(`set big 0 0 ${value.length}\r\n${value}\r\n`)).toBe('STORED\r\n');
    const n = 2000;
    c.send(`get big\r\n`.repeat(n));
    await new Promise((r) => setTimeout(r, 20));
    gate.child.kill('SIGTERM');
    await c.waitClosed(15_000);
    const got = c.take().toString('latin1');
    const replies = got.split(`VALUE big 0 ${value.length}\r\n${value}\r\nEND\r\n`);
    expect(replies.length - 1).toBe(n);
    expect(replies.join('')).toBe('');
    await gate.exited();
    expect(gate.child.exitCode).toBe(0);
  });
});
