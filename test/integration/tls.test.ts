/**
 * TLS listeners: certificates made with openssl in the test; a verified client
 * certificate identifies its tenant (mTLS); a client without one is refused.
 */
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../src/policy/password.js';
import { LOOPBACK_SAN, TestCerts } from '../helpers/certs.js';
import { spawnMemcached, type MemcachedProcess } from '../helpers/spawn-memcached.js';
import { startProxy, type RunningProxy } from '../helpers/proxy.js';
import { TextClient } from '../helpers/text-client.js';

let mc: MemcachedProcess;
let gate: RunningProxy;
/** a TLS listener with a short auth (and handshake) deadline */
let quick: RunningProxy;
let dir: string;

let certs: TestCerts;

function fingerprint(name: string): string {
  return certs.openssl('x509', '-noout', '-fingerprint', '-sha256', '-in', `${name}.pem`).trim().replace(/^.*=/, '');
}

beforeAll(async () => {
  certs = new TestCerts('memgate-tls-');
  dir = certs.dir;
  certs.ca('ca', 'memgate test CA');
  certs.issue('server', 'localhost', 'ca', LOOPBACK_SAN);
  certs.issue('shop', 'shop-client', 'ca');
  certs.issue('blog', 'blog-client', 'ca');
  certs.issue('stranger', 'stranger', 'ca');
  certs.issue('netcert', 'netcert-client', 'ca');
  mc = await spawnMemcached();
  const hash = await hashPassword('cart-secret');
  const f = (n: string): string => path.join(dir, n);
  gate = await startProxy(
    `
listen:
  - { host: 127.0.0.1, port: 0, tls: { cert: "${f('server.pem')}", key: "${f('server.key')}", ca: "${f('ca.pem')}" } }
  - { host: 127.0.0.1, port: 0, tls: { cert: "${f('server.pem')}", key: "${f('server.key')}" } }
upstream:
  servers: [ "\${UPSTREAM}" ]
state: { url: "\${STATE}" }
tenants:
  shop: { prefix: "shop:", certificates: { fingerprints: [ "${fingerprint('shop')}" ] } }
  blog: { prefix: "blog:", certificates: { subjects: [ "blog-client" ] } }
  cart: { prefix: "cart:", password: "${hash}" }
  netcert: { prefix: "netcert:", networks: [ "10.0.0.0/8" ], certificates: { subjects: [ "netcert-client" ] } }
`,
    mc.address,
  );
  quick = await startProxy(
    `
listen:
  - { host: 127.0.0.1, port: 0, tls: { cert: "${f('server.pem')}", key: "${f('server.key')}", ca: "${f('ca.pem')}" } }
upstream:
  servers: [ "\${UPSTREAM}" ]
state: { url: "\${STATE}" }
limits: { authTimeoutMs: 300 }
tenants:
  shop: { prefix: "shop:", certificates: { fingerprints: [ "${fingerprint('shop')}" ] } }
`,
    mc.address,
  );
});

afterAll(async () => {
  await gate?.stop();
  await quick?.stop();
  await mc?.stop();
  if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
});

/** Connects over TLS, sends `data`, and returns everything read until `until` or the close. */
function talk(port: number, client: string | null, data: string, until: RegExp, endInput = false): Promise<string> {
  return new Promise((resolve, reject) => {
    const opts: tls.ConnectionOptions = { host: '127.0.0.1', port, ca: fs.readFileSync(path.join(dir, 'ca.pem')) };
    if (client !== null) {
      opts.cert = fs.readFileSync(path.join(dir, `${client}.pem`));
      opts.key = fs.readFileSync(path.join(dir, `${client}.key`));
    }
    let out = '';
    const s = tls.connect(opts, () => (endInput ? s.end(data) : s.write(data)));
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`timed out; got ${JSON.stringify(out)}`));
    }, 5000);
    const done = (): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(out);
    };
    s.on('data', (d: Buffer) => {
      out += d.toString('latin1');
      if (until.test(out)) done();
    });
    s.on('error', (err) => {
      clearTimeout(timer);
      resolve(`error: ${err.message}`);
    });
    s.on('close', done);
  });
}

describe('mutual TLS', () => {
  it('identifies the tenant by certificate fingerprint', async () => {
    const out = await talk(gate.port(0), 'shop', 'set t 0 0 4\r\nshop\r\nget t\r\nstats\r\n', /END\r\n[\s\S]*END\r\n$/);
    expect(out).toMatch(/^STORED\r\nVALUE t 0 4\r\nshop\r\nEND\r\n/);
    expect(out).toContain('STAT memgate_tenant shop\r\n');
  });

  it('identifies the tenant by certificate subject, in its own keyspace', async () => {
    const out = await talk(gate.port(0), 'blog', 'get t\r\nstats\r\n', /END\r\n[\s\S]*END\r\n$/);
    expect(out).toMatch(/^END\r\n/);
    expect(out).toContain('STAT memgate_tenant blog\r\n');
  });

  it('refuses a client without a certificate', async () => {
    const out = await talk(gate.port(0), null, 'get t\r\n', /\r\n$/);
    expect(out).not.toMatch(/END|VALUE/);
  });

  it('falls back to password auth for a verified certificate that names no tenant', async () => {
    const denied = await talk(gate.port(0), 'stranger', 'get t\r\n', /\r\n$/);
    expect(denied).toBe('CLIENT_ERROR unauthenticated\r\n');
    const ok = await talk(gate.port(0), 'stranger', 'set a 0 0 16\r\ncart cart-secret\r\nget t\r\n', /END\r\n$/);
    expect(ok).toBe('STORED\r\nEND\r\n');
  });
});

