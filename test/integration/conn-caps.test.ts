/**
 * Connection caps and closing, in front of a real memcached: TLS connections
 * counted at TCP accept, over-cap and cut-off connections released at once
 * (memgate's descriptor, counted in this process's /proc/self/fd, is closed
 * even when the client never closes its side).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnMemcached, type MemcachedProcess } from '../helpers/spawn-memcached.js';
import { startProxy, type RunningProxy } from '../helpers/proxy.js';

let mc: MemcachedProcess;
let gate: RunningProxy;
let dir: string;

const PLAIN = 0;
const TLS = 1;
const TENANT = 2;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgate-caps-'));
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'k.pem', '-subj', '/CN=localhost', '-days', '2'],
    { cwd: dir, stdio: ['ignore', fs.openSync(path.join(dir, 'c.pem'), 'w'), 'ignore'] },
  );
  mc = await spawnMemcached();
  gate = await startProxy(
    `
listen:
  - { host: 127.0.0.1, port: 0 }
  - { host: 127.0.0.1, port: 0, tls: { cert: "${path.join(dir, 'c.pem')}", key: "${path.join(dir, 'k.pem')}" } }
  - { host: 127.0.0.1, port: 0, tenant: app }
upstream:
  servers: [ "\${UPSTREAM}" ]
state: { url: "\${STATE}" }
limits: { maxConnections: 20, maxConnectionsPerAddress: 5, authTimeoutMs: 60000, maxLineBytes: 1024 }
tenants:
  app: { prefix: "app:" }
`,
    mc.address,
  );
});

afterAll(async () => {
  await gate?.stop();
  await mc?.stop();
  if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
});

function openDescriptors(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

/** A raw client that never closes its own side unless told to; records what memgate did. */
class HalfOpenClient {
  readonly socket: net.Socket;
  data = '';
  /** memgate sent its FIN (or reset) */
  ended = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => (this.data += d.toString('latin1')));
    socket.on('end', () => (this.ended = true));
    socket.on('close', () => (this.ended = true));
    socket.on('error', () => (this.ended = true));
  }

  static open(port: number, from: string): Promise<HalfOpenClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port, localAddress: from, allowHalfOpen: true });
      s.once('connect', () => resolve(new HalfOpenClient(s)));
      s.once('error', reject);
    });
  }
}

async function until(cond: () => boolean, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return cond();
}

async function openMany(n: number, port: number, from: (i: number) => string): Promise<HalfOpenClient[]> {
  const out: HalfOpenClient[] = [];
  for (let i = 0; i < n; i++) out.push(await HalfOpenClient.open(port, from(i)));
  return out;
}

/** Closes the clients and gives memgate a moment to see it, so the next test starts under the caps. */
async function destroyAll(clients: readonly HalfOpenClient[]): Promise<void> {
  for (const c of clients) c.socket.destroy();
  await new Promise((r) => setTimeout(r, 150));
}

describe('TLS connections are counted at TCP accept', () => {
  it('closes silent TCP connections to a TLS port past the per-address cap (10 from one address, cap 5)', async () => {
    const clients = await openMany(10, gate.port(TLS), () => '127.90.0.1');
    const ok = await until(() => clients.filter((c) => c.ended).length >= 5);
    const closed = clients.filter((c) => c.ended).length;
    await destroyAll(clients);
    expect(ok).toBe(true);
    expect(closed).toBe(5);
  });

  it('closes silent TCP connections to a TLS port past the global cap (25 from 5 addresses, cap 20)', async () => {
    const clients = await openMany(25, gate.port(TLS), (i) => `127.91.0.${(i % 5) + 1}`);
    const ok = await until(() => clients.filter((c) => c.ended).length >= 5);
    const closed = clients.filter((c) => c.ended).length;
    await destroyAll(clients);
    expect(ok).toBe(true);
    expect(closed).toBe(5);
  });
});

describe('memgate releases the connections it ends, whether or not the client closes', () => {
  it('closes an over-cap plain connection at once after ERROR Too many open connections', async () => {
    const held = await openMany(5, gate.port(TENANT), () => '127.92.0.1');
    await new Promise((r) => setTimeout(r, 50));
    const base = openDescriptors();
    const over = await openMany(20, gate.port(TENANT), () => '127.92.0.1');
    expect(await until(() => over.every((c) => c.ended))).toBe(true);
    expect(over.every((c) => c.data === 'ERROR Too many open connections\r\n')).toBe(true);
    // each refused connection leaves only this test's own descriptor open, not memgate's
    const released = await until(() => openDescriptors() - base <= over.length + 2);
    const extra = openDescriptors() - base;
    await destroyAll(over);
    await destroyAll(held);
    expect(released, `descriptors over the base with ${over.length} refused clients: ${extra}`).toBe(true);
  });

  it('releases a connection it ends with CLIENT_ERROR line too long, discarding the unread input', async () => {
    await new Promise((r) => setTimeout(r, 50));
    const base = openDescriptors();
    const clients = await openMany(4, gate.port(TENANT), (i) => `127.93.0.${i + 1}`);
    for (const c of clients) c.socket.write(`get ${'k'.repeat(2000)}\r\n${'x'.repeat(64 * 1024)}`);
    expect(await until(() => clients.every((c) => c.ended))).toBe(true);
    expect(clients.every((c) => c.data === 'CLIENT_ERROR line too long\r\n')).toBe(true);
    const released = await until(() => openDescriptors() - base <= clients.length + 2);
    const extra = openDescriptors() - base;
    await destroyAll(clients);
    expect(released, `descriptors over the base with ${clients.length} cut-off clients: ${extra}`).toBe(true);
  });

  it('releases an unauthenticated connection it ends', async () => {
    await new Promise((r) => setTimeout(r, 50));
    const base = openDescriptors();
    const clients = await openMany(4, gate.port(PLAIN), (i) => `127.94.0.${i + 1}`);
    for (const c of clients) c.socket.write('get k\r\nget more\r\n');
    expect(await until(() => clients.every((c) => c.ended))).toBe(true);
    expect(clients.every((c) => c.data === 'CLIENT_ERROR unauthenticated\r\n')).toBe(true);
    const released = await until(() => openDescriptors() - base <= clients.length + 2);
    const extra = openDescriptors() - base;
    await destroyAll(clients);
    expect(released, `descriptors over the base with ${clients.length} cut-off clients: ${extra}`).toBe(true);
  });

  it('still answers a client that shuts down its sending side, then closes', async () => {
    const c = await HalfOpenClient.open(gate.port(TENANT), '127.95.0.1');
    c.socket.end('set h 0 0 1\r\n1\r\nget h\r\n');
    expect(await until(() => c.ended)).toBe(true);
    expect(c.data).toBe('STORED\r\nVALUE h 0 1\r\n1\r\nEND\r\n');
    c.socket.destroy();
  });
});
