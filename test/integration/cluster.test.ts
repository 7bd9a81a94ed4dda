/**
 * memgate in front of several real memcached processes (issue #11): keys
 * placed by the ring (asked through buildRing, never assumed), multi-gets
 * across servers, a killed server, pools per tenant, reload, admin fan-out.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { hashPassword } from '../../src/policy/password.js';
import { buildRing } from '../../src/upstream/ring.js';
import { serverSpec } from '../../src/upstream/topology.js';
import { startProxy, type RunningProxy } from '../helpers/proxy.js';
import { spawnMemcached, type MemcachedProcess } from '../helpers/spawn-memcached.js';
import { readToEnd } from '../helpers/read-to-end.js';
import { TextClient } from '../helpers/text-client.js';
import { packet, storeExtras } from '../unit/protocol/binary/binary-fixtures.js';

/** Which of `servers` (addresses, in config order) the ring puts `key` on. */
/** A server as the config lists it: "host:port", or a unix socket. */
type Server = string | { path: string; port: number; weight: number };

function placeOf(servers: readonly Server[], key: string | Buffer): number {
  const ring = buildRing(
    servers.map((s) => serverSpec(s)),
    'ketama',
  );
  const k = typeof key === 'string' ? Buffer.from(key, 'latin1') : key;
  return ring.pick(k, 0, k.length);
}

/**
 * `count` keys `${prefix}${i}` that the ring over `servers` puts on server
 * `index` (and, with `also`, that the ring over `also.servers` puts on
 * `also.index`: a key that stays where it is when a server leaves).
 */
function keysOn(
  servers: readonly Server[],
  index: number,
  count: number,
  prefix: string,
  also?: { servers: readonly Server[]; index: number },
): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < count && i < 100_000; i++) {
    const k = `${prefix}${i}`;
    if (placeOf(servers, k) === index && (also === undefined || placeOf(also.servers, k) === also.index)) out.push(k);
  }
  if (out.length < count) throw new Error(`no ${count} keys on server ${index}`);
  return out;
}

async function direct(mc: MemcachedProcess): Promise<TextClient> {
  return TextClient.connect(mc.port);
}

async function getText(c: TextClient, keys: string): Promise<string> {
  return c.request(`get ${keys}\r\n`);
}

async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

function value(key: string, data: string, flags = 0): string {
  return `VALUE ${key} ${flags} ${data.length}\r\n${data}\r\n`;
}

const TENANTS = `
tenants:
  ns: { prefix: "n1:" }
  enf: { prefix: "e:", mode: enforce }
  ops: { admin: true }
`;

function clusterYaml(servers: readonly string[], upstreamExtra = '', tenants = TENANTS): string {
  return `
listen:
  - { host: 127.0.0.1, port: 0, tenant: ns }
  - { host: 127.0.0.1, port: 0, tenant: enf }
  - { host: 127.0.0.1, port: 0, tenant: ops }
upstream:
  servers: [ ${servers.map((s) => `"${s}"`).join(', ')} ]
  connectTimeoutMs: 500
  requestTimeoutMs: 3000
  backoffMinMs: 20
  backoffMaxMs: 200
${upstreamExtra}
state: { url: "\${STATE}" }
${tenants}
`;
}

