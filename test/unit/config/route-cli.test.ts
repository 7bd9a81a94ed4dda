/**
 * `memgate route` as an operator runs it (a child process: exit code, stdout,
 * stderr), and routeKey() on its own for the many key forms.
 */
import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routeKey, routeTarget, splitKeyLines } from '../../../src/admin/route-command.js';
import { loadConfig, parseConfigText } from '../../../src/config/load.js';
import { formatStateFile } from '../../../src/state/file-store.js';
import { buildRing } from '../../../src/upstream/ring.js';
import { serverSpec } from '../../../src/upstream/topology.js';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const GENERATION = 'Gen0abcd';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `memgate <args>` with `stdin` as its standard input. */
function memgate(args: string[], stdin = ''): Promise<Run> {
  const env = { ...process.env };
  delete env.MEMGATE_CONFIG;
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      ['--import', 'tsx', 'src/cli.ts', ...args],
      { cwd: ROOT, env },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
    child.stdin?.end(stdin);
  });
}

const DEFAULT_SERVERS = ['127.0.0.1:11212', '127.0.0.1:11213', '127.0.0.1:11214:2'];
const OWN_SERVERS = ['10.0.0.1:11211', '10.0.0.2:11211'];

let dir = '';
let configFile = '';
let stateFile = '';

