/**
 * The worker side of `--workers`: IpcPeer (calls, replies, timeouts) and
 * IpcStateStore (a copy of the primary's state, changed only by the primary),
 * over an in-memory pipe that keeps order and copies messages through JSON
 * like the real one.
 */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { IpcStateStore } from '../../../src/cluster/ipc-store.js';
import { IpcError, IpcPeer, type Channel, type PrimaryCalls, type WorkerCalls } from '../../../src/cluster/ipc.js';
import { StateError } from '../../../src/errors.js';
import { workerShare } from '../../../src/server/tenants.js';
import { freshTenantState, type TenantState } from '../../../src/state/store.js';

function pipe(): [Channel, Channel] {
  const ends = [new EventEmitter(), new EventEmitter()] as const;
  const end = (self: EventEmitter, other: EventEmitter): Channel => ({
    send: (message, callback) => {
      const copy: unknown = JSON.parse(JSON.stringify(message));
      setImmediate(() => {
        other.emit('message', copy);
        callback(null);
      });
    },
    onMessage: (l) => self.on('message', l),
    offMessage: (l) => self.off('message', l),
  });
  return [end(ends[0], ends[1]), end(ends[1], ends[0])];
}

function peers(): { worker: IpcPeer<WorkerCalls, PrimaryCalls>; primary: IpcPeer<PrimaryCalls, WorkerCalls> } {
  const [w, p] = pipe();
  return { worker: new IpcPeer(w, 'the memgate primary'), primary: new IpcPeer(p, 'worker 1') };
}

describe('IpcPeer', () => {
  it("answers a call with the other side's handler, and an error as an IpcError", async () => {
    const { worker, primary } = peers();
    primary.handle({
      'state.addTenants': () => null,
      'state.rotate': ({ tenant }) => {
        throw new Error(`unknown tenant "${tenant}"`);
      },
    });
    await expect(worker.call('state.addTenants', { tenants: ['a'] }, 1000)).resolves.toBeNull();
    const failed = worker.call('state.rotate', { tenant: 'nope' }, 1000);
    await expect(failed).rejects.toBeInstanceOf(IpcError);
    await expect(failed).rejects.toThrow('state.rotate: unknown tenant "nope"');
    await expect(worker.call('started', { pid: 1 }, 1000)).rejects.toThrow('no handler for "started"');
  });

  it('fails a call that gets no answer in time, naming the call and the other side', async () => {
    const { worker, primary } = peers();
    primary.handle({ 'state.addTenants': () => new Promise<null>(() => undefined) });
    await expect(worker.call('state.addTenants', { tenants: [] }, 30)).rejects.toThrow(
      'state.addTenants: no answer from the memgate primary in 30 ms',
    );
  });

  it('fails waiting calls at once when closed, and later calls too', async () => {
    const { worker, primary } = peers();
    primary.handle({ 'state.addTenants': () => new Promise<null>(() => undefined) });
    const waiting = worker.call('state.addTenants', { tenants: [] }, 10_000);
    worker.close('gone');
    await expect(waiting).rejects.toThrow('the channel to the memgate primary is gone');
    await expect(worker.call('state.addTenants', { tenants: [] }, 1000)).rejects.toThrow('is closed');
  });
});

/** A scripted primary holding the state; `rotate` tells the worker before it answers, like the real one. */
function fakePrimary(primary: IpcPeer<PrimaryCalls, WorkerCalls>, initial: Record<string, TenantState>) {
  const state = { ...initial };
  primary.handle({
    'state.open': () => state,
    'state.rotate': async ({ tenant }) => {
      const next = freshTenantState(state[tenant], Date.now());
      state[tenant] = next;
      await primary.call('state.changed', { tenant, state: next }, 1000);
      return next;
    },
    'state.schedule': async ({ tenant, atMs }) => {
      const prev = state[tenant];
      if (prev === undefined) throw new Error(`unknown tenant "${tenant}"`);
      const next = { ...prev, pendingAtMs: atMs };
      state[tenant] = next;
      await primary.call('state.changed', { tenant, state: next }, 1000);
      return next;
    },
  });
  return state;
}

describe('IpcStateStore', () => {
  it("opens with the primary's snapshot and serves generations from its copy", async () => {
    const { worker, primary } = peers();
    const shop = freshTenantState(undefined, 1000);
    fakePrimary(primary, { shop });
    const store = new IpcStateStore(worker);
    await store.open(['shop']);
    expect(store.generation('shop')).toBe(shop.generation);
    expect(store.get('shop')).toEqual(shop);
    expect([...store.list().keys()]).toEqual(['shop']);
    expect(() => store.generation('blog')).toThrow('unknown tenant "blog"');
  });

  it('a rotation resolves only after the new generation is in the copy and listeners were told', async () => {
    const { worker, primary } = peers();
    const shop = freshTenantState(undefined, 1000);
    fakePrimary(primary, { shop });
    const store = new IpcStateStore(worker);
    await store.open(['shop']);
    const seen: string[] = [];
    store.onChange((tenant, s) => seen.push(`${tenant}:${s.generation}`));
    const next = await store.rotate('shop');
    expect(next.generation).not.toBe(shop.generation);
    expect(store.generation('shop')).toBe(next.generation);
    expect(seen).toEqual([`shop:${next.generation}`]);
    const scheduled = await store.schedule('shop', 5000);
    expect(scheduled.pendingAtMs).toBe(5000);
    expect(store.get('shop')?.pendingAtMs).toBe(5000);
  });

  it('applies changes the primary sends on its own (a scheduled rotation firing)', async () => {
    const { worker, primary } = peers();
    fakePrimary(primary, { shop: freshTenantState(undefined, 1000) });
    const store = new IpcStateStore(worker);
    await store.open(['shop']);
    const fired = freshTenantState(store.get('shop'), 2000);
    await primary.call('state.changed', { tenant: 'shop', state: fired }, 1000);
    expect(store.generation('shop')).toBe(fired.generation);
  });

  it('turns a primary that does not answer into a StateError, and refuses changes before open', async () => {
    const { worker, primary } = peers();
    const hang = (): Promise<never> => new Promise(() => undefined);
    primary.handle({ 'state.open': hang, 'state.rotate': hang });
    const store = new IpcStateStore(worker, 30);
    await expect(store.rotate('shop')).rejects.toBeInstanceOf(StateError);
    const opening = store.open(['shop']);
    await expect(opening).rejects.toBeInstanceOf(StateError);
    await expect(opening).rejects.toThrow('cannot open through the memgate primary: state.open: no answer');
  });
});

describe('workerShare', () => {
  it.each([
    [100, 1, 100],
    [100, 2, 50],
    [101, 2, 51],
    [1, 4, 1],
    [3, 2, 2],
    [0, 4, 0],
  ])('splits %i between %i workers as %i each', (n, workers, each) => {
    expect(workerShare(n, workers)).toBe(each);
  });
});