describe('three memcached servers behind memgate', () => {
  const mcs: MemcachedProcess[] = [];
  let addrs: string[] = [];
  let gate: RunningProxy;
  let ns: TextClient;
  let enf: TextClient;
  let ops: TextClient;
  let raw: TextClient[] = [];

  beforeAll(async () => {
    for (let i = 0; i < 3; i++) mcs.push(await spawnMemcached());
    addrs = mcs.map((m) => m.address);
    gate = await startProxy(clusterYaml(addrs), addrs[0] ?? '');
    ns = await TextClient.connect(gate.port(0));
    enf = await TextClient.connect(gate.port(1));
    ops = await TextClient.connect(gate.port(2));
    raw = await Promise.all(mcs.map(direct));
  });

  afterAll(async () => {
    for (const c of [ns, enf, ops, ...raw]) c.close();
    await gate.stop();
    await Promise.all(mcs.map((m) => m.stop()));
  });

  it('stores an enforce tenant key unchanged on the server the ring names, and finds it again', async () => {
    const keys = Array.from({ length: 60 }, (_, i) => `e:spread${i}`);
    const used = new Set<number>();
    for (const k of keys) expect(await enf.request(`set ${k} 3 0 ${k.length}\r\n${k}\r\n`)).toBe('STORED\r\n');
    for (const k of keys) {
      const at = placeOf(addrs, k);
      used.add(at);
      for (let s = 0; s < 3; s++) {
        expect(await getText(raw[s] as TextClient, k)).toBe(s === at ? `${value(k, k, 3)}END\r\n` : 'END\r\n');
      }
      expect(await getText(enf, k)).toBe(`${value(k, k, 3)}END\r\n`);
    }
    expect(used.size).toBe(3);
  });

  it('reads keys an application wrote straight to the servers where the ring puts them (enforce and admin)', async () => {
    for (const k of [...Array.from({ length: 30 }, (_, i) => `e:app${i}`), 'plain-admin-1', 'plain-admin-2']) {
      const at = placeOf(addrs, k);
      expect(await (raw[at] as TextClient).request(`set ${k} 0 0 2\r\nok\r\n`)).toBe('STORED\r\n');
      const through = k.startsWith('e:') ? enf : ops;
      expect(await getText(through, k)).toBe(`${value(k, 'ok')}END\r\n`);
    }
  });

  it('stores an admin tenant key unchanged on the ring server', async () => {
    for (let i = 0; i < 20; i++) {
      const k = `adm${i}`;
      expect(await ops.request(`set ${k} 0 0 1\r\nx\r\n`)).toBe('STORED\r\n');
      expect(await getText(raw[placeOf(addrs, k)] as TextClient, k)).toBe(`${value(k, 'x')}END\r\n`);
    }
  });

  it('places a namespace tenant key by its namespaced bytes, and finds every one again', async () => {
    const nsBytes = gate.proxy.tenants.get('ns')?.ns;
    if (nsBytes === undefined || nsBytes === null) throw new Error('no namespace');
    const prefix = nsBytes.toString('latin1');
    const used = new Set<number>();
    for (let i = 0; i < 40; i++) {
      const k = `item${i}`;
      expect(await ns.request(`set ${k} 0 0 ${k.length}\r\n${k}\r\n`)).toBe('STORED\r\n');
      const at = placeOf(addrs, prefix + k);
      used.add(at);
      expect(await getText(raw[at] as TextClient, prefix + k)).toBe(`${value(prefix + k, k)}END\r\n`);
      expect(await getText(ns, k)).toBe(`${value(k, k)}END\r\n`);
    }
    expect(used.size).toBe(3);
  });

  it('answers a multi-get across the servers in key order, duplicates and misses included', async () => {
    const on = [0, 1, 2].map((s) => keysOn(addrs, s, 3, 'e:mg'));
    const all = [...(on[0] ?? []), ...(on[1] ?? []), ...(on[2] ?? [])];
    for (const k of all) expect(await enf.request(`set ${k} 0 0 ${k.length}\r\n${k}\r\n`)).toBe('STORED\r\n');
    // interleave servers, repeat keys, add misses
    const ask = [on[2]?.[0], on[0]?.[0], on[1]?.[0], on[2]?.[0], 'e:none', on[0]?.[1], on[1]?.[2], on[0]?.[0]].map(
      String,
    );
    const expected = ask.map((k) => (k === 'e:none' ? '' : value(k, k))).join('') + 'END\r\n';
    expect(await getText(enf, ask.join(' '))).toBe(expected);
    // gets: cas uniques come from each item's own server
    const gets = await enf.request(`gets ${ask.join(' ')}\r\n`);
    expect(gets.match(/^VALUE /gm)).toHaveLength(ask.length - 1);
    expect(gets.endsWith('END\r\n')).toBe(true);
  });

  it('keeps every set and the get of the same key in order in one pipeline spread over the servers', async () => {
    const keys = [0, 1, 2].flatMap((s) => keysOn(addrs, s, 4, 'e:pipe'));
    let send = '';
    let expected = '';
    for (let round = 0; round < 5; round++) {
      for (const k of keys) {
        const v = `${k}-${round}`;
        send += `set ${k} 0 0 ${v.length}\r\n${v}\r\nget ${k}\r\n`;
        expected += `STORED\r\n${value(k, v)}END\r\n`;
      }
    }
    expect(await enf.request(send)).toBe(expected);
  });

  it('answers a binary GETKQ run across the servers in request order, misses silent, then the NOOP', async () => {
    const keys = [0, 1, 2].flatMap((s) => keysOn(addrs, s, 2, 'e:bin'));
    for (const k of keys) expect(await enf.request(`set ${k} 0 0 ${k.length}\r\n${k}\r\n`)).toBe('STORED\r\n');
    const ask = [keys[4], 'e:binmiss', keys[0], keys[2], keys[5], keys[1], keys[3]].map(String);
    const packet = (opcode: number, key: string, opaque: number): Buffer => {
      const h = Buffer.alloc(24 + key.length);
      h[0] = 0x80;
      h[1] = opcode;
      h.writeUInt16BE(key.length, 2);
      h.writeUInt32BE(key.length, 8);
      h.writeUInt32BE(opaque, 12);
      h.write(key, 24, 'latin1');
      return h;
    };
    const c = await TextClient.connect(gate.port(1));
    try {
      c.send(Buffer.concat([...ask.map((k, i) => packet(0x0d, k, i + 1)), packet(0x0a, '', 99)]));
      const got: [number, string][] = [];
      let buf = Buffer.alloc(0);
      for (let n = 0; n < 50 && got[got.length - 1]?.[0] !== 99; n++) {
        buf = Buffer.concat([buf, await c.readBytes(24)]);
        while (buf.length >= 24 && buf.length >= 24 + buf.readUInt32BE(8)) {
          const body = buf.readUInt32BE(8);
          const keyLen = buf.readUInt16BE(2);
          const extLen = buf[4] ?? 0;
          got.push([buf.readUInt32BE(12), buf.toString('latin1', 24 + extLen, 24 + extLen + keyLen)]);
          buf = buf.subarray(24 + body);
        }
      }
      expect(got).toEqual([
        ...ask.map((k, i): [number, string] => [i + 1, k]).filter(([, k]) => k !== 'e:binmiss'),
        [99, ''],
      ]);
    } finally {
      c.close();
    }
  });

  it("sums an admin's stats over the three servers; pid and version are the first server's", async () => {
    const text = await ops.request('stats\r\n');
    const stat = (t: string, name: string): string | undefined =>
      new RegExp(`^STAT ${name} (\\S+)\\r$`, 'm').exec(t)?.[1];
    const each = await Promise.all(raw.map((c) => c.request('stats\r\n')));
    const items = each.map((t) => Number(stat(t, 'curr_items')));
    expect(Number(stat(text, 'curr_items'))).toBe(items.reduce((a, b) => a + b, 0));
    expect(Number(stat(text, 'limit_maxbytes'))).toBe(3 * Number(stat(each[0] ?? '', 'limit_maxbytes')));
    expect(stat(text, 'pid')).toBe(stat(each[0] ?? '', 'pid'));
    expect(stat(text, 'version')).toBe(stat(each[0] ?? '', 'version'));
    expect(text.endsWith('END\r\n')).toBe(true);
    // another stats group goes to the first server only
    expect(await ops.request('stats settings\r\n')).toMatch(/^STAT maxbytes /);
  });

  it("clears all three servers with an admin's flush_all", async () => {
    const keys = [0, 1, 2].map((s) => keysOn(addrs, s, 1, 'flushme')[0] ?? '');
    for (const k of keys) expect(await ops.request(`set ${k} 0 0 1\r\nz\r\n`)).toBe('STORED\r\n');
    for (let s = 0; s < 3; s++) expect(await getText(raw[s] as TextClient, keys[s] ?? '')).not.toBe('END\r\n');
    expect(await ops.request('flush_all\r\n')).toBe('OK\r\n');
    for (let s = 0; s < 3; s++) expect(await getText(raw[s] as TextClient, keys[s] ?? '')).toBe('END\r\n');
    expect(await ops.request('flush_all noreply\r\n')).toBe('');
  });
});

