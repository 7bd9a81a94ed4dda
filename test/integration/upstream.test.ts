/**
 * The upstream pool against a real memcached (spawnMemcached). The failure
 * cases that memcached cannot produce on demand (a peer that hangs, closes
 * mid-reply or sends garbage) use a plain loopback TCP peer in front of the
 * real server: it misbehaves on the connections it is told to and relays the
 * others to memcached.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Replies } from '../../src/protocol/text/replies.js';
import { ReplyStatus, type Request } from '../../src/protocol/text/request.js';
import { UpstreamPool, type UpstreamOptions } from '../helpers/upstream-pool.js';
import { spawnMemcached, type MemcachedProcess } from '../helpers/spawn-memcached.js';
import { TextClient } from '../helpers/text-client.js';
import { RecordingOwner, buildRequest, replyText, type BuildOptions } from '../unit/protocol/text/request-builder.js';

const FAILURE = Replies.BACKEND_FAILURE.toString('latin1');
const NS = 'T7:';

let mc: MemcachedProcess;
let raw: TextClient;

beforeAll(async () => {
  mc = await spawnMemcached();
  raw = await TextClient.connect(mc.port);
});

afterAll(async () => {
  raw.close();
  await mc.stop();
});

interface LogLine {
  level: number;
  msg: string;
  code?: string;
}

function makePool(over: Partial<UpstreamOptions> = {}, logs?: LogLine[]): UpstreamPool {
  const logger = pino(
    { level: logs === undefined ? 'silent' : 'debug' },
    { write: (s: string) => logs?.push(JSON.parse(s) as LogLine) },
  );
  return new UpstreamPool({
    servers: [mc.address],
    connectionsPerServer: 2,
    connectTimeoutMs: 1000,
    requestTimeoutMs: 2000,
    backoffMinMs: 20,
    backoffMaxMs: 100,
    logger,
    ...over,
  });
}

/** Sends one request and resolves with it once it is answered. */
function call(pool: UpstreamPool, slot: number, line: string, opts: BuildOptions = {}): Promise<Request> {
  return new Promise((resolve) => {
    pool.send(slot, buildRequest(line, { ns: NS, ...opts, owner: { onReply: resolve } }));
  });
}

async function text(pool: UpstreamPool, line: string, opts: BuildOptions = {}): Promise<string> {
  return replyText(await call(pool, 0, line, opts));
}

async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const isUp = (pool: UpstreamPool) => pool.health().every((h) => h.up);

