/**
 * How password guessing is bounded, in front of a real memcached: attempts
 * counted when they start, per address (normalised across listeners) and per
 * user name, a monotonic lock-out clock, bounded concurrent hashing (other
 * tenants' rotations stay fast during a flood), sampled failure logs, and
 * SASL re-authentication.
 */
import { randomBytes, scryptSync } from 'node:crypto';
import { Writable } from 'node:stream';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { createProxy, type Proxy } from '../../src/index.js';
import { hashPassword } from '../../src/policy/password.js';
import { spawnMemcached, type MemcachedProcess } from '../helpers/spawn-memcached.js';
import { TextClient } from '../helpers/text-client.js';

/** The cost (N) of every scrypt memgate runs, in order: the work each check does. */
const scryptCosts = vi.hoisted(() => [] as number[]);
vi.mock('node:crypto', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:crypto')>();
  const scrypt = (...args: Parameters<typeof real.scrypt>): void => {
    const opts = args[3];
    if (typeof opts === 'object' && opts !== null && 'N' in opts) scryptCosts.push(Number(opts.N));
    (real.scrypt as (...a: unknown[]) => void)(...args);
  };
  return { ...real, default: { ...real, scrypt }, scrypt };
});

let mc: MemcachedProcess;
let proxy: Proxy;
let dir: string;
const logLines: string[] = [];

const PLAIN = 0;
const DUAL_STACK = 1;
const ROTATING = 2;

function port(i: number): number {
  const a = proxy.addresses()[i];
  if (a === undefined) throw new Error(`no listener #${i}`);
  return a.port;
}

function authSet(user: string, password: string): string {
  const token = `${user} ${password}`;
  return `set auth 0 0 ${Buffer.byteLength(token)}\r\n${token}\r\n`;
}

/** One attempt on its own connection from `from`; the reply line. */
async function attemptFrom(from: string, user: string, password: string, listener = PLAIN): Promise<string> {
  const c = await TextClient.connect(port(listener), '127.0.0.1', from);
  c.send(authSet(user, password));
  const reply = await c.readUntil('\r\n', 20_000);
  c.close();
  return reply;
}

/** A config hash of N = 2^10 (what `memgate hash-password` writes, at a test's cost). */
function cheapHash(password: string): string {
  const salt = randomBytes(16);
  const key = scryptSync(password, salt, 32, { N: 1024, r: 8, p: 1 });
  return `scrypt$10$8$1$${salt.toString('base64')}$${key.toString('base64')}`;
}

beforeAll(async () => {
  mc = await spawnMemcached();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgate-auth-guard-'));
  // cheap hashes keep the many attempts quick; "vault" has the default (expensive) cost
  const secret = cheapHash('secret');
  const vault = await hashPassword('vault-secret');
  const users = ['u-dual', 'u-spread', 'u-clock', 'u-sasl', 'u-log', 'u-pipe', 'u-pool'];
  const config = parseConfigText(
    `
listen:
  - { host: 127.0.0.1, port: 0 }
  - { host: "::", port: 0 }
  - { host: 127.0.0.1, port: 0, tenant: rot }
upstream:
  servers: [ "${mc.address}" ]
state: { url: "file:${path.join(dir, 'state.json')}" }
limits: { authTimeoutMs: 120000 }
auth: { maxFailuresPerConnection: 3, lockoutFailures: 10, lockoutWindowMs: 60000, lockoutMs: 60000 }
tenants:
  shop:
    prefix: "shop:"
    credentials:
${users.map((u) => `      - { username: ${u}, password: "${secret}" }`).join('\n')}
      - { username: u-netless, password: "${secret}", networks: [ "10.0.0.0/8" ] }
  vault:
    prefix: "vault:"
    credentials:
      - { username: vault, password: "${vault}" }
      - { username: vault-flood, password: "${vault}" }
  rot: { prefix: "rot:" }
  small:
    prefix: "small:"
    limits: { maxItemBytes: 1000 }
    credentials:
      - { username: u-small, password: "${secret}" }
`,
    'auth-guard.yaml',
    {},
  );
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') logLines.push(line);
      done();
    },
  });
  proxy = createProxy(config, { logger: pino({ level: 'info' }, sink) });
  await proxy.start();
});

afterAll(async () => {
  await proxy?.stop();
  await mc?.stop();
  if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
});

