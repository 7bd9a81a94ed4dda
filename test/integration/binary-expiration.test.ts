/**
 * Binary expirations are uint32s: memcached reads values over 30 days as
 * absolute Unix time, so 0xffffffff (what clients send for -1) is early 2106
 * and the item lives. memgate used to refuse every value ≥ 2^31 with EINVAL,
 * breaking binary clients that set an expiry after January 2038. Each case
 * runs the same packets against a real memcached and through memgate and
 * compares statuses and whether the item lives.
 */
import { describe, expect, it } from 'vitest';
import { Opcode as Op } from '../../src/protocol/binary/header.js';
import { useMemcachedAndProxy } from '../helpers/memcached-and-proxy.js';
import { oneTenantYaml } from '../helpers/proxy.js';
import { TextClient } from '../helpers/text-client.js';
import { arithExtras, packet, storeExtras, u32, type PacketSpec } from '../unit/protocol/binary/binary-fixtures.js';

const env = useMemcachedAndProxy(oneTenantYaml());

const THIRTY_DAYS_S = 30 * 24 * 3600;

interface Response {
  status: number;
  value: string;
}

/** Sends each packet and reads its response (none of them is quiet). */
async function exchange(port: number, specs: readonly PacketSpec[]): Promise<Response[]> {
  const c = await TextClient.connect(port);
  const out: Response[] = [];
  for (const spec of specs) {
    c.send(packet(spec));
    let buf = await c.readBytes(24);
    const total = 24 + buf.readUInt32BE(8);
    while (buf.length < total) buf = Buffer.concat([buf, await c.readBytes(total - buf.length)]);
    const extras = buf[4] ?? 0;
    const keyLength = buf.readUInt16BE(2);
    out.push({ status: buf.readUInt16BE(6), value: buf.subarray(24 + extras + keyLength, total).toString('latin1') });
  }
  c.close();
  return out;
}

/** The item's remaining TTL in seconds through the text meta protocol (-1: never expires; null: missing). */
async function ttl(port: number, key: string): Promise<number | null> {
  const c = await TextClient.connect(port);
  const reply = await c.request(`mg ${key} t\r\n`);
  c.close();
  const m = /^HD t(-?\d+)\r\n$/.exec(reply);
  return m === null ? null : Number(m[1]);
}

/** Runs `specs` (with `key` in them) both ways; returns the responses and the TTL left, from each side. */
async function both(key: string, specs: (key: string) => PacketSpec[]) {
  const direct = await exchange(env.mc.port, specs(`direct-${key}`));
  const proxied = await exchange(env.gate.port(0), specs(key));
  return {
    direct,
    proxied,
    directTtl: await ttl(env.mc.port, `direct-${key}`),
    proxiedTtl: await ttl(env.gate.port(0), key),
  };
}

const get = (key: string): PacketSpec => ({ opcode: Op.GET, key });

