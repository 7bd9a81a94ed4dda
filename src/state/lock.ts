/**
 * The lock of a state file: `<state file>.lock`, a directory made and kept
 * fresh by proper-lockfile, beside `<state file>.lock-owner`, a one-line note
 * of who holds it (for the error message only).
 *
 * A running memgate holds it for as long as its FileStateStore is open
 * (`memgate serve`: the whole life of the process; with --workers, the
 * primary), and `memgate rotate` without a running memgate takes it for the
 * length of one update, so two processes can never both write the state file.
 *
 * The holder touches the lock's mtime every LOCK_REFRESH_MS. A lock that has
 * not been touched for LOCK_STALE_MS is stale (its holder crashed or hangs)
 * and the next taker removes it. Pids play no part: two containers on one
 * volume are both pid 1, and a pid says nothing about another pid namespace.
 * The lock is removed on release, and by proper-lockfile's exit hook when the
 * process exits without releasing it.
 *
 * If the holder loses the lock (it was removed, or taken over after the holder
 * could not refresh it for LOCK_STALE_MS), `onLost` is called; the store then
 * stops writing the file.
 *
 * This runs at open/close and in the CLI (and the refresh on a timer), never on
 * the hot path.
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import lockfile from 'proper-lockfile';
import { ProxyError, StateError } from '../errors.js';

/** A lock whose mtime is older than this is stale and taken over (proper-lockfile's `stale`). */
export const LOCK_STALE_MS = 10_000;
/** How often the holder touches the lock (proper-lockfile's `update`). */
export const LOCK_REFRESH_MS = 5_000;

/** A live process (this one, or another anywhere on the volume) holds the state file. */
export class StateLockedError extends ProxyError {
  readonly lockPath: string;
  /** the holder's note (`pid 1 on host web-2 since …`), or null when there is none */
  readonly holder: string | null;

  constructor(statePath: string, lockPath: string, holder: string | null, refreshedAgoMs: number | null) {
    const who = holder === null ? 'another memgate' : `another memgate (${holder})`;
    const fresh = refreshedAgoMs === null ? '' : `, refreshed ${formatSeconds(refreshedAgoMs)} ago`;
    super(
      'ERR_STATE_LOCKED',
      `state file ${statePath} is in use by ${who}: its lock ${lockPath} is held${fresh}; ` +
        `a lock its holder stops refreshing (a crash) is taken over after ${formatSeconds(LOCK_STALE_MS)}`,
    );
    this.name = 'StateLockedError';
    this.lockPath = lockPath;
    this.holder = holder;
  }
}

export interface StateLock {
  readonly lockPath: string;
  /** Removes the lock (when it is still this process's). Safe to call twice. */
  release(): Promise<void>;
}

export interface StateLockOptions {
  /** Called once if the lock is lost while held (removed, or taken over as stale). */
  readonly onLost?: (err: StateError) => void;
  /**
   * When the lock is held: watch it instead of failing at once. If its holder
   * refreshes it, the holder is alive and this fails then (within about
   * LOCK_REFRESH_MS); if nobody does, it turns stale and is taken over (within
   * LOCK_STALE_MS). So a memgate restarted after a crash starts by itself.
   * `memgate serve` waits; `memgate rotate` does not.
   */
  readonly waitForStale?: boolean;
  /** Called once when waiting starts, with the lock's age in ms. */
  readonly onWait?: (lockPath: string, ageMs: number) => void;
}

/** Pause between two looks at a held lock while waiting. */
const WAIT_POLL_MS = 250;

export function lockPathFor(statePath: string): string {
  return `${statePath}.lock`;
}

export function ownerPathFor(statePath: string): string {
  return `${statePath}.lock-owner`;
}

/**
 * Takes the lock of `statePath` (an absolute path) or throws StateLockedError
 * naming the holder. A stale lock is taken over.
 */
