/**
 * Limits in front of a real memcached: rate budgets, item size, connection
 * caps, slow readers, idle connections, and the metrics that count them.
 */
import { spawn } from 'node:child_process';
import fc from 'fast-check';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnMemcached, type MemcachedProcess } from '../helpers/spawn-memcached.js';
import { parseConfigText } from '../../src/config/load.js';
import { startProxy, type RunningProxy } from '../helpers/proxy.js';
import { TextClient } from '../helpers/text-client.js';

let mc: MemcachedProcess;
let gate: RunningProxy;
const LIMITED = 0;
const FREE = 1;
const BYTES = 2;
const CAPPED = 3;
const DELAYED = 4;

beforeAll(async () => {
  mc = await spawnMemcached(['-I', '2m']);
  gate = await startProxy(
    `
listen:
  - { host: 127.0.0.1, port: 0, tenant: limited }
  - { host: 127.0.0.1, port: 0, tenant: free }
  - { host: 127.0.0.1, port: 0, tenant: writer }
  - { host: 127.0.0.1, port: 0, tenant: capped }
  - { host: 127.0.0.1, port: 0, tenant: delayed }
upstream:
  servers: [ "\${UPSTREAM}" ]
admin: { host: 127.0.0.1, port: 0, token: "limits-token-0123456789" }
state: { url: "\${STATE}" }
limits: { maxValueBytes: 1048576 }
tenants:
  limited: { prefix: "lim:", limits: { opsPerSecond: 50, burst: 50, maxItemBytes: 1000, maxKeysPerGet: 10 } }
  free: { prefix: "free:" }
  writer: { prefix: "wri:", limits: { bytesPerSecond: 20000, maxItemBytes: 10000 } }
  capped: { prefix: "cap:", limits: { connections: 3 } }
  delayed: { prefix: "del:", limits: { opsPerSecond: 20, burst: 5, maxKeysPerGet: 5, overLimit: delay, maxDelayMs: 2000 } }
`,
    mc.address,
  );
});

afterAll(async () => {
  await gate?.stop();
  await mc?.stop();
});

async function metrics(): Promise<string> {
  const a = gate.proxy.adminAddress();
  if (a === null) throw new Error('no admin server');
  const res = await fetch(`http://127.0.0.1:${a.port}/metrics`);
  return res.text();
}

/** Reads exactly `n` reply lines (and fails on a timeout). */
async function readLines(c: TextClient, n: number): Promise<string[]> {
  let text = '';
  while (text.split('\r\n').length - 1 < n) text += await c.readUntil('\r\n', 10_000);
  const lines = text.split('\r\n');
  lines.pop();
  expect(lines).toHaveLength(n);
  return lines;
}

