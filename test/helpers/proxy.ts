/**
 * Runs memgate in-process for an integration test, in front of a real
 * memcached, with a config written as YAML (so tests exercise the real loader).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { parseConfigText } from '../../src/config/load.js';
import { createProxy, type Proxy } from '../../src/index.js';

export interface RunningProxy {
  readonly proxy: Proxy;
  readonly dir: string;
  readonly statePath: string;
  /** port of the i-th listener */
  port(i: number): number;
  stop(): Promise<void>;
}

export interface StartProxyOptions {
  /** existing state directory (to restart on the same state) */
  dir?: string;
  rotateAllOnCorrupt?: boolean;
  logLevel?: string;
}

/**
 * `yaml` may use the placeholders ${UPSTREAM} (the memcached address) and
 * ${STATE} (a state file URL in a fresh temp dir). Listener ports should be 0.
 */
export async function startProxy(yaml: string, upstream: string, opts: StartProxyOptions = {}): Promise<RunningProxy> {
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'memgate-test-'));
  const statePath = path.join(dir, 'state.json');
  const text = yaml.replaceAll('${UPSTREAM}', upstream).replaceAll('${STATE}', `file:${statePath}`);
  const config = parseConfigText(text, 'test.yaml', {});
  const logger = pino({ level: opts.logLevel ?? process.env.MEMGATE_TEST_LOG ?? 'silent' });
  const proxy = createProxy(config, { logger, rotateAllOnCorrupt: opts.rotateAllOnCorrupt ?? false });
  await proxy.start();
  return {
    proxy,
    dir,
    statePath,
    port(i: number) {
      const a = proxy.addresses()[i];
      if (a === undefined) throw new Error(`no listener #${i}`);
      return a.port;
    },
    stop: () => proxy.stop(),
  };
}

/** Two namespace tenants on their own listeners, and an admin listener. */
export const TWO_TENANTS_YAML = `
listen:
  - { host: 127.0.0.1, port: 0, tenant: alpha }
  - { host: 127.0.0.1, port: 0, tenant: beta }
  - { host: 127.0.0.1, port: 0, tenant: ops }
  - { host: 127.0.0.1, port: 0, tenant: gamma }
upstream:
  servers: [ "\${UPSTREAM}" ]
  requestTimeoutMs: 1000
  backoffMinMs: 20
  backoffMaxMs: 200
state: { url: "\${STATE}" }
tenants:
  alpha: { prefix: "a7Zk2:" }
  beta: { prefix: "b9Qx1:" }
  ops: { admin: true }
  gamma: { prefix: "g:", mode: enforce, prefixes: [ "gamma:", "g2:" ] }
`;

/** One namespace tenant, alpha, on listener 0; `extra` is more top-level YAML (e.g. a `limits:` line). */
export function oneTenantYaml(extra = ''): string {
  return `
listen:
  - { host: 127.0.0.1, port: 0, tenant: alpha }
upstream:
  servers: [ "\${UPSTREAM}" ]
state: { url: "\${STATE}" }
${extra}
tenants:
  alpha: { prefix: "a7Zk2:" }
`;
}
