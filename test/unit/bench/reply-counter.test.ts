import { describe, expect, it } from 'vitest';
import { MAX_REPLY_LINE_BYTES, ReplyCounter, parseValueBytes } from '../../../bench/load/reply-counter.js';

type Kind = 'hit' | 'miss' | 'stored' | 'error';

interface Fixture {
  name: string;
  bytes: string;
  expected: Kind[];
  /** the stream is out of step after the expected replies */
  failed?: boolean;
}

/** Every split leaves exhaustive cut sets to inputs this short (2^(n-1) runs). */
const EXHAUSTIVE_MAX_BYTES = 16;

interface Outcome {
  kinds: Kind[];
  totals: Record<Kind, number>;
  failed: boolean;
}

/** Feeds `chunks` to a fresh counter; the kinds in order are read off the counters after each chunk. */
function feedAll(chunks: readonly Buffer[]): Outcome {
  const c = new ReplyCounter();
  const kinds: Kind[] = [];
  let last = { hit: 0, miss: 0, stored: 0, error: 0 };
  let completed = 0;
  for (const chunk of chunks) {
    completed += c.feed(chunk);
    const now = { hit: c.hits, miss: c.misses, stored: c.stored, error: c.errors };
    // with one reply per chunk at most (byte by byte), the deltas are the order
    for (const k of ['hit', 'miss', 'stored', 'error'] as const) for (let i = last[k]; i < now[k]; i++) kinds.push(k);
    last = now;
  }
  expect(completed).toBe(c.completed());
  return { kinds, totals: last, failed: c.failed };
}

function totalsOf(kinds: readonly Kind[]): Record<Kind, number> {
  const t = { hit: 0, miss: 0, stored: 0, error: 0 };
  for (const k of kinds) t[k]++;
  return t;
}

/** Whole, byte by byte (exact order), split in two at every index, and every cut set when short. */
function runFixture(f: Fixture): void {
  const input = Buffer.from(f.bytes, 'latin1');
  const expectedTotals = totalsOf(f.expected);
  const failed = f.failed ?? false;

  const whole = feedAll([input]);
  expect(whole.totals, 'whole').toEqual(expectedTotals);
  expect(whole.failed, 'whole').toBe(failed);

  const bytewise: Buffer[] = [];
  for (let i = 0; i < input.length; i++) bytewise.push(input.subarray(i, i + 1));
  const byByte = feedAll(bytewise);
  expect(byByte.kinds, 'byte by byte').toEqual(f.expected);
  expect(byByte.failed, 'byte by byte').toBe(failed);

  for (let i = 0; i <= input.length; i++) {
    const split = feedAll([input.subarray(0, i), input.subarray(i)]);
    expect({ at: i, totals: split.totals, failed: split.failed }).toEqual({ at: i, totals: expectedTotals, failed });
  }

  if (input.length > 1 && input.length <= EXHAUSTIVE_MAX_BYTES) {
    for (let mask = 0; mask < 2 ** (input.length - 1); mask++) {
      const chunks: Buffer[] = [];
      let from = 0;
      for (let cut = 1; cut < input.length; cut++) {
        if ((mask & (1 << (cut - 1))) === 0) continue;
        chunks.push(input.subarray(from, cut));
        from = cut;
      }
      chunks.push(input.subarray(from));
      const o = feedAll(chunks);
      expect({ mask, totals: o.totals, failed: o.failed }).toEqual({ mask, totals: expectedTotals, failed });
    }
  }
}

const value32 = 'abcdefghijklmnopqrstuvwxyzabcdef';

