/**
 * Child processes for the bench: a registry that kills everything it started (on the
 * way out, on error, on SIGINT), the servers under test, and /proc readers for their
 * CPU time, RSS and open file descriptors.
 *
 * Every wait here is bounded; a server that does not listen in time is killed and the
 * bench fails with its output.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '../..');
const LOOPBACK = '127.0.0.1';

/** Every child the bench started; stopAll() on every way out. */
export class ChildRegistry {
  private readonly children = new Set<ChildProcess>();

  /** spawn(), optionally pinned to `cpu` with taskset (which execs: the pid stays the child's). */
  spawn(command: string, args: readonly string[], cpu: number | null, opts: SpawnOptions = {}): ChildProcess {
    const [cmd, argv] = cpu === null ? [command, [...args]] : ['taskset', ['-c', String(cpu), command, ...args]];
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    // a spawn failure (ENOENT) is reported through 'error'; the waiter sees the exit
    child.once('error', () => this.children.delete(child));
    return child;
  }

  /** SIGTERM everything, then SIGKILL what is still alive after `graceMs`. */
  async stopAll(graceMs = 3000): Promise<void> {
    const alive = [...this.children].filter(isAlive);
    for (const c of alive) c.kill('SIGTERM');
    await Promise.all(alive.map((c) => waitExit(c, graceMs)));
    this.killAllNow();
  }

  /** SIGKILL everything still alive; synchronous, for process.on('exit'). */
  killAllNow(): void {
    for (const c of this.children) if (isAlive(c)) c.kill('SIGKILL');
  }
}

export function isAlive(c: ChildProcess): boolean {
  return c.exitCode === null && c.signalCode === null;
}

