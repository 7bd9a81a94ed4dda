/**
 * The reply-key path and the key space, against a real memcached:
 * - meta `k` and `ME` keys come back in the encoding memcached chose (by how
 *   the item was stored), exactly as memcached shows them to a direct client;
 * - binary GETK/GETKQ/GATK/GATKQ of keys with bytes ≥ 0x80 stored by text clients;
 * - a namespaced tenant has the whole 250-byte key space (text, meta, base64, binary).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { TWO_TENANTS_YAML } from '../helpers/proxy.js';
import { useMemcachedAndProxy } from '../helpers/memcached-and-proxy.js';
import { TextClient } from '../helpers/text-client.js';

const run = promisify(execFile);
const PYTHON = '/usr/bin/python3';

const ALPHA = 0;
const BETA = 1;
const OPS = 2;

const env = useMemcachedAndProxy(TWO_TENANTS_YAML);

const b64 = (s: string | Buffer): string => (typeof s === 'string' ? Buffer.from(s, 'latin1') : s).toString('base64');

/** Runs `lines` one by one on a connection; returns each reply (everything before the VERSION line). */
async function replies(port: number, lines: readonly string[]): Promise<string[]> {
  const c = await TextClient.connect(port);
  const out: string[] = [];
  for (const l of lines) out.push(await c.request(l));
  c.close();
  return out;
}

/** `ME <key> exp=… la=… cas=… …`: only the key part is comparable (cas and size differ upstream). */
function meKeyOnly(reply: string): string {
  return reply.replace(/^(ME \S+) .*$/m, '$1');
}

/** The same commands, with keys built from `tag`, directly to memcached and through memgate. */
async function differential(build: (tag: string) => string[]): Promise<{ direct: string[]; proxied: string[] }> {
  const tag = `t${Math.random().toString(36).slice(2, 8)}`;
  const direct = (await replies(env.mc.port, build(tag))).map(meKeyOnly);
  const proxied = (await replies(env.gate.port(ALPHA), build(tag))).map(meKeyOnly);
  return { direct, proxied };
}

