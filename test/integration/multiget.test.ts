/**
 * Multi-key gets in front of a real memcached: memcached's line limits on the
 * shared socket, read amplification against the per-session reply bound,
 * large multi-gets answered in order, and the burst / maxKeysPerGet rules.
 */
import fc from 'fast-check';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnMemcached, type MemcachedProcess } from '../helpers/spawn-memcached.js';
import { startProxy, type RunningProxy } from '../helpers/proxy.js';
import { TextClient } from '../helpers/text-client.js';

let mc: MemcachedProcess;
let gate: RunningProxy;
const MG = 0;
const OTHER = 1;
const BURST = 2;
const OPS = 3;

beforeAll(async () => {
  mc = await spawnMemcached();
  gate = await startProxy(
    `
listen:
  - { host: 127.0.0.1, port: 0, tenant: mg }
  - { host: 127.0.0.1, port: 0, tenant: other }
  - { host: 127.0.0.1, port: 0, tenant: burst }
  - { host: 127.0.0.1, port: 0, tenant: ops }
upstream:
  servers: [ "\${UPSTREAM}" ]
  connectionsPerServer: 1
  requestTimeoutMs: 2000
state: { url: "\${STATE}" }
tenants:
  mg: { prefix: "mgt:" }
  other: { prefix: "oth:" }
  burst: { prefix: "bu:", limits: { opsPerSecond: 50, burst: 50 } }
  ops: { admin: true }
`,
    mc.address,
  );
});

afterAll(async () => {
  await gate?.stop();
  await mc?.stop();
});

async function memcachedStat(name: string): Promise<number> {
  const d = await TextClient.connect(mc.port);
  const stats = await d.request('stats\r\n');
  d.close();
  const m = new RegExp(`STAT ${name} (\\d+)`).exec(stats);
  return Number(m?.[1] ?? -1);
}

/** memcached's own count of connections ever accepted (a reset upstream socket is replaced by a new one). */
function upstreamConnectionsOpened(): Promise<number> {
  return memcachedStat('total_connections');
}

/** Bytes memcached has written to all its connections: what memgate asked for. */
function upstreamBytesWritten(): Promise<number> {
  return memcachedStat('bytes_written');
}

/** Sets `key` to `value` through the tenant on `port`. */
async function setAll(port: number, items: readonly (readonly [string, string])[]): Promise<void> {
  const c = await TextClient.connect(port);
  const out = await c.request(items.map(([k, v]) => `set ${k} 0 0 ${v.length}\r\n${v}\r\n`).join(''), 20_000);
  expect(out).toBe('STORED\r\n'.repeat(items.length));
  c.close();
}

function valueBlock(key: string, value: string, cas?: string): string {
  return `VALUE ${key} 0 ${value.length}${cas === undefined ? '' : ` ${cas}`}\r\n${value}\r\n`;
}

describe("memcached's line limits on the shared socket", () => {
  it('answers a gat line of 20 KB (memcached closes non-get lines past 2048 bytes) without resetting the upstream socket', async () => {
    const keys = Array.from({ length: 100 }, (_, i) => `gat${String(i).padStart(3, '0')}${'k'.repeat(190)}`);
    await setAll(
      gate.port(MG),
      keys.filter((_, i) => i % 3 === 0).map((k, i) => [k, `v${i}`]),
    );
    const opened = await upstreamConnectionsOpened();
    const c = await TextClient.connect(gate.port(MG));
    const line = `gat 100 ${keys.join(' ')}\r\n`;
    expect(line.length).toBeGreaterThan(16 * 1024);
    const expected = keys.map((k, i) => (i % 3 === 0 ? valueBlock(k, `v${i / 3}`) : '')).join('');
    expect(await c.request(line + 'get nothing\r\n')).toBe(`${expected}END\r\nEND\r\n`);
    // gats too, with each key's cas
    const gats = await c.request(`gats 100 ${keys.slice(0, 4).join(' ')}\r\n`);
    expect(gats).toMatch(
      new RegExp(`^VALUE ${keys[0]} 0 2 \\d+\\r\\nv0\\r\\nVALUE ${keys[3]} 0 2 \\d+\\r\\nv1\\r\\nEND\\r\\n$`),
    );
    c.close();
    expect(await upstreamConnectionsOpened()).toBe(opened + 1); // only our own stats connection
  });

  it('closes a client whose stats line passes 2048 bytes, as memcached would, and never forwards it', async () => {
    const opened = await upstreamConnectionsOpened();
    const c = await TextClient.connect(gate.port(OPS));
    const o = await TextClient.connect(gate.port(OTHER));
    expect(await c.request('mn\r\n')).toBe('MN\r\n');
    c.send(`stats ${'x'.repeat(20_000)}\r\n`);
    await c.waitClosed();
    expect(c.take().toString('latin1')).toBe('CLIENT_ERROR line too long\r\n');
    expect(await o.request('get k\r\n')).toBe('END\r\n');
    o.close();
    expect(await upstreamConnectionsOpened()).toBe(opened + 1);
  });
});

