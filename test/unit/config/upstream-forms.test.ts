/**
 * Every form `upstream` takes (issue #11): server strings with weights, objects
 * with names, unix sockets, pools, distribution, tls — what each compiles to, and
 * the exact message for each mistake.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/config/errors.js';
import { parseConfigText } from '../../../src/config/load.js';
import { sharedServerNotes } from '../../../src/upstream/pool-notes.js';
import { compileTopology } from '../../../src/upstream/topology.js';
import { runCli } from '../../helpers/memgate-process.js';

const TENANTS = '  ops: { admin: true }\n';

/** A config whose `upstream:` block is `upstream` (indented lines) and whose tenants are `tenants`. */
function yaml(upstream: string, tenants = TENANTS): string {
  return `listen:\n  - { host: 127.0.0.1, port: 11211 }\nupstream:\n${upstream}tenants:\n${tenants}`;
}

/** The problems as `check-config` prints them (file m.yaml). */
function problems(text: string): string[] {
  try {
    parseConfigText(text, 'm.yaml', {});
  } catch (err) {
    if (err instanceof ConfigError) return err.lines();
    throw err;
  }
  return [];
}

describe('upstream server forms', () => {
  it('compiles "host:port", "host:port:weight", [ipv6], objects with names and unix sockets', () => {
    const config = parseConfigText(
      yaml(`  servers:
    - "10.0.0.1:11211"
    - "10.0.0.2:11212:3"
    - "[::1]:11213:2"
    - { host: cache-a.example.com, port: 11300, weight: 5, name: alpha }
    - { host: 10.0.0.9 }
    - { path: /run/memcached/memcached.sock, weight: 2, name: local }
`),
      'm.yaml',
      {},
    );
    const pool = compileTopology(config).pools.get('default');
    expect(pool?.distribution).toBe('ketama');
    expect(pool?.tls).toBeNull();
    expect(pool?.servers).toEqual([
      { address: '10.0.0.1:11211', host: '10.0.0.1', port: 11211, path: null, weight: 1, name: null },
      { address: '10.0.0.2:11212', host: '10.0.0.2', port: 11212, path: null, weight: 3, name: null },
      { address: '[::1]:11213', host: '::1', port: 11213, path: null, weight: 2, name: null },
      {
        address: 'cache-a.example.com:11300',
        host: 'cache-a.example.com',
        port: 11300,
        path: null,
        weight: 5,
        name: 'alpha',
      },
      { address: '10.0.0.9:11211', host: '10.0.0.9', port: 11211, path: null, weight: 1, name: null },
      {
        address: '/run/memcached/memcached.sock',
        host: '',
        port: 0,
        path: '/run/memcached/memcached.sock',
        weight: 2,
        name: 'local',
      },
    ]);
  });

  it.each([
    ['a weight of 0 in a string', '[ "a:1:0" ]', 'upstream.servers[0]: "a:1:0": weight must be at least 1'],
    [
      'a string that is not host:port[:weight]',
      '[ "a:1:x" ]',
      'upstream.servers[0]: "a:1:x" must be "host:port", "host:port:weight" (or "[ipv6]:port[:weight]")',
    ],
    [
      'a host without a port in a string',
      '[ "10.0.0.1" ]',
      'upstream.servers[0]: "10.0.0.1" must be "host:port", "host:port:weight" (or "[ipv6]:port[:weight]")',
    ],
    [
      'a weight of 0 in an object',
      '[ { host: a, port: 1, weight: 0 } ]',
      'upstream.servers[0].weight: must be at least 1',
    ],
    [
      'a fractional weight',
      '[ { host: a, port: 1, weight: 1.5 } ]',
      'upstream.servers[0]: must be "host:port[:weight]" or { host, port, weight, name } or { path, weight, name }',
    ],
    [
      "a weight past libmemcached's uint32",
      '[ { host: a, port: 1, weight: 4294967296 } ]',
      'upstream.servers[0].weight: must be at most 4294967295',
    ],
    [
      'a name with a space',
      '[ { host: a, port: 1, name: "has space" } ]',
      'upstream.servers[0].name: must be 1..128 printable ASCII characters without spaces',
    ],
    ['an unknown key', '[ { host: a, port: 1, bogus: 1 } ]', 'upstream.servers[0].bogus: unknown key "bogus"'],
    [
      'neither host nor path',
      '[ { port: 5 } ]',
      'upstream.servers[0]: needs exactly one of `host` (with `port`) or `path` (a unix socket)',
    ],
    [
      'both host and path',
      '[ { host: a, path: /tmp/m.sock } ]',
      'upstream.servers[0]: needs exactly one of `host` (with `port`) or `path` (a unix socket)',
    ],
    [
      'a relative unix socket path',
      '[ { path: memcached.sock } ]',
      'upstream.servers[0].path: must be an absolute path (a unix socket such as /run/memcached/memcached.sock)',
    ],
    [
      'a port on a unix socket',
      '[ { path: /tmp/m.sock, port: 11211 } ]',
      'upstream.servers[0].port: does not apply to a unix socket (`path`)',
    ],
    [
      'a port out of range',
      '[ { host: a, port: 70000 } ]',
      'upstream.servers[0].port: must be a port number from 1 to 65535',
    ],
    [
      'a number',
      '[ 5 ]',
      'upstream.servers[0]: must be "host:port[:weight]" or { host, port, weight, name } or { path, weight, name }',
    ],
    ['no server', '[ ]', 'upstream.servers: must list at least one memcached server'],
  ])('refuses %s', (_name, servers, message) => {
    expect(problems(yaml(`  servers: ${servers}\n`))).toEqual([`m.yaml:4: ${message}`]);
  });

  it.each([
    ['a string and an object', '[ "a:1", { host: a, port: 1, weight: 2 } ]', '"a:1" is listed twice (also servers[0])'],
    ['one server with two weights', '[ "a:1:1", "a:1:2" ]', '"a:1" is listed twice (also servers[0])'],
    ['an IPv6 server', '[ "[::1]:11211", { host: "::1" } ]', '"[::1]:11211" is listed twice (also servers[0])'],
    ['a unix socket', '[ { path: /s }, { path: /s, weight: 3 } ]', '"/s" is listed twice (also servers[0])'],
    [
      'a name',
      '[ { host: a, port: 1, name: x }, { host: b, port: 1, name: x } ]',
      'is hashed onto the ketama ring as "x", as servers[0] is: the two would share every point; give each its own `name`',
    ],
    [
      "a name equal to another server's host:port",
      '[ "b:2", { host: a, port: 1, name: "b:2" } ]',
      'is hashed onto the ketama ring as "b:2", as servers[0] is: the two would share every point; give each its own `name`',
    ],
  ])('refuses %s listed twice in one pool', (_name, servers, message) => {
    expect(problems(yaml(`  servers: ${servers}\n`))).toEqual([`m.yaml:4: upstream.servers[1]: ${message}`]);
  });
});

