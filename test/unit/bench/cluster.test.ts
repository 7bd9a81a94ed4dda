import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  clusterTable,
  summarizeCluster,
  type ClusterRunRecord,
  type ClusterTarget,
  type ClusterWorkload,
} from '../../../bench/load/cluster.js';
import {
  DEFAULT_GENERATOR_OPTIONS,
  parseGeneratorArgs,
  runLoad,
  type LoadResult,
} from '../../../bench/load/generator.js';
import { memgateConfig, twemproxyConfig } from '../../../bench/load/processes.js';
import { parseConfigText } from '../../../src/config/load.js';
import { compileTopology } from '../../../src/upstream/topology.js';
import { spawnMemcached, type MemcachedProcess } from '../../helpers/spawn-memcached.js';
import { TextClient } from '../../helpers/text-client.js';

function record(
  target: ClusterTarget,
  workload: ClusterWorkload,
  depth: number,
  round: number,
  opsPerSec: number,
  cpuUsPerReq: number,
  serverCpuSec: number[],
): ClusterRunRecord {
  const ops = opsPerSec * 2;
  const result: LoadResult = {
    ops,
    opsPerSec,
    p50Us: 100,
    p99Us: 200,
    p999Us: 300,
    maxUs: 400,
    meanUs: 120,
    errors: 0,
    misses: 0,
    hits: ops,
    stored: 0,
    durationSec: 2,
    connections: 10,
    depth,
    preloadSec: 0,
    preloadErrors: 0,
  };
  return { target, workload, depth, round, result, proxyCpuSec: (cpuUsPerReq * ops) / 1e6, serverCpuSec };
}

describe('cluster pair report', () => {
  const runs = [
    record('memgate-cluster', 'get', 1, 1, 1000, 10, [3, 0, 0]),
    record('twemproxy-cluster', 'get', 1, 1, 800, 8, [1, 1, 1]),
    record('memgate-cluster', 'get', 1, 2, 1200, 12, [3, 0, 0]),
    record('twemproxy-cluster', 'get', 1, 2, 900, 9, [1, 1, 2]),
    record('memgate-cluster', 'mget10', 16, 1, 500, 40, [1, 1, 2]),
  ];

  it("takes medians per workload, depth and target, and each server's share of the CPU", () => {
    const rows = summarizeCluster(runs);
    expect(rows.map((r) => [r.workload, r.depth, r.target, r.rounds, r.opsPerSec, r.proxyCpuUsPerReq])).toEqual([
      ['get', 1, 'memgate-cluster', 2, 1100, 11],
      ['get', 1, 'twemproxy-cluster', 2, 850, 8.5],
      ['mget10', 16, 'memgate-cluster', 1, 500, 40],
    ]);
    expect(rows[0]?.spread).toEqual([1, 0, 0]);
    expect(rows[1]?.spread).toEqual([0.29, 0.29, 0.43]);
  });

  it('prints memgate over twemproxy per row, n/a where twemproxy did not run', () => {
    const lines = clusterTable(summarizeCluster(runs)).split('\n');
    expect(lines[0]).toContain('| cluster workload | depth | memgate ops/s | twemproxy ops/s | ops vs twemproxy |');
    expect(lines[2]?.replace(/ +/g, ' ')).toBe(
      '| get | 1 | 1100 | 850 | 1.29x | 11.00 | 8.50 | 1.29x | 100/0/0 | 29/29/43 |',
    );
    expect(lines[3]?.replace(/ +/g, ' ')).toBe('| mget10 | 16 | 500 | - | n/a | 40.00 | - | n/a | 25/25/50 | - |');
  });
});

describe('cluster configs', () => {
  it("puts every cluster server into memgate's default pool (ketama)", () => {
    const config = parseConfigText(
      memgateConfig(11311, [21211, 21212, 21213], 'file:/tmp/x-state.json'),
      'bench.yaml',
      {},
    );
    const pool = compileTopology(config).pools.get('default');
    expect(pool?.distribution).toBe('ketama');
    expect(pool?.servers.map((s) => s.address)).toEqual(['127.0.0.1:21211', '127.0.0.1:21212', '127.0.0.1:21213']);
  });

  it('gives twemproxy md5 ketama over the same servers', () => {
    const text = twemproxyConfig(22121, [21211, 21212, 21213], 2, 'md5');
    expect(text).toContain('  hash: md5\n  distribution: ketama\n');
    expect(text).toContain('  servers:\n    - 127.0.0.1:21211:1\n    - 127.0.0.1:21212:1\n    - 127.0.0.1:21213:1\n');
    expect(twemproxyConfig(22121, 21211, 2)).toContain('  hash: fnv1a_64\n');
  });
});

describe('generator multi-gets (--get-keys)', () => {
  let memcached: MemcachedProcess;
  beforeAll(async () => {
    memcached = await spawnMemcached();
  });
  afterAll(() => memcached.stop());

  it('reads --get-keys and bounds it to 1..100', () => {
    expect(parseGeneratorArgs(['--get-keys', '10']).options.getKeys).toBe(10);
    expect(parseGeneratorArgs([]).options.getKeys).toBe(1);
    expect(() => parseGeneratorArgs(['--get-keys', '0'])).toThrow(/getKeys/);
    expect(() => parseGeneratorArgs(['--get-keys', '101'])).toThrow(/getKeys/);
  });

  it('sends 10-key gets that a real memcached answers, each counted as one request', async () => {
    const result = await runLoad({
      ...DEFAULT_GENERATOR_OPTIONS,
      port: memcached.port,
      connections: 2,
      depth: 4,
      keys: 500,
      getKeys: 10,
      durationSec: 0.3,
      warmupSec: 0.05,
    });
    expect(result.errors).toBe(0);
    expect(result.hits).toBeGreaterThan(0);
    const client = await TextClient.connect(memcached.port);
    const stats = await client.request('stats\r\n');
    client.close();
    const cmdGet = Number(/STAT cmd_get (\d+)/.exec(stats)?.[1]);
    // memcached counts every key of a multi-get: at least 10 per get request of the timed phase
    expect(cmdGet).toBeGreaterThanOrEqual(10 * (result.hits + result.misses));
  });
});
