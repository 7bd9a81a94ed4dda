import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeBase64 } from '../../../../src/protocol/text/base64.js';
import { Replies } from '../../../../src/protocol/text/replies.js';
import { digitCount, encodeRequest, intLength, writeInt } from '../../../../src/protocol/text/request-encoder.js';
import { RequestParser } from '../../../../src/protocol/text/request-parser.js';
import type { Request } from '../../../../src/protocol/text/request.js';
import { buildRequest, type BuildOptions } from './request-builder.js';

function encode(line: string, opts: BuildOptions = {}): { text: string; out: Buffer[]; refused: Buffer | null } {
  const out: Buffer[] = [];
  const refused = encodeRequest(buildRequest(line, opts), out);
  return { text: Buffer.concat(out).toString('latin1'), out, refused };
}

const b64 = (s: string | Buffer) => (typeof s === 'string' ? Buffer.from(s, 'latin1') : s).toString('base64');

interface Fixture {
  name: string;
  line: string;
  opts?: BuildOptions;
  upstream: string;
}

const FIXTURES: Fixture[] = [
  { name: 'get one key, no namespace', line: 'get foo', upstream: 'get foo\r\n' },
  {
    name: 'get prepends the namespace to every key',
    line: 'get foo bar',
    opts: { ns: 'T1:' },
    upstream: 'get T1:foo T1:bar\r\n',
  },
  { name: 'gets', line: 'gets a', opts: { ns: 'n/' }, upstream: 'gets n/a\r\n' },
  {
    name: 'gat keeps the exptime before the keys',
    line: 'gat 100 a b',
    opts: { ns: 'N' },
    upstream: 'gat 100 Na Nb\r\n',
  },
  { name: 'gats with a negative exptime', line: 'gats -1 a', opts: { ns: 'N' }, upstream: 'gats -1 Na\r\n' },
  {
    name: 'set with value',
    line: 'set k 5 0 3',
    opts: { ns: 'T:', value: 'abc' },
    upstream: 'set T:k 5 0 3\r\nabc\r\n',
  },
  { name: 'set drops noreply', line: 'set k 0 0 2 noreply', opts: { value: 'hi' }, upstream: 'set k 0 0 2\r\nhi\r\n' },
  { name: 'add', line: 'add k 1 60 1', opts: { ns: 'x', value: '1' }, upstream: 'add xk 1 60 1\r\n1\r\n' },
  {
    name: 'replace',
    line: 'replace k 4294967295 0 1',
    opts: { value: 'r' },
    upstream: 'replace k 4294967295 0 1\r\nr\r\n',
  },
  {
    name: 'append',
    line: 'append k 0 0 1 noreply',
    opts: { ns: 'p:', value: 'a' },
    upstream: 'append p:k 0 0 1\r\na\r\n',
  },
  { name: 'prepend', line: 'prepend k 0 0 1', opts: { value: 'p' }, upstream: 'prepend k 0 0 1\r\np\r\n' },
  { name: 'empty value', line: 'set k 0 0 0', opts: { value: '' }, upstream: 'set k 0 0 0\r\n\r\n' },
  {
    name: 'value bytes are passed through untouched',
    line: 'set k 0 0 7',
    opts: { value: 'a\r\nb\0\xff ' },
    upstream: 'set k 0 0 7\r\na\r\nb\0\xff \r\n',
  },
  {
    name: 'cas keeps 64-bit cas unique digits exact',
    line: 'cas k 0 0 1 18446744073709551615 noreply',
    opts: { ns: 'T:', value: 'v' },
    upstream: 'cas T:k 0 0 1 18446744073709551615\r\nv\r\n',
  },
  { name: 'delete', line: 'delete k', opts: { ns: 'T:' }, upstream: 'delete T:k\r\n' },
  { name: 'delete drops the legacy 0 and noreply', line: 'delete k 0 noreply', upstream: 'delete k\r\n' },
  {
    name: 'incr keeps 64-bit delta digits exact',
    line: 'incr k 18446744073709551615',
    opts: { ns: 'T:' },
    upstream: 'incr T:k 18446744073709551615\r\n',
  },
  { name: 'decr drops noreply', line: 'decr k 1 noreply', upstream: 'decr k 1\r\n' },
  { name: 'touch', line: 'touch k 3600 noreply', opts: { ns: 'T:' }, upstream: 'touch T:k 3600\r\n' },
  { name: 'flush_all', line: 'flush_all', upstream: 'flush_all\r\n' },
  { name: 'flush_all with delay, noreply dropped', line: 'flush_all 30 noreply', upstream: 'flush_all 30\r\n' },
  { name: 'verbosity', line: 'verbosity 1 noreply', upstream: 'verbosity 1\r\n' },
  {
    name: 'verbosity with a level that is not digits sends level 0',
    line: 'verbosity noreply',
    upstream: 'verbosity 0\r\n',
  },
  { name: 'version', line: 'version', upstream: 'version\r\n' },
  { name: 'mn', line: 'mn', upstream: 'mn\r\n' },
  { name: 'stats', line: 'stats', upstream: 'stats\r\n' },
  { name: 'stats with arguments', line: 'stats slabs', upstream: 'stats slabs\r\n' },
  {
    name: 'admin family keeps its raw arguments',
    line: 'lru_crawler metadump all',
    upstream: 'lru_crawler metadump all\r\n',
  },
  {
    name: 'mg with flags, q dropped',
    line: 'mg foo k v q O12 t',
    opts: { ns: 'T:' },
    upstream: 'mg T:foo k v O12 t\r\n',
  },
  { name: 'mg without flags', line: 'mg foo', upstream: 'mg foo\r\n' },
  { name: 'md', line: 'md foo q I T30', opts: { ns: 'T:' }, upstream: 'md T:foo I T30\r\n' },
  {
    name: 'ma',
    line: 'ma foo N0 J13 D18446744073709551615 v',
    opts: { ns: 'T:' },
    upstream: 'ma T:foo N0 J13 D18446744073709551615 v\r\n',
  },
  {
    name: 'ms with value, q dropped',
    line: 'ms foo 2 T0 F5 q c',
    opts: { ns: 'T:', value: 'hi' },
    upstream: 'ms T:foo 2 T0 F5 c\r\nhi\r\n',
  },
  { name: 'me', line: 'me foo', opts: { ns: 'T:' }, upstream: 'me T:foo\r\n' },
  {
    name: 'mg base64 key is re-encoded with the namespace',
    line: `mg ${b64('foobar')} b k v`,
    opts: { ns: 'T:' },
    upstream: `mg ${b64('T:foobar')} b k v\r\n`,
  },
  {
    name: 'mg base64 key without namespace passes unchanged',
    line: `mg ${b64('foobar')} b v`,
    upstream: `mg ${b64('foobar')} b v\r\n`,
  },
  {
    name: 'ms base64 binary key',
    line: `ms ${b64(Buffer.from([0, 1, 2, 255]))} 1 b`,
    opts: { ns: 'ns', value: 'x' },
    upstream: `ms ${b64(Buffer.concat([Buffer.from('ns'), Buffer.from([0, 1, 2, 255])]))} 1 b\r\nx\r\n`,
  },
  { name: 'me base64 key keeps b', line: `me ${b64('k')} b`, opts: { ns: 'T:' }, upstream: `me ${b64('T:k')} b\r\n` },
  { name: 'md base64', line: `md ${b64('ab')} b q`, opts: { ns: 'T:' }, upstream: `md ${b64('T:ab')} b\r\n` },
];

