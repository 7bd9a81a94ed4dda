/**
 * Real clients, direct against memcached and through a memgate tenant: the
 * same scenario (test/compat/clients/*_scenario.*, one per client, each
 * printing one JSON line per step) is run twice and the outcomes must match
 * step by step. Documented differences (README.md, "Client compatibility")
 * are the only exceptions, and each is asserted here as what it is.
 *
 * Servers: a plain memcached (direct runs), a memcached with SASL (`-S`, a
 * sasldb made with saslpasswd2: direct SASL runs), and a third memcached
 * behind memgate. Runs are sequential: the scenario flushes its server.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../src/policy/password.js';
import { startProxy, type RunningProxy } from '../helpers/proxy.js';
import { spawnMemcached, type MemcachedProcess } from '../helpers/spawn-memcached.js';
import { TextClient } from '../helpers/text-client.js';

const run = promisify(execFile);
const CLIENTS = path.join(import.meta.dirname, 'clients');
const ROOT = path.resolve(import.meta.dirname, '../..');
const SASL_USER = 'shop';
const SASL_PASSWORD = 'shop-secret';
const ENFORCE_PREFIX = 'gamma:';

/** How each client's scenario is started: the interpreter Debian's package loads into, and the script. */
const RUNNERS = {
  pylibmc: ['/usr/bin/python3', 'pylibmc_scenario.py'],
  pymemcache: ['/usr/bin/python3', 'pymemcache_scenario.py'],
  php: ['/usr/bin/php', 'php_memcached_scenario.php'],
  perl: ['/usr/bin/perl', 'cache_memcached_fast_scenario.pl'],
  dalli: ['/usr/bin/ruby', 'dalli_scenario.rb'],
  memjs: [process.execPath, '--import', 'tsx', 'memjs_scenario.ts'],
} as const;
type Client = keyof typeof RUNNERS;

interface Options {
  port: number;
  protocol: 'text' | 'binary';
  user?: string;
  password?: string;
  prefix?: string;
}

interface Step {
  step: string;
  outcome: unknown;
}

let direct: MemcachedProcess;
let directSasl: MemcachedProcess;
let upstream: MemcachedProcess;
let gate: RunningProxy;
const NAMESPACE = 0;
const ENFORCE = 1;
const OTHER = 2;
const SHARED = 3;
const ADMIN = 4;
const versions: string[] = [];

/** A memcached with SASL PLAIN for one user, from a sasldb in a fresh directory. */
async function spawnSaslMemcached(): Promise<MemcachedProcess> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgate-compat-sasl-'));
  const db = path.join(dir, 'sasldb');
  // memcached's SASL realm is gethostname(); give the user that realm explicitly
  const child = execFile('/usr/sbin/saslpasswd2', [
    '-a',
    'memcached',
    '-c',
    '-p',
    '-f',
    db,
    '-u',
    os.hostname(),
    SASL_USER,
  ]);
  child.stdin?.end(SASL_PASSWORD);
  await new Promise<void>((resolve, reject) =>
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`saslpasswd2 exited ${code}`)))),
  );
  fs.writeFileSync(path.join(dir, 'memcached.conf'), `mech_list: plain\nsasldb_path: ${db}\n`);
  return spawnMemcached(['-S'], { SASL_CONF_PATH: dir });
}

beforeAll(async () => {
  if (!fs.existsSync('/usr/sbin/saslpasswd2'))
    throw new Error('saslpasswd2 is not installed (Debian sasl2-bin): run scripts/setup.sh');
  [direct, directSasl, upstream] = await Promise.all([spawnMemcached(), spawnSaslMemcached(), spawnMemcached()]);
  const hash = await hashPassword(SASL_PASSWORD);
  gate = await startProxy(
    `
listen:
  - { host: 127.0.0.1, port: 0, tenant: alpha }
  - { host: 127.0.0.1, port: 0, tenant: gamma }
  - { host: 127.0.0.1, port: 0, tenant: beta }
  - { host: 127.0.0.1, port: 0 }
  - { host: 127.0.0.1, port: 0, tenant: ops }
upstream:
  servers: [ "\${UPSTREAM}" ]
state: { url: "\${STATE}" }
tenants:
  alpha: { prefix: "a7Zk2:" }
  gamma: { prefix: "g:", mode: enforce, prefixes: [ "${ENFORCE_PREFIX}" ] }
  beta: { prefix: "b9Qx1:" }
  ${SASL_USER}: { prefix: "shop:", password: "${hash}" }
  ops: { admin: true }
`,
    upstream.address,
  );
}, 60_000);

