/**
 * Placement against a real libmemcached client: pylibmc with
 * behaviors={"ketama_weighted": True} writes keys straight to three real
 * memcached processes; each server is then asked directly which keys it holds,
 * and for every key that server must be the one memgate's ring (and
 * `memgate route`) names. The same for twemproxy (`hash: md5, distribution:
 * ketama`), with and without server names. Reading those keys through memgate
 * needs the cluster runtime (issue #11) and is tested with it.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRing } from '../../src/upstream/ring.js';
import { serverSpec, type UpstreamServerSpec } from '../../src/upstream/topology.js';
import { freePort, spawnMemcached, waitForPort, type MemcachedProcess } from '../helpers/spawn-memcached.js';
import { TextClient } from '../helpers/text-client.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const KEYS_PER_CASE = 600;

let servers: MemcachedProcess[] = [];
let dir = '';

beforeAll(async () => {
  servers = await Promise.all([spawnMemcached(), spawnMemcached(), spawnMemcached()]);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgate-placement-'));
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Keys a client would use: ASCII of many lengths, and UTF-8 (bytes ≥ 0x80). Distinct per `tag`. */
function keysFor(tag: string): Buffer[] {
  const keys: Buffer[] = [];
  for (let i = 0; i < KEYS_PER_CASE; i++) {
    const pad = 'x'.repeat((i * 37) % 180);
    keys.push(Buffer.from(i % 5 === 0 ? `${tag}:ключ:${i}:é${pad}` : `${tag}:user:${i}:${pad}`, 'utf8'));
  }
  return keys;
}

/** pylibmc (libmemcached) writes every key to the server it chooses; fails on any key it could not store. */
function writeWithPylibmc(specs: readonly string[], keys: readonly Buffer[]): void {
  const script = [
    'import sys, json, pylibmc',
    'spec = json.loads(sys.stdin.readline())',
    'c = pylibmc.Client(spec["servers"], behaviors={"ketama_weighted": True})',
    'failed = c.set_multi({bytes.fromhex(k): b"v" for k in spec["keys"]})',
    'print(json.dumps(len(failed)))',
  ].join('\n');
  const input = JSON.stringify({ servers: specs, keys: keys.map((k) => k.toString('hex')) });
  const out = execFileSync('/usr/bin/python3', ['-c', script], { input: `${input}\n` }).toString();
  expect(JSON.parse(out)).toBe(0);
}

/** Asks one server directly, `mg <key>` per key (HD: held, EN: not), pipelined and ended by `mn`. */
async function held(server: MemcachedProcess, keys: readonly Buffer[]): Promise<boolean[]> {
  const client = await TextClient.connect(server.port);
  try {
    client.send(
      Buffer.concat([...keys.flatMap((k) => [Buffer.from('mg '), k, Buffer.from('\r\n')]), Buffer.from('mn\r\n')]),
    );
    const lines = (await client.readUntil('MN\r\n', 20_000)).split('\r\n').slice(0, keys.length);
    expect(lines.every((l) => l === 'HD' || l === 'EN')).toBe(true);
    return lines.map((l) => l === 'HD');
  } finally {
    client.close();
  }
}

/** `memgate route` with the keys on stdin, for a config whose default pool is `specs`. */
function route(specs: readonly string[], keys: readonly Buffer[]): Promise<string[]> {
  const config = path.join(dir, `route-${specs.join('_').replace(/[^0-9]/g, '')}.yaml`);
  fs.writeFileSync(
    config,
    `listen: [ { host: 127.0.0.1, port: 0 } ]
upstream: { servers: [ ${specs.map((s) => `"${s}"`).join(', ')} ] }
tenants: { ops: { admin: true, networks: [ "127.0.0.1/32" ] } }
`,
  );
  return new Promise((resolve, reject) => {
    const child = execFile(
      process.execPath,
      ['--import', 'tsx', 'src/cli.ts', 'route', '--config', config],
      { cwd: ROOT, maxBuffer: 16 * 1024 * 1024, encoding: 'buffer' },
      (err, stdout) => {
        if (err !== null) reject(err);
        else
          resolve(
            stdout
              .toString('utf8')
              .split('\n')
              .filter((l) => l !== '')
              .map((l) => l.slice(l.lastIndexOf(' ') + 1)),
          );
      },
    );
    child.stdin?.end(Buffer.concat(keys.flatMap((k) => [k, Buffer.from('\n')])));
  });
}

