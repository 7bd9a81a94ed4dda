import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../../src/config/load.js';
import {
  authorize,
  DENY_AUDIT_REASON,
  DenyCause,
  LocalAnswer,
  Verdict,
  VerdictFields,
} from '../../../src/policy/authorize.js';
import { compilePolicy, Rights } from '../../../src/policy/compile.js';
import { Admit } from '../../../src/policy/rate-limit.js';
import { Opcode } from '../../../src/protocol/binary/header.js';
import { BinaryRequestParser } from '../../../src/protocol/binary/parser.js';
import { RequestParser } from '../../../src/protocol/text/request-parser.js';
import type { Request, RequestSink } from '../../../src/protocol/text/request.js';
import { TenantRuntime } from '../../../src/server/tenants.js';
import { packet } from '../protocol/binary/binary-fixtures.js';
import { buildRequest } from '../protocol/text/request-builder.js';

const GENERATION = 'Gen00001';
const GLOBAL_MAX_KEYS = 100;

const CONFIG = `listen:
  - { host: 127.0.0.1, port: 11211 }
upstream:
  servers: [ "127.0.0.1:11212" ]
tenants:
  shop: { prefix: "q7Zk2:" }
  app: { prefix: "app:", mode: enforce, prefixes: [ "app:", "cart:" ] }
  ops: { admin: true, networks: [ "127.0.0.1/32" ] }
  slow: { prefix: "slow:", limits: { opsPerSecond: 1, burst: 2 } }
  shaped: { prefix: "shaped:", limits: { opsPerSecond: 10, burst: 2, overLimit: delay, maxDelayMs: 1000 } }
  small: { prefix: "small:", limits: { maxItemBytes: 10, maxKeysPerGet: 2 } }
  quiet: { prefix: "quiet:", limits: { statsPerSecond: 1 } }
`;

const policy = compilePolicy(parseConfigText(CONFIG, 'test.yaml', {}));
const global = { maxKeysPerGet: GLOBAL_MAX_KEYS, maxValueBytes: 1024 * 1024 };

/** A fresh runtime (full budgets) of tenant `name`. */
function tenant(name: string): TenantRuntime {
  const p = policy.tenants.get(name);
  if (p === undefined) throw new Error(`no tenant ${name}`);
  return new TenantRuntime(p, GENERATION, global);
}

function collect(): { sink: RequestSink; out: Request[] } {
  const out: Request[] = [];
  return { sink: { onRequest: (r) => out.push(r), onFatal: () => undefined }, out };
}

/** The one request the text parser makes of `text` (a line, and its data block if any). */
function text(input: string): Request {
  const { sink, out } = collect();
  new RequestParser(sink).feed(Buffer.from(input, 'latin1'));
  const req = out[0];
  if (out.length !== 1 || req === undefined) throw new Error(`${JSON.stringify(input)} is ${out.length} requests`);
  return req;
}

function binary(opcode: number, key = ''): Request {
  const { sink, out } = collect();
  new BinaryRequestParser(sink).feed(packet({ opcode, key }));
  const req = out[0];
  if (req === undefined) throw new Error('no request');
  return req;
}

const ns = (name: string): Buffer | null => tenant(name).ns;

/** What authorize decided, as plain data. */
function decide(t: TenantRuntime, req: Request, rights: Rights = Rights.READ_WRITE, nowMs = 1000): string {
  const v = new VerdictFields();
  const kind = authorize(t, rights, req, nowMs, GLOBAL_MAX_KEYS, v);
  switch (kind) {
    case Verdict.FORWARD:
      return v.ns === null ? 'forward' : `forward ${v.ns.toString('latin1')}`;
    case Verdict.LOCAL:
      return `local ${Object.entries(LocalAnswer).find(([, n]) => n === v.local)?.[0] ?? v.local}`;
    case Verdict.DENY: {
      const cause = Object.entries(DenyCause).find(([, n]) => n === v.cause)?.[0] ?? String(v.cause);
      return `deny ${cause} ${v.reply?.toString('latin1').trimEnd() ?? 'null'}`;
    }
    default:
      return v.reply === null ? `delay ${v.delayMs}` : `limited ${v.budget} ${v.reply.toString('latin1').trimEnd()}`;
  }
}

