/**
 * memgate's side-by-side bench: the same workload against memcached directly, through
 * memgate, through twemproxy and through a bare Node socket pipe, in interleaved rounds.
 *
 *   npm run bench -- [--depths 1,16] [--duration 10] [--warmup 1] [--rounds 3]
 *                    [--connections 50] [--targets direct,memgate,twemproxy,pipe] [--pin]
 *                    [--external memcslap] [--idle-connections 2000] [--built] [--cluster]
 *
 *   memcached (-t 1) ◀── direct ─────────────────────────────┐
 *        ▲ ◀── memgate  (child process, tenant "bench") ◀────┤
 *        ▲ ◀── twemproxy (nutcracker, when installed)   ◀────┼── generator (child process)
 *        ▲ ◀── pipe (bench/load/pipe-proxy.ts)          ◀────┘
 *
 * memgate comes in three configs, each its own process: `memgate` (namespace mode,
 * rate limits set but never hit), `memgate-nolimits` (namespace mode, no limits) and
 * `memgate-bare` (an admin tenant: no rewrite, no limits); the table shows what the
 * limits and the policy cost. `memgate-redis` is `memgate` with its state (generations,
 * leased rate budgets) in a redis-server the bench starts: its row against `memgate`'s
 * is the cost of the Redis store. Only `memgate` runs unless --targets names the others.
 *
 * For each run the generator prints `#phase timed-start` / `#phase timed-end`; at those
 * moments the runner reads utime+stime of the proxy and of memcached from /proc, so
 * CPU per request covers exactly the timed phase. With --pin, memcached and the proxy
 * share core 0 and the generator (and this runner) use core 1.
 *
 * With --cluster, a second table: memgate and twemproxy (hash: md5, distribution:
 * ketama) each in front of the same three memcached, single-key gets and 10-key
 * multi-gets, memgate over twemproxy (bench/load/cluster.ts).
 *
 * Prints one table (medians over rounds) and writes every raw number to
 * bench/results/<timestamp>.json, with a chart of it beside (<timestamp>.svg, drawn by
 * load/chart.ts). Every child is killed on the way out, on error and on SIGINT/SIGTERM;
 * a watchdog ends a run that overstays its expected time.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { renderBenchSvg, svgPathFor } from './load/chart.js';
import {
  CLUSTER_SERVERS,
  CLUSTER_TARGETS,
  CLUSTER_WORKLOADS,
  clusterTable,
  summarizeCluster,
  type ClusterRunRecord,
  type ClusterTarget,
} from './load/cluster.js';
import { DEFAULT_GENERATOR_OPTIONS, parseRatio, type LoadResult } from './load/generator.js';
import { measureIdleMemory, type IdleMemoryResult } from './load/idle-memory.js';
import {
  ChildRegistry,
  ROOT,
  captureOutput,
  commandVersion,
  cpuSeconds,
  freePort,
  hasCommand,
  isAlive,
  pinSelf,
  startMemcached,
  startRedis,
  startMemgate,
  startPipeProxy,
  startTwemproxy,
  waitExit,
  type MemgatePolicy,
  type Server,
} from './load/processes.js';
import {
  DEFAULT_TARGETS,
  TARGETS,
  comparisonTable,
  formatTable,
  median,
  summarize,
  type RunRecord,
  type TargetName,
} from './load/report.js';

export interface BenchOptions {
  readonly depths: readonly number[];
  readonly durationSec: number;
  readonly warmupSec: number;
  readonly rounds: number;
  readonly connections: number;
  readonly targets: readonly TargetName[];
  readonly pin: boolean;
  readonly ratio: string;
  readonly valueSize: number;
  readonly keys: number;
  /** idle connections opened for the memory measurement; 0 skips it */
  readonly idleConnections: number;
  readonly external: 'memcslap' | null;
  /** total gets memcslap performs per run */
  readonly externalOps: number;
  /** run dist/cli.js (after `npm run build`) instead of src/cli.ts through tsx */
  readonly built: boolean;
  /** write a V8 CPU profile of each memgate process here (node --cpu-prof) */
  readonly cpuProfDir: string | null;
  readonly resultsDir: string;
  /** also run the 3-server cluster pair (memgate vs twemproxy, gets and 10-key multi-gets) */
  readonly cluster: boolean;
}