afterAll(async () => {
  await gate?.stop();
  await Promise.all([direct?.stop(), directSasl?.stop(), upstream?.stop()]);
  if (versions.length > 0) console.log(`compat: client versions exercised:\n  ${versions.join('\n  ')}`);
});

async function scenario(client: Client, opts: Options): Promise<Step[]> {
  const [bin, ...args] = RUNNERS[client];
  const script = path.join(CLIENTS, args.pop() ?? '');
  let stdout: string;
  try {
    ({ stdout } = await run(bin, [...args, script, JSON.stringify(opts)], {
      timeout: 60_000,
      cwd: ROOT,
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' }, // no __pycache__ in the tree
    }));
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${client} scenario failed: ${err.message}\n${err.stdout ?? ''}\n${err.stderr ?? ''}`);
  }
  const steps = stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Step);
  if (steps.at(-1)?.step !== 'done') throw new Error(`${client} scenario did not finish:\n${stdout}`);
  return steps;
}

/** Sets `key` through a raw text connection to `port`, and reads it back later. */
async function textSet(port: number, key: string): Promise<void> {
  const c = await TextClient.connect(port);
  expect(await c.request(`set ${key} 0 0 4\r\nkeep\r\n`)).toBe('STORED\r\n');
  c.close();
}
async function textGet(port: number, key: string): Promise<string> {
  const c = await TextClient.connect(port);
  const r = await c.request(`get ${key}\r\n`);
  c.close();
  return r;
}

/**
 * A documented difference (README.md, "Client compatibility"): at `step`,
 * memgate's outcome is `expect(direct outcome)` instead of the direct one.
 */
interface Difference {
  readonly step: string;
  readonly why: string;
  readonly expect: (direct: unknown) => unknown;
}

/**
 * Runs `client` directly and through memgate and compares the outcomes, step
 * by step, after applying `differences`. Around the memgate run, another
 * tenant's key must survive the scenario's flush_all (memcached's own flush,
 * in a plain direct run, takes every key).
 */
async function compare(
  client: Client,
  directOpts: Options,
  gatedOpts: Options,
  differences: readonly Difference[] = [],
): Promise<void> {
  const plainDirect = directOpts.user === undefined;
  if (plainDirect) await textSet(directOpts.port, 'bystander');
  const d = await scenario(client, directOpts);
  if (plainDirect) expect(await textGet(directOpts.port, 'bystander')).toBe('END\r\n');

  await textSet(gate.port(OTHER), 'bystander');
  const g = await scenario(client, gatedOpts);
  // an admin's flush_all is memcached's own: it takes every tenant's keys
  const survives = gatedOpts.port !== gate.port(ADMIN);
  expect(await textGet(gate.port(OTHER), 'bystander')).toBe(
    survives ? 'VALUE bystander 0 4\r\nkeep\r\nEND\r\n' : 'END\r\n',
  );

  const info = d.find((s) => s.step === 'client');
  versions.push(`${client} ${gatedOpts.user !== undefined ? 'SASL ' : ''}${JSON.stringify(info?.outcome)}`);
  for (const diff of differences)
    expect(
      d.map((s) => s.step),
      diff.why,
    ).toContain(diff.step);
  const expected = d.map((s) => {
    const diff = differences.find((x) => x.step === s.step);
    return diff === undefined ? s : { step: s.step, outcome: diff.expect(s.outcome) };
  });
  expect(g).toEqual(expected);
}

const text = (port: number, extra: Partial<Options> = {}): Options => ({ port, protocol: 'text', ...extra });
const binary = (port: number, extra: Partial<Options> = {}): Options => ({ port, protocol: 'binary', ...extra });
const sasl = { user: SASL_USER, password: SASL_PASSWORD };
const enforce = { prefix: ENFORCE_PREFIX };

/**
 * A binary INCR/DECR with an initial value that creates the item: memcached
 * counts it in neither incr_hits nor incr_misses, memgate (which sends it as
 * `ma … N J`, whose reply does not say whether it created the item) in incr_hits.
 */
function vivifiedIncrements(n: number): Difference {
  return {
    step: 'stats_delta',
    why: 'a created-on-miss increment counts as a hit',
    expect: (d) => ({
      ...(d as Record<string, number>),
      incr_hits: ((d as Record<string, number>).incr_hits ?? 0) + n,
    }),
  };
}

describe('pylibmc (python3-pylibmc, libmemcached)', () => {
  it('text: the same outcomes through a namespace tenant', async () => {
    await compare('pylibmc', text(direct.port), text(gate.port(NAMESPACE)));
  });
  it('text: the same outcomes through an enforce tenant', async () => {
    await compare('pylibmc', text(direct.port, enforce), text(gate.port(ENFORCE), enforce), [
      {
        step: 'flush_all',
        why: "an enforce tenant's flush_all is refused: its keys have no generation to rotate",
        expect: () => 'error:SomeErrors', // pylibmc raises, so the step's two gets are not run
      },
      {
        step: 'stats_delta',
        why: 'the flush_all step stops at the refused flush_all, before its two gets',
        expect: (d) => {
          const n = d as Record<string, number>;
          return { ...n, cmd_get: (n.cmd_get ?? 0) - 2, get_misses: (n.get_misses ?? 0) - 2 };
        },
      },
    ]);
  });
  it('text: the same outcomes through an admin tenant (keys and flush_all unchanged)', async () => {
    await compare('pylibmc', text(direct.port), text(gate.port(ADMIN)));
  });
  it('binary: the same outcomes through a namespace tenant', async () => {
    await compare('pylibmc', binary(direct.port), binary(gate.port(NAMESPACE)));
  });
  it('binary SASL: the same outcomes through a password tenant as with memcached -S', async () => {
    await compare('pylibmc', binary(directSasl.port, sasl), binary(gate.port(SHARED), sasl));
  });
});

describe('php-memcached (php-memcached, libmemcached)', () => {
  it('text: the same outcomes through a namespace tenant', async () => {
    await compare('php', text(direct.port), text(gate.port(NAMESPACE)));
  });
  it('binary: the same outcomes through a namespace tenant', async () => {
    await compare('php', binary(direct.port), binary(gate.port(NAMESPACE)));
  });
  it('binary SASL (setSaslAuthData): the same outcomes through a password tenant as with memcached -S', async () => {
    await compare('php', binary(directSasl.port, sasl), binary(gate.port(SHARED), sasl));
  });
});

describe('Cache::Memcached::Fast (libcache-memcached-fast-perl)', () => {
  it('text: the same outcomes through a namespace tenant', async () => {
    await compare('perl', text(direct.port), text(gate.port(NAMESPACE)));
  });
});

describe('dalli (ruby-dalli)', () => {
  it('binary: the same outcomes through a namespace tenant', async () => {
    await compare('dalli', binary(direct.port), binary(gate.port(NAMESPACE)), [vivifiedIncrements(1)]);
  });
  it('binary SASL: the same outcomes through a password tenant as with memcached -S', async () => {
    await compare('dalli', binary(directSasl.port, sasl), binary(gate.port(SHARED), sasl), [vivifiedIncrements(1)]);
  });
});

describe('pymemcache (python3-pymemcache)', () => {
  it('text: the same outcomes through a namespace tenant', async () => {
    await compare('pymemcache', text(direct.port), text(gate.port(NAMESPACE)));
  });
});

describe('memjs (npm)', () => {
  it('binary SASL: the same outcomes through a password tenant as with memcached -S', async () => {
    await compare('memjs', binary(directSasl.port, sasl), binary(gate.port(SHARED), sasl), [vivifiedIncrements(2)]);
  });
});