describe('attempts are counted when they start', () => {
  it('refuses a right password sent while 54 wrong ones from its address are still being checked (limit 10)', async () => {
    const from = '127.30.0.1';
    const clients = await Promise.all(
      Array.from({ length: 55 }, () => TextClient.connect(port(PLAIN), '127.0.0.1', from)),
    );
    const wrong = clients.slice(0, 54);
    for (let i = 0; i < wrong.length; i++) wrong[i]?.send(authSet('vault', `guess${i}`));
    // the default scrypt cost: the 54 checks take far longer than this pause
    await new Promise((r) => setTimeout(r, 20));
    const right = clients[54] as TextClient;
    right.send(authSet('vault', 'vault-secret'));
    const replies = await Promise.all(clients.map((c) => c.readUntil('\r\n', 60_000)));
    for (const c of clients) c.close();
    expect(replies[54]).toBe('CLIENT_ERROR authentication failure\r\n');
    expect(replies.filter((r) => r === 'STORED\r\n')).toHaveLength(0);
  }, 90_000);
});

describe('parallel logins', () => {
  it('lets a pool open more connections at once than the lock-out limit, all with the right password', async () => {
    const clients = await Promise.all(
      Array.from({ length: 15 }, () => TextClient.connect(port(PLAIN), '127.0.0.1', '127.31.0.1')),
    );
    for (const c of clients) c.send(authSet('u-pool', 'secret'));
    const replies = await Promise.all(clients.map((c) => c.readUntil('\r\n', 20_000)));
    for (const c of clients) c.close();
    expect(replies).toEqual(Array.from({ length: 15 }, () => 'STORED\r\n'));
  });
});

describe('lock-out', () => {
  it('locks out one peer on every listener: 127.20.0.97 is ::ffff:127.20.0.97 on a dual-stack one', async () => {
    const from = '127.20.0.97';
    for (let i = 0; i < 10; i++) {
      expect(await attemptFrom(from, 'u-dual', `bad${i}`)).toBe('CLIENT_ERROR authentication failure\r\n');
    }
    expect(await attemptFrom(from, 'u-dual', 'secret', PLAIN)).toBe('CLIENT_ERROR authentication failure\r\n');
    expect(await attemptFrom(from, 'u-dual', 'secret', DUAL_STACK)).toBe('CLIENT_ERROR authentication failure\r\n');
    // another address is not affected
    expect(await attemptFrom('127.20.0.98', 'u-dual', 'secret', DUAL_STACK)).toBe('STORED\r\n');
  });

  it('limits guesses per user name: 120 wrong passwords over 24 addresses, then the right one from a 25th, is refused', async () => {
    const attempts: Promise<string>[] = [];
    for (let a = 0; a < 24; a++) {
      for (let i = 0; i < 5; i++) attempts.push(attemptFrom(`127.22.0.${a + 1}`, 'u-spread', `bad-${a}-${i}`));
    }
    const replies = await Promise.all(attempts);
    // past the name's limit, attempts wait for the running ones; past maxQueuedHashes waiting, they are refused busy
    const refusals = [
      'CLIENT_ERROR authentication failure\r\n',
      'SERVER_ERROR too many authentications in progress\r\n',
    ];
    for (const r of replies) expect(refusals).toContain(r);
    expect(await attemptFrom('127.22.0.25', 'u-spread', 'secret')).toBe('CLIENT_ERROR authentication failure\r\n');
    // other user names are not affected
    expect(await attemptFrom('127.22.0.26', 'u-log', 'secret')).toBe('STORED\r\n');
  });

  it('times a lock-out by the monotonic clock: a wall-clock step does not end it', async () => {
    const from = '127.21.0.1';
    for (let i = 0; i < 10; i++) await attemptFrom(from, 'u-clock', `bad${i}`);
    const realNow = Date.now.bind(Date);
    const jump = vi.spyOn(Date, 'now').mockImplementation(() => realNow() + 3_600_000);
    try {
      expect(await attemptFrom(from, 'u-clock', 'secret')).toBe('CLIENT_ERROR authentication failure\r\n');
    } finally {
      jump.mockRestore();
    }
  });
});

describe('concurrent password checks', () => {
  it("keeps another tenant's rotation fast during an unauthenticated flood (checks bounded; the rest queue)", async () => {
    const flood = 24;
    const clients = await Promise.all(
      Array.from({ length: flood }, (_, i) => TextClient.connect(port(PLAIN), '127.0.0.1', `127.50.1.${i + 1}`)),
    );
    let answered = 0;
    const replies = clients.map((c, i) => {
      c.send(authSet('vault-flood', `flood${i}`));
      return c.readUntil('\r\n', 60_000).then((r) => {
        answered++;
        return r;
      });
    });
    await new Promise((r) => setTimeout(r, 20));
    const rot = await TextClient.connect(port(ROTATING));
    const t0 = performance.now();
    expect(await rot.request('flush_all\r\n', 60_000)).toBe('OK\r\n');
    const rotationMs = performance.now() - t0;
    const outstanding = flood - answered;
    const all = await Promise.all(replies);
    for (const c of clients) c.close();
    rot.close();
    console.log(
      `rotation during a flood of ${flood}: ${rotationMs.toFixed(0)} ms, ${outstanding} flood replies still due`,
    );
    expect(new Set(all)).toEqual(new Set(['CLIENT_ERROR authentication failure\r\n']));
    // the rotation finished while most of the flood was still waiting for its checks
    expect(outstanding).toBeGreaterThanOrEqual(flood / 2);
  }, 90_000);
});

