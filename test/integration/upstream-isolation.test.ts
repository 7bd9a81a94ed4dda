/**
 * Upstream isolation: one broken socket fails only its own in-flight requests,
 * sessions move to a healthy socket at once, a backend CLIENT_ERROR / ERROR to
 * a storage request ends its socket, memgate answers itself what memcached
 * would refuse that way, and no meta command reaches a server that has not
 * said it speaks meta.
 *
 * Real memcached everywhere, with two exceptions said where they are: a relay
 * in front of memcached (to break one of memgate's sockets on demand), and
 * one tiny fake pre-1.6 server (no memcached older than 1.6 is installed).
 */
import net from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ResetReason } from '../../src/admin/counters.js';
import { Replies } from '../../src/protocol/text/replies.js';
import type { Request } from '../../src/protocol/text/request.js';
import { UpstreamPool } from '../helpers/upstream-pool.js';
import { startProxy, type RunningProxy } from '../helpers/proxy.js';
import { spawnMemcached, type MemcachedProcess } from '../helpers/spawn-memcached.js';
import { TextClient } from '../helpers/text-client.js';
import { buildRequest, replyText } from '../unit/protocol/text/request-builder.js';

const FAILURE = Replies.BACKEND_FAILURE.toString('latin1');

let mc: MemcachedProcess;

beforeAll(async () => {
  mc = await spawnMemcached();
});

afterAll(async () => {
  await mc.stop();
});

/** Every `memgate_upstream_resets_total` sample of a scrape, as `reason=value`. */
async function scrapeResets(p: RunningProxy): Promise<string[]> {
  const text = await p.proxy.metrics.render();
  return [...text.matchAll(/^memgate_upstream_resets_total\{[^}]*reason="(\w+)"[^}]*\} (\d+)/gm)].map(
    (m) => `${m[1]}=${m[2]}`,
  );
}

