/**
 * `state.url: redis://…` from the CLI against a real redis-server: `state
 * show` and `rotate` work on Redis (and `rotate` reaches a running instance by
 * pub/sub); with nothing listening at the URL, serve, state show and rotate
 * print one line naming the URL (password as ***) and exit 1, never a stack
 * trace, never the password.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { createProxy } from '../../src/index.js';
import { freePort } from '../helpers/spawn-memcached.js';
import { runCli } from '../helpers/memgate-process.js';
import { spawnRedis, type RedisProcess } from '../helpers/spawn-redis.js';

let dir: string;
let redis: RedisProcess;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgate-state-url-'));
  redis = await spawnRedis();
});

afterAll(async () => {
  await redis?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function configText(url: string): Promise<string> {
  return `listen:
  - { host: 127.0.0.1, port: ${await freePort()}, tenant: shop }
upstream:
  servers: [ "127.0.0.1:1" ]
state: { url: "${url}", keyPrefix: "su${process.pid}:" }
log: { level: warn }
tenants:
  shop: { prefix: "s:" }
  blog: { prefix: "b:" }
`;
}

async function configWith(url: string): Promise<string> {
  const file = path.join(dir, `memgate-${Math.random().toString(36).slice(2)}.yaml`);
  fs.writeFileSync(file, await configText(url));
  return file;
}

describe('state.url redis:// with nothing listening', () => {
  it.each([
    ['redis://127.0.0.1:1/0', 'redis://127.0.0.1:1/0'],
    ['rediss://memgate:s3cret@127.0.0.1:1/2', 'rediss://memgate:***@127.0.0.1:1/2'],
  ])(
    '%s: serve, state show and rotate print one line and exit 1',
    async (url, shown) => {
      const file = await configWith(url);
      const cfg = await runCli(['check-config', '--config', file]);
      expect(cfg.code).toBe(0);
      for (const cmd of [['serve'], ['serve', '--workers', '2'], ['state', 'show'], ['rotate', 'shop']]) {
        const r = await runCli([...cmd, '--config', file]);
        expect({ cmd, code: r.code }).toEqual({ cmd, code: 1 });
        const lines = r.stderr.split('\n').filter((l) => l.startsWith('memgate'));
        expect(lines, r.stderr).toHaveLength(1);
        expect(lines[0]).toContain(`cannot reach Redis at ${shown}`);
        expect(r.stderr + r.stdout).not.toContain('s3cret');
        expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
      }
    },
    60_000,
  );
});

describe('memgate state show / rotate on Redis', () => {
  it('state show lists tenants from Redis (never generations); rotate changes the generation a running instance serves', async () => {
    const file = await configWith(redis.url);
    const before = await runCli(['state', 'show', '--config', file]);
    expect(before.code).toBe(0);
    expect(before.stdout).toMatch(/^shop\s+none yet \(fresh at start\)/m);
    const config = parseConfigText(await configText(redis.url), 'x.yaml', {});
    const proxy = createProxy(config, { logger: pino({ level: 'silent' }) });
    await proxy.start();
    try {
      const g = proxy.store.generation('shop');
      const shown = await runCli(['state', 'show', '--config', file]);
      expect(shown.code).toBe(0);
      expect(shown.stdout).toMatch(/^shop\s+\d+s\s+-$/m);
      expect(shown.stdout).not.toContain(g);
      const r = await runCli(['rotate', 'shop', '--config', file]);
      expect(r).toMatchObject({ code: 0, stderr: '' });
      expect(r.stdout).toMatch(/^rotated shop: new generation is 0s old \(in Redis at redis:\/\/127\.0\.0\.1:\d+\/0/);
      // the running instance follows by pub/sub
      const until = Date.now() + 5000;
      while (proxy.store.generation('shop') === g && Date.now() < until)
        await new Promise((res) => setTimeout(res, 10));
      expect(proxy.store.generation('shop')).not.toBe(g);
    } finally {
      await proxy.stop();
    }
  }, 60_000);
});
