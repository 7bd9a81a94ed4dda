import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildRing,
  ketamaContinuum,
  ketamaPointCounts,
  ketamaServerString,
  oneAtATimeHash,
} from '../../../src/upstream/ring.js';
import { serverSpec, type UpstreamServerSpec } from '../../../src/upstream/topology.js';
import { buildVectorGenerator, type VectorGenerator } from '../../helpers/libmemcached-vectors.js';

/** A small deterministic PRNG (mulberry32), so a failure names keys that can be reproduced. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` keys of 1..maxLength bytes; `anyByte` draws from 0x00-0xff, else from printable ASCII. */
function randomKeys(count: number, seed: number, maxLength = 250, anyByte = false): Buffer[] {
  const next = prng(seed);
  return Array.from({ length: count }, () => {
    const key = Buffer.alloc(1 + Math.floor(next() * maxLength));
    for (let i = 0; i < key.length; i++) key[i] = anyByte ? Math.floor(next() * 256) : 0x21 + Math.floor(next() * 94);
    return key;
  });
}

const KEYS = [
  ...['foo', 'bar', 'baz', 'user:1', 'session:abc', 'a', 'q7Zk2:0123456789abcdef:cart'].map((k) => Buffer.from(k)),
  Buffer.from('clé-ünïcødé-ключ-キー', 'utf8'),
  Buffer.from([0x80, 0x81, 0xfe, 0xff]),
  Buffer.from([0xff]),
  Buffer.alloc(250, 'k'),
  Buffer.alloc(250, 0xe9),
  ...randomKeys(2000, 1),
  ...randomKeys(1000, 2, 250, true),
];

const servers = (...entries: string[]): UpstreamServerSpec[] => entries.map((e) => serverSpec(e));
const equal = (n: number, port = 11211): UpstreamServerSpec[] =>
  Array.from({ length: n }, (_, i) => serverSpec(`10.0.${i >> 8}.${i & 255}:${port}`));
const named = (name: string, host: string, weight = 1): UpstreamServerSpec => ({
  ...serverSpec(`${host}:11300`),
  weight,
  name,
});

const unix = (path: string, weight = 1): UpstreamServerSpec => ({
  address: path,
  host: '',
  port: 0,
  path,
  weight,
  name: null,
});

function ours(list: readonly UpstreamServerSpec[], distribution: 'ketama' | 'modula', keys: readonly Buffer[]) {
  const ring = buildRing(list, distribution);
  return keys.map((k) => ring.pick(k, 0, k.length));
}

let libmemcached: VectorGenerator;
beforeAll(() => {
  libmemcached = buildVectorGenerator();
});
afterAll(() => libmemcached.remove());