const PROXY_CPU = 0;
const LOAD_CPU = 1;

function positiveInt(text: string | undefined, fallback: number, flag: string, max: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > max)
    throw new Error(`${flag} must be an integer from 0 to ${max}, got "${text}"`);
  return n;
}

/** Parses the runner's flags (see the file comment). */
export function parseBenchArgs(argv: readonly string[]): BenchOptions {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      depths: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      rounds: { type: 'string' },
      connections: { type: 'string' },
      targets: { type: 'string' },
      pin: { type: 'boolean' },
      ratio: { type: 'string' },
      'value-size': { type: 'string' },
      keys: { type: 'string' },
      'idle-connections': { type: 'string' },
      external: { type: 'string' },
      'external-ops': { type: 'string' },
      built: { type: 'boolean' },
      'cpu-prof': { type: 'string' },
      'results-dir': { type: 'string' },
      cluster: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    process.stdout.write(`${usage()}\n`);
    process.exit(0);
  }
  const depths = (values.depths ?? '1,16').split(',').map((d) => positiveInt(d.trim(), 1, '--depths', 4096));
  if (depths.some((d) => d < 1)) throw new Error('--depths must be positive integers, e.g. 1,16');
  const targets = (values.targets ?? DEFAULT_TARGETS.join(',')).split(',').map((t) => t.trim());
  for (const t of targets) {
    if (!(TARGETS as readonly string[]).includes(t))
      throw new Error(`--targets: unknown target "${t}" (known: ${TARGETS.join(', ')})`);
  }
  const durationSec = Number(values.duration ?? '10');
  const warmupSec = Number(values.warmup ?? '1');
  if (!(durationSec > 0 && durationSec <= 600)) throw new Error('--duration must be over 0 and at most 600 seconds');
  if (!(warmupSec >= 0 && warmupSec <= 60)) throw new Error('--warmup must be from 0 to 60 seconds');
  if (values.external !== undefined && values.external !== 'memcslap')
    throw new Error('--external supports only memcslap');
  const ratio = values.ratio ?? '10:1';
  parseRatio(ratio);
  const rounds = positiveInt(values.rounds, 3, '--rounds', 100);
  const connections = positiveInt(values.connections, DEFAULT_GENERATOR_OPTIONS.connections, '--connections', 5000);
  if (rounds < 1 || connections < 1) throw new Error('--rounds and --connections must be at least 1');
  return {
    depths,
    durationSec,
    warmupSec,
    rounds,
    connections,
    targets: [...new Set(targets)] as TargetName[],
    pin: values.pin === true,
    ratio,
    valueSize: positiveInt(values['value-size'], DEFAULT_GENERATOR_OPTIONS.valueSize, '--value-size', 1024 * 1024),
    keys: positiveInt(values.keys, DEFAULT_GENERATOR_OPTIONS.keys, '--keys', 10_000_000),
    idleConnections: positiveInt(values['idle-connections'], 2000, '--idle-connections', 10_000),
    external: values.external === 'memcslap' ? 'memcslap' : null,
    externalOps: positiveInt(values['external-ops'], 200_000, '--external-ops', 100_000_000),
    built: values.built === true,
    cpuProfDir: values['cpu-prof'] === undefined ? null : path.resolve(values['cpu-prof']),
    resultsDir: values['results-dir'] ?? path.join(ROOT, 'bench/results'),
    cluster: values.cluster === true,
  };
}

