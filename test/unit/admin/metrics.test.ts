import { describe, expect, it } from 'vitest';
import {
  OUTCOME_COUNT,
  Outcome,
  ProcessCounters,
  TenantCounters,
  countOutcome,
  observeLatencyUs,
  LATENCY_BUCKET_COUNT,
  ResetReason,
} from '../../../src/admin/counters.js';
import { createMetrics, type MetricsSource } from '../../../src/admin/metrics.js';
import { Cmd, CommandClass } from '../../../src/protocol/text/commands.js';

/** One sample of the text format: `name{a="x",b="y"} value`. */
interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** A small parser for prom-client's text exposition (no escapes inside our label values). */
function parseExposition(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type !== null) {
      types.set(type[1] ?? '', type[2] ?? '');
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) throw new Error(`unparsable line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"/g)) {
      labels[pair[1] ?? ''] = pair[2] ?? '';
    }
    const raw = m[3] ?? '';
    samples.push({ name: m[1] ?? '', labels, value: raw === '+Inf' ? Infinity : Number(raw) });
  }
  return { samples, types };
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const hit = samples.find(
    (s) =>
      s.name === name &&
      Object.keys(labels).length === Object.keys(s.labels).length &&
      Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  return hit?.value;
}

function fixture(): {
  source: MetricsSource;
  shop: TenantCounters;
  blog: TenantCounters;
  tenants: { name: string; counters: TenantCounters }[];
  upstream: { address: string; up: boolean; inFlight: number }[];
} {
  const shop = new TenantCounters();
  const blog = new TenantCounters();
  const tenants = [
    { name: 'shop', counters: shop },
    { name: 'blog', counters: blog },
  ];
  const upstream = [
    { address: '10.0.0.1:11211', up: true, inFlight: 3 },
    { address: '10.0.0.2:11211', up: false, inFlight: 0 },
  ];
  const source: MetricsSource = {
    tenants: () => tenants,
    upstream: () => upstream,
    process: new ProcessCounters(),
  };
  return { source, shop, blog, tenants, upstream };
}

describe('createMetrics', () => {
  it('copies per-tenant request outcomes at scrape time and they move per tenant', async () => {
    const f = fixture();
    const m = createMetrics(f.source);
    countOutcome(f.shop, Cmd.GET, Outcome.OK);
    countOutcome(f.shop, Cmd.GET, Outcome.OK);
    countOutcome(f.shop, Cmd.GET, Outcome.MISS);
    countOutcome(f.blog, Cmd.SET, Outcome.RATE_LIMITED);
    const first = parseExposition(await m.render());
    let samples = first.samples;
    expect(first.types.get('memgate_requests_total')).toBe('counter');
    expect(value(samples, 'memgate_requests_total', { tenant: 'shop', command: 'get', outcome: 'ok' })).toBe(2);
    expect(value(samples, 'memgate_requests_total', { tenant: 'shop', command: 'get', outcome: 'miss' })).toBe(1);
    expect(value(samples, 'memgate_requests_total', { tenant: 'blog', command: 'set', outcome: 'rate_limited' })).toBe(
      1,
    );
    // never-seen combinations are not exported
    expect(value(samples, 'memgate_requests_total', { tenant: 'blog', command: 'get', outcome: 'ok' })).toBeUndefined();

    countOutcome(f.shop, Cmd.GET, Outcome.OK);
    countOutcome(f.blog, Cmd.FLUSH_ALL, Outcome.DENIED);
    ({ samples } = parseExposition(await m.render()));
    expect(value(samples, 'memgate_requests_total', { tenant: 'shop', command: 'get', outcome: 'ok' })).toBe(3);
    expect(value(samples, 'memgate_requests_total', { tenant: 'blog', command: 'flush_all', outcome: 'denied' })).toBe(
      1,
    );
    expect(value(samples, 'memgate_requests_total', { tenant: 'blog', command: 'set', outcome: 'rate_limited' })).toBe(
      1,
    );
  });

  it('exports bytes and connections per tenant', async () => {
    const f = fixture();
    const m = createMetrics(f.source);
    f.shop.bytesRead = 1234;
    f.shop.bytesWritten = 99;
    f.shop.currConnections = 4;
    f.shop.totalConnections = 10;
    f.blog.bytesRead = 7;
    const first = parseExposition(await m.render());
    let samples = first.samples;
    expect(first.types.get('memgate_client_connections')).toBe('gauge');
    expect(value(samples, 'memgate_client_received_bytes_total', { tenant: 'shop' })).toBe(1234);
    expect(value(samples, 'memgate_client_sent_bytes_total', { tenant: 'shop' })).toBe(99);
    expect(value(samples, 'memgate_client_received_bytes_total', { tenant: 'blog' })).toBe(7);
    expect(value(samples, 'memgate_client_connections', { tenant: 'shop' })).toBe(4);
    expect(value(samples, 'memgate_client_connections_opened_total', { tenant: 'shop' })).toBe(10);

    f.shop.currConnections = 1;
    f.blog.bytesRead += 100;
    ({ samples } = parseExposition(await m.render()));
    expect(value(samples, 'memgate_client_connections', { tenant: 'shop' })).toBe(1);
    expect(value(samples, 'memgate_client_received_bytes_total', { tenant: 'blog' })).toBe(107);
  });

  it('drops a tenant that is no longer listed', async () => {
    const f = fixture();
    const m = createMetrics(f.source);
    f.blog.bytesRead = 5;
    countOutcome(f.blog, Cmd.GET, Outcome.OK);
    observeLatencyUs(f.blog, CommandClass.READ, 10);
    expect(await m.render()).toContain('tenant="blog"');
    f.tenants.pop();
    expect(await m.render()).not.toContain('tenant="blog"');
  });

  it('exports the latency histogram per tenant and class with cumulative buckets in seconds', async () => {
    const f = fixture();
    const m = createMetrics(f.source);
    observeLatencyUs(f.shop, CommandClass.READ, 80); // ≤ 100 µs
    observeLatencyUs(f.shop, CommandClass.READ, 100); // ≤ 100 µs (bounds are inclusive)
    observeLatencyUs(f.shop, CommandClass.READ, 300); // ≤ 500 µs
    observeLatencyUs(f.shop, CommandClass.READ, 5_000_000); // overflow
    observeLatencyUs(f.blog, CommandClass.WRITE, 2000);
    const { samples, types } = parseExposition(await m.render());
    expect(types.get('memgate_request_duration_seconds')).toBe('histogram');
    const bucket = (le: string) =>
      value(samples, 'memgate_request_duration_seconds_bucket', { tenant: 'shop', class: 'read', le });
    expect(bucket('0.0001')).toBe(2);
    expect(bucket('0.00025')).toBe(2);
    expect(bucket('0.0005')).toBe(3);
    expect(bucket('1')).toBe(3);
    expect(bucket('+Inf')).toBe(4);
    expect(value(samples, 'memgate_request_duration_seconds_count', { tenant: 'shop', class: 'read' })).toBe(4);
    expect(value(samples, 'memgate_request_duration_seconds_sum', { tenant: 'shop', class: 'read' })).toBeCloseTo(
      5.00048,
      9,
    );
    expect(value(samples, 'memgate_request_duration_seconds_count', { tenant: 'blog', class: 'write' })).toBe(1);
    // classes never observed are not exported
    expect(
      value(samples, 'memgate_request_duration_seconds_count', { tenant: 'shop', class: 'write' }),
    ).toBeUndefined();
    const shopRead = samples.filter(
      (s) => s.name === 'memgate_request_duration_seconds_bucket' && s.labels.tenant === 'shop',
    );
    expect(shopRead).toHaveLength(LATENCY_BUCKET_COUNT);
  });

  it('exports upstream health and process counters', async () => {
    const f = fixture();
    const m = createMetrics(f.source);
    f.source.process.rotations = 2;
    f.source.process.authFailures = 5;
    f.source.process.reloads = 1;
    f.source.process.connectionsAccepted = 40;
    let { samples } = parseExposition(await m.render());
    expect(value(samples, 'memgate_upstream_up', { server: '10.0.0.1:11211' })).toBe(1);
    expect(value(samples, 'memgate_upstream_up', { server: '10.0.0.2:11211' })).toBe(0);
    expect(value(samples, 'memgate_upstream_in_flight_requests', { server: '10.0.0.1:11211' })).toBe(3);
    expect(value(samples, 'memgate_rotations_total')).toBe(2);
    expect(value(samples, 'memgate_auth_failures_total')).toBe(5);
    expect(value(samples, 'memgate_reloads_total')).toBe(1);
    expect(value(samples, 'memgate_connections_accepted_total')).toBe(40);
    expect(value(samples, 'memgate_auth_lockouts_total')).toBe(0);

    f.source.process.rotations++;
    const first = f.upstream[0];
    if (first !== undefined) first.up = false;
    ({ samples } = parseExposition(await m.render()));
    expect(value(samples, 'memgate_rotations_total')).toBe(3);
    expect(value(samples, 'memgate_upstream_up', { server: '10.0.0.1:11211' })).toBe(0);
  });

  it('exports upstream resets by server and reason, copied at scrape time, non-zero series only', async () => {
    const f = fixture();
    const m = createMetrics(f.source);
    const a = f.source.process.upstream.forServer('10.0.0.1:11211');
    f.source.process.upstream.forServer('10.0.0.2:11211');
    let { samples } = parseExposition(await m.render());
    expect(samples.filter((s) => s.name === 'memgate_upstream_resets_total')).toEqual([]);
    a.resets[ResetReason.TIMEOUT] = 2;
    a.resets[ResetReason.BACKEND_ERROR] = 1;
    ({ samples } = parseExposition(await m.render()));
    expect(value(samples, 'memgate_upstream_resets_total', { server: '10.0.0.1:11211', reason: 'timeout' })).toBe(2);
    expect(value(samples, 'memgate_upstream_resets_total', { server: '10.0.0.1:11211', reason: 'backend_error' })).toBe(
      1,
    );
    expect(samples.filter((s) => s.name === 'memgate_upstream_resets_total')).toHaveLength(2);
    expect(a.resetsTotal).toBe(3);
  });

  it('includes the default process metrics in its own registry, not the global one', async () => {
    const f = fixture();
    const a = createMetrics(f.source);
    const b = createMetrics(f.source);
    expect(a.registry).not.toBe(b.registry);
    const text = await a.render();
    expect(text).toMatch(/^process_cpu_user_seconds_total \d/m);
    expect(text).toMatch(/^nodejs_heap_size_used_bytes \d/m);
    expect(a.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    // every sample line parses
    expect(() => parseExposition(text)).not.toThrow();
  });
});

describe('state store and memory watermark gauges', () => {
  it('memgate_state_up is 1 without a stateUp source and follows it when given', async () => {
    const f = fixture();
    let { samples } = parseExposition(await createMetrics(f.source).render());
    expect(value(samples, 'memgate_state_up')).toBe(1);
    let up = false;
    const m = createMetrics({ ...f.source, stateUp: () => up });
    ({ samples } = parseExposition(await m.render()));
    expect(value(samples, 'memgate_state_up')).toBe(0);
    up = true;
    ({ samples } = parseExposition(await m.render()));
    expect(value(samples, 'memgate_state_up')).toBe(1);
  });

  it('memgate_memory_watermark_reached is 1 only while the guard reports overload', async () => {
    const f = fixture();
    let over = false;
    const m = createMetrics({ ...f.source, memoryOverloaded: () => over });
    let { samples } = parseExposition(await m.render());
    expect(value(samples, 'memgate_memory_watermark_reached')).toBe(0);
    over = true;
    ({ samples } = parseExposition(await m.render()));
    expect(value(samples, 'memgate_memory_watermark_reached')).toBe(1);
  });
});

describe('counters helpers', () => {
  it('countOutcome indexes cmd × OUTCOME_COUNT + outcome', () => {
    const c = new TenantCounters();
    countOutcome(c, Cmd.DELETE, Outcome.ERROR);
    expect(c.outcomes[Cmd.DELETE * OUTCOME_COUNT + Outcome.ERROR]).toBe(1);
  });

  it('observeLatencyUs sums microseconds per class', () => {
    const c = new TenantCounters();
    observeLatencyUs(c, CommandClass.STATS, 10);
    observeLatencyUs(c, CommandClass.STATS, 15);
    expect(c.latencySumUs[CommandClass.STATS]).toBe(25);
  });
});
