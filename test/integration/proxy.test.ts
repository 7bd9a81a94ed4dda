/**
 * memgate in front of a real memcached: tenants, namespaces, denials,
 * ordering, noreply, oversize input, upstream failure and recovery.
 */
import { describe, expect, it } from 'vitest';
import { spawnMemcached } from '../helpers/spawn-memcached.js';
import { TWO_TENANTS_YAML } from '../helpers/proxy.js';
import { TextClient } from '../helpers/text-client.js';
import { useMemcachedAndProxy } from '../helpers/memcached-and-proxy.js';

const ALPHA = 0;
const BETA = 1;
const OPS = 2;
const GAMMA = 3;

const env = useMemcachedAndProxy(TWO_TENANTS_YAML);

async function client(listener: number): Promise<TextClient> {
  return TextClient.connect(env.gate.port(listener));
}

async function direct(): Promise<TextClient> {
  return TextClient.connect(env.mc.port);
}

describe('tenants and namespaces', () => {
  it('keeps two tenants from seeing each other’s keys', async () => {
    const a = await client(ALPHA);
    const b = await client(BETA);
    expect(await a.request('set shared 5 0 5\r\nalpha\r\n')).toBe('STORED\r\n');
    expect(await b.request('get shared\r\n')).toBe('END\r\n');
    expect(await b.request('set shared 6 0 4\r\nbeta\r\n')).toBe('STORED\r\n');
    expect(await a.request('get shared\r\n')).toBe('VALUE shared 5 5\r\nalpha\r\nEND\r\n');
    expect(await b.request('get shared\r\n')).toBe('VALUE shared 6 4\r\nbeta\r\nEND\r\n');
    a.close();
    b.close();
  });

  it('stores only namespaced keys upstream', async () => {
    const a = await client(ALPHA);
    expect(await a.request('set plain-key 0 0 1\r\nx\r\n')).toBe('STORED\r\n');
    const d = await direct();
    expect(await d.request('get plain-key\r\n')).toBe('END\r\n');
    const dump = await d.request('lru_crawler metadump all\r\n', 20_000);
    const keys = [...dump.matchAll(/key=(\S+)/g)].map((m) => decodeURIComponent(m[1] ?? ''));
    expect(keys.length).toBeGreaterThan(0);
    for (const k of keys) expect(k.startsWith('a7Zk2:') || k.startsWith('b9Qx1:') || k.startsWith('gamma')).toBe(true);
    expect(keys.some((k) => /^a7Zk2:[0-9A-Za-z]{8}plain-key$/.test(k))).toBe(true);
    a.close();
    d.close();
  });

  it('strips the namespace from multi-get, gets, gat and meta replies', async () => {
    const a = await client(ALPHA);
    await a.request('set k1 1 0 2\r\nv1\r\nset k2 2 0 2\r\nv2\r\n');
    expect(await a.request('get k1 nope k2\r\n')).toBe('VALUE k1 1 2\r\nv1\r\nVALUE k2 2 2\r\nv2\r\nEND\r\n');
    expect(await a.request('gets k1\r\n')).toMatch(/^VALUE k1 1 2 \d+\r\nv1\r\nEND\r\n$/);
    expect(await a.request('gat 100 k2\r\n')).toBe('VALUE k2 2 2\r\nv2\r\nEND\r\n');
    expect(await a.request('mg k1 k v f\r\n')).toBe('VA 2 kk1 f1\r\nv1\r\n');
    expect(await a.request('mg missing k\r\n')).toBe('EN kmissing\r\n');
    expect(await a.request('ms metakey 3 T0 F7\r\nabc\r\n')).toBe('HD\r\n');
    expect(await a.request('mg metakey v f\r\n')).toBe('VA 3 f7\r\nabc\r\n');
    expect(await a.request('me k1\r\n')).toMatch(/^ME k1 exp=/);
    expect(await a.request('ma counter N0 J10 v\r\n')).toBe('VA 2\r\n10\r\n');
    expect(await a.request('md counter q\r\nmn\r\n')).toBe('MN\r\n');
    // base64 key: "b64key" is YjY0a2V5
    expect(await a.request('ms YjY0a2V5 2 b\r\nhi\r\n')).toBe('HD\r\n');
    expect(await a.request('mg YjY0a2V5 b k v\r\n')).toBe('VA 2 kYjY0a2V5 b\r\nhi\r\n');
    expect(await a.request('get b64key\r\n')).toBe('VALUE b64key 0 2\r\nhi\r\nEND\r\n');
    a.close();
  });

  it('runs incr, decr, touch, delete, cas, append and prepend in the tenant namespace', async () => {
    const a = await client(ALPHA);
    expect(await a.request('set n 0 0 1\r\n5\r\n')).toBe('STORED\r\n');
    expect(await a.request('incr n 18446744073709551610\r\n')).toBe('18446744073709551615\r\n');
    expect(await a.request('decr n 15\r\n')).toBe('18446744073709551600\r\n');
    expect(await a.request('touch n 100\r\n')).toBe('TOUCHED\r\n');
    expect(await a.request('append n 0 0 1\r\nx\r\nprepend n 0 0 1\r\ny\r\n')).toBe('STORED\r\nSTORED\r\n');
    const gets = await a.request('gets n\r\n');
    const cas = /VALUE n 0 \d+ (\d+)/.exec(gets)?.[1];
    expect(cas).toBeDefined();
    expect(await a.request(`cas n 0 0 1 ${cas}\r\nz\r\n`)).toBe('STORED\r\n');
    expect(await a.request(`cas n 0 0 1 ${cas}\r\nw\r\n`)).toBe('EXISTS\r\n');
    expect(await a.request('delete n\r\ndelete n\r\n')).toBe('DELETED\r\nNOT_FOUND\r\n');
    a.close();
  });

  it('enforce mode passes keys with an allowed prefix unchanged and refuses others', async () => {
    const g = await client(GAMMA);
    expect(await g.request('set gamma:one 0 0 1\r\n1\r\n')).toBe('STORED\r\n');
    expect(await g.request('set other 0 0 1\r\n1\r\n')).toBe('CLIENT_ERROR access denied\r\n');
    expect(await g.request('get gamma:one g2:x other\r\n')).toBe('CLIENT_ERROR access denied\r\n');
    const d = await direct();
    expect(await d.request('get gamma:one\r\n')).toBe('VALUE gamma:one 0 1\r\n1\r\nEND\r\n');
    g.close();
    d.close();
  });

  it('lets an admin tenant run everything, forwarded unchanged', async () => {
    const o = await client(OPS);
    expect(await o.request('set opskey 0 0 2\r\nok\r\n')).toBe('STORED\r\n');
    const d = await direct();
    expect(await d.request('get opskey\r\n')).toBe('VALUE opskey 0 2\r\nok\r\nEND\r\n');
    expect(await o.request('stats settings\r\n')).toMatch(/^STAT maxbytes \d+/);
    expect(await o.request('verbosity 0\r\n')).toBe('OK\r\n');
    o.close();
    d.close();
  });
});

