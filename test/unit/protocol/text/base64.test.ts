import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  base64DecodedLength,
  base64EncodedLength,
  decodeBase64,
  decodeBase64Into,
  encodeBase64Into,
} from '../../../../src/protocol/text/base64.js';

const buf = (s: string) => Buffer.from(s, 'latin1');

describe('base64', () => {
  it('encodes like Buffer#toString("base64"), padded', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const src = Buffer.from(bytes);
        const dst = Buffer.alloc(base64EncodedLength(src.length) + 4, 0x2e);
        const end = encodeBase64Into(src, 0, src.length, dst, 2);
        expect(end).toBe(2 + base64EncodedLength(src.length));
        expect(dst.subarray(2, end).toString('latin1')).toBe(src.toString('base64'));
        expect(dst[0]).toBe(0x2e);
        expect(dst[end]).toBe(0x2e);
      }),
    );
  });

  it('decodes what it encodes, at any offset', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const text = buf(`xx ${Buffer.from(bytes).toString('base64')} yy`);
        const start = 3;
        const end = text.length - 3;
        expect(base64DecodedLength(text, start, end)).toBe(bytes.length);
        const dst = Buffer.alloc(bytes.length + 1);
        expect(decodeBase64Into(text, start, end, dst, 1)).toBe(bytes.length + 1);
        expect(dst.subarray(1)).toEqual(Buffer.from(bytes));
      }),
    );
  });

  it.each([
    ['length not a multiple of 4', 'Zm9vYmF'],
    ['padding past the last quantum', 'Zm9vYmFy='],
    ['padding inside the text', 'Zm=vYmFy'],
    ['three padding bytes', 'Z==='],
    ['a byte outside the alphabet', 'Zm9v-mFy'],
    ['url-safe alphabet', 'Zm9v_mFy'],
    ['a space', 'Zm9v YmF'],
  ])('rejects %s, as memcached does', (_name, text) => {
    const b = buf(text);
    expect(base64DecodedLength(b, 0, b.length)).toBe(-1);
    expect(decodeBase64(b, 0, b.length)).toBeNull();
    expect(decodeBase64Into(b, 0, b.length, Buffer.alloc(16), 0)).toBe(-1);
  });

  it('decodes the empty string to nothing', () => {
    expect(decodeBase64(buf(''), 0, 0)).toEqual(Buffer.alloc(0));
  });

  it('decodes padded quanta', () => {
    expect(decodeBase64(buf('YQ=='), 0, 4)?.toString()).toBe('a');
    expect(decodeBase64(buf('YWI='), 0, 4)?.toString()).toBe('ab');
    expect(decodeBase64(buf('YWJj'), 0, 4)?.toString()).toBe('abc');
  });
});
