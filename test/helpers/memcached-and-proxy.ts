/**
 * One test file's real memcached and memgate in front of it, started in
 * beforeAll and stopped in afterAll (kept apart from proxy.ts, which runs
 * outside vitest too).
 */
import { afterAll, beforeAll } from 'vitest';
import { startProxy, type RunningProxy } from './proxy.js';
import { spawnMemcached, type MemcachedProcess } from './spawn-memcached.js';

export interface MemcachedAndProxy {
  readonly mc: MemcachedProcess;
  readonly gate: RunningProxy;
}

/**
 * For one test file: a real memcached and memgate in front of it, started in
 * beforeAll (`yaml` may be made then, e.g. to hash a password) and stopped in afterAll.
 */
export function useMemcachedAndProxy(yaml: string | (() => Promise<string>)): MemcachedAndProxy {
  let mc: MemcachedProcess | undefined;
  let gate: RunningProxy | undefined;
  beforeAll(async () => {
    mc = await spawnMemcached();
    gate = await startProxy(typeof yaml === 'string' ? yaml : await yaml(), mc.address);
  });
  afterAll(async () => {
    await gate?.stop();
    await mc?.stop();
  });
  return {
    get mc(): MemcachedProcess {
      if (mc === undefined) throw new Error('memcached is not started (use it inside a test)');
      return mc;
    },
    get gate(): RunningProxy {
      if (gate === undefined) throw new Error('memgate is not started (use it inside a test)');
      return gate;
    },
  };
}
