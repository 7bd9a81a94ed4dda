/**
 * CI has no Docker engine, so the image and compose files are checked statically:
 * their structure, that every path they name exists, and that the configs they
 * mount pass memgate's own loader.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parseConfigText } from '../../src/config/load.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const DOCKER = path.join(ROOT, 'docker');
const TEST_TOKEN = 'test-token-0123456789abc'; // 24 characters
const read = (p: string): string => readFileSync(path.join(ROOT, p), 'utf8');

interface Instruction {
  readonly op: string;
  readonly args: string;
  readonly line: number;
}

/** Dockerfile → instructions: comments dropped, `\` continuations joined. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = '';
  let startLine = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trimEnd();
    if (pending === '' && (line.trim() === '' || line.trim().startsWith('#'))) return;
    if (pending !== '' && line.trim().startsWith('#')) return;
    if (pending === '') startLine = i + 1;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      return;
    }
    const full = (pending + line).trim();
    pending = '';
    const m = /^(\S+)\s*(.*)$/.exec(full);
    if (m !== null) out.push({ op: (m[1] ?? '').toUpperCase(), args: m[2] ?? '', line: startLine });
  });
  return out;
}

/** The stages: each FROM and the instructions under it. */
function stagesOf(instructions: Instruction[]): { from: string; name: string | undefined; body: Instruction[] }[] {
  const stages: { from: string; name: string | undefined; body: Instruction[] }[] = [];
  for (const ins of instructions) {
    if (ins.op === 'FROM') {
      const m = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      stages.push({ from: m?.[1] ?? '', name: m?.[2], body: [] });
    } else {
      stages[stages.length - 1]?.body.push(ins);
    }
  }
  return stages;
}

/** `${NAME}` → the default of a global `ARG NAME=value`. */
function resolveArgs(text: string, instructions: Instruction[]): string {
  const defaults = new Map<string, string>();
  for (const ins of instructions) {
    if (ins.op === 'FROM') break;
    const m = /^(\w+)=(\S+)$/.exec(ins.args);
    if (ins.op === 'ARG' && m !== null) defaults.set(m[1] ?? '', m[2] ?? '');
  }
  return text.replace(/\$\{(\w+)\}/g, (_, name: string) => defaults.get(name) ?? `\${${name}}`);
}

function jsonArgs(ins: Instruction | undefined): unknown {
  if (ins === undefined) return undefined;
  return JSON.parse(ins.args) as unknown;
}

/** `.dockerignore` patterns, for the simple forms this repo uses (no `!`). */
function isDockerIgnored(p: string): boolean {
  const patterns = read('.dockerignore')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const toRegex = (pattern: string) =>
    new RegExp(
      `^${pattern
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*\*\//g, '(?:.*/)?')
        .replace(/\*/g, '[^/]*')}(?:/.*)?$`,
    );
  return patterns.some((pattern) => toRegex(pattern).test(p));
}