describe('the cost of an unknown user', () => {
  it("checks an unknown user name with a configured credential's scrypt parameters, never other ones", async () => {
    const known = new Set<number>();
    scryptCosts.length = 0;
    expect(await attemptFrom('127.80.0.1', 'u-sasl', 'wrong')).toBe('CLIENT_ERROR authentication failure\r\n');
    expect(await attemptFrom('127.80.0.1', 'vault', 'wrong')).toBe('CLIENT_ERROR authentication failure\r\n');
    for (const n of scryptCosts) known.add(n);
    expect(known).toEqual(new Set([1024, 32768]));
    scryptCosts.length = 0;
    // names pick a dummy by keyed hash: over 24 names both costs appear (all alike: chance 2^-23)
    const names = 24;
    for (let i = 0; i < names; i++) await attemptFrom(`127.80.1.${i + 1}`, `nobody-${i}`, 'x');
    expect(scryptCosts).toHaveLength(names);
    expect(new Set(scryptCosts)).toEqual(known);
  });

  it('keeps a checked cost for a credential used from a network it is not allowed from', async () => {
    scryptCosts.length = 0;
    expect(await attemptFrom('127.80.2.1', 'u-netless', 'secret')).toBe('CLIENT_ERROR authentication failure\r\n');
    expect(scryptCosts).toEqual([1024]);
  });
});

describe('failed-login logging', () => {
  it('samples failure lines instead of logging every one', async () => {
    const before = logLines.length;
    const attempts: Promise<string>[] = [];
    for (let a = 0; a < 40; a++) {
      for (let i = 0; i < 5; i++) attempts.push(attemptFrom(`127.60.0.${a + 1}`, 'u-log', `x${i}`));
    }
    await Promise.all(attempts);
    const failures = logLines.slice(before).filter((l) => l.includes('"audit":"auth-failure"'));
    // 200 failures; a burst of 20 plus a few a second get through
    expect(failures.length).toBeLessThan(60);
    expect(failures.length).toBeGreaterThan(0);
  }, 60_000);
});

/** A binary request packet (memcached's binary protocol header, then key and value). */
function packet(
  opcode: number,
  key: string | Buffer,
  value: Buffer = Buffer.alloc(0),
  extras = Buffer.alloc(0),
): Buffer {
  const k = typeof key === 'string' ? Buffer.from(key, 'latin1') : key;
  const h = Buffer.alloc(24);
  h[0] = 0x80;
  h[1] = opcode;
  h.writeUInt16BE(k.length, 2);
  h[4] = extras.length;
  h.writeUInt32BE(extras.length + k.length + value.length, 8);
  h.writeUInt32BE(opcode, 12); // opaque
  return Buffer.concat([h, extras, k, value]);
}

const SASL_AUTH = 0x21;
const GET = 0x00;
const SET = 0x01;

function saslPlain(user: string, password: string): Buffer {
  return packet(SASL_AUTH, 'PLAIN', Buffer.from(`\0${user}\0${password}`, 'latin1'));
}

/** Reads one binary reply (the only one due); returns its status, or -1 when the connection closed first. */
async function readStatus(c: TextClient): Promise<number> {
  let buf = await c.readBytes(24, 10_000);
  if (buf.length < 24) return -1;
  const total = 24 + buf.readUInt32BE(8);
  while (buf.length < total && !c.closed) buf = Buffer.concat([buf, await c.readBytes(1, 10_000)]);
  return buf.readUInt16BE(6);
}

describe('SASL re-authentication', () => {
  it('unauthenticates the connection on a new AUTH: a failed second AUTH does not keep the first identity', async () => {
    const c = await TextClient.connect(port(PLAIN), '127.0.0.1', '127.70.0.1');
    c.send(saslPlain('u-sasl', 'secret'));
    expect(await readStatus(c)).toBe(0x00);
    const setExtras = Buffer.alloc(8);
    c.send(packet(SET, 'sasl-k', Buffer.from('v'), setExtras));
    expect(await readStatus(c)).toBe(0x00);
    c.send(saslPlain('u-sasl', 'wrong'));
    expect(await readStatus(c)).toBe(0x20);
    c.send(packet(GET, 'sasl-k'));
    expect(await readStatus(c)).toBe(0x20);
    await c.waitClosed();
  });

  it('serves the new identity after a good second AUTH', async () => {
    const c = await TextClient.connect(port(PLAIN), '127.0.0.1', '127.70.0.2');
    c.send(saslPlain('u-sasl', 'secret'));
    expect(await readStatus(c)).toBe(0x00);
    c.send(saslPlain('u-sasl', 'secret'));
    expect(await readStatus(c)).toBe(0x00);
    c.send(packet(GET, 'sasl-k'));
    expect(await readStatus(c)).toBe(0x00);
    c.close();
  });
});