describe('meta key echo in the encoding memcached chose', () => {
  it('answers mg <base64> b k of an item stored with a plain key as memcached does (plain key, no b)', async () => {
    const { direct, proxied } = await differential((t) => [
      `set ${t}a 0 0 1\r\nx\r\n`,
      `mg ${b64(`${t}a`)} b v k\r\n`,
      `mg ${b64(`${t}a`)} b k s\r\n`,
      `md ${b64(`${t}a`)} b k q\r\nmn\r\n`,
    ]);
    expect(proxied).toEqual(direct);
    expect(proxied[1]).toMatch(new RegExp(`^VA 1 k${'t\\w+a'}\r\nx\r\n$`));
  });

  it('answers mg <plain> k and me <plain> of an item stored with a base64 key in base64, as memcached does', async () => {
    const { direct, proxied } = await differential((t) => [
      `ms ${b64(`${t}b`)} 1 b\r\ny\r\n`,
      `mg ${t}b v k\r\n`,
      `mg ${t}b k\r\n`,
      `me ${t}b\r\n`,
      `me ${b64(`${t}b`)} b\r\n`,
    ]);
    expect(proxied).toEqual(direct);
    expect(proxied[1]).toContain(' b\r\n');
    expect(proxied[3]).toMatch(/^ME [A-Za-z0-9+/=]+\r\n$/);
  });

  it('answers me <base64> b of an item stored plain with the plain key, as memcached does', async () => {
    const { direct, proxied } = await differential((t) => [
      `set ${t}c 0 0 2\r\nzz\r\n`,
      `me ${b64(`${t}c`)} b\r\n`,
      `me ${t}c\r\n`,
    ]);
    expect(proxied).toEqual(direct);
    expect(proxied[1]).toMatch(/^ME t\w+c\r\n$/);
  });

  it('echoes keys of hits, misses, ms, md and ma replies exactly as memcached does', async () => {
    const { direct, proxied } = await differential((t) => [
      `mg ${b64(`${t}miss`)} b k v\r\n`,
      `mg ${t}miss k v\r\n`,
      `ms ${t}n 1 k\r\n5\r\n`,
      `ms ${b64(`${t}m`)} 1 b k\r\n5\r\n`,
      `ma ${t}n k v\r\n`,
      `ma ${b64(`${t}n`)} b k v\r\n`,
      `ma ${b64(`${t}m`)} b k v\r\n`,
      `ma ${t}m k v\r\n`,
      `mg ${t}m k v\r\n`,
      `mg ${b64(`${t}n`)} b k v\r\n`,
      `get ${t}m ${t}n\r\n`,
      `md ${t}m k\r\n`,
      `md ${b64(`${t}n`)} b k\r\n`,
    ]);
    expect(proxied).toEqual(direct);
  });

  it('echoes a base64 key too long for base64 once namespaced (sent upstream plain) as memcached does', async () => {
    // 180 bytes: a 240-byte base64 token memcached takes, 256 bytes once namespaced
    const { direct, proxied } = await differential((t) => {
      const k = b64(`${t}-${'q'.repeat(180)}`.slice(0, 180));
      return [`ms ${k} 1 b k\r\n1\r\n`, `mg ${k} b k v\r\n`, `me ${k} b\r\n`, `md ${k} b k\r\n`, `mg ${k} b k v\r\n`];
    });
    expect(proxied).toEqual(direct);
    expect(proxied[1]).toMatch(/^VA 1 k\S+ b\r\n1\r\n$/);
  });

  it('does not reset the shared upstream connection: another tenant’s pipeline is unaffected', async () => {
    const b = await TextClient.connect(env.gate.port(BETA));
    const a = await TextClient.connect(env.gate.port(ALPHA));
    await a.request('set shared1 0 0 1\r\n1\r\nms c2hhcmVkMg== 1 b\r\n2\r\n');
    await b.request('version\r\n');
    // memgate reconnects after a reset: memcached's connection count would grow
    const d = await TextClient.connect(env.mc.port);
    const connections = async (): Promise<string> =>
      /STAT total_connections (\d+)/.exec(await d.request('stats\r\n'))?.[1] ?? 'none';
    const before = await connections();
    b.send('set other 0 0 5\r\nhello\r\n');
    const mixed = a.request(`mg ${b64('shared1')} b k v\r\nme shared2\r\nmg shared2 k v\r\n`);
    const other = b.request('get other\r\n');
    expect(await mixed).toMatch(/^VA 1 kshared1\r\n1\r\nME c2hhcmVkMg== exp=.*\r\nVA 1 kc2hhcmVkMg== b\r\n2\r\n$/);
    expect(await other).toBe('STORED\r\nVALUE other 0 5\r\nhello\r\nEND\r\n');
    expect(await connections()).toBe(before);
    a.close();
    b.close();
    d.close();
  });
});

// ---- binary packets ----------------------------------------------------------

const OP = { GETK: 0x0c, GETKQ: 0x0d, NOOP: 0x0a, SET: 0x01, GATK: 0x23, GATKQ: 0x24 } as const;

function packet(
  opcode: number,
  key: Buffer,
  extras: Buffer = Buffer.alloc(0),
  value: Buffer = Buffer.alloc(0),
): Buffer {
  const h = Buffer.alloc(24);
  h[0] = 0x80;
  h[1] = opcode;
  h.writeUInt16BE(key.length, 2);
  h[4] = extras.length;
  h.writeUInt32BE(extras.length + key.length + value.length, 8);
  h.writeUInt32BE(0x1234 + opcode, 12);
  return Buffer.concat([h, extras, key, value]);
}

interface BinaryReply {
  opcode: number;
  status: number;
  key: Buffer;
  value: Buffer;
}