describe('large multi-gets', () => {
  it('answers a 10,000-key get (a 90 KB line) in client order, with repeated keys', async () => {
    const keys = Array.from({ length: 9_997 }, (_, i) => `key:${String(i).padStart(4, '0')}`);
    const stored = keys.filter((_, i) => i % 97 === 0);
    await setAll(
      gate.port(MG),
      stored.map((k) => [k, `val-${k}`]),
    );
    const asked = [...keys];
    asked.splice(5000, 0, stored[0] ?? '', stored[3] ?? '', stored[0] ?? ''); // repeats, answered each time
    const line = `get ${asked.join(' ')}\r\n`;
    expect(line.length).toBeGreaterThan(80 * 1024);
    const c = await TextClient.connect(gate.port(MG));
    const out = await c.request(line, 30_000);
    const expected = asked.map((k, i) =>
      keys.indexOf(k) % 97 === 0 || (i >= 5000 && i < 5003) ? valueBlock(k, `val-${k}`) : '',
    );
    expect(out).toBe(`${expected.join('')}END\r\n`);
    // gets: the same, with cas uniques
    const gets = await c.request(`gets ${asked.slice(0, 200).join(' ')} ${stored[0]}\r\n`, 30_000);
    const values = gets.match(/^VALUE /gm) ?? [];
    expect(values).toHaveLength(asked.slice(0, 200).filter((k) => keys.indexOf(k) % 97 === 0).length + 1);
    expect(gets.endsWith('END\r\n')).toBe(true);
    c.close();
  }, 60_000);

  it('counts a multi-get once in the request latency histogram', async () => {
    const counters = gate.proxy.tenants.get('other')?.counters;
    const observed = (): number => [...(counters?.latencyBuckets ?? [])].reduce((a, b) => a + b, 0);
    const c = await TextClient.connect(gate.port(OTHER));
    expect(await c.request('mn\r\n')).toBe('MN\r\n');
    const before = observed();
    c.send('get la lb lc\r\n');
    expect(await c.readUntil('END\r\n')).toBe('END\r\n');
    expect(observed() - before).toBe(1);
    c.close();
  });

  it('counts every key of a multi-get in the tenant stats, repeats included', async () => {
    await setAll(gate.port(OTHER), [['h', '1']]);
    const c = await TextClient.connect(gate.port(OTHER));
    const before = await c.request('stats\r\n');
    expect(await c.request('get h m h\r\n')).toBe(`${valueBlock('h', '1')}${valueBlock('h', '1')}END\r\n`);
    const after = await c.request('stats\r\n');
    const stat = (text: string, name: string): number => Number(new RegExp(`STAT ${name} (\\d+)`).exec(text)?.[1]);
    expect(stat(after, 'cmd_get') - stat(before, 'cmd_get')).toBe(3);
    expect(stat(after, 'get_hits') - stat(before, 'get_hits')).toBe(2);
    expect(stat(after, 'get_misses') - stat(before, 'get_misses')).toBe(1);
    c.close();
  });
});

