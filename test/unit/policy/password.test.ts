import { describe, expect, it } from 'vitest';
import { hashPassword, parsePasswordHash, verifyDummy, verifyPassword } from '../../../src/policy/password.js';

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
    expect(await verifyDummy(Buffer.from('anything'))).toBe(false);
  });
});
