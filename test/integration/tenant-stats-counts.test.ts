/**
 * Regressions (found by test/compat with pylibmc's and php-memcached's binary
 * protocol): a tenant's `stats` counted gat/gats, a meta get with `T` and a
 * binary TOUCH or GAT as gets (memcached: touches; a meta get with `T` only
 * when it hits), a meta get without `v` that hit as a miss, a binary DECR and
 * `ma … MD` as increments, and a binary SET with a cas or `ms … C` not in
 * cas_hits / cas_badval / cas_misses. Each command is run against memcached
 * itself and through a tenant, and the counters must grow alike.
 */
import { describe, expect, it } from 'vitest';
import { oneTenantYaml } from '../helpers/proxy.js';
import { useMemcachedAndProxy } from '../helpers/memcached-and-proxy.js';
import { TextClient } from '../helpers/text-client.js';

const env = useMemcachedAndProxy(oneTenantYaml());

const COUNTERS = [
  'cmd_get',
  'get_hits',
  'get_misses',
  'cmd_touch',
  'touch_hits',
  'touch_misses',
  'cmd_set',
  'cas_hits',
  'cas_badval',
  'cas_misses',
  'incr_hits',
  'incr_misses',
  'decr_hits',
  'decr_misses',
];

async function counters(port: number): Promise<Record<string, number>> {
  const c = await TextClient.connect(port);
  const text = await c.request('stats\r\n');
  c.close();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^STAT (\S+) (\d+)\r$/gm))
    if (COUNTERS.includes(m[1] ?? '')) out[m[1] ?? ''] = Number(m[2]);
  return out;
}

/** A binary request: header, extras, key, value. */
function packet(opcode: number, key: string, extras: Buffer, value = Buffer.alloc(0), cas = 0n): Buffer {
  const k = Buffer.from(key);
  const b = Buffer.alloc(24);
  b[0] = 0x80;
  b[1] = opcode;
  b.writeUInt16BE(k.length, 2);
  b[4] = extras.length;
  b.writeUInt32BE(extras.length + k.length + value.length, 8);
  b.writeBigUInt64BE(cas, 16);
  return Buffer.concat([b, extras, k, value]);
}

/** A binary SET of `value` with a cas (8 bytes of flags and exptime as extras). */
const binarySet = (key: string, value: string, cas: bigint) =>
  packet(0x01, key, Buffer.alloc(8), Buffer.from(value), cas);

/** A binary INCR (0x05) or DECR (0x06) by 1, without an initial value (exptime 0xffffffff). */
function binaryArith(opcode: number, key: string): Buffer {
  const extras = Buffer.alloc(20);
  extras.writeBigUInt64BE(1n, 0);
  extras.writeUInt32BE(0xffffffff, 16);
  return packet(opcode, key, extras);
}

/** A binary request with a 4-byte exptime extra (TOUCH, GAT). */
function binaryWithExptime(opcode: number, key: string, exptime: number): Buffer {
  const k = Buffer.from(key);
  const b = Buffer.alloc(24 + 4 + k.length);
  b[0] = 0x80;
  b[1] = opcode;
  b.writeUInt16BE(k.length, 2);
  b[4] = 4;
  b.writeUInt32BE(4 + k.length, 8);
  b.writeUInt32BE(exptime, 24);
  k.copy(b, 28);
  return b;
}

const NOOP = Buffer.from([0x80, 0x0a, ...new Array<number>(22).fill(0)]);

/** Sends binary requests then a NOOP, and waits for the NOOP's reply. */
async function binary(port: number, packets: Buffer[]): Promise<void> {
  const c = await TextClient.connect(port);
  c.send(Buffer.concat([...packets, NOOP]));
  let got = Buffer.alloc(0);
  for (;;) {
    got = Buffer.concat([got, await c.readBytes(24)]);
    let at = 0;
    let noop = false;
    while (got.length - at >= 24) {
      const len = 24 + got.readUInt32BE(at + 8);
      if (got.length - at < len) break;
      if (got[at + 1] === 0x0a) noop = true;
      at += len;
    }
    if (noop) break;
  }
  c.close();
}

/** How each counter grows when `run` is done against `port` (after `set hit`). */
async function growth(port: number, run: (port: number) => Promise<void>): Promise<Record<string, number>> {
  const c = await TextClient.connect(port);
  expect(await c.request('set hit 0 0 1\r\nx\r\nset num 0 0 2\r\n10\r\n')).toBe('STORED\r\nSTORED\r\n');
  c.close();
  const before = await counters(port);
  await run(port);
  const after = await counters(port);
  return Object.fromEntries(COUNTERS.map((n) => [n, (after[n] ?? 0) - (before[n] ?? 0)]));
}

const text = (line: string) => async (port: number) => {
  const c = await TextClient.connect(port);
  await c.request(line);
  c.close();
};

const CASES: [string, (port: number) => Promise<void>][] = [
  ['gat, a hit and a miss', text('gat 100 hit nope\r\n')],
  ['gats, a hit', text('gats 100 hit\r\n')],
  ['mg with T and v, a hit', text('mg hit v T30\r\n')],
  ['mg with T, a miss', text('mg nope v T30\r\n')],
  ['mg with T and no v, a hit', text('mg hit T30\r\n')],
  ['mg without v, a hit', text('mg hit\r\n')],
  ['get, a hit and a miss', text('get hit nope\r\n')],
  ['ma in decrement mode, a hit and a miss', text('ma num MD\r\nma nope MD\r\nma num M-\r\n')],
  [
    'ms with C: a bad value, a miss, in add mode',
    text('ms hit 1 C999999999\r\ny\r\nms nope 1 C5\r\ny\r\nms hit 1 ME C5\r\ny\r\n'),
  ],
  [
    'ms with C: a hit',
    async (port) => {
      const c = await TextClient.connect(port);
      const cas = /c(\d+)/.exec(await c.request('mg hit c\r\n'))?.[1] ?? '0';
      expect(await c.request(`ms hit 1 C${cas}\r\ny\r\n`)).toBe('HD\r\n');
      c.close();
    },
  ],
  ['cas, a bad value and a miss', text('cas hit 0 0 1 999999999\r\ny\r\ncas nope 0 0 1 5\r\ny\r\n')],
  [
    'binary DECR and INCR, hits and a miss',
    (p) => binary(p, [binaryArith(0x06, 'num'), binaryArith(0x05, 'num'), binaryArith(0x06, 'nope')]),
  ],
  [
    'binary SET with a cas: a bad value and a miss',
    (p) => binary(p, [binarySet('hit', 'y', 999999999n), binarySet('nope', 'y', 5n)]),
  ],
  [
    'binary TOUCH, a hit and a miss',
    (p) => binary(p, [binaryWithExptime(0x1c, 'hit', 100), binaryWithExptime(0x1c, 'nope', 100)]),
  ],
  [
    'binary GAT, a hit and a miss',
    (p) => binary(p, [binaryWithExptime(0x1d, 'hit', 100), binaryWithExptime(0x1d, 'nope', 100)]),
  ],
];

describe("a tenant's stats count as memcached's do", () => {
  it.each(CASES)('%s', async (_name, run) => {
    const direct = await growth(env.mc.port, run);
    const gated = await growth(env.gate.port(0), run);
    expect(gated).toEqual(direct);
  });
});