function usage(): string {
  return [
    'usage: npm run bench -- [options]',
    '  --depths 1,16           pipeline depths (requests outstanding per connection)',
    '  --duration 10           timed phase per run, seconds',
    '  --warmup 1              warm-up before each timed phase, seconds',
    '  --rounds 3              interleaved rounds; the table shows medians',
    '  --connections 50        client connections of the load generator',
    '  --targets direct,memgate,twemproxy,pipe',
    '                          (also memgate-nolimits, memgate-bare: memgate without limits / admin tenant;',
    '                          memgate-redis: memgate with its state and rate budgets in Redis)',
    '  --pin                   memcached + proxy on core 0, load generator on core 1 (taskset)',
    '  --ratio 10:1            gets:sets',
    '  --value-size 32         bytes per value',
    '  --keys 100000           key space, preloaded before the first run of each target',
    '  --idle-connections 2000 idle connections for the memory measurement (0: skip)',
    '  --external memcslap     also drive memcslap (libmemcached-tools) at each target',
    '  --external-ops 200000   gets per memcslap run',
    '  --built                 run memgate from dist/cli.js (npm run build) instead of tsx',
    '  --cpu-prof DIR          write a CPU profile of each memgate process to DIR (node --cpu-prof)',
    '  --results-dir DIR       where the JSON results go (default bench/results)',
    '  --cluster               also memgate vs twemproxy (md5 ketama) over 3 memcached: gets and 10-key multi-gets',
  ].join('\n');
}

const log = (line: string): void => {
  process.stderr.write(`bench: ${line}\n`);
};

interface Targets {
  readonly memcached: Server;
  /** the process whose CPU is charged to each target; null for direct */
  readonly proxies: ReadonlyMap<TargetName, Server | null>;
  readonly ports: ReadonlyMap<TargetName, number>;
}

interface CpuSample {
  readonly proxy: number;
  readonly memcached: number;
}

type Measured = Pick<RunRecord, 'result' | 'proxyCpuSec' | 'memcachedCpuSec'>;

/** One generator run as a child process; samples CPU at its phase markers. `extraArgs` go to the generator. */
async function runGenerator(
  registry: ChildRegistry,
  opts: BenchOptions,
  target: string,
  port: number,
  depth: number,
  preload: boolean,
  proxy: Server | null,
  memcached: Server,
  pinned: boolean,
  extraArgs: readonly string[] = [],
): Promise<Measured> {
  const args = [
    '--import',
    'tsx',
    path.join(ROOT, 'bench/load/generator.ts'),
    '--port',
    String(port),
    '--connections',
    String(opts.connections),
    '--depth',
    String(depth),
    '--ratio',
    opts.ratio,
    '--value-size',
    String(opts.valueSize),
    '--keys',
    String(opts.keys),
    '--duration',
    String(opts.durationSec),
    '--warmup',
    String(opts.warmupSec),
    '--json',
    '--phases',
    ...extraArgs,
  ];
  if (!preload) args.push('--skip-preload');
  const child = registry.spawn(process.execPath, args, pinned ? LOAD_CPU : null, { cwd: ROOT });
  const output = captureOutput(child);
  // a holder, not two `let`s: the phase lines arrive in a callback
  const cpu: { start: CpuSample | null; end: CpuSample | null } = { start: null, end: null };
  let json = '';
  const sample = (): CpuSample => ({
    proxy: proxy === null ? 0 : cpuSeconds(proxy.pid),
    memcached: cpuSeconds(memcached.pid),
  });
  let pending = '';
  child.stdout?.on('data', (d: Buffer) => {
    pending += d.toString('utf8');
    for (let nl = pending.indexOf('\n'); nl !== -1; nl = pending.indexOf('\n')) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (line === '#phase timed-start') cpu.start = sample();
      else if (line === '#phase timed-end') cpu.end = sample();
      else if (line.startsWith('{')) json = line;
    }
  });
  // preload (bounded by the generator) + warm-up + timed phase + drain, with room to spare
  const limitMs = (opts.warmupSec + opts.durationSec) * 1000 + 180_000;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await waitExit(child, limitMs);
  if (isAlive(child)) {
    child.kill('SIGKILL');
    throw new Error(`generator against ${target} ran over ${limitMs} ms:\n${output()}`);
  }
  const code = await exited;
  if (code !== 0 || json === '') throw new Error(`generator against ${target} failed (exit ${code}):\n${output()}`);
  const { start, end } = cpu;
  if (start === null || end === null)
    throw new Error(`generator against ${target} printed no phase markers:\n${output()}`);
  const result = JSON.parse(json) as LoadResult;
  return {
    result,
    proxyCpuSec: proxy === null ? null : end.proxy - start.proxy,
    memcachedCpuSec: end.memcached - start.memcached,
  };
}

