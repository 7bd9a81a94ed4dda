/**
 * Regression (found by test/compat with pylibmc through an enforce tenant): an
 * enforce-mode tenant's flush_all answered OK and cleared nothing — its keys
 * carry no generation, so a rotation hides none of them. It is refused with
 * memcached's words for a disabled flush_all, in its place in the pipeline;
 * a namespace tenant's flush_all still rotates.
 */
import { describe, expect, it } from 'vitest';
import { TWO_TENANTS_YAML } from '../helpers/proxy.js';
import { useMemcachedAndProxy } from '../helpers/memcached-and-proxy.js';
import { TextClient } from '../helpers/text-client.js';

const env = useMemcachedAndProxy(TWO_TENANTS_YAML);
const ALPHA = 0;
const GAMMA = 3; // enforce mode, prefixes gamma: and g2:

describe("an enforce tenant's flush_all", () => {
  it('is refused, not answered OK while every key stays', async () => {
    const c = await TextClient.connect(env.gate.port(GAMMA));
    expect(await c.request('set gamma:k 0 0 1\r\nx\r\nflush_all\r\nflush_all 10 noreply\r\nget gamma:k\r\n')).toBe(
      'STORED\r\nCLIENT_ERROR flush_all not allowed\r\nCLIENT_ERROR flush_all not allowed\r\nVALUE gamma:k 0 1\r\nx\r\nEND\r\n',
    );
    c.close();
  });

  it('leaves a namespace tenant’s flush_all a rotation', async () => {
    const c = await TextClient.connect(env.gate.port(ALPHA));
    expect(await c.request('set k 0 0 1\r\nx\r\nflush_all\r\nget k\r\n')).toBe('STORED\r\nOK\r\nEND\r\n');
    c.close();
  });
});