function metricValue(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('rate budgets', () => {
  it('lets about N of 10×N pipelined gets through and answers the rest in order, leaving other tenants alone', async () => {
    const c = await TextClient.connect(gate.port(LIMITED));
    const f = await TextClient.connect(gate.port(FREE));
    const n = 500;
    c.send('get k\r\n'.repeat(n));
    f.send('get k\r\n'.repeat(n) + 'shutdown\r\nmn\r\n');
    const lines = await readLines(c, n);
    const free = await f.readUntil('MN\r\n', 10_000);
    // exactly one reply per request, each END or the refusal
    const ok = lines.filter((l) => l === 'END').length;
    const limited = lines.filter((l) => l === 'SERVER_ERROR rate limited').length;
    expect(ok + limited).toBe(n);
    expect(ok).toBeGreaterThanOrEqual(45);
    expect(ok).toBeLessThanOrEqual(80);
    expect(free).toBe('END\r\n'.repeat(n) + 'CLIENT_ERROR shutdown not allowed\r\nMN\r\n');
    const m = await metrics();
    expect(metricValue(m, 'memgate_requests_total', 'tenant="limited",command="get",outcome="rate_limited"')).toBe(
      limited,
    );
    expect(metricValue(m, 'memgate_requests_total', 'tenant="free",command="get",outcome="miss"')).toBe(n);
    expect(metricValue(m, 'memgate_rate_limited_total', 'tenant="limited",budget="ops"')).toBe(limited);
    expect(metricValue(m, 'memgate_requests_total', 'tenant="free",command="shutdown",outcome="denied"')).toBe(1);
    expect(metricValue(m, 'memgate_requests_total', 'tenant="free",command="shutdown",outcome="error"')).toBe(0);
    expect(metricValue(m, 'memgate_requests_total', 'tenant="limited",command="get",outcome="error"')).toBe(0);
    c.close();
    f.close();
  });

  it('limits value bytes per second, and still swallows the refused values', async () => {
    const c = await TextClient.connect(gate.port(BYTES));
    const v = 'x'.repeat(10_000);
    const out = await c.request(`set a 0 0 ${v.length}\r\n${v}\r\n`.repeat(5));
    const lines = out.split('\r\n').filter((l) => l !== '');
    expect(lines).toHaveLength(5);
    expect(lines.filter((l) => l === 'STORED').length).toBe(2);
    expect(lines.filter((l) => l === 'SERVER_ERROR rate limited').length).toBe(3);
    c.close();
  });

  it('holds requests over budget in delay mode instead of refusing them', async () => {
    const c = await TextClient.connect(gate.port(DELAYED));
    const started = Date.now();
    const out = await c.request('get d\r\n'.repeat(15), 10_000);
    expect(out).toBe('END\r\n'.repeat(15));
    // 5 from the burst, 10 more at 20/s
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    c.close();
  });

  it("refuses a value over the tenant's item size, swallowing it", async () => {
    const c = await TextClient.connect(gate.port(LIMITED));
    await new Promise((r) => setTimeout(r, 1100)); // refill after the first test
    const v = 'y'.repeat(5000);
    expect(await c.request(`set big 0 0 ${v.length}\r\n${v}\r\nset small 0 0 1\r\n1\r\n`)).toBe(
      'SERVER_ERROR object too large for cache\r\nSTORED\r\n',
    );
    c.close();
  });
});

describe('pipelined bursts over the limit (property)', () => {
  it('answer every request exactly once, in order, however the burst is sent', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 300 }), fc.array(fc.nat(2000), { maxLength: 6 }), async (n, cuts) => {
        const c = await TextClient.connect(gate.port(LIMITED));
        try {
          const bytes = Buffer.from(Array.from({ length: n }, (_, i) => `mg pk${i} O${i}\r\n`).join(''), 'latin1');
          let from = 0;
          for (const cut of [...cuts].sort((a, b) => a - b)) {
            const to = Math.min(bytes.length, cut);
            if (to > from) c.send(bytes.subarray(from, to));
            from = Math.max(from, to);
          }
          c.send(bytes.subarray(from));
          const lines = await readLines(c, n);
          lines.forEach((line, i) => {
            if (line !== 'SERVER_ERROR rate limited') expect(line).toBe(`EN O${i}`);
          });
        } finally {
          c.close();
        }
      }),
      { numRuns: 15 },
    );
  }, 60_000);
});

describe('reload', () => {
  it('changes a tenant’s limits on reload without dropping its connection', async () => {
    const yaml = (ops: number): string => `
listen:
  - { host: 127.0.0.1, port: 0, tenant: r }
upstream:
  servers: [ "\${UPSTREAM}" ]
state: { url: "\${STATE}" }
tenants:
  r: { prefix: "reload:", limits: { opsPerSecond: ${ops}, maxKeysPerGet: 5 } }
`;
    const g = await startProxy(yaml(5), mc.address);
    try {
      const c = await TextClient.connect(g.port(0));
      c.send('get x\r\n'.repeat(20));
      const before = await readLines(c, 20);
      expect(before.filter((l) => l === 'END').length).toBeLessThanOrEqual(6);
      const next = parseConfigText(
        yaml(100_000).replaceAll('${UPSTREAM}', mc.address).replaceAll('${STATE}', `file:${g.statePath}`),
        'reload.yaml',
        {},
      );
      expect(await g.proxy.reload(next)).toMatchObject({ ok: true, closedConnections: 0 });
      c.send('get x\r\n'.repeat(20));
      const after = await readLines(c, 20);
      expect(after).toEqual(Array(20).fill('END'));
      c.close();
    } finally {
      await g.stop();
    }
  });
});