describe('encodeRequest', () => {
  it.each(FIXTURES)('$name', ({ line, opts, upstream }) => {
    const { text, refused } = encode(line, opts);
    expect(refused).toBeNull();
    expect(text).toBe(upstream);
  });

  it('pushes the value slices as they are, never copied', () => {
    const a = Buffer.from('hel');
    const b = Buffer.from('lo');
    const { out } = encode('set k 0 0 5', { ns: 'T:', value: [a, b] });
    expect(out).toHaveLength(4);
    expect(out[1]).toBe(a);
    expect(out[2]).toBe(b);
    expect(Buffer.concat(out).toString()).toBe('set T:k 0 0 5\r\nhello\r\n');
  });

  it('builds the command line in exactly one buffer of exactly its length', () => {
    const { out } = encode('get a b c', { ns: 'T:' });
    expect(out).toHaveLength(1);
    expect(out[0]?.length).toBe('get T:a T:b T:c\r\n'.length);
  });

  it('never sends the client raw line: extra spaces are normalised', () => {
    const req = buildRequest('get  a   b', { ns: 'T:' });
    const out: Buffer[] = [];
    encodeRequest(req, out);
    expect(Buffer.concat(out).toString()).toBe('get T:a T:b\r\n');
  });

  it('refuses a base64 key that does not decode when a namespace must be added', () => {
    const { refused, out } = encode('mg Zm9vYmF b v', { ns: 'T:' });
    expect(refused).toBe(Replies.KEY_ENCODING);
    expect(out).toHaveLength(0);
  });

  it('sends a namespaced key too long for 250 bytes as namespace + digest, and still refuses keys over 250 bytes', () => {
    expect(encode(`get ${'a'.repeat(248)}`, { ns: 'T:' }).text).toBe(`get T:${'a'.repeat(248)}\r\n`);
    const long = encode(`get ok ${'a'.repeat(249)}`, { ns: 'T:' });
    expect(long.refused).toBeNull();
    expect(long.text).toMatch(/^get T:ok T:\xff[A-Za-z0-9_-]{43}\r\n$/);
    const set = encode(`set ${'a'.repeat(249)} 0 0 1`, { ns: 'T:', value: 'v' });
    expect(set.text).toMatch(/^set T:\xff[A-Za-z0-9_-]{43} 0 0 1\r\nv\r\n$/);
    // the digest is the same for the same key
    expect(set.text.slice(4, 50)).toBe(long.text.slice(9, 55));
    expect(encode(`delete ${'a'.repeat(251)}`).refused).toBe(Replies.BAD_FORMAT);
    // a key memcached refuses is never digested into one it takes
    expect(encode(`delete ${'a'.repeat(251)}`, { ns: 'T:' }).refused).toBe(Replies.BAD_FORMAT);
    expect(encode(`mg ${b64('a'.repeat(251))} b v`, { ns: 'T:' }).refused).toBe(Replies.BAD_FORMAT);
  });

  it('measures a base64 key by its text as sent when no namespace is added: memcached refuses tokens over 250 bytes', () => {
    expect(encode(`mg ${b64('a'.repeat(186))} b v`).refused).toBeNull();
    expect(encode(`mg ${b64('a'.repeat(189))} b v`).refused).toBe(Replies.BAD_FORMAT);
  });

  it('sends a namespaced base64 key whose base64 form would pass 250 bytes plain when it can, else digested', () => {
    // 183 + 2 bytes encode to 248 characters: base64 as asked
    expect(encode(`ms ${b64('a'.repeat(183))} 1 b`, { ns: 'T:', value: 'v' }).text).toBe(
      `ms ${b64(`T:${'a'.repeat(183)}`)} 1 b\r\nv\r\n`,
    );
    // 186 + 2 would be 252 characters: text-safe bytes go plain, without the b flag
    expect(encode(`ms ${b64('a'.repeat(186))} 1 b k`, { ns: 'T:', value: 'v' }).text).toBe(
      `ms T:${'a'.repeat(186)} 1 k\r\nv\r\n`,
    );
    expect(encode(`me ${b64('a'.repeat(186))} b`, { ns: 'T:' }).text).toBe(`me T:${'a'.repeat(186)}\r\n`);
    // bytes the text protocol cannot carry: digested, in base64
    const spaced = encode(`mg ${b64(' '.repeat(186))} b v`, { ns: 'T:' }).text;
    const token = spaced.slice(3, spaced.indexOf(' ', 3));
    expect(decodeBase64(Buffer.from(token), 0, token.length)?.toString('latin1')).toMatch(/^T:\xff[A-Za-z0-9_-]{43}$/);
    expect(spaced.endsWith(' b v\r\n')).toBe(true);
  });

  it('refuses a value whose slices do not add up to its declared length, so memcached never reads commands as data', () => {
    const { refused, out } = encode('set k 0 0 5', { value: 'abc' });
    expect(refused).toBe(Replies.BAD_DATA_CHUNK);
    expect(out).toHaveLength(0);
    expect(encode('ms k 1', { value: 'abc' }).refused).toBe(Replies.BAD_DATA_CHUNK);
  });

  it('round-trips any binary base64 key with any namespace', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 200 }),
        fc.string({ minLength: 1, maxLength: 40 }),
        (key, ns) => {
          const nsBuf = Buffer.from(ns, 'latin1');
          const { text, refused } = encode(`mg ${b64(Buffer.from(key))} b v`, { ns: nsBuf });
          expect(refused).toBeNull();
          // keys that do not fit as base64 once namespaced, or begin with 0xff, are digested (upstream-key.test.ts)
          if (key[0] === 0xff || b64(Buffer.concat([nsBuf, Buffer.from(key)])).length > 250) return;
          const sent = text.slice(3, text.indexOf(' ', 3));
          const decoded = decodeBase64(Buffer.from(sent), 0, sent.length);
          expect(decoded).toEqual(Buffer.concat([nsBuf, Buffer.from(key)]));
          expect(sent).toBe(Buffer.concat([nsBuf, Buffer.from(key)]).toString('base64'));
        },
      ),
    );
  });
});

