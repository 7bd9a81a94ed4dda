import { describe, expect, it } from 'vitest';
import {
  SASL_MECHANISMS,
  SASL_PLAIN_MAX_BYTES,
  isPlainMechanism,
  parseSaslPlain,
} from '../../../../src/protocol/binary/sasl.js';

const s = (v: string): Buffer => Buffer.from(v, 'latin1');
const fields = (c: ReturnType<typeof parseSaslPlain>) =>
  c === null
    ? null
    : {
        authzid: c.authzid.toString('latin1'),
        user: c.user.toString('latin1'),
        password: c.password.toString('latin1'),
      };

describe('parseSaslPlain', () => {
  const table: [string, string | null, { authzid: string; user: string; password: string } | null][] = [
    ['reads user and password without an authzid', '\0shop\0s3cret', { authzid: '', user: 'shop', password: 's3cret' }],
    ['reads an authzid', 'admin\0shop\0pw', { authzid: 'admin', user: 'shop', password: 'pw' }],
    [
      'keeps spaces and bytes over 0x7f in the password',
      '\0u\0a b\xff',
      { authzid: '', user: 'u', password: 'a b\xff' },
    ],
    ['refuses a message without NULs', 'shop s3cret', null],
    ['refuses a message with one NUL', 'shop\0s3cret', null],
    ['refuses a third NUL', '\0shop\0pw\0', null],
    ['refuses an empty user', '\0\0pw', null],
    ['refuses an empty password', '\0shop\0', null],
    ['refuses an empty message', '', null],
  ];
  for (const [name, input, expected] of table) {
    it(name, () => expect(fields(parseSaslPlain(input === null ? null : s(input)))).toEqual(expected));
  }

  it('refuses null data', () => expect(parseSaslPlain(null)).toBeNull());

  it('reads a message that came as several slices', () => {
    expect(fields(parseSaslPlain([s('\0sh'), s('op\0'), s('pw')]))).toEqual({
      authzid: '',
      user: 'shop',
      password: 'pw',
    });
    expect(fields(parseSaslPlain([s('\0shop\0pw')]))).toEqual({ authzid: '', user: 'shop', password: 'pw' });
  });

  it('takes fields of 255 bytes and no more (RFC 4616)', () => {
    const f255 = 'x'.repeat(255);
    const f256 = 'x'.repeat(256);
    expect(parseSaslPlain(s(`${f255}\0${f255}\0${f255}`))).not.toBeNull();
    expect(s(`${f255}\0${f255}\0${f255}`).length).toBe(SASL_PLAIN_MAX_BYTES);
    expect(parseSaslPlain(s(`${f256}\0u\0p`))).toBeNull();
    expect(parseSaslPlain(s(`\0${f256}\0p`))).toBeNull();
    expect(parseSaslPlain(s(`\0u\0${f256}`))).toBeNull();
  });

  it('refuses more than SASL_PLAIN_MAX_BYTES before looking at it, whole or in slices', () => {
    const big = Buffer.alloc(SASL_PLAIN_MAX_BYTES + 1, 0x61);
    expect(parseSaslPlain(big)).toBeNull();
    expect(parseSaslPlain([big.subarray(0, 10), big.subarray(10)])).toBeNull();
  });

  it('returns slices of the message, not copies', () => {
    const msg = s('\0shop\0pw');
    const c = parseSaslPlain(msg);
    expect(c?.user.buffer).toBe(msg.buffer);
  });
});

describe('mechanisms', () => {
  it('offers PLAIN only', () => expect(SASL_MECHANISMS).toBe('PLAIN'));

  it('recognises PLAIN by its exact bytes', () => {
    const line = s('xPLAINx');
    expect(isPlainMechanism(line, 1, 6)).toBe(true);
    expect(isPlainMechanism(s('plain'), 0, 5)).toBe(false);
    expect(isPlainMechanism(s('PLAIN2'), 0, 6)).toBe(false);
    expect(isPlainMechanism(s('CRAM-MD5'), 0, 8)).toBe(false);
  });
});