describe('denied commands', () => {
  const denied: [string, string][] = [
    ['stats detail on\r\n', 'CLIENT_ERROR stats detail not allowed\r\n'],
    ['stats cachedump 1 100\r\n', 'CLIENT_ERROR stats cachedump not allowed\r\n'],
    ['stats conns\r\n', 'CLIENT_ERROR stats conns not allowed\r\n'],
    ['stats reset\r\n', 'CLIENT_ERROR stats reset not allowed\r\n'],
    ['stats sizes\r\n', 'CLIENT_ERROR stats sizes not allowed\r\n'],
    ['stats slabs\r\n', 'CLIENT_ERROR stats slabs not allowed\r\n'],
    ['stats items\r\n', 'CLIENT_ERROR stats items not allowed\r\n'],
    ['stats settings\r\n', 'CLIENT_ERROR stats settings not allowed\r\n'],
    ['stats nonsense\r\n', 'ERROR\r\n'],
    ['lru_crawler metadump all\r\n', 'CLIENT_ERROR lru_crawler not allowed\r\n'],
    ['lru_crawler mgdump hash\r\n', 'CLIENT_ERROR lru_crawler not allowed\r\n'],
    ['watch fetchers\r\n', 'CLIENT_ERROR watch not allowed\r\n'],
    ['shutdown\r\n', 'CLIENT_ERROR shutdown not allowed\r\n'],
    ['slabs automove 1\r\n', 'CLIENT_ERROR slabs not allowed\r\n'],
    ['lru mode flat\r\n', 'CLIENT_ERROR lru not allowed\r\n'],
    ['cache_memlimit 10\r\n', 'CLIENT_ERROR cache_memlimit not allowed\r\n'],
    ['misbehave\r\n', 'CLIENT_ERROR misbehave not allowed\r\n'],
    ['debugtime 10\r\n', 'CLIENT_ERROR debugtime not allowed\r\n'],
    ['extstore compact\r\n', 'CLIENT_ERROR extstore not allowed\r\n'],
    ['frobnicate\r\n', 'ERROR\r\n'],
  ];
  it.each(denied)('answers %j with %j and the connection goes on working', async (cmd, reply) => {
    const a = await client(ALPHA);
    expect(await a.request(cmd)).toBe(reply);
    expect(await a.request('set after 0 0 2\r\nok\r\nget after\r\n')).toBe(
      'STORED\r\nVALUE after 0 2\r\nok\r\nEND\r\n',
    );
    a.close();
  });

  it('answers verbosity OK without forwarding it', async () => {
    const a = await client(ALPHA);
    expect(await a.request('verbosity 3\r\n')).toBe('OK\r\n');
    expect(await a.request('verbosity 3 noreply\r\n')).toBe('');
    const d = await direct();
    expect(await d.request('stats settings\r\n')).toMatch(/STAT verbosity 0\r\n/);
    a.close();
    d.close();
  });

  it('answers a tenant’s plain stats from its own counters', async () => {
    const b = await client(BETA);
    const before = await b.request('stats\r\n');
    const hits = Number(/STAT get_hits (\d+)/.exec(before)?.[1]);
    await b.request('set statkey 0 0 1\r\n1\r\nget statkey statmiss\r\n');
    const after = await b.request('stats\r\n');
    expect(after).toMatch(/^STAT pid \d+\r\n/);
    expect(after).toMatch(/END\r\n$/);
    expect(Number(/STAT get_hits (\d+)/.exec(after)?.[1])).toBe(hits + 1);
    expect(after).toMatch(/STAT memgate_tenant beta\r\n/);
    expect(after).not.toMatch(/STAT limit_maxbytes/);
    b.close();
  });
});