describe("memcached's 2048-byte line limit on the shared socket", () => {
  const keys = (n: number, len: number): string =>
    Array.from({ length: n }, (_, i) => `${i}`.padStart(len, 'k')).join(' ');

  it('refuses a gat or stats line over 2048 bytes once encoded (the namespace makes it longer than the client sent)', () => {
    // 9 keys of 220 bytes: 2,000 bytes as sent, over 2048 with an 8-byte namespace on each
    const line = `gat 10 ${keys(9, 220)}`;
    expect(line.length + 2).toBeLessThan(2048);
    expect(encode(line).refused).toBeNull();
    const { refused, out } = encode(line, { ns: 'NSNSNSNS' });
    expect(refused).toBe(Replies.LINE_TOO_LONG);
    expect(out).toHaveLength(0);
    expect(encode(`stats ${'x'.repeat(2048 - 7)}`).refused).toBe(Replies.LINE_TOO_LONG);
    expect(encode(`stats ${'x'.repeat(2048 - 8)}`).text).toHaveLength(2048);
  });

  it("keeps every meta line under 2048 bytes and under memcached's 20-token cap (MFLAG_MAX_OPT_LENGTH)", () => {
    // every flag a command takes, once (the parser refuses repeats), each at its longest
    const longest: Record<string, string> = {
      C: 'C18446744073709551615',
      E: 'E18446744073709551615',
      D: 'D18446744073709551615',
      J: 'J18446744073709551615',
      R: 'R18446744073709551615',
      F: 'F4294967295',
      T: 'T-2147483648',
      N: 'N-2147483648',
      O: `O${'o'.repeat(32)}`,
      M: 'ME',
    };
    const commands: [string, string, string][] = [
      ['mg', '', 'bcfhklOqstuvCENRTPL'],
      ['ms', ' 5', 'bcCEFIkOqsTMNPL'],
      ['md', '', 'bCEIkOqTxPL'],
      ['ma', '', 'bCENJDTMOqtcvkPL'],
    ];
    for (const [name, datalen, letters] of commands) {
      for (const base64 of [false, true]) {
        const flags = [...letters].filter((l) => base64 || l !== 'b').map((l) => longest[l] ?? `${l}xxxxxxxx`);
        const key = base64 ? Buffer.alloc(140, 0xfe).toString('base64') : 'k'.repeat(200);
        const value = datalen === '' ? '' : 'hello\r\n';
        const requests: Request[] = [];
        const parser = new RequestParser({ onRequest: (r) => requests.push(r), onFatal: () => {} });
        parser.feed(Buffer.from(`${name} ${key}${datalen} ${flags.join(' ')}\r\n${value}`, 'latin1'));
        const req = requests[0];
        expect(req?.error?.toString(), `${name} base64=${base64}`).toBeUndefined();
        if (req === undefined) continue;
        req.ns = Buffer.from('N'.repeat(40), 'latin1');
        const out: Buffer[] = [];
        expect(encodeRequest(req, out)).toBeNull();
        const line = Buffer.concat(out).toString('latin1').split('\r\n')[0] ?? '';
        expect(line.length + 2).toBeLessThanOrEqual(2048);
        // memcached counts a final empty token too, and answers "options flags too long" past 20
        expect(line.split(' ').length + 1).toBeLessThanOrEqual(20);
      }
    }
  });

  it('sends a get or gets line of any length (memcached reads those whole)', () => {
    const { refused, text } = encode(`get ${keys(40, 200)}`, { ns: 'NSNSNSNS' });
    expect(refused).toBeNull();
    expect(text.length).toBeGreaterThan(8000);
  });
});

