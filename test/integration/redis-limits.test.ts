/**
 * A tenant's rate limit across two memgate instances sharing one Redis:
 * pipelined load spread over both admits rate × T + burst (±10 %), not twice
 * that; with Redis down each instance falls back to its share (rate ÷ 2).
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { createProxy, type Proxy } from '../../src/index.js';
import { pipelinedGets } from '../helpers/rate-load.js';
import { spawnMemcached, type MemcachedProcess } from '../helpers/spawn-memcached.js';
import { spawnRedis, type RedisProcess } from '../helpers/spawn-redis.js';

const RATE = 1000;
const BURST = 200;

let mc: MemcachedProcess;
let redis: RedisProcess;
let a: Proxy;
let b: Proxy;

async function startInstance(): Promise<Proxy> {
  const config = parseConfigText(
    `listen:
  - { host: 127.0.0.1, port: 0, tenant: shop }
upstream:
  servers: [ "${mc.address}" ]
state: { url: "${redis.url}", keyPrefix: "rl${process.pid}:" }
log: { level: silent }
tenants:
  shop: { prefix: "rl${process.pid}:", limits: { opsPerSecond: ${RATE}, burst: ${BURST} } }
`,
    'redis-limits.yaml',
    {},
  );
  const p = createProxy(config, { logger: pino({ level: process.env.MEMGATE_TEST_LOG ?? 'silent' }) });
  await p.start();
  return p;
}

const portOf = (p: Proxy): number => p.addresses()[0]?.port ?? 0;

beforeAll(async () => {
  mc = await spawnMemcached();
  redis = await spawnRedis();
  a = await startInstance();
  b = await startInstance();
});

afterAll(async () => {
  await a?.stop();
  await b?.stop();
  await redis?.stop();
  await mc?.stop();
});

describe('a tenant limit shared by two instances through Redis', () => {
  it('admits rate × T + burst within ±10 % over 5 s of pipelined load spread over both', async () => {
    // two connections on each instance
    const r = await pipelinedGets([portOf(a), portOf(b), portOf(a), portOf(b)], 5000);
    const expected = (RATE * r.elapsedMs) / 1000 + BURST;
    console.log(
      `shared limit ${RATE}/s burst ${BURST}: admitted ${r.admitted} of ${r.admitted + r.refused} in ${r.elapsedMs.toFixed(0)} ms ` +
        `(expected ${expected.toFixed(0)}, ratio ${(r.admitted / expected).toFixed(3)})`,
    );
    expect(r.other).toBe(0);
    expect(r.refused).toBeGreaterThan(0); // the load really was over the limit
    expect(r.admitted).toBeGreaterThanOrEqual(expected * 0.9);
    expect(r.admitted).toBeLessThanOrEqual(expected * 1.1);
  }, 20_000);

  it('with Redis down, each instance falls back to its share of the limit (rate ÷ 2); Redis back, the one limit again', async () => {
    await redis.kill();
    const until = Date.now() + 10_000;
    while ((a.store.up || b.store.up) && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    expect(a.store.up).toBe(false);
    // let any leased balance and the fallback's burst be spent first
    await pipelinedGets([portOf(a)], 500);
    const r = await pipelinedGets([portOf(a)], 2000);
    const share = RATE / 2;
    const expected = (share * r.elapsedMs) / 1000;
    console.log(
      `Redis down, one instance: admitted ${r.admitted} in ${r.elapsedMs.toFixed(0)} ms (its share: ${expected.toFixed(0)})`,
    );
    expect(r.other).toBe(0);
    expect(r.admitted).toBeGreaterThanOrEqual(expected * 0.85);
    expect(r.admitted).toBeLessThanOrEqual(expected * 1.15 + BURST / 2);
    // Redis back: both lease again, and together they hold the one limit again
    await redis.restart();
    while ((!a.store.up || !b.store.up) && Date.now() < until + 10_000) await new Promise((res) => setTimeout(res, 10));
    expect(a.store.up && b.store.up).toBe(true);
    await pipelinedGets([portOf(a), portOf(b)], 500); // spend what the fallback and the fresh bucket hold
    const back = await pipelinedGets([portOf(a), portOf(b)], 2000);
    const whole = (RATE * back.elapsedMs) / 1000;
    console.log(
      `Redis back, both instances: admitted ${back.admitted} in ${back.elapsedMs.toFixed(0)} ms (rate × T: ${whole.toFixed(0)})`,
    );
    expect(back.admitted).toBeGreaterThanOrEqual(whole * 0.85);
    expect(back.admitted).toBeLessThanOrEqual(whole * 1.15 + BURST);
  }, 40_000);
});
