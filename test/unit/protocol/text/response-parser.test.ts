import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ReplyStatus, type Request } from '../../../../src/protocol/text/request.js';
import { encodeRequest } from '../../../../src/protocol/text/request-encoder.js';
import { MAX_REPLY_LINE_BYTES, ResponseParser } from '../../../../src/protocol/text/response-parser.js';
import { Fifo, RecordingOwner, buildRequest, replyText, type BuildOptions } from './request-builder.js';
import { detached, splits } from './splits.js';

type Req = [line: string, opts?: BuildOptions];
interface Expect {
  client: string;
  status: ReplyStatus;
  hits?: number;
}
interface Fixture {
  name: string;
  req: Req;
  upstream: string;
  expected: Expect;
}

const S = ReplyStatus;
const T = { ns: 'T:' };
const b64 = (s: string) => Buffer.from(s, 'latin1').toString('base64');
const mgB64 = (key: string): Req => [`mg ${b64(key)} b k v`, T];
/** a one-key get/gets the encoder sent as `mg <ns><key> v f [c] k` */
const M = { ...T, upstreamMeta: true };

const FIXTURES: Fixture[] = [
  {
    name: 'mg of a base64 key answered with a plain key (item stored plain): the plain key, as memcached shows it',
    req: mgB64('foo'),
    upstream: 'VA 1 kT:foo\r\nx\r\n',
    expected: { client: 'VA 1 kfoo\r\nx\r\n', status: S.OK, hits: 1 },
  },
  {
    name: 'mg of a plain key answered in base64 (item stored with a binary key): base64 with b',
    req: ['mg foo k v', T],
    upstream: `VA 1 k${b64('T:foo')} b\r\nx\r\n`,
    expected: { client: `VA 1 k${b64('foo')} b\r\nx\r\n`, status: S.OK, hits: 1 },
  },
  {
    name: 'me of a base64 key answered plain',
    req: [`me ${b64('foo')} b`, T],
    upstream: 'ME T:foo exp=-1 la=1 cas=2 fetch=no cls=1 size=63\r\n',
    expected: { client: 'ME foo exp=-1 la=1 cas=2 fetch=no cls=1 size=63\r\n', status: S.OK },
  },
  {
    name: 'me of a plain key answered in base64',
    req: ['me foo', T],
    upstream: `ME ${b64('T:foo')} exp=-1 la=1 cas=2 fetch=no cls=1 size=63\r\n`,
    expected: { client: `ME ${b64('foo')} exp=-1 la=1 cas=2 fetch=no cls=1 size=63\r\n`, status: S.OK },
  },
  {
    name: 'get of a key asked twice, with a miss between',
    req: ['get a b a', T],
    upstream: 'VALUE T:a 0 1\r\n1\r\nVALUE T:a 0 1\r\n1\r\nEND\r\n',
    expected: { client: 'VALUE a 0 1\r\n1\r\nVALUE a 0 1\r\n1\r\nEND\r\n', status: S.OK, hits: 2 },
  },
  {
    name: 'get hit strips the namespace from the VALUE line',
    req: ['get foo', T],
    upstream: 'VALUE T:foo 5 3\r\nbar\r\nEND\r\n',
    expected: { client: 'VALUE foo 5 3\r\nbar\r\nEND\r\n', status: S.OK, hits: 1 },
  },
  {
    name: 'get miss',
    req: ['get foo', T],
    upstream: 'END\r\n',
    expected: { client: 'END\r\n', status: S.MISS, hits: 0 },
  },
  {
    name: 'gets of two keys with cas',
    req: ['gets foo bar', T],
    upstream: 'VALUE T:foo 0 1 12\r\nx\r\nVALUE T:bar 7 2 18446744073709551615\r\nyy\r\nEND\r\n',
    expected: {
      client: 'VALUE foo 0 1 12\r\nx\r\nVALUE bar 7 2 18446744073709551615\r\nyy\r\nEND\r\n',
      status: S.OK,
      hits: 2,
    },
  },
  {
    name: 'get without namespace passes lines unchanged',
    req: ['get foo'],
    upstream: 'VALUE foo 0 2\r\nhi\r\nEND\r\n',
    expected: { client: 'VALUE foo 0 2\r\nhi\r\nEND\r\n', status: S.OK, hits: 1 },
  },
  {
    name: 'data block that looks like reply lines',
    req: ['get k', T],
    upstream: 'VALUE T:k 0 12\r\nEND\r\nVALUE x\r\nEND\r\n',
    expected: { client: 'VALUE k 0 12\r\nEND\r\nVALUE x\r\nEND\r\n', status: S.OK, hits: 1 },
  },
  {
    name: 'empty data block',
    req: ['get k', T],
    upstream: 'VALUE T:k 0 0\r\n\r\nEND\r\n',
    expected: { client: 'VALUE k 0 0\r\n\r\nEND\r\n', status: S.OK, hits: 1 },
  },
  {
    name: 'gat',
    req: ['gat 10 k', T],
    upstream: 'VALUE T:k 1 1\r\nv\r\nEND\r\n',
    expected: { client: 'VALUE k 1 1\r\nv\r\nEND\r\n', status: S.OK, hits: 1 },
  },
  {
    name: 'VALUE list ended by an error',
    req: ['get a b', T],
    upstream: 'VALUE T:a 0 1\r\nv\r\nSERVER_ERROR out of memory writing get response\r\n',
    expected: {
      client: 'VALUE a 0 1\r\nv\r\nSERVER_ERROR out of memory writing get response\r\n',
      status: S.ERROR,
      hits: 1,
    },
  },
  {
    name: 'get error',
    req: ['get a', T],
    upstream: 'CLIENT_ERROR bad command line format\r\n',
    expected: { client: 'CLIENT_ERROR bad command line format\r\n', status: S.ERROR },
  },
  {
    name: 'set STORED',
    req: ['set k 0 0 1', { ...T, value: 'v' }],
    upstream: 'STORED\r\n',
    expected: { client: 'STORED\r\n', status: S.STORED },
  },
  {
    name: 'add NOT_STORED',
    req: ['add k 0 0 1', { ...T, value: 'v' }],
    upstream: 'NOT_STORED\r\n',
    expected: { client: 'NOT_STORED\r\n', status: S.NOT_STORED },
  },
  {
    name: 'cas EXISTS',
    req: ['cas k 0 0 1 5', { ...T, value: 'v' }],
    upstream: 'EXISTS\r\n',
    expected: { client: 'EXISTS\r\n', status: S.EXISTS },
  },
  {
    name: 'cas NOT_FOUND',
    req: ['cas k 0 0 1 5', { ...T, value: 'v' }],
    upstream: 'NOT_FOUND\r\n',
    expected: { client: 'NOT_FOUND\r\n', status: S.NOT_FOUND },
  },
  {
    name: 'set too large',
    req: ['set k 0 0 1', { value: 'v' }],
    upstream: 'SERVER_ERROR object too large for cache\r\n',
    expected: { client: 'SERVER_ERROR object too large for cache\r\n', status: S.ERROR },
  },
  {
    name: 'delete DELETED',
    req: ['delete k', T],
    upstream: 'DELETED\r\n',
    expected: { client: 'DELETED\r\n', status: S.DELETED },
  },
  {
    name: 'delete NOT_FOUND',
    req: ['delete k', T],
    upstream: 'NOT_FOUND\r\n',
    expected: { client: 'NOT_FOUND\r\n', status: S.NOT_FOUND },
  },
  {
    name: 'incr number',
    req: ['incr k 5', T],
    upstream: '18446744073709551615\r\n',
    expected: { client: '18446744073709551615\r\n', status: S.NUMBER },
  },
  {
    name: 'decr number space-padded',
    req: ['decr k 5', T],
    upstream: '9 \r\n',
    expected: { client: '9 \r\n', status: S.NUMBER },
  },
  {
    name: 'incr NOT_FOUND',
    req: ['incr k 1'],
    upstream: 'NOT_FOUND\r\n',
    expected: { client: 'NOT_FOUND\r\n', status: S.NOT_FOUND },
  },
  {
    name: 'incr non-numeric',
    req: ['incr k 1'],
    upstream: 'CLIENT_ERROR cannot increment or decrement non-numeric value\r\n',
    expected: { client: 'CLIENT_ERROR cannot increment or decrement non-numeric value\r\n', status: S.ERROR },
  },
  {
    name: 'touch TOUCHED',
    req: ['touch k 10', T],
    upstream: 'TOUCHED\r\n',
    expected: { client: 'TOUCHED\r\n', status: S.TOUCHED },
  },
  { name: 'flush_all OK', req: ['flush_all'], upstream: 'OK\r\n', expected: { client: 'OK\r\n', status: S.OK } },
  { name: 'verbosity OK', req: ['verbosity 1'], upstream: 'OK\r\n', expected: { client: 'OK\r\n', status: S.OK } },
  {
    name: 'version',
    req: ['version'],
    upstream: 'VERSION 1.6.18\r\n',
    expected: { client: 'VERSION 1.6.18\r\n', status: S.OK },
  },
  { name: 'mn', req: ['mn'], upstream: 'MN\r\n', expected: { client: 'MN\r\n', status: S.OK } },
  {
    name: 'stats',
    req: ['stats'],
    upstream: 'STAT pid 1\r\nSTAT version 1.6.18\r\nEND\r\n',
    expected: { client: 'STAT pid 1\r\nSTAT version 1.6.18\r\nEND\r\n', status: S.OK },
  },
  { name: 'stats reset', req: ['stats reset'], upstream: 'RESET\r\n', expected: { client: 'RESET\r\n', status: S.OK } },
  {
    name: 'stats detail on',
    req: ['stats detail on'],
    upstream: 'OK\r\n',
    expected: { client: 'OK\r\n', status: S.OK },
  },
  {
    name: 'stats error',
    req: ['stats nope'],
    upstream: 'ERROR\r\n',
    expected: { client: 'ERROR\r\n', status: S.ERROR },
  },
  {
    name: 'lru_crawler metadump lines end in bare LF',
    req: ['lru_crawler metadump all'],
    upstream: 'key=a exp=-1\nkey=b exp=-1\nEND\r\n',
    expected: { client: 'key=a exp=-1\nkey=b exp=-1\nEND\r\n', status: S.OK },
  },
  {
    name: 'lru_crawler metadump busy',
    req: ['lru_crawler metadump all'],
    upstream: 'BUSY currently processing crawler request\r\n',
    expected: { client: 'BUSY currently processing crawler request\r\n', status: S.OK },
  },
  {
    name: 'lru_crawler mgdump until EN',
    req: ['lru_crawler mgdump all'],
    upstream: 'mg a\r\nmg b\r\nEN\r\n',
    expected: { client: 'mg a\r\nmg b\r\nEN\r\n', status: S.OK },
  },
  {
    name: 'admin one line',
    req: ['lru_crawler enable'],
    upstream: 'OK\r\n',
    expected: { client: 'OK\r\n', status: S.OK },
  },
  {
    name: 'shutdown refused by memcached',
    req: ['shutdown'],
    upstream: 'ERROR: shutdown not enabled\r\n',
    expected: { client: 'ERROR: shutdown not enabled\r\n', status: S.ERROR },
  },
  {
    name: 'mg VA strips the namespace from k',
    req: ['mg foo k v c', T],
    upstream: 'VA 2 kT:foo c80\r\nhi\r\n',
    expected: { client: 'VA 2 kfoo c80\r\nhi\r\n', status: S.OK, hits: 1 },
  },
  {
    name: 'mg VA without k',
    req: ['mg foo s v', T],
    upstream: 'VA 2 s2\r\nhi\r\n',
    expected: { client: 'VA 2 s2\r\nhi\r\n', status: S.OK, hits: 1 },
  },
  {
    name: 'mg VA with empty value',
    req: ['mg foo v', T],
    upstream: 'VA 0\r\n\r\n',
    expected: { client: 'VA 0\r\n\r\n', status: S.OK, hits: 1 },
  },
  {
    name: 'mg HD',
    req: ['mg foo k', T],
    upstream: 'HD kT:foo\r\n',
    expected: { client: 'HD kfoo\r\n', status: S.HD, hits: 0 },
  },
  { name: 'mg EN', req: ['mg foo v', T], upstream: 'EN\r\n', expected: { client: 'EN\r\n', status: S.MISS, hits: 0 } },
  {
    name: 'mg EN with k and O',
    req: ['mg nokey k O55 v', T],
    upstream: 'EN kT:nokey O55\r\n',
    expected: { client: 'EN knokey O55\r\n', status: S.MISS },
  },
  {
    name: 'mg opaque starting like a key is left alone',
    req: ['mg foo Okx v', T],
    upstream: 'EN Okx\r\n',
    expected: { client: 'EN Okx\r\n', status: S.MISS },
  },
  {
    name: 'ms HD',
    req: ['ms foo 2 k c', { ...T, value: 'hi' }],
    upstream: 'HD kT:foo c1\r\n',
    expected: { client: 'HD kfoo c1\r\n', status: S.HD },
  },
  {
    name: 'ms NS',
    req: ['ms foo 2 ME', { ...T, value: 'hi' }],
    upstream: 'NS\r\n',
    expected: { client: 'NS\r\n', status: S.NOT_STORED },
  },
  {
    name: 'ms EX',
    req: ['ms foo 2 C1', { ...T, value: 'hi' }],
    upstream: 'EX\r\n',
    expected: { client: 'EX\r\n', status: S.EXISTS },
  },
  {
    name: 'md NF',
    req: ['md foo k O1', T],
    upstream: 'NF kT:foo O1\r\n',
    expected: { client: 'NF kfoo O1\r\n', status: S.NOT_FOUND },
  },
  { name: 'md HD', req: ['md foo', T], upstream: 'HD\r\n', expected: { client: 'HD\r\n', status: S.HD } },
  {
    name: 'ma VA',
    req: ['ma n N0 J5 v k', T],
    upstream: 'VA 1 kT:n\r\n5\r\n',
    expected: { client: 'VA 1 kn\r\n5\r\n', status: S.OK, hits: 1 },
  },
  { name: 'ma NF', req: ['ma n', T], upstream: 'NF\r\n', expected: { client: 'NF\r\n', status: S.NOT_FOUND } },
  {
    name: 'meta error',
    req: ['mg foo v', T],
    upstream: 'CLIENT_ERROR bad command line format\r\n',
    expected: { client: 'CLIENT_ERROR bad command line format\r\n', status: S.ERROR },
  },
  {
    name: 'mg base64 key: decoded, stripped, re-encoded',
    req: mgB64('foobar'),
    upstream: `VA 2 k${b64('T:foobar')} b\r\nhi\r\n`,
    expected: { client: `VA 2 k${b64('foobar')} b\r\nhi\r\n`, status: S.OK, hits: 1 },
  },
  {
    name: 'mg binary base64 key',
    req: [`mg ${Buffer.from([0, 255, 10]).toString('base64')} b k`, T],
    upstream: `HD k${Buffer.from([0x54, 0x3a, 0, 255, 10]).toString('base64')} b\r\n`,
    expected: { client: `HD k${Buffer.from([0, 255, 10]).toString('base64')} b\r\n`, status: S.HD },
  },
  {
    name: 'reply b flag marks a base64 key even when it comes after k',
    req: ['mg foo k', T],
    upstream: `HD k${b64('T:foo')} b\r\n`,
    expected: { client: `HD k${b64('foo')} b\r\n`, status: S.HD },
  },
  {
    name: 'me strips the namespace',
    req: ['me foo', T],
    upstream: 'ME T:foo exp=-1 la=0 cas=1 fetch=no cls=1 size=67\r\n',
    expected: { client: 'ME foo exp=-1 la=0 cas=1 fetch=no cls=1 size=67\r\n', status: S.OK },
  },
  {
    name: 'me base64',
    req: [`me ${b64('foo')} b`, T],
    upstream: `ME ${b64('T:foo')} exp=-1 la=0\r\n`,
    expected: { client: `ME ${b64('foo')} exp=-1 la=0\r\n`, status: S.OK },
  },
  { name: 'me miss', req: ['me foo', T], upstream: 'EN\r\n', expected: { client: 'EN\r\n', status: S.MISS } },
  {
    name: 'a get sent as mg: VA becomes the VALUE line with the client key, and END follows the data',
    req: ['get foo', M],
    upstream: 'VA 3 f5 kT:foo\r\nbar\r\n',
    expected: { client: 'VALUE foo 5 3\r\nbar\r\nEND\r\n', status: S.OK, hits: 1 },
  },
  {
    name: 'a get sent as mg: EN becomes END',
    req: ['get foo', M],
    upstream: 'EN\r\n',
    expected: { client: 'END\r\n', status: S.MISS, hits: 0 },
  },
  {
    name: 'a get sent as mg: EN with the key (memcached 1.6.18 echoes k on a miss)',
    req: ['get foo', M],
    upstream: 'EN kT:foo\r\n',
    expected: { client: 'END\r\n', status: S.MISS, hits: 0 },
  },
  {
    name: 'a gets sent as mg: the cas unique goes last on the VALUE line',
    req: ['gets foo', M],
    upstream: 'VA 2 f4294967295 c18446744073709551615 kT:foo\r\nhi\r\n',
    expected: { client: 'VALUE foo 4294967295 2 18446744073709551615\r\nhi\r\nEND\r\n', status: S.OK, hits: 1 },
  },
  {
    name: 'a get sent as mg: flags in any order, stale and win flags ignored',
    req: ['get foo', M],
    upstream: 'VA 1 kT:foo W f0 X Z\r\nx\r\n',
    expected: { client: 'VALUE foo 0 1\r\nx\r\nEND\r\n', status: S.OK, hits: 1 },
  },
  {
    name: 'a get sent as mg of a key stored binary (ms … b): the key comes back in base64',
    req: ['get b64key', M],
    upstream: `VA 2 f0 k${b64('T:b64key')} b\r\nhi\r\n`,
    expected: { client: 'VALUE b64key 0 2\r\nhi\r\nEND\r\n', status: S.OK, hits: 1 },
  },
  {
    name: 'a get sent as mg without a namespace (admin tenant)',
    req: ['get foo', { upstreamMeta: true }],
    upstream: 'VA 0 f1 kfoo\r\n\r\n',
    expected: { client: 'VALUE foo 1 0\r\n\r\nEND\r\n', status: S.OK, hits: 1 },
  },
  {
    name: 'a get sent as mg: an error line passes as it is',
    req: ['get foo', M],
    upstream: 'SERVER_ERROR out of memory\r\n',
    expected: { client: 'SERVER_ERROR out of memory\r\n', status: S.ERROR, hits: 0 },
  },
];

