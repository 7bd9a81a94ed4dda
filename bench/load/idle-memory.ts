/**
 * Memory per idle client connection: the RSS a proxy process grows by when N clients
 * connect and do nothing, divided by N.
 *
 *   RSS before ── open N sockets (in batches) ── wait until the proxy holds ≥ N more fds
 *   ── settle ── RSS idle ── one `version` round trip on each ── settle ── RSS active
 *
 * "active" is the same connections after one request each, i.e. once a session has
 * allocated whatever it allocates lazily. RSS is sampled a few times and the median kept.
 * Every wait is bounded; the sockets are closed before returning.
 */
import net from 'node:net';
import { median } from './report.js';
import { openFds, rssBytes } from './processes.js';

export interface IdleMemoryResult {
  readonly target: string;
  readonly connections: number;
  readonly rssBeforeBytes: number;
  readonly rssIdleBytes: number;
  readonly rssActiveBytes: number;
  readonly idleBytesPerConnection: number;
  readonly activeBytesPerConnection: number;
}

export interface IdleMemoryOptions {
  readonly target: string;
  readonly pid: number;
  readonly port: number;
  readonly connections: number;
  /** sockets opened at a time: stays under the proxy's listen backlog */
  readonly batch?: number;
  readonly settleMs?: number;
  readonly timeoutMs?: number;
}

const LOOPBACK = '127.0.0.1';
const VERSION_REQUEST = Buffer.from('version\r\n', 'latin1');
const LF = 0x0a;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function connectOne(port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: LOOPBACK, port });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`connect to ${port} timed out`));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Sends `version` and resolves on the first reply line (or after the timeout: false). */
function roundTrip(s: net.Socket, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => finish(false), timeoutMs);
    const onData = (chunk: Buffer): void => {
      if (chunk.includes(LF)) finish(true);
    };
    const finish = (ok: boolean): void => {
      clearTimeout(timer);
      s.off('data', onData);
      resolve(ok);
    };
    s.on('data', onData);
    s.write(VERSION_REQUEST);
  });
}

async function sampleRss(pid: number, samples = 5, gapMs = 100): Promise<number> {
  const values: number[] = [];
  for (let i = 0; i < samples; i++) {
    values.push(rssBytes(pid));
    if (i + 1 < samples) await sleep(gapMs);
  }
  return median(values);
}

/** Measures the proxy `pid` listening on `port`; see the file comment. */
export async function measureIdleMemory(opts: IdleMemoryOptions): Promise<IdleMemoryResult> {
  const batch = opts.batch ?? 200;
  const settleMs = opts.settleMs ?? 1000;
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  const sockets: net.Socket[] = [];
  try {
    // warm the process up a little so one-time allocations are not charged to connections
    const warm = await connectOne(opts.port, 5000);
    sockets.push(warm);
    for (let i = 0; i < 20; i++) await roundTrip(warm, 2000);
    await sleep(settleMs);
    const fdsBefore = openFds(opts.pid);
    const rssBeforeBytes = await sampleRss(opts.pid);

    for (let opened = 0; opened < opts.connections;) {
      if (Date.now() > deadline) throw new Error(`${opts.target}: opening ${opts.connections} connections timed out`);
      const n = Math.min(batch, opts.connections - opened);
      const group = await Promise.all(Array.from({ length: n }, () => connectOne(opts.port, 5000)));
      for (const s of group) s.on('error', () => s.destroy());
      sockets.push(...group);
      opened += n;
    }
    // connect() resolves on the client side; wait until the proxy has accepted them all
    while (openFds(opts.pid) < fdsBefore + opts.connections) {
      if (Date.now() > deadline)
        throw new Error(`${opts.target}: the proxy did not accept ${opts.connections} connections in time`);
      await sleep(50);
    }
    await sleep(settleMs);
    const rssIdleBytes = await sampleRss(opts.pid);

    const idle = sockets.slice(1);
    for (let i = 0; i < idle.length; i += batch) {
      await Promise.all(idle.slice(i, i + batch).map((s) => roundTrip(s, 5000)));
      if (Date.now() > deadline) throw new Error(`${opts.target}: round trips on idle connections timed out`);
    }
    await sleep(settleMs);
    const rssActiveBytes = await sampleRss(opts.pid);

    return {
      target: opts.target,
      connections: opts.connections,
      rssBeforeBytes,
      rssIdleBytes,
      rssActiveBytes,
      idleBytesPerConnection: Math.round((rssIdleBytes - rssBeforeBytes) / opts.connections),
      activeBytesPerConnection: Math.round((rssActiveBytes - rssBeforeBytes) / opts.connections),
    };
  } finally {
    for (const s of sockets) s.destroy();
  }
}