/** A loopback relay to memcached whose accepted connections can be cut one by one. */
async function relay(
  target: MemcachedProcess,
): Promise<{ address: string; cut(i: number): void; close(): Promise<void> }> {
  const pairs: { down: net.Socket; up: net.Socket }[] = [];
  const server = net.createServer((down) => {
    const up = net.connect({ host: target.host, port: target.port });
    pairs.push({ down, up });
    down.on('error', () => {});
    up.on('error', () => {});
    up.on('close', () => down.destroy());
    down.on('close', () => up.destroy());
    down.pipe(up);
    up.pipe(down);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return {
    address: `127.0.0.1:${port}`,
    cut(i) {
      pairs[i]?.down.destroy();
    },
    async close() {
      for (const p of pairs) {
        p.down.destroy();
        p.up.destroy();
      }
      await new Promise((r) => server.close(r));
    },
  };
}

const yaml = (backoffMinMs: number, backoffMaxMs: number) => `
listen:
  - { host: 127.0.0.1, port: 0, tenant: alpha }
  - { host: 127.0.0.1, port: 0, tenant: beta }
upstream:
  servers: [ "\${UPSTREAM}" ]
  connectionsPerServer: 2
  requestTimeoutMs: 2000
  backoffMinMs: ${backoffMinMs}
  backoffMaxMs: ${backoffMaxMs}
state: { url: "\${STATE}" }
tenants:
  alpha: { prefix: "a1:" }
  beta: { prefix: "b2:" }
`;

async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * `set <key>` + `get <key>`; resolves with both replies. (Not TextClient.request: its closing
 * `version` is forwarded too, and fails with the rest while a socket is down.)
 */
async function setAndGet(c: TextClient, key: string): Promise<string> {
  c.send(`set ${key} 0 0 1\r\ny\r\nget ${key}\r\n`);
  let got = '';
  while (!got.endsWith('END\r\n') && got.split(FAILURE).length < 3) got += await c.readUntil('\r\n');
  return got;
}

describe('a broken upstream socket', () => {
  it('fails only its own in-flight requests, and the sessions on it move to a healthy socket at once', async () => {
    const r = await relay(mc);
    // a long backoff: before the fix, sessions pinned to the cut socket failed for all of it
    const p = await startProxy(yaml(10_000, 10_000), r.address);
    const clients = await Promise.all([
      TextClient.connect(p.port(0)),
      TextClient.connect(p.port(1)),
      TextClient.connect(p.port(0)),
      TextClient.connect(p.port(1)),
    ]);
    for (const c of clients) expect(await c.request('set k 0 0 1\r\nx\r\n')).toBe('STORED\r\n');
    await until(() => p.proxy.pool.health().every((h) => h.up));
    r.cut(0);
    await until(() => p.proxy.pool.pool('default').servers[0]?.counters.resetsTotal === 1);
    let failed = 0;
    let ok = 0;
    for (let round = 0; round < 20; round++) {
      for (const c of clients) {
        const got = await setAndGet(c, `r${round}`);
        if (got === `STORED\r\nVALUE r${round} 0 1\r\ny\r\nEND\r\n`) ok++;
        else if (got.includes(FAILURE)) failed++;
        else throw new Error(`unexpected reply ${JSON.stringify(got)}`);
      }
    }
    expect({ ok, failed }).toEqual({ ok: 80, failed: 0 });
    expect(await scrapeResets(p)).toEqual(['closed=1']);
    for (const c of clients) c.close();
    await p.stop();
    await r.close();
  });
});

describe('a backend CLIENT_ERROR or ERROR to a storage request', () => {
  function makePool(): UpstreamPool {
    return new UpstreamPool({
      servers: [mc.address],
      connectionsPerServer: 1,
      connectTimeoutMs: 1000,
      requestTimeoutMs: 2000,
      backoffMinMs: 20,
      backoffMaxMs: 100,
      logger: pino({ level: 'silent' }),
    });
  }

  function call(pool: UpstreamPool, req: Request): Promise<Request> {
    return new Promise((resolve) => {
      req.owner = { onReply: resolve };
      pool.send(0, req);
    });
  }

  it('ends that connection: the requests behind it fail instead of getting the replies to its data block', async () => {
    const pool = makePool();
    pool.start();
    expect(replyText(await call(pool, buildRequest('mn')))).toBe('MN\r\n');
    // an exptime memcached cannot read (the parser never lets one through; built by hand here):
    // memcached answers CLIENT_ERROR and then runs the data block "version" as a command
    const bad = buildRequest('set k 0 0 7', { ns: 'T:', value: 'version' });
    bad.exptime = 2 ** 70;
    const [refused, next] = await Promise.all([call(pool, bad), call(pool, buildRequest('version'))]);
    expect(replyText(refused)).toBe('CLIENT_ERROR bad command line format\r\n');
    // before: this version got the VERSION memcached wrote for the data block of another request
    expect(replyText(next)).toBe(FAILURE);
    expect(pool.counters.resets[ResetReason.BACKEND_ERROR]).toBe(1);
    await until(() => pool.health().every((h) => h.up));
    expect(replyText(await call(pool, buildRequest('mn')))).toBe('MN\r\n');
    await pool.close();
  });

  it('keeps the connection after SERVER_ERROR object too large for cache (memcached swallowed the value)', async () => {
    const pool = makePool();
    pool.start();
    const big = Buffer.alloc(2 * 1024 * 1024, 0x61);
    const req = buildRequest(`set big 0 0 ${big.length}`, { ns: 'T:', value: [big] });
    const [tooLarge, next] = await Promise.all([call(pool, req), call(pool, buildRequest('mn'))]);
    expect(replyText(tooLarge)).toBe('SERVER_ERROR object too large for cache\r\n');
    expect(replyText(next)).toBe('MN\r\n');
    expect(pool.counters.resetsTotal).toBe(0);
    await pool.close();
  });
});

/** A relay to memcached that passes replies on slowly: at most 16 kB every 20 ms. */
async function trickleRelay(target: MemcachedProcess): Promise<{ address: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const server = net.createServer((down) => {
    const up = net.connect({ host: target.host, port: target.port });
    sockets.add(down);
    sockets.add(up);
    down.on('error', () => {});
    up.on('error', () => {});
    up.on('close', () => down.destroy());
    down.on('close', () => up.destroy());
    down.pipe(up);
    let pending = Buffer.alloc(0);
    up.on('data', (d: Buffer) => {
      pending = Buffer.concat([pending, d]);
    });
    const tick = setInterval(() => {
      if (pending.length === 0) return;
      down.write(pending.subarray(0, 16 * 1024));
      pending = pending.subarray(16 * 1024);
    }, 20);
    timers.add(tick);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return {
    address: `127.0.0.1:${port}`,
    async close() {
      for (const t of timers) clearInterval(t);
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

describe('the request timeout', () => {
  it('does not reset a socket whose large reply is still arriving (a slow reply is not a hung server)', async () => {
    const r = await trickleRelay(mc);
    const pool = new UpstreamPool({
      servers: [r.address],
      connectionsPerServer: 1,
      connectTimeoutMs: 1000,
      requestTimeoutMs: 300,
      backoffMinMs: 20,
      backoffMaxMs: 100,
      logger: pino({ level: 'silent' }),
    });
    pool.start();
    const value = Buffer.alloc(600 * 1024, 0x62);
    const call = (req: Request) =>
      new Promise<Request>((resolve) => {
        req.owner = { onReply: resolve };
        pool.send(0, req);
      });
    expect(replyText(await call(buildRequest(`set slow 0 0 ${value.length}`, { ns: 'T:', value: [value] })))).toBe(
      'STORED\r\n',
    );
    // about 600 ms of trickling, twice the request timeout, bytes arriving all along
    const got = await call(buildRequest('get slow', { ns: 'T:' }));
    expect(replyText(got)).toBe(`VALUE slow 0 ${value.length}\r\n${value.toString('latin1')}\r\nEND\r\n`);
    expect(pool.counters.resetsTotal).toBe(0);
    await pool.close();
    await r.close();
  });
});

describe('requests memcached would refuse in a way that ends the shared socket', () => {
  it.each([
    ['ms with the E flag (memcached 1.6.18 has none)', 'ms k 2 E5\r\nhi\r\n', 'CLIENT_ERROR invalid flag\r\n'],
    ['ms with an unknown mode', 'ms k 2 MX\r\nhi\r\n', 'CLIENT_ERROR invalid mode for ms M token\r\n'],
    [
      'ms with a 32-byte opaque (memcached counts the O)',
      `ms k 2 O${'o'.repeat(32)}\r\nhi\r\n`,
      'CLIENT_ERROR opaque token too long\r\n',
    ],
    // not storage: memcached's one-line CLIENT_ERROR leaves the socket in step, and no reset is counted
    ['ma with an unknown mode (memcached answers)', 'ma k MX\r\n', 'CLIENT_ERROR invalid mode for ma M token\r\n'],
    ['md with the x flag (memcached answers)', 'md k x\r\n', 'CLIENT_ERROR invalid or duplicate flag\r\n'],
  ])('answers %s in memcached words, and resets nothing', async (_name, input, reply) => {
    const p = await startProxy(yaml(20, 200), mc.address);
    const a = await TextClient.connect(p.port(0));
    expect(await a.request(input)).toBe(reply);
    expect(await a.request('ms k 2\r\nok\r\nmg k v\r\n')).toBe('HD\r\nVA 2\r\nok\r\n');
    expect(await scrapeResets(p)).toEqual([]);
    a.close();
    await p.stop();
  });
});

/**
 * The one fake in this suite (no pre-1.6 memcached is installed): it answers
 * `version` with 1.4.39 after a delay, `get` with END, a storage command with
 * STORED once its data is read, anything else with ERROR, and records every
 * byte it receives.
 */
async function fakeOldMemcached(): Promise<{ address: string; received: () => string; close(): Promise<void> }> {
  let received = '';
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('error', () => {});
    let buf = '';
    let dataLeft = 0;
    let afterData = '';
    sock.on('data', (d: Buffer) => {
      received += d.toString('latin1');
      buf += d.toString('latin1');
      for (;;) {
        if (dataLeft > 0) {
          if (buf.length < dataLeft) return;
          buf = buf.slice(dataLeft);
          dataLeft = 0;
          sock.write(afterData);
          continue;
        }
        const nl = buf.indexOf('\r\n');
        if (nl < 0) return;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        const words = line.split(' ');
        if (words[0] === 'version') setTimeout(() => sock.write('VERSION 1.4.39\r\n'), 100);
        else if (words[0] === 'get' || words[0] === 'gets') sock.write('END\r\n');
        else if (words[0] === 'set') {
          dataLeft = Number(words[4]) + 2;
          afterData = 'STORED\r\n';
        } else sock.write('ERROR\r\n');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return {
    address: `127.0.0.1:${port}`,
    received: () => received,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

describe('a server that has not shown it speaks meta', () => {
  it('never receives a meta command: memgate waits for its version, then answers them ERROR itself', async () => {
    const old = await fakeOldMemcached();
    const p = await startProxy(yaml(20, 200), old.address);
    const a = await TextClient.connect(p.port(0));
    // sent at once, while the version answer is still 100 ms away
    const got = await a.request(
      'ms k 9\r\nflush_all\r\nmn\r\nmg k v\r\nme k\r\nma k\r\nmd k\r\nset k 0 0 1\r\nx\r\nget k\r\n',
    );
    expect(got).toBe('ERROR\r\nERROR\r\nERROR\r\nERROR\r\nERROR\r\nERROR\r\nSTORED\r\nEND\r\n');
    const lines = old
      .received()
      .split('\r\n')
      .filter((l) => l !== '');
    expect(lines.filter((l) => l !== 'version').map((l) => l.replace(/^(\w+ a1:)\w+(k\b)/, '$1…$2'))).toEqual([
      'set a1:…k 0 0 1',
      'x',
      'get a1:…k',
    ]);
    expect(await scrapeResets(p)).toEqual([]);
    a.close();
    await p.stop();
    await old.close();
  });
});