describe('a server that dies', () => {
  const mcs: MemcachedProcess[] = [];
  let addrs: string[] = [];

  beforeAll(async () => {
    for (let i = 0; i < 3; i++) mcs.push(await spawnMemcached());
    addrs = mcs.map((m) => m.address);
  });

  afterAll(async () => {
    await Promise.all(mcs.map((m) => m.stop()));
  });

  async function run(eject: boolean): Promise<void> {
    const extra = `  failureLimit: 2\n  retryAfterMs: 300\n  ejectHosts: ${eject}`;
    const gate = await startProxy(clusterYaml(addrs, extra), addrs[0] ?? '');
    const c = await TextClient.connect(gate.port(1));
    try {
      const tag = eject ? 'ej' : 'ne';
      const dead = keysOn(addrs, 1, 4, `e:${tag}d`);
      // keys of the other two servers that the ring over those two alone also puts there (ejectHosts rebuilds it)
      const two = [addrs[0] ?? '', addrs[2] ?? ''];
      const alive = [
        ...keysOn(addrs, 0, 3, `e:${tag}a`, { servers: two, index: 0 }),
        ...keysOn(addrs, 2, 3, `e:${tag}b`, { servers: two, index: 1 }),
      ];
      for (const k of [...dead, ...alive]) expect(await c.request(`set ${k} 0 0 1\r\nv\r\n`)).toBe('STORED\r\n');
      const mc1 = mcs[1] as MemcachedProcess;
      await mc1.kill();
      // once marked down (a few failures), its keys answer at once, well under requestTimeoutMs (3000)
      await until(async () => (await c.request(`get ${dead[0]}\r\n`, 5000)) !== `${value(dead[0] ?? '', 'v')}END\r\n`);
      await until(async () => (gate.proxy.pool.health().find((h) => h.address === addrs[1])?.down ?? false) === true);
      const started = performance.now();
      const got = await c.request(`get ${dead[1]}\r\n`);
      const tookMs = performance.now() - started;
      expect(tookMs).toBeLessThan(1500);
      if (eject) {
        // ejected: its keys now live elsewhere, and are misses until written again
        expect(got).toBe('END\r\n');
        expect(await c.request(`set ${dead[1]} 0 0 1\r\nw\r\n`)).toBe('STORED\r\n');
        expect(await getText(c, dead[1] ?? '')).toBe(`${value(dead[1] ?? '', 'w')}END\r\n`);
      } else {
        expect(got).toBe('SERVER_ERROR backend failure\r\n');
      }
      // the other servers answer as before
      for (const k of alive) expect(await getText(c, k)).toBe(`${value(k, 'v')}END\r\n`);
      // a multi-get: the down server's keys are misses, the others found, in order
      const mixed = [alive[0], dead[2], alive[3], dead[3]].map(String);
      expect(await getText(c, mixed.join(' '))).toBe(
        `${value(alive[0] ?? '', 'v')}${value(alive[3] ?? '', 'v')}END\r\n`,
      );
      const metrics = await gate.proxy.metrics.render();
      // counted when a key was refused because its server is down (ejected, its keys went elsewhere)
      if (!eject) expect(metrics).toMatch(/memgate_requests_total\{[^}]*outcome="backend_miss"[^}]*\} [1-9]/);
      expect(metrics).toMatch(new RegExp(`memgate_upstream_up\\{server="${addrs[1]}"\\} 0`));
      // back after a restart: a background probe (after retryAfterMs) brings it into use again
      await mc1.restart();
      await until(async () => (await c.request(`set ${dead[0]} 0 0 1\r\nn\r\n`)) === 'STORED\r\n');
      await until(async () => gate.proxy.pool.health().every((h) => h.up));
      expect(await c.request(`set ${dead[2]} 0 0 1\r\nr\r\n`)).toBe('STORED\r\n');
      const back = await direct(mc1);
      expect(await getText(back, dead[2] ?? '')).toBe(`${value(dead[2] ?? '', 'r')}END\r\n`);
      back.close();
    } finally {
      c.close();
      await gate.stop();
    }
  }

  it('fails its keys fast, keeps the others answering, and uses it again after a restart', async () => {
    await run(false);
  }, 40_000);

  it('with ejectHosts, moves its keys to the others until it is back', async () => {
    await run(true);
  }, 40_000);
});