/** Reads `n` binary response packets. */
async function readPackets(c: TextClient, n: number): Promise<BinaryReply[]> {
  const out: BinaryReply[] = [];
  let buf = Buffer.alloc(0);
  while (out.length < n) {
    if (buf.length < 24) {
      buf = Buffer.concat([buf, await c.readBytes(1)]);
      continue;
    }
    const body = buf.readUInt32BE(8);
    if (buf.length < 24 + body) {
      buf = Buffer.concat([buf, await c.readBytes(1)]);
      continue;
    }
    const keyLen = buf.readUInt16BE(2);
    const ext = buf[4] ?? 0;
    out.push({
      opcode: buf[1] ?? 0,
      status: buf.readUInt16BE(6),
      key: Buffer.from(buf.subarray(24 + ext, 24 + ext + keyLen)),
      value: Buffer.from(buf.subarray(24 + ext + keyLen, 24 + body)),
    });
    buf = buf.subarray(24 + body);
  }
  return out;
}

const exptime = (s: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(s);
  return b;
};

describe('binary GETK of keys with bytes ≥ 0x80', () => {
  it.each([
    ['a short key', 30],
    ['a key too long for base64 once namespaced (sent plain)', 200],
    ['a 250-byte key (digested)', 250],
  ])('returns the UTF-8 key a text client stored, for GETK, GETKQ, GATK and GATKQ: %s', async (_, length) => {
    const head = Buffer.from(`clé-ünïcode-${Math.random().toString(36).slice(2, 8)}-`, 'utf8');
    const key = Buffer.concat([head, Buffer.alloc(length - head.length, 'é')]).subarray(0, length);
    expect(key.length).toBe(length);
    const t = await TextClient.connect(env.gate.port(ALPHA));
    expect(await t.request(Buffer.concat([Buffer.from('set '), key, Buffer.from(' 0 0 3\r\nabc\r\n')]))).toBe(
      'STORED\r\n',
    );
    t.close();
    const c = await TextClient.connect(env.gate.port(ALPHA));
    c.send(
      Buffer.concat([
        packet(OP.GETK, key),
        packet(OP.GETKQ, key),
        packet(OP.GATK, key, exptime(100)),
        packet(OP.GATKQ, key, exptime(100)),
        packet(OP.NOOP, Buffer.alloc(0)),
      ]),
    );
    const got = await readPackets(c, 5);
    expect(got.map((p) => [p.opcode, p.status])).toEqual([
      [OP.GETK, 0],
      [OP.GETKQ, 0],
      [OP.GATK, 0],
      [OP.GATKQ, 0],
      [OP.NOOP, 0],
    ]);
    for (const p of got.slice(0, 4)) {
      expect(p.key.equals(key)).toBe(true);
      expect(p.value.toString()).toBe('abc');
    }
    c.close();
  });
});

// ---- the whole 250-byte key space --------------------------------------------

/** A key of exactly `n` bytes, different for each call. */
function longKey(n: number, seed: string): string {
  const head = `${seed}-${Math.random().toString(36).slice(2, 8)}-`;
  return (head + 'k'.repeat(n)).slice(0, n);
}