describe('distribution', () => {
  it('defaults to ketama and takes modula', () => {
    const ketama = parseConfigText(yaml('  servers: [ "a:1" ]\n'), 'm.yaml', {});
    const modula = parseConfigText(yaml('  servers: [ "a:1", "b:1:1" ]\n  distribution: modula\n'), 'm.yaml', {});
    expect(compileTopology(ketama).pools.get('default')?.distribution).toBe('ketama');
    expect(compileTopology(modula).pools.get('default')?.distribution).toBe('modula');
  });

  it('refuses another distribution', () => {
    expect(problems(yaml('  servers: [ "a:1" ]\n  distribution: random\n'))).toEqual([
      'm.yaml:5: upstream.distribution: must be ketama or modula',
    ]);
  });

  it('refuses weights under modula, which libmemcached does not use there', () => {
    expect(problems(yaml('  servers: [ "a:1:2", { host: b, port: 1, weight: 3 } ]\n  distribution: modula\n'))).toEqual(
      [
        "m.yaml:4: upstream.servers[0]: has weight 2, but distribution modula uses no weights (libmemcached's modula ignores them): use ketama, or leave the weight out",
        "m.yaml:4: upstream.servers[1]: has weight 3, but distribution modula uses no weights (libmemcached's modula ignores them): use ketama, or leave the weight out",
      ],
    );
  });
});

