/**
 * Starts a real redis-server on a free loopback port for one test file
 * (Debian's package; scripts/setup.sh installs it). Nothing is saved unless
 * `durable` is asked for: then an append-only file in a temp directory, so a
 * kill -9 and restart keeps what Redis had acknowledged.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitForPort } from './spawn-memcached.js';

export interface RedisProcess {
  readonly host: string;
  readonly port: number;
  /** redis://127.0.0.1:<port>/0 */
  readonly url: string;
  readonly child: ChildProcess;
  stop(): Promise<void>;
  /** kill -9 and wait for the exit */
  kill(): Promise<void>;
  /** start again on the same port (and data directory) after kill() or stop() */
  restart(): Promise<void>;
}

const REDIS_BIN = process.env.REDIS_BIN ?? 'redis-server';

export interface SpawnRedisOptions {
  /** appendonly yes in a temp dir (survives kill -9 and restart); default: nothing saved */
  readonly durable?: boolean;
  readonly extraArgs?: readonly string[];
  /** TLS only (rediss://) with these PEM files; clients are not asked for certificates */
  readonly tls?: { readonly cert: string; readonly key: string; readonly ca: string };
}

function start(port: number, dir: string, opts: SpawnRedisOptions): ChildProcess {
  const tls = opts.tls;
  const ports =
    tls === undefined
      ? ['--port', String(port)]
      : ['--port', '0', '--tls-port', String(port), '--tls-cert-file', tls.cert, '--tls-key-file', tls.key].concat([
          '--tls-ca-cert-file',
          tls.ca,
          '--tls-auth-clients',
          'no',
        ]);
  const args = [...ports, '--bind', '127.0.0.1', '--dir', dir, '--save', ''];
  args.push('--appendonly', opts.durable === true ? 'yes' : 'no');
  if (opts.durable === true) args.push('--appendfsync', 'always');
  args.push(...(opts.extraArgs ?? []));
  const child = spawn(REDIS_BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr?.resume();
  return child;
}

export async function spawnRedis(opts: SpawnRedisOptions = {}): Promise<RedisProcess> {
  const host = '127.0.0.1';
  const port = await freePort(host);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgate-redis-'));
  let child = start(port, dir, opts);
  await waitForPort(host, port);
  const exited = (c: ChildProcess): Promise<void> =>
    c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise((r) => c.once('exit', () => r()));
  return {
    host,
    port,
    url: `${opts.tls === undefined ? 'redis' : 'rediss'}://${host}:${port}/0`,
    get child() {
      return child;
    },
    async stop() {
      child.kill('SIGTERM');
      await exited(child);
      fs.rmSync(dir, { recursive: true, force: true });
    },
    async kill() {
      child.kill('SIGKILL');
      await exited(child);
    },
    async restart() {
      fs.mkdirSync(dir, { recursive: true });
      child = start(port, dir, opts);
      await waitForPort(host, port);
    },
  };
}
