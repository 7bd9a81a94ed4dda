/**
 * Text argument errors, differentially: every line is sent to a real memcached
 * (1.6) and through memgate (a namespace tenant), and the replies compared.
 * Each request is followed by `version`, proving both streams stay in step.
 *
 * Left out on purpose (memgate answers differently by design; see the
 * request-parser header and docs/errors.md): a storage command whose line is
 * refused has its value swallowed (memcached runs it as a command); a storage
 * command without a readable data length ends the stream; numbers are plain
 * digits (no '+'); meta tokens, forwarded as they are, must fit their type;
 * each meta command takes only the flags it uses; noreply never hides an error.
 */
import { describe, expect, it } from 'vitest';
import { useMemcachedAndProxy } from '../helpers/memcached-and-proxy.js';
import { oneTenantYaml } from '../helpers/proxy.js';
import { TextClient } from '../helpers/text-client.js';

const env = useMemcachedAndProxy(oneTenantYaml());

/** Lines whose replies do not depend on what is stored (misses, errors, STORED, OK). */
const LINES: readonly string[] = [
  // gat / gats
  'gat k\r\n',
  'gats k\r\n',
  'gat 10\r\n',
  'gats 0\r\n',
  'gat\r\n',
  'gat abc k\r\n',
  'gat 0x10 k\r\n',
  'gat 99999999999 missing-k\r\n',
  'gat 99999999999999999999 k\r\n',
  // flush_all (a tenant's rotates its generation; memcached's flushes)
  'flush_all -1\r\n',
  'flush_all abc\r\n',
  'flush_all 0x10\r\n',
  'flush_all 1 2\r\n',
  'flush_all 5 junk\r\n',
  'flush_all noreply 5\r\n',
  'flush_all 1 2 3\r\n',
  'flush_all 0\r\n',
  'flush_all 99999999999\r\n',
  'flush_all 99999999999999999999\r\n',
  'flush_all noreply\r\n',
  'flush_all 0 noreply\r\n',
  // storage numbers
  'set k 4294967296 0 1\r\nx\r\n',
  'set k 18446744073709551615 0 1\r\nx\r\n',
  'set k 0 4294967295 1\r\nx\r\n',
  'set k 0 99999999999 1\r\nx\r\n',
  'set k 0 -1 1\r\nx\r\n',
  'set k 0 0 1 noreply\r\nx\r\n',
  'cas k 0 0 1 18446744073709551615\r\nx\r\n',
  'add k 0 2147483648 1 noreply\r\nx\r\n',
  // delete
  'delete\r\n',
  'delete missing-k 0\r\n',
  'delete missing-k 1\r\n',
  'delete missing-k noreply\r\n',
  'delete missing-k junk\r\n',
  'delete missing-k 0 junk\r\n',
  'delete missing-k 0 noreply x\r\n',
  'delete missing-k 0 0 x\r\n',
  // incr / decr
  'incr\r\n',
  'incr k\r\n',
  'incr k abc\r\n',
  'incr k -1\r\n',
  'incr missing-k 1\r\n',
  'incr k 1 junk\r\n',
  'incr k 1 2 3\r\n',
  'incr k 18446744073709551616\r\n',
  'decr k abc\r\n',
  // touch
  'touch\r\n',
  'touch k\r\n',
  'touch k abc\r\n',
  'touch missing-k -1\r\n',
  'touch missing-k 4294967295\r\n',
  'touch k 10 a b\r\n',
  'touch k 99999999999999999999\r\n',
  // verbosity (a tenant's is answered locally)
  'verbosity\r\n',
  'verbosity 1\r\n',
  'verbosity abc\r\n',
  'verbosity 1 noreply\r\n',
  'verbosity noreply\r\n',
  'verbosity 1 2\r\n',
  'verbosity 1 2 3\r\n',
  'verbosity 4294967296\r\n',
  // meta
  'mg\r\n',
  'md\r\n',
  'ma\r\n',
  'me\r\n',
  'mg missing-k\r\n',
  'mg missing-k Z\r\n',
  'mg missing-k v v\r\n',
  'mg missing-k Tabc\r\n',
  'md missing-k Z\r\n',
  'md missing-k 1\r\n',
  'md missing-k q q\r\n',
  'md missing-k Tabc\r\n',
  'md missing-k C-1\r\n',
  'md missing-k O123456789012345678901234567890123456789\r\n',
  'ma missing-k Dabc\r\n',
  'ma missing-k J-1\r\n',
  'ma missing-k D18446744073709551616\r\n',
  'ma missing-k M\r\n',
  'ma missing-k Mincr\r\n',
  'ma missing-k q Mx\r\n',
  'ms k 1 Z\r\nx\r\n',
  'ms k 1 Tabc\r\nx\r\n',
  'ms k 1 Fabc\r\nx\r\n',
  'ms k 1 MSS\r\nx\r\n',
  'ms k 1 MZ\r\nx\r\n',
  // other
  'mn junk\r\n',
  'get\r\n',
  'gets\r\n',
];

describe('text argument replies, compared with memcached', () => {
  it.each(LINES.map((l) => [JSON.stringify(l), l]))('%s gets the reply memcached gives', async (_name, line) => {
    const direct = await TextClient.connect(env.mc.port);
    const proxied = await TextClient.connect(env.gate.port(0));
    const expected = await direct.request(line);
    expect(await proxied.request(line)).toBe(expected);
    expect(proxied.closed).toBe(false);
    direct.close();
    proxied.close();
  });

  it.each([
    ['ms', 'ERROR\r\n'],
    ['ms k', 'CLIENT_ERROR bad command line format\r\n'],
    ['ms k abc', 'CLIENT_ERROR bad command line format\r\n'],
  ])('ends the stream on %j (no data length to skip), with memcached’s reply', async (line, reply) => {
    const direct = await TextClient.connect(env.mc.port);
    expect((await direct.request(`${line}\r\n`)).startsWith(reply)).toBe(true);
    direct.close();
    const c = await TextClient.connect(env.gate.port(0));
    c.send(`${line}\r\nversion\r\n`);
    await c.waitClosed(3000);
    expect(c.take().toString('latin1')).toBe(reply);
  });
});

describe('extra tokens after commands that take none', () => {
  it('answers version junk with a VERSION line, as memcached does', async () => {
    for (const port of [env.mc.port, env.gate.port(0)]) {
      const c = await TextClient.connect(port);
      c.send('version junk\r\nmn\r\n');
      expect(await c.readUntil('MN\r\n')).toMatch(/^VERSION \S+\r\nMN\r\n$/);
      c.close();
    }
  });
});

describe("a tenant's flush_all delay, read as memcached reads it", () => {
  it.each([['-1'], ['0'], ['2592001'], ['99999999999']])(
    'rotates the generation at once for flush_all %s (now, or an absolute time that has passed)',
    async (delay) => {
      const c = await TextClient.connect(env.gate.port(0));
      expect(await c.request(`set flushed-${delay} 0 0 1\r\nx\r\n`)).toBe('STORED\r\n');
      expect(await c.request(`flush_all ${delay}\r\n`)).toBe('OK\r\n');
      expect(await c.request(`get flushed-${delay}\r\n`)).toBe('END\r\n');
      c.close();
    },
  );
});
