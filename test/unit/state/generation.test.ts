import { describe, expect, it } from 'vitest';
import { GENERATION_BYTES, isGeneration, newGeneration } from '../../../src/state/generation.js';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

describe('newGeneration', () => {
  it('is always GENERATION_BYTES characters from [0-9A-Za-z], over many draws', () => {
    expect(GENERATION_BYTES).toBe(8);
    for (let i = 0; i < 5000; i++) {
      const g = newGeneration();
      expect(g).toMatch(/^[0-9A-Za-z]{8}$/);
      expect(Buffer.byteLength(g, 'latin1')).toBe(GENERATION_BYTES);
      expect(isGeneration(g)).toBe(true);
    }
  });

  it('uses every symbol of the alphabet, roughly evenly', () => {
    const counts = new Map<string, number>();
    const draws = 4000; // 32 000 symbols: about 516 per symbol
    for (let i = 0; i < draws; i++) {
      for (const c of newGeneration()) counts.set(c, (counts.get(c) ?? 0) + 1);
    }
    expect(counts.size).toBe(ALPHABET.length);
    const expected = (draws * GENERATION_BYTES) / ALPHABET.length;
    for (const [, n] of counts) {
      // Loose bounds (±35%): catches a broken mapping, not a statistical test.
      expect(n).toBeGreaterThan(expected * 0.65);
      expect(n).toBeLessThan(expected * 1.35);
    }
  });

  it('rejects bytes 248..255 instead of folding them onto the first symbols (no modulo bias)', () => {
    const feeds = [
      Buffer.from([248, 249, 250, 251, 252, 253, 254, 255, 248, 249, 250, 251, 252, 253, 254, 255]),
      Buffer.from([0, 61, 62, 255, 123, 247, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
    ];
    let call = 0;
    const g = newGeneration(() => {
      const b = feeds[call++];
      if (b === undefined) throw new Error('drew more bytes than expected');
      return b;
    });
    // first draw: all rejected; second: 0→'0', 61→'z', 62→'0', 255 skipped, 123→'z', 247→'z' (247 % 62 = 61), 1, 2, 3
    expect(g).toBe('0z0zz123');
    expect(call).toBe(2);
  });

  it('gives distinct tokens', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 10000; i++) seen.add(newGeneration());
    expect(seen.size).toBe(10000);
  });
});

describe('isGeneration', () => {
  it.each([
    ['T3m9QxA0', true],
    ['00000000', true],
    ['zzzzzzzz', true],
    ['T3m9QxA', false], // 7
    ['T3m9QxA01', false], // 9
    ['T3m9Qx-0', false],
    ['T3m9Qx 0', false],
    ['T3m9Qxé0', false],
    ['', false],
    [12345678, false],
    [null, false],
    [undefined, false],
  ])('isGeneration(%j) is %s', (value, ok) => {
    expect(isGeneration(value)).toBe(ok);
  });
});
