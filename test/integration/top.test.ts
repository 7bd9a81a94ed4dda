/**
 * `memgate top` as a person uses it: in a terminal (a detached tmux session of
 * fixed size: send-keys, capture-pane), against a running memgate with two
 * tenants under load. It shows both tenants' live rates, a sort key changes the
 * order, and `q` quits (the pane and its process are gone). Without a terminal,
 * `--once` prints one plain frame.
 */
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { useMemcachedAndProxy } from '../helpers/memcached-and-proxy.js';
import { runCli } from '../helpers/memgate-process.js';
import { TextClient } from '../helpers/text-client.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const TMUX_SOCKET = `memgate-top-test-${process.pid}`;
const SESSION = 'top';
const run = promisify(execFile);

const env = useMemcachedAndProxy(`
listen:
  - { host: 127.0.0.1, port: 0, tenant: shop }
  - { host: 127.0.0.1, port: 0, tenant: blog }
upstream:
  servers: [ "\${UPSTREAM}" ]
admin: { host: 127.0.0.1, port: 0 }
state: { url: "\${STATE}" }
tenants:
  shop: { prefix: "shop:" }
  blog: { prefix: "blog:" }
`);

function tmux(...args: string[]): Promise<{ stdout: string }> {
  return run('tmux', ['-L', TMUX_SOCKET, ...args], { timeout: 10_000 });
}

afterAll(() => {
  try {
    execFileSync('tmux', ['-L', TMUX_SOCKET, 'kill-server'], { stdio: 'ignore' });
  } catch {
    // already gone: `q` ended the only session
  }
});

function adminPort(): number {
  const a = env.gate.proxy.adminAddress();
  if (a === null) throw new Error('no admin server');
  return a.port;
}

/**
 * Load until stop(): shop sends batches of 20 gets on one connection, blog
 * batches of 2 with a pause, and keeps 3 more idle connections (so blog leads
 * on connections, shop on ops/s).
 */
async function startLoad(): Promise<{ stop(): Promise<void> }> {
  const shop = await TextClient.connect(env.gate.port(0));
  const blog = await TextClient.connect(env.gate.port(1));
  const idle = await Promise.all([1, 2, 3].map(() => TextClient.connect(env.gate.port(1))));
  shop.send('set k 0 0 1\r\nv\r\n');
  await shop.readUntil('STORED\r\n');
  let running = true;
  const loop = async (c: TextClient, batch: number, pauseMs: number): Promise<void> => {
    // bounded: at most 20 000 batches, and stop() ends it
    for (let i = 0; running && i < 20_000; i++) {
      c.send('get k\r\nget nothing\r\n'.repeat(batch / 2) + 'mn\r\n');
      await c.readUntil('MN\r\n');
      if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
    }
  };
  const loops = [loop(shop, 20, 0), loop(blog, 2, 20)];
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      for (const c of [shop, blog, ...idle]) c.socket.destroy();
    },
  };
}

interface Row {
  readonly name: string;
  readonly ops: number;
  readonly conns: number;
}

/** The tenant rows of a frame, in display order. */
function rowsOf(screen: string): Row[] {
  const rows: Row[] = [];
  for (const line of screen.split('\n')) {
    const m = /^(shop|blog)\s+([\d.]+)([KMG]?)\s+\S+\s+\S+\s+\S+\s+(\d+)\s/.exec(line);
    if (m === null) continue;
    const scale = { '': 1, K: 1e3, M: 1e6, G: 1e9 }[m[3] ?? ''] ?? 1;
    rows.push({ name: m[1] ?? '', ops: Number(m[2]) * scale, conns: Number(m[4]) });
  }
  return rows;
}

async function capture(): Promise<string> {
  return (await tmux('capture-pane', '-p', '-t', SESSION)).stdout;
}

/** Captures the pane until `ok(screen)` (at most 15 s); returns the last screen. */
async function waitForScreen(what: string, ok: (screen: string) => boolean): Promise<string> {
  const deadline = Date.now() + 15_000;
  let screen = '';
  while (Date.now() < deadline) {
    screen = await capture();
    if (ok(screen)) return screen;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`pane never showed ${what}; last screen:\n${screen}`);
}

/** The process exists and is not a zombie (a container's pid 1 may never reap an orphan). */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

