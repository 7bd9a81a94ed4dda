import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StateError } from '../../../src/errors.js';
import { FileStateStore, updateStateFileOffline } from '../../../src/state/file-store.js';
import { isGeneration } from '../../../src/state/generation.js';
import { LOCK_STALE_MS, lockPathFor, ownerPathFor } from '../../../src/state/lock.js';
import { StateCorruptError, freshTenantState, type TenantState } from '../../../src/state/store.js';

let dir: string;
let file: string;
const stores: FileStateStore[] = [];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgate-state-'));
  file = path.join(dir, 'state.json');
});

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function makeStore(opts: ConstructorParameters<typeof FileStateStore>[1] = {}, at = file): FileStateStore {
  const s = new FileStateStore(at, opts);
  stores.push(s);
  return s;
}

async function openStore(tenants: readonly string[], opts: ConstructorParameters<typeof FileStateStore>[1] = {}) {
  const s = makeStore(opts);
  await s.open(tenants);
  return s;
}

interface FileShape {
  version: number;
  tenants: Record<string, TenantState>;
}

function readFile(at = file): FileShape {
  return JSON.parse(fs.readFileSync(at, 'utf8')) as FileShape;
}

function writeFile(tenants: Record<string, TenantState>, at = file): void {
  fs.writeFileSync(at, JSON.stringify({ version: 1, tenants }));
}

function state(generation: string, rotatedAtMs = 1000, pendingAtMs: number | null = null): TenantState {
  return { generation, rotatedAtMs, pendingAtMs };
}

/** Polls `cond` every 10 ms; fails after `timeoutMs`. */
async function waitFor(cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(10);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function captureLogger(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'info' },
    { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) },
  );
  return { logger, lines };
}

function activeTimeouts(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

describe('FileStateStore: open', () => {
  it('gives every tenant a fresh generation when the file is missing, and writes the file', async () => {
    const s = await openStore(['shop', 'blog']);
    const shop = s.generation('shop');
    const blog = s.generation('blog');
    expect(isGeneration(shop)).toBe(true);
    expect(isGeneration(blog)).toBe(true);
    expect(shop).not.toBe(blog);
    const onDisk = readFile();
    expect(onDisk.version).toBe(1);
    expect(onDisk.tenants['shop']).toEqual({ generation: shop, rotatedAtMs: expect.any(Number), pendingAtMs: null });
    expect(onDisk.tenants['blog']?.generation).toBe(blog);
    expect([...s.list().keys()].sort()).toEqual(['blog', 'shop']);
  });

  it('never resets a missing file to a known value: two fresh directories give different generations', async () => {
    const first = await openStore(['shop']);
    const other = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'memgate-state-')), 'state.json');
    try {
      const second = makeStore({}, other);
      await second.open(['shop']);
      expect(second.generation('shop')).not.toBe(first.generation('shop'));
    } finally {
      for (const s of stores.splice(1)) await s.close();
      fs.rmSync(path.dirname(other), { recursive: true, force: true });
    }
  });

  it('keeps state across close and reopen', async () => {
    const a = await openStore(['shop', 'blog']);
    await a.rotate('shop');
    const before = a.list();
    await a.close();
    const b = await openStore(['shop', 'blog']);
    expect(b.list()).toEqual(before);
  });

  it('loads the generations of an existing file unchanged and adds missing tenants', async () => {
    writeFile({ shop: state('AAAAAAAA', 5) });
    const s = await openStore(['shop', 'blog']);
    expect(s.get('shop')).toEqual(state('AAAAAAAA', 5));
    expect(isGeneration(s.generation('blog'))).toBe(true);
    expect(readFile().tenants['blog']?.generation).toBe(s.generation('blog'));
  });

  it('never forgets a tenant that is no longer configured', async () => {
    writeFile({ shop: state('AAAAAAAA'), gone: state('BBBBBBBB') });
    const s = await openStore(['shop']);
    expect(s.get('gone')).toEqual(state('BBBBBBBB'));
    expect(readFile().tenants['gone']).toEqual(state('BBBBBBBB'));
  });

  it('removes temp files left by a crashed write', async () => {
    fs.writeFileSync(path.join(dir, 'state.json.tmp-99999-1'), '{"half');
    fs.writeFileSync(path.join(dir, 'other.json'), 'not ours');
    await openStore(['shop']);
    expect(fs.readdirSync(dir).sort()).toEqual([
      'other.json',
      'state.json',
      'state.json.lock',
      'state.json.lock-owner',
    ]);
  });

  it('refuses to open twice', async () => {
    const s = await openStore(['shop']);
    await expect(s.open(['shop'])).rejects.toThrow('already open');
  });
});

