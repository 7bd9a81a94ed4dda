/**
 * Micro-benchmarks of the hot path pieces, in ns per command:
 * `npm run bench:micro` (vitest bench; prints ops/s, i.e. 1e9 / ns).
 */
import { bench, describe } from 'vitest';
import { RequestParser } from '../../src/protocol/text/request-parser.js';
import { encodeRequest } from '../../src/protocol/text/request-encoder.js';
import { ResponseParser } from '../../src/protocol/text/response-parser.js';
import { checkNamespacedKeys } from '../../src/policy/key-prefix.js';
import { Request, type RequestSink } from '../../src/protocol/text/request.js';

const N = 1000;
const gets = Buffer.from('get user:12345:profile\r\n'.repeat(N), 'latin1');
const sets = Buffer.from('set user:12345:profile 0 0 32\r\n' + 'x'.repeat(32) + '\r\n', 'latin1');
const setsN = Buffer.concat(Array.from({ length: N }, () => sets));
const mixed = Buffer.from(
  'get a b c d\r\nmg user:1 v f k\r\nincr counter 1\r\ndelete old\r\ntouch k 100\r\n'.repeat(N / 5),
  'latin1',
);

let last: Request | null = null;
const sink: RequestSink = {
  onRequest(r) {
    last = r;
  },
  onFatal() {},
};
const parser = new RequestParser(sink);

describe(`request parser (${N} commands per iteration)`, () => {
  bench('get, one key', () => parser.feed(gets));
  bench('set, 32-byte value', () => parser.feed(setsN));
  bench('mixed', () => parser.feed(mixed));
});

const NS = Buffer.from('q7Zk2:Ab3dE9xQ', 'latin1');
const parsedGets: Request[] = [];
new RequestParser({ onRequest: (r) => parsedGets.push(r), onFatal() {} }).feed(gets);

describe(`policy + encoder (${N} gets per iteration)`, () => {
  bench('namespace check', () => {
    for (const r of parsedGets) checkNamespacedKeys(r, NS);
  });
  bench('encode with namespace', () => {
    const out: Buffer[] = [];
    for (const r of parsedGets) {
      r.ns = NS;
      encodeRequest(r, out);
    }
  });
  bench('encode with namespace, as mg', () => {
    const out: Buffer[] = [];
    for (const r of parsedGets) {
      r.ns = NS;
      encodeRequest(r, out, true);
    }
  });
});

const hit = Buffer.from(
  `VALUE ${NS.toString('latin1')}user:12345:profile 0 32\r\n${'x'.repeat(32)}\r\nEND\r\n`,
  'latin1',
);
const hitsN = Buffer.concat(Array.from({ length: N }, () => hit));
const vaHit = Buffer.from(`VA 32 f0 k${NS.toString('latin1')}user:12345:profile\r\n${'x'.repeat(32)}\r\n`, 'latin1');
const vaHitsN = Buffer.concat(Array.from({ length: N }, () => vaHit));
const inflight: Request[] = [];
let head = 0;
const rp = new ResponseParser({
  peek: () => inflight[head],
  shift: () => {
    head++;
  },
  onDesync: (reason: string) => {
    throw new Error(reason);
  },
});

describe(`response parser (${N} replies per iteration)`, () => {
  bench(
    'VALUE hit with namespace stripped',
    () => {
      head = 0;
      rp.feed(hitsN);
    },
    { setup: () => resetInflight(false) },
  );
  bench(
    'VA hit of a get sent as mg, read back as VALUE…END',
    () => {
      head = 0;
      rp.feed(vaHitsN);
    },
    { setup: () => resetInflight(true) },
  );
});

function resetInflight(asMeta: boolean): void {
  inflight.length = 0;
  for (const r of parsedGets) {
    r.ns = NS;
    r.owner = null;
    r.done = false;
    r.upstreamMeta = asMeta;
    inflight.push(r);
  }
}

export { last };
