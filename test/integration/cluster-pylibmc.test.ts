/**
 * memgate in front of the cluster an application already fills: pylibmc
 * (libmemcached, behaviors={"ketama_weighted": True}) and memgate place every
 * key on the same one of three real memcached servers, so
 *
 *   - keys pylibmc wrote straight to the servers are all read through memgate
 *     (an enforce tenant and an admin tenant: keys forwarded unchanged), and
 *   - keys written through memgate are all found by pylibmc going straight to
 *     the servers,
 *
 * with unequal weights, UTF-8 keys (bytes ≥ 0x80) and long keys.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnMemcached, type MemcachedProcess } from '../helpers/spawn-memcached.js';
import { startProxy, type RunningProxy } from '../helpers/proxy.js';
import { TextClient } from '../helpers/text-client.js';

const KEYS = 300;
const WEIGHTS = [1, 2, 3];

let servers: MemcachedProcess[] = [];
let specs: string[] = [];
let gate: RunningProxy;

beforeAll(async () => {
  servers = await Promise.all(WEIGHTS.map(() => spawnMemcached()));
  specs = servers.map((s, i) => `${s.address}:${WEIGHTS[i] ?? 1}`);
  gate = await startProxy(
    `
listen:
  - { host: 127.0.0.1, port: 0, tenant: app }
  - { host: 127.0.0.1, port: 0, tenant: ops }
upstream:
  servers: [ ${specs.map((s) => `"${s}"`).join(', ')} ]
state: { url: "\${STATE}" }
tenants:
  app: { prefix: "app:", mode: enforce }
  ops: { admin: true }
`,
    servers[0]?.address ?? '',
  );
});

afterAll(async () => {
  await gate?.stop();
  await Promise.all(servers.map((s) => s.stop()));
});

/** Keys with the tenant's prefix: ASCII of many lengths (up to 250 bytes) and UTF-8. */
function keysFor(tag: string): Buffer[] {
  const keys: Buffer[] = [];
  for (let i = 0; i < KEYS; i++) {
    const base = i % 4 === 0 ? `app:${tag}:ключ:${i}:` : `app:${tag}:user:${i}:`;
    const pad = i % 10 === 0 ? 250 - Buffer.byteLength(base) : (i * 13) % 60;
    keys.push(Buffer.from(base + 'x'.repeat(pad), 'utf8'));
  }
  return keys;
}

const valueOf = (tag: string, i: number): string => `${tag}-value-${i}`;

/** pylibmc (ketama_weighted) talks to the servers directly: `op` is "set" or "get" for every key. */
function pylibmc(op: 'set' | 'get', keys: readonly Buffer[], tag: string): Record<string, string> {
  const script = [
    'import sys, json, pylibmc',
    'spec = json.loads(sys.stdin.readline())',
    'c = pylibmc.Client(spec["servers"], behaviors={"ketama_weighted": True})',
    'keys = [bytes.fromhex(k) for k in spec["keys"]]',
    'if spec["op"] == "set":',
    '    failed = c.set_multi({k: spec["values"][i].encode() for i, k in enumerate(keys)})',
    '    print(json.dumps({"failed": len(failed)}))',
    'else:',
    '    got = c.get_multi(keys)',
    '    print(json.dumps({k.hex(): v.decode() for k, v in got.items()}))',
  ].join('\n');
  const input = JSON.stringify({
    op,
    servers: specs,
    keys: keys.map((k) => k.toString('hex')),
    values: keys.map((_, i) => valueOf(tag, i)),
  });
  return JSON.parse(execFileSync('/usr/bin/python3', ['-c', script], { input: `${input}\n` }).toString()) as Record<
    string,
    string
  >;
}

/** Every key through memgate's listener `listener`: one pipelined `get` each, then `version`; value by key. */
async function getThrough(listener: number, keys: readonly Buffer[]): Promise<Map<string, string>> {
  const client = await TextClient.connect(gate.port(listener));
  try {
    client.send(
      Buffer.concat([
        ...keys.flatMap((k) => [Buffer.from('get '), k, Buffer.from('\r\n')]),
        Buffer.from('version\r\n'),
      ]),
    );
    let text = '';
    while (!/VERSION [^\r]*\r\n$/.test(text)) text += await client.readUntil('\r\n', 20_000);
    const found = new Map<string, string>();
    const re = /VALUE (\S+) \d+ \d+\r\n([^\r]*)\r\n/g;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) found.set(m[1] ?? '', m[2] ?? '');
    expect(text.match(/END\r\n/g)?.length).toBe(keys.length);
    return found;
  } finally {
    client.close();
  }
}

/** Sets every key through memgate's listener `listener` (pipelined), expecting STORED for each. */
async function setThrough(listener: number, keys: readonly Buffer[], tag: string): Promise<void> {
  const client = await TextClient.connect(gate.port(listener));
  try {
    const parts: Buffer[] = [];
    keys.forEach((k, i) => {
      const v = valueOf(tag, i);
      parts.push(Buffer.from('set '), k, Buffer.from(` 0 0 ${v.length}\r\n${v}\r\n`));
    });
    client.send(Buffer.concat([...parts, Buffer.from('version\r\n')]));
    let all = '';
    while (!/VERSION [^\r]*\r\n$/.test(all)) all += await client.readUntil('\r\n', 20_000);
    expect(all.match(/STORED\r\n/g)?.length).toBe(keys.length);
  } finally {
    client.close();
  }
}

describe('memgate and pylibmc (ketama_weighted) share one cluster of three servers, weights 1, 2, 3', () => {
  it.each([
    ['an enforce tenant', 0, 'pe'],
    ['an admin tenant', 1, 'pa'],
  ])('reads through %s every key pylibmc wrote straight to the servers', async (_name, listener, tag) => {
    const keys = keysFor(tag);
    expect(pylibmc('set', keys, tag)).toEqual({ failed: 0 });
    const found = await getThrough(listener, keys);
    keys.forEach((k, i) => expect(found.get(k.toString('latin1')), k.toString('utf8')).toBe(valueOf(tag, i)));
    // the keys are spread: every server holds some (weights 1, 2, 3)
    for (const s of servers) {
      const c = await TextClient.connect(s.port);
      const stats = await c.request('stats\r\n');
      c.close();
      expect(Number(/STAT curr_items (\d+)/.exec(stats)?.[1] ?? 0)).toBeGreaterThan(0);
    }
  });

  it.each([
    ['an enforce tenant', 0, 'me'],
    ['an admin tenant', 1, 'ma'],
  ])('lets pylibmc find every key written through %s', async (_name, listener, tag) => {
    const keys = keysFor(tag);
    await setThrough(listener, keys, tag);
    const got = pylibmc('get', keys, tag);
    keys.forEach((k, i) => expect(got[k.toString('hex')], k.toString('utf8')).toBe(valueOf(tag, i)));
  });
});