describe('FileStateStore: corrupt file', () => {
  const cases: { name: string; text: string; problem: string }[] = [
    { name: 'bad JSON', text: '{"version": 1, "tenants": {', problem: 'not valid JSON' },
    { name: 'an empty file', text: '', problem: 'not valid JSON' },
    { name: 'a JSON array', text: '[]', problem: 'top level is not an object' },
    { name: 'a wrong version', text: '{"version": 2, "tenants": {}}', problem: 'version is 2, expected 1' },
    { name: 'no tenants', text: '{"version": 1}', problem: 'tenants is not an object' },
    {
      name: 'a short generation',
      text: '{"version":1,"tenants":{"shop":{"generation":"abc","rotatedAtMs":0,"pendingAtMs":null}}}',
      problem: 'tenants.shop: generation is not an 8-character [0-9A-Za-z] token',
    },
    {
      name: 'a generation outside the alphabet',
      text: '{"version":1,"tenants":{"shop":{"generation":"abcd-fgh","rotatedAtMs":0,"pendingAtMs":null}}}',
      problem: 'tenants.shop: generation is not',
    },
    {
      name: 'a string rotatedAtMs',
      text: '{"version":1,"tenants":{"shop":{"generation":"abcdefgh","rotatedAtMs":"0","pendingAtMs":null}}}',
      problem: 'tenants.shop: rotatedAtMs',
    },
    {
      name: 'a missing pendingAtMs',
      text: '{"version":1,"tenants":{"shop":{"generation":"abcdefgh","rotatedAtMs":0}}}',
      problem: 'tenants.shop: pendingAtMs',
    },
    {
      name: 'a tenant that is not an object',
      text: '{"version":1,"tenants":{"shop":"abcdefgh"}}',
      problem: 'tenants.shop: is not an object',
    },
  ];

  it.each(cases)('rejects $name with StateCorruptError naming the file and the problem', async ({ text, problem }) => {
    fs.writeFileSync(file, text);
    const s = makeStore();
    const err: unknown = await s.open(['shop']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateCorruptError);
    const e = err as StateCorruptError;
    expect(e.code).toBe('ERR_STATE_CORRUPT');
    expect(e.file).toBe(file);
    expect(e.message).toContain(file);
    expect(e.message).toContain(problem);
    expect(fs.readFileSync(file, 'utf8')).toBe(text); // untouched
    expect(fs.existsSync(lockPathFor(file))).toBe(false); // lock released
  });

  it('with rotateAllOnCorrupt: fresh generations for every tenant, the corrupt file kept aside, a warning logged', async () => {
    const text =
      '{"version":1,"tenants":{"shop":{"generation":"AAAAAAAA","rotatedAtMs":0,"pendingAtMs":null},"blog":7}}';
    fs.writeFileSync(file, text);
    const { logger, lines } = captureLogger();
    const s = await openStore(['shop', 'blog'], { rotateAllOnCorrupt: true, logger });
    expect(isGeneration(s.generation('shop'))).toBe(true);
    expect(s.generation('shop')).not.toBe('AAAAAAAA');
    expect(isGeneration(s.generation('blog'))).toBe(true);
    expect(readFile().tenants['shop']?.generation).toBe(s.generation('shop'));

    const kept = fs.readdirSync(dir).filter((n) => /^state\.json\.corrupt-\d+$/.test(n));
    expect(kept).toHaveLength(1);
    expect(fs.readFileSync(path.join(dir, kept[0] ?? ''), 'utf8')).toBe(text);

    const warning = lines.find((l) => l['level'] === 40);
    expect(warning).toBeDefined();
    expect(String(warning?.['msg'])).toContain('corrupt');
    expect(warning?.['keptAs']).toBe(path.join(dir, kept[0] ?? ''));
  });
});