describe('pools', () => {
  const POOLS = `  servers: [ "10.0.0.1:11211" ]
  pools:
    own:
      servers: [ "10.0.1.1:11211", "10.0.1.2:11211:2" ]
      distribution: ketama
      tls: { ca: ca.pem, cert: c.pem, key: c.key, servername: memcached.internal }
    mod: { servers: [ "10.0.2.1:11211", "10.0.2.2:11211" ], distribution: modula }
`;

  it('compiles a pool per name beside "default", and tenants name theirs', () => {
    const config = parseConfigText(
      yaml(POOLS, '  ops: { admin: true, pool: own }\n  shop: { prefix: "s:" }\n'),
      'm.yaml',
      {},
    );
    const pools = compileTopology(config).pools;
    expect([...pools.keys()]).toEqual(['default', 'own', 'mod']);
    expect(pools.get('own')?.servers.map((s) => `${s.address}/${s.weight}`)).toEqual([
      '10.0.1.1:11211/1',
      '10.0.1.2:11211/2',
    ]);
    expect(pools.get('own')?.tls).toEqual({
      ca: 'ca.pem',
      cert: 'c.pem',
      key: 'c.key',
      servername: 'memcached.internal',
    });
    expect(pools.get('mod')?.distribution).toBe('modula');
    expect(config.tenants.ops?.pool).toBe('own');
    expect(config.tenants.shop?.pool).toBe('default');
    expect(sharedServerNotes(compileTopology(config))).toEqual([]);
  });

  it.each([
    [
      'a pool named "default"',
      '  servers: [ "a:1" ]\n  pools:\n    default: { servers: [ "b:1" ] }\n',
      TENANTS,
      ['m.yaml:6: upstream.pools.default: "default" is the name of upstream.servers; give this pool another name'],
    ],
    [
      'a pool without servers',
      '  servers: [ "a:1" ]\n  pools:\n    own: { servers: [] }\n',
      TENANTS,
      ['m.yaml:6: upstream.pools.own.servers: must list at least one memcached server'],
    ],
    [
      'a pool with a bad distribution and a server twice',
      '  servers: [ "a:1" ]\n  pools:\n    own: { servers: [ "b:1", "b:1" ], distribution: nope }\n',
      TENANTS,
      [
        'm.yaml:6: upstream.pools.own.distribution: must be ketama or modula',
        'm.yaml:6: upstream.pools.own.servers[1]: "b:1" is listed twice (also servers[0])',
      ],
    ],
    [
      'a bad pool name',
      '  servers: [ "a:1" ]\n  pools:\n    "bad name!": { servers: [ "b:1" ] }\n',
      TENANTS,
      ['m.yaml:6: upstream.pools["bad name!"]: invalid pool name: use 1..64 characters from A-Z a-z 0-9 _ . -'],
    ],
    [
      'an unknown key in a pool',
      '  servers: [ "a:1" ]\n  pools:\n    own: { servers: [ "b:1" ], ejectHosts: true }\n',
      TENANTS,
      ['m.yaml:6: upstream.pools.own.ejectHosts: unknown key "ejectHosts"'],
    ],
    [
      'a tenant on a pool that does not exist',
      '  servers: [ "a:1" ]\n  pools:\n    own: { servers: [ "b:1" ] }\n',
      '  ops: { admin: true, pool: other }\n',
      ['m.yaml:8: tenants.ops.pool: names pool "other", which is not under upstream.pools (pools: default, own)'],
    ],
    [
      'a tenant on a pool when there are no pools',
      '  servers: [ "a:1" ]\n',
      '  ops: { admin: true, pool: own }\n',
      ['m.yaml:6: tenants.ops.pool: names pool "own", which is not under upstream.pools (pools: default)'],
    ],
  ])('refuses %s', (_name, upstream, tenants, expected) => {
    expect(problems(yaml(upstream, tenants))).toEqual(expected);
  });

  it('notes a server that two pools share (a tenant on its own pool relies on not sharing servers)', () => {
    const config = parseConfigText(
      yaml(
        '  servers: [ "10.0.0.1:11211", "10.0.0.2:11211" ]\n  pools:\n    own: { servers: [ "10.0.0.2:11211:4", "10.0.0.3:11211" ] }\n',
      ),
      'm.yaml',
      {},
    );
    expect(sharedServerNotes(compileTopology(config))).toEqual([
      "server 10.0.0.2:11211 is in pools default, own: their tenants share its memory, so one pool's tenants can evict the others' items",
    ]);
  });

  it('check-config prints the shared-server note and still accepts the file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgate-pools-'));
    try {
      const file = path.join(dir, 'm.yaml');
      fs.writeFileSync(
        file,
        yaml(
          '  servers: [ "10.0.0.1:11211" ]\n  pools:\n    own: { servers: [ "10.0.0.1:11211" ] }\n',
          '  ops: { admin: true, pool: own }\n',
        ),
      );
      expect(await runCli(['check-config', '--config', file])).toEqual({
        code: 0,
        stdout:
          "config OK: 1 tenant, 1 listener\nnote: server 10.0.0.1:11211 is in pools default, own: their tenants share its memory, so one pool's tenants can evict the others' items\n",
        stderr: '',
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('upstream tls', () => {
  it('takes ca, cert + key and servername, per pool', () => {
    const config = parseConfigText(
      yaml(
        '  servers: [ "a:1" ]\n  tls: { ca: ca.pem }\n  pools:\n    own: { servers: [ "b:1" ], tls: { cert: c.pem, key: c.key } }\n',
      ),
      'm.yaml',
      {},
    );
    const pools = compileTopology(config).pools;
    expect(pools.get('default')?.tls).toEqual({ ca: 'ca.pem' });
    expect(pools.get('own')?.tls).toEqual({ cert: 'c.pem', key: 'c.key' });
  });

  it.each([
    [
      'a cert without its key',
      '{ cert: c.pem }',
      ['m.yaml:5: upstream.tls.key: is required with `cert` (a client certificate and its key)'],
    ],
    [
      'a key without its cert',
      '{ key: c.key }',
      ['m.yaml:5: upstream.tls.cert: is required with `key` (a client certificate and its key)'],
    ],
    [
      'an empty servername and an unknown key',
      '{ servername: "", verify: false }',
      ['m.yaml:5: upstream.tls.servername: must not be empty', 'm.yaml:5: upstream.tls.verify: unknown key "verify"'],
    ],
  ])('refuses %s', (_name, tls, expected) => {
    expect(problems(yaml(`  servers: [ "a:1" ]\n  tls: ${tls}\n`))).toEqual(expected);
  });
});
