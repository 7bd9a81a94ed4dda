import { describe, expect, it } from 'vitest';
import { escapeXml, niceScale, renderBenchSvg, svgPathFor } from '../../../bench/load/chart.js';
import type { SummaryRow, TargetName } from '../../../bench/load/report.js';

function row(target: TargetName, depth: number, opsPerSec: number, cpu: number | null, p99Us: number): SummaryRow {
  return {
    target,
    depth,
    rounds: 1,
    opsPerSec,
    p50Us: p99Us / 4,
    p99Us,
    p999Us: p99Us * 2,
    errors: 0,
    misses: 0,
    proxyCpuUsPerReq: cpu,
    memcachedCpuUsPerReq: 3,
    ratios: null,
  };
}

const FIXTURE = {
  startedAt: '2026-12-03T13:00:00.000Z',
  options: { connections: 50, durationSec: 10, rounds: 3 },
  summary: [
    row('direct', 1, 90_000, null, 900),
    row('memgate', 1, 60_000, 14.04, 1500),
    row('twemproxy', 1, 58_000, 10.97, 1400),
    row('pipe', 1, 55_000, 20.59, 1600),
    row('direct', 16, 400_000, null, 3000),
    row('memgate', 16, 300_000, 2.69, 4000),
    row('twemproxy', 16, 195_000, 3.05, 6000),
    row('pipe', 16, 150_000, 4.86, 7000),
  ],
};

/**
 * A small well-formedness check: one root, every tag closed in order, attribute
 * values quoted, no bare `&` or `<` in text.
 */
function assertWellFormedXml(xml: string): string[] {
  const body = xml.replace(/^<\?xml[^?]*\?>\s*/, '');
  const stack: string[] = [];
  const roots: string[] = [];
  const tag = /<(\/?)([a-zA-Z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|([^<]+)/gy;
  let m: RegExpExecArray | null;
  let end = 0;
  while ((m = tag.exec(body)) !== null) {
    end = tag.lastIndex;
    const [, closing, name, , selfClosing, textNode] = m;
    if (textNode !== undefined) {
      expect(textNode, 'bare & in text').not.toMatch(/&(?!(?:lt|gt|amp|quot|apos);)/);
      continue;
    }
    if (closing === '/') {
      expect(stack.pop(), `closing </${name}>`).toBe(name);
    } else if (selfClosing !== '/') {
      if (stack.length === 0) roots.push(name ?? '');
      stack.push(name ?? '');
    } else if (stack.length === 0) {
      roots.push(name ?? '');
    }
  }
  expect(end, `unparsable at: ${body.slice(end, end + 60)}`).toBe(body.length);
  expect(stack).toEqual([]);
  expect(roots).toEqual(['svg']);
  return [...xml.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((t) => t[1] ?? '');
}

describe('bench chart (SVG)', () => {
  it('renders a well-formed SVG naming every target, every depth, and the three panels', () => {
    const svg = renderBenchSvg(FIXTURE);
    expect(svg.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg"')).toBe(
      true,
    );
    const texts = assertWellFormedXml(svg);
    for (const t of ['direct', 'memgate', 'twemproxy', 'pipe']) expect(texts, t).toContain(t);
    expect(texts).toContain('depth 1');
    expect(texts).toContain('depth 16');
    expect(texts.some((t) => t.startsWith('Throughput (ops/s'))).toBe(true);
    expect(texts.some((t) => t.startsWith('Proxy CPU per request'))).toBe(true);
    expect(texts.some((t) => t.startsWith('p99 latency'))).toBe(true);
    // one bar per (target, depth) in the ops/s and p99 panels, direct has no CPU bar: 8 + 6 + 8
    expect(svg.match(/<rect [^>]*fill="#[0-9a-f]{6}"><title>/g)?.length).toBe(22);
    expect(svg).toContain('<title>memgate, depth 16: 300k ops/s</title>');
    expect(svg).toContain('<title>memgate, depth 1: 14.0 µs</title>');
    expect(texts.filter((t) => t === 'n/a').length).toBe(2);
  });

  it('escapes text and survives an empty or one-target summary', () => {
    expect(escapeXml('a<b & "c"')).toBe('a&lt;b &amp; &quot;c&quot;');
    assertWellFormedXml(renderBenchSvg({ summary: [] }));
    const one = renderBenchSvg({ summary: [row('memgate', 4, 1000, 5, 100)] });
    expect(assertWellFormedXml(one)).toContain('memgate');
  });

  it('axis scales are round: 1, 2 or 5 times a power of ten, covering the maximum', () => {
    expect(niceScale(300_000)).toEqual({ max: 300_000, step: 100_000 });
    expect(niceScale(14.04)).toEqual({ max: 15, step: 5 });
    expect(niceScale(0)).toEqual({ max: 1, step: 0.25 });
    for (const v of [0.3, 7, 99, 1234, 98_765]) {
      const s = niceScale(v);
      expect(s.max).toBeGreaterThanOrEqual(v);
      expect(s.max / s.step).toBeLessThanOrEqual(5);
    }
  });

  it('writes next to the JSON: x.json → x.svg', () => {
    expect(svgPathFor('bench/results/2026-12-03T13-00-00-000Z.json')).toBe(
      'bench/results/2026-12-03T13-00-00-000Z.svg',
    );
  });
});
