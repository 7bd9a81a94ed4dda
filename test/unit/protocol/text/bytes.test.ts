import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  MAX_RELATIVE_EXPTIME_S,
  NO_NUMBER,
  copyBytes,
  parseExptime,
  parseFlags,
  secondsUntil,
} from '../../../../src/protocol/text/bytes.js';

describe('copyBytes', () => {
  it('copies any range to any offset, short (own loop) or long (Buffer#copy), and returns the offset after it', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), fc.nat(80), fc.nat(80), fc.nat(40), (bytes, a, b, at) => {
        const src = Buffer.from(bytes);
        const start = Math.min(a, b, src.length);
        const end = Math.min(Math.max(a, b), src.length);
        const dst = Buffer.alloc(at + 80, 0xee);
        const expected = Buffer.from(dst);
        src.copy(expected, at, start, end);
        expect(copyBytes(src, start, end, dst, at)).toBe(at + end - start);
        expect(dst.equals(expected)).toBe(true);
      }),
    );
  });
});

const at = (f: (b: Buffer, s: number, e: number) => number, text: string): number =>
  f(Buffer.from(`x${text}y`, 'latin1'), 1, text.length + 1);

describe('parseExptime (memcached safe_strtol on a 64-bit system)', () => {
  it('reads int32 values as they are', () => {
    for (const v of [0, 1, -1, 2147483647, -2147483648, 2592000]) expect(at(parseExptime, String(v))).toBe(v);
    expect(at(parseExptime, '-0')).toBe(0);
    expect(at(parseExptime, '0007')).toBe(7);
  });

  it('wraps 64-bit values to int32 as the C cast does, for any value strtol takes', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), (v) => {
        expect(at(parseExptime, v.toString())).toBe(Number(BigInt.asIntN(32, v)));
      }),
    );
    expect(at(parseExptime, '4294967295')).toBe(-1);
    expect(at(parseExptime, '99999999999')).toBe(1215752191);
  });

  it('refuses what strtol refuses: past ±2^63, no digits, other bytes', () => {
    for (const t of ['9223372036854775808', '-9223372036854775809', '', '-', 'abc', '1x', '0x10', '+5', ' 5'])
      expect(at(parseExptime, t)).toBe(NO_NUMBER);
  });
});

describe('parseFlags (memcached safe_strtoul on a 64-bit system)', () => {
  it('wraps values up to 2^64-1 to uint32', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (v) => {
        expect(at(parseFlags, v.toString())).toBe(Number(BigInt.asUintN(32, v)));
      }),
    );
  });

  it('refuses values past 2^64-1, signs and other bytes', () => {
    for (const t of ['18446744073709551616', '-1', '', 'x', '+1']) expect(at(parseFlags, t)).toBe(NO_NUMBER);
  });
});

describe('secondsUntil (memcached realtime)', () => {
  const now = 1_800_000_000_000;
  it('reads 0 or less as now, up to 30 days as relative, beyond as absolute Unix time', () => {
    expect(secondsUntil(-1, now)).toBe(0);
    expect(secondsUntil(0, now)).toBe(0);
    expect(secondsUntil(MAX_RELATIVE_EXPTIME_S, now)).toBe(MAX_RELATIVE_EXPTIME_S);
    expect(secondsUntil(MAX_RELATIVE_EXPTIME_S + 1, now)).toBe(0); // 1970: passed
    expect(secondsUntil(1_800_000_100, now)).toBe(100);
  });
});
