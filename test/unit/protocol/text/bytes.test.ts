import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { copyBytes } from '../../../../src/protocol/text/bytes.js';

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
