/**
 * Password authentication (memcached's ASCII auth) in front of a real memcached:
 * success, failure, lock-out, credentials with rights, the hosted-service form.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../src/policy/password.js';
import { spawnMemcached, type MemcachedProcess } from '../helpers/spawn-memcached.js';
import { startProxy, type RunningProxy } from '../helpers/proxy.js';
import { TextClient } from '../helpers/text-client.js';

let mc: MemcachedProcess;
let gate: RunningProxy;

function authSet(user: string, password: string): string {
  const token = `${user} ${password}`;
  return `set auth 0 0 ${Buffer.byteLength(token)}\r\n${token}\r\n`;
}

beforeAll(async () => {
  mc = await spawnMemcached();
  const [shop, app, reporting, blog] = await Promise.all([
    hashPassword('shop-secret'),
    hashPassword('app-secret'),
    hashPassword('report-secret'),
    hashPassword('blog-secret'),
  ]);
  gate = await startProxy(
    `
listen:
  - { host: 127.0.0.1, port: 0 }
upstream:
  servers: [ "\${UPSTREAM}" ]
state: { url: "\${STATE}" }
auth: { usernameAsKey: true, maxFailuresPerConnection: 3, lockoutFailures: 12, lockoutWindowMs: 60000, lockoutMs: 60000 }
tenants:
  shop:
    prefix: "shop:"
    password: "${shop}"
    credentials:
      - { username: shop-app, password: "${app}" }
      - { username: shop-report, password: "${reporting}", rights: read-only }
  blog:
    prefix: "blog:"
    credentials:
      - { username: blog, password: "${blog}", rights: no-flush, networks: [ "10.0.0.0/8" ] }
`,
    mc.address,
  );
});

afterAll(async () => {
  await gate?.stop();
  await mc?.stop();
});

/** One auth attempt; the reply line (no `version` probe: before auth it would close the connection). */
async function attempt(c: TextClient, user: string, password: string): Promise<string> {
  c.send(authSet(user, password));
  return c.readUntil('\r\n');
}

async function connect(): Promise<TextClient> {
  return TextClient.connect(gate.port(0));
}

describe('ASCII auth', () => {
  it('refuses any other first command and closes, as memcached does', async () => {
    const c = await connect();
    c.send('get anything\r\n');
    expect(await c.readUntil('\r\n')).toBe('CLIENT_ERROR unauthenticated\r\n');
    await c.waitClosed();
  });

  it('accepts the tenant password and then serves that tenant', async () => {
    const c = await connect();
    expect(await c.request(`${authSet('shop', 'shop-secret')}set k 0 0 2\r\nhi\r\nget k\r\n`)).toBe(
      'STORED\r\nSTORED\r\nVALUE k 0 2\r\nhi\r\nEND\r\n',
    );
    const other = await connect();
    expect(await other.request(`${authSet('shop-app', 'app-secret')}get k\r\n`)).toBe(
      'STORED\r\nVALUE k 0 2\r\nhi\r\nEND\r\n',
    );
    c.close();
    other.close();
  });

  it('answers a wrong password with one error text, and allows a retry on the same connection', async () => {
    const c = await connect();
    expect(await attempt(c, 'shop', 'wrong')).toBe('CLIENT_ERROR authentication failure\r\n');
    expect(await attempt(c, 'nobody', 'shop-secret')).toBe('CLIENT_ERROR authentication failure\r\n');
    expect(await c.request(`${authSet('shop', 'shop-secret')}get k\r\n`)).toMatch(/^STORED\r\nVALUE k 0 2\r\n/);
    c.close();
  });

  it('closes a connection after too many failures', async () => {
    const c = await connect();
    c.send(authSet('shop', 'a') + authSet('shop', 'b') + authSet('shop', 'c') + authSet('shop', 'shop-secret'));
    await c.waitClosed(10_000);
    expect(c.take().toString('latin1')).toBe('CLIENT_ERROR authentication failure\r\n'.repeat(3));
  });

  it('accepts the hosted-service form: the key is the user name, the data the password', async () => {
    const c = await connect();
    expect(await c.request('set shop-app 0 0 10\r\napp-secret\r\nget k\r\n')).toMatch(/^STORED\r\nVALUE k 0 2\r\n/);
    c.close();
  });

  it('refuses an auth token over the limit', async () => {
    const c = await connect();
    const big = 'x'.repeat(17 * 1024);
    c.send(`set auth 0 0 ${big.length}\r\n${big}\r\n`);
    expect(await c.readUntil('\r\n')).toBe('CLIENT_ERROR auth token too long\r\n');
    await c.waitClosed();
  });

  it('holds a read-only credential to reads', async () => {
    const c = await connect();
    expect(await c.request(authSet('shop-report', 'report-secret'))).toBe('STORED\r\n');
    expect(await c.request('get k\r\n')).toMatch(/^VALUE k 0 2\r\nhi\r\nEND\r\n$/);
    expect(await c.request('set k 0 0 1\r\nx\r\n')).toBe('CLIENT_ERROR access denied\r\n');
    expect(await c.request('delete k\r\nincr k 1\r\ntouch k 1\r\ngat 1 k\r\nmg k T1 v\r\n')).toBe(
      'CLIENT_ERROR access denied\r\n'.repeat(5),
    );
    expect(await c.request('flush_all\r\n')).toBe('CLIENT_ERROR flush_all not allowed\r\n');
    expect(await c.request('mg k v\r\n')).toBe('VA 2\r\nhi\r\n');
    c.close();
  });

  it('accepts a credential only from its networks', async () => {
    const c = await connect();
    expect(await attempt(c, 'blog', 'blog-secret')).toBe('CLIENT_ERROR authentication failure\r\n');
    c.close();
  });

  it('locks out an address after repeated failures, even with the right password', async () => {
    // earlier tests spent some failures from 127.0.0.1; keep failing until locked out
    for (let i = 0; i < 12; i++) {
      const c = await connect();
      c.send(authSet('shop', `bad${i}`));
      await c.readUntil('\r\n');
      c.close();
    }
    const c = await connect();
    c.send(authSet('shop', 'shop-secret'));
    expect(await c.readUntil('\r\n')).toBe('CLIENT_ERROR authentication failure\r\n');
    await c.waitClosed();
  });
});