describe('TLS without client certificates', () => {
  it('serves password-authenticated clients', async () => {
    const out = await talk(
      gate.port(1),
      null,
      'set a 0 0 16\r\ncart cart-secret\r\nset c 0 0 1\r\n1\r\nget c\r\n',
      /END\r\n$/,
    );
    expect(out).toBe('STORED\r\nSTORED\r\nVALUE c 0 1\r\n1\r\nEND\r\n');
  });

  it('answers a client that shuts down its sending side after its requests, then closes', async () => {
    const out = await talk(
      gate.port(1),
      null,
      'set a 0 0 16\r\ncart cart-secret\r\nset h 0 0 1\r\n2\r\nget h\r\n',
      /(?!)/, // never matches: read until memgate closes
      true,
    );
    expect(out).toBe('STORED\r\nSTORED\r\nVALUE h 0 1\r\n2\r\nEND\r\n');
  });
});

interface Talked {
  out: string;
  /** TLS sessions the server offered for resumption (1.2: the session; 1.3: each ticket) */
  sessions: Buffer[];
  reused: boolean;
}

/** Like talk(), with any client options, and what could resume the session afterwards. */
function talkWith(opts: tls.ConnectionOptions, data: string, until: RegExp): Promise<Talked> {
  return new Promise((resolve) => {
    const result: Talked = { out: '', sessions: [], reused: false };
    const s = tls.connect({ host: '127.0.0.1', ca: fs.readFileSync(path.join(dir, 'ca.pem')), ...opts }, () => {
      result.reused = s.isSessionReused();
      s.write(data);
    });
    s.on('session', (session: Buffer) => result.sessions.push(session));
    const timer = setTimeout(() => s.destroy(), 5000);
    let finished = false;
    const done = (): void => {
      if (finished) return; // NOTE: getSession() on a destroyed TLS socket crashes node
      finished = true;
      clearTimeout(timer);
      const legacy = s.getSession();
      if (legacy !== undefined && result.sessions.length === 0) result.sessions.push(legacy);
      s.destroy();
      resolve(result);
    };
    s.on('data', (d: Buffer) => {
      result.out += d.toString('latin1');
      if (until.test(result.out)) done();
    });
    s.on('error', (err) => {
      result.out += `error: ${err.message}`;
      done();
    });
    s.on('close', done);
  });
}

function clientCert(name: string): tls.ConnectionOptions {
  return { cert: fs.readFileSync(path.join(dir, `${name}.pem`)), key: fs.readFileSync(path.join(dir, `${name}.key`)) };
}

describe('TLS sessions and certificates', () => {
  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    it(`does not serve a client without a certificate as the tenant whose ${version} session it resumes`, async () => {
      const first = await talkWith(
        { port: gate.port(0), maxVersion: version, minVersion: version, ...clientCert('shop') },
        'stats\r\n',
        /END\r\n$/,
      );
      expect(first.out).toContain('STAT memgate_tenant shop\r\n');
      // a resumption attempt with every session the server handed out
      const sessions = first.sessions.length > 0 ? first.sessions : [Buffer.alloc(0)];
      for (const session of sessions) {
        const again = await talkWith(
          { port: gate.port(0), maxVersion: version, minVersion: version, session },
          'stats\r\n',
          /END\r\n$|\r\n$/,
        );
        expect(again.out).not.toContain('memgate_tenant shop');
        expect(again.reused).toBe(false);
      }
    });
  }

  it('refuses client-initiated renegotiation', async () => {
    const result = await new Promise<string>((resolve) => {
      const s = tls.connect(
        {
          host: '127.0.0.1',
          port: gate.port(0),
          maxVersion: 'TLSv1.2',
          ca: fs.readFileSync(path.join(dir, 'ca.pem')),
          ...clientCert('shop'),
        },
        () => {
          const asked = s.renegotiate({ rejectUnauthorized: true }, (err) => {
            s.destroy();
            resolve(err === null ? 'renegotiated' : `refused: ${err.message}`);
          });
          if (!asked) {
            s.destroy();
            resolve('refused: not sent');
          }
        },
      );
      s.on('error', () => resolve('refused: connection error'));
      s.on('close', () => resolve('refused: closed'));
    });
    expect(result).toMatch(/^refused/);
  });

  it('closes a TCP connection that never starts its TLS handshake, after the auth timeout', async () => {
    const c = await TextClient.connect(quick.port(0));
    await c.waitClosed(5000);
    expect(c.closed).toBe(true);
  });

  it("does not identify a tenant by certificate from outside the tenant's networks", async () => {
    const out = await talkWith({ port: gate.port(0), ...clientCert('netcert') }, 'get t\r\n', /\r\n$/);
    expect(out.out).toBe('CLIENT_ERROR unauthenticated\r\n');
  });
});
