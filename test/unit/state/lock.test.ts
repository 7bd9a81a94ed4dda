import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  LOCK_REFRESH_MS,
  LOCK_STALE_MS,
  StateLockedError,
  acquireStateLock,
  lockPathFor,
  ownerPathFor,
} from '../../../src/state/lock.js';
import type { StateError } from '../../../src/errors.js';

let dir: string;
let statePath: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgate-lock-'));
  statePath = path.join(dir, 'state.json');
});

afterEach(() => {
  vi.useRealTimers();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Sets a path's mtime `agoMs` into the past (a holder that stopped refreshing that long ago). */
function age(p: string, agoMs: number): void {
  const t = new Date(Date.now() - agoMs);
  fs.utimesSync(p, t, t);
}

async function lockError(p: string): Promise<Error> {
  try {
    const lock = await acquireStateLock(p);
    await lock.release();
  } catch (err) {
    return err as Error;
  }
  throw new Error('the lock was taken');
}

/** Polls `cond` between event-loop turns (setTimeout may be faked) for at most 3 s of real time. */
async function eventually(cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 3000;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setImmediate(r));
  expect(cond()).toBe(true);
}

describe('acquireStateLock', () => {
  it('makes <state file>.lock and a note of its holder, and removes both on release', async () => {
    const lock = await acquireStateLock(statePath);
    expect(lock.lockPath).toBe(`${statePath}.lock`);
    expect(lockPathFor(statePath)).toBe(`${statePath}.lock`);
    expect(fs.statSync(lock.lockPath).isDirectory()).toBe(true);
    expect(fs.readFileSync(ownerPathFor(statePath), 'utf8')).toMatch(
      new RegExp(`^pid ${process.pid} on host ${os.hostname()} since \\d{4}-\\d\\d-\\d\\dT[0-9:.]+Z\\n$`),
    );
    await lock.release();
    expect(fs.readdirSync(dir)).toEqual([]);
    await lock.release(); // twice is harmless
  });

  it('refuses a second lock, in one line naming the state file, the lock, its holder and the stale period', async () => {
    const lock = await acquireStateLock(statePath);
    try {
      const err = await lockError(statePath);
      expect(err).toBeInstanceOf(StateLockedError);
      expect((err as StateLockedError).code).toBe('ERR_STATE_LOCKED');
      expect(err.message).toBe(
        `state file ${statePath} is in use by another memgate (pid ${process.pid} on host ${os.hostname()} since ` +
          `${(err as StateLockedError).holder?.split(' since ')[1]}): its lock ${statePath}.lock is held, refreshed 0s ago; ` +
          `a lock its holder stops refreshing (a crash) is taken over after ${LOCK_STALE_MS / 1000}s`,
      );
    } finally {
      await lock.release();
    }
    await (await acquireStateLock(statePath)).release(); // free again once released
  });

  it('refuses a fresh lock whatever pid made it, and leaves it alone', async () => {
    // a lock made by a process in another pid namespace: no pid to judge, no note
    fs.mkdirSync(lockPathFor(statePath));
    const err = await lockError(statePath);
    expect(err).toBeInstanceOf(StateLockedError);
    expect(err.message).toContain(`state file ${statePath} is in use by another memgate: its lock`);
    expect(fs.statSync(lockPathFor(statePath)).isDirectory()).toBe(true);
  });

  it('takes over a lock its holder stopped refreshing more than the stale period ago (a crash)', async () => {
    fs.mkdirSync(lockPathFor(statePath));
    fs.writeFileSync(ownerPathFor(statePath), 'pid 1 on host gone since 2026-01-01T00:00:00.000Z\n');
    age(lockPathFor(statePath), LOCK_STALE_MS - 2000);
    expect(await lockError(statePath)).toBeInstanceOf(StateLockedError); // not stale yet
    age(lockPathFor(statePath), LOCK_STALE_MS + 2000);
    const lock = await acquireStateLock(statePath);
    expect(fs.readFileSync(ownerPathFor(statePath), 'utf8')).toContain(`pid ${process.pid} on host`);
    await lock.release();
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('when told to wait: fails once the holder refreshes its lock (it is alive), naming it', async () => {
    const lock = await acquireStateLock(statePath);
    const waits: number[] = [];
    try {
      let err: unknown;
      try {
        await acquireStateLock(statePath, { waitForStale: true, onWait: (_p, ageMs) => waits.push(ageMs) });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(StateLockedError);
      expect((err as Error).message).toContain(`(pid ${process.pid} on host`);
      expect(waits).toHaveLength(1);
    } finally {
      await lock.release();
    }
  });

  it('when told to wait: takes over a held lock that turns stale meanwhile', async () => {
    fs.mkdirSync(lockPathFor(statePath));
    age(lockPathFor(statePath), LOCK_STALE_MS - 1000);
    const lock = await acquireStateLock(statePath, { waitForStale: true });
    expect(fs.readFileSync(ownerPathFor(statePath), 'utf8')).toContain(`pid ${process.pid} on host`);
    await lock.release();
  });

  it('refreshes the lock while held, so it never turns stale', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout'] });
    const lock = await acquireStateLock(statePath);
    const first = fs.statSync(lock.lockPath).mtimeMs;
    await new Promise((r) => setImmediate(r));
    vi.advanceTimersByTime(LOCK_REFRESH_MS);
    await eventually(() => fs.statSync(lock.lockPath).mtimeMs > first);
    await lock.release();
  });

  it('tells its holder when the lock is lost (removed or taken over), and then leaves the new lock alone', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout'] });
    const lost: StateError[] = [];
    const lock = await acquireStateLock(statePath, { onLost: (err) => lost.push(err) });
    fs.rmdirSync(lock.lockPath); // someone removed it by hand
    fs.mkdirSync(lock.lockPath); // and another memgate took it
    vi.advanceTimersByTime(LOCK_REFRESH_MS);
    await eventually(() => lost.length === 1);
    expect(lost[0]?.message).toContain(`lost the lock ${statePath}.lock of state file ${statePath}`);
    await lock.release();
    expect(fs.statSync(lock.lockPath).isDirectory()).toBe(true); // the other one's lock stays
  });

  it('refuses to judge a pid lock file of an earlier memgate build', async () => {
    fs.writeFileSync(lockPathFor(statePath), '1\n');
    age(lockPathFor(statePath), LOCK_STALE_MS + 2000);
    const err = await lockError(statePath);
    expect(err.message).toBe(
      `cannot take lock ${statePath}.lock of state file ${statePath}: it is a file left by an older memgate; ` +
        'remove it if no memgate uses this state file',
    );
    expect(fs.readFileSync(lockPathFor(statePath), 'utf8')).toBe('1\n');
  });

  it('fails clearly when the directory does not exist', async () => {
    const missing = path.join(dir, 'no-such-dir', 'state.json');
    expect((await lockError(missing)).message).toContain(`cannot create lock file ${missing}.lock`);
  });
});