describe('ketama ring against libmemcached (MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED)', () => {
  const cases: [string, UpstreamServerSpec[]][] = [
    ['3 servers, equal weights, port 11211', servers('10.0.0.1:11211', '10.0.0.2:11211', '10.0.0.3:11211')],
    ['3 servers, equal weights, other ports', servers('127.0.0.1:11212', '127.0.0.1:11213', '127.0.0.1:21211')],
    ['3 servers, port 11211 and others mixed', servers('cache-a:11211', 'cache-b:11311', 'cache-c:11211')],
    ['3 servers, weights 1, 2, 3', servers('10.0.0.1:11211:1', '10.0.0.2:11211:2', '10.0.0.3:11211:3')],
    ['3 servers, weights 1, 5, 100', servers('127.0.0.1:11212:1', '127.0.0.1:11213:5', '127.0.0.1:11214:100')],
    ['2 servers, weights 7 and 3, host names', servers('mc1.example.com:11211:7', 'mc2.example.com:11222:3')],
    ['3 servers with names', [named('alpha', '10.1.1.1'), named('beta', '10.1.1.2', 2), named('gamma', '10.1.1.3')]],
    ['IPv6 addresses', servers('[::1]:11211', '[::1]:11212', '[fe80::1]:11213')],
    [
      'unix sockets beside TCP',
      [unix('/run/memcached/a.sock'), unix('/run/memcached/b.sock', 2), serverSpec('10.0.0.9:11211')],
    ],
    ['weights 1 and 1000 (the light server gets no point)', servers('10.0.0.1:11211:1', '10.0.0.2:11211:1000')],
    [
      'huge weights (object form)',
      [
        serverSpec({ host: '10.0.0.1', port: 11211, weight: 4000000000 }),
        serverSpec({ host: '10.0.0.2', port: 11212, weight: 3 }),
        serverSpec({ host: '10.0.0.3', port: 11213, weight: 2147483647 }),
      ],
    ],
    ['10 equal servers', equal(10)],
    ['25 equal servers (156 points each)', equal(25)],
    ['47 equal servers (156 points each)', equal(47, 11300)],
    ['50 equal servers (156 points each)', equal(50)],
  ];

  it.each(cases)('%s: every key on the server libmemcached picks', (_name, list) => {
    expect(ours(list, 'ketama', KEYS)).toEqual(libmemcached.place('ketama', list, KEYS));
  });

  it('gives each of 25, 47 and 50 equal servers 156 points and each of 3 or 10 servers 160, as libmemcached does', () => {
    expect(new Set(ketamaPointCounts(equal(25)))).toEqual(new Set([156]));
    expect(new Set(ketamaPointCounts(equal(47)))).toEqual(new Set([156]));
    expect(new Set(ketamaPointCounts(equal(50)))).toEqual(new Set([156]));
    expect(ketamaPointCounts(equal(3))).toEqual([160, 160, 160]);
    expect(ketamaPointCounts(equal(10))).toEqual(Array(10).fill(160));
    expect(ketamaPointCounts(servers('a:1:1', 'b:1:2', 'c:1:3'))).toEqual([80, 160, 240]);
    expect(ketamaContinuum(equal(25)).values).toHaveLength(25 * 156);
  });

  it('hashes "host-i" on port 11211, "host:port-i" otherwise, "name-i" with a name, "path:0-i" for a unix socket', () => {
    expect(ketamaServerString(serverSpec('10.0.0.1:11211'), 0)).toBe('10.0.0.1-0');
    expect(ketamaServerString(serverSpec('10.0.0.1:11212'), 39)).toBe('10.0.0.1:11212-39');
    expect(ketamaServerString(serverSpec('[::1]:11212'), 1)).toBe('::1:11212-1');
    expect(ketamaServerString(named('alpha', '10.0.0.1'), 2)).toBe('alpha-2');
    expect(ketamaServerString(unix('/tmp/m.sock'), 3)).toBe('/tmp/m.sock:0-3');
  });

  it("keeps a server's keys when it moves but keeps its name", () => {
    const before = [named('alpha', '10.0.0.1'), named('beta', '10.0.0.2')];
    const after = [named('alpha', '10.9.9.9'), named('beta', '10.0.0.2')];
    expect(ours(after, 'ketama', KEYS)).toEqual(ours(before, 'ketama', KEYS));
  });

  it('sends every key to the only server without hashing it', () => {
    const ring = buildRing(servers('10.0.0.1:11211'), 'ketama');
    expect(KEYS.map((k) => ring.pick(k, 0, k.length))).toEqual(KEYS.map(() => 0));
    expect(libmemcached.place('ketama', servers('10.0.0.1:11211'), KEYS.slice(0, 10))).toEqual(Array(10).fill(0));
  });

  it('hashes only key[start, end) of a larger buffer', () => {
    const list = servers('10.0.0.1:11211', '10.0.0.2:11211', '10.0.0.3:11211');
    const ring = buildRing(list, 'ketama');
    for (const key of KEYS.slice(0, 200)) {
      const framed = Buffer.concat([Buffer.from('get '), key, Buffer.from('\r\n')]);
      expect(ring.pick(framed, 4, 4 + key.length)).toBe(ring.pick(key, 0, key.length));
    }
  });
});

describe('ketama ring with servers left out (auto-eject)', () => {
  it('places keys as a ring of only the live servers does (weights shared among the live ones)', () => {
    const list = servers('10.0.0.1:11211', '10.0.0.2:11211:2', '10.0.0.3:11211', '10.0.0.4:11212:3');
    const live = [true, false, true, true];
    const liveIndexes = [0, 2, 3];
    const partial = ours(
      list.filter((_, i) => live[i] === true),
      'ketama',
      KEYS,
    ).map((i) => liveIndexes[i]);
    const ejected = buildRing(list, 'ketama', live);
    expect(KEYS.map((k) => ejected.pick(k, 0, k.length))).toEqual(partial);
  });

  it('moves only the keys of the left-out server when the weights are equal', () => {
    const list = equal(4);
    const ejected = buildRing(list, 'ketama', [true, true, false, true]);
    const moved = ours(list, 'ketama', KEYS).filter((server, k) => {
      const key = KEYS[k] ?? Buffer.alloc(0);
      return ejected.pick(key, 0, key.length) !== server;
    });
    expect(moved.length).toBeGreaterThan(0);
    expect(new Set(moved)).toEqual(new Set([2]));
  });

  it('answers -1 when no server is live, and the live one when only one is', () => {
    const list = servers('10.0.0.1:11211', '10.0.0.2:11211');
    expect(buildRing(list, 'ketama', [false, false]).pick(Buffer.from('k'), 0, 1)).toBe(-1);
    expect(buildRing(list, 'ketama', [false, true]).pick(Buffer.from('k'), 0, 1)).toBe(1);
    expect(buildRing(list, 'modula', [false, false]).pick(Buffer.from('k'), 0, 1)).toBe(-1);
  });
});