describe('FileStateStore: rotate', () => {
  it('gives 12 consecutive rotations 12 distinct generations, all different from the first', async () => {
    const s = await openStore(['shop']);
    const first = s.generation('shop');
    const seen = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const next = await s.rotate('shop');
      expect(isGeneration(next.generation)).toBe(true);
      expect(s.generation('shop')).toBe(next.generation);
      seen.add(next.generation);
    }
    expect(seen.size).toBe(12);
    expect(seen.has(first)).toBe(false);
  });

  it('has the rotation on disk when rotate() resolves', async () => {
    const s = await openStore(['shop', 'blog']);
    const blog = s.generation('blog');
    const before = Date.now();
    const next = await s.rotate('shop');
    const onDisk = readFile();
    expect(onDisk.tenants['shop']).toEqual(next);
    expect(onDisk.tenants['blog']?.generation).toBe(blog);
    expect(next.rotatedAtMs).toBeGreaterThanOrEqual(before);
    expect(next.pendingAtMs).toBeNull();
  });

  it('serves the old generation until the new one is on disk, then tells listeners', async () => {
    const s = await openStore(['shop']);
    const old = s.generation('shop');
    const seen: [string, TenantState][] = [];
    s.onChange((tenant, st) => seen.push([tenant, st]));
    const pending = s.rotate('shop');
    expect(s.generation('shop')).toBe(old);
    expect(seen).toEqual([]);
    const next = await pending;
    expect(s.generation('shop')).toBe(next.generation);
    expect(seen).toEqual([['shop', next]]);
  });

  it('coalesces changes made while a write is in flight into one following write', async () => {
    const s = await openStore(['shop', 'blog']);
    const writesBefore = s.writeCount;
    const results = await Promise.all([
      s.rotate('shop'),
      s.rotate('blog'),
      s.rotate('shop'),
      s.rotate('shop'),
      s.rotate('blog'),
    ]);
    // first write: the first rotation; second write: the four made while it was in flight
    expect(s.writeCount - writesBefore).toBe(2);
    expect(s.generation('shop')).toBe(results[3]?.generation);
    expect(s.generation('blog')).toBe(results[4]?.generation);
    expect(readFile().tenants['shop']?.generation).toBe(results[3]?.generation);
    expect(new Set(results.map((r) => r.generation)).size).toBe(5);
  });

  it('leaves no temp files behind', async () => {
    const s = await openStore(['shop']);
    for (let i = 0; i < 5; i++) await s.rotate('shop');
    expect(fs.readdirSync(dir).sort()).toEqual(['state.json', 'state.json.lock', 'state.json.lock-owner']);
  });

  it('rejects an unknown tenant; generation() throws for it', async () => {
    const s = await openStore(['shop']);
    expect(() => s.generation('nobody')).toThrow('unknown tenant "nobody"');
    expect(s.get('nobody')).toBeUndefined();
    await expect(s.rotate('nobody')).rejects.toThrow('unknown tenant "nobody"');
    await expect(s.schedule('nobody', Date.now() + 1000)).rejects.toThrow('unknown tenant "nobody"');
  });

  it('rejects changes before open and after close', async () => {
    const s = makeStore();
    await expect(s.rotate('shop')).rejects.toThrow('is not open');
    await s.open(['shop']);
    await s.close();
    await expect(s.rotate('shop')).rejects.toThrow('is not open');
  });

  it('rejects rotate() with StateError when the write fails, and keeps serving the durable generation', async () => {
    const { logger, lines } = captureLogger();
    const s = await openStore(['shop'], { logger });
    const old = s.generation('shop');
    fs.rmSync(dir, { recursive: true, force: true }); // every write now fails
    const err: unknown = await s.rotate('shop').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateError);
    expect((err as StateError).message).toContain(`cannot write state file ${file}`);
    expect(s.generation('shop')).toBe(old);
    expect(lines.some((l) => l['level'] === 50)).toBe(true);
  });
});