describe('encodeRequest with metaGets (memcached 1.6+ upstream)', () => {
  const meta = (line: string, opts: BuildOptions = {}) => {
    const req = buildRequest(line, opts);
    const out: Buffer[] = [];
    const refused = encodeRequest(req, out, true);
    return { text: Buffer.concat(out).toString('latin1'), refused, req };
  };

  it('sends a one-key get as mg asking for value, flags and key, and marks the request', () => {
    const { text, refused, req } = meta('get foo', { ns: 'T1:' });
    expect(refused).toBeNull();
    expect(text).toBe('mg T1:foo v f k\r\n');
    expect(req.upstreamMeta).toBe(true);
  });

  it('asks for the cas unique too for a one-key gets', () => {
    expect(meta('gets foo', { ns: 'T1:' }).text).toBe('mg T1:foo v f c k\r\n');
  });

  it('sends an admin tenant key (no namespace) unchanged', () => {
    expect(meta('get plain').text).toBe('mg plain v f k\r\n');
  });

  it('keeps multi-key get, gat and gats classic', () => {
    for (const [line, upstream] of [
      ['get a b', 'get N:a N:b\r\n'],
      ['gets a b', 'gets N:a N:b\r\n'],
      ['gat 10 a', 'gat 10 N:a\r\n'],
      ['gats 10 a', 'gats 10 N:a\r\n'],
    ] as const) {
      const { text, req } = meta(line, { ns: 'N:' });
      expect(text).toBe(upstream);
      expect(req.upstreamMeta).toBe(false);
    }
  });

  it('keeps get classic without metaGets', () => {
    const req = buildRequest('get foo', { ns: 'N:' });
    const out: Buffer[] = [];
    encodeRequest(req, out);
    expect(Buffer.concat(out).toString('latin1')).toBe('get N:foo\r\n');
    expect(req.upstreamMeta).toBe(false);
  });

  it('sends a key over 250 bytes once namespaced as namespace + digest, as for a classic get', () => {
    const { refused, text } = meta(`get ${'k'.repeat(247)}`, { ns: 'N:ab' });
    expect(refused).toBeNull();
    expect(text).toMatch(/^mg N:ab\xff[A-Za-z0-9_-]{43} v f k\r\n$/);
  });
});

describe('digit writer', () => {
  it('writes integers exactly, negative ones with a sign', () => {
    fc.assert(
      fc.property(fc.integer({ min: -Number.MAX_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }), (n) => {
        const buf = Buffer.alloc(intLength(n));
        expect(writeInt(buf, 0, n)).toBe(buf.length);
        expect(buf.toString()).toBe(String(n));
      }),
    );
    expect(digitCount(0)).toBe(1);
    expect(digitCount(9)).toBe(1);
    expect(digitCount(10)).toBe(2);
  });
});
