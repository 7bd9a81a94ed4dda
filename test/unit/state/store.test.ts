import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ProxyError } from '../../../src/errors.js';
import { FileStateStore } from '../../../src/state/file-store.js';
import { RedisStateStore } from '../../../src/state/redis-store.js';
import { isGeneration } from '../../../src/state/generation.js';
import {
  StateCorruptError,
  freshTenantState,
  openStateStore,
  parseStateUrl,
  tenantStateProblem,
} from '../../../src/state/store.js';

describe('openStateStore', () => {
  it('opens "file:PATH" as a FileStateStore, PATH relative to the working directory', () => {
    const s = openStateStore('file:./memgate-state.json', {});
    expect(s).toBeInstanceOf(FileStateStore);
    expect((s as FileStateStore).filePath).toBe(path.resolve(process.cwd(), 'memgate-state.json'));
  });

  it('accepts absolute paths and file:// URLs', () => {
    const abs = path.join(os.tmpdir(), 'memgate state.json');
    expect(parseStateUrl(`file:${abs}`)).toEqual({ kind: 'file', path: abs });
    expect(parseStateUrl(pathToFileURL(abs).href)).toEqual({ kind: 'file', path: abs });
  });

  it('does no I/O until open()', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgate-store-'));
    try {
      openStateStore(`file:${path.join(dir, 'state.json')}`, {});
      expect(fs.readdirSync(dir)).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('opens redis:// and rediss:// as a RedisStateStore, without I/O and without the password in its name', () => {
    const s = openStateStore({ url: 'redis://u:s3cret@127.0.0.1:1/0', keyPrefix: 'x:' }, {});
    expect(s).toBeInstanceOf(RedisStateStore);
    expect((s as RedisStateStore).where).toBe('redis://u:***@127.0.0.1:1/0');
    expect((s as RedisStateStore).keyPrefix).toBe('x:');
    expect(parseStateUrl('rediss://h:6380/1')).toEqual({ kind: 'redis', url: 'rediss://h:6380/1' });
  });

  it.each(['http://x/state.json', './state.json', 'file:'])('refuses the state url %j', (url) => {
    expect(() => openStateStore(url, {})).toThrow(/state url/);
  });
});

describe('StateCorruptError', () => {
  it('is a ProxyError with code ERR_STATE_CORRUPT that names the file and the problem', () => {
    const e = new StateCorruptError('/var/lib/memgate/state.json', 'not valid JSON');
    expect(e).toBeInstanceOf(ProxyError);
    expect(e.code).toBe('ERR_STATE_CORRUPT');
    expect(e.name).toBe('StateCorruptError');
    expect(e.file).toBe('/var/lib/memgate/state.json');
    expect(e.problem).toBe('not valid JSON');
    expect(e.message).toBe('state file /var/lib/memgate/state.json is corrupt: not valid JSON');
  });
});

describe('freshTenantState', () => {
  it('is a new generation with no pending rotation, stamped with the given time', () => {
    const s = freshTenantState(undefined, 1234);
    expect(isGeneration(s.generation)).toBe(true);
    expect(s).toEqual({ generation: s.generation, rotatedAtMs: 1234, pendingAtMs: null });
    expect(Object.isFrozen(s)).toBe(true);
  });

  it('never repeats the previous generation', () => {
    let prev = freshTenantState(undefined, 0);
    for (let i = 0; i < 1000; i++) {
      const next = freshTenantState({ ...prev, pendingAtMs: 5 }, i);
      expect(next.generation).not.toBe(prev.generation);
      expect(next.pendingAtMs).toBeNull();
      prev = next;
    }
  });
});

describe('tenantStateProblem', () => {
  it.each([
    [{ generation: 'abcdefgh', rotatedAtMs: 0, pendingAtMs: null }, null],
    [{ generation: 'abcdefgh', rotatedAtMs: 1, pendingAtMs: 2, extra: true }, null],
    [null, 'is not an object'],
    [[], 'is not an object'],
    [
      { generation: 'abcdefg', rotatedAtMs: 0, pendingAtMs: null },
      'generation is not an 8-character [0-9A-Za-z] token',
    ],
    [{ generation: 'abcdefgh', rotatedAtMs: -1, pendingAtMs: null }, 'rotatedAtMs is not a non-negative number'],
    [{ generation: 'abcdefgh', pendingAtMs: null }, 'rotatedAtMs is not a non-negative number'],
    [{ generation: 'abcdefgh', rotatedAtMs: 0, pendingAtMs: '5' }, 'pendingAtMs is neither null nor a number'],
    [{ generation: 'abcdefgh', rotatedAtMs: 0 }, 'pendingAtMs is neither null nor a number'],
  ])('tenantStateProblem(%j) is %j', (value, problem) => {
    expect(tenantStateProblem(value)).toBe(problem);
  });
});