/** Resolves when `c` exits or after `ms`, whichever comes first. */
export function waitExit(c: ChildProcess, ms: number): Promise<void> {
  if (!isAlive(c)) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    c.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Keeps the last `maxBytes` of a child's stdout and stderr, for error messages. */
export function captureOutput(c: ChildProcess, maxBytes = 8192): () => string {
  let out = '';
  const keep = (d: Buffer): void => {
    out += d.toString('utf8');
    if (out.length > maxBytes) out = out.slice(-maxBytes);
  };
  c.stdout?.on('data', keep);
  c.stderr?.on('data', keep);
  return () => out;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, LOOPBACK, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: LOOPBACK, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `port` accepts connections; throws (with the child's output) on exit or timeout. */
export async function waitForListen(
  child: ChildProcess,
  port: number,
  name: string,
  output: () => string,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    // no pid: the spawn itself failed (ENOENT, EACCES)
    if (!isAlive(child) || child.pid === undefined)
      throw new Error(`${name} exited before listening on ${port}:\n${output()}`);
    if (await canConnect(port)) return;
    await sleep(50);
  }
  throw new Error(`${name} did not listen on ${port} within ${timeoutMs} ms:\n${output()}`);
}

/** A server the bench started and talks to on 127.0.0.1:port. */
export interface Server {
  readonly name: string;
  readonly port: number;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly output: () => string;
}

async function startServer(
  registry: ChildRegistry,
  name: string,
  command: string,
  args: readonly string[],
  port: number,
  cpu: number | null,
  opts: SpawnOptions = {},
): Promise<Server> {
  const child = registry.spawn(command, args, cpu, opts);
  const output = captureOutput(child);
  const failure = { message: '' };
  child.once('error', (err) => (failure.message = `${err.message}\n`));
  await waitForListen(child, port, name, () => `${failure.message}${output()}`);
  if (child.pid === undefined) throw new Error(`${name}: no pid`);
  return { name, port, child, pid: child.pid, output };
}

/** redis-server for `memgate-redis`: loopback, nothing saved. */
export function startRedis(registry: ChildRegistry, port: number, cpu: number | null): Promise<Server> {
  const args = ['--port', String(port), '--bind', LOOPBACK, '--save', '', '--appendonly', 'no'];
  return startServer(registry, 'redis-server', 'redis-server', args, port, cpu);
}

export function startMemcached(registry: ChildRegistry, port: number, cpu: number | null): Promise<Server> {
  // -U 0: no UDP; -l: loopback only; -t 1: one worker thread; -c: room for the pipe
  // baseline's upstream connections and the idle-connection test.
  const args = ['-U', '0', '-l', LOOPBACK, '-p', String(port), '-t', '1', '-m', '256', '-c', '8192'];
  if (process.getuid?.() === 0) args.push('-u', 'root');
  return startServer(registry, 'memcached', 'memcached', args, port, cpu);
}

/**
 * What memgate's policy does in a bench run, so its cost can be measured:
 *  - `limits`: tenant `bench` in namespace mode (every key rewritten) with rate limits set
 *    so high they are never hit, so the token buckets run on every request;
 *  - `nolimits`: the same tenant without `limits`;
 *  - `bare`: an admin tenant: keys forwarded unchanged, every command allowed, no limits.
 */
export type MemgatePolicy = 'limits' | 'nolimits' | 'bare';

export interface MemgateLaunch {
  readonly port: number;
  /** one memcached, or the servers of a cluster (ketama) */
  readonly upstreamPort: number | readonly number[];
  readonly workDir: string;
  /** run dist/cli.js instead of src/cli.ts through tsx */
  readonly built: boolean;
  readonly tag: string;
  readonly policy: MemgatePolicy;
  /** state.url; default a state file in workDir (`memgate-redis`: the bench's redis-server) */
  readonly stateUrl?: string;
  /** when set, node --cpu-prof writes the process's profile here on exit */
  readonly cpuProfDir?: string | null;
}

/** Rates and bursts far above anything the bench can send: set, checked on every request, never hit. */
export const UNREACHED_LIMITS = '{ opsPerSecond: 100000000, burst: 100000000, bytesPerSecond: 100000000000 }';

const portList = (upstream: number | readonly number[]): readonly number[] =>
  typeof upstream === 'number' ? [upstream] : upstream;

/** The bench config: one listener bound to tenant "bench", whose policy is `policy`; one memcached or a cluster. */
export function memgateConfig(
  port: number,
  upstreamPort: number | readonly number[],
  stateUrl: string,
  policy: MemgatePolicy = 'limits',
): string {
  const tenant =
    policy === 'bare'
      ? '  bench: { admin: true }'
      : policy === 'nolimits'
        ? '  bench: { prefix: "bench:", mode: namespace }'
        : `  bench: { prefix: "bench:", mode: namespace, limits: ${UNREACHED_LIMITS} }`;
  return [
    'listen:',
    `  - { host: ${LOOPBACK}, port: ${port}, tenant: bench }`,
    'upstream:',
    `  servers: [ ${portList(upstreamPort)
      .map((p) => `"${LOOPBACK}:${p}"`)
      .join(', ')} ]`,
    '  connectionsPerServer: 2',
    `state: { url: "${stateUrl}" }`,
    'log: { level: warn }',
    'limits:',
    '  maxInFlightPerSession: 4096',
    'tenants:',
    tenant,
    '',
  ].join('\n');
}

export function startMemgate(registry: ChildRegistry, launch: MemgateLaunch, cpu: number | null): Promise<Server> {
  const configFile = path.join(launch.workDir, `memgate-${launch.tag}.yaml`);
  const stateFile = path.join(launch.workDir, `memgate-${launch.tag}-state.json`);
  const stateUrl = launch.stateUrl ?? `file:${stateFile}`;
  writeFileSync(configFile, memgateConfig(launch.port, launch.upstreamPort, stateUrl, launch.policy));
  const entry = launch.built ? [path.join(ROOT, 'dist/cli.js')] : ['--import', 'tsx', path.join(ROOT, 'src/cli.ts')];
  const prof = launch.cpuProfDir == null ? [] : ['--cpu-prof', '--cpu-prof-dir', launch.cpuProfDir];
  return startServer(
    registry,
    `memgate (${launch.tag})`,
    process.execPath,
    [...prof, ...entry, 'serve', '--config', configFile],
    launch.port,
    cpu,
    { cwd: ROOT },
  );
}

/**
 * twemproxy's config: one pool, memcache protocol, loopback; one memcached, or a
 * cluster placed as libmemcached does with `hash: md5` (memgate's ketama).
 */
export function twemproxyConfig(
  port: number,
  upstreamPort: number | readonly number[],
  serverConnections: number,
  hash: 'fnv1a_64' | 'md5' = 'fnv1a_64',
): string {
  return [
    'bench:',
    `  listen: ${LOOPBACK}:${port}`,
    `  hash: ${hash}`,
    '  distribution: ketama',
    '  timeout: 2000',
    '  backlog: 1024',
    '  preconnect: true',
    '  redis: false',
    `  server_connections: ${serverConnections}`,
    '  auto_eject_hosts: false',
    '  servers:',
    ...portList(upstreamPort).map((p) => `    - ${LOOPBACK}:${p}:1`),
    '',
  ].join('\n');
}

/** `tag` names its files in workDir (two twemproxies can run side by side). */
export async function startTwemproxy(
  registry: ChildRegistry,
  port: number,
  upstreamPort: number | readonly number[],
  workDir: string,
  cpu: number | null,
  tag = 'nutcracker',
  hash: 'fnv1a_64' | 'md5' = 'fnv1a_64',
): Promise<Server> {
  const conf = path.join(workDir, `${tag}.yml`);
  writeFileSync(conf, twemproxyConfig(port, upstreamPort, 2, hash));
  const statsPort = await freePort();
  // -v 2: errors only (the default logs every accept); -a: stats on loopback, not 0.0.0.0
  const args = ['-c', conf, '-s', String(statsPort), '-a', LOOPBACK, '-v', '2', '-o', path.join(workDir, `${tag}.log`)];
  args.push('-p', path.join(workDir, `${tag}.pid`));
  return startServer(registry, tag === 'nutcracker' ? 'twemproxy' : tag, 'nutcracker', args, port, cpu);
}

export function startPipeProxy(
  registry: ChildRegistry,
  port: number,
  upstreamPort: number,
  cpu: number | null,
): Promise<Server> {
  const script = path.join(ROOT, 'bench/load/pipe-proxy.ts');
  const args = [
    '--import',
    'tsx',
    script,
    '--listen',
    `${LOOPBACK}:${port}`,
    '--upstream',
    `${LOOPBACK}:${upstreamPort}`,
  ];
  return startServer(registry, 'pipe', process.execPath, args, port, cpu, { cwd: ROOT });
}

/** Is `command` on PATH? */
export function hasCommand(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore', timeout: 5000 }).status === 0;
}

/** The first line a command prints (stdout or stderr) matching `pattern`, or null. */
export function commandVersion(command: string, args: readonly string[], pattern: RegExp): string | null {
  const r = spawnSync(command, [...args], { encoding: 'utf8', timeout: 5000 });
  const text = `${r.stdout ?? ''}\n${r.stderr ?? ''}`;
  return pattern.exec(text)?.[0] ?? null;
}

let clockTicks: number | null = null;

/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat. */
export function clockTicksPerSecond(): number {
  if (clockTicks === null) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5000 });
    const n = Number((r.stdout ?? '').trim());
    clockTicks = Number.isInteger(n) && n > 0 ? n : 100;
  }
  return clockTicks;
}

/** User + system CPU seconds of every thread of `pid` so far (utime + stime). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  // comm, field 2, may hold spaces and parens: count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): utime (14) and stime (15) are at 11 and 12
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) / clockTicksPerSecond();
}

/** Resident set size of `pid` in bytes (VmRSS). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'latin1');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (m === null) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** Open file descriptors of `pid`. */
export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Pins the calling process to `cpu` (taskset -p). */
export function pinSelf(cpu: number): boolean {
  return (
    spawnSync('taskset', ['-pc', String(cpu), String(process.pid)], { stdio: 'ignore', timeout: 5000 }).status === 0
  );
}