interface DesyncFixture {
  name: string;
  req: Req;
  upstream: string;
}

const DESYNCS: DesyncFixture[] = [
  {
    name: 'VALUE lines out of request order',
    req: ['get a b', T],
    upstream: 'VALUE T:b 0 1\r\nx\r\nVALUE T:a 0 1\r\nx\r\nEND\r\n',
  },
  {
    name: 'more VALUE lines than keys',
    req: ['get a', T],
    upstream: 'VALUE T:a 0 1\r\nx\r\nVALUE T:a 0 1\r\nx\r\nEND\r\n',
  },
  { name: 'a VALUE key of another namespace', req: ['get foo', T], upstream: 'VALUE X:foo 0 1\r\nx\r\nEND\r\n' },
  { name: 'a VALUE key that is only the namespace', req: ['get foo', T], upstream: 'VALUE T: 0 1\r\nx\r\nEND\r\n' },
  { name: 'a VALUE key shorter than the namespace', req: ['get foo', T], upstream: 'VALUE T 0 1\r\nx\r\nEND\r\n' },
  { name: 'a meta k token of another namespace', req: ['mg foo k v', T], upstream: 'VA 1 kX:foo\r\nx\r\n' },
  { name: 'a base64 k token of another namespace', req: mgB64('foo'), upstream: `VA 1 k${b64('X:foo')} b\r\nx\r\n` },
  { name: 'a base64 k token that does not decode', req: mgB64('foo'), upstream: 'HD kVDpmb2 b\r\n' },
  { name: 'an ME line of another namespace', req: ['me foo', T], upstream: 'ME X:foo exp=-1\r\n' },
  { name: 'two k tokens', req: ['mg foo k', T], upstream: 'HD kT:foo kT:bar\r\n' },
  { name: 'garbage for a get', req: ['get foo', T], upstream: 'HELLO\r\n' },
  { name: 'STORED for a get', req: ['get foo', T], upstream: 'STORED\r\n' },
  {
    name: 'a VALUE list for a set',
    req: ['set k 0 0 1', { ...T, value: 'v' }],
    upstream: 'VALUE T:k 0 1\r\nv\r\nEND\r\n',
  },
  { name: 'DELETED for a touch', req: ['touch k 1', T], upstream: 'DELETED\r\n' },
  { name: 'a word for incr', req: ['incr k 1', T], upstream: '12a\r\n' },
  { name: 'VERSION for mn', req: ['mn'], upstream: 'VERSION 1\r\n' },
  { name: 'an unknown meta code', req: ['mg foo v', T], upstream: 'ZZ\r\n' },
  { name: 'a meta code glued to its flags', req: ['mg foo v', T], upstream: 'HDk\r\n' },
  { name: 'a VA size that is not a number', req: ['mg foo v', T], upstream: 'VA x\r\nab\r\n' },
  { name: 'a malformed VALUE line', req: ['get foo', T], upstream: 'VALUE T:foo 0\r\nx\r\nEND\r\n' },
  { name: 'a VALUE cas that is not a number', req: ['gets foo', T], upstream: 'VALUE T:foo 0 1 1x\r\nx\r\nEND\r\n' },
  { name: 'a data block longer than announced', req: ['get foo', T], upstream: 'VALUE T:foo 0 1\r\nxyEND\r\n' },
  { name: 'a line ended by a bare LF', req: ['get foo', T], upstream: 'END\n' },
  { name: 'a get sent as mg answered with another key', req: ['get foo', M], upstream: 'VA 1 f0 kT:fob\r\nx\r\n' },
  { name: 'a get sent as mg answered with a longer key', req: ['get foo', M], upstream: 'VA 1 f0 kT:fooo\r\nx\r\n' },
  { name: 'a get sent as mg answered in another namespace', req: ['get foo', M], upstream: 'VA 1 f0 kX:foo\r\nx\r\n' },
  { name: 'a get sent as mg: a miss for another key', req: ['get foo', M], upstream: 'EN kT:bar\r\n' },
  { name: 'a get sent as mg: VA without the key', req: ['get foo', M], upstream: 'VA 1 f0\r\nx\r\n' },
  { name: 'a get sent as mg: VA without client flags', req: ['get foo', M], upstream: 'VA 1 kT:foo\r\nx\r\n' },
  { name: 'a gets sent as mg: VA without cas', req: ['gets foo', M], upstream: 'VA 1 f0 kT:foo\r\nx\r\n' },
  { name: 'a get sent as mg: flags that are not a number', req: ['get foo', M], upstream: 'VA 1 f1x kT:foo\r\nx\r\n' },
  { name: 'a get sent as mg: HD', req: ['get foo', M], upstream: 'HD\r\n' },
  { name: 'a get sent as mg: a classic VALUE list', req: ['get foo', M], upstream: 'VALUE T:foo 0 1\r\nx\r\nEND\r\n' },
];

