/**
 * One `memgate serve --workers N` worker: the normal proxy (listeners,
 * sessions, upstream pool) in a process forked by the primary (primary.ts).
 *
 *   primary ──hello──▶ config (admin removed), slot, N
 *   worker: createProxy(config, { store: IpcStateStore, shareOf: N }).start() ──started──▶ primary
 *   primary ──state.changed / metrics / status / reload / stop──▶ worker
 *
 * What differs from a single process, and why:
 * - state: an IpcStateStore; the primary owns the state file and its lock.
 * - admin HTTP: none here; the primary serves it and asks the workers.
 * - limits: ops/bytes budgets are leased from the primary (ipc-leases.ts), so
 *   the tenant's whole limit holds across the workers however its traffic is
 *   spread; the connection cap, flush and stats budgets are divided by N.
 * - signals: SIGTERM/SIGINT stop this worker gracefully (the primary restarts
 *   it unless the primary is stopping too); SIGHUP is left to the primary,
 *   which reloads every worker with the config it validated.
 *
 * If the primary dies, node:cluster exits the worker when the pipe closes.
 */
import { createProxy, type Proxy } from '../index.js';
import type { Config } from '../config/schema.js';
import { createLogger } from '../log.js';
import { IpcLeaseSource } from './ipc-leases.js';
import { IpcStateStore } from './ipc-store.js';
import { IpcPeer, processChannel, type PrimaryCalls, type WorkerCalls, type WorkerStatus } from './ipc.js';

/** How long a new worker waits for the primary's hello. */
const HELLO_TIMEOUT_MS = 10_000;

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

function statusOf(proxy: Proxy, started: boolean): WorkerStatus {
  const connections: Record<string, number> = {};
  if (!started) return { pid: process.pid, ready: false, connections };
  for (const t of proxy.tenants.all()) if (!t.removed) connections[t.policy.name] = t.counters.currConnections;
  return { pid: process.pid, ready: proxy.pool.isReady(), connections };
}

/** Runs this process as a worker until it is told to stop. Exits 1 when it cannot start. */
export async function runWorker(): Promise<void> {
  const peer = new IpcPeer<WorkerCalls, PrimaryCalls>(processChannel(), 'the memgate primary');
  // before hello: a state change the primary sends from now on must find the store listening
  const store = new IpcStateStore(peer);
  const hello = await peer.call('hello', {}, HELLO_TIMEOUT_MS);
  const config: Config = deepFreeze(hello.config);
  const logger = createLogger(config.log.level).child({ worker: hello.slot });
  const leases = new IpcLeaseSource(peer, hello.workers);
  const proxy = createProxy(config, { logger, store, shareOf: hello.workers, leases });
  let started = false;
  let stopping = false;

  const stopAndExit = (why: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ why }, 'worker stopping');
    proxy.stop().then(
      () => {
        leases.close();
        peer.close();
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'worker stop failed');
        process.exit(1);
      },
    );
  };

  peer.handle({
    metrics: () => proxy.metrics.registry.getMetricsAsJSON(),
    status: () => statusOf(proxy, started),
    reload: ({ config: next, source }) => proxy.reload(deepFreeze(next), source),
    stop: () => {
      stopAndExit('primary');
      return null;
    },
  });
  process.on('SIGTERM', () => stopAndExit('SIGTERM'));
  process.on('SIGINT', () => stopAndExit('SIGINT'));
  // the default action of SIGHUP is to exit; a SIGHUP sent to the whole process group must not kill workers
  process.on('SIGHUP', () => logger.debug('SIGHUP ignored by a worker: the primary reloads every worker'));

  try {
    await proxy.start();
  } catch (err) {
    logger.fatal({ err }, 'memgate worker failed to start');
    await proxy.stop().catch(() => undefined);
    process.exit(1);
  }
  started = true;
  await peer.call('started', { pid: process.pid }, HELLO_TIMEOUT_MS);
  logger.info({ addresses: proxy.addresses() }, 'worker started');
}