describe('a server that hangs', () => {
  it('delays only the requests that touch it; the other servers answer at once', async () => {
    const mcs = await Promise.all([spawnMemcached(), spawnMemcached(), spawnMemcached()]);
    const addrs = mcs.map((m) => m.address);
    const gate = await startProxy(
      clusterYaml(addrs).replace('requestTimeoutMs: 3000', 'requestTimeoutMs: 15000'),
      addrs[0] ?? '',
    );
    const stuck = await TextClient.connect(gate.port(1));
    const other = await TextClient.connect(gate.port(1));
    try {
      const hung = keysOn(addrs, 1, 1, 'e:hung')[0] ?? '';
      const fine = [...keysOn(addrs, 0, 3, 'e:fine'), ...keysOn(addrs, 2, 3, 'e:fine')];
      for (const k of fine) expect(await other.request(`set ${k} 0 0 1\r\nf\r\n`)).toBe('STORED\r\n');
      await (mcs[1] as MemcachedProcess).pause();
      // a pipeline of the hung server's key fills its connections' queues
      for (let i = 0; i < 20; i++) stuck.send(`get ${hung}\r\n`);
      for (const k of fine) {
        const started = performance.now();
        expect(await getText(other, k)).toBe(`${value(k, 'f')}END\r\n`);
        // requestTimeoutMs is 15000: an answer that waited on the hung server would take that long
        expect(performance.now() - started).toBeLessThan(5000);
      }
      (mcs[1] as MemcachedProcess).child.kill('SIGCONT');
      // the hung server's own requests end (answered, or failed by the timeout), and the stream stays in sync
      expect(await stuck.request('mn\r\n', 10_000)).toMatch(/MN\r\n$/);
    } finally {
      (mcs[1] as MemcachedProcess).child.kill('SIGCONT');
      stuck.close();
      other.close();
      await gate.stop();
      await Promise.all(mcs.map((m) => m.stop()));
    }
  }, 30_000);
});

