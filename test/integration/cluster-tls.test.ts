/**
 * TLS to memcached (memcached -Z): certificates made with openssl in the test.
 * A server whose certificate verifies is used; one whose certificate does not
 * (another CA), or that does not speak TLS at all, is never sent a request.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProxy, type RunningProxy } from '../helpers/proxy.js';
import { spawnMemcached, type MemcachedProcess } from '../helpers/spawn-memcached.js';
import { TextClient } from '../helpers/text-client.js';

let dir: string;

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A server certificate for 127.0.0.1 and localhost signed by CA `ca`. */
function issueServer(name: string, ca: string): void {
  openssl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-subj',
    '/CN=localhost',
    '-out',
    `${name}.csr`,
  );
  fs.writeFileSync(path.join(dir, `${name}.ext`), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${ca}.pem`,
    '-CAkey',
    `${ca}.key`,
    '-CAcreateserial',
    '-days',
    '2',
    '-out',
    `${name}.pem`,
    '-extfile',
    `${name}.ext`,
  );
}

function tlsMemcached(cert: string): Promise<MemcachedProcess> {
  const p = (f: string) => path.join(dir, f);
  return spawnMemcached(['-Z', '-o', `ssl_chain_cert=${p(`${cert}.pem`)},ssl_key=${p(`${cert}.key`)}`]);
}

/** Sends `cmd` to a TLS memcached directly (certificate not checked: this is the test looking) and reads to END. */
function directTls(mc: MemcachedProcess, cmd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: mc.host, port: mc.port, rejectUnauthorized: false }, () => s.write(cmd));
    let text = '';
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (text.endsWith('END\r\n')) {
        s.destroy();
        resolve(text);
      }
    });
    s.on('error', reject);
  });
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
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgate-upstream-tls-'));
  for (const ca of ['ca', 'rogue-ca']) {
    openssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      `${ca}.key`,
      '-subj',
      `/CN=${ca}`,
      '-days',
      '2',
      '-out',
      `${ca}.pem`,
    );
  }
  issueServer('server', 'ca');
  issueServer('rogue', 'rogue-ca');
  good = await tlsMemcached('server');
  rogue = await tlsMemcached('rogue');
  plain = await spawnMemcached();
  const ca = path.join(dir, 'ca.pem');
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