const SHOP = 'forward q7Zk2:Gen00001';
const APP_DENIED = 'deny OUTSIDE_PREFIXES CLIENT_ERROR access denied';
const STATS_ITEMS = 'deny STATS_GROUP CLIENT_ERROR stats items not allowed';
const STATS_CACHEDUMP = 'deny STATS_GROUP CLIENT_ERROR stats cachedump not allowed';

/** command → the verdict for shop (namespace), app (enforce), ops (admin). */
const TABLE: readonly (readonly [string, string, string, string])[] = [
  ['get foo\r\n', SHOP, APP_DENIED, 'forward'],
  ['get app:foo cart:bar\r\n', SHOP, 'forward', 'forward'],
  ['get app:foo other\r\n', SHOP, APP_DENIED, 'forward'],
  ['gets app:a\r\n', SHOP, 'forward', 'forward'],
  ['gat 10 app:a\r\n', SHOP, 'forward', 'forward'],
  ['set app:k 0 0 1\r\nx\r\n', SHOP, 'forward', 'forward'],
  ['cas app:k 0 0 1 7\r\nx\r\n', SHOP, 'forward', 'forward'],
  ['delete app:k\r\n', SHOP, 'forward', 'forward'],
  ['incr app:k 1\r\n', SHOP, 'forward', 'forward'],
  ['touch app:k 10\r\n', SHOP, 'forward', 'forward'],
  ['mg app:k v\r\n', SHOP, 'forward', 'forward'],
  ['mg YXBwOms= b v\r\n', SHOP, APP_DENIED, 'forward'], // enforce mode refuses base64 keys
  ['ms app:k 1\r\nx\r\n', SHOP, 'forward', 'forward'],
  ['md app:k q\r\n', SHOP, 'forward', 'forward'],
  ['ma app:k\r\n', SHOP, 'forward', 'forward'],
  ['me app:k\r\n', SHOP, 'forward', 'forward'],
  ['mn\r\n', SHOP, 'forward', 'forward'],
  ['version\r\n', SHOP, 'forward', 'forward'],
  ['stats\r\n', 'local STATS', 'local STATS', 'forward'],
  ['stats items\r\n', STATS_ITEMS, STATS_ITEMS, 'forward'],
  ['stats cachedump 1 1\r\n', STATS_CACHEDUMP, STATS_CACHEDUMP, 'forward'],
  ['stats bogus\r\n', 'deny UNKNOWN ERROR', 'deny UNKNOWN ERROR', 'forward'],
  ['flush_all\r\n', 'local FLUSH_ALL', 'deny ENFORCE_FLUSH CLIENT_ERROR flush_all not allowed', 'forward'],
  ['flush_all 10\r\n', 'local FLUSH_ALL', 'deny ENFORCE_FLUSH CLIENT_ERROR flush_all not allowed', 'forward'],
  ['verbosity 1\r\n', 'local VERBOSITY', 'local VERBOSITY', 'forward'],
  ['quit\r\n', 'local QUIT', 'local QUIT', 'local QUIT'],
  ...['lru_crawler metadump all', 'watch', 'shutdown', 'slabs reassign 1 2', 'lru mode flat', 'cache_memlimit 10'].map(
    (line): readonly [string, string, string, string] => {
      const deny = `deny COMMAND CLIENT_ERROR ${line.split(' ')[0] ?? ''} not allowed`;
      return [`${line}\r\n`, deny, deny, 'forward'];
    },
  ),
];