function run(reqs: Req[], chunks: Buffer[]) {
  const fifo = new Fifo();
  const owner = new RecordingOwner();
  const parser = new ResponseParser(fifo);
  const built = reqs.map(([line, opts]) => buildRequest(line, { ...opts, owner }));
  fifo.items.push(...built);
  for (const c of chunks) parser.feed(c);
  return { fifo, owner, built };
}

function check(fixture: Fixture) {
  const data = Buffer.from(fixture.upstream, 'latin1');
  for (const { how, chunks } of splits(data)) {
    const { fifo, owner, built } = run([fixture.req], detached(chunks));
    const req = built[0];
    expect(fifo.desyncs, how).toEqual([]);
    expect(owner.replies, how).toHaveLength(1);
    expect(fifo.items, how).toHaveLength(0);
    if (req === undefined) throw new Error('no request');
    expect(req.done, how).toBe(true);
    expect(replyText(req), how).toBe(fixture.expected.client);
    expect(req.status, how).toBe(fixture.expected.status);
    expect(req.hits, how).toBe(fixture.expected.hits ?? 0);
  }
}

describe('ResponseParser', () => {
  it.each(FIXTURES)('$name (whole, byte by byte, split every way)', (fixture) => check(fixture));

  it.each(DESYNCS)('reports a desync on $name and never completes the request', ({ req, upstream }) => {
    for (const { how, chunks } of splits(Buffer.from(upstream, 'latin1'))) {
      const { fifo, owner } = run([req], detached(chunks));
      expect(fifo.desyncs, how).toHaveLength(1);
      expect(owner.replies, how).toHaveLength(0);
    }
  });

  it('answers a multi-get of short and digested long keys with the keys as the client sent them', () => {
    const long1 = 'L'.repeat(250);
    const long2 = `${'L'.repeat(249)}2`;
    const req = buildRequest(`get ${long1} s ${long2}`, T);
    const out: Buffer[] = [];
    expect(encodeRequest(req, out)).toBeNull();
    const [, u1, us, u2] = Buffer.concat(out).toString('latin1').trim().split(' ');
    expect(us).toBe('T:s');
    expect(u1).not.toBe(u2);
    const upstream = `VALUE ${u1} 0 1\r\n1\r\nVALUE ${u2} 0 1\r\n2\r\nEND\r\n`;
    for (const { how, chunks } of splits(Buffer.from(upstream, 'latin1'))) {
      const again = buildRequest(`get ${long1} s ${long2}`, T);
      const fifo = new Fifo();
      fifo.items.push(again);
      const parser = new ResponseParser(fifo);
      for (const c of detached(chunks)) parser.feed(c);
      expect(fifo.desyncs, how).toEqual([]);
      expect(replyText(again), how).toBe(`VALUE ${long1} 0 1\r\n1\r\nVALUE ${long2} 0 1\r\n2\r\nEND\r\n`);
    }
  });

  it('reports a desync on bytes with no request in flight', () => {
    const { fifo } = run([], [Buffer.from('STORED\r\n')]);
    expect(fifo.desyncs).toEqual(['reply bytes with no request in flight']);
  });

  it('reports a desync on bytes after the last in-flight reply', () => {
    const { fifo, owner } = run([['get a', T]], [Buffer.from('END\r\nEND\r\n')]);
    expect(owner.replies).toHaveLength(1);
    expect(fifo.desyncs).toHaveLength(1);
  });

  it('reports a desync on a reply line past MAX_REPLY_LINE_BYTES, in many chunks', () => {
    const fifo = new Fifo();
    const parser = new ResponseParser(fifo);
    fifo.items.push(buildRequest('stats'));
    const piece = Buffer.alloc(1000, 0x61);
    for (let sent = 0; sent <= MAX_REPLY_LINE_BYTES; sent += piece.length) parser.feed(piece);
    expect(fifo.desyncs).toEqual(['reply line too long']);
  });

  it('ignores everything after a desync until reset, then parses again', () => {
    const fifo = new Fifo();
    const parser = new ResponseParser(fifo);
    const owner = new RecordingOwner();
    fifo.items.push(buildRequest('get a', { ...T, owner }));
    parser.feed(Buffer.from('BOGUS\r\nEND\r\n'));
    expect(fifo.desyncs).toHaveLength(1);
    parser.feed(Buffer.from('END\r\n'));
    expect(owner.replies).toHaveLength(0);
    parser.reset();
    parser.feed(Buffer.from('END\r\n'));
    expect(owner.replies).toHaveLength(1);
  });

  it('drops a half-read reply on reset', () => {
    const fifo = new Fifo();
    const parser = new ResponseParser(fifo);
    const owner = new RecordingOwner();
    fifo.items.push(buildRequest('get a', { ...T, owner }));
    parser.feed(Buffer.from('VALUE T:a 0 5\r\nab'));
    expect(parser.isMidReply).toBe(true);
    parser.reset();
    expect(parser.isMidReply).toBe(false);
    parser.feed(Buffer.from('END\r\n'));
    expect(owner.replies).toHaveLength(1);
    expect(owner.replies[0]?.status).toBe(ReplyStatus.MISS);
  });

  it('passes data blocks and unchanged lines as slices of the upstream chunk', () => {
    const text = 'VALUE T:a 0 3\r\nabc\r\nEND\r\nSTORED\r\n';
    const chunk = Buffer.alloc(text.length); // its own memory, not the shared pool
    chunk.write(text, 'latin1');
    const { owner } = run(
      [
        ['get a', T],
        ['set b 0 0 1', { ...T, value: 'v' }],
      ],
      [chunk],
    );
    const [get, set] = owner.replies;
    const parts = get?.reply ?? [];
    expect(parts).toHaveLength(2);
    expect(parts[0]?.buffer).not.toBe(chunk.buffer); // rewritten VALUE line
    expect(parts[1]?.buffer).toBe(chunk.buffer); // "abc\r\nEND\r\n" in one slice
    expect(parts[1]?.toString()).toBe('abc\r\nEND\r\n');
    expect(set?.reply?.[0]?.buffer).toBe(chunk.buffer);
  });

  it('answers pipelined requests in order, each with its own reply, however the stream is cut', () => {
    const reqs: Req[] = [
      ['get a b', T],
      ['set c 0 0 1', { ...T, value: 'v' }],
      ['mg d k v', T],
      ['incr e 1', T],
      ['stats'],
      ['mg f v', T],
      ['me g', T],
      ['mn'],
    ];
    const upstream = [
      'VALUE T:a 0 1\r\n1\r\nEND\r\n',
      'STORED\r\n',
      'VA 2 kT:d\r\ndd\r\n',
      '7\r\n',
      'STAT pid 1\r\nEND\r\n',
      'EN\r\n',
      'ME T:g exp=-1\r\n',
      'MN\r\n',
    ];
    const client = [
      'VALUE a 0 1\r\n1\r\nEND\r\n',
      'STORED\r\n',
      'VA 2 kd\r\ndd\r\n',
      '7\r\n',
      'STAT pid 1\r\nEND\r\n',
      'EN\r\n',
      'ME g exp=-1\r\n',
      'MN\r\n',
    ];
    const statuses = [S.OK, S.STORED, S.OK, S.NUMBER, S.OK, S.MISS, S.OK, S.OK];
    for (const { how, chunks } of splits(Buffer.from(upstream.join('')))) {
      const { fifo, owner, built } = run(reqs, detached(chunks));
      expect(fifo.desyncs, how).toEqual([]);
      expect(owner.replies, how).toEqual(built);
      expect(owner.replies.map(replyText), how).toEqual(client);
      expect(
        owner.replies.map((r) => r.status),
        how,
      ).toEqual(statuses);
    }
  });

  it('stops at once when an owner resets the parser from onReply', () => {
    const fifo = new Fifo();
    const parser = new ResponseParser(fifo);
    const seen: string[] = [];
    const owner = {
      onReply(req: Request) {
        seen.push(replyText(req));
        parser.reset();
        fifo.items.length = 0;
      },
    };
    fifo.items.push(buildRequest('mn', { owner }), buildRequest('mn', { owner }));
    parser.feed(Buffer.from('MN\r\nMN\r\n'));
    expect(seen).toEqual(['MN\r\n']);
    expect(fifo.desyncs).toEqual([]);
  });

  it('never throws and never hands a foreign key to a client, whatever the upstream sends', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 1, max: 50 }), (bytes, cut) => {
        const fifo = new Fifo();
        const owner = new RecordingOwner();
        const parser = new ResponseParser(fifo);
        fifo.items.push(buildRequest('get a', { ...T, owner }), buildRequest('mg a k v', { ...T, owner }));
        const data = Buffer.from(bytes);
        for (let i = 0; i < data.length; i += cut) parser.feed(data.subarray(i, i + cut));
        for (const r of owner.replies) expect(replyText(r)).not.toMatch(/T:/);
      }),
    );
  });
});
