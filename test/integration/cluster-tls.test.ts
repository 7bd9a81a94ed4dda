/**
 * TLS to memcached (memcached -Z): certificates made with openssl in the test.
 * A server whose certificate verifies is used; one whose certificate does not
 * (another CA), or that does not speak TLS at all, is never sent a request.
 */
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOOPBACK_SAN, TestCerts } from '../helpers/certs.js';
import { startProxy, type RunningProxy } from '../helpers/proxy.js';
import { readToEnd } from '../helpers/read-to-end.js';
import { spawnMemcached, type MemcachedProcess } from '../helpers/spawn-memcached.js';
import { TextClient } from '../helpers/text-client.js';

let certs: TestCerts;

function tlsMemcached(cert: string): Promise<MemcachedProcess> {
  return spawnMemcached([
    '-Z',
    '-o',
    `ssl_chain_cert=${certs.path(`${cert}.pem`)},ssl_key=${certs.path(`${cert}.key`)}`,
  ]);
}

/** Sends `cmd` to a TLS memcached directly (certificate not checked: this is the test looking) and reads to END. */
function directTls(mc: MemcachedProcess, cmd: string): Promise<string> {
  return readToEnd((ready) => tls.connect({ host: mc.host, port: mc.port, rejectUnauthorized: false }, ready), cmd);
}

const stat = (text: string, name: string): number =>
  Number(new RegExp(`^STAT ${name} (\\d+)\\r$`, 'm').exec(text)?.[1]);

const FAILURE = 'SERVER_ERROR backend failure\r\n';

/** Sends `cmd` and reads its one-line answer. */
async function failed(c: TextClient, cmd: string): Promise<string> {
  c.send(cmd);
  return c.readUntil('\r\n', 10_000);
}

let good: MemcachedProcess;
let rogue: MemcachedProcess;
let plain: MemcachedProcess;
let gate: RunningProxy;

beforeAll(async () => {
  certs = new TestCerts('memgate-upstream-tls-');
  certs.ca('ca');
  certs.ca('rogue-ca');
  certs.issue('server', 'localhost', 'ca', LOOPBACK_SAN);
  certs.issue('rogue', 'localhost', 'rogue-ca', LOOPBACK_SAN);
  good = await tlsMemcached('server');
  rogue = await tlsMemcached('rogue');
  plain = await spawnMemcached();
  const ca = certs.path('ca.pem');
  gate = await startProxy(
    `
listen:
  - { host: 127.0.0.1, port: 0, tenant: t }
  - { host: 127.0.0.1, port: 0, tenant: r }
  - { host: 127.0.0.1, port: 0, tenant: p }
upstream:
  servers: [ "${good.address}" ]
  tls: { ca: "${ca}" }
  connectTimeoutMs: 1000
  backoffMinMs: 20
  backoffMaxMs: 200
  pools:
    rogue: { servers: [ "${rogue.address}" ], tls: { ca: "${ca}" } }
    plain: { servers: [ "${plain.address}" ], tls: { ca: "${ca}" } }
state: { url: "\${STATE}" }
tenants:
  t: { prefix: "t:", mode: enforce }
  r: { prefix: "r:", mode: enforce, pool: rogue }
  p: { prefix: "p:", mode: enforce, pool: plain }
`,
    good.address,
  );
}, 60_000);

afterAll(async () => {
  await gate.stop();
  await Promise.all([good.stop(), rogue.stop(), plain.stop()]);
});

describe('TLS to memcached', () => {
  it('stores and reads through a server whose certificate verifies', async () => {
    const c = await TextClient.connect(gate.port(0));
    try {
      expect(await c.request('set t:secure 0 0 5\r\nhello\r\n', 10_000)).toBe('STORED\r\n');
      expect(await c.request('get t:secure\r\n')).toBe('VALUE t:secure 0 5\r\nhello\r\nEND\r\n');
      expect(await directTls(good, 'get t:secure\r\n')).toBe('VALUE t:secure 0 5\r\nhello\r\nEND\r\n');
    } finally {
      c.close();
    }
  });

  it('never uses a server whose certificate does not verify: backend failure, nothing sent', async () => {
    const c = await TextClient.connect(gate.port(1));
    try {
      // (not c.request(): its closing `version` goes to the same server and fails the same way)
      for (let i = 0; i < 3; i++) expect(await failed(c, 'set r:x 0 0 1\r\nx\r\n')).toBe(FAILURE);
      // marked down once failureLimit (3) handshakes in a row failed: a multi-get on it is then all misses
      const down = () => gate.proxy.pool.health().find((h) => h.pool === 'rogue')?.down === true;
      for (let i = 0; i < 200 && !down(); i++) await new Promise((r) => setTimeout(r, 25));
      expect(down()).toBe(true);
      expect(await failed(c, 'get r:x r:y\r\n')).toBe('END\r\n');
      const stats = await directTls(rogue, 'stats\r\n');
      expect(stat(stats, 'cmd_set')).toBe(0);
      expect(stat(stats, 'cmd_get')).toBe(0);
      expect(stat(stats, 'curr_items')).toBe(0);
      expect(gate.proxy.pool.health().find((h) => h.pool === 'rogue')?.up).toBe(false);
    } finally {
      c.close();
    }
  });

  it('never sends a command in clear to a server that does not speak TLS', async () => {
    const c = await TextClient.connect(gate.port(2));
    const direct = await TextClient.connect(plain.port);
    try {
      for (let i = 0; i < 3; i++) expect(await failed(c, 'set p:x 0 0 1\r\nx\r\n')).toBe(FAILURE);
      const stats = await direct.request('stats\r\n');
      expect(stat(stats, 'cmd_set')).toBe(0);
      expect(stat(stats, 'curr_items')).toBe(0);
    } finally {
      c.close();
      direct.close();
    }
  });
});
