/**
 * HTTP on a memcached port: a browser or an SSRF-able web app sending
 * `POST / HTTP/1.1` with a body of memcached commands. memcached closes on the
 * request line, before anything after it runs; memgate does the same, on a
 * tenant listener and after ASCII auth. Each case is sent to a real memcached
 * and through memgate, and the outcomes compared.
 */
import { describe, expect, it } from 'vitest';
import { hashPassword } from '../../src/policy/password.js';
import { useMemcachedAndProxy } from '../helpers/memcached-and-proxy.js';
import { TextClient } from '../helpers/text-client.js';

const TENANT = 0;
const PASSWORD = 1;
const env = useMemcachedAndProxy(
  async () => `listen:
  - { host: 127.0.0.1, port: 0, tenant: alpha }
  - { host: 127.0.0.1, port: 0 }
upstream:
  servers: [ "\${UPSTREAM}" ]
state: { url: "\${STATE}" }
tenants:
  alpha: { prefix: "a7Zk2:" }
  shop: { prefix: "shop:", password: "${await hashPassword('shop-secret')}" }
`,
);

const AUTH = 'set auth 0 0 16\r\nshop shop-secret\r\n';

/** Sends `bytes`, waits for the close (or gives up after 2 s), returns what came back and whether it closed. */
async function outcome(port: number, bytes: string): Promise<{ reply: string; closed: boolean }> {
  const c = await TextClient.connect(port);
  c.send(bytes);
  const closed = await c.waitClosed(2000).then(
    () => true,
    () => false,
  );
  const reply = c.take().toString('latin1');
  c.close();
  return { reply, closed };
}

const REQUESTS: { name: string; bytes: string }[] = [
  {
    name: 'a POST whose body is memcached commands',
    bytes: 'POST / HTTP/1.1\r\nHost: cache\r\nContent-Length: 27\r\n\r\nset pwned 0 0 5\r\nowned\r\n',
  },
  { name: 'a GET', bytes: 'GET /?set%20pwned HTTP/1.1\r\nHost: cache\r\n\r\nset pwned 0 0 5\r\nowned\r\n' },
  { name: 'a PUT', bytes: 'PUT /x HTTP/1.0\r\n\r\nset pwned 0 0 5\r\nowned\r\n' },
  { name: 'a HEAD', bytes: 'HEAD / HTTP/1.1\r\n\r\nset pwned 0 0 5\r\nowned\r\n' },
  { name: 'a DELETE', bytes: 'DELETE /k HTTP/1.1\r\n\r\nset pwned 0 0 5\r\nowned\r\n' },
  { name: 'OPTIONS', bytes: 'OPTIONS * HTTP/1.1\r\n\r\nset pwned 0 0 5\r\nowned\r\n' },
  { name: 'any unknown method', bytes: 'BREW /pot HTTP/1.1\r\nset pwned 0 0 5\r\nowned\r\n' },
];

describe('HTTP request lines', () => {
  for (const { name, bytes } of REQUESTS) {
    it(`closes on ${name} without running what follows, as memcached does`, async () => {
      const direct = await outcome(env.mc.port, bytes);
      const tenant = await outcome(env.gate.port(TENANT), bytes);
      expect(direct).toEqual({ reply: '', closed: true });
      expect(tenant).toEqual(direct);
      const d = await TextClient.connect(env.mc.port);
      expect(await d.request('get pwned\r\n')).toBe('END\r\n');
      d.close();
      const t = await TextClient.connect(env.gate.port(TENANT));
      expect(await t.request('get pwned\r\n')).toBe('END\r\n');
      t.close();
    });
  }

  it('closes on an HTTP line after ASCII auth, before its body runs', async () => {
    const c = await TextClient.connect(env.gate.port(PASSWORD));
    expect(await c.request(AUTH)).toBe('STORED\r\n');
    c.send('POST / HTTP/1.1\r\nContent-Length: 24\r\n\r\nset pwned 0 0 5\r\nowned\r\n');
    await c.waitClosed(2000);
    expect(c.take().toString('latin1')).toBe('');
    const check = await TextClient.connect(env.gate.port(PASSWORD));
    expect(await check.request(`${AUTH}get pwned\r\n`)).toBe('STORED\r\nEND\r\n');
    check.close();
  });

  it('answers the requests before the HTTP line, then closes', async () => {
    const bytes = 'set before 0 0 1\r\nb\r\nPOST / HTTP/1.1\r\nset pwned 0 0 5\r\nowned\r\n';
    // NOTE: memcached closes too, and may drop the STORED it owed; memgate writes the replies owed first.
    expect((await outcome(env.mc.port, bytes)).closed).toBe(true);
    expect(await outcome(env.gate.port(TENANT), bytes)).toEqual({ reply: 'STORED\r\n', closed: true });
    const t = await TextClient.connect(env.gate.port(TENANT));
    expect(await t.request('get before pwned\r\n')).toBe('VALUE before 0 1\r\nb\r\nEND\r\n');
    t.close();
  });

  it('leaves a lowercase get with an HTTP-looking key to run as a get, as memcached does', async () => {
    const c = await TextClient.connect(env.gate.port(TENANT));
    const d = await TextClient.connect(env.mc.port);
    expect(await c.request('get / HTTP/1.1\r\n')).toBe(await d.request('get / HTTP/1.1\r\n'));
    expect(c.closed).toBe(false);
    c.close();
    d.close();
  });
});
