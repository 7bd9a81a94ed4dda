/**
 * The CLI as an operator runs it: a child process, exit code and output.
 * (Lives here because `memgate check-config` is the config's front door.)
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../../..');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function memgate(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const childEnv = { ...process.env };
  delete childEnv.MEMGATE_CONFIG;
  delete childEnv.MEMGATE_ADMIN_TOKEN;
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'src/cli.ts', ...args],
      { cwd: ROOT, env: { ...childEnv, ...env } },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

let dir = '';
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgate-cli-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function write(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

describe('memgate check-config', () => {
  it('accepts a good file and prints a summary', async () => {
    const run = await memgate(['check-config', '--config', 'docker/config/example.yaml']);
    expect(run).toEqual({ code: 0, stdout: 'config OK: 4 tenants, 4 listeners\n', stderr: '' });
  });

  it('rejects a bad file, printing every problem with file and line, and exits 1', async () => {
    const file = write(
      'bad.yaml',
      `listen:
  - { host: 127.0.0.1, port: 11411, tenant: ops }
upstream:
  servers: [ "127.0.0.1:11212" ]
tenants:
  shop:
    prefix: "q7Zk2:"
    prefx: "oops"
  blog:
    prefix: "q7Zk2:"
`,
    );
    const run = await memgate(['check-config', '--config', file]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr.split('\n')).toEqual([
      `${file}:2: listen[0].tenant: names tenant "ops", which is not configured (tenants: shop, blog)`,
      `${file}:8: tenants.shop.prefx: unknown key "prefx" (did you mean "prefix"?)`,
      `${file}:10: tenants.blog.prefix: "q7Zk2:" is also tenant "shop"'s prefix: the two tenants would share keys`,
      `memgate: ${file}: 3 problems`,
      '',
    ]);
  });

  it("says how a tenant's burst and maxKeysPerGet interact", async () => {
    const file = write(
      'burst.yaml',
      `listen:
  - { host: 127.0.0.1, port: 11411, tenant: shop }
upstream:
  servers: [ "127.0.0.1:11212" ]
tenants:
  shop: { prefix: "s:", limits: { opsPerSecond: 50, burst: 50, maxKeysPerGet: 100 } }
`,
    );
    const run = await memgate(['check-config', '--config', file]);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(
      'config OK: 1 tenant, 1 listener\n' +
        'note: tenant shop: maxKeysPerGet (100) exceeds its burst (50): a multi-get costs one token per key, so one of more than 50 keys is always refused (SERVER_ERROR rate limited (more keys than the burst)); raise limits.burst or lower limits.maxKeysPerGet to 50 to make that explicit (with serve --workers N or several instances on Redis, the burst is one budget they share)\n',
    );
  });

  it('exits 1 when the file cannot be read', async () => {
    const file = path.join(dir, 'missing.yaml');
    const run = await memgate(['check-config', '--config', file]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`${file}: cannot read config file (ENOENT)`);
  });

  it('takes the file from MEMGATE_CONFIG', async () => {
    const run = await memgate(['check-config'], { MEMGATE_CONFIG: 'docker/config/example.yaml' });
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('config OK: 4 tenants, 4 listeners\n');
  });

  it('requires --config', async () => {
    const run = await memgate(['check-config']);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("required option '-c, --config <file>' not specified");
  });
});

describe('memgate serve', () => {
  it('exits 1 listing every problem when the config is invalid, before starting anything', async () => {
    const file = write('serve-bad.yaml', 'listen: []\nupstream: { servers: [] }\ntenants: {}\n');
    const run = await memgate(['serve', '--config', file]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`${file}:1: listen: must list at least one listener`);
    expect(run.stderr).toContain(`${file}:2: upstream.servers: must list at least one memcached server`);
    expect(run.stderr).toContain(`${file}:3: tenants: must define at least one tenant`);
  });
});