describe('placement matches pylibmc (ketama_weighted) on three real memcached servers', () => {
  it.each([
    ['equal weights', 'eq', ['', '', '']],
    ['weights 1, 2, 3', 'w123', [':1', ':2', ':3']],
    ['weights 5, 1, 1', 'w511', [':5', ':1', ':1']],
  ])('%s: every key is on the one server memgate route and buildRing name', async (_name, tag, weights) => {
    const specs = servers.map((s, i) => `${s.address}${weights[i] ?? ''}`);
    const keys = keysFor(tag);
    writeWithPylibmc(specs, keys);

    const holders = await Promise.all(servers.map((s) => held(s, keys)));
    const actual = keys.map((_, k) => {
      const on = servers.map((s, i) => (holders[i]?.[k] === true ? s.address : null)).filter((a) => a !== null);
      expect(on).toHaveLength(1);
      return on[0];
    });

    const ring = buildRing(
      specs.map((s) => serverSpec(s)),
      'ketama',
    );
    expect(keys.map((k) => servers[ring.pick(k, 0, k.length)]?.address)).toEqual(actual);
    expect(await route(specs, keys)).toEqual(actual);
    // the keys really are spread: every server holds some
    expect(new Set(actual).size).toBe(3);
  });
});

/** Runs nutcracker over the three servers (md5 ketama) with `lines` as its server list; sets every key through it. */
async function writeWithTwemproxy(lines: readonly string[], keys: readonly Buffer[]): Promise<void> {
  const port = await freePort();
  const conf = path.join(dir, `nutcracker-${port}.yml`);
  fs.writeFileSync(
    conf,
    [
      'placement:',
      `  listen: 127.0.0.1:${port}`,
      '  hash: md5',
      '  distribution: ketama',
      '  auto_eject_hosts: false',
      '  servers:',
      ...lines.map((l) => `    - ${l}`),
      '',
    ].join('\n'),
  );
  const statsPort = await freePort();
  const child = spawn(
    'nutcracker',
    ['-c', conf, '-s', String(statsPort), '-a', '127.0.0.1', '-v', '2', '-o', path.join(dir, `nutcracker-${port}.log`)],
    { stdio: 'ignore' },
  );
  try {
    await waitForPort('127.0.0.1', port);
    const client = await TextClient.connect(port);
    client.send(Buffer.concat([...keys.flatMap((k) => [Buffer.from('set '), k, Buffer.from(' 0 0 1\r\nv\r\n')])]));
    let all = '';
    while (all.split('\r\n').length - 1 < keys.length) all += await client.readUntil('\r\n', 20_000);
    client.close();
    expect(
      all
        .split('\r\n')
        .slice(0, keys.length)
        .every((l) => l === 'STORED'),
    ).toBe(true);
  } finally {
    child.kill('SIGTERM');
  }
}

describe('placement matches twemproxy (hash: md5, distribution: ketama) on the same servers', () => {
  it.each([
    ['without names, weights 1, 1, 1', 'tw', ['', '', ''], [null, null, null]],
    ['with names, weights 1, 2, 3', 'twn', [':1', ':2', ':3'], ['alpha', 'beta', 'gamma']],
  ])('%s: every key is on the one server buildRing names', async (_name, tag, weights, names) => {
    const specs: UpstreamServerSpec[] = servers.map((s, i) => ({
      ...serverSpec(`${s.address}${weights[i] ?? ''}`),
      name: names[i] ?? null,
    }));
    const lines = specs.map((s) => `${s.address}:${s.weight}${s.name === null ? '' : ` ${s.name}`}`);
    const keys = keysFor(tag);
    await writeWithTwemproxy(lines, keys);

    const holders = await Promise.all(servers.map((s) => held(s, keys)));
    const actual = keys.map((_, k) => {
      const on = servers.map((s, i) => (holders[i]?.[k] === true ? s.address : null)).filter((a) => a !== null);
      expect(on).toHaveLength(1);
      return on[0];
    });
    const ring = buildRing(specs, 'ketama');
    expect(keys.map((k) => servers[ring.pick(k, 0, k.length)]?.address)).toEqual(actual);
    expect(new Set(actual).size).toBe(3);
  });
});

describe("placement matches libmemcached's tools (memccp: modula, default hash)", () => {
  it('every file memccp stores is on the server a modula ring names', async () => {
    const files = path.join(dir, 'memccp');
    fs.mkdirSync(files, { recursive: true });
    const names = Array.from({ length: 60 }, (_, i) => `file-${i}-${'y'.repeat(i % 17)}`);
    for (const name of names) fs.writeFileSync(path.join(files, name), 'v');
    const list = servers.map((s) => s.address).join(',');
    execFileSync('memccp', [`--servers=${list}`, ...names], { cwd: files, stdio: ['ignore', 'ignore', 'pipe'] });
    const keys = names.map((n) => Buffer.from(n));
    const holders = await Promise.all(servers.map((s) => held(s, keys)));
    const actual = keys.map((_, k) => servers.filter((_s, i) => holders[i]?.[k] === true).map((s) => s.address));
    const specs = servers.map((s) => serverSpec(s.address));
    const ring = buildRing(specs, 'modula');
    expect(actual).toEqual(keys.map((k) => [servers[ring.pick(k, 0, k.length)]?.address]));
    expect(new Set(actual.flat()).size).toBe(3);
  });
});