describe('FileStateStore: scheduled rotations', () => {
  it('rotates at the scheduled time and not before', async () => {
    const s = await openStore(['shop', 'blog']);
    const old = s.generation('shop');
    const blog = s.generation('blog');
    let changedAtMs = 0;
    s.onChange((tenant, st) => {
      if (tenant === 'shop' && st.generation !== old) changedAtMs = Date.now();
    });
    const atMs = Date.now() + 200;
    const pending = await s.schedule('shop', atMs);
    expect(pending.generation).toBe(old);
    expect(pending.pendingAtMs).toBe(atMs);
    expect(readFile().tenants['shop']?.pendingAtMs).toBe(atMs); // durable when schedule() resolves
    await sleep(100);
    expect(s.generation('shop')).toBe(old);
    await waitFor(() => s.generation('shop') !== old);
    expect(changedAtMs).toBeGreaterThanOrEqual(atMs);
    expect(s.get('shop')?.pendingAtMs).toBeNull();
    expect(s.get('shop')?.rotatedAtMs).toBeGreaterThanOrEqual(atMs);
    expect(readFile().tenants['shop']).toEqual(s.get('shop'));
    expect(s.generation('blog')).toBe(blog);
  });

  it('replaces a pending rotation with a later schedule', async () => {
    const s = await openStore(['shop']);
    const old = s.generation('shop');
    const rotations: string[] = [];
    s.onChange((_tenant, st) => {
      if (st.pendingAtMs === null) rotations.push(st.generation);
    });
    await s.schedule('shop', Date.now() + 200);
    const secondAtMs = Date.now() + 500;
    await s.schedule('shop', secondAtMs);
    expect(readFile().tenants['shop']?.pendingAtMs).toBe(secondAtMs);
    await sleep(350);
    expect(s.generation('shop')).toBe(old); // the first time passed without a rotation
    await waitFor(() => s.generation('shop') !== old);
    expect(Date.now()).toBeGreaterThanOrEqual(secondAtMs);
    await sleep(100);
    expect(rotations).toHaveLength(1);
  });

  it('replaces a pending rotation with an earlier schedule', async () => {
    const s = await openStore(['shop']);
    const old = s.generation('shop');
    await s.schedule('shop', Date.now() + 60_000);
    const atMs = Date.now() + 150;
    await s.schedule('shop', atMs);
    await waitFor(() => s.generation('shop') !== old, 2000);
    expect(s.get('shop')?.pendingAtMs).toBeNull();
  });

  it('cancels a pending rotation by rotating now', async () => {
    const s = await openStore(['shop']);
    await s.schedule('shop', Date.now() + 200);
    const now = await s.rotate('shop');
    expect(now.pendingAtMs).toBeNull();
    await sleep(350);
    expect(s.generation('shop')).toBe(now.generation);
  });

  it('fires each tenant at its own time', async () => {
    const s = await openStore(['shop', 'blog']);
    const shop = s.generation('shop');
    const blog = s.generation('blog');
    const shopAtMs = Date.now() + 150;
    const blogAtMs = Date.now() + 450;
    await s.schedule('blog', blogAtMs);
    await s.schedule('shop', shopAtMs);
    await waitFor(() => s.generation('shop') !== shop);
    expect(s.generation('blog')).toBe(blog);
    expect(Date.now()).toBeLessThan(blogAtMs);
    await waitFor(() => s.generation('blog') !== blog);
    expect(Date.now()).toBeGreaterThanOrEqual(blogAtMs);
  });

  it('applies an overdue pending rotation at open()', async () => {
    writeFile({ shop: state('AAAAAAAA', 5, Date.now() - 1000), blog: state('BBBBBBBB', 5) });
    const s = await openStore(['shop', 'blog']);
    expect(s.generation('shop')).not.toBe('AAAAAAAA');
    expect(s.get('shop')?.pendingAtMs).toBeNull();
    expect(readFile().tenants['shop']).toEqual(s.get('shop')); // durable before open() resolved
    expect(s.generation('blog')).toBe('BBBBBBBB');
  });

  it('keeps a pending rotation across a restart and performs it when due', async () => {
    const a = await openStore(['shop']);
    const old = a.generation('shop');
    const atMs = Date.now() + 300;
    await a.schedule('shop', atMs);
    await a.close();
    const b = await openStore(['shop']);
    expect(b.generation('shop')).toBe(old);
    expect(b.get('shop')?.pendingAtMs).toBe(atMs);
    await waitFor(() => b.generation('shop') !== old);
    expect(Date.now()).toBeGreaterThanOrEqual(atMs);
  });

  it('does not fire after close()', async () => {
    const s = await openStore(['shop']);
    const old = s.generation('shop');
    await s.schedule('shop', Date.now() + 100);
    await s.close();
    await sleep(250);
    expect(readFile().tenants['shop']?.generation).toBe(old);
  });

  it('keeps its timer unref()ed so it never holds the process open', async () => {
    const s = await openStore(['shop']);
    const before = activeTimeouts();
    await s.schedule('shop', Date.now() + 60_000);
    expect(activeTimeouts()).toBe(before);
  });

  it('rejects a non-finite time', async () => {
    const s = await openStore(['shop']);
    await expect(s.schedule('shop', Number.NaN)).rejects.toThrow(TypeError);
  });
});