describe('a server on a unix socket', () => {
  it('shares a pool with a TCP server; its keys are stored on it', async () => {
    const sockDir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgate-unix-'));
    const sock = path.join(sockDir, 'mc.sock');
    const args = ['-U', '0', '-s', sock, '-m', '16', ...(process.getuid?.() === 0 ? ['-u', 'root'] : [])];
    const child = spawn(process.env.MEMCACHED_BIN ?? 'memcached', args, { stdio: 'ignore' });
    const tcp = await spawnMemcached();
    try {
      await until(() => fs.existsSync(sock), 5000);
      const servers: Server[] = [tcp.address, { path: sock, port: 0, weight: 1 }];
      const gate = await startProxy(
        clusterYaml([tcp.address]).replace(`[ "${tcp.address}" ]`, `[ "${tcp.address}", { path: "${sock}" } ]`),
        tcp.address,
      );
      const c = await TextClient.connect(gate.port(1));
      try {
        const onUnix = keysOn(servers, 1, 5, 'e:unix');
        for (const k of onUnix) expect(await c.request(`set ${k} 0 0 1\r\nu\r\n`)).toBe('STORED\r\n');
        for (const k of onUnix) expect(await getText(c, k)).toBe(`${value(k, 'u')}END\r\n`);
        const stats = await readToEnd((ready) => net.connect({ path: sock }, ready), 'stats\r\n');
        expect(Number(/^STAT curr_items (\d+)\r$/m.exec(stats)?.[1])).toBe(5);
        expect(gate.proxy.pool.health().map((h) => h.address)).toEqual([tcp.address, sock]);
      } finally {
        c.close();
        await gate.stop();
      }
    } finally {
      child.kill('SIGTERM');
      await tcp.stop();
    }
  });
});

