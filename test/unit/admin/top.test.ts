import { describe, expect, it } from 'vitest';
import {
  SORT_KEYS,
  parseExposition,
  renderFrame,
  rowsOf,
  snapshotOf,
  sortKeyFor,
  sortRows,
  topTarget,
  type TenantRow,
} from '../../../src/admin/top.js';
import { parseConfigText } from '../../../src/config/load.js';

const SCRAPE_1 = `# HELP memgate_requests_total x
# TYPE memgate_requests_total counter
memgate_requests_total{tenant="shop",command="get",outcome="ok"} 100
memgate_requests_total{tenant="shop",command="get",outcome="miss"} 100
memgate_requests_total{tenant="shop",command="set",outcome="ok"} 50
memgate_requests_total{tenant="blog",command="set",outcome="error"} 4
memgate_rate_limited_total{tenant="blog",budget="ops"} 10
memgate_client_connections{tenant="shop"} 2
memgate_client_connections{tenant="blog"} 7
memgate_client_received_bytes_total{tenant="shop"} 1000
memgate_client_sent_bytes_total{tenant="shop"} 5000
memgate_upstream_up{upstream="10.0.0.1:11211"} 1
memgate_upstream_up{server="10.0.0.2:11211"} 0
memgate_state_up 1
`;
const SCRAPE_2 = SCRAPE_1.replace('outcome="ok"} 100', 'outcome="ok"} 190')
  .replace('outcome="miss"} 100', 'outcome="miss"} 110')
  .replace('outcome="error"} 4', 'outcome="error"} 6')
  .replace('budget="ops"} 10', 'budget="ops"} 30')
  .replace('received_bytes_total{tenant="shop"} 1000', 'received_bytes_total{tenant="shop"} 3000');

describe('memgate top: numbers from /metrics', () => {
  it('rates over the interval between two scrapes, hit ratio of retrievals only', () => {
    const a = snapshotOf(parseExposition(SCRAPE_1), 10_000);
    const b = snapshotOf(parseExposition(SCRAPE_2), 12_000);
    const rows = rowsOf(a, b);
    const shop = rows.find((r) => r.name === 'shop');
    const blog = rows.find((r) => r.name === 'blog');
    expect(shop).toMatchObject({
      opsPerSec: 50,
      hitRatio: 0.9,
      connections: 2,
      bytesInPerSec: 1000,
      bytesOutPerSec: 0,
    });
    expect(blog).toMatchObject({
      opsPerSec: 1,
      errorsPerSec: 1,
      rateLimitedPerSec: 10,
      connections: 7,
      hitRatio: null,
    });
    expect(b.upstream).toEqual([
      { server: '10.0.0.1:11211', up: true },
      { server: '10.0.0.2:11211', up: false },
    ]);
    expect(b.stateUp).toBe(true);
  });

  it('before a second scrape, rates are unknown (shown as -) and the hit ratio is over all time', () => {
    const rows = rowsOf(null, snapshotOf(parseExposition(SCRAPE_1), 0));
    expect(rows.find((r) => r.name === 'shop')).toMatchObject({ opsPerSec: null, hitRatio: 0.5 });
  });

  it('a counter that went down (memgate restarted) counts from zero, never negative', () => {
    const a = snapshotOf(parseExposition(SCRAPE_2), 0);
    const b = snapshotOf(parseExposition(SCRAPE_1), 1000);
    for (const r of rowsOf(a, b)) expect(r.opsPerSec ?? 0).toBeGreaterThanOrEqual(0);
  });
});

describe('memgate top: sorting and the frame', () => {
  const row = (name: string, ops: number, conns: number): TenantRow => ({
    name,
    opsPerSec: ops,
    hitRatio: null,
    errorsPerSec: 0,
    rateLimitedPerSec: 0,
    connections: conns,
    bytesInPerSec: 0,
    bytesOutPerSec: 0,
  });
  const rows = [row('a', 1, 9), row('b', 5, 1), row('c', 3, 5)];

  it('each sort key orders by its column, high first; n by name', () => {
    const order = (key: string) => sortRows(rows, sortKeyFor(key) ?? SORT_KEYS[0]!).map((r) => r.name);
    expect(order('o')).toEqual(['b', 'c', 'a']);
    expect(order('c')).toEqual(['a', 'c', 'b']);
    expect(order('n')).toEqual(['a', 'b', 'c']);
    expect(SORT_KEYS.map((k) => k.key).join('')).toBe('ohercbn');
  });

  it('renders a header, the upstream line and one line per tenant, cut to the width', () => {
    const snap = snapshotOf(parseExposition(SCRAPE_1), Date.UTC(2026, 0, 1, 12, 0, 5));
    const lines = renderFrame(snap, rows, {
      target: 'gate:9211',
      intervalSec: 2,
      sort: sortKeyFor('o')!,
      error: null,
      interactive: false,
    });
    expect(lines[0]).toBe('memgate top - gate:9211 - 12:00:05 UTC - every 2s - sort: ops/s');
    expect(lines[1]).toBe('upstream: 10.0.0.1:11211 up   10.0.0.2:11211 DOWN   state: up');
    expect(lines.slice(3).map((l) => l.split(/\s+/)[0])).toEqual(['b', 'c', 'a']);
    const narrow = renderFrame(
      snap,
      rows,
      {
        target: 'g',
        intervalSec: 1,
        sort: sortKeyFor('o')!,
        error: null,
        interactive: true,
      },
      20,
    );
    for (const l of narrow) expect(l.length).toBeLessThanOrEqual(20);
  });
});

describe('memgate top: where it reads', () => {
  const config = parseConfigText(
    'listen: [ { host: 127.0.0.1, port: 0 } ]\nupstream: { servers: [ "127.0.0.1:11211" ] }\nadmin: { host: 0.0.0.0, port: 9300, token: "0123456789abcdef0123" }\ntenants: { shop: { prefix: "s:" } }\n',
    't.yaml',
    {},
  );

  it('--admin wins; else the config admin section (a wildcard host read on loopback); env token first', () => {
    expect(topTarget('10.1.1.1:9000', null, {})).toEqual({ baseUrl: 'http://10.1.1.1:9000', token: undefined });
    expect(topTarget('gate', null, {}).baseUrl).toBe('http://gate:9211');
    expect(topTarget('[::1]:9000', null, {}).baseUrl).toBe('http://[::1]:9000');
    expect(topTarget(undefined, config, {})).toEqual({
      baseUrl: 'http://127.0.0.1:9300',
      token: '0123456789abcdef0123',
    });
    expect(topTarget(undefined, config, { MEMGATE_ADMIN_TOKEN: 'from-env-0123456789' }).token).toBe(
      'from-env-0123456789',
    );
    expect(() => topTarget('a:b:c', null, {})).toThrow(/use host:port/);
  });
});
