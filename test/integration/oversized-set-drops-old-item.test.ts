/**
 * Regression (found by test/compat: every text client read the old value
 * after a refused oversized set): memcached drops a key's old item when a
 * `set`, `ms` or binary SET of it is refused as too large; memgate refused
 * the value before memcached saw it and left the old item readable. Each case runs
 * against memcached itself and through a tenant, and the replies must match.
 */
import { describe, expect, it } from 'vitest';
import { oneTenantYaml } from '../helpers/proxy.js';
import { useMemcachedAndProxy } from '../helpers/memcached-and-proxy.js';
import { TextClient } from '../helpers/text-client.js';

// memcached's default item size limit is 1 MB, memgate's limits.maxValueBytes too
const env = useMemcachedAndProxy(oneTenantYaml());
const BIG = 2 * 1024 * 1024;

function oversized(line: string): string {
  return `${line.replace('<n>', String(BIG))}\r\n${'v'.repeat(BIG)}\r\n`;
}

async function replies(port: number, input: string): Promise<string> {
  const c = await TextClient.connect(port);
  const r = await c.request(input, 10_000);
  c.close();
  return r;
}

const CASES: [string, string][] = [
  ['set, then get', `set k 0 0 1\r\na\r\n${oversized('set k 0 0 <n>')}get k\r\n`],
  ['ms in append mode, then mg', `ms j 1\r\nb\r\n${oversized('ms j <n> MA')}mg j v\r\n`],
  ['ms with flags and a base64 key', `ms Yg== 1 b\r\nc\r\n${oversized('ms Yg== <n> b T0 F5 q')}mg Yg== b v\r\n`],
  [
    'set of a missing key, pipelined between others',
    `get x\r\n${oversized('set x 0 0 <n>')}set y 0 0 1\r\nd\r\nget x y\r\n`,
  ],
  [
    'add and cas keep the old item',
    `set a 0 0 1\r\ne\r\n${oversized('add a 0 0 <n>')}${oversized('cas a 0 0 <n> 1')}get a\r\n`,
  ],
];

/** A binary SET (0x01) of `bytes` bytes, or SETQ (0x11); opaque 7. */
function binarySet(key: string, bytes: number, opcode = 0x01): Buffer {
  const k = Buffer.from(key);
  const h = Buffer.alloc(24 + 8);
  h[0] = 0x80;
  h[1] = opcode;
  h.writeUInt16BE(k.length, 2);
  h[4] = 8;
  h.writeUInt32BE(8 + k.length + bytes, 8);
  h.writeUInt32BE(7, 12);
  return Buffer.concat([h, k, Buffer.alloc(bytes, 0x76)]);
}

/** Sends a binary packet, returns its reply's opcode and status, then the reply of a text `get <key>` after it. */
async function binaryThenGet(port: number, packet: Buffer, key: string): Promise<[number, number, string]> {
  const c = await TextClient.connect(port);
  c.send(packet);
  const head = await c.readBytes(24, 10_000);
  const bodyLength = head.readUInt32BE(8);
  if (head.length < 24 + bodyLength) await c.readBytes(24 + bodyLength - head.length);
  c.close();
  // a connection speaks one protocol (memcached decides by its first byte): the get goes on another
  return [head[1] ?? -1, head.readUInt16BE(6), await replies(port, `get ${key}\r\n`)];
}

describe('a SET refused as too large', () => {
  it.each([
    ['SET', 0x01],
    ['SETQ', 0x11],
  ])('drops the old item as memcached does: binary %s', async (_name, opcode) => {
    const results: [number, number, string][] = [];
    for (const port of [env.mc.port, env.gate.port(0)]) {
      expect(await replies(port, 'set bk 0 0 1\r\na\r\n')).toBe('STORED\r\n');
      results.push(await binaryThenGet(port, binarySet('bk', BIG, opcode), 'bk'));
    }
    expect(results[0]).toEqual([opcode, 0x03, 'END\r\n']);
    expect(results[1]).toEqual(results[0]);
  });

  it.each(CASES)('drops the old item as memcached does: %s', async (_name, input) => {
    const direct = await replies(env.mc.port, input);
    expect(await replies(env.gate.port(0), input)).toBe(direct);
  });

  it('keeps the tenant keyspace: another tenant’s item of the same name is not dropped', async () => {
    expect(await replies(env.mc.port, 'set k 0 0 5\r\nother\r\n')).toBe('STORED\r\n');
    expect(await replies(env.gate.port(0), `set k 0 0 1\r\na\r\n${oversized('set k 0 0 <n>')}get k\r\n`)).toBe(
      'STORED\r\nSERVER_ERROR object too large for cache\r\nEND\r\n',
    );
    expect(await replies(env.mc.port, 'get k\r\n')).toBe('VALUE k 0 5\r\nother\r\nEND\r\n');
  });
});
