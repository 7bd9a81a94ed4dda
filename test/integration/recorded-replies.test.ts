/**
 * Re-records memcached's replies to every case of test/helpers/recorded-replies.ts
 * against the installed memcached (one normal server, one `-m 2 -M` that runs
 * out of memory) and checks (1) they match the committed recordings once
 * volatile numbers are normalised, so the fixture file stays true to the real
 * server, and (2) the response parser reads every live reply, cut every way,
 * as memcached means it.
 */
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPLY_CASES, checkRecording, normalise, recordAll, type Recording } from '../helpers/recorded-replies.js';
import { spawnMemcached, type MemcachedProcess } from '../helpers/spawn-memcached.js';

const fixture = JSON.parse(fs.readFileSync(new URL('../fixtures/memcached-replies.json', import.meta.url), 'utf8')) as {
  version: string;
  recordings: Recording[];
};

let main: MemcachedProcess;
let small: MemcachedProcess;
let live: Recording[];

beforeAll(async () => {
  main = await spawnMemcached();
  small = await spawnMemcached(['-m', '2', '-M']);
  live = await recordAll(main.port, small.port);
}, 60_000);

afterAll(async () => {
  await main.stop();
  await small.stop();
});

describe('replies re-recorded from the installed memcached', () => {
  it('match the committed recordings (scripts/record-replies.ts), volatile numbers aside', () => {
    const strip = (rs: Recording[]) =>
      rs.map((r) => ({
        name: r.name,
        upstream: r.upstream,
        reply: normalise(r.reply),
        classicReply: r.classicReply === undefined ? undefined : normalise(r.classicReply),
      }));
    expect(strip(live)).toEqual(strip(fixture.recordings));
  });

  it('are each read by the response parser as memcached means them, cut every way', () => {
    const problems = REPLY_CASES.flatMap((c, i) => {
      const rec = live[i];
      return rec === undefined ? [`${c.name}: not recorded`] : checkRecording(c, rec).map((p) => `${c.name}: ${p}`);
    });
    expect(problems).toEqual([]);
  });
});