describe('docker/Dockerfile', () => {
  const text = read('docker/Dockerfile');
  const instructions = parseDockerfile(text);
  const stages = stagesOf(instructions);
  const final = stages[stages.length - 1];
  const finalBody = final?.body ?? [];
  const last = (op: string) => finalBody.filter((i) => i.op === op).at(-1);

  it('is multi-stage: a build stage on node:20-bookworm-slim and a separate runtime stage', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const build = stages.find((s) => s.name === 'build');
    expect(build).toBeDefined();
    expect(resolveArgs(build?.from ?? '', instructions)).toBe('node:20-bookworm-slim');
    expect(resolveArgs(final?.from ?? '', instructions)).toMatch(/^node:20-bookworm-slim$/);
    expect(final?.name).not.toBe('build');
    const buildRuns = build?.body.filter((i) => i.op === 'RUN').map((i) => i.args) ?? [];
    expect(buildRuns.some((r) => /\bnpm ci\b/.test(r))).toBe(true);
    expect(buildRuns.some((r) => /\bnpm run build\b/.test(r))).toBe(true);
  });

  it('ships only dist/, production node_modules and package.json in the runtime stage', () => {
    const copies = finalBody.filter((i) => i.op === 'COPY').map((i) => i.args.split(/\s+/));
    const sources = copies.map((c) =>
      c
        .filter((a) => !a.startsWith('--'))
        .slice(0, -1)
        .join(' '),
    );
    expect(sources.sort()).toEqual(['/src/dist', '/src/node_modules', 'package.json'].sort());
    const depsFrom = copies
      .find((c) => c.some((a) => a.endsWith('node_modules')))
      ?.find((a) => a.startsWith('--from='));
    const depsStage = stages.find((s) => `--from=${s.name}` === depsFrom);
    expect(depsStage?.body.some((i) => i.op === 'RUN' && /npm ci\b.*--omit=dev/.test(i.args))).toBe(true);
  });

  it('runs as a user that is not root', () => {
    const user = last('USER');
    expect(user).toBeDefined();
    expect(user?.args).not.toMatch(/^(root|0)(:|$)/);
  });

  it('exposes the client and admin ports and starts memgate serve with the mounted config', () => {
    expect(last('EXPOSE')?.args.split(/\s+/).sort()).toEqual(['11211', '9211']);
    expect(jsonArgs(last('ENTRYPOINT'))).toEqual(['node', 'dist/cli.js']);
    expect(jsonArgs(last('CMD'))).toEqual(['serve', '--config', '/etc/memgate/memgate.yaml']);
  });

  it('has a HEALTHCHECK that GETs the admin /healthz with node', () => {
    const hc = last('HEALTHCHECK');
    expect(hc).toBeDefined();
    const cmd = /\bCMD\s+(\[.*\])\s*$/.exec(hc?.args ?? '');
    const argv = JSON.parse(cmd?.[1] ?? 'null') as string[];
    expect(argv[0]).toBe('node');
    expect(argv.join(' ')).toMatch(/http:\/\/127\.0\.0\.1:9211\/healthz/);
  });

  it('ENTRYPOINT dist/cli.js is what the build emits (src/cli.ts with rootDir src)', () => {
    expect(existsSync(path.join(ROOT, 'src/cli.ts'))).toBe(true);
    const build = JSON.parse(read('tsconfig.build.json')) as { compilerOptions: { rootDir: string; outDir: string } };
    expect(build.compilerOptions.rootDir).toBe('src');
    expect(build.compilerOptions.outDir).toBe('dist');
  });

  it('copies only sources that exist in the repository and are not excluded by .dockerignore', () => {
    const stageNames = new Set(stages.map((s) => s.name));
    const fromContext: string[] = [];
    for (const ins of instructions.filter((i) => i.op === 'COPY' || i.op === 'ADD')) {
      const words = ins.args.split(/\s+/);
      const from = words.find((w) => w.startsWith('--from='));
      const paths = words.filter((w) => !w.startsWith('--')).slice(0, -1);
      if (from !== undefined) {
        expect(stageNames.has(from.slice('--from='.length)), `line ${ins.line}: unknown stage ${from}`).toBe(true);
        continue;
      }
      fromContext.push(...paths);
    }
    expect(fromContext.length).toBeGreaterThan(0);
    for (const src of fromContext) {
      expect(existsSync(path.join(ROOT, src)), `COPY source ${src} is missing`).toBe(true);
      expect(isDockerIgnored(src), `COPY source ${src} is excluded by .dockerignore`).toBe(false);
    }
  });

  it('.dockerignore keeps local state and build output out of the context', () => {
    for (const p of ['node_modules', 'dist', '.git', 'memgate-state.json', '.memgate']) {
      expect(isDockerIgnored(p), p).toBe(true);
    }
  });
});

interface ComposeService {
  image?: string;
  build?: { context?: string; dockerfile?: string };
  command?: string[] | string;
  ports?: unknown[];
  volumes?: string[];
  profiles?: string[];
  environment?: Record<string, string>;
  networks?: string[];
  depends_on?: string[];
}