describe('connection caps', () => {
  it('refuses a tenant’s connections past its cap with memcached’s words, then accepts again', async () => {
    const open = await Promise.all([1, 2, 3].map(() => TextClient.connect(gate.port(CAPPED))));
    for (const c of open) expect(await c.request('mn\r\n')).toBe('MN\r\n');
    const extra = await TextClient.connect(gate.port(CAPPED));
    await extra.waitClosed();
    expect(extra.take().toString('latin1')).toBe('ERROR Too many open connections\r\n');
    open[0]?.close();
    await new Promise((r) => setTimeout(r, 100));
    const again = await TextClient.connect(gate.port(CAPPED));
    expect(await again.request('mn\r\n')).toBe('MN\r\n');
    again.close();
    for (const c of open) c.close();
  });

  it('caps connections per source address', async () => {
    const perAddress = await startProxy(
      `
listen:
  - { host: 127.0.0.1, port: 0, tenant: t }
upstream:
  servers: [ "\${UPSTREAM}" ]
state: { url: "\${STATE}" }
limits: { maxConnectionsPerAddress: 40 }
tenants:
  t: { prefix: "pa:" }
`,
      mc.address,
    );
    const sockets: net.Socket[] = [];
    let refused = 0;
    for (let i = 0; i < 45; i++) {
      const c = await TextClient.connect(perAddress.port(0));
      sockets.push(c.socket);
      c.send('mn\r\n');
      const reply = await c.readUntil('\r\n');
      if (reply === 'ERROR Too many open connections\r\n') refused++;
    }
    expect(refused).toBe(45 - 40);
    for (const s of sockets) s.destroy();
    await perAddress.stop();
  });
});

describe('memory bounds', () => {
  it('keeps memory bounded for a reader that stops reading large values', async () => {
    const w = await TextClient.connect(gate.port(FREE));
    const v = 'z'.repeat(900_000);
    expect(await w.request(`set huge 0 0 ${v.length}\r\n${v}\r\n`)).toBe('STORED\r\n');
    w.close();
    const before = process.memoryUsage.rss();
    // a client that asks for ~900 MB of replies and never reads them
    const slow = net.connect({ host: '127.0.0.1', port: gate.port(FREE) });
    await new Promise<void>((r) => slow.once('connect', () => r()));
    slow.pause();
    const big = Buffer.from('get huge\r\n'.repeat(1000), 'latin1');
    for (let i = 0; i < 5 && slow.writable; i++) slow.write(big);
    await new Promise((r) => setTimeout(r, 3000));
    const grown = process.memoryUsage.rss() - before;
    // session bound: 8 MiB of pending replies plus socket buffers and one in-flight window
    expect(grown).toBeLessThan(200 * 1024 * 1024);
    slow.destroy();
  }, 20_000);
});

describe('idle connections', () => {
  it('holds 5,000 idle connections and closes them at the idle deadline', async () => {
    const idleGate = await startProxy(
      `
listen:
  - { host: 127.0.0.1, port: 0, tenant: idle }
upstream:
  servers: [ "\${UPSTREAM}" ]
state: { url: "\${STATE}" }
limits: { idleTimeoutMs: 1500, maxConnections: 6000 }
tenants:
  idle: { prefix: "idle:" }
`,
      mc.address,
    );
    // the connections come from a child process: this one holds memgate's 5,000 ends
    const child = spawn(
      process.execPath,
      [
        '-e',
        `
const net = require('net');
const n = 5000; let open = 0, closed = 0, done = false;
function batch(from) {
  // 500 at a time, like clients starting up, not one SYN flood
  let pending = Math.min(500, n - from);
  for (let i = 0; i < Math.min(500, n - from); i++) {
    const s = net.connect({ host: '127.0.0.1', port: ${idleGate.port(0)} });
    s.on('connect', () => {
      open++;
      if (open === n) console.log('open ' + open);
      if (--pending === 0 && from + 500 < n) batch(from + 500);
    });
    s.on('close', () => { closed++; if (closed === n && !done) { done = true; console.log('closed ' + closed); process.exit(0); } });
    s.on('error', () => {});
  }
}
batch(0);
setTimeout(() => { console.log('timeout open=' + open + ' closed=' + closed); process.exit(1); }, 20000);
`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    const sawOpen = async (): Promise<void> => {
      for (let i = 0; i < 300 && !out.includes('open 5000'); i++) await new Promise((r) => setTimeout(r, 50));
    };
    await sawOpen();
    expect(out).toContain('open 5000');
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    expect(out).toContain('closed 5000');
    expect(code).toBe(0);
    expect(idleGate.proxy.tenants.get('idle')?.counters.currConnections).toBe(0);
    await idleGate.stop();
  }, 40_000);
});
