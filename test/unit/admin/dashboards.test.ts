/**
 * The operator files of docker/: the Grafana dashboard has the shape Grafana
 * imports, and the Prometheus alert rules pass `promtool check rules` and their
 * own unit tests (`promtool test rules`). That every metric they name exists in
 * a running memgate's /metrics is test/integration/dashboard-metrics.test.ts.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { metricNames } from '../../helpers/promql-names.js';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const DASHBOARD = path.join(ROOT, 'docker/grafana/memgate-dashboard.json');
const RULES_DIR = path.join(ROOT, 'docker/prometheus');
const run = promisify(execFile);

interface Target {
  refId?: unknown;
  expr?: unknown;
  datasource?: unknown;
}
interface Panel {
  id?: unknown;
  type?: unknown;
  title?: unknown;
  gridPos?: { h?: unknown; w?: unknown; x?: unknown; y?: unknown };
  datasource?: unknown;
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  title?: unknown;
  uid?: unknown;
  schemaVersion?: unknown;
  panels?: Panel[];
  templating?: { list?: { name?: unknown; type?: unknown; query?: unknown; datasource?: unknown }[] };
  time?: { from?: unknown; to?: unknown };
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
const dataPanels = (dashboard.panels ?? []).filter((p) => p.type !== 'row');
const DS_REF = { type: 'prometheus', uid: '${DS_PROMETHEUS}' };

describe('docker/grafana/memgate-dashboard.json', () => {
  it('has the top-level fields Grafana imports: title, uid, schemaVersion, time, panels, templating', () => {
    expect(typeof dashboard.title).toBe('string');
    expect(dashboard.uid).toMatch(/^[a-zA-Z0-9_-]{1,40}$/);
    expect(typeof dashboard.schemaVersion).toBe('number');
    expect(dashboard.schemaVersion as number).toBeGreaterThanOrEqual(36);
    expect(dashboard.time).toEqual({ from: expect.any(String), to: expect.any(String) });
    expect(Array.isArray(dashboard.panels)).toBe(true);
    expect(Array.isArray(dashboard.templating?.list)).toBe(true);
  });

  it('takes its data source from a DS_PROMETHEUS variable, and every panel and target uses it', () => {
    const ds = dashboard.templating?.list?.find((v) => v.name === 'DS_PROMETHEUS');
    expect(ds).toMatchObject({ type: 'datasource', query: 'prometheus' });
    for (const v of dashboard.templating?.list ?? []) {
      if (v.type === 'query') expect(v.datasource, String(v.name)).toEqual(DS_REF);
    }
    expect(dataPanels.length).toBeGreaterThan(0);
    for (const p of dataPanels) {
      expect(p.datasource, String(p.title)).toEqual(DS_REF);
      for (const t of p.targets ?? []) expect(t.datasource, `${String(p.title)} ${String(t.refId)}`).toEqual(DS_REF);
    }
    // nothing names a concrete data source uid
    expect(readFileSync(DASHBOARD, 'utf8')).not.toMatch(
      /"uid":\s*"(?!\$\{DS_PROMETHEUS\}|-- Grafana --|memgate-overview)/,
    );
  });

  it('every panel has a unique id, a title, a grid position on the 24-column grid and PromQL targets', () => {
    const ids = (dashboard.panels ?? []).map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dashboard.panels ?? []) {
      expect(typeof p.id).toBe('number');
      expect(typeof p.title).toBe('string');
      const g = p.gridPos ?? {};
      for (const k of ['h', 'w', 'x', 'y'] as const)
        expect(typeof g[k], `${String(p.title)} gridPos.${k}`).toBe('number');
      expect((g.x as number) + (g.w as number)).toBeLessThanOrEqual(24);
    }
    for (const p of dataPanels) {
      expect(p.targets?.length, String(p.title)).toBeGreaterThan(0);
      const refIds = (p.targets ?? []).map((t) => t.refId);
      expect(new Set(refIds).size, String(p.title)).toBe(refIds.length);
      for (const t of p.targets ?? []) {
        expect(typeof t.expr).toBe('string');
        expect(metricNames(t.expr as string).length, t.expr as string).toBeGreaterThan(0);
      }
    }
  });

  it('has the panels the issue lists', () => {
    const titles = dataPanels.map((p) => String(p.title).toLowerCase());
    const exprs = dataPanels.flatMap((p) => (p.targets ?? []).map((t) => String(t.expr)));
    for (const want of ['request rate by outcome', 'hit ratio', 'p50 / p99', 'rate-limited', 'denied', 'connections']) {
      expect(
        titles.some((t) => t.includes(want)),
        want,
      ).toBe(true);
    }
    for (const re of [
      /histogram_quantile\(0\.5,.*memgate_request_duration_seconds_bucket/,
      /histogram_quantile\(0\.99,.*memgate_request_duration_seconds_bucket/,
      /memgate_client_received_bytes_total/,
      /memgate_client_sent_bytes_total/,
      /memgate_upstream_up/,
      /memgate_rotations_total/,
      /memgate_auth_failures_total/,
      /memgate_auth_lockouts_total/,
    ]) {
      expect(
        exprs.some((e) => re.test(e)),
        String(re),
      ).toBe(true);
    }
  });
});

describe('docker/prometheus/alerts.yml', () => {
  it('passes promtool check rules', async () => {
    const r = await run('promtool', ['check', 'rules', 'alerts.yml'], { cwd: RULES_DIR, timeout: 30_000 });
    expect(r.stdout).toMatch(/SUCCESS: \d+ rules found/);
  });

  it('passes its unit tests: promtool test rules alerts.test.yml', async () => {
    const r = await run('promtool', ['test', 'rules', 'alerts.test.yml'], { cwd: RULES_DIR, timeout: 30_000 });
    expect(r.stdout).toMatch(/SUCCESS/);
  });

  it('has an alert for each situation the issue lists, and a unit test of each', () => {
    const rules = parseYaml(readFileSync(path.join(RULES_DIR, 'alerts.yml'), 'utf8')) as {
      groups: { rules: { alert: string; expr: string }[] }[];
    };
    const tests = parseYaml(readFileSync(path.join(RULES_DIR, 'alerts.test.yml'), 'utf8')) as {
      tests: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[];
    };
    const alerts = rules.groups.flatMap((g) => g.rules);
    const byName = new Map(alerts.map((a) => [a.alert, a.expr]));
    const situations: [string, RegExp][] = [
      ['MemgateUpstreamDown', /memgate_upstream_up/],
      ['MemgateHighErrorRatio', /outcome="error"/],
      ['MemgateTenantRateLimited', /memgate_rate_limited_total/],
      ['MemgateAuthFailureBurst', /memgate_auth_failures_total/],
      ['MemgateMemoryWatermarkReached', /memgate_memory_watermark_reached/],
      ['MemgateStateStoreUnreachable', /memgate_state_up/],
    ];
    for (const [name, re] of situations) expect(byName.get(name), name).toMatch(re);
    const firingTested = new Set(
      tests.tests.flatMap((t) => t.alert_rule_test.filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname)),
    );
    for (const a of alerts) expect(firingTested.has(a.alert), `${a.alert} has a firing test`).toBe(true);
  });
});

describe('metricNames (the PromQL tokenizer of the metric-name check)', () => {
  it('keeps metric names and drops functions, aggregations, label lists, matchers, ranges and variables', () => {
    expect(
      metricNames(
        'histogram_quantile(0.99, sum by (tenant, le) (rate(memgate_request_duration_seconds_bucket{tenant=~"$tenant"}[$__rate_interval])))',
      ),
    ).toEqual(['memgate_request_duration_seconds_bucket']);
    expect(
      metricNames(
        '(sum by (instance) (rate(a_total{outcome="error"}[5m])) / sum without(x) (rate(b_total[5m]))) > 0.05 and on (instance) c > 1',
      ),
    ).toEqual(['a_total', 'b_total', 'c']);
    expect(metricNames('-sum(rate(x[1m] offset 5m)) or vector(0)')).toEqual(['x']);
    expect(metricNames('min by (instance) (memgate_state_up) == bool 0')).toEqual(['memgate_state_up']);
    expect(metricNames('a * on (tenant) group_left (pool) b{l="a{b}"}')).toEqual(['a', 'b']);
  });
});