describe('memgate top in a terminal (tmux)', () => {
  it('shows both tenants live rates under load, re-sorts on a key, and quits on q', async () => {
    const load = await startLoad();
    try {
      const cli = `${JSON.stringify(process.execPath)} --import tsx src/cli.ts top --admin 127.0.0.1:${adminPort()} --interval 0.3`;
      await tmux('new-session', '-d', '-s', SESSION, '-x', '120', '-y', '30', '-c', ROOT, cli);
      const pid = Number((await tmux('display-message', '-p', '-t', SESSION, '#{pane_pid}')).stdout.trim());
      expect(pid).toBeGreaterThan(0);

      const live = await waitForScreen('both tenants with ops/s > 0', (s) => {
        const rows = rowsOf(s);
        return rows.length === 2 && rows.every((r) => r.ops > 0);
      });
      expect(live).toMatch(/^memgate top - 127\.0\.0\.1:\d+ - .* - sort: ops\/s$/m);
      expect(live).toMatch(/^upstream: 127\.0\.0\.1:\d+ up/m);
      expect(live).toMatch(/^TENANT\s+OPS\/S\s+HIT%\s+ERR\/S\s+RL\/S\s+CONNS\s+IN\/S\s+OUT\/S/m);
      // half of each tenant's gets hit: the ratio is shown, and rates keep moving
      expect(live).toMatch(/^shop\s+\S+\s+\d+\.\d%/m);
      await waitForScreen('shop first (more ops/s)', (s) => rowsOf(s)[0]?.name === 'shop');

      await tmux('send-keys', '-t', SESSION, 'c');
      const byConns = await waitForScreen('sort by connections', (s) => /sort: connections$/m.test(s));
      const rows = rowsOf(byConns);
      expect(rows.map((r) => r.name)).toEqual(['blog', 'shop']);
      expect(rows[0]?.conns).toBe(4);
      expect(rows[1]?.conns).toBe(1);

      await tmux('send-keys', '-t', SESSION, 'o');
      await waitForScreen(
        'sort by ops/s, shop first',
        (s) => /sort: ops\/s$/m.test(s) && rowsOf(s)[0]?.name === 'shop',
      );

      await tmux('send-keys', '-t', SESSION, 'q');
      const deadline = Date.now() + 10_000;
      let gone = false;
      while (!gone && Date.now() < deadline) {
        gone = await tmux('has-session', '-t', SESSION).then(
          () => false,
          () => true,
        );
        if (!gone) await new Promise((r) => setTimeout(r, 100));
      }
      expect(gone).toBe(true);
      expect(isAlive(pid)).toBe(false);
    } finally {
      await load.stop();
    }
  });
});

describe('memgate top without a terminal', () => {
  it('--once prints one plain frame (no escape codes) with both tenants, exit 0', async () => {
    const load = await startLoad();
    try {
      const r = await runCli(['top', '--admin', `127.0.0.1:${adminPort()}`, '--once', '--interval', '0.3']);
      expect(r.code).toBe(0);
      expect(r.stdout).not.toContain('\x1b');
      const rows = rowsOf(r.stdout);
      expect(rows.map((x) => x.name).sort()).toEqual(['blog', 'shop']);
      expect(rows.find((x) => x.name === 'shop')?.ops).toBeGreaterThan(0);
      expect(r.stdout).not.toMatch(/keys:/);
    } finally {
      await load.stop();
    }
  });

  it('an admin API that does not answer: the reason on the frame, exit 1', async () => {
    const r = await runCli(['top', '--admin', '127.0.0.1:1', '--once', '--interval', '0.1']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^admin API: connect ECONNREFUSED 127\.0\.0\.1:1$/m);
  });

  it('refuses a bad interval or sort key with a clear message', async () => {
    const bad = await runCli(['top', '--admin', '127.0.0.1:1', '--interval', 'fast']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--interval.*must be a number of seconds from 0\.1 to 3600/);
    const sort = await runCli(['top', '--admin', '127.0.0.1:1', '--sort', 'x']);
    expect(sort.code).toBe(1);
    expect(sort.stderr).toMatch(/--sort.*must be one of o \(ops\/s\)/);
    const none = await runCli(['top'], { MEMGATE_CONFIG: '' });
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/top needs --admin host:port or --config/);
  });
});
