/**
 * RedisStateStore on ioredis-mock (fast; the real redis-server is in
 * test/integration/redis-state.test.ts): scripts, pub/sub between two stores,
 * never a reset generation, a pending rotation fired exactly once.
 */
import RedisMock from 'ioredis-mock';
import type { Redis, RedisOptions } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { isGeneration } from '../../../src/state/generation.js';
import { RedisStateStore, reconnectDelayMs, redisClientOptions } from '../../../src/state/redis-store.js';

let port = 40000;
const stores: RedisStateStore[] = [];

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
});

/** Two stores over one mock Redis (ioredis-mock shares data by host:port). */
function mockFactory(p: number) {
  return (_url: string, options: RedisOptions): Redis =>
    new RedisMock({ ...options, host: '127.0.0.1', port: p }) as unknown as Redis;
}

function store(p: number, keyPrefix = 'memgate:'): RedisStateStore {
  const s = new RedisStateStore(`redis://127.0.0.1:${p}/0`, { keyPrefix, createClient: mockFactory(p) });
  stores.push(s);
  return s;
}

async function until(cond: () => boolean, ms = 1000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('RedisStateStore (ioredis-mock)', () => {
  it('gives a new tenant a fresh generation that a second instance opening later agrees on', async () => {
    const p = ++port;
    const a = store(p);
    await a.open(['shop', 'blog']);
    expect(isGeneration(a.generation('shop'))).toBe(true);
    expect(a.generation('shop')).not.toBe(a.generation('blog'));
    expect(a.up).toBe(true);
    const b = store(p);
    await b.open(['shop', 'blog']);
    expect(b.generation('shop')).toBe(a.generation('shop'));
    expect(b.generation('blog')).toBe(a.generation('blog'));
  });

  it('a rotation on one instance is in Redis before it resolves and reaches the other by pub/sub', async () => {
    const p = ++port;
    const a = store(p);
    const b = store(p);
    await a.open(['shop']);
    await b.open(['shop']);
    const seen: string[] = [];
    b.onChange((t, s) => seen.push(`${t}:${s.generation}`));
    const before = a.generation('shop');
    const after = await a.rotate('shop');
    expect(after.generation).not.toBe(before);
    expect(a.generation('shop')).toBe(after.generation);
    expect(a.rotationsApplied).toBe(1);
    await until(() => b.generation('shop') === after.generation);
    expect(seen).toEqual([`shop:${after.generation}`]);
    expect(b.rotationsApplied).toBe(0);
  });

  it('ignores news older than what it has (a late message never undoes a newer rotation)', async () => {
    const p = ++port;
    const a = store(p);
    await a.open(['shop']);
    const first = await a.rotate('shop');
    const second = await a.rotate('shop');
    expect(second.generation).not.toBe(first.generation);
    // replay the first rotation's message (version 2) after the second (version 3)
    const pub = new RedisMock({ host: '127.0.0.1', port: p });
    await pub.publish('memgate:rotations', `2|shop|${first.generation}|${first.rotatedAtMs}|`);
    await new Promise((r) => setTimeout(r, 30));
    expect(a.generation('shop')).toBe(second.generation);
    pub.disconnect();
  });

  it('a pending rotation fires exactly once across instances, at its time', async () => {
    const p = ++port;
    const a = store(p);
    const b = store(p);
    await a.open(['shop']);
    await b.open(['shop']);
    const g0 = a.generation('shop');
    const s = await a.schedule('shop', Date.now() + 60);
    expect(s.pendingAtMs).not.toBeNull();
    await until(() => a.generation('shop') !== g0 && b.generation('shop') !== g0, 2000);
    expect(a.generation('shop')).toBe(b.generation('shop'));
    await new Promise((r) => setTimeout(r, 50));
    expect(a.rotationsApplied + b.rotationsApplied).toBe(1);
    expect(a.get('shop')?.pendingAtMs).toBeNull();
  });

  it('keeps deployments with different key prefixes apart', async () => {
    const p = ++port;
    const a = store(p, 'one:');
    const b = store(p, 'two:');
    await a.open(['shop']);
    await b.open(['shop']);
    expect(a.generation('shop')).not.toBe(b.generation('shop'));
    const g = b.generation('shop');
    await a.rotate('shop');
    await new Promise((r) => setTimeout(r, 30));
    expect(b.generation('shop')).toBe(g);
  });

  it('adds tenants on reload with fresh generations', async () => {
    const p = ++port;
    const a = store(p);
    await a.open(['shop']);
    await a.addTenants(['shop', 'news']);
    expect(isGeneration(a.generation('news'))).toBe(true);
  });

  it('refuses to open over a corrupt tenant hash, naming the key (never serves a made-up generation)', async () => {
    const p = ++port;
    const raw = new RedisMock({ host: '127.0.0.1', port: p });
    await raw.hset('memgate:tenant:shop', 'generation', 'short', 'rotatedAtMs', '1', 'pendingAtMs', '', 'version', '1');
    const a = store(p);
    await expect(a.open(['shop'])).rejects.toMatchObject({
      code: 'ERR_STATE_CORRUPT',
      message: expect.stringContaining('memgate:tenant:shop'),
    });
    raw.disconnect();
  });

  it('counts live instances by heartbeat', async () => {
    const p = ++port;
    const a = store(p);
    const b = store(p);
    await a.open(['shop']);
    await b.open(['shop']);
    expect(b.instances).toBe(2);
  });
});

describe('redisClientOptions', () => {
  it('fails fast while disconnected (no offline queue, no resend) and reconnects with a capped backoff', () => {
    const o = redisClientOptions('redis://h:1/0', undefined, 'mymaster');
    expect(o).toMatchObject({ enableOfflineQueue: false, autoResendUnfulfilledCommands: false, lazyConnect: true });
    expect([1, 2, 3, 10, 100].map(reconnectDelayMs)).toEqual([50, 100, 200, 2000, 2000]);
  });

  it('maps sentinels, the master name, credentials and db', () => {
    const o = redisClientOptions('rediss://u:p%40ss@ignored:1/3', ['s1:26379', 's2:26380'], 'cache');
    expect(o).toMatchObject({
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26380 },
      ],
      name: 'cache',
      username: 'u',
      password: 'p@ss',
      db: 3,
      tls: {},
    });
  });
});