export async function acquireStateLock(statePath: string, opts: StateLockOptions = {}): Promise<StateLock> {
  const lockPath = lockPathFor(statePath);
  let lost = false;
  const options: lockfile.LockOptions = {
    lockfilePath: lockPath,
    realpath: false, // the state file need not exist yet
    stale: LOCK_STALE_MS,
    update: LOCK_REFRESH_MS,
    retries: 0,
    onCompromised: (err) => {
      lost = true;
      opts.onLost?.(
        new StateError(`lost the lock ${lockPath} of state file ${statePath}: ${err.message}`, { cause: err }),
      );
    },
  };
  // bounded: a stale lock is taken over within LOCK_STALE_MS of its first sight; the rest is slack for a slow disk
  const deadline = Date.now() + LOCK_STALE_MS + LOCK_REFRESH_MS;
  let seenMtimeMs: number | null = null;
  let release: () => Promise<void>;
  for (;;) {
    try {
      release = await lockfile.lock(statePath, options);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ELOCKED' || opts.waitForStale !== true) {
        throw await lockFailure(statePath, lockPath, err);
      }
      const st = await fsp.stat(lockPath).catch(() => null); // null: just removed, try again
      if (st !== null && seenMtimeMs === null) {
        seenMtimeMs = st.mtimeMs;
        opts.onWait?.(lockPath, Math.max(0, Date.now() - st.mtimeMs));
      } else if ((st !== null && st.mtimeMs !== seenMtimeMs) || Date.now() > deadline) {
        // refreshed meanwhile: its holder is alive (or another process took it over)
        throw await lockFailure(statePath, lockPath, err);
      }
      await new Promise((r) => setTimeout(r, WAIT_POLL_MS));
    }
  }
  await writeOwner(statePath);
  let held = true;
  return {
    lockPath,
    async release() {
      if (!held) return;
      held = false;
      if (lost) return; // someone else's lock now (or none): leave it and its owner note alone
      await fsp.unlink(ownerPathFor(statePath)).catch(() => undefined);
      await release().catch(() => undefined); // ERELEASED: it was lost just now
    },
  };
}

/** The error for a lock that could not be taken: held by a live process, or some I/O failure. */
async function lockFailure(statePath: string, lockPath: string, err: unknown): Promise<Error> {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ELOCKED') {
    const st = await fsp.stat(lockPath).catch(() => null);
    const refreshedAgoMs = st === null ? null : Math.max(0, Date.now() - st.mtimeMs);
    return new StateLockedError(statePath, lockPath, await readOwner(statePath), refreshedAgoMs);
  }
  if (code === 'ENOTDIR') {
    // A plain file: the pid lock file of an earlier memgate build. Whether its pid is alive says nothing across containers.
    return new StateError(
      `cannot take lock ${lockPath} of state file ${statePath}: it is a file left by an older memgate; ` +
        'remove it if no memgate uses this state file',
      { cause: err },
    );
  }
  return new StateError(`cannot create lock file ${lockPath}: ${(err as Error).message}`, { cause: err });
}

/** `pid 1 on host web-2 since 2026-12-03T10:52:31.000Z`, written atomically (temp + rename). */
async function writeOwner(statePath: string): Promise<void> {
  const owner = ownerPathFor(statePath);
  const tmp = `${owner}.tmp-${process.pid}`;
  const text = `pid ${process.pid} on host ${os.hostname()} since ${new Date().toISOString()}\n`;
  try {
    await fsp.writeFile(tmp, text, { mode: 0o644 });
    await fsp.rename(tmp, owner);
  } catch {
    // only the error message of a second memgate would miss it
    await fsp.unlink(tmp).catch(() => undefined);
  }
}

async function readOwner(statePath: string): Promise<string | null> {
  try {
    const text = (await fsp.readFile(ownerPathFor(statePath), 'utf8')).trim();
    // one printable line only: it goes into a one-line error message
    return /^[\x20-\x7e]{1,200}$/.test(text) ? text : null;
  } catch {
    return null;
  }
}

function formatSeconds(ms: number): string {
  return `${Math.round(ms / 1000)}s`;
}
