/**
 * Every metric that the Grafana dashboard (docker/grafana/memgate-dashboard.json)
 * or the alert rules (docker/prometheus/alerts.yml) read exists in a running
 * memgate's /metrics, with samples: a real memcached behind memgate, a little
 * traffic (hits, misses, a rate limit, an auth failure and lock-out, an
 * upstream reset) so that labelled series exist, then one scrape.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { hashPassword } from '../../src/policy/password.js';
import { useMemcachedAndProxy } from '../helpers/memcached-and-proxy.js';
import { metricNames } from '../helpers/promql-names.js';
import { TextClient } from '../helpers/text-client.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

const env = useMemcachedAndProxy(
  async () => `
listen:
  - { host: 127.0.0.1, port: 0, tenant: shop }
  - { host: 127.0.0.1, port: 0, tenant: slow }
  - { host: 127.0.0.1, port: 0 }
upstream:
  servers: [ "\${UPSTREAM}" ]
  requestTimeoutMs: 1000
  backoffMinMs: 20
  backoffMaxMs: 100
admin: { host: 127.0.0.1, port: 0 }
state: { url: "\${STATE}" }
auth: { lockoutFailures: 2, lockoutWindowMs: 60000, lockoutMs: 60000 }
tenants:
  shop: { prefix: "shop:" }
  slow: { prefix: "slow:", limits: { opsPerSecond: 1, burst: 1 } }
  blog: { prefix: "blog:", password: "${await hashPassword('blog-secret')}" }
`,
);

function get(port: number, urlPath: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: urlPath, timeout: 5000 }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve(text));
      })
      .on('error', reject);
  });
}

/** Names that /metrics has samples for; a histogram family X also answers to X itself. */
function exposedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{|\s)/.exec(line);
    if (m?.[1] !== undefined) names.add(m[1]);
    const h = /^# TYPE (\S+) histogram$/.exec(line);
    if (h?.[1] !== undefined && text.includes(`\n${h[1]}_count`)) names.add(h[1]);
  }
  return names;
}

/** Every PromQL expression of the dashboard (panel targets, query variables) and of the alert rules. */
function referencedExpressions(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  const dashboard = JSON.parse(readFileSync(path.join(ROOT, 'docker/grafana/memgate-dashboard.json'), 'utf8')) as {
    panels: { title: string; targets?: { expr: string }[] }[];
    templating: { list: { name: string; type: string; definition?: string }[] };
  };
  for (const p of dashboard.panels)
    for (const t of p.targets ?? []) out.push({ where: `panel ${p.title}`, expr: t.expr });
  for (const v of dashboard.templating.list) {
    // label_values(metric, label): the metric must exist
    const m = /^label_values\(([^,)]+)/.exec(v.definition ?? '');
    if (v.type === 'query' && m?.[1] !== undefined) out.push({ where: `variable ${v.name}`, expr: m[1] });
  }
  const rules = parseYaml(readFileSync(path.join(ROOT, 'docker/prometheus/alerts.yml'), 'utf8')) as {
    groups: { rules: { alert: string; expr: string }[] }[];
  };
  for (const g of rules.groups) for (const r of g.rules) out.push({ where: `alert ${r.alert}`, expr: r.expr });
  return out;
}

async function driveTraffic(): Promise<void> {
  const { gate } = env;
  const shop = await TextClient.connect(gate.port(0));
  shop.send('set k 0 0 1\r\nv\r\nget k\r\nget missing\r\nflush_all\r\nmn\r\n');
  await shop.readUntil('OK\r\nMN\r\n');
  shop.socket.destroy();

  const slow = await TextClient.connect(gate.port(1));
  slow.send('get a\r\nget b\r\nget c\r\nget d\r\n');
  await slow.readUntil('SERVER_ERROR rate limited\r\n');
  slow.socket.destroy();

  for (let i = 0; i < 2; i++) {
    const c = await TextClient.connect(gate.port(2));
    const token = 'blog wrong-password';
    c.send(`set auth 0 0 ${token.length}\r\n${token}\r\n`);
    await c.readUntil('\r\n');
    c.socket.destroy();
  }

  // an upstream reset: memcached dies under memgate and comes back
  await env.mc.kill();
  const probe = await TextClient.connect(gate.port(0));
  probe.send('get k\r\n');
  await probe.readUntil('\r\n');
  probe.socket.destroy();
  await env.mc.restart();
}

describe('metrics named by the dashboard and the alert rules', () => {
  it('every one has samples in a running memgate /metrics', async () => {
    await driveTraffic();
    const admin = env.gate.proxy.adminAddress();
    if (admin === null) throw new Error('no admin server');
    const exposed = exposedNames(await get(admin.port, '/metrics'));
    const exprs = referencedExpressions();
    expect(exprs.length).toBeGreaterThan(10);
    const missing: string[] = [];
    const seen = new Set<string>();
    for (const { where, expr } of exprs) {
      for (const name of metricNames(expr)) {
        seen.add(name);
        if (!exposed.has(name)) missing.push(`${name} (${where})`);
      }
    }
    expect(missing).toEqual([]);
    // the check is not vacuous: the headline metrics were among those checked
    for (const name of ['memgate_requests_total', 'memgate_rate_limited_total', 'memgate_upstream_resets_total']) {
      expect(seen.has(name), name).toBe(true);
    }
  });
});