describe('multi-get order and semantics', () => {
  it('keeps pipelined requests in order around multi-gets (a set after a get is not seen by it)', async () => {
    const c = await TextClient.connect(gate.port(MG));
    const out = await c.request(
      'set oa 0 0 1\r\n1\r\nget oa ob oa\r\nset oa 0 0 1\r\n2\r\nset ob 0 0 1\r\n3\r\nget ob oa\r\ndelete oa\r\nget oa ob\r\n',
    );
    expect(out).toBe(
      'STORED\r\n' +
        `${valueBlock('oa', '1')}${valueBlock('oa', '1')}END\r\n` +
        'STORED\r\nSTORED\r\n' +
        `${valueBlock('ob', '3')}${valueBlock('oa', '2')}END\r\n` +
        'DELETED\r\n' +
        `${valueBlock('ob', '3')}END\r\n`,
    );
    c.close();
  });

  it('answers gat/gats with repeated keys in client order, touching each key', async () => {
    await setAll(gate.port(MG), [
      ['ta', 'A'],
      ['tb', 'B'],
    ]);
    const c = await TextClient.connect(gate.port(MG));
    expect(await c.request('gat 0 tb tx ta tb\r\n')).toBe(
      `${valueBlock('tb', 'B')}${valueBlock('ta', 'A')}${valueBlock('tb', 'B')}END\r\n`,
    );
    const gats = await c.request('gats 0 ta ta\r\n');
    const cas = /^VALUE ta 0 1 (\d+)\r\nA\r\nVALUE ta 0 1 (\d+)\r\nA\r\nEND\r\n$/.exec(gats);
    expect(cas?.[1]).toBeDefined();
    expect(cas?.[1]).toBe(cas?.[2]);
    c.close();
  });

  it('answers multi-gets of an admin tenant (keys unchanged) the same way', async () => {
    const c = await TextClient.connect(gate.port(OPS));
    expect(await c.request('set adm1 0 0 1\r\nx\r\nget adm2 adm1 adm1\r\n')).toBe(
      `STORED\r\n${valueBlock('adm1', 'x')}${valueBlock('adm1', 'x')}END\r\n`,
    );
    c.close();
  });

  it('answers a binary GETKQ run of 1,000 keys and its NOOP, hits in order', async () => {
    await setAll(
      gate.port(MG),
      Array.from({ length: 10 }, (_, i) => [`bin${i * 100}`, `v${i}`] as const),
    );
    const packet = (opcode: number, key: string, opaque: number): Buffer => {
      const k = Buffer.from(key, 'latin1');
      const h = Buffer.alloc(24);
      h[0] = 0x80;
      h[1] = opcode;
      h.writeUInt16BE(k.length, 2);
      h.writeUInt32BE(k.length, 8);
      h.writeUInt32BE(opaque, 12);
      return Buffer.concat([h, k]);
    };
    const run = Array.from({ length: 1000 }, (_, i) => packet(0x0d, `bin${i}`, i));
    const c = await TextClient.connect(gate.port(MG));
    c.send(Buffer.concat([...run, packet(0x0a, '', 99_999)]));
    const got: { opcode: number; opaque: number; key: string; value: string }[] = [];
    let buf = Buffer.alloc(0);
    while (got.length === 0 || got[got.length - 1]?.opcode !== 0x0a) {
      buf = Buffer.concat([buf, await c.readBytes(1, 10_000)]);
      while (buf.length >= 24 && buf.length >= 24 + buf.readUInt32BE(8)) {
        const body = buf.readUInt32BE(8);
        const keyLen = buf.readUInt16BE(2);
        const extLen = buf[4] ?? 0;
        got.push({
          opcode: buf[1] ?? 0,
          opaque: buf.readUInt32BE(12),
          key: buf.toString('latin1', 24 + extLen, 24 + extLen + keyLen),
          value: buf.toString('latin1', 24 + extLen + keyLen, 24 + body),
        });
        buf = buf.subarray(24 + body);
      }
    }
    expect(got.map((g) => [g.opcode, g.opaque, g.key, g.value])).toEqual([
      ...Array.from({ length: 10 }, (_, i) => [0x0d, i * 100, `bin${i * 100}`, `v${i}`]),
      [0x0a, 99_999, '', ''],
    ]);
    c.close();
  });
});

describe('multi-gets against memcached itself (property)', () => {
  it('answers any get/gets/gat/gats of repeated and missing keys byte for byte as memcached does', async () => {
    // the admin tenant's keys pass unchanged, so memcached's own reply to the same line is the oracle
    const names = Array.from({ length: 24 }, (_, i) => `pk${i}`);
    const items = names.filter((_, i) => i % 3 !== 0).map((k, i) => [k, 'v'.repeat((i * 7919) % 70_000)] as const);
    const a = await TextClient.connect(gate.port(OPS));
    expect(await a.request(items.map(([k, v]) => `set ${k} ${k.length} 0 ${v.length}\r\n${v}\r\n`).join(''))).toBe(
      'STORED\r\n'.repeat(items.length),
    );
    const d = await TextClient.connect(mc.port);
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom('get', 'gets', 'gat 0', 'gats 0'),
          fc.array(fc.constantFrom(...names), { minLength: 1, maxLength: 300 }),
          async (cmd, keys) => {
            const line = `${cmd} ${keys.join(' ')}\r\n`;
            expect(await a.request(line, 20_000)).toBe(await d.request(line, 20_000));
          },
        ),
        { numRuns: 40 },
      );
    } finally {
      a.close();
      d.close();
    }
  }, 120_000);
});