describe('/readyz', () => {
  it('lists every server and is ready only while every pool has one up', async () => {
    const mcs = await Promise.all([spawnMemcached(), spawnMemcached()]);
    const [a, b] = mcs.map((m) => m.address);
    const gate = await startProxy(
      `
listen:
  - { host: 127.0.0.1, port: 0, tenant: t }
upstream:
  servers: [ "${a}" ]
  backoffMinMs: 20
  backoffMaxMs: 100
  failureLimit: 1
  pools:
    other: { servers: [ "${b}" ] }
admin: { host: 127.0.0.1, port: 0 }
state: { url: "\${STATE}" }
tenants:
  t: { prefix: "t:" }
`,
      a ?? '',
    );
    const readyz = async (): Promise<{
      status: number;
      body: { servers: { server: string; pool: string; up: boolean }[] };
    }> => {
      const res = await fetch(`http://127.0.0.1:${gate.proxy.adminAddress()?.port ?? 0}/readyz`);
      return {
        status: res.status,
        body: (await res.json()) as { servers: { server: string; pool: string; up: boolean }[] },
      };
    };
    try {
      await until(async () => (await readyz()).status === 200);
      expect((await readyz()).body.servers).toEqual([
        { server: a, pool: 'default', up: true },
        { server: b, pool: 'other', up: true },
      ]);
      await (mcs[1] as MemcachedProcess).kill();
      await until(async () => (await readyz()).status === 503);
      expect((await readyz()).body.servers).toEqual([
        { server: a, pool: 'default', up: true },
        { server: b, pool: 'other', up: false },
      ]);
      await (mcs[1] as MemcachedProcess).restart();
      await until(async () => (await readyz()).status === 200);
    } finally {
      await gate.stop();
      await Promise.all(mcs.map((m) => m.stop()));
    }
  }, 30_000);
});

describe('pools per tenant', () => {
  it('never lets two tenants on different pools share a server', async () => {
    const mcs = await Promise.all([spawnMemcached(), spawnMemcached(), spawnMemcached()]);
    const [a0, a1, b0] = mcs.map((m) => m.address);
    const gate = await startProxy(
      `
listen:
  - { host: 127.0.0.1, port: 0, tenant: left }
  - { host: 127.0.0.1, port: 0, tenant: right }
upstream:
  servers: [ "${a0}", "${a1}" ]
  pools:
    solo: { servers: [ "${b0}" ] }
admin: { host: 127.0.0.1, port: 0 }
state: { url: "\${STATE}" }
tenants:
  left: { prefix: "L:" }
  right: { prefix: "R:", pool: solo }
`,
      a0 ?? '',
    );
    const left = await TextClient.connect(gate.port(0));
    const right = await TextClient.connect(gate.port(1));
    const raw = await Promise.all(mcs.map(direct));
    try {
      for (let i = 0; i < 30; i++) {
        expect(await left.request(`set l${i} 0 0 1\r\nl\r\n`)).toBe('STORED\r\n');
        expect(await right.request(`set r${i} 0 0 1\r\nr\r\n`)).toBe('STORED\r\n');
      }
      const items = await Promise.all(
        raw.map(async (c) => Number(/^STAT curr_items (\d+)\r$/m.exec(await c.request('stats\r\n'))?.[1])),
      );
      expect((items[0] ?? 0) + (items[1] ?? 0)).toBe(30);
      expect(items[2]).toBe(30);
      // the items on the solo server are all the right tenant's (its namespace), none of the left's
      const rightNs = gate.proxy.tenants.get('right')?.ns?.toString('latin1') ?? '';
      const leftNs = gate.proxy.tenants.get('left')?.ns?.toString('latin1') ?? '';
      for (let i = 0; i < 30; i++) {
        expect(await getText(raw[2] as TextClient, `${rightNs}r${i}`)).toBe(`${value(`${rightNs}r${i}`, 'r')}END\r\n`);
        expect(await getText(raw[2] as TextClient, `${leftNs}l${i}`)).toBe('END\r\n');
      }
      const tenants = (await fetchTenants(gate)).map((t) => [t.name, t.pool]);
      expect(tenants).toEqual(
        expect.arrayContaining([
          ['left', 'default'],
          ['right', 'solo'],
        ]),
      );
    } finally {
      for (const c of [left, right, ...raw]) c.close();
      await gate.stop();
      await Promise.all(mcs.map((m) => m.stop()));
    }
  });
});

