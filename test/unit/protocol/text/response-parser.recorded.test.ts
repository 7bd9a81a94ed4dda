/**
 * The response parser against replies recorded from a real memcached
 * (test/fixtures/memcached-replies.json, written by scripts/record-replies.ts;
 * test/integration/recorded-replies.test.ts re-records and compares). Every
 * reply is fed whole, byte by byte and split every way the other parser
 * tests use: it must end its request, with memcached's meaning, namespace out.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { REPLY_CASES, checkRecording, type Recording } from '../../../helpers/recorded-replies.js';

const fixture = JSON.parse(
  // each string holds one character per byte (latin1); the file itself is UTF-8 JSON
  fs.readFileSync(new URL('../../../fixtures/memcached-replies.json', import.meta.url), 'utf8'),
) as { version: string; recordings: Recording[] };

describe(`response parser, replies recorded from ${fixture.version}`, () => {
  it('has a recording for every case, in order', () => {
    expect(fixture.recordings.map((r) => r.name)).toEqual(REPLY_CASES.map((c) => c.name));
  });

  it.each(REPLY_CASES.map((c, i) => [c.name, c, fixture.recordings[i]] as const))('%s', (_name, c, rec) => {
    if (rec === undefined) throw new Error('no recording');
    expect(checkRecording(c, rec)).toEqual([]);
  });
});
