/**
 * Runs memgate as a separate process (the real CLI), for tests that kill -9
 * it or drive `memgate rotate` / `memgate state show` against it.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { waitForPort } from './spawn-memcached.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const CLI = path.join(ROOT, 'src/cli.ts');
const run = promisify(execFile);

export interface MemgateProcess {
  readonly child: ChildProcess;
  readonly output: () => string;
  kill9(): Promise<void>;
  /** waits for the process to exit by itself */
  exited(): Promise<void>;
  stop(): Promise<void>;
}

export interface SpawnOptions {
  /** a command that runs memgate, e.g. `['unshare', '--pid', '--fork', '--kill-child=SIGTERM']` */
  readonly prefix?: readonly string[];
  /** how long to wait for `waitPort` (default 15 s; a start after kill -9 waits up to 10 s for the state lock) */
  readonly timeoutMs?: number;
}

/** Starts `memgate serve --config <file>` and waits until `waitPort` accepts connections. */
export async function spawnMemgate(
  configFile: string,
  waitPort: number,
  extraArgs: string[] = [],
  opts: SpawnOptions = {},
): Promise<MemgateProcess> {
  const argv = [process.execPath, '--import', 'tsx', CLI, 'serve', '--config', configFile, ...extraArgs];
  const [cmd = '', ...args] = [...(opts.prefix ?? []), ...argv];
  const child = spawn(cmd, args, {
    cwd: ROOT, // so that --import tsx resolves; config and state paths are absolute
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  try {
    await Promise.race([
      waitForPort('127.0.0.1', waitPort, opts.timeoutMs ?? 15_000),
      exited.then(() => {
        throw new Error(`memgate exited early: ${out}`);
      }),
    ]);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  return {
    child,
    output: () => out,
    exited: () => exited,
    async kill9() {
      child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Runs the CLI to completion: `memgate <args>`. */
export async function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, ['--import', 'tsx', CLI, ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      timeout: 30_000,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : 1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}
