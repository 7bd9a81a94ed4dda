import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StateLockedError, acquireStateLock, isProcessAlive, lockPathFor } from '../../../src/state/lock.js';

let dir: string;
let statePath: string;
const children: ChildProcess[] = [];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgate-lock-'));
  statePath = path.join(dir, 'state.json');
});

afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
});

/** The pid of a process that has already exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '']);
  const pid = r.pid;
  if (pid === undefined || isProcessAlive(pid)) throw new Error('could not get the pid of an exited process');
  return pid;
}

/** A process that stays alive until the test ends. */
async function livePid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', () => resolve());
    child.once('error', reject);
  });
  if (child.pid === undefined) throw new Error('no pid');
  return child.pid;
}

describe('acquireStateLock', () => {
  it('creates <state file>.lock holding the pid, and removes it on release', () => {
    const lock = acquireStateLock(statePath);
    expect(lock.lockPath).toBe(`${statePath}.lock`);
    expect(lockPathFor(statePath)).toBe(`${statePath}.lock`);
    expect(fs.readFileSync(lock.lockPath, 'utf8')).toBe(`${process.pid}\n`);
    lock.release();
    expect(fs.existsSync(lock.lockPath)).toBe(false);
    lock.release(); // twice is harmless
  });

  it('refuses a second lock from the same process, naming this pid', () => {
    const lock = acquireStateLock(statePath);
    try {
      expect(() => acquireStateLock(statePath)).toThrow(`state file is in use by memgate (pid ${process.pid})`);
      expect(() => acquireStateLock(statePath)).toThrow(StateLockedError);
    } finally {
      lock.release();
    }
    acquireStateLock(statePath).release(); // free again once released
  });

  it('refuses a lock held by another live process, naming its pid', async () => {
    const pid = await livePid();
    fs.writeFileSync(lockPathFor(statePath), `${pid}\n`);
    let caught: unknown;
    try {
      acquireStateLock(statePath);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(StateLockedError);
    const e = caught as StateLockedError;
    expect(e.pid).toBe(pid);
    expect(e.code).toBe('ERR_STATE_LOCKED');
    expect(e.message).toContain(`state file is in use by memgate (pid ${pid})`);
    expect(e.message).toContain(statePath);
    expect(fs.readFileSync(lockPathFor(statePath), 'utf8')).toBe(`${pid}\n`); // left alone
  });

  it('takes over a stale lock whose process has exited', () => {
    fs.writeFileSync(lockPathFor(statePath), `${deadPid()}\n`);
    const lock = acquireStateLock(statePath);
    expect(fs.readFileSync(lock.lockPath, 'utf8')).toBe(`${process.pid}\n`);
    lock.release();
    expect(fs.readdirSync(dir)).toEqual([]); // nothing left aside
  });

  it('takes over a lock with this pid left by an earlier run (pid 1 in a container), when this process holds none', () => {
    fs.writeFileSync(lockPathFor(statePath), `${process.pid}\n`);
    const lock = acquireStateLock(statePath);
    expect(fs.readFileSync(lock.lockPath, 'utf8')).toBe(`${process.pid}\n`);
    lock.release();
  });

  it.each([[''], ['garbage'], ['-5\n'], ['0\n']])('takes over a lock file with unusable content %j', (content) => {
    fs.writeFileSync(lockPathFor(statePath), content);
    const lock = acquireStateLock(statePath);
    expect(fs.readFileSync(lock.lockPath, 'utf8')).toBe(`${process.pid}\n`);
    lock.release();
  });

  it('does not remove a lock on release that another process has taken over meanwhile', async () => {
    const lock = acquireStateLock(statePath);
    const pid = await livePid();
    fs.writeFileSync(lock.lockPath, `${pid}\n`);
    lock.release();
    expect(fs.readFileSync(lockPathFor(statePath), 'utf8')).toBe(`${pid}\n`);
  });

  it('fails clearly when the directory does not exist', () => {
    const missing = path.join(dir, 'no-such-dir', 'state.json');
    expect(() => acquireStateLock(missing)).toThrow(`cannot create lock file ${missing}.lock`);
  });
});

describe('isProcessAlive', () => {
  it('knows this process, an exited one and nonsense pids', () => {
    expect(isProcessAlive(process.pid)).toBe(true);
    expect(isProcessAlive(deadPid())).toBe(false);
    expect(isProcessAlive(0)).toBe(false);
    expect(isProcessAlive(-1)).toBe(false);
    expect(isProcessAlive(Number.NaN)).toBe(false);
  });
});