describe('docker/compose.yaml', () => {
  const compose = parseYaml(read('docker/compose.yaml')) as {
    services: Record<string, ComposeService>;
    networks?: Record<string, { internal?: boolean } | null>;
  };
  const services = compose.services;
  const memgate = services.memgate;
  const memcached = services.memcached;

  it('defines two memgate instances, memcached and redis, and prometheus and grafana under the monitoring profile', () => {
    expect(Object.keys(services).sort()).toEqual([
      'grafana',
      'memcached',
      'memgate',
      'memgate-2',
      'prometheus',
      'redis',
    ]);
    for (const name of ['memgate', 'memgate-2', 'memcached', 'redis'])
      expect(services[name], name).not.toHaveProperty('profiles');
    for (const name of ['prometheus', 'grafana']) expect(services[name]?.profiles, name).toEqual(['monitoring']);
  });

  it('runs the second memgate from the same image and config, on other host ports, after redis', () => {
    const second = services['memgate-2'];
    expect(second?.image).toBe(memgate?.image);
    expect(second?.volumes).toEqual(memgate?.volumes);
    expect(second?.environment?.MEMGATE_ADMIN_TOKEN).toBe(memgate?.environment?.MEMGATE_ADMIN_TOKEN);
    expect(second?.depends_on).toEqual(expect.arrayContaining(['memcached', 'redis']));
    const config = parseConfigText(read('docker/config/compose.yaml'), 'compose.yaml', {
      MEMGATE_ADMIN_TOKEN: TEST_TOKEN,
    });
    const hostPorts = (list: readonly unknown[] | undefined): string[] =>
      (list ?? []).map((p) => String(p).split(':').slice(0, -1).join(':'));
    const published = (second?.ports ?? []).map(String);
    // every listener and the admin port, each container port published once, the admin on loopback
    for (const l of config.listen) expect(published.some((p) => p.endsWith(`:${l.port}`))).toBe(true);
    expect(published.some((p) => p.startsWith('127.0.0.1:') && p.endsWith(`:${config.admin?.port}`))).toBe(true);
    const first = new Set(hostPorts(memgate?.ports));
    for (const h of hostPorts(second?.ports)) expect(first.has(h), `host port ${h} used twice`).toBe(false);
  });

  it('builds memgate from the repository root with docker/Dockerfile', () => {
    expect(memgate?.build?.context).toBe('..');
    expect(memgate?.build?.dockerfile).toBe('docker/Dockerfile');
    const dockerfile = path.resolve(DOCKER, memgate?.build?.context ?? '', memgate?.build?.dockerfile ?? '');
    expect(existsSync(dockerfile)).toBe(true);
  });

  it('runs memcached 1.6 without UDP, unpublished, on internal networks only', () => {
    expect(memcached?.image).toMatch(/^memcached:1\.6/);
    const argv = Array.isArray(memcached?.command) ? memcached.command : (memcached?.command ?? '').split(/\s+/);
    const u = argv.indexOf('-U');
    expect(u).toBeGreaterThanOrEqual(0);
    expect(argv[u + 1]).toBe('0');
    expect(memcached).not.toHaveProperty('ports');
    for (const name of ['memcached', 'redis']) {
      expect(services[name]).not.toHaveProperty('ports');
      const nets = services[name]?.networks ?? [];
      expect(nets.length, `${name} networks`).toBeGreaterThan(0);
      for (const n of nets) expect(compose.networks?.[n]?.internal, `${name} on network ${n}`).toBe(true);
    }
  });

  it('mounts docker/config/compose.yaml where the image CMD reads its config', () => {
    const mount = memgate?.volumes?.find((v) => v.split(':')[1] === '/etc/memgate/memgate.yaml');
    expect(mount).toBeDefined();
    const host = mount?.split(':')[0] ?? '';
    expect(path.resolve(DOCKER, host)).toBe(path.join(DOCKER, 'config/compose.yaml'));
  });

  it('takes the admin token from the environment, never a literal', () => {
    expect(memgate?.environment?.MEMGATE_ADMIN_TOKEN).toMatch(/^\$\{MEMGATE_ADMIN_TOKEN(:?\?[^}]*)?\}$/);
  });

  it('publishes every memgate listener and the admin port, the admin port on loopback only', () => {
    const config = parseConfigText(read('docker/config/compose.yaml'), 'compose.yaml', {
      MEMGATE_ADMIN_TOKEN: TEST_TOKEN,
    });
    const published = (memgate?.ports ?? []).map(String);
    for (const l of config.listen) expect(published).toContain(`${l.port}:${l.port}`);
    expect(published).toContain(`127.0.0.1:${config.admin?.port}:${config.admin?.port}`);
  });
});