describe('framing', () => {
  it('takes a 250-byte key once namespaced (digested upstream), and stays in sync', async () => {
    const a = await client(ALPHA);
    // 250 bytes is a valid memcached key; namespaced it is stored as namespace + digest
    const key = 'k'.repeat(250);
    expect(await a.request(`get ${key}\r\n`)).toBe('END\r\n');
    expect(await a.request(`set ${key} 0 0 9\r\nflush_all\r\nget ${key}\r\n`)).toBe(
      `STORED\r\nVALUE ${key} 0 9\r\nflush_all\r\nEND\r\n`,
    );
    const fits = 'k'.repeat(250 - 'a7Zk2:'.length - 8);
    expect(await a.request(`set ${fits} 0 0 1\r\n1\r\nget ${fits}\r\n`)).toBe(
      `STORED\r\nVALUE ${fits} 0 1\r\n1\r\nEND\r\n`,
    );
    a.close();
  });

  it('swallows the value of a set with a 251-byte key instead of running it', async () => {
    const a = await client(ALPHA);
    await a.request('set survivor 0 0 1\r\n1\r\n');
    const key = 'x'.repeat(251);
    expect(await a.request(`set ${key} 0 0 11\r\nflush_all\r\n\r\n`)).toBe('CLIENT_ERROR bad command line format\r\n');
    expect(await a.request('get survivor\r\n')).toBe('VALUE survivor 0 1\r\n1\r\nEND\r\n');
    a.close();
  });

  it('refuses a value over the item size limit, swallowing it, and stays in sync', async () => {
    const a = await client(ALPHA);
    const big = Buffer.alloc(2 * 1024 * 1024, 0x61);
    a.send(`set big 0 0 ${big.length}\r\n`);
    a.send(big);
    expect(await a.request('\r\n')).toBe('SERVER_ERROR object too large for cache\r\n');
    expect(await a.request('get big\r\n')).toBe('END\r\n');
    a.close();
  });

  it('closes the connection when a data length cannot be read', async () => {
    const a = await client(ALPHA);
    a.send('set k 0 0 -1\r\n');
    expect(await a.readUntil('\r\n')).toBe('CLIENT_ERROR bad command line format\r\n');
    await a.waitClosed();
  });

  it('answers each request of a pipeline in order, mixing local and upstream replies', async () => {
    const a = await client(ALPHA);
    const out = await a.request(
      'set p1 0 0 1\r\n1\r\nstats cachedump 1 1\r\nget p1\r\nbogus\r\nverbosity 1\r\nincr p1 1\r\nshutdown\r\nmn\r\n',
    );
    expect(out).toBe(
      'STORED\r\nCLIENT_ERROR stats cachedump not allowed\r\nVALUE p1 0 1\r\n1\r\nEND\r\nERROR\r\nOK\r\n2\r\nCLIENT_ERROR shutdown not allowed\r\nMN\r\n',
    );
    a.close();
  });

  it('closes after quit, once earlier replies are written', async () => {
    const a = await client(ALPHA);
    a.send('set q 0 0 1\r\n1\r\nget q\r\nquit\r\nget q\r\n');
    await a.waitClosed();
    expect(a.take().toString('latin1')).toBe('STORED\r\nVALUE q 0 1\r\n1\r\nEND\r\n');
  });

  it('answers everything a client sent before it shut down its sending side (printf … | nc), then closes', async () => {
    for (const reader of [ALPHA, OPS]) {
      const a = await client(reader);
      a.send('set hc 3 0 2\r\nhi\r\nget hc\r\ngets nope\r\nversion\r\nget hc nope\r\n');
      a.endInput();
      await a.waitClosed();
      expect(a.take().toString('latin1')).toMatch(
        /^STORED\r\nVALUE hc 3 2\r\nhi\r\nEND\r\nEND\r\nVERSION \S+\r\nVALUE hc 3 2\r\nhi\r\nEND\r\n$/,
      );
    }
  });
});

