/**
 * Starts a real memcached on a free loopback port for one test file.
 * No mocked memcached anywhere: tests talk to the real server.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';

export interface MemcachedProcess {
  readonly host: string;
  readonly port: number;
  readonly address: string;
  readonly child: ChildProcess;
  stop(): Promise<void>;
  /** kill -9 and wait for the exit */
  kill(): Promise<void>;
  /** start again on the same port after kill() */
  restart(): Promise<void>;
  /**
   * SIGSTOP, resolved once the kernel reports every thread stopped: on a busy
   * machine a runnable process can still answer a request or two after the
   * signal was sent.
   */
  pause(): Promise<void>;
}

/** Every thread of `pid` is in state T (stopped), from /proc. */
function allStopped(pid: number): boolean {
  try {
    return readdirSync(`/proc/${pid}/task`).every((tid) => {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'latin1');
      return stat.slice(stat.lastIndexOf(')') + 2).startsWith('T');
    });
  } catch {
    return false;
  }
}

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export async function waitForPort(host: string, port: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host, port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listening on ${host}:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const MEMCACHED_BIN = process.env.MEMCACHED_BIN ?? 'memcached';

function start(port: number, extraArgs: readonly string[], env?: NodeJS.ProcessEnv): ChildProcess {
  // -U 0: no UDP. -l 127.0.0.1: loopback only. -m 64: small cache.
  const args = ['-U', '0', '-l', '127.0.0.1', '-p', String(port), '-m', '64', '-t', '2', ...extraArgs];
  if (process.getuid?.() === 0) args.push('-u', 'root');
  const child = spawn(MEMCACHED_BIN, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  child.stderr?.resume();
  return child;
}

/** `env`: more environment for memcached (e.g. SASL_CONF_PATH with `-S`). */
export async function spawnMemcached(
  extraArgs: readonly string[] = [],
  env?: NodeJS.ProcessEnv,
): Promise<MemcachedProcess> {
  const host = '127.0.0.1';
  const port = await freePort(host);
  let child = start(port, extraArgs, env);
  await waitForPort(host, port);
  const exited = (c: ChildProcess): Promise<void> =>
    c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise((r) => c.once('exit', () => r()));
  const proc: MemcachedProcess = {
    host,
    port,
    address: `${host}:${port}`,
    get child() {
      return child;
    },
    async stop() {
      child.kill('SIGTERM');
      await exited(child);
    },
    async kill() {
      child.kill('SIGKILL');
      await exited(child);
    },
    async restart() {
      child = start(port, extraArgs, env);
      await waitForPort(host, port);
    },
    async pause() {
      child.kill('SIGSTOP');
      const pid = child.pid ?? 0;
      const deadline = Date.now() + 5000;
      while (!allStopped(pid)) {
        if (Date.now() > deadline) throw new Error(`memcached ${pid} did not stop`);
        await new Promise((r) => setTimeout(r, 5));
      }
    },
  };
  return proc;
}
