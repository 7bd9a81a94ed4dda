import { describe, expect, it } from 'vitest';
import type { LoadResult } from '../../../bench/load/generator.js';
import { comparisonTable, median, summarize, type RunRecord, type TargetName } from '../../../bench/load/report.js';

function run(
  target: TargetName,
  depth: number,
  round: number,
  opsPerSec: number,
  proxyCpuSec: number | null,
): RunRecord {
  const ops = opsPerSec * 10;
  const result: LoadResult = {
    ops,
    opsPerSec,
    p50Us: 100 + round,
    p99Us: 500 + round,
    p999Us: 900 + round,
    maxUs: 1000,
    meanUs: 120,
    errors: 0,
    misses: 0,
    hits: ops,
    stored: 0,
    durationSec: 10,
    connections: 50,
    depth,
    preloadSec: 0,
    preloadErrors: 0,
  };
  return { target, depth, round, result, proxyCpuSec, memcachedCpuSec: 1 };
}

describe('median', () => {
  it('takes the middle value, or the mean of the two middle ones', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(Number.isNaN(median([]))).toBe(true);
  });
});

describe('summarize', () => {
  const runs: RunRecord[] = [];
  for (const round of [1, 2, 3]) {
    runs.push(run('direct', 1, round, 100_000 + round, null));
    // memgate: 10 s × 50,000 ops/s = 500,000 requests; 5 CPU s → 10 µs/request
    runs.push(run('memgate', 1, round, [50_000, 40_000, 60_000][round - 1] ?? 0, 5));
    runs.push(run('twemproxy', 1, round, 80_000, 4)); // 800,000 requests, 5 µs/request
    runs.push(run('pipe', 1, round, 50_000, 4)); // 500,000 requests, 8 µs/request
  }
  const rows = summarize(runs);

  it('keeps one row per target and depth with medians over rounds', () => {
    expect(rows.map((r) => r.target)).toEqual(['direct', 'memgate', 'twemproxy', 'pipe']);
    const memgate = rows.find((r) => r.target === 'memgate');
    expect(memgate?.rounds).toBe(3);
    expect(memgate?.opsPerSec).toBe(50_000);
    expect(memgate?.p50Us).toBe(102);
    expect(rows.find((r) => r.target === 'direct')?.proxyCpuUsPerReq).toBeNull();
  });

  it("puts memgate's throughput and CPU ratios on its row only", () => {
    const memgate = rows.find((r) => r.target === 'memgate');
    expect(memgate?.proxyCpuUsPerReq).toBe(10);
    expect(memgate?.ratios).toEqual({ opsVsDirect: 0.5, opsVsTwemproxy: 0.63, cpuVsTwemproxy: 2, cpuVsPipe: 1.25 });
    expect(rows.filter((r) => r.ratios !== null)).toHaveLength(1);
  });

  it('leaves a ratio empty when its baseline did not run', () => {
    const only = summarize(runs.filter((r) => r.target !== 'twemproxy'));
    expect(only.find((r) => r.target === 'memgate')?.ratios).toMatchObject({
      opsVsTwemproxy: null,
      cpuVsTwemproxy: null,
    });
    expect(comparisonTable(only)).toContain('n/a');
  });

  it('prints one aligned Markdown table', () => {
    const lines = comparisonTable(rows).split('\n');
    expect(lines).toHaveLength(2 + rows.length);
    expect(new Set(lines.map((l) => l.length)).size).toBe(1);
    expect(lines[0]).toMatch(/^\| target +\| depth \| +ops\/s \|/);
    expect(lines.find((l) => l.startsWith('| memgate'))).toContain('0.50x');
  });
});
