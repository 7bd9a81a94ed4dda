/**
 * A tenant's plain `stats`, against a real memcached: counted at reply time
 * (a `stats` pipelined after set/get counts them, as memcached's does), and
 * in memcached's shape (`STAT <name> <one token>`, memcached's names in
 * memcached's order, `version` as the `version` command shows it).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { TWO_TENANTS_YAML } from '../helpers/proxy.js';
import { useMemcachedAndProxy } from '../helpers/memcached-and-proxy.js';
import { TextClient } from '../helpers/text-client.js';

const run = promisify(execFile);

const env = useMemcachedAndProxy(TWO_TENANTS_YAML);

/** The STAT blocks of a reply stream, each as a name → value map (values as text). */
function statBlocks(text: string): Map<string, string>[] {
  const blocks: Map<string, string>[] = [];
  let current: Map<string, string> | null = null;
  for (const line of text.split('\r\n')) {
    const m = /^STAT (\S+) (.*)$/.exec(line);
    if (m !== null) {
      current ??= new Map();
      current.set(m[1] ?? '', m[2] ?? '');
    } else if (line === 'END' && current !== null) {
      blocks.push(current);
      current = null;
    }
  }
  return blocks;
}

const COUNTED = ['cmd_get', 'cmd_set', 'get_hits', 'get_misses', 'delete_hits', 'delete_misses', 'incr_hits'];

/** How much each counter grew from `a` to `b`. */
function growth(a: Map<string, string>, b: Map<string, string>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of COUNTED) out[name] = Number(b.get(name)) - Number(a.get(name));
  return out;
}

/** stats, then set/get/delete/incr, then stats, all in one write. */
const PIPELINE =
  'stats\r\nset st:a 0 0 1\r\n1\r\nget st:a\r\nget st:missing\r\nincr st:a 1\r\ndelete st:a\r\ndelete st:a\r\nstats\r\n';

describe('a tenant’s plain stats', () => {
  it('counts every request answered before it in the same pipeline, as memcached does', async () => {
    const direct = await TextClient.connect(env.mc.port);
    const [mcBefore, mcAfter] = statBlocks(await direct.request(PIPELINE));
    direct.close();
    const expected = {
      cmd_get: 2,
      cmd_set: 1,
      get_hits: 1,
      get_misses: 1,
      delete_hits: 1,
      delete_misses: 1,
      incr_hits: 1,
    };
    expect(mcBefore && mcAfter && growth(mcBefore, mcAfter)).toEqual(expected); // memcached itself

    const c = await TextClient.connect(env.gate.port(0));
    const [before, after] = statBlocks(await c.request(PIPELINE));
    expect(before && after && growth(before, after)).toEqual(expected);
    c.close();
  });

  it('counts the bytes of every reply written before it', async () => {
    const c = await TextClient.connect(env.gate.port(1));
    const text = await c.request('stats\r\nset st:b 0 0 2\r\nhi\r\nget st:b\r\nstats\r\n');
    const [before, after] = statBlocks(text);
    const between = text.slice(0, text.lastIndexOf('STAT pid ')); // the first stats reply, STORED, VALUE…END
    expect(Number(after?.get('bytes_written')) - Number(before?.get('bytes_written'))).toBe(
      Buffer.byteLength(between, 'latin1'),
    );
    c.close();
  });

  it('is STAT <name> <one token> lines: memcached’s names in memcached’s order, then memgate_*', async () => {
    const direct = await TextClient.connect(env.mc.port);
    const real = await direct.request('stats\r\n');
    direct.close();
    const c = await TextClient.connect(env.gate.port(0));
    const ours = await c.request('stats\r\n');
    const viaVersion = await versionOf(c);
    c.close();

    for (const line of ours.split('\r\n').slice(0, -2)) expect(line).toMatch(/^STAT [a-z_]+ [^\s]+$/);
    expect(ours.endsWith('\r\nEND\r\n')).toBe(true);
    const [mine] = statBlocks(ours);
    const [theirs] = statBlocks(real);
    const names = [...(mine?.keys() ?? [])];
    const memcachedNames = [...(theirs?.keys() ?? [])];
    const shared = names.filter((n) => !n.startsWith('memgate_'));
    expect(shared.filter((n) => !memcachedNames.includes(n))).toEqual([]);
    expect(shared).toEqual(memcachedNames.filter((n) => shared.includes(n))); // memcached's order
    expect(names.slice(shared.length).every((n) => n.startsWith('memgate_'))).toBe(true);
    for (const n of ['pid', 'uptime', 'time', 'version', 'curr_connections', 'cmd_get', 'bytes_written']) {
      expect(names).toContain(n);
    }

    expect(mine?.get('version')).toBe(viaVersion);
    expect(mine?.get('version')).toBe(theirs?.get('version'));
    expect(mine?.get('memgate_version')).toBe('0.1.0');
    expect(mine?.get('memgate_tenant')).toBe('alpha');
  });
});

describe('clients parse a tenant’s stats', () => {
  it('pymemcache: every value one token, version as version() says, counts of this pipeline', async () => {
    const script = `
import sys
from pymemcache.client.base import Client
c = Client(('127.0.0.1', int(sys.argv[1])), connect_timeout=5, timeout=5)
before = c.stats()
assert c.set('py-stats', b'v', noreply=False)
assert c.get('py-stats') == b'v'
after = c.stats()
assert after[b'version'] == c.version(), (after[b'version'], c.version())
assert after[b'memgate_version'] == b'0.1.0', after
assert after[b'cmd_set'] - before[b'cmd_set'] == 1, (before, after)
assert after[b'get_hits'] - before[b'get_hits'] == 1, (before, after)
print('stats ok')
`;
    const r = await run('/usr/bin/python3', ['-c', script, String(env.gate.port(1))], { timeout: 30_000 });
    expect(r.stdout).toContain('stats ok');
  });

  it('libmemcached (memcstat): reads memcached’s version and memgate’s own', async () => {
    const r = await run('memcstat', [`--servers=127.0.0.1:${env.gate.port(1)}`], { timeout: 30_000 });
    const version = /^\tversion: (.*)$/m.exec(r.stdout)?.[1];
    expect(version).toMatch(/^\d+\.\d+\.\d+/);
    expect(r.stdout).toMatch(/^\tmemgate_version: 0\.1\.0$/m);
  });
});

/** What `version` answers on this connection (one token after VERSION). */
async function versionOf(c: TextClient): Promise<string> {
  c.send('version\r\n');
  const line = await c.readUntil('\r\n');
  return /^VERSION (\S+)\r\n$/.exec(line)?.[1] ?? `unexpected ${line}`;
}