describe('noreply, differential against memcached', () => {
  /** A deterministic pipelined mix of 1,000 commands, many with noreply. */
  function mix(): string {
    // mulberry32: a small deterministic PRNG with usable low bits
    let seed = 42;
    const rnd = (n: number): number => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    const parts: string[] = [];
    for (let i = 0; i < 1000; i++) {
      const key = `dk${rnd(40)}`;
      const nr = rnd(2) === 0 ? ' noreply' : '';
      const val = `v${rnd(1000)}`;
      switch (rnd(12)) {
        case 0:
          parts.push(`set ${key} ${rnd(100)} 0 ${val.length}${nr}\r\n${val}\r\n`);
          break;
        case 1:
          parts.push(`add ${key} 0 0 ${val.length}${nr}\r\n${val}\r\n`);
          break;
        case 2:
          parts.push(`replace ${key} 0 0 ${val.length}${nr}\r\n${val}\r\n`);
          break;
        case 3:
          parts.push(`append ${key} 0 0 ${val.length}${nr}\r\n${val}\r\n`);
          break;
        case 4:
          parts.push(`prepend ${key} 0 0 ${val.length}${nr}\r\n${val}\r\n`);
          break;
        case 5:
          parts.push(`delete ${key}${nr}\r\n`);
          break;
        case 6:
          parts.push(`touch ${key} 1000${nr}\r\n`);
          break;
        case 7:
          parts.push(`get ${key} dk${rnd(40)} dk${rnd(40)}\r\n`);
          break;
        case 8:
          parts.push(`set num${rnd(5)} 0 0 2${nr}\r\n${10 + rnd(80)}\r\n`);
          break;
        case 9:
          parts.push(`incr num${rnd(5)} ${rnd(100)}\r\n`);
          break;
        case 10:
          parts.push(`decr num${rnd(5)} ${rnd(100)}\r\n`);
          break;
        default:
          parts.push(`mg ${key} v f k\r\n`);
      }
    }
    parts.push('mn\r\n');
    return parts.join('');
  }

  it('gives exactly the replies memcached gives for the same pipelined stream', async () => {
    const fresh = await spawnMemcached();
    try {
      const stream = mix();
      const d = await TextClient.connect(fresh.port);
      d.send(stream);
      const expected = await d.readUntil('MN\r\n', 20_000);
      d.close();
      const b = await client(BETA);
      // start beta's keys from nothing: these keys are private to this test
      b.send(stream);
      const got = await b.readUntil('MN\r\n', 20_000);
      b.close();
      expect(got.length).toBeGreaterThan(1000);
      expect(got).toBe(expected);
    } finally {
      await fresh.stop();
    }
  });
});

describe('upstream failure', () => {
  it('answers SERVER_ERROR backend failure while memcached is down, then recovers', async () => {
    const a = await client(ALPHA);
    expect(await a.request('set before 0 0 1\r\n1\r\n')).toBe('STORED\r\n');
    await env.mc.kill();
    a.send('get before\r\n');
    expect(await a.readUntil('\r\n', 3000)).toBe('SERVER_ERROR backend failure\r\n');
    await env.mc.restart();
    const deadline = Date.now() + 10_000;
    let reply = '';
    while (Date.now() < deadline) {
      a.send('set after 0 0 1\r\n2\r\n');
      reply = await a.readUntil('\r\n', 3000);
      if (reply === 'STORED\r\n') break;
      expect(reply).toBe('SERVER_ERROR backend failure\r\n');
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(reply).toBe('STORED\r\n');
    expect(await a.request('get after\r\n')).toBe('VALUE after 0 1\r\n2\r\nEND\r\n');
    a.close();
  });
});