function yaml(statePath: string): string {
  return `listen: [ { host: 127.0.0.1, port: 0 } ]
upstream:
  servers: [ ${DEFAULT_SERVERS.map((s) => `"${s}"`).join(', ')} ]
  pools:
    own: { servers: [ ${OWN_SERVERS.map((s) => `"${s}"`).join(', ')} ] }
state: { url: "file:${statePath}" }
tenants:
  shop: { prefix: "q7Zk2:", networks: [ "10.1.0.0/16" ] }
  blog: { prefix: "blog:", mode: enforce, pool: own, networks: [ "10.2.0.0/16" ] }
  ops: { admin: true, pool: own, networks: [ "127.0.0.1/32" ] }
  fresh: { prefix: "fr:", networks: [ "10.3.0.0/16" ] }
`;
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgate-route-'));
  stateFile = path.join(dir, 'state.json');
  configFile = path.join(dir, 'memgate.yaml');
  fs.writeFileSync(configFile, yaml(stateFile));
  const state = new Map([['shop', { generation: GENERATION, rotatedAtMs: 1_700_000_000_000, pendingAtMs: null }]]);
  fs.writeFileSync(stateFile, formatStateFile(state));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Where the ring of `servers` puts exactly these stored bytes (computed here, not by route-command.ts). */
function placed(servers: readonly string[], stored: Buffer): string {
  const specs = servers.map((s) => serverSpec(s));
  return specs[buildRing(specs, 'ketama').pick(stored, 0, stored.length)]?.address ?? '?';
}

const KEYS = ['foo', 'bar', 'user:1', 'session:abcdef', 'cart:42', 'ключ', 'k'.repeat(250)];

describe('memgate route', () => {
  it('prints "KEY host:port" per key, the raw key on the default pool without --tenant', async () => {
    const run = await memgate(['route', '--config', configFile, ...KEYS.slice(0, 6)]);
    const expected = KEYS.slice(0, 6).map((k) => `${k} ${placed(DEFAULT_SERVERS, Buffer.from(k))}\n`);
    expect(run).toEqual({ code: 0, stdout: expected.join(''), stderr: '' });
    expect(new Set(expected.map((l) => l.split(' ')[1])).size).toBeGreaterThan(1);
  });

  it('reads keys from stdin, one per line (LF or CRLF), when none are given', async () => {
    const run = await memgate(['route', '--config', configFile], 'foo\r\nbar\nuser:1');
    const expected = ['foo', 'bar', 'user:1'].map((k) => `${k} ${placed(DEFAULT_SERVERS, Buffer.from(k))}\n`);
    expect(run).toEqual({ code: 0, stdout: expected.join(''), stderr: '' });
  });

  it('with a namespace tenant, routes prefix + stored generation + key, and leaves the state file as it was', async () => {
    const before = fs.readFileSync(stateFile, 'utf8');
    const run = await memgate(['route', '--config', configFile, '--tenant', 'shop', 'foo', 'user:1']);
    const expected = ['foo', 'user:1'].map(
      (k) => `${k} ${placed(DEFAULT_SERVERS, Buffer.from(`q7Zk2:${GENERATION}${k}`))}\n`,
    );
    expect(run).toEqual({ code: 0, stdout: expected.join(''), stderr: '' });
    expect(fs.readFileSync(stateFile, 'utf8')).toBe(before);
  });

  it("with an enforce or admin tenant, routes the key unchanged on the tenant's pool", async () => {
    const blog = await memgate(['route', '--config', configFile, '--tenant', 'blog', 'blog:1', 'blog:2']);
    const ops = await memgate(['route', '--config', configFile, '--tenant', 'ops', 'anything']);
    expect(blog).toEqual({
      code: 0,
      stdout: ['blog:1', 'blog:2'].map((k) => `${k} ${placed(OWN_SERVERS, Buffer.from(k))}\n`).join(''),
      stderr: '',
    });
    expect(ops).toEqual({ code: 0, stdout: `anything ${placed(OWN_SERVERS, Buffer.from('anything'))}\n`, stderr: '' });
  });

  it('names each bad key on stderr, still prints the good ones, and exits 1', async () => {
    const run = await memgate(['route', '--config', configFile], `foo\nbad key\n\n${'x'.repeat(251)}\nctl\u0001\n`);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe(`foo ${placed(DEFAULT_SERVERS, Buffer.from('foo'))}\n`);
    expect(run.stderr.split('\n')).toEqual([
      'memgate: line 2: key contains a space or a control character',
      'memgate: line 3: key is empty',
      'memgate: line 4: key is 251 bytes: memcached keys are at most 250',
      'memgate: line 5: key contains a space or a control character',
      '',
    ]);
  });

  it.each([
    [['--tenant', 'nope', 'x'], 'memgate: no tenant named "nope" in the config (tenants: shop, blog, ops, fresh)\n'],
    [
      ['--tenant', 'blog', 'x'],
      'memgate: key "x" does not start with one of tenant "blog"\'s prefixes (memgate answers CLIENT_ERROR access denied)\n',
    ],
  ])('refuses %j with a clear message and exit 1', async (args, stderr) => {
    expect(await memgate(['route', '--config', configFile, ...args])).toEqual({ code: 1, stdout: '', stderr });
  });

  it('refuses a namespace tenant without a stored generation instead of creating one', async () => {
    const run = await memgate(['route', '--config', configFile, '--tenant', 'fresh', 'x']);
    expect(run).toEqual({
      code: 1,
      stdout: '',
      stderr: `memgate: tenant "fresh" has no generation yet in state file ${stateFile} (memgate creates it at start; route never does)\n`,
    });
    expect(fs.readFileSync(stateFile, 'utf8')).not.toContain('fresh');
  });

  it('refuses an unreadable config with exit 1', async () => {
    const run = await memgate(['route', '--config', path.join(dir, 'missing.yaml'), 'x']);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('missing.yaml');
  });
});

describe('routeKey', () => {
  it('routes a key too long for the namespace by its digest form, as the proxy stores it', () => {
    const config = loadConfig(configFile);
    const target = routeTarget(config, 'shop');
    const ns = Buffer.from(`q7Zk2:${GENERATION}`);
    for (const key of ['k'.repeat(250), `${'é'.repeat(120)}end`, '\u00ffstarts-with-ff']) {
      const bytes = Buffer.from(key, key.startsWith('\u00ff') ? 'latin1' : 'utf8');
      const digest = createHmac('sha256', ns).update(bytes).digest('base64url');
      const stored = Buffer.concat([ns, Buffer.from([0xff]), Buffer.from(digest, 'latin1')]);
      expect(routeKey(target, bytes)).toEqual({ server: placed(DEFAULT_SERVERS, stored) });
    }
    const short = Buffer.from('fits');
    expect(routeKey(target, short)).toEqual({ server: placed(DEFAULT_SERVERS, Buffer.concat([ns, short])) });
  });

  it('refuses a state store that is not a file for a namespace tenant, and needs none for the others', () => {
    const redis = path.join(dir, 'redis.yaml');
    fs.writeFileSync(redis, yaml(stateFile).replace(`file:${stateFile}`, 'redis://127.0.0.1:6379/0'));
    const config = loadConfig(redis);
    expect(() => routeTarget(config, 'shop')).toThrow(/is not one/);
    expect(routeKey(routeTarget(config, 'ops'), Buffer.from('a'))).toEqual({
      server: placed(OWN_SERVERS, Buffer.from('a')),
    });
  });

  it('names a unix socket server by its path and an IPv6 one as [address]:port', () => {
    const text = `listen: [ { host: 127.0.0.1, port: 0 } ]
upstream: { servers: [ { path: /run/memcached/a.sock }, "[::1]:11212" ] }
tenants: { ops: { admin: true } }
`;
    const target = routeTarget(parseConfigText(text, 'm.yaml', {}), undefined);
    const seen = new Set<string>();
    for (let i = 0; i < 64; i++) {
      const routed = routeKey(target, Buffer.from(`key:${i}`));
      if ('server' in routed) seen.add(routed.server);
    }
    expect(seen).toEqual(new Set(['/run/memcached/a.sock', '[::1]:11212']));
  });

  it('splits stdin into keys: LF or CRLF, the last newline optional, blank lines kept as empty keys', () => {
    const keys = splitKeyLines(Buffer.from('a\r\nb\n\nc')).map((k) => k.toString());
    expect(keys).toEqual(['a', 'b', '', 'c']);
    expect(splitKeyLines(Buffer.from('a\n')).map((k) => k.toString())).toEqual(['a']);
  });
});
