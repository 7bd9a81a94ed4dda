/**
 * The pure parts of src/server/multiget.ts: which keys of a multi-get repeat an
 * earlier one (each distinct key is asked upstream once).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { firstOccurrences } from '../../../src/server/multiget.js';

/** The line `get k1 k2 …` and its key offsets, as the request parser records them. */
function line(keys: readonly string[]): { buf: Buffer; offsets: number[] } {
  const offsets: number[] = [];
  let text = 'get';
  for (const k of keys) {
    text += ' ';
    offsets.push(text.length, text.length + k.length);
    text += k;
  }
  return { buf: Buffer.from(text, 'latin1'), offsets };
}

describe('firstOccurrences', () => {
  it('points every key at its first occurrence', () => {
    const { buf, offsets } = line(['a', 'b', 'a', 'c', 'b', 'a']);
    expect([...firstOccurrences(buf, offsets)]).toEqual([0, 1, 0, 3, 1, 0]);
  });

  it('tells keys apart that share a prefix or differ only in length', () => {
    const { buf, offsets } = line(['ab', 'a', 'abc', 'ab', 'b', 'a']);
    expect([...firstOccurrences(buf, offsets)]).toEqual([0, 1, 2, 0, 4, 1]);
  });

  it('matches indexOf for any list of keys (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.stringMatching(/^[a-d]{1,3}$/), { minLength: 1, maxLength: 400 }), (keys) => {
        const { buf, offsets } = line(keys);
        expect([...firstOccurrences(buf, offsets)]).toEqual(keys.map((k) => keys.indexOf(k)));
      }),
      { numRuns: 200 },
    );
  });
});