describe('FileStateStore: rotationsApplied (memgate_rotations_total)', () => {
  it('counts rotations when they are made: now, a scheduled one when it fires, an overdue one at open', async () => {
    const s = await openStore(['shop', 'blog']);
    expect(s.rotationsApplied).toBe(0);
    await s.rotate('shop');
    expect(s.rotationsApplied).toBe(1);
    await s.schedule('shop', Date.now() + 60_000); // replaced below: never fires
    await s.schedule('shop', Date.now() + 100);
    await s.addTenants(['news']);
    expect(s.rotationsApplied).toBe(1);
    const fired = s.generation('shop');
    for (let i = 0; i < 100 && s.generation('shop') === fired; i++) await sleep(20);
    expect(s.generation('shop')).not.toBe(fired);
    expect(s.rotationsApplied).toBe(2);
    await s.schedule('blog', Date.now() + 50);
    await s.close();
    await sleep(100);
    const reopened = await openStore(['shop', 'blog']);
    expect(reopened.rotationsApplied).toBe(1); // blog's, overdue at open
  });
});

describe('FileStateStore: addTenants', () => {
  it('gives new tenants fresh generations, durably, and leaves existing ones alone', async () => {
    const s = await openStore(['shop']);
    const shop = s.generation('shop');
    await s.addTenants(['shop', 'blog']);
    expect(s.generation('shop')).toBe(shop);
    expect(isGeneration(s.generation('blog'))).toBe(true);
    expect(readFile().tenants['blog']?.generation).toBe(s.generation('blog'));
  });

  it('does not write when nothing is new', async () => {
    const s = await openStore(['shop']);
    const writes = s.writeCount;
    await s.addTenants(['shop']);
    expect(s.writeCount).toBe(writes);
  });
});