describe('docker/compose.yaml monitoring profile', () => {
  const compose = parseYaml(read('docker/compose.yaml')) as { services: Record<string, ComposeService> };
  const services = compose.services;
  /** `host:container[:ro]` bind mounts of a service, host paths resolved against docker/ */
  const binds = (name: string): { host: string; container: string }[] =>
    (services[name]?.volumes ?? [])
      .map((v) => v.split(':'))
      .filter((parts) => (parts[0] ?? '').startsWith('.'))
      .map((parts) => ({ host: path.resolve(DOCKER, parts[0] ?? ''), container: parts[1] ?? '' }));
  const mountOf = (name: string, container: string): string | undefined =>
    binds(name).find((b) => b.container === container)?.host;

  it('mounts only files that exist in the repository', () => {
    for (const name of ['prometheus', 'grafana']) {
      expect(binds(name).length, name).toBeGreaterThan(0);
      for (const b of binds(name)) expect(existsSync(b.host), `${name}: ${b.host}`).toBe(true);
    }
  });

  it('publishes Prometheus and Grafana on host loopback only', () => {
    for (const name of ['prometheus', 'grafana']) {
      const ports = (services[name]?.ports ?? []).map(String);
      expect(ports.length, name).toBeGreaterThan(0);
      for (const p of ports) expect(p, name).toMatch(/^127\.0\.0\.1:/);
    }
  });

  it('Prometheus scrapes the memgate admin port and loads docker/prometheus/alerts.yml', () => {
    const configHost = mountOf('prometheus', '/etc/prometheus/prometheus.yml');
    expect(configHost).toBe(path.join(DOCKER, 'prometheus/prometheus.yml'));
    const prom = parseYaml(readFileSync(configHost ?? '', 'utf8')) as {
      rule_files: string[];
      scrape_configs: { job_name: string; metrics_path?: string; static_configs: { targets: string[] }[] }[];
    };
    const memgateConfig = parseConfigText(read('docker/config/compose.yaml'), 'compose.yaml', {
      MEMGATE_ADMIN_TOKEN: TEST_TOKEN,
    });
    const targets = prom.scrape_configs.flatMap((c) => c.static_configs.flatMap((s) => s.targets));
    expect(targets).toContain(`memgate:${memgateConfig.admin?.port}`);
    for (const rules of prom.rule_files) {
      expect(mountOf('prometheus', rules), rules).toBe(path.join(DOCKER, 'prometheus/alerts.yml'));
    }
    expect(prom.rule_files.length).toBeGreaterThan(0);
    // Prometheus reaches memgate on a network they share
    const shared = (services.memgate?.networks ?? []).filter((n) => (services.prometheus?.networks ?? []).includes(n));
    expect(shared.length).toBeGreaterThan(0);
  });

  it('Grafana is provisioned with the Prometheus data source and the memgate dashboard', () => {
    const datasources = mountOf('grafana', '/etc/grafana/provisioning/datasources') ?? '';
    const dashboards = mountOf('grafana', '/etc/grafana/provisioning/dashboards') ?? '';
    const ds = parseYaml(read(path.relative(ROOT, path.join(datasources, 'prometheus.yml')))) as {
      datasources: { type: string; url: string; isDefault?: boolean }[];
    };
    expect(ds.datasources).toEqual([expect.objectContaining({ type: 'prometheus', url: 'http://prometheus:9090' })]);
    const provider = parseYaml(read(path.relative(ROOT, path.join(dashboards, 'memgate.yml')))) as {
      providers: { type: string; options: { path: string } }[];
    };
    const dir = provider.providers[0]?.options.path ?? '';
    expect(mountOf('grafana', `${dir}/memgate-dashboard.json`)).toBe(
      path.join(DOCKER, 'grafana/memgate-dashboard.json'),
    );
    expect(services.grafana?.networks).toEqual(expect.arrayContaining(services.prometheus?.networks ?? []));
  });
});

describe('configs shipped in docker/config', () => {
  it('compose.yaml passes the config loader and points at the compose services', () => {
    const config = parseConfigText(read('docker/config/compose.yaml'), 'compose.yaml', {
      MEMGATE_ADMIN_TOKEN: TEST_TOKEN,
    });
    expect(config.upstream.servers).toEqual(['memcached:11211']);
    for (const l of config.listen) expect(l.host).toBe('0.0.0.0');
    expect(config.admin).toMatchObject({ host: '0.0.0.0', port: 9211, token: TEST_TOKEN });
    // the two instances share generations and budgets through the redis service
    expect(config.state.url).toBe('redis://redis:6379/0');
  });

  it('compose.yaml is refused without MEMGATE_ADMIN_TOKEN (admin on 0.0.0.0 needs a token)', () => {
    expect(() => parseConfigText(read('docker/config/compose.yaml'), 'compose.yaml', {})).toThrow(/admin\.token/);
  });

  it('example.yaml passes the config loader', () => {
    const config = parseConfigText(read('docker/config/example.yaml'), 'example.yaml', {
      MEMGATE_ADMIN_TOKEN: TEST_TOKEN,
    });
    expect(config.listen.length).toBeGreaterThan(0);
    expect(Object.keys(config.tenants).length).toBeGreaterThan(0);
  });
});