const fixtures: Fixture[] = [
  { name: 'a miss', bytes: 'END\r\n', expected: ['miss'] },
  { name: 'a hit', bytes: 'VALUE k:1 0 5\r\nhello\r\nEND\r\n', expected: ['hit'] },
  { name: 'a hit with a cas unique (gets)', bytes: 'VALUE k 3 5 991\r\nhello\r\nEND\r\n', expected: ['hit'] },
  { name: 'a 32-byte value', bytes: `VALUE k:042117 0 32\r\n${value32}\r\nEND\r\n`, expected: ['hit'] },
  { name: 'an empty value', bytes: 'VALUE k 0 0\r\n\r\nEND\r\n', expected: ['hit'] },
  {
    name: 'a value whose data looks like replies (counted, not read)',
    bytes: 'VALUE k 0 13\r\nEND\r\nSTORED\r\n\r\nEND\r\n',
    expected: ['hit'],
  },
  { name: 'binary data with LF and CR bytes', bytes: 'VALUE k 0 4\r\n\n\r\n\r\r\nEND\r\n', expected: ['hit'] },
  { name: 'stored', bytes: 'STORED\r\n', expected: ['stored'] },
  { name: 'ERROR', bytes: 'ERROR\r\n', expected: ['error'] },
  { name: 'a rate limit', bytes: 'SERVER_ERROR rate limited\r\n', expected: ['error'] },
  { name: 'a backend failure', bytes: 'SERVER_ERROR backend failure\r\n', expected: ['error'] },
  {
    name: 'a key too long once namespaced',
    bytes: 'CLIENT_ERROR bad command line format\r\n',
    expected: ['error'],
  },
  { name: 'NOT_STORED', bytes: 'NOT_STORED\r\n', expected: ['error'] },
  { name: 'a bare LF line end', bytes: 'END\nSTORED\n', expected: ['miss', 'stored'] },
  {
    name: 'a pipeline of every reply in one buffer',
    bytes:
      'END\r\nVALUE k:000001 0 3\r\nabc\r\nEND\r\nSTORED\r\nSERVER_ERROR rate limited\r\n' +
      `VALUE k:099999 5 32 7\r\n${value32}\r\nEND\r\nERROR\r\nEND\r\nSTORED\r\n`,
    expected: ['miss', 'hit', 'stored', 'error', 'hit', 'error', 'miss', 'stored'],
  },
  {
    name: 'a VALUE line with a non-numeric length',
    bytes: 'END\r\nVALUE k 0 1x\r\nx\r\nEND\r\n',
    expected: ['miss'],
    failed: true,
  },
  { name: 'a VALUE line without a length', bytes: 'VALUE k 0\r\nEND\r\n', expected: [], failed: true },
  { name: 'a data block not ending in CRLF', bytes: 'VALUE k 0 2\r\nabcEND\r\nEND\r\n', expected: [], failed: true },
  { name: 'a data block ending in CR only', bytes: 'VALUE k 0 2\r\nab\rEND\r\n', expected: [], failed: true },
];

describe('ReplyCounter', () => {
  for (const f of fixtures) {
    it(`counts ${f.name}, however the bytes are split`, () => runFixture(f));
  }

  it('fails on a line longer than MAX_REPLY_LINE_BYTES, whole or split', () => {
    const long = Buffer.from(`SERVER_ERROR ${'x'.repeat(MAX_REPLY_LINE_BYTES)}\r\nEND\r\n`, 'latin1');
    for (const chunks of [[long], [long.subarray(0, 10), long.subarray(10)]]) {
      const c = new ReplyCounter();
      for (const chunk of chunks) c.feed(chunk);
      expect(c.failed).toBe(true);
      expect(c.completed()).toBe(0);
    }
  });

  it('accepts a line of exactly MAX_REPLY_LINE_BYTES split across chunks', () => {
    const line = `SERVER_ERROR ${'x'.repeat(MAX_REPLY_LINE_BYTES - 'SERVER_ERROR '.length - 2)}\r\n`;
    expect(line.length).toBe(MAX_REPLY_LINE_BYTES);
    const bytes = Buffer.from(line, 'latin1');
    const c = new ReplyCounter();
    c.feed(bytes.subarray(0, 500));
    c.feed(bytes.subarray(500));
    expect(c.failed).toBe(false);
    expect(c.errors).toBe(1);
  });

  it('ignores everything after it fails', () => {
    const c = new ReplyCounter();
    expect(c.feed(Buffer.from('VALUE k 0 zz\r\nEND\r\nSTORED\r\n', 'latin1'))).toBe(0);
    expect(c.feed(Buffer.from('END\r\n', 'latin1'))).toBe(0);
    expect(c.failed).toBe(true);
  });

  it('keeps a half-read reply across resetCounters()', () => {
    const c = new ReplyCounter();
    c.feed(Buffer.from('STORED\r\nVALUE k 0 3\r\na', 'latin1'));
    c.resetCounters();
    expect(c.completed()).toBe(0);
    expect(c.feed(Buffer.from('bc\r\nEND\r\n', 'latin1'))).toBe(1);
    expect(c.hits).toBe(1);
    expect(c.stored).toBe(0);
  });
});

describe('parseValueBytes', () => {
  const cases: { line: string; expected: number }[] = [
    { line: 'k 0 32', expected: 32 },
    { line: 'k 0 32 12345', expected: 32 },
    { line: 'bench:0123456789abcdef:k 4294967295 0', expected: 0 },
    { line: 'k 0 ', expected: -1 },
    { line: 'k 0', expected: -1 },
    { line: 'k', expected: -1 },
    { line: ' 0 5', expected: -1 },
    { line: 'k 0 -1', expected: -1 },
    { line: 'k 0 99999999999999999999', expected: -1 },
  ];
  for (const { line, expected } of cases) {
    it(`reads ${JSON.stringify(line)} as ${expected}`, () => {
      const buf = Buffer.from(line, 'latin1');
      expect(parseValueBytes(buf, 0, buf.length)).toBe(expected);
    });
  }
});