describe('binary expirations past 2^31-1', () => {
  for (const exptime of [0xffffffff, 0x80000000, 0xfffffffe]) {
    it(`stores a SET with expiration 0x${exptime.toString(16)} that lives, as memcached does`, async () => {
      const r = await both(`set-${exptime}`, (key) => [
        { opcode: Op.SET, key, extras: storeExtras(5, exptime), value: 'alive' },
        get(key),
      ]);
      expect(r.direct.map((x) => x.status)).toEqual([0, 0]);
      expect(r.proxied).toEqual(r.direct);
      expect(r.directTtl).toBeGreaterThan(THIRTY_DAYS_S);
      expect(r.proxiedTtl).toBeGreaterThan(THIRTY_DAYS_S);
    });
  }

  it('keeps ADD and REPLACE with a far expiration, as memcached does', async () => {
    const r = await both('add', (key) => [
      { opcode: Op.ADD, key, extras: storeExtras(0, 0xffffffff), value: 'a' },
      { opcode: Op.REPLACE, key, extras: storeExtras(0, 0x90000000), value: 'b' },
      get(key),
    ]);
    expect(r.direct.map((x) => x.status)).toEqual([0, 0, 0]);
    expect(r.proxied).toEqual(r.direct);
    expect(r.proxiedTtl).toBeGreaterThan(THIRTY_DAYS_S);
  });

  it('TOUCH with 0xffffffff makes a short-lived item live, as memcached does', async () => {
    const r = await both('touch', (key) => [
      { opcode: Op.SET, key, extras: storeExtras(0, 100), value: 't' },
      { opcode: Op.TOUCH, key, extras: u32(0xffffffff) },
      get(key),
    ]);
    expect(r.direct.map((x) => x.status)).toEqual([0, 0, 0]);
    expect(r.proxied.map((x) => x.status)).toEqual([0, 0, 0]);
    expect(r.directTtl).toBeGreaterThan(THIRTY_DAYS_S);
    expect(r.proxiedTtl).toBeGreaterThan(THIRTY_DAYS_S);
  });

  for (const opcode of [Op.GAT, Op.GATK]) {
    it(`GAT opcode 0x${opcode.toString(16)} with 0x80000000 answers the value and makes it live, as memcached does`, async () => {
      const r = await both(`gat-${opcode}`, (key) => [
        { opcode: Op.SET, key, extras: storeExtras(0, 100), value: 'g' },
        { opcode, key, extras: u32(0x80000000) },
      ]);
      expect(r.direct.map((x) => [x.status, x.value])).toEqual([
        [0, ''],
        [0, 'g'],
      ]);
      expect(r.proxied).toEqual(r.direct);
      expect(r.proxiedTtl).toBeGreaterThan(THIRTY_DAYS_S);
    });
  }

  it('GATQ with 0xffffffff answers a hit, as memcached does', async () => {
    const r = await both('gatq', (key) => [
      { opcode: Op.SET, key, extras: storeExtras(0, 100), value: 'q' },
      { opcode: Op.GATQ, key, extras: u32(0xffffffff) },
    ]);
    expect(r.direct.map((x) => x.status)).toEqual([0, 0]);
    expect(r.proxied).toEqual(r.direct);
    expect(r.proxiedTtl).toBeGreaterThan(THIRTY_DAYS_S);
  });

  it('INCREMENT and DECREMENT with expiration 0x80000000 create the counter, as memcached does', async () => {
    const r = await both('counter', (key) => [
      { opcode: Op.INCREMENT, key, extras: arithExtras(1n, 40n, 0x80000000) },
      { opcode: Op.DECREMENT, key: `${key}-d`, extras: arithExtras(1n, 9n, 0xfffffffe) },
      { opcode: Op.INCREMENT, key, extras: arithExtras(2n, 0n, 0x80000000) },
    ]);
    expect(r.direct.map((x) => x.status)).toEqual([0, 0, 0]);
    expect(r.proxied.map((x) => x.status)).toEqual(r.direct.map((x) => x.status));
    expect(r.proxiedTtl).toBeGreaterThan(THIRTY_DAYS_S);
  });

  it('expires a SET with an absolute time in the past at once, as memcached does', async () => {
    const r = await both('past', (key) => [
      { opcode: Op.SET, key, extras: storeExtras(0, 1_000_000_000), value: 'gone' },
      get(key),
    ]);
    expect(r.direct.map((x) => x.status)).toEqual([0, 1]);
    expect(r.proxied.map((x) => x.status)).toEqual([0, 1]);
  });

  it('accepts a tenant FLUSH with delay 0xffffffff and leaves the items readable, as memcached does', async () => {
    const proxied = await exchange(env.gate.port(0), [
      { opcode: Op.SET, key: 'before-flush', extras: storeExtras(0, 0), value: 'kept' },
      { opcode: Op.FLUSH, extras: u32(0xffffffff) },
      get('before-flush'),
    ]);
    expect(proxied.map((x) => [x.status, x.value])).toEqual([
      [0, ''],
      [0, ''],
      [0, 'kept'],
    ]);
  });
});