describe('the whole 250-byte key space for a namespaced tenant', () => {
  it('stores and reads keys of 237 to 250 bytes with classic commands, echoing them exactly', async () => {
    const a = await TextClient.connect(env.gate.port(ALPHA));
    for (let n = 237; n <= 250; n++) {
      const k = longKey(n, `c${n}`);
      expect(await a.request(`set ${k} 5 0 2\r\nv${n % 10}\r\n`)).toBe('STORED\r\n');
      expect(await a.request(`get ${k}\r\n`)).toBe(`VALUE ${k} 5 2\r\nv${n % 10}\r\nEND\r\n`);
      expect(await a.request(`append ${k} 0 0 1\r\n!\r\nincr ${k} 1\r\ntouch ${k} 10\r\n`)).toBe(
        'STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\nTOUCHED\r\n',
      );
      expect(await a.request(`gat 10 ${k}\r\n`)).toBe(`VALUE ${k} 5 3\r\nv${n % 10}!\r\nEND\r\n`);
      expect(await a.request(`delete ${k}\r\nget ${k}\r\n`)).toBe('DELETED\r\nEND\r\n');
    }
    a.close();
  });

  it('keeps 250-byte keys that differ only in their last byte apart', async () => {
    const a = await TextClient.connect(env.gate.port(ALPHA));
    const base = longKey(249, 'twin');
    expect(await a.request(`set ${base}1 0 0 1\r\n1\r\nset ${base}2 0 0 1\r\n2\r\n`)).toBe('STORED\r\nSTORED\r\n');
    expect(await a.request(`get ${base}1 ${base}2\r\n`)).toBe(
      `VALUE ${base}1 0 1\r\n1\r\nVALUE ${base}2 0 1\r\n2\r\nEND\r\n`,
    );
    a.close();
    // the other tenant's same key is another item
    const b = await TextClient.connect(env.gate.port(BETA));
    expect(await b.request(`get ${base}1\r\n`)).toBe('END\r\n');
    b.close();
  });

  it('answers a multi-get mixing short and long keys with every key exactly as sent, in order', async () => {
    const a = await TextClient.connect(env.gate.port(ALPHA));
    const keys = [longKey(250, 'm1'), 'short1', longKey(240, 'm2'), longKey(236, 'm3'), 'short2', longKey(250, 'm4')];
    for (const [i, k] of keys.entries()) expect(await a.request(`set ${k} ${i} 0 1\r\n${i}\r\n`)).toBe('STORED\r\n');
    const missing = longKey(250, 'gone');
    const asked = [keys[0], missing, keys[1], keys[2], keys[0], keys[3], keys[4], keys[5]] as string[];
    const expected = asked
      .filter((k) => k !== missing)
      .map((k) => `VALUE ${k} ${keys.indexOf(k)} 1\r\n${keys.indexOf(k)}\r\n`)
      .join('');
    expect(await a.request(`get ${asked.join(' ')}\r\n`)).toBe(`${expected}END\r\n`);
    const withCas = await a.request(`gets ${asked.join(' ')}\r\n`);
    expect(withCas.replace(/ \d+\r\n(\d)\r\n/g, '\r\n$1\r\n')).toBe(`${expected}END\r\n`);
    a.close();
  });

  it('serves meta commands with plain and base64 keys of up to 250 bytes, echoing k and ME as sent', async () => {
    const a = await TextClient.connect(env.gate.port(ALPHA));
    for (const n of [237, 240, 249, 250]) {
      const k = longKey(n, `meta${n}`);
      expect(await a.request(`ms ${k} 2 T0 k\r\nhi\r\n`)).toBe(`HD k${k}\r\n`);
      expect(await a.request(`mg ${k} v k s\r\n`)).toBe(`VA 2 k${k} s2\r\nhi\r\n`);
      expect(await a.request(`mg ${b64(k)} b v k\r\n`)).toBe(`VA 2 k${k}\r\nhi\r\n`);
      expect(meKeyOnly(await a.request(`me ${k}\r\n`))).toBe(`ME ${k}\r\n`);
      const raw = Buffer.from(longKey(n, `bin${n}`).replace(/k/g, '\u00e9'), 'latin1');
      const rk = b64(raw);
      expect(await a.request(`ms ${rk} 3 b k\r\nabc\r\n`)).toBe(`HD k${rk} b\r\n`);
      expect(await a.request(`mg ${rk} b v k\r\n`)).toBe(`VA 3 k${rk} b\r\nabc\r\n`);
      expect(meKeyOnly(await a.request(`me ${rk} b\r\n`))).toBe(`ME ${rk}\r\n`);
      expect(await a.request(`md ${rk} b k\r\nmg ${rk} b v k\r\n`)).toBe(`HD k${rk} b\r\nEN k${rk} b\r\n`);
    }
    a.close();
  });

  it('serves binary SET and GETK of 250-byte keys', async () => {
    const c = await TextClient.connect(env.gate.port(ALPHA));
    const plain = Buffer.from(longKey(250, 'bp'), 'latin1');
    const raw = Buffer.from(longKey(250, 'br').replace(/k/g, '\u00ff'), 'latin1');
    const extras = Buffer.alloc(8);
    c.send(
      Buffer.concat([
        packet(OP.SET, plain, extras, Buffer.from('one')),
        packet(OP.SET, raw, extras, Buffer.from('two')),
        packet(OP.GETK, plain),
        packet(OP.GETK, raw),
      ]),
    );
    const got = await readPackets(c, 4);
    expect(got.map((p) => p.status)).toEqual([0, 0, 0, 0]);
    expect(got[2]?.key.equals(plain)).toBe(true);
    expect(got[2]?.value.toString()).toBe('one');
    expect(got[3]?.key.equals(raw)).toBe(true);
    expect(got[3]?.value.toString()).toBe('two');
    c.close();
  });

  it('stores the dalli-style hashed keys of 249 and 250 bytes', async () => {
    const a = await TextClient.connect(env.gate.port(ALPHA));
    // dalli keeps the head of a long key and appends ":md5:<hex digest>"
    for (const k of [
      `${'d'.repeat(212)}:md5:${'0123456789abcdef'.repeat(2)}`,
      `${'e'.repeat(213)}:md5:${'f'.repeat(32)}`,
    ]) {
      expect(await a.request(`set ${k} 0 0 1\r\nd\r\nget ${k}\r\n`)).toBe(`STORED\r\nVALUE ${k} 0 1\r\nd\r\nEND\r\n`);
    }
    a.close();
  });

  it('still refuses a 251-byte key as memcached does, and stays in sync', async () => {
    const k = 'z'.repeat(251);
    const lines = [`get ${k}\r\n`, `mg ${k} v\r\n`, `mg ${b64(k)} b v\r\n`];
    const direct = await replies(env.mc.port, lines);
    const proxied = await replies(env.gate.port(ALPHA), lines);
    expect(proxied).toEqual(direct);
    expect(proxied[0]).toBe('CLIENT_ERROR bad command line format\r\n');
  });

  it('hides long keys after a flush_all like any other key', async () => {
    const a = await TextClient.connect(env.gate.port(BETA));
    const k = longKey(250, 'rot');
    expect(await a.request(`set ${k} 0 0 1\r\n1\r\nflush_all\r\nget ${k}\r\n`)).toBe('STORED\r\nOK\r\nEND\r\n');
    a.close();
  });

  it('passes an admin tenant’s keys unchanged, with memcached’s own 250-byte limit', async () => {
    const k = longKey(250, 'admin');
    const o = await TextClient.connect(env.gate.port(OPS));
    expect(await o.request(`set ${k} 0 0 1\r\n1\r\n`)).toBe('STORED\r\n');
    o.close();
    const d = await TextClient.connect(env.mc.port);
    expect(await d.request(`get ${k}\r\n`)).toBe(`VALUE ${k} 0 1\r\n1\r\nEND\r\n`);
    d.close();
  });

  it('works with pymemcache and a 250-byte key', async () => {
    const script = `
import sys
from pymemcache.client.base import Client
c = Client(('127.0.0.1', int(sys.argv[1])), connect_timeout=5, timeout=5)
k = 'p' * 240 + sys.argv[2]
assert len(k) == 250
assert c.set(k, b'long', noreply=False)
assert c.get(k) == b'long', c.get(k)
assert c.get_many([k, 'nope', k[:-1]]) == {k: b'long'}
assert c.delete(k, noreply=False)
print('pymemcache long ok')
`;
    const r = await run(
      PYTHON,
      ['-c', script, String(env.gate.port(ALPHA)), Math.random().toString(36).slice(2, 12).padEnd(10, 'x')],
      {
        timeout: 30_000,
      },
    );
    expect(r.stdout).toContain('pymemcache long ok');
  });
});