describe('the item size limit after password authentication', () => {
  it('holds for a big set pipelined right behind ASCII auth, and the stream stays in sync', async () => {
    const c = await TextClient.connect(port(PLAIN), '127.0.0.1', '127.85.0.1');
    const big = 'v'.repeat(5000);
    const reply = await c.request(`${authSet('u-small', 'secret')}set big 0 0 ${big.length}\r\n${big}\r\nget big\r\n`);
    expect(reply).toBe('STORED\r\nSERVER_ERROR object too large for cache\r\nEND\r\n');
    expect(await c.request('set ok 0 0 3\r\nabc\r\nget ok\r\n')).toBe('STORED\r\nVALUE ok 0 3\r\nabc\r\nEND\r\n');
    c.close();
  });

  it('holds on a binary (SASL) session: status 0x03, value too large', async () => {
    const c = await TextClient.connect(port(PLAIN), '127.0.0.1', '127.85.0.2');
    c.send(saslPlain('u-small', 'secret'));
    expect(await readStatus(c)).toBe(0x00);
    c.send(packet(SET, 'big', Buffer.alloc(5000, 0x76), Buffer.alloc(8)));
    expect(await readStatus(c)).toBe(0x03);
    c.send(packet(GET, 'big'));
    expect(await readStatus(c)).toBe(0x01);
    c.send(packet(SET, 'ok', Buffer.alloc(1000, 0x76), Buffer.alloc(8)));
    expect(await readStatus(c)).toBe(0x00);
    c.close();
  });
});

describe('input before authentication', () => {
  it('closes a connection whose pre-auth set announces a value larger than an auth token, before reading it', async () => {
    const n = 50;
    const partial = Buffer.alloc(256 * 1024, 0x78);
    const rssBefore = process.memoryUsage().rss;
    const clients = await Promise.all(
      Array.from({ length: n }, (_, i) => TextClient.connect(port(PLAIN), '127.0.0.1', `127.86.0.${i + 1}`)),
    );
    for (const c of clients) {
      c.send('set a 0 0 1048576\r\n');
      c.send(partial);
    }
    const replies = await Promise.all(clients.map((c) => c.readUntil('\r\n', 10_000)));
    await Promise.all(clients.map((c) => c.waitClosed(10_000)));
    const rssAfter = process.memoryUsage().rss;
    console.log(
      `${n} pre-auth 1 MiB sets, 256 KiB sent each: RSS ${((rssAfter - rssBefore) / 1048576).toFixed(1)} MiB more`,
    );
    expect(new Set(replies)).toEqual(new Set(['CLIENT_ERROR auth token too long\r\n']));
  }, 30_000);

  it('closes an unauthenticated connection whose line is longer than an auth request', async () => {
    const c = await TextClient.connect(port(PLAIN), '127.0.0.1', '127.86.1.1');
    c.send(`get ${'k'.repeat(3000)}`);
    expect(await c.readUntil('\r\n')).toBe('CLIENT_ERROR line too long\r\n');
    await c.waitClosed();
  });

  it('closes a binary connection that sends a large packet before authenticating (E2BIG)', async () => {
    const c = await TextClient.connect(port(PLAIN), '127.0.0.1', '127.86.1.2');
    const set = packet(SET, 'k', Buffer.alloc(1024 * 1024), Buffer.alloc(8));
    c.send(set.subarray(0, 64 * 1024));
    expect(await readStatus(c)).toBe(0x03);
    await c.waitClosed();
  });

  it('still takes requests with large values pipelined right behind the auth', async () => {
    const c = await TextClient.connect(port(PLAIN), '127.0.0.1', '127.86.1.3');
    const v = 'v'.repeat(20_000);
    const reply = await c.request(`${authSet('u-pipe', 'secret')}set pv 0 0 ${v.length}\r\n${v}\r\nget pv\r\n`);
    expect(reply).toBe(`STORED\r\nSTORED\r\nVALUE pv 0 ${v.length}\r\n${v}\r\nEND\r\n`);
    c.close();
  });
});
