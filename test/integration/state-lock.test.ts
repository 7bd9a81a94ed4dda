/**
 * Two `memgate serve` on one state file, each in its own pid namespace (both
 * pid 1, like two containers on one volume): the second refuses to start with
 * one line, and the first one's rotation is never undone.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, spawnMemcached, type MemcachedProcess } from '../helpers/spawn-memcached.js';
import { TextClient } from '../helpers/text-client.js';
import { spawnMemgate, type MemgateProcess } from '../helpers/memgate-process.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const CLI = path.join(ROOT, 'src/cli.ts');
/** memgate as pid 1 of a pid namespace of its own; SIGTERM to unshare reaches memgate as SIGTERM */
const PID_NAMESPACE = ['unshare', '--pid', '--fork', '--kill-child=SIGTERM'];
const pidNamespaces = spawnSync(PID_NAMESPACE[0] ?? '', [...PID_NAMESPACE.slice(1), 'true']).status === 0;

let mc: MemcachedProcess;
let dir: string;
const gates: MemgateProcess[] = [];

beforeAll(async () => {
  mc = await spawnMemcached();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgate-state-lock-'));
});

/**
 * Stops a memgate started under unshare: unshare itself ignores SIGTERM while
 * it waits, so the signal goes to memgate (its one child, pid 1 inside).
 */
async function stopInNamespace(g: MemgateProcess): Promise<void> {
  const pid = g.child.pid;
  if (pid === undefined || g.child.exitCode !== null || g.child.signalCode !== null) return;
  const children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/);
  for (const c of children) if (c !== '') process.kill(Number(c), 'SIGTERM');
  await g.exited();
}

afterAll(async () => {
  for (const g of gates) await stopInNamespace(g);
  await mc?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A config for one listener on `port`, tenant shop, on the shared state file. */
function config(name: string, port: number, statePath: string): string {
  const file = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(
    file,
    `listen:
  - { host: 127.0.0.1, port: ${port}, tenant: shop }
upstream:
  servers: [ "${mc.address}" ]
state: { url: "file:${statePath}" }
log: { level: warn }
tenants:
  shop: { prefix: "sl:" }
`,
  );
  return file;
}

/** Runs `memgate serve` in its own pid namespace until it exits by itself. */
function serveToExit(configFile: string): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(
    PID_NAMESPACE[0] ?? '',
    [...PID_NAMESPACE.slice(1), process.execPath, '--import', 'tsx', CLI, 'serve', '--config', configFile],
    {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000); // unshare ignores SIGTERM; memgate inside gets one
  return new Promise((resolve) =>
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    }),
  );
}

describe('memgate serve: the state file lock across pid namespaces', () => {
  it.skipIf(!pidNamespaces)(
    'refuses a second memgate with the same pid, in one line, and the first one’s flush stays flushed',
    { timeout: 90_000 },
    async () => {
      const statePath = path.join(dir, 'state.json');
      const portA = await freePort();
      const portB = await freePort();
      const a = await spawnMemgate(config('a', portA, statePath), portA, [], { prefix: PID_NAMESPACE });
      gates.push(a);
      const c = await TextClient.connect(portA);
      expect(await c.request('set old 0 0 3\r\nold\r\nflush_all\r\nset new 0 0 3\r\nnew\r\n')).toBe(
        'STORED\r\nOK\r\nSTORED\r\n',
      );

      const b = await serveToExit(config('b', portB, statePath));
      expect(b.code).toBe(1);
      const lines = b.stderr.trimEnd().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(
        new RegExp(
          `^memgate: state file ${statePath} is in use by another memgate \\(pid 1 on host .+ since .+\\): ` +
            `its lock ${statePath}\\.lock is held, refreshed \\d+s ago; ` +
            'a lock its holder stops refreshing \\(a crash\\) is taken over after 10s$',
        ),
      );

      // the first one keeps serving its rotated generation
      expect(await c.request('get old new\r\n')).toBe('VALUE new 0 3\r\nnew\r\nEND\r\n');
      c.close();
      await stopInNamespace(a);

      // a later start (pid 1 again) serves the rotated generation: the flushed item stays gone
      const later = await spawnMemgate(config('b', portB, statePath), portB, [], {
        prefix: PID_NAMESPACE,
        timeoutMs: 30_000,
      });
      gates.push(later);
      const c2 = await TextClient.connect(portB);
      expect(await c2.request('get old new\r\n')).toBe('VALUE new 0 3\r\nnew\r\nEND\r\n');
      c2.close();
    },
  );
});