async function fetchTenants(gate: RunningProxy): Promise<{ name: string; pool: string }[]> {
  const a = gate.proxy.adminAddress();
  if (a === null) throw new Error('no admin listener');
  const res = await fetch(`http://127.0.0.1:${a.port}/tenants`);
  return ((await res.json()) as { tenants: { name: string; pool: string }[] }).tenants;
}

describe('a connection that authenticates again as a tenant of another pool', () => {
  it("sends the new tenant's requests to its own pool at once, even with the old tenant's still in flight", async () => {
    const [ma, mb] = await Promise.all([spawnMemcached(), spawnMemcached()]);
    if (ma === undefined || mb === undefined) throw new Error('no memcached');
    const [ha, hb] = await Promise.all([hashPassword('a-secret'), hashPassword('b-secret')]);
    const gate = await startProxy(
      `
listen:
  - { host: 127.0.0.1, port: 0 }
upstream:
  servers: [ "${ma.address}" ]
  requestTimeoutMs: 10000
  pools:
    bpool: { servers: [ "${mb.address}" ] }
state: { url: "\${STATE}" }
tenants:
  ta: { prefix: "A:", password: "${ha}" }
  tb: { prefix: "B:", password: "${hb}", pool: bpool }
`,
      ma.address,
    );
    const c = await TextClient.connect(gate.port(0));
    const rawA = await direct(ma);
    const rawB = await direct(mb);
    const auth = (user: string, pass: string, opaque: number) =>
      packet({ opcode: 0x21, key: 'PLAIN', value: `\0${user}\0${pass}`, opaque });
    const set = (key: string, v: string, opaque: number) =>
      packet({ opcode: 0x01, key, extras: storeExtras(0, 0), value: v, opaque });
    try {
      c.send(Buffer.concat([auth('ta', 'a-secret', 1), set('k', 'from-a', 2)]));
      await c.readBytes(48, 10_000);
      await ma.pause();
      // the old tenant's get waits on its stopped server while the new tenant authenticates and writes
      c.send(
        Buffer.concat([
          packet({ opcode: 0x00, key: 'k', opaque: 3 }),
          auth('tb', 'b-secret', 4),
          set('k', 'from-b', 5),
        ]),
      );
      const bNs = () => gate.proxy.tenants.get('tb')?.ns?.toString('latin1') ?? '';
      await until(async () => (await getText(rawB, `${bNs()}k`)).includes('from-b'), 10_000);
      ma.child.kill('SIGCONT');
      const aNs = gate.proxy.tenants.get('ta')?.ns?.toString('latin1') ?? '';
      expect(await getText(rawA, `${aNs}k`)).toContain('from-a');
      expect(await getText(rawA, `${bNs()}k`)).toBe('END\r\n');
    } finally {
      ma.child.kill('SIGCONT');
      for (const x of [c, rawA, rawB]) x.close();
      await gate.stop();
      await Promise.all([ma.stop(), mb.stop()]);
    }
  }, 30_000);
});