describe('a multi-get whose upstream fails part way', () => {
  it('ends the reply with the error line in place of END, in sync', async () => {
    const own = await spawnMemcached();
    const g = await startProxy(
      `
listen:
  - { host: 127.0.0.1, port: 0, tenant: t }
upstream:
  servers: [ "\${UPSTREAM}" ]
  connectionsPerServer: 1
  requestTimeoutMs: 2000
  backoffMinMs: 20
  backoffMaxMs: 100
state: { url: "\${STATE}" }
tenants:
  t: { prefix: "f:" }
`,
      own.address,
    );
    try {
      const big = 'f'.repeat(900_000);
      const keys = Array.from({ length: 30 }, (_, i) => `f${i}`);
      await setAll(
        g.port(0),
        keys.map((k) => [k, big]),
      );
      // a client that does not read: the get stops after the first few keys, waiting for it to drain
      const slow = net.connect({ host: '127.0.0.1', port: g.port(0) });
      await new Promise<void>((r) => slow.once('connect', () => r()));
      slow.pause();
      slow.write(`get ${keys.join(' ')}\r\nget f1\r\n`);
      await new Promise((r) => setTimeout(r, 300));
      await own.kill();
      const chunks: Buffer[] = [];
      slow.on('data', (d: Buffer) => chunks.push(d));
      slow.resume();
      for (let i = 0; i < 500 && !Buffer.concat(chunks).toString('latin1').endsWith('backend failure\r\n'); i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      const text = Buffer.concat(chunks).toString('latin1');
      // whole VALUE blocks, then the error where END would be, then the next get's own answer
      let rest = text;
      let blocks = 0;
      while (rest.startsWith('VALUE f')) {
        const block = `VALUE ${keys[blocks]} 0 900000\r\n${big}\r\n`;
        expect(rest.slice(0, block.length)).toBe(block);
        rest = rest.slice(block.length);
        blocks++;
      }
      expect(blocks).toBeGreaterThan(0);
      expect(blocks).toBeLessThan(30);
      expect(rest).toBe('SERVER_ERROR backend failure\r\nSERVER_ERROR backend failure\r\n');
      slow.destroy();
    } finally {
      await g.stop();
      await own.stop();
    }
  }, 30_000);
});

/** A client that reads and counts reply bytes without keeping them. */
function countingClient(port: number): Promise<{ socket: net.Socket; received: () => number }> {
  return new Promise((resolve, reject) => {
    let n = 0;
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.on('data', (d: Buffer) => (n += d.length));
    socket.once('connect', () => resolve({ socket, received: () => n }));
    socket.once('error', reject);
  });
}

describe('read amplification', () => {
  const MB = 1024 * 1024;
  const big = 'b'.repeat(MB - 1024);
  const oneReply = `VALUE big 0 ${big.length}\r\n`.length + big.length + 2;

  it('answers one get naming a 1 MB item 250 times while holding about the session bound, not 250 MB', async () => {
    await setAll(gate.port(MG), [['big', big]]);
    const askedBefore = await upstreamBytesWritten();
    const rssBefore = process.memoryUsage.rss();
    let peak = rssBefore;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 5);
    const c = await countingClient(gate.port(MG));
    const want = 250 * oneReply + 'END\r\n'.length;
    c.socket.write(`get${' big'.repeat(250)}\r\n`);
    for (let i = 0; i < 2000 && c.received() < want; i++) await new Promise((r) => setTimeout(r, 10));
    clearInterval(sampler);
    expect(c.received()).toBe(want);
    c.socket.destroy();
    const grownMB = (peak - rssBefore) / MB;
    const askedMB = ((await upstreamBytesWritten()) - askedBefore) / MB;
    console.log(`250 x 1 MB get: RSS grew ${grownMB.toFixed(1)} MB, memcached sent ${askedMB.toFixed(1)} MB`);
    // the item is fetched once and written 250 times (the same Buffers)
    expect(askedMB).toBeLessThan(2);
    expect(grownMB).toBeLessThan(100);
  }, 30_000);

  it("answers eight such pipelined gets while another tenant's requests on the shared socket keep succeeding", async () => {
    await setAll(gate.port(MG), [['big', big]]);
    const opened = await upstreamConnectionsOpened();
    const askedBefore = await upstreamBytesWritten();
    const rssBefore = process.memoryUsage.rss();
    let peak = rssBefore;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 5);
    const c = await countingClient(gate.port(MG));
    const want = 8 * (250 * oneReply + 'END\r\n'.length);
    c.socket.write(`get${' big'.repeat(250)}\r\n`.repeat(8));
    const o = await TextClient.connect(gate.port(OTHER));
    let neighbourOk = 0;
    for (let i = 0; i < 3000 && c.received() < want; i++) {
      expect(await o.request('get k\r\n')).toBe('END\r\n');
      neighbourOk++;
      await new Promise((r) => setTimeout(r, 5));
    }
    clearInterval(sampler);
    expect(c.received()).toBe(want);
    expect(neighbourOk).toBeGreaterThan(0);
    c.socket.destroy();
    o.close();
    const grownMB = (peak - rssBefore) / MB;
    const askedMB = ((await upstreamBytesWritten()) - askedBefore) / MB;
    console.log(
      `8 pipelined 250 x 1 MB gets: RSS grew ${grownMB.toFixed(1)} MB, memcached sent ${askedMB.toFixed(1)} MB`,
    );
    expect(askedMB).toBeLessThan(10);
    expect(grownMB).toBeLessThan(150);
    expect(await upstreamConnectionsOpened()).toBe(opened + 3); // only our own three stats connections
  }, 60_000);

  it('holds a bounded amount for a client that stops reading a huge multi-get', async () => {
    const keys = Array.from({ length: 40 }, (_, i) => `bk${i}`);
    await setAll(
      gate.port(MG),
      keys.map((k) => [k, big]),
    );
    const askedBefore = await upstreamBytesWritten();
    const rssBefore = process.memoryUsage.rss();
    const slow = net.connect({ host: '127.0.0.1', port: gate.port(MG) });
    await new Promise<void>((r) => slow.once('connect', () => r()));
    slow.pause();
    slow.write(`get ${keys.join(' ')}\r\n`.repeat(4));
    await new Promise((r) => setTimeout(r, 1500));
    const grownMB = (process.memoryUsage.rss() - rssBefore) / MB;
    const askedMB = ((await upstreamBytesWritten()) - askedBefore) / MB;
    console.log(
      `a stopped reader of 4 x 40 MB multi-gets: RSS grew ${grownMB.toFixed(1)} MB, memcached sent ${askedMB.toFixed(1)} MB`,
    );
    // the session bound (8 MiB) plus what the loopback socket buffers took, not 160 MB
    expect(askedMB).toBeLessThan(40);
    const o = await TextClient.connect(gate.port(OTHER));
    expect(await o.request('get k\r\n')).toBe('END\r\n');
    o.close();
    slow.destroy();
  }, 30_000);
});

