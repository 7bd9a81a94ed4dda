/**
 * Real clients from other ecosystems judge compatibility: libmemcached's
 * memcapable (Debian names it memccapable) and Python's pymemcache, through a
 * namespaced tenant listener, against a real memcached.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { TWO_TENANTS_YAML } from '../helpers/proxy.js';
import { useMemcachedAndProxy } from '../helpers/memcached-and-proxy.js';

const run = promisify(execFile);
const MEMCAPABLE = ['/usr/bin/memccapable', '/usr/bin/memcapable'].find((p) => fs.existsSync(p));
const PYTHON = '/usr/bin/python3';

const env = useMemcachedAndProxy(TWO_TENANTS_YAML);

async function memcapable(port: number, flag: string): Promise<{ code: number; out: string }> {
  if (MEMCAPABLE === undefined)
    throw new Error('memccapable is not installed (Debian libmemcached-tools): run scripts/setup.sh');
  try {
    const r = await run(MEMCAPABLE, ['-h', '127.0.0.1', '-p', String(port), '-t', '5', flag], { timeout: 60_000 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: err.code ?? 1, out: (err.stdout ?? '') + (err.stderr ?? '') };
  }
}

function passed(out: string): string[] {
  return out
    .split('\n')
    .filter((l) => l.includes('[pass]'))
    .map((l) => l.replace(/\s+\[pass\].*$/, '').trim());
}

describe('memcapable (libmemcached-tools)', () => {
  it('passes through a namespaced tenant listener every ascii test it passes against memcached', async () => {
    const direct = await memcapable(env.mc.port, '-a');
    const proxied = await memcapable(env.gate.port(0), '-a');
    expect(passed(direct.out).length).toBeGreaterThan(20);
    expect(passed(proxied.out)).toEqual(passed(direct.out));
    expect(proxied.out).toContain('All tests passed');
    expect(proxied.code).toBe(0);
  }, 120_000);
});

describe('pymemcache (Debian python3-pymemcache)', () => {
  it('works unchanged through a tenant listener', async () => {
    const script = `
import sys
from pymemcache.client.base import Client
c = Client(('127.0.0.1', int(sys.argv[1])), connect_timeout=5, timeout=5)
assert c.set('py-key', b'py-value', expire=100, noreply=False)
assert c.get('py-key') == b'py-value', c.get('py-key')
c.set_many({'m1': b'1', 'm2': b'2'})
assert c.get_many(['m1', 'm2', 'nope']) == {'m1': b'1', 'm2': b'2'}
assert c.add('py-key', b'x', noreply=False) is False
assert c.incr('m1', 41) == 42
assert c.decr('m1', 2) == 40
v, cas = c.gets('py-key')
assert c.cas('py-key', b'new', cas, noreply=False)
assert c.get('py-key') == b'new'
assert c.touch('py-key', 200, noreply=False)
assert c.delete('py-key', noreply=False)
assert c.get('py-key') is None
stats = c.stats()
assert stats[b'cmd_get'] >= 1, stats
assert c.version()
assert c.flush_all(noreply=False)
assert c.get('m2') is None
print('pymemcache ok')
`;
    const r = await run(PYTHON, ['-c', script, String(env.gate.port(1))], { timeout: 30_000 });
    expect(r.stdout).toContain('pymemcache ok');
  });
});