export interface ExternalRecord {
  readonly tool: 'memcslap';
  readonly target: TargetName;
  readonly round: number;
  readonly concurrency: number;
  readonly gets: number;
  readonly getSeconds: number;
  readonly opsPerSec: number;
  /** proxy CPU over the whole memcslap run (its set phase included) per request sent */
  readonly proxyCpuUsPerReq: number | null;
}

const MEMCSLAP_GET_LINE = /Time to get\s+(\d+) keys by\s+(\d+) threads:\s+([\d.]+) seconds/;

/** One memcslap `--test get` run against a target. */
async function runMemcslap(
  registry: ChildRegistry,
  opts: BenchOptions,
  target: TargetName,
  port: number,
  round: number,
  proxy: Server | null,
  pinned: boolean,
): Promise<ExternalRecord> {
  const concurrency = Math.min(opts.connections, 64);
  const perThread = Math.max(1, Math.ceil(opts.externalOps / concurrency));
  const args = [
    `--servers=127.0.0.1:${port}`,
    `--concurrency=${concurrency}`,
    `--execute-number=${perThread}`,
    '--test=get',
    '--tcp-nodelay',
  ];
  const before = proxy === null ? 0 : cpuSeconds(proxy.pid);
  const child = registry.spawn('memcslap', args, pinned ? LOAD_CPU : null);
  const output = captureOutput(child);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const limitMs = 300_000;
  await waitExit(child, limitMs);
  if (isAlive(child)) {
    child.kill('SIGKILL');
    throw new Error(`memcslap against ${target} ran over ${limitMs} ms`);
  }
  const code = await exited;
  const after = proxy === null ? 0 : cpuSeconds(proxy.pid);
  const m = MEMCSLAP_GET_LINE.exec(output());
  if (code !== 0 || m === null) throw new Error(`memcslap against ${target} failed (exit ${code}):\n${output()}`);
  const gets = Number(m[1]);
  const getSeconds = Number(m[3]);
  const requests = gets + perThread; // memcslap sets `perThread` keys before the gets
  return {
    tool: 'memcslap',
    target,
    round,
    concurrency,
    gets,
    getSeconds,
    opsPerSec: getSeconds > 0 ? Math.round(gets / getSeconds) : 0,
    proxyCpuUsPerReq: proxy === null ? null : Math.round(((after - before) * 1e6 * 100) / requests) / 100,
  };
}

function externalTable(records: readonly ExternalRecord[]): string {
  const rows: string[][] = [];
  for (const target of TARGETS) {
    const list = records.filter((r) => r.target === target);
    if (list.length === 0) continue;
    const cpu = list[0]?.proxyCpuUsPerReq === null ? '-' : median(list.map((r) => r.proxyCpuUsPerReq ?? 0)).toFixed(2);
    rows.push([
      target,
      String(list[0]?.concurrency ?? 0),
      String(Math.round(median(list.map((r) => r.opsPerSec)))),
      cpu,
    ]);
  }
  return formatTable(['target (memcslap get)', 'threads', 'ops/s', 'proxy CPU µs/req'], rows);
}

/** The memgate targets and the policy each one's config gives tenant "bench". */
const MEMGATE_POLICY: Partial<Record<TargetName, MemgatePolicy>> = {
  memgate: 'limits',
  'memgate-redis': 'limits',
  'memgate-nolimits': 'nolimits',
  'memgate-bare': 'bare',
};