describe('burst and maxKeysPerGet', () => {
  it('admits exactly the burst of 256 pipelined one-key gets (ops 50, burst 50), plus what refilled meanwhile', async () => {
    const c = await TextClient.connect(gate.port(BURST));
    const started = performance.now();
    c.send('get k\r\n'.repeat(256));
    let out = '';
    while (out.split('\r\n').length <= 256) out += await c.readUntil('\r\n', 10_000);
    const elapsedMs = performance.now() - started;
    const lines = out.split('\r\n').slice(0, 256);
    const admitted = lines.filter((l) => l === 'END').length;
    expect(admitted + lines.filter((l) => l === 'SERVER_ERROR rate limited').length).toBe(256);
    expect(admitted).toBeGreaterThanOrEqual(50);
    expect(admitted).toBeLessThanOrEqual(50 + Math.ceil((elapsedMs * 50) / 1000) + 1);
    c.close();
  });

  it('refuses a multi-get of more keys than the burst with its own words, and admits one of the burst', async () => {
    const c = await TextClient.connect(gate.port(BURST));
    const keys = (n: number): string => Array.from({ length: n }, (_, i) => `m${i}`).join(' ');
    await new Promise((r) => setTimeout(r, 1100)); // a full bucket again
    // the refused one takes nothing from the bucket, so the next one (exactly the burst) passes
    c.send(`get ${keys(51)}\r\nget ${keys(50)}\r\n`);
    expect(await c.readUntil('END\r\n')).toBe('SERVER_ERROR rate limited (more keys than the burst)\r\nEND\r\n');
    c.close();
  });
});