/** Waits until `slot`'s connection answers (after a restart it may still be waiting out its backoff). */
async function untilAnswered(pool: UpstreamPool, slot: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (replyText(await call(pool, slot, 'mn')) === 'MN\r\n') return;
    if (Date.now() > deadline) throw new Error(`slot ${slot} did not answer in time`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * A loopback peer in front of memcached. Connection number i (from 0) gets
 * `misbehave[i]` when there is one, else it is relayed to memcached.
 */
async function peer(
  misbehave: ((sock: net.Socket) => void)[],
): Promise<{ address: string; accepted: () => number; close: () => Promise<void> }> {
  let n = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('error', () => {});
    sock.on('close', () => sockets.delete(sock));
    const bad = misbehave[n++];
    if (bad !== undefined) return bad(sock);
    const up = net.connect({ host: mc.host, port: mc.port });
    sockets.add(up);
    up.on('error', () => sock.destroy());
    up.on('close', () => sock.destroy());
    sock.on('close', () => up.destroy());
    sock.pipe(up);
    up.pipe(sock);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return {
    address: `127.0.0.1:${port}`,
    accepted: () => n,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

describe('UpstreamPool against memcached', () => {
  it('runs every classic and meta command with the namespace, and memcached really stores namespaced keys', async () => {
    const pool = makePool();
    pool.start();
    expect(await text(pool, 'set k1 5 0 3', { value: 'abc' })).toBe('STORED\r\n');
    expect(await text(pool, 'get k1')).toBe('VALUE k1 5 3\r\nabc\r\nEND\r\n');
    expect(await raw.request('get T7:k1\r\n')).toBe('VALUE T7:k1 5 3\r\nabc\r\nEND\r\n');
    expect(await raw.request('get k1\r\n')).toBe('END\r\n');

    const gets = await text(pool, 'gets k1 nope');
    const cas = /^VALUE k1 5 3 (\d+)\r\nabc\r\nEND\r\n$/.exec(gets)?.[1];
    expect(cas).toBeDefined();
    expect(await text(pool, `cas k1 0 0 1 ${cas}`, { value: 'x' })).toBe('STORED\r\n');
    expect(await text(pool, `cas k1 0 0 1 ${cas}`, { value: 'y' })).toBe('EXISTS\r\n');
    expect(await text(pool, 'add k1 0 0 1', { value: 'z' })).toBe('NOT_STORED\r\n');
    expect(await text(pool, 'append k1 0 0 2 noreply', { value: '++' })).toBe('STORED\r\n');
    expect(await text(pool, 'get k1')).toBe('VALUE k1 0 3\r\nx++\r\nEND\r\n');
    expect(await text(pool, 'touch k1 100')).toBe('TOUCHED\r\n');
    expect(await text(pool, 'gat 0 k1')).toBe('VALUE k1 0 3\r\nx++\r\nEND\r\n');
    expect(await text(pool, 'delete k1')).toBe('DELETED\r\n');
    expect(await text(pool, 'delete k1')).toBe('NOT_FOUND\r\n');

    expect(await text(pool, 'set n 0 0 2', { value: '10' })).toBe('STORED\r\n');
    const incr = await call(pool, 0, 'incr n 18446744073709551605');
    expect(replyText(incr)).toBe('18446744073709551615\r\n');
    expect(incr.status).toBe(ReplyStatus.NUMBER);
    expect(await text(pool, 'decr n 5')).toBe('18446744073709551610\r\n');

    expect(await text(pool, 'ms m1 2 T0 F7 k q', { value: 'hi' })).toBe('HD km1\r\n');
    expect(await raw.request('mg T7:m1 v f\r\n')).toBe('VA 2 f7\r\nhi\r\n');
    const mg = await call(pool, 0, 'mg m1 k v f O42');
    expect(replyText(mg)).toBe('VA 2 km1 f7 O42\r\nhi\r\n');
    expect([mg.status, mg.hits]).toEqual([ReplyStatus.OK, 1]);
    expect(await text(pool, 'mg nope k v O1')).toBe('EN knope O1\r\n');
    expect(await text(pool, 'ma cnt N0 J5 v k')).toBe('VA 1 kcnt\r\n5\r\n');
    expect(await text(pool, 'ma cnt MD D2 v')).toBe('VA 1\r\n3\r\n');
    expect(await text(pool, 'md m1 k')).toBe('HD km1\r\n');
    expect(await text(pool, 'md m1 k')).toBe('NF km1\r\n');
    expect(await text(pool, 'me cnt')).toMatch(/^ME cnt exp=-1 la=\d+ cas=\d+ fetch=\w+ cls=\d+ size=\d+\r\n$/);
    expect(await text(pool, 'me nope')).toBe('EN\r\n');
    expect(await text(pool, 'mn')).toBe('MN\r\n');
    expect(await text(pool, 'version')).toBe('VERSION 1.6.18\r\n');
    expect(await text(pool, 'stats settings', { ns: null })).toMatch(
      /^STAT maxbytes \d+\r\n(STAT [^\r\n]+\r\n)*END\r\n$/,
    );

    const key = Buffer.from([0, 1, 0xfe, 0x20]);
    const b64 = key.toString('base64');
    expect(await text(pool, `ms ${b64} 1 b k`, { value: 'B' })).toBe(`HD k${b64} b\r\n`);
    const upstreamKey = Buffer.concat([Buffer.from(NS), key]).toString('base64');
    expect(await raw.request(`mg ${upstreamKey} b v\r\n`)).toBe('VA 1\r\nB\r\n');
    expect(await text(pool, `mg ${b64} b k v`)).toBe(`VA 1 k${b64} b\r\nB\r\n`);
    expect(await text(pool, `me ${b64} b`)).toMatch(new RegExp(`^ME ${b64.replace(/[+/]/g, '\\$&')} exp=-1 `));
    await pool.close();
  });

  it('refuses a key memcached would reject without desynchronising the shared connection', async () => {
    const pool = makePool({ connectionsPerServer: 1 });
    pool.start();
    // without a namespace (a namespaced key that is too long is digested: test/integration/keyspace.test.ts)
    const long = 'k'.repeat(251);
    const replies = await Promise.all([
      text(pool, 'mn'),
      text(pool, `set ${long} 0 0 2`, { value: 'hi', ns: null }),
      text(pool, `ms ${Buffer.alloc(188, 1).toString('base64')} 2 b`, { value: 'hi', ns: null }),
      text(pool, 'mn'),
    ]);
    expect(replies).toEqual([
      'MN\r\n',
      'CLIENT_ERROR bad command line format\r\n',
      'CLIENT_ERROR bad command line format\r\n',
      'MN\r\n',
    ]);
    expect(isUp(pool)).toBe(true);
    await pool.close();
  });

  it('returns 1,000 pipelined requests from several owners each to its owner, in order', async () => {
    const pool = makePool();
    pool.start();
    await until(() => isUp(pool));
    const owners = Array.from({ length: 8 }, () => new RecordingOwner());
    const sent = owners.map(() => [] as Request[]);
    const slots = owners.map((_, i) => i);
    for (let i = 0; i < 1000; i++) {
      const o = i % owners.length;
      const owner = owners[o] as RecordingOwner;
      const key = `o${o}-${i % 7}`;
      const req =
        i % 3 === 0
          ? buildRequest(`set ${key} ${i} 0 ${String(i).length}`, { ns: NS, owner, value: String(i) })
          : i % 3 === 1
            ? buildRequest(`get ${key}`, { ns: NS, owner })
            : buildRequest(`mg ${key} k v f`, { ns: NS, owner });
      sent[o]?.push(req);
      pool.send(slots[o] ?? 0, req);
    }
    await until(() => owners.every((o, i) => o.replies.length === sent[i]?.length));
    const model = new Map<string, string>();
    for (let i = 0; i < 1000; i++) {
      const o = i % owners.length;
      const req = sent[o]?.[Math.floor(i / owners.length)];
      if (req === undefined) throw new Error('missing');
      const key = `o${o}-${i % 7}`;
      const stored = model.get(key);
      const got = replyText(req);
      if (i % 3 === 0) {
        expect(got).toBe('STORED\r\n');
        model.set(key, String(i));
      } else if (i % 3 === 1) {
        expect(got).toBe(
          stored === undefined ? 'END\r\n' : `VALUE ${key} ${stored} ${stored.length}\r\n${stored}\r\nEND\r\n`,
        );
      } else {
        expect(got).toBe(
          stored === undefined ? `EN k${key}\r\n` : `VA ${stored.length} k${key} f${stored}\r\n${stored}\r\n`,
        );
      }
    }
    for (let o = 0; o < owners.length; o++) expect(owners[o]?.replies).toEqual(sent[o]);
    await pool.close();
  });

  it('reports a blocked slot and calls its drain callback once the socket takes writes again', async () => {
    const pool = makePool({ connectionsPerServer: 1 });
    pool.start();
    await until(() => isUp(pool));
    const owner = new RecordingOwner();
    const value = Buffer.alloc(512 * 1024, 0x61);
    for (let i = 0; i < 8; i++)
      pool.send(0, buildRequest(`set big${i} 0 0 ${value.length}`, { ns: NS, owner, value: [value] }));
    expect(pool.isBlocked(0)).toBe(true);
    const drained = new Promise<void>((resolve) => pool.onDrain(0, resolve));
    await drained;
    await until(() => owner.replies.length === 8);
    expect(owner.replies.map(replyText)).toEqual(Array(8).fill('STORED\r\n'));
    expect(pool.isBlocked(0)).toBe(false);
    await pool.close();
  });

  it('asks the version on connect, then sends one-key gets as mg and answers them as VALUE/END', async () => {
    const pool = makePool();
    pool.start();
    // the probe goes first on each connection: once `version` is answered on slot 0, its result is known
    expect(await text(pool, 'version')).toMatch(/^VERSION /);
    expect(await text(pool, 'set g1 42 0 5', { value: 'hello' })).toBe('STORED\r\n');
    const hit = await call(pool, 0, 'get g1');
    expect(hit.upstreamMeta).toBe(true);
    expect([replyText(hit), hit.status, hit.hits]).toEqual(['VALUE g1 42 5\r\nhello\r\nEND\r\n', ReplyStatus.OK, 1]);
    const miss = await call(pool, 0, 'get nothing-here');
    expect([replyText(miss), miss.status, miss.hits, miss.upstreamMeta]).toEqual([
      'END\r\n',
      ReplyStatus.MISS,
      0,
      true,
    ]);
    const rawGets = await raw.request('gets T7:g1\r\n');
    expect(await text(pool, 'gets g1')).toBe(rawGets.replace('T7:g1', 'g1'));
    const multi = await call(pool, 0, 'get g1 nothing-here');
    expect(multi.upstreamMeta).toBe(false);
    expect(replyText(multi)).toBe('VALUE g1 42 5\r\nhello\r\nEND\r\n');
    // a key stored binary (ms … b) comes back in base64 from mg: still the client's VALUE line
    expect(await text(pool, `ms ${Buffer.from('bin').toString('base64')} 2 b`, { value: 'hi' })).toBe('HD\r\n');
    expect(await text(pool, 'get bin')).toBe('VALUE bin 0 2\r\nhi\r\nEND\r\n');
    // the admin path: no namespace
    expect(await text(pool, 'get T7:g1', { ns: null })).toBe('VALUE T7:g1 42 5\r\nhello\r\nEND\r\n');
    await pool.close();
  });

  it('keeps gets classic when metaGets is off', async () => {
    const pool = makePool({ metaGets: false });
    pool.start();
    expect(await text(pool, 'version')).toMatch(/^VERSION /);
    expect(await text(pool, 'set g2 1 0 1', { value: 'x' })).toBe('STORED\r\n');
    const hit = await call(pool, 0, 'get g2');
    expect(hit.upstreamMeta).toBe(false);
    expect(replyText(hit)).toBe('VALUE g2 1 1\r\nx\r\nEND\r\n');
    await pool.close();
  });

  it('queues requests sent while connecting and writes them on connect', async () => {
    const pool = makePool();
    pool.start();
    const replies = await Promise.all([text(pool, 'set q1 0 0 1', { value: '1' }), text(pool, 'get q1')]);
    expect(replies).toEqual(['STORED\r\n', 'VALUE q1 0 1\r\n1\r\nEND\r\n']);
    await pool.close();
  });

  it('lets replies in flight arrive on close, then refuses new requests', async () => {
    const pool = makePool();
    pool.start();
    await until(() => isUp(pool));
    const pending = call(pool, 0, 'mn');
    await pool.close();
    expect(replyText(await pending)).toBe('MN\r\n');
    expect(await text(pool, 'mn')).toBe(FAILURE);
  });
});

describe('UpstreamPool when memcached fails', () => {
  afterEach(async () => {
    // a test that failed half-way must not leave memcached stopped or dead for the next one
    const c = mc.child;
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGCONT');
      return;
    }
    await mc.restart();
    raw.close();
    raw = await TextClient.connect(mc.port);
  });

  it('fails in-flight and new requests fast when memcached dies, and recovers by itself after restart', async () => {
    const logs: LogLine[] = [];
    const pool = makePool({ backoffMinMs: 20, backoffMaxMs: 100 }, logs);
    pool.start();
    await until(() => isUp(pool));
    expect(await text(pool, 'set alive 0 0 1', { value: '1' })).toBe('STORED\r\n');

    await mc.pause(); // memcached stops answering: these stay in flight
    const inFlight = [call(pool, 0, 'get alive'), call(pool, 1, 'mn'), call(pool, 0, 'mg alive v')];
    await new Promise((r) => setTimeout(r, 50));
    expect(pool.health()[0]?.inFlight).toBe(3);
    const t0 = performance.now();
    await mc.kill();
    const failed = await Promise.all(inFlight);
    expect(failed.map(replyText)).toEqual([FAILURE, FAILURE, FAILURE]);
    expect(failed.map((r) => r.status)).toEqual([ReplyStatus.ERROR, ReplyStatus.ERROR, ReplyStatus.ERROR]);
    expect(performance.now() - t0).toBeLessThan(500);

    const t1 = performance.now();
    for (let i = 0; i < 5; i++) expect(await text(pool, 'mn')).toBe(FAILURE);
    expect(performance.now() - t1).toBeLessThan(500);
    expect(pool.health()[0]?.up).toBe(false);

    await mc.restart();
    raw.close();
    raw = await TextClient.connect(mc.port);
    // isUp says one connection is up; slot 0's may still be waiting out its backoff
    await untilAnswered(pool, 0);
    expect(await text(pool, 'mn')).toBe('MN\r\n');
    expect(await text(pool, 'set back 0 0 1', { value: '2' })).toBe('STORED\r\n');
    expect(await text(pool, 'get back')).toBe('VALUE back 0 1\r\n2\r\nEND\r\n');

    // one "broken" per connection however many reconnects failed, then one "restored" each
    const warns = (msg: string) => logs.filter((l) => l.level === 40 && l.msg === msg).length;
    await until(() => warns('upstream connection restored') === 2);
    expect(warns('upstream connection broken')).toBe(2);
    await pool.close();
  });

  it('fails queued requests when nothing listens, without throwing', async () => {
    const closed = await peer([]);
    await closed.close();
    const pool = makePool({ servers: [closed.address] });
    pool.start();
    const replies = await Promise.all([text(pool, 'mn'), text(pool, 'get a')]);
    expect(replies).toEqual([FAILURE, FAILURE]);
    await pool.close();
  });

  it('fails a request to an upstream that hangs after requestTimeoutMs, and a late reply never answers the next request', async () => {
    let hung: net.Socket | undefined;
    const p = await peer([
      (sock) => {
        hung = sock;
      },
    ]);
    const pool = makePool({ servers: [p.address], connectionsPerServer: 1, requestTimeoutMs: 300 });
    pool.start();
    const t0 = performance.now();
    const first = await call(pool, 0, 'get late');
    const waited = performance.now() - t0;
    expect(replyText(first)).toBe(FAILURE);
    expect(waited).toBeGreaterThanOrEqual(290);
    expect(waited).toBeLessThan(1000);
    hung?.write('VALUE T7:late 0 4\r\nlate\r\nEND\r\n'); // too late: that socket is gone
    await until(() => isUp(pool));
    expect(p.accepted()).toBe(2);
    expect(await text(pool, 'set late 0 0 3', { value: 'new' })).toBe('STORED\r\n');
    expect(await text(pool, 'get late')).toBe('VALUE late 0 3\r\nnew\r\nEND\r\n');
    await pool.close();
    await p.close();
  });

  it.each([
    ['closes mid-reply', (sock: net.Socket) => sock.once('data', () => sock.end('VALUE T7:a 0 10\r\nabc'))],
    ['sends garbage', (sock: net.Socket) => sock.once('data', () => sock.write('HELLO THERE\r\n'))],
    [
      'sends a key of another namespace',
      (sock: net.Socket) => sock.once('data', () => sock.write('VALUE X9:a 0 1\r\nx\r\nEND\r\n')),
    ],
    ['answers before being asked', (sock: net.Socket) => sock.write('STORED\r\n')],
  ])(
    'fails in-flight requests when the upstream %s, and the next request on a new connection works',
    async (_name, bad) => {
      const logs: LogLine[] = [];
      const p = await peer([bad]);
      const pool = makePool({ servers: [p.address], connectionsPerServer: 1 }, logs);
      pool.start();
      const replies = await Promise.all([text(pool, 'get a'), text(pool, 'mn')]);
      expect(replies).toEqual([FAILURE, FAILURE]);
      await until(() => isUp(pool));
      expect(await text(pool, 'set a 0 0 2', { value: 'ok' })).toBe('STORED\r\n');
      expect(await text(pool, 'get a')).toBe('VALUE a 0 2\r\nok\r\nEND\r\n');
      expect(logs.filter((l) => l.level === 40 && l.msg === 'upstream connection broken')).toHaveLength(1);
      await pool.close();
      await p.close();
    },
  );
});