async function startTargets(
  registry: ChildRegistry,
  opts: BenchOptions,
  workDir: string,
  pinned: boolean,
  notes: string[],
): Promise<Targets> {
  const cpu = pinned ? PROXY_CPU : null;
  const memcached = await startMemcached(registry, await freePort(), cpu);
  log(`memcached pid ${memcached.pid} on ${memcached.port}`);
  const proxies = new Map<TargetName, Server | null>();
  const ports = new Map<TargetName, number>();
  for (const target of opts.targets) {
    if (target === 'direct') {
      proxies.set(target, null);
      ports.set(target, memcached.port);
      continue;
    }
    if (target === 'twemproxy' && !hasCommand('nutcracker')) {
      notes.push('twemproxy skipped: nutcracker is not installed (bench/setup.sh installs it)');
      log(notes[notes.length - 1] ?? '');
      continue;
    }
    const port = await freePort();
    let server: Server;
    const policy = MEMGATE_POLICY[target];
    let stateUrl: string | undefined;
    if (target === 'memgate-redis') {
      const redis = await startRedis(registry, await freePort(), cpu);
      log(`redis-server pid ${redis.pid} on ${redis.port}`);
      stateUrl = `redis://127.0.0.1:${redis.port}/0`;
    }
    if (policy !== undefined) {
      server = await startMemgate(
        registry,
        {
          port,
          upstreamPort: memcached.port,
          workDir,
          built: opts.built,
          tag: target,
          policy,
          ...(stateUrl === undefined ? {} : { stateUrl }),
          cpuProfDir: opts.cpuProfDir,
        },
        cpu,
      );
    } else if (target === 'twemproxy') {
      server = await startTwemproxy(registry, port, memcached.port, workDir, cpu);
    } else {
      server = await startPipeProxy(registry, port, memcached.port, cpu);
    }
    log(`${target} pid ${server.pid} on ${port}`);
    proxies.set(target, server);
    ports.set(target, port);
  }
  return { memcached, proxies, ports };
}

