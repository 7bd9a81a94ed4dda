/**
 * An advisory lock on a state file: `<state file>.lock`, created with O_EXCL,
 * holding the owner's pid and a newline.
 *
 * A running memgate holds it for as long as its FileStateStore is open, and
 * `memgate rotate` without a running memgate takes it for the length of one
 * update, so the two can never both write the state file.
 *
 * A lock whose pid is not alive is stale (its owner crashed) and is taken over.
 * A lock holding this process's own pid that this process does not hold is
 * stale too: in a container memgate is often pid 1 on every start, and the lock
 * left by the previous run must not block the next one.
 *
 * Everything here is synchronous: it runs at open/close and in the CLI, never
 * on the hot path.
 */
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { ProxyError, StateError } from '../errors.js';

/** Locks held by this process, by lock path: a second open in-process must fail, not take over its own lock. */
const heldLocks = new Set<string>();

/** Attempts at creating the lock before giving up when stale locks keep reappearing. */
const MAX_ATTEMPTS = 5;

/** Another live process (or this one, through another store) holds the state file. */
export class StateLockedError extends ProxyError {
  readonly pid: number;
  readonly lockPath: string;

  constructor(statePath: string, lockPath: string, pid: number) {
    super('ERR_STATE_LOCKED', `state file is in use by memgate (pid ${pid}): ${statePath} (lock ${lockPath})`);
    this.name = 'StateLockedError';
    this.pid = pid;
    this.lockPath = lockPath;
  }
}

export interface StateLock {
  readonly lockPath: string;
  /** Removes the lock file (if it still names this process). Safe to call twice. */
  release(): void;
}

export function lockPathFor(statePath: string): string {
  return `${statePath}.lock`;
}

/** True when a process with this pid exists (EPERM: it exists but belongs to another user). */
export function isProcessAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes the lock of `statePath` or throws StateLockedError naming the live
 * holder. Stale locks are taken over.
 */
export function acquireStateLock(statePath: string): StateLock {
  const lockPath = lockPathFor(statePath);
  if (heldLocks.has(lockPath)) throw new StateLockedError(statePath, lockPath, process.pid);

  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    let fd: number;
    try {
      fd = fs.openSync(lockPath, 'wx', 0o644); // O_CREAT | O_EXCL | O_WRONLY
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new StateError(`cannot create lock file ${lockPath}: ${(err as Error).message}`, {
          cause: err,
        });
      }
      const content = readLockFile(lockPath);
      if (content === null) continue; // removed meanwhile: try again
      const pid = parsePid(content);
      if (pid !== null && pid !== process.pid && isProcessAlive(pid)) {
        throw new StateLockedError(statePath, lockPath, pid);
      }
      // Stale: its process has exited, it is our own pid from an earlier run, or it was never written.
      removeStaleLock(lockPath, content);
      continue;
    }
    try {
      fs.writeSync(fd, `${process.pid}\n`);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    heldLocks.add(lockPath);
    return makeHandle(lockPath);
  }
  throw new StateError(`cannot take lock file ${lockPath}: it was replaced ${MAX_ATTEMPTS} times`);
}

function makeHandle(lockPath: string): StateLock {
  let held = true;
  return {
    lockPath,
    release() {
      if (!held) return;
      held = false;
      heldLocks.delete(lockPath);
      const content = readLockFile(lockPath);
      // Only remove a lock that is still ours (it could have been taken over as stale by mistake).
      if (content !== null && parsePid(content) === process.pid) unlinkQuietly(lockPath);
    },
  };
}

/** The lock file's text, or null when it does not exist. */
function readLockFile(lockPath: string): string | null {
  try {
    return fs.readFileSync(lockPath, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new StateError(`cannot read lock file ${lockPath}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/**
 * NOTE: an empty or garbled lock file is treated as stale. The owner writes its
 * pid in the same synchronous call that creates the file, so the only way to
 * observe an empty one for long is a crash (or power loss) between the two.
 */
function parsePid(content: string): number | null {
  const m = /^(\d{1,10})\n?$/.exec(content);
  if (m === null || m[1] === undefined) return null;
  const pid = Number(m[1]);
  return pid > 0 ? pid : null;
}

/**
 * Removes a stale lock without removing a fresh one that another process
 * created in the meantime: the lock is first renamed aside (atomic, so only
 * one taker gets it), and if what was renamed is not the stale content that
 * was judged, it is put back.
 */
function removeStaleLock(lockPath: string, staleContent: string): void {
  const aside = `${lockPath}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    fs.renameSync(lockPath, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // someone else took it away first
    throw new StateError(`cannot remove stale lock file ${lockPath}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  let moved: string | null = null;
  try {
    moved = fs.readFileSync(aside, 'utf8');
  } catch {
    moved = null;
  }
  if (moved !== null && moved !== staleContent) {
    // A live owner's lock was renamed by mistake: put it back unless yet another lock already exists.
    try {
      fs.linkSync(aside, lockPath);
    } catch {
      // EEXIST: a newer lock is in place; the loop in acquireStateLock will judge it.
    }
  }
  unlinkQuietly(aside);
}

function unlinkQuietly(p: string): void {
  try {
    fs.unlinkSync(p);
  } catch {
    // already gone
  }
}