describe('modula against libmemcached (MEMCACHED_DISTRIBUTION_MODULA, default hash one_at_a_time)', () => {
  it.each([
    ['3 servers', servers('10.0.0.1:11211', '10.0.0.2:11211', '10.0.0.3:11212')],
    ['7 servers', equal(7)],
  ])('%s: every key (bytes >= 0x80 included) on the server libmemcached picks', (_name, list) => {
    expect(ours(list, 'modula', KEYS)).toEqual(libmemcached.place('modula', list, KEYS));
  });

  it('reads key bytes >= 0x80 sign-extended, as libhashkit does through a signed char', () => {
    const unsignedRead = (key: Buffer): number => {
      let v = 0;
      for (const b of key) {
        v = (v + b) >>> 0;
        v = (v + (v << 10)) >>> 0;
        v = (v ^ (v >>> 6)) >>> 0;
      }
      v = (v + (v << 3)) >>> 0;
      v = (v ^ (v >>> 11)) >>> 0;
      return (v + (v << 15)) >>> 0;
    };
    const ascii = Buffer.from('abc');
    const high = Buffer.from([0xe9, 0x80]);
    expect(oneAtATimeHash(ascii, 0, 3)).toBe(unsignedRead(ascii));
    expect(oneAtATimeHash(high, 0, 2)).not.toBe(unsignedRead(high));
  });
});

describe('ketama ring against pylibmc (behaviors={"ketama_weighted": True})', () => {
  it('agrees with pylibmc.Client.hash() for equal and unequal weights', () => {
    const specs = [
      ['127.0.0.1:11212', '127.0.0.1:11213', '127.0.0.1:11214'],
      ['10.0.0.1:11211:1', '10.0.0.2:11211:3', '10.0.0.3:11300:2'],
    ];
    const keys = KEYS.slice(0, 1500);
    const script = [
      'import sys, json, pylibmc',
      'spec = json.loads(sys.stdin.readline())',
      'c = pylibmc.Client(spec["servers"], behaviors={"ketama_weighted": True})',
      'print(json.dumps([c.hash(bytes.fromhex(k)) for k in spec["keys"]]))',
    ].join('\n');
    for (const entries of specs) {
      const input = JSON.stringify({ servers: entries, keys: keys.map((k) => k.toString('hex')) });
      const out = execFileSync('/usr/bin/python3', ['-c', script], { input: `${input}\n` }).toString();
      expect(ours(servers(...entries), 'ketama', keys)).toEqual(JSON.parse(out));
    }
  });
});

describe('ketama ring against php-memcached (OPT_LIBKETAMA_COMPATIBLE)', () => {
  it('agrees with Memcached::getServerByKey() for equal and unequal weights, ports 11211 and others', () => {
    // php-memcached refuses keys with spaces or control characters, as memcached's text protocol does
    const keys = KEYS.filter((k) => k.every((b) => b > 0x20 && b !== 0x7f)).slice(0, 1500);
    const script = [
      '$spec = json_decode(fgets(STDIN), true);',
      '$m = new Memcached();',
      '$m->setOption(Memcached::OPT_LIBKETAMA_COMPATIBLE, true);',
      '$m->addServers($spec["servers"]);',
      '$out = [];',
      'foreach ($spec["keys"] as $k) { $s = $m->getServerByKey(hex2bin($k)); $out[] = $s["host"] . ":" . $s["port"]; }',
      'echo json_encode($out);',
    ].join('\n');
    const lists = [
      ['127.0.0.1:11212', '127.0.0.1:11213', '127.0.0.1:11214'],
      ['10.0.0.1:11211:1', '10.0.0.2:11211:3', '10.0.0.3:11300:2'],
    ];
    for (const entries of lists) {
      const list = servers(...entries);
      const input = JSON.stringify({
        servers: list.map((s) => [s.host, s.port, s.weight]),
        keys: keys.map((k) => k.toString('hex')),
      });
      const out = execFileSync('php', ['-r', script], { input: `${input}\n` }).toString();
      const ring = buildRing(list, 'ketama');
      expect(keys.map((k) => list[ring.pick(k, 0, k.length)]?.address)).toEqual(JSON.parse(out));
    }
  });
});