describe('FileStateStore: lock', () => {
  it('holds <file>.lock while open and releases it on close', async () => {
    const s = await openStore(['shop']);
    expect(fs.statSync(lockPathFor(file)).isDirectory()).toBe(true);
    expect(fs.readFileSync(ownerPathFor(file), 'utf8')).toContain(`pid ${process.pid} on host`);
    await s.close();
    expect(fs.existsSync(lockPathFor(file))).toBe(false);
    expect(fs.existsSync(ownerPathFor(file))).toBe(false);
  });

  it('fails a second open of the same file from the same process, clearly', async () => {
    await openStore(['shop']);
    const second = makeStore({ waitForStaleLock: false });
    await expect(second.open(['shop'])).rejects.toThrow(
      `state file ${file} is in use by another memgate (pid ${process.pid}`,
    );
  });

  it('takes over a stale lock left by a process that crashed', async () => {
    fs.mkdirSync(lockPathFor(file));
    const past = new Date(Date.now() - LOCK_STALE_MS - 2000);
    fs.utimesSync(lockPathFor(file), past, past);
    const s = await openStore(['shop']);
    expect(isGeneration(s.generation('shop'))).toBe(true);
    expect(fs.statSync(lockPathFor(file)).mtimeMs).toBeGreaterThan(past.getTime() + 1000);
  });

  it('waits at open() for a held lock that nobody refreshes, then takes it over (a restart after kill -9)', async () => {
    const { logger, lines } = captureLogger();
    fs.mkdirSync(lockPathFor(file));
    const past = new Date(Date.now() - LOCK_STALE_MS + 1000); // stale in about a second
    fs.utimesSync(lockPathFor(file), past, past);
    const s = await openStore(['shop'], { logger });
    expect(isGeneration(s.generation('shop'))).toBe(true);
    expect(lines.map((l) => l['msg'])).toContain(
      'state file lock is held: waiting to see whether its holder is alive (it refreshes it) or gone (it turns stale)',
    );
  });

  it('writes nothing more once its lock is lost: every later change fails', async () => {
    const s = await openStore(['shop']);
    const before = s.generation('shop');
    (s as unknown as { lockWasLost(err: StateError): void }).lockWasLost(new StateError('lost the lock (test)'));
    await expect(s.rotate('shop')).rejects.toThrow('lost the lock (test)');
    expect(s.generation('shop')).toBe(before);
    expect(readFile().tenants['shop']?.generation).toBe(before);
  });
});

describe('updateStateFileOffline', () => {
  it('refuses while a store has the file open', async () => {
    const s = await openStore(['shop']);
    const old = s.generation('shop');
    await expect(updateStateFileOffline(file, () => undefined)).rejects.toThrow(
      `state file ${file} is in use by another memgate (pid ${process.pid}`,
    );
    expect(readFile().tenants['shop']?.generation).toBe(old);
  });

  it('rotates a tenant when no store is open; the next open serves it', async () => {
    const a = await openStore(['shop', 'blog']);
    const old = a.generation('shop');
    const blog = a.generation('blog');
    await a.close();
    const written = await updateStateFileOffline(file, (tenants) => {
      tenants.set('shop', freshTenantState(tenants.get('shop'), Date.now()));
    });
    const next = written.get('shop')?.generation;
    expect(next).not.toBe(old);
    expect(readFile().tenants['shop']?.generation).toBe(next);
    expect(fs.existsSync(lockPathFor(file))).toBe(false);
    const b = await openStore(['shop', 'blog']);
    expect(b.generation('shop')).toBe(next);
    expect(b.generation('blog')).toBe(blog);
  });

  it('creates the file when it is missing', async () => {
    await updateStateFileOffline(file, (tenants) => tenants.set('shop', freshTenantState(undefined, 1)));
    expect(isGeneration(readFile().tenants['shop']?.generation)).toBe(true);
  });

  it('refuses a corrupt file, and a mutation that produces an invalid state', async () => {
    fs.writeFileSync(file, 'nope');
    await expect(updateStateFileOffline(file, () => undefined)).rejects.toThrow(StateCorruptError);
    fs.rmSync(file);
    await expect(updateStateFileOffline(file, (tenants) => tenants.set('shop', state('short')))).rejects.toThrow(
      'tenant "shop": generation is not',
    );
    expect(fs.existsSync(file)).toBe(false);
    expect(fs.existsSync(lockPathFor(file))).toBe(false);
  });
});
