/**
 * rediss://: the Redis store over TLS to a real redis-server (TLS port only),
 * its certificate signed by a CA made here with openssl and given as
 * state.tls.ca. Without the CA the store refuses to start, with one line.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { probeRedis } from '../../src/admin/check-connect.js';
import { createProxy } from '../../src/index.js';
import { spawnMemcached, type MemcachedProcess } from '../helpers/spawn-memcached.js';
import { spawnRedis, type RedisProcess } from '../helpers/spawn-redis.js';
import { TextClient } from '../helpers/text-client.js';

let dir: string;
let mc: MemcachedProcess;
let redis: RedisProcess;

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgate-redis-tls-'));
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=test redis CA',
  );
  openssl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'redis.key',
    '-subj',
    '/CN=localhost',
    '-out',
    'redis.csr',
  );
  fs.writeFileSync(path.join(dir, 'redis.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(
    'x509',
    '-req',
    '-in',
    'redis.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '2',
    '-out',
    'redis.pem',
    '-extfile',
    'redis.ext',
  );
  const f = (n: string): string => path.join(dir, n);
  mc = await spawnMemcached();
  redis = await spawnRedis({ tls: { cert: f('redis.pem'), key: f('redis.key'), ca: f('ca.pem') } });
});

afterAll(async () => {
  await redis?.stop();
  await mc?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

function config(tls: string): ReturnType<typeof parseConfigText> {
  return parseConfigText(
    `listen:
  - { host: 127.0.0.1, port: 0, tenant: shop }
upstream:
  servers: [ "${mc.address}" ]
state: { url: "${redis.url}", keyPrefix: "tls${process.pid}:"${tls} }
log: { level: silent }
tenants:
  shop: { prefix: "tls${process.pid}:" }
`,
    'redis-tls.yaml',
    {},
  );
}

describe('state.url rediss://', () => {
  it('keeps generations in Redis over TLS, trusting state.tls.ca; a flush rotates there', async () => {
    expect(redis.url).toMatch(/^rediss:\/\//);
    const proxy = createProxy(config(`, tls: { ca: "${path.join(dir, 'ca.pem')}" }`), {
      logger: pino({ level: 'silent' }),
    });
    await proxy.start();
    try {
      expect(proxy.store.up).toBe(true);
      const g = proxy.store.generation('shop');
      const c = await TextClient.connect(proxy.addresses()[0]?.port ?? 0);
      expect(await c.request('set k 0 0 1\r\nv\r\nflush_all\r\nget k\r\n')).toBe('STORED\r\nOK\r\nEND\r\n');
      expect(proxy.store.generation('shop')).not.toBe(g);
      c.close();
    } finally {
      await proxy.stop();
    }
  });

  it('is reached by check-config --connect as the store reaches it: with state.tls.ca, and not without', async () => {
    const timeouts = { connectTimeoutMs: 2000, replyTimeoutMs: 2000 };
    const trusted = await probeRedis({ url: redis.url, tls: { ca: path.join(dir, 'ca.pem') } }, timeouts);
    expect(trusted).toMatchObject({ ok: true, detail: expect.stringMatching(/^redis \S+, PING answered/) });
    const untrusted = await probeRedis({ url: redis.url }, timeouts);
    expect(untrusted).toMatchObject({ ok: false, detail: expect.stringMatching(/certificate/) });
  });

  it('refuses to start when the certificate is not trusted (no CA given), naming the URL', async () => {
    const proxy = createProxy(config(''), { logger: pino({ level: 'silent' }) });
    await expect(proxy.start()).rejects.toMatchObject({
      code: 'ERR_STATE_UNAVAILABLE',
      message: expect.stringMatching(/^cannot reach Redis at rediss:\/\/127\.0\.0\.1:\d+\/0: .*certificate/),
    });
    await proxy.stop().catch(() => undefined);
  });
});