describe('a config reload', () => {
  it('adding a server keeps an open client connection working, and its new keys reach the new server', async () => {
    const mcs = await Promise.all([spawnMemcached(), spawnMemcached(), spawnMemcached()]);
    const addrs = mcs.map((m) => m.address);
    const two = addrs.slice(0, 2);
    const gate = await startProxy(clusterYaml(two), addrs[0] ?? '');
    const c = await TextClient.connect(gate.port(1));
    const raw = await Promise.all(mcs.map(direct));
    try {
      expect(await c.request('set e:before 0 0 1\r\nb\r\n')).toBe('STORED\r\n');
      const text = clusterYaml(addrs).replaceAll('${STATE}', `file:${gate.statePath}`);
      const result = await gate.proxy.reload(parseConfigText(text, 'reload.yaml', {}));
      expect(result.ok).toBe(true);
      const onNew = keysOn(addrs, 2, 5, 'e:after');
      for (const k of onNew) {
        expect(await c.request(`set ${k} 0 0 1\r\na\r\n`)).toBe('STORED\r\n');
        expect(await getText(raw[2] as TextClient, k)).toBe(`${value(k, 'a')}END\r\n`);
        expect(await getText(c, k)).toBe(`${value(k, 'a')}END\r\n`);
      }
      expect(c.closed).toBe(false);
      await until(() => gate.proxy.pool.health().length === 3 && gate.proxy.pool.isReady());
      // the old cluster closes once unused: memgate keeps connectionsPerServer (2) sockets to a server, not 4
      const conns = async () =>
        Number(/^STAT curr_connections (\d+)\r$/m.exec(await (raw[0] as TextClient).request('stats\r\n'))?.[1]);
      await until(async () => (await conns()) <= 2 + 1 + 1, 10_000); // memgate's 2, this client, memcached's listener
    } finally {
      for (const x of [c, ...raw]) x.close();
      await gate.stop();
      await Promise.all(mcs.map((m) => m.stop()));
    }
  });

  it("moves a tenant whose pool changed to the new pool's servers, on the same connection", async () => {
    const mcs = await Promise.all([spawnMemcached(), spawnMemcached()]);
    const [a, b] = mcs.map((m) => m.address);
    const yaml = (pool: string) => `
listen:
  - { host: 127.0.0.1, port: 0, tenant: enf }
upstream:
  servers: [ "${a}" ]
  pools:
    other: { servers: [ "${b}" ] }
state: { url: "\${STATE}" }
tenants:
  enf: { prefix: "e:", mode: enforce, pool: ${pool} }
`;
    const gate = await startProxy(yaml('default'), a ?? '');
    const c = await TextClient.connect(gate.port(0));
    const raw = await Promise.all(mcs.map(direct));
    try {
      expect(await c.request('set e:one 0 0 1\r\n1\r\n')).toBe('STORED\r\n');
      expect(await getText(raw[0] as TextClient, 'e:one')).toBe(`${value('e:one', '1')}END\r\n`);
      const next = parseConfigText(yaml('other').replaceAll('${STATE}', `file:${gate.statePath}`), 'reload.yaml', {});
      expect((await gate.proxy.reload(next)).ok).toBe(true);
      expect(await c.request('set e:two 0 0 1\r\n2\r\n')).toBe('STORED\r\n');
      expect(await getText(raw[1] as TextClient, 'e:two')).toBe(`${value('e:two', '2')}END\r\n`);
      expect(await getText(raw[0] as TextClient, 'e:two')).toBe('END\r\n');
      expect(c.closed).toBe(false);
    } finally {
      for (const x of [c, ...raw]) x.close();
      await gate.stop();
      await Promise.all(mcs.map((m) => m.stop()));
    }
  });
});