describe('authorize', () => {
  describe.each([
    ['shop (namespace)', 'shop', 1],
    ['app (enforce)', 'app', 2],
    ['ops (admin)', 'ops', 3],
  ] as const)('for %s', (_label, name, column) => {
    it.each(TABLE.map((row) => [row[0].split('\r\n')[0] ?? '', row[0], row[column]] as const))(
      '%s',
      (_line, input, expected) => {
        expect(decide(tenant(name), text(input))).toBe(expected);
      },
    );
  });

  it('answers a request the parser refused with the parser’s reply, for every kind of tenant', () => {
    for (const name of ['shop', 'app', 'ops', 'slow']) {
      const req = text('get\r\n');
      expect(req.error).not.toBeNull();
      expect(decide(tenant(name), req)).toBe(`deny BAD_REQUEST ${req.error?.toString('latin1').trimEnd()}`);
    }
  });

  it('refuses a key too long once namespaced with memcached’s words, and passes it unchanged without a namespace', () => {
    const long = buildRequest(`get ${'k'.repeat(251)}`);
    expect(decide(tenant('shop'), long)).toBe('deny KEY_TOO_LONG CLIENT_ERROR bad command line format');
    expect(decide(tenant('ops'), buildRequest(`get ${'k'.repeat(251)}`))).toBe('forward');
    // a 250-byte key fits for a namespace tenant: it goes upstream as namespace + digest
    expect(decide(tenant('shop'), text(`get ${'k'.repeat(250)}\r\n`))).toBe(SHOP);
  });

  it('applies the tenant’s item size and keys-per-get, and the global keys-per-get otherwise', () => {
    const small = tenant('small');
    expect(decide(small, text('set k 0 0 10\r\n0123456789\r\n'))).toBe('forward small:Gen00001');
    expect(decide(small, text('set k 0 0 11\r\n0123456789a\r\n'))).toBe(
      'deny ITEM_TOO_LARGE SERVER_ERROR object too large for cache',
    );
    expect(decide(small, text('get a b\r\n'))).toBe('forward small:Gen00001');
    expect(decide(small, text('get a b c\r\n'))).toBe('deny TOO_MANY_KEYS CLIENT_ERROR too many keys');
    const keys = (n: number): string => Array.from({ length: n }, (_, i) => `k${i}`).join(' ');
    expect(decide(tenant('shop'), text(`get ${keys(GLOBAL_MAX_KEYS)}\r\n`))).toBe(SHOP);
    expect(decide(tenant('shop'), text(`get ${keys(GLOBAL_MAX_KEYS + 1)}\r\n`))).toBe(
      'deny TOO_MANY_KEYS CLIENT_ERROR too many keys',
    );
  });

  it('applies the credential’s rights before anything else of the tenant, admin included', () => {
    for (const name of ['shop', 'ops']) {
      const t = tenant(name);
      const ro = Rights.READ_ONLY;
      expect(decide(t, text('set k 0 0 1\r\nx\r\n'), ro)).toBe('deny RIGHTS CLIENT_ERROR access denied');
      expect(decide(t, text('delete k\r\n'), ro)).toBe('deny RIGHTS CLIENT_ERROR access denied');
      expect(decide(t, text('gat 1 k\r\n'), ro)).toBe('deny RIGHTS CLIENT_ERROR access denied');
      expect(decide(t, text('mg k v T30\r\n'), ro)).toBe('deny RIGHTS CLIENT_ERROR access denied');
      expect(decide(t, text('flush_all\r\n'), ro)).toBe('deny RIGHTS CLIENT_ERROR flush_all not allowed');
      expect(decide(t, text('flush_all\r\n'), Rights.NO_FLUSH)).toBe('deny RIGHTS CLIENT_ERROR flush_all not allowed');
      expect(decide(t, text('get k\r\n'), ro)).toMatch(/^forward/);
      expect(decide(t, text('mg k v\r\n'), ro)).toMatch(/^forward/);
      expect(decide(t, text('set k 0 0 1\r\nx\r\n'), Rights.NO_FLUSH)).toMatch(/^forward/);
      expect(decide(t, text('quit\r\n'), ro)).toBe('local QUIT');
    }
  });

  it('refuses over the rate limit, one op per key, and a get of more keys than the burst in its own words', () => {
    const slow = tenant('slow');
    expect(decide(slow, text('get a\r\n'), Rights.READ_WRITE, 1000)).toBe('forward slow:Gen00001');
    expect(decide(slow, text('get b\r\n'), Rights.READ_WRITE, 1000)).toBe('forward slow:Gen00001');
    expect(decide(slow, text('get c\r\n'), Rights.READ_WRITE, 1000)).toBe(
      `limited ${Admit.RATE_OPS} SERVER_ERROR rate limited`,
    );
    // a second later one token is back: a one-key get passes, a two-key get does not
    expect(decide(slow, text('get a b\r\n'), Rights.READ_WRITE, 2000)).toBe(
      `limited ${Admit.RATE_OPS} SERVER_ERROR rate limited`,
    );
    expect(decide(slow, text('get c\r\n'), Rights.READ_WRITE, 2000)).toBe('forward slow:Gen00001');
    expect(decide(tenant('slow'), text('get a b c\r\n'))).toBe(
      `limited ${Admit.RATE_OPS} SERVER_ERROR rate limited (more keys than the burst)`,
    );
  });

  it('charges nothing for a request refused before the budgets (a parser error, an item too large, a denied right)', () => {
    const slow = tenant('slow');
    for (let i = 0; i < 5; i++) {
      expect(decide(slow, text('get\r\n'))).toMatch(/^deny BAD_REQUEST/);
      expect(decide(slow, text('set k 0 0 1\r\nx\r\n'), Rights.READ_ONLY)).toMatch(/^deny RIGHTS/);
    }
    expect(decide(slow, text('get a b\r\n'))).toBe('forward slow:Gen00001');
  });

  it('delays instead of refusing in delay mode, within maxDelayMs, and still refuses what no wait admits', () => {
    const shaped = tenant('shaped');
    expect(decide(shaped, text('get a b\r\n'))).toBe('forward shaped:Gen00001');
    // 10 per second: one token every 100 ms
    expect(decide(shaped, text('get c\r\n'))).toBe('delay 100');
    expect(decide(shaped, text('get c d\r\n'))).toBe('delay 200');
    expect(decide(shaped, text('get a b c\r\n'))).toBe(
      `limited ${Admit.RATE_OPS} SERVER_ERROR rate limited (more keys than the burst)`,
    );
    expect(decide(shaped, text('get c\r\n'), Rights.READ_WRITE, 1100)).toBe('forward shaped:Gen00001');
  });

  it('keeps per-class budgets (stats per second) apart from the command’s answer', () => {
    const quiet = tenant('quiet');
    expect(decide(quiet, text('stats\r\n'))).toBe('local STATS');
    expect(decide(quiet, text('stats\r\n'))).toBe(`limited ${Admit.RATE_CLASS} SERVER_ERROR rate limited`);
    expect(decide(quiet, text('get k\r\n'))).toBe('forward quiet:Gen00001');
  });

  it('answers binary NOOP itself and gives SASL on an identified connection to the auth dialogue', () => {
    for (const name of ['shop', 'app', 'ops']) {
      expect(decide(tenant(name), binary(Opcode.NOOP))).toBe('local NOOP');
      expect(decide(tenant(name), binary(0x20))).toBe('local SASL'); // SASL_LIST_MECHS
      expect(decide(tenant(name), binary(Opcode.QUIT))).toBe('local QUIT');
    }
    expect(decide(tenant('shop'), binary(Opcode.GET, 'k'))).toBe(SHOP);
    expect(decide(tenant('app'), binary(Opcode.GET, 'k'))).toBe(APP_DENIED);
  });

  it('forwards under the namespace of the moment: a rotation changes it for the next request', () => {
    const shop = tenant('shop');
    expect(decide(shop, text('get k\r\n'))).toBe(SHOP);
    shop.setGeneration('Gen00002');
    expect(decide(shop, text('get k\r\n'))).toBe('forward q7Zk2:Gen00002');
    expect(ns('app')).toBeNull();
    expect(ns('ops')).toBeNull();
  });

  it('names an audit reason exactly for the denials that are audited', () => {
    const audited = Object.entries(DenyCause)
      .filter(([, n]) => DENY_AUDIT_REASON[n] !== null)
      .map(([k]) => k);
    expect(audited).toEqual(['RIGHTS', 'OUTSIDE_PREFIXES', 'COMMAND', 'STATS_GROUP', 'ENFORCE_FLUSH']);
    expect(DENY_AUDIT_REASON).toHaveLength(Object.keys(DenyCause).length);
  });

  it('rewrites the one verdict record it is given and allocates no other', () => {
    const v = new VerdictFields();
    const t = tenant('shop');
    expect(authorize(t, Rights.READ_WRITE, text('lru_crawler metadump all\r\n'), 0, 100, v)).toBe(Verdict.DENY);
    expect(authorize(t, Rights.READ_WRITE, text('get k\r\n'), 0, 100, v)).toBe(Verdict.FORWARD);
    expect(v.ns).toBe(t.ns); // the tenant's own Buffer, not a copy
  });
});