function environment(pinned: boolean): Record<string, unknown> {
  const cpus = os.cpus();
  return {
    node: process.version,
    memcached: commandVersion('memcached', ['-V'], /memcached \S+/),
    nutcracker: hasCommand('nutcracker') ? commandVersion('nutcracker', ['-V'], /nutcracker-\S+/) : null,
    memcslap: hasCommand('memcslap') ? commandVersion('memcslap', ['--version'], /memslap v\S+.*/) : null,
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? null,
    kernel: os.release(),
    pinned,
    commit: commandVersion('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], /^[0-9a-f]{7,}$/m),
  };
}

/**
 * Runs the whole bench. The caller owns the registry and `workDir` (configs, state files,
 * twemproxy's log) and so the cleanup.
 */
export async function runBench(opts: BenchOptions, registry: ChildRegistry, workDir: string): Promise<void> {
  const notes: string[] = [];
  let pinned = opts.pin;
  if (pinned && (os.cpus().length < 2 || !hasCommand('taskset'))) {
    notes.push('--pin ignored: needs taskset and at least 2 cores');
    log(notes[notes.length - 1] ?? '');
    pinned = false;
  }
  if (pinned && !pinSelf(LOAD_CPU)) notes.push('could not pin the runner itself to core 1');
  if (opts.built && !existsSync(path.join(ROOT, 'dist/cli.js')))
    throw new Error('--built needs dist/cli.js: run npm run build');
  if (!hasCommand('memcached')) throw new Error('memcached is not installed (bash bench/setup.sh)');
  if (opts.external === 'memcslap' && !hasCommand('memcslap'))
    throw new Error('--external memcslap: memcslap is not installed');

  try {
    const startedAt = new Date();
    const targets = await startTargets(registry, opts, workDir, pinned, notes);
    const order = opts.targets.filter((t) => targets.ports.has(t));

    // Memory first, on fresh processes, so throughput runs do not inflate the baseline.
    const memory: IdleMemoryResult[] = [];
    if (opts.idleConnections > 0) {
      for (const target of order) {
        const proxy = targets.proxies.get(target);
        if (proxy === null || proxy === undefined || target === 'pipe') continue; // the pipe's cost is its upstream sockets
        log(`${target}: RSS per idle connection (${opts.idleConnections} connections)`);
        memory.push(
          await measureIdleMemory({ target, pid: proxy.pid, port: proxy.port, connections: opts.idleConnections }),
        );
      }
    }

    const runs: RunRecord[] = [];
    const preloaded = new Set<TargetName>();
    for (let round = 1; round <= opts.rounds; round++) {
      for (const depth of opts.depths) {
        for (const target of order) {
          const port = targets.ports.get(target) ?? 0;
          const proxy = targets.proxies.get(target) ?? null;
          const rec = await runGenerator(
            registry,
            opts,
            target,
            port,
            depth,
            !preloaded.has(target),
            proxy,
            targets.memcached,
            pinned,
          );
          preloaded.add(target);
          runs.push({ ...rec, target, depth, round });
          const cpu =
            rec.proxyCpuSec === null
              ? ''
              : `, proxy ${((rec.proxyCpuSec * 1e6) / Math.max(1, rec.result.ops)).toFixed(2)} µs CPU/req`;
          log(
            `round ${round}/${opts.rounds} depth ${depth} ${target}: ${rec.result.opsPerSec} ops/s, ` +
              `p50 ${rec.result.p50Us} µs, p99 ${rec.result.p99Us} µs${cpu}, errors ${rec.result.errors}, misses ${rec.result.misses}`,
          );
        }
      }
    }

    const external: ExternalRecord[] = [];
    if (opts.external === 'memcslap') {
      for (let round = 1; round <= opts.rounds; round++) {
        for (const target of order) {
          const rec = await runMemcslap(
            registry,
            opts,
            target,
            targets.ports.get(target) ?? 0,
            round,
            targets.proxies.get(target) ?? null,
            pinned,
          );
          external.push(rec);
          log(`memcslap round ${round} ${target}: ${rec.opsPerSec} ops/s`);
        }
      }
    }

    const cluster = opts.cluster ? await runClusterPair(registry, opts, workDir, pinned, notes) : [];

    const summary = summarize(runs);
    const lines = [
      '',
      `memgate bench: ${opts.connections} connections, get:set ${opts.ratio}, ${opts.valueSize} B values, ` +
        `${opts.keys} keys, ${opts.durationSec} s x ${opts.rounds} round(s) (medians), ${pinned ? 'pinned' : 'not pinned'}`,
      '',
      comparisonTable(summary),
    ];
    for (const m of memory) {
      lines.push(
        '',
        `${m.target}: ${(m.idleBytesPerConnection / 1024).toFixed(1)} KiB RSS per idle connection ` +
          `(${(m.activeBytesPerConnection / 1024).toFixed(1)} KiB after one request each; ${m.connections} connections, ` +
          `RSS ${(m.rssBeforeBytes / 1048576).toFixed(1)} → ${(m.rssIdleBytes / 1048576).toFixed(1)} MiB)`,
      );
    }
    if (external.length > 0) lines.push('', externalTable(external));
    if (cluster.length > 0) {
      lines.push(
        '',
        `cluster: ${CLUSTER_SERVERS} memcached behind each proxy (ketama; twemproxy hash: md5); a multi-get is one request; server CPU %: each memcached's share`,
        '',
        clusterTable(summarizeCluster(cluster)),
      );
    }
    for (const n of notes) lines.push('', `note: ${n}`);
    const errors = summary.reduce((n, r) => n + r.errors, 0);
    if (errors > 0) lines.push('', `WARNING: ${errors} error replies during timed phases (see the JSON)`);
    process.stdout.write(`${lines.join('\n')}\n`);

    mkdirSync(opts.resultsDir, { recursive: true });
    const file = path.join(opts.resultsDir, `${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
    const report = {
      startedAt: startedAt.toISOString(),
      options: opts,
      environment: environment(pinned),
      notes,
      summary,
      memory,
      external,
      runs,
      cluster: cluster.length > 0 ? { summary: summarizeCluster(cluster), runs: cluster } : null,
    };
    writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
    const chart = svgPathFor(file);
    writeFileSync(chart, renderBenchSvg(report));
    process.stdout.write(
      `\nresults: ${path.relative(process.cwd(), file)}\nchart: ${path.relative(process.cwd(), chart)}\n`,
    );
  } finally {
    await registry.stopAll();
  }
}

/**
 * The cluster pair: three memcached, memgate and twemproxy (md5 ketama) in front of
 * them, every workload at every depth for every round, interleaved.
 */
async function runClusterPair(
  registry: ChildRegistry,
  opts: BenchOptions,
  workDir: string,
  pinned: boolean,
  notes: string[],
): Promise<ClusterRunRecord[]> {
  const cpu = pinned ? PROXY_CPU : null;
  const servers: Server[] = [];
  for (let i = 0; i < CLUSTER_SERVERS; i++) servers.push(await startMemcached(registry, await freePort(), cpu));
  const first = servers[0];
  if (first === undefined) return [];
  const ports = servers.map((s) => s.port);
  log(`cluster: memcached on ${ports.join(', ')}`);
  const proxies = new Map<ClusterTarget, Server>();
  const memgatePort = await freePort();
  const memgateLaunch = { port: memgatePort, upstreamPort: ports, workDir, built: opts.built };
  proxies.set(
    'memgate-cluster',
    await startMemgate(
      registry,
      { ...memgateLaunch, tag: 'memgate-cluster', policy: 'limits', cpuProfDir: opts.cpuProfDir },
      cpu,
    ),
  );
  if (hasCommand('nutcracker')) {
    const port = await freePort();
    proxies.set(
      'twemproxy-cluster',
      await startTwemproxy(registry, port, ports, workDir, cpu, 'twemproxy-cluster', 'md5'),
    );
  } else {
    notes.push('twemproxy-cluster skipped: nutcracker is not installed (bench/setup.sh installs it)');
    log(notes[notes.length - 1] ?? '');
  }
  const records: ClusterRunRecord[] = [];
  const preloaded = new Set<ClusterTarget>();
  for (let round = 1; round <= opts.rounds; round++) {
    for (const workload of CLUSTER_WORKLOADS) {
      for (const depth of opts.depths) {
        for (const target of CLUSTER_TARGETS) {
          const proxy = proxies.get(target);
          if (proxy === undefined) continue;
          const before = servers.map((s) => cpuSeconds(s.pid));
          const rec = await runGenerator(
            registry,
            opts,
            target,
            proxy.port,
            depth,
            !preloaded.has(target),
            proxy,
            first,
            pinned,
            ['--get-keys', String(workload.getKeys)],
          );
          preloaded.add(target);
          const serverCpuSec = servers.map((s, i) => cpuSeconds(s.pid) - (before[i] ?? 0));
          records.push({
            target,
            workload: workload.name,
            depth,
            round,
            result: rec.result,
            proxyCpuSec: rec.proxyCpuSec ?? 0,
            serverCpuSec,
          });
          const us = ((rec.proxyCpuSec ?? 0) * 1e6) / Math.max(1, rec.result.ops);
          log(
            `cluster round ${round}/${opts.rounds} ${workload.name} depth ${depth} ${target}: ${rec.result.opsPerSec} ops/s, ` +
              `proxy ${us.toFixed(2)} µs CPU/req, errors ${rec.result.errors}, misses ${rec.result.misses}`,
          );
        }
      }
    }
  }
  return records;
}

/** Expected wall time of a bench, for the watchdog. */
function expectedMs(opts: BenchOptions): number {
  const perRun = (opts.durationSec + opts.warmupSec + 6) * 1000;
  const clusterRuns = opts.cluster
    ? opts.rounds * CLUSTER_WORKLOADS.length * opts.depths.length * CLUSTER_TARGETS.length
    : 0;
  const runs = opts.rounds * opts.depths.length * opts.targets.length + clusterRuns;
  const external = opts.external === null ? 0 : opts.rounds * opts.targets.length * 60_000;
  return runs * perRun + external + opts.targets.length * 30_000 + 60_000;
}

async function main(): Promise<number> {
  let opts: BenchOptions;
  try {
    opts = parseBenchArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n${usage()}\n`);
    return 2;
  }
  const registry = new ChildRegistry();
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'memgate-bench-'));
  // 'exit' runs on every way out (process.exit included); both steps are synchronous
  process.once('exit', () => {
    registry.killAllNow();
    rmSync(workDir, { recursive: true, force: true });
  });
  let stopping = false;
  const abort = (why: string, code: number): void => {
    if (stopping) return;
    stopping = true;
    log(why);
    registry.stopAll(1000).finally(() => process.exit(code));
  };
  process.once('SIGINT', () => abort('interrupted: stopping every child', 130));
  process.once('SIGTERM', () => abort('terminated: stopping every child', 143));
  const limit = expectedMs(opts) * 2;
  const watchdog = setTimeout(() => abort(`watchdog: the bench ran over ${Math.round(limit / 1000)} s`, 1), limit);
  try {
    await runBench(opts, registry, workDir);
    return 0;
  } catch (err) {
    log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return 1;
  } finally {
    clearTimeout(watchdog);
    await registry.stopAll();
  }
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href;
if (isMain) void main().then((code) => process.exit(code));
