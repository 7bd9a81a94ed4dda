import { describe, expect, it } from 'vitest';
import {
  DummyHashes,
  hashPassword,
  parsePasswordHash,
  verifyDummy,
  verifyPassword,
  type ParsedHash,
} from '../../../src/policy/password.js';

function parsed(text: string): ParsedHash {
  const h = parsePasswordHash(text);
  if (typeof h === 'string') throw new Error(h);
  return h;
}

function costOf(h: ParsedHash): [number, number, number, number] {
  return [h.logN, h.r, h.p, h.key.length];
}

describe('password hashes', () => {
  it('verifies the password it hashed and refuses any other', async () => {
    const hash = await hashPassword('correct horse');
    expect(hash).toMatch(/^scrypt\$15\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    const parsed = parsePasswordHash(hash);
    if (typeof parsed === 'string') throw new Error(parsed);
    expect(await verifyPassword(parsed, Buffer.from('correct horse'))).toBe(true);
    expect(await verifyPassword(parsed, Buffer.from('correct horsE'))).toBe(false);
    expect(await verifyPassword(parsed, Buffer.alloc(0))).toBe(false);
  });

  it('salts every hash', async () => {
    expect(await hashPassword('same')).not.toBe(await hashPassword('same'));
  });

  it('names the problem with a hash that is not one, never accepting a plain password', () => {
    expect(parsePasswordHash('hunter2')).toMatch(/never a plain password/);
    expect(parsePasswordHash('scrypt$99$8$1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA==')).toMatch(/log2\(N\)/);
    expect(parsePasswordHash('scrypt$15$8$1$AA==$AAAAAAAAAAAAAAAAAAAAAA==')).toMatch(/salt/);
  });

  it('fails a dummy verification', async () => {
    const dummy = new DummyHashes([]).for(Buffer.from('nobody'));
    expect(dummy.logN).toBe(15);
    expect(await verifyDummy(dummy, Buffer.from('anything'))).toBe(false);
  });

  it('gives an unknown user the cost of a configured credential, the same one every time', async () => {
    const cheap = parsed(await hashPassword('a', { logN: 10, r: 8, p: 1 }));
    const other = parsed(await hashPassword('b', { logN: 11, r: 4, p: 1 }));
    const only = new DummyHashes([cheap]);
    expect(costOf(only.for(Buffer.from('nobody')))).toEqual(costOf(cheap));
    const two = new DummyHashes([cheap, other, cheap]);
    const seen = new Set<string>();
    for (let i = 0; i < 64; i++) {
      const name = Buffer.from(`user${i}`);
      const d = two.for(name);
      expect(two.for(name)).toBe(d);
      seen.add(JSON.stringify(costOf(d)));
    }
    expect(seen).toEqual(new Set([JSON.stringify(costOf(cheap)), JSON.stringify(costOf(other))]));
  });
});
