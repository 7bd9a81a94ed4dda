/**
 * Regression (found by test/compat: every text client read the old value
 * after a refused oversized set): memcached drops a key's old item when a
 * `set` or `ms` of it is refused as too large; memgate refused the value
 * before memcached saw it and left the old item readable. Each case runs
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

describe('a SET refused as too large', () => {
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
