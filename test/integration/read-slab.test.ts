/**
 * Upstream reads land in a slab (connection.ts, onread), and replies are held
 * as slices of it until their client reads them. These tests hold many
 * replies at once, across many slabs and reads, and check every byte: a
 * region written over by a later read would show as a wrong value.
 */
import { describe, expect, it } from 'vitest';
import { oneTenantYaml } from '../helpers/proxy.js';
import { useMemcachedAndProxy } from '../helpers/memcached-and-proxy.js';
import { TextClient } from '../helpers/text-client.js';

const env = useMemcachedAndProxy(oneTenantYaml());

/** A value of `size` bytes that names its key and position, so a stray byte from another value is caught. */
function valueOf(i: number, size: number): Buffer {
  const v = Buffer.alloc(size);
  const tag = Buffer.from(`<${i}>`, 'latin1');
  for (let o = 0; o < size; o++) v[o] = tag[o % tag.length] ?? 0;
  return v;
}

/** Sizes from 1 byte to 40 KiB: small replies share reads, large ones span reads and slabs. */
const sizeOf = (i: number): number => [1, 7, 100, 1500, 9000, 40_000][i % 6] ?? 1;

function expectedReply(keys: readonly number[]): Buffer {
  const parts: Buffer[] = [];
  for (const i of keys) {
    const v = valueOf(i, sizeOf(i));
    parts.push(Buffer.from(`VALUE slab:${i} 0 ${v.length}\r\n`, 'latin1'), v, Buffer.from('\r\nEND\r\n', 'latin1'));
  }
  return Buffer.concat(parts);
}

describe('replies held while later reads arrive', () => {
  it('keeps every held reply intact across many slabs (one-key gets, pipelined, read only at the end)', async () => {
    const c = await TextClient.connect(env.gate.port(0));
    const n = 300;
    for (let i = 0; i < n; i++) {
      const v = valueOf(i, sizeOf(i));
      c.send(
        Buffer.concat([Buffer.from(`set slab:${i} 0 0 ${v.length} noreply\r\n`, 'latin1'), v, Buffer.from('\r\n')]),
      );
    }
    c.send('version\r\n');
    await c.readUntil('\r\n', 10_000); // every set is stored (the sets are ahead of it on one upstream socket)
    c.take();
    // a second client's gets interleave with the first one's on the shared upstream sockets
    const other = await TextClient.connect(env.gate.port(0));
    const order = Array.from({ length: n }, (_, i) => (i * 7) % n);
    other.send(order.map((i) => `get slab:${i}\r\n`).join(''));
    c.send(Array.from({ length: n }, (_, i) => `get slab:${i}\r\n`).join(''));
    const want = expectedReply(Array.from({ length: n }, (_, i) => i));
    const wantOther = expectedReply(order);
    const [got, gotOther] = await Promise.all([
      c.readBytes(want.length, 20_000),
      other.readBytes(wantOther.length, 20_000),
    ]);
    expect(got.equals(want)).toBe(true);
    expect(gotOther.equals(wantOther)).toBe(true);
    c.close();
    other.close();
  });

  it('keeps a multi-get reply of many large values intact', async () => {
    const c = await TextClient.connect(env.gate.port(0));
    const keys = Array.from({ length: 60 }, (_, i) => i * 6 + 4); // all 9000-byte values, then 40 KiB ones
    const all = [...keys, ...keys.map((k) => k + 1)];
    for (const i of all) {
      const v = valueOf(i, sizeOf(i));
      c.send(Buffer.concat([Buffer.from(`set slab:${i} 0 0 ${v.length}\r\n`, 'latin1'), v, Buffer.from('\r\n')]));
      await c.readUntil('STORED\r\n');
    }
    c.send(`get ${all.map((i) => `slab:${i}`).join(' ')}\r\n`);
    const parts: Buffer[] = [];
    for (const i of all) {
      const v = valueOf(i, sizeOf(i));
      parts.push(Buffer.from(`VALUE slab:${i} 0 ${v.length}\r\n`, 'latin1'), v, Buffer.from('\r\n'));
    }
    parts.push(Buffer.from('END\r\n'));
    const want = Buffer.concat(parts);
    const got = await c.readBytes(want.length, 20_000);
    expect(got.equals(want)).toBe(true);
    c.close();
  });
});
