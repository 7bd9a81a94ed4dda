/**
 * The binary protocol in front of a real memcached: memjs (binary + SASL PLAIN)
 * with a tenant's credentials, and libmemcached's memcapable binary suite.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';
import memjs from 'memjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../src/policy/password.js';
import { spawnMemcached, type MemcachedProcess } from '../helpers/spawn-memcached.js';
import { startProxy, type RunningProxy } from '../helpers/proxy.js';
import { TextClient } from '../helpers/text-client.js';

const run = promisify(execFile);
const MEMCAPABLE = ['/usr/bin/memccapable', '/usr/bin/memcapable'].find((p) => fs.existsSync(p));

let mc: MemcachedProcess;
let gate: RunningProxy;
const SHARED = 0;
const BOUND = 1;

beforeAll(async () => {
  mc = await spawnMemcached();
  const hash = await hashPassword('shop-secret');
  gate = await startProxy(
    `
listen:
  - { host: 127.0.0.1, port: 0 }
  - { host: 127.0.0.1, port: 0, tenant: bound }
upstream:
  servers: [ "\${UPSTREAM}" ]
state: { url: "\${STATE}" }
tenants:
  shop: { prefix: "shop:", password: "${hash}" }
  bound: { prefix: "bound:" }
`,
    mc.address,
  );
});

afterAll(async () => {
  await gate?.stop();
  await mc?.stop();
});

function client(port: number, username?: string, password?: string): memjs.Client {
  return memjs.Client.create(`127.0.0.1:${port}`, {
    username,
    password,
    retries: 0,
    timeout: 2,
    conntimeout: 2,
    logger: { log: () => undefined },
  });
}

describe('memjs (binary protocol, SASL PLAIN)', () => {
  it("stores and reads through memgate with a tenant's user name and password", async () => {
    const c = client(gate.port(SHARED), 'shop', 'shop-secret');
    try {
      await c.set('memjs-key', 'memjs-value', { expires: 100 });
      const got = await c.get('memjs-key');
      expect(got.value?.toString()).toBe('memjs-value');
      expect(await c.add('memjs-key', 'x')).toBe(false);
      await c.set('counter', '41', {});
      const inc = await c.increment('counter', 1, {});
      expect(inc.value).toBe(42);
      expect(await c.delete('memjs-key')).toBe(true);
      expect((await c.get('memjs-key')).value).toBeNull();
      const stats = await new Promise<Record<string, string>>((resolve, reject) =>
        c.stats((err, _server, s) => (err ? reject(err) : resolve(s ?? {}))),
      );
      expect(stats.memgate_tenant).toBe('shop');
    } finally {
      c.close();
    }
    // the value lives in shop's namespace: a text client on the bound tenant cannot see it
    const t = await TextClient.connect(gate.port(BOUND));
    expect(await t.request('get counter\r\n')).toBe('END\r\n');
    t.close();
  });

  it('is refused with a wrong password', async () => {
    const c = client(gate.port(SHARED), 'shop', 'wrong');
    try {
      await expect(c.get('memjs-key')).rejects.toThrow();
    } finally {
      c.close();
    }
  });
});

describe('memcapable binary suite (libmemcached-tools)', () => {
  it('passes through a namespaced tenant listener every binary test it passes against memcached', async () => {
    if (MEMCAPABLE === undefined) throw new Error('memccapable is not installed: run scripts/setup.sh');
    const suite = async (port: number): Promise<{ code: number; out: string }> => {
      try {
        const r = await run(MEMCAPABLE, ['-h', '127.0.0.1', '-p', String(port), '-t', '5', '-b'], { timeout: 60_000 });
        return { code: 0, out: r.stdout + r.stderr };
      } catch (e) {
        const err = e as { code?: number; stdout?: string; stderr?: string };
        return { code: err.code ?? 1, out: (err.stdout ?? '') + (err.stderr ?? '') };
      }
    };
    const passed = (out: string): string[] =>
      out
        .split('\n')
        .filter((l) => l.includes('[pass]'))
        .map((l) => l.replace(/\s+\[pass\].*$/, '').trim());
    const direct = await suite(mc.port);
    const proxied = await suite(gate.port(BOUND));
    expect(passed(direct.out).length).toBeGreaterThan(20);
    expect(passed(proxied.out)).toEqual(passed(direct.out));
    expect(proxied.code).toBe(0);
  }, 120_000);
});
