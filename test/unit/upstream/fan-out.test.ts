import { describe, expect, it } from 'vitest';
import { isFanOut, mergeStats } from '../../../src/upstream/fan-out.js';
import { buildRequest } from '../protocol/text/request-builder.js';

describe('isFanOut', () => {
  it.each([
    ['stats', true],
    ['flush_all', true],
    ['flush_all 10 noreply', true],
    ['verbosity 1', true],
    ['cache_memlimit 100', true],
    ['stats settings', false],
    ['stats slabs', false],
    ['version', false],
    ['mn', false],
  ])('%s → %s', (line, expected) => {
    expect(isFanOut(buildRequest(line))).toBe(expected);
  });
});

describe('mergeStats', () => {
  const a = 'STAT pid 10\r\nSTAT uptime 5\r\nSTAT curr_items 3\r\nSTAT bytes 100\r\nSTAT rusage_user 0.5\r\nEND\r\n';
  const b = 'STAT pid 20\r\nSTAT uptime 9\r\nSTAT curr_items 4\r\nSTAT bytes 18446744073709551615\r\nEND\r\n';

  it('sums counters (64-bit exact) and takes the rest from the first server, in its order', () => {
    expect(mergeStats([a, b])).toBe(
      'STAT pid 10\r\nSTAT uptime 5\r\nSTAT curr_items 7\r\nSTAT bytes 18446744073709551715\r\nSTAT rusage_user 0.5\r\nEND\r\n',
    );
  });

  it('returns null for a reply that is not a STAT list', () => {
    expect(mergeStats([a, 'SERVER_ERROR busy\r\n'])).toBeNull();
    expect(mergeStats([])).toBeNull();
  });

  it('keeps the first value of a summed counter that is not an integer somewhere', () => {
    expect(mergeStats(['STAT curr_items 3\r\nEND\r\n', 'STAT curr_items x\r\nEND\r\n'])).toBe(
      'STAT curr_items 3\r\nEND\r\n',
    );
  });
});
