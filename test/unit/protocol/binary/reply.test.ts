/**
 * encodeBinaryReply: a fixture table of (binary request, memcached's text
 * reply) → the exact response packet bytes, each reply also cut into slices
 * at every index; quiet opcodes; the text error → binary status table; the
 * local-reply helpers; and the full round trip of a binary request through the
 * upstream encoder and response parser under a namespace.
 */
import { describe, expect, it } from 'vitest';
import { HEADER_BYTES, MAGIC_RESPONSE, Opcode as Op, Status } from '../../../../src/protocol/binary/header.js';
import { BinaryRequestParser } from '../../../../src/protocol/binary/parser.js';
import {
  binaryErrorPacket,
  binaryFlushOk,
  binaryNoop,
  binarySaslFailure,
  binarySaslMechanisms,
  binarySaslOk,
  binaryStats,
  binaryStatus,
  encodeBinaryReply,
  mapTextError,
} from '../../../../src/protocol/binary/reply.js';
import { Replies, notAllowed } from '../../../../src/protocol/text/replies.js';
import { Request } from '../../../../src/protocol/text/request.js';
import { encodeRequest } from '../../../../src/protocol/text/request-encoder.js';
import { ResponseParser } from '../../../../src/protocol/text/response-parser.js';
import { Fifo } from '../text/request-builder.js';
import { BinaryRecordingSink, arithExtras, packet, storeExtras, u32, type PacketSpec } from './binary-fixtures.js';

interface ResponseSpec {
  opcode: number;
  status?: number;
  opaque?: number;
  cas?: bigint;
  extras?: Buffer;
  key?: string | Buffer;
  value?: string | Buffer;
}

const bytes = (v: string | Buffer | undefined): Buffer =>
  v === undefined ? Buffer.alloc(0) : typeof v === 'string' ? Buffer.from(v, 'latin1') : v;

/** An expected response packet, built field by field. */
function response(spec: ResponseSpec): Buffer {
  const extras = spec.extras ?? Buffer.alloc(0);
  const key = bytes(spec.key);
  const value = bytes(spec.value);
  const head = Buffer.alloc(HEADER_BYTES);
  head[0] = MAGIC_RESPONSE;
  head[1] = spec.opcode;
  head.writeUInt16BE(key.length, 2);
  head[4] = extras.length;
  head.writeUInt16BE(spec.status ?? 0, 6);
  head.writeUInt32BE(extras.length + key.length + value.length, 8);
  head.writeUInt32BE(spec.opaque ?? 0, 12);
  head.writeBigUInt64BE(spec.cas ?? 0n, 16);
  return Buffer.concat([head, extras, key, value]);
}

function u64(n: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(n);
  return b;
}

function parseOne(spec: PacketSpec): Request {
  const sink = new BinaryRecordingSink();
  new BinaryRequestParser(sink).feed(packet(spec));
  const req = sink.requests[0];
  if (req === undefined) throw new Error('no request');
  return req;
}

/** The reply to `req` when the text reply is `slices`. */
function encode(req: Request, slices: Buffer[] | null): Buffer | null {
  req.reply = slices;
  const out = encodeBinaryReply(req);
  return out === null ? null : Buffer.concat(out);
}

/** The same text reply cut at every index (and every pair of indexes when short) encodes the same. */
function* replyCuts(text: Buffer): Generator<Buffer[]> {
  yield [text];
  const n = text.length;
  for (let i = 1; i < n; i++) yield [text.subarray(0, i), text.subarray(i)];
  if (n <= 40)
    for (let i = 1; i < n; i++)
      for (let j = i + 1; j < n; j++) yield [text.subarray(0, i), text.subarray(i, j), text.subarray(j)];
}

interface Fixture {
  name: string;
  request: PacketSpec;
  reply: string | null;
  expected: Buffer | null;
}

const BIN_KEY = Buffer.from([0x00, 0xff, 0x20, 0x0a]);
const b64 = (b: Buffer): string => b.toString('base64');
const NOT_FOUND = 'Not found';
const EXISTS = 'Data exists for key.';
const NOT_STORED = 'Not stored.';

const FIXTURES: Fixture[] = [
  // ---- gets
  {
    name: 'answers a GET hit with flags as extras, cas in the header and the value',
    request: { opcode: Op.GET, key: 'foo', opaque: 0xdeadbeef },
    reply: 'VA 5 f7 c42\r\nhello\r\n',
    expected: response({ opcode: Op.GET, opaque: 0xdeadbeef, cas: 42n, extras: u32(7), value: 'hello' }),
  },
  {
    name: 'answers a GETQ hit (quiet gets send hits)',
    request: { opcode: Op.GETQ, key: 'foo', opaque: 1 },
    reply: 'VA 0 f0 c1\r\n\r\n',
    expected: response({ opcode: Op.GETQ, opaque: 1, cas: 1n, extras: u32(0) }),
  },
  {
    name: 'answers a GETK hit with the returned key',
    request: { opcode: Op.GETK, key: 'foo', opaque: 2 },
    reply: 'VA 3 f4294967295 c18446744073709551615 kfoo\r\nabc\r\n',
    expected: response({
      opcode: Op.GETK,
      opaque: 2,
      cas: 2n ** 64n - 1n,
      extras: u32(0xffffffff),
      key: 'foo',
      value: 'abc',
    }),
  },
  {
    name: 'answers a GETKQ hit with a binary key, decoded from base64',
    request: { opcode: Op.GETKQ, key: BIN_KEY },
    reply: `VA 2 f0 c3 k${b64(BIN_KEY)} b\r\nhi\r\n`,
    expected: response({ opcode: Op.GETKQ, cas: 3n, extras: u32(0), key: BIN_KEY, value: 'hi' }),
  },
  {
    name: "answers a GETK hit with the request's key when the reply has no k token",
    request: { opcode: Op.GETK, key: BIN_KEY },
    reply: 'VA 1 f0 c3\r\nx\r\n',
    expected: response({ opcode: Op.GETK, cas: 3n, extras: u32(0), key: BIN_KEY, value: 'x' }),
  },
  {
    name: 'answers a GET miss KEY_ENOENT "Not found"',
    request: { opcode: Op.GET, key: 'foo', opaque: 3 },
    reply: 'EN\r\n',
    expected: response({ opcode: Op.GET, opaque: 3, status: Status.KEY_ENOENT, value: NOT_FOUND }),
  },
  { name: 'sends nothing for a GETQ miss', request: { opcode: Op.GETQ, key: 'foo' }, reply: 'EN\r\n', expected: null },
  {
    name: 'sends nothing for a GETKQ miss',
    request: { opcode: Op.GETKQ, key: 'foo' },
    reply: 'EN kfoo\r\n',
    expected: null,
  },
  {
    name: 'answers a GETK miss with the key as the body, as memcached does',
    request: { opcode: Op.GETK, key: 'foo', opaque: 4 },
    reply: 'EN kfoo\r\n',
    expected: response({ opcode: Op.GETK, opaque: 4, status: Status.KEY_ENOENT, key: 'foo' }),
  },
  {
    name: 'answers a GAT hit like a GET hit',
    request: { opcode: Op.GAT, key: 'foo', extras: u32(10) },
    reply: 'VA 2 f1 c9\r\nok\r\n',
    expected: response({ opcode: Op.GAT, cas: 9n, extras: u32(1), value: 'ok' }),
  },
  {
    name: 'answers a GATK hit with the key',
    request: { opcode: Op.GATK, key: 'foo', extras: u32(10) },
    reply: 'VA 2 f1 c9 kfoo\r\nok\r\n',
    expected: response({ opcode: Op.GATK, cas: 9n, extras: u32(1), key: 'foo', value: 'ok' }),
  },
  {
    name: 'sends nothing for a GATQ miss',
    request: { opcode: Op.GATQ, key: 'f', extras: u32(1) },
    reply: 'EN\r\n',
    expected: null,
  },
  {
    name: 'answers a TOUCH hit with flags and cas but no value',
    request: { opcode: Op.TOUCH, key: 'foo', extras: u32(60) },
    reply: 'HD f5 c1\r\n',
    expected: response({ opcode: Op.TOUCH, cas: 1n, extras: u32(5) }),
  },
  {
    name: 'answers a TOUCH miss KEY_ENOENT',
    request: { opcode: Op.TOUCH, key: 'foo', extras: u32(60) },
    reply: 'EN\r\n',
    expected: response({ opcode: Op.TOUCH, status: Status.KEY_ENOENT, value: NOT_FOUND }),
  },
  // ---- storage
  {
    name: 'answers a stored SET with the new cas',
    request: { opcode: Op.SET, key: 'k', extras: storeExtras(0, 0), value: 'v', opaque: 5 },
    reply: 'HD c12\r\n',
    expected: response({ opcode: Op.SET, opaque: 5, cas: 12n }),
  },
  {
    name: 'sends nothing for a stored SETQ',
    request: { opcode: Op.SETQ, key: 'k', extras: storeExtras(0, 0) },
    reply: 'HD c1\r\n',
    expected: null,
  },
  {
    name: 'sends a SETQ cas mismatch: quiet hides success only',
    request: { opcode: Op.SETQ, key: 'k', extras: storeExtras(0, 0), cas: 5n },
    reply: 'EX c0\r\n',
    expected: response({ opcode: Op.SETQ, status: Status.KEY_EEXISTS, value: EXISTS }),
  },
  {
    name: 'answers a SET with a cas on a missing item KEY_ENOENT',
    request: { opcode: Op.SET, key: 'k', extras: storeExtras(0, 0), cas: 5n },
    reply: 'NF c0\r\n',
    expected: response({ opcode: Op.SET, status: Status.KEY_ENOENT, value: NOT_FOUND }),
  },
  {
    name: 'answers a refused ADD KEY_EEXISTS',
    request: { opcode: Op.ADD, key: 'k', extras: storeExtras(0, 0), value: 'v' },
    reply: 'NS c0\r\n',
    expected: response({ opcode: Op.ADD, status: Status.KEY_EEXISTS, value: EXISTS }),
  },
  {
    name: 'answers a refused REPLACE KEY_ENOENT',
    request: { opcode: Op.REPLACEQ, key: 'k', extras: storeExtras(0, 0), value: 'v' },
    reply: 'NS c0\r\n',
    expected: response({ opcode: Op.REPLACEQ, status: Status.KEY_ENOENT, value: NOT_FOUND }),
  },
  {
    name: 'answers a refused APPEND NOT_STORED',
    request: { opcode: Op.APPEND, key: 'k', value: 'v' },
    reply: 'NS c0\r\n',
    expected: response({ opcode: Op.APPEND, status: Status.NOT_STORED, value: NOT_STORED }),
  },
  {
    name: 'answers a refused PREPENDQ NOT_STORED',
    request: { opcode: Op.PREPENDQ, key: 'k', value: 'v' },
    reply: 'NS c0\r\n',
    expected: response({ opcode: Op.PREPENDQ, status: Status.NOT_STORED, value: NOT_STORED }),
  },
  {
    name: 'answers an APPEND with the new cas',
    request: { opcode: Op.APPEND, key: 'k', value: 'v' },
    reply: 'HD c2\r\n',
    expected: response({ opcode: Op.APPEND, cas: 2n }),
  },
  // ---- delete
  {
    name: 'answers a DELETE',
    request: { opcode: Op.DELETE, key: 'k' },
    reply: 'HD\r\n',
    expected: response({ opcode: Op.DELETE }),
  },
  { name: 'sends nothing for a DELETEQ', request: { opcode: Op.DELETEQ, key: 'k' }, reply: 'HD\r\n', expected: null },
  {
    name: 'answers a DELETEQ miss KEY_ENOENT',
    request: { opcode: Op.DELETEQ, key: 'k' },
    reply: 'NF\r\n',
    expected: response({ opcode: Op.DELETEQ, status: Status.KEY_ENOENT, value: NOT_FOUND }),
  },
  {
    name: 'answers a DELETE cas mismatch KEY_EEXISTS',
    request: { opcode: Op.DELETE, key: 'k', cas: 1n },
    reply: 'EX\r\n',
    expected: response({ opcode: Op.DELETE, status: Status.KEY_EEXISTS, value: EXISTS }),
  },
  // ---- arithmetic
  {
    name: 'answers an INCREMENT with the counter as 8 bytes and its cas',
    request: { opcode: Op.INCREMENT, key: 'n', extras: arithExtras(5n, 10n, 0), opaque: 6 },
    reply: 'VA 2 c4\r\n10\r\n',
    expected: response({ opcode: Op.INCREMENT, opaque: 6, cas: 4n, value: u64(10n) }),
  },
  {
    name: 'answers a DECREMENT of a 64-bit counter exactly',
    request: { opcode: Op.DECREMENT, key: 'n', extras: arithExtras(1n, 0n, 0xffffffff) },
    reply: 'VA 20 c7\r\n18446744073709551614\r\n',
    expected: response({ opcode: Op.DECREMENT, cas: 7n, value: u64(2n ** 64n - 2n) }),
  },
  {
    name: 'sends nothing for an INCREMENTQ',
    request: { opcode: Op.INCREMENTQ, key: 'n', extras: arithExtras(1n, 0n, 0) },
    reply: 'VA 1 c1\r\n1\r\n',
    expected: null,
  },
  {
    name: 'answers an INCREMENT of a missing counter that may not be created KEY_ENOENT',
    request: { opcode: Op.INCREMENT, key: 'n', extras: arithExtras(1n, 0n, 0xffffffff) },
    reply: 'NF\r\n',
    expected: response({ opcode: Op.INCREMENT, status: Status.KEY_ENOENT, value: NOT_FOUND }),
  },
  {
    name: 'answers an INCREMENT of a non-numeric value DELTA_BADVAL',
    request: { opcode: Op.INCREMENT, key: 'n', extras: arithExtras(1n, 0n, 0) },
    reply: 'CLIENT_ERROR cannot increment or decrement non-numeric value\r\n',
    expected: response({
      opcode: Op.INCREMENT,
      status: Status.DELTA_BADVAL,
      value: 'Non-numeric server-side value for incr or decr',
    }),
  },
  {
    name: 'answers an INCREMENT whose counter could not be created NOT_STORED',
    request: { opcode: Op.INCREMENT, key: 'n', extras: arithExtras(1n, 0n, 0) },
    reply: 'NS\r\n',
    expected: response({ opcode: Op.INCREMENT, status: Status.NOT_STORED, value: NOT_STORED }),
  },
  // ---- keyless
  {
    name: 'answers VERSION with the version string',
    request: { opcode: Op.VERSION, opaque: 8 },
    reply: 'VERSION 1.6.18\r\n',
    expected: response({ opcode: Op.VERSION, opaque: 8, value: '1.6.18' }),
  },
  {
    name: 'answers FLUSH once done',
    request: { opcode: Op.FLUSH },
    reply: 'OK\r\n',
    expected: response({ opcode: Op.FLUSH }),
  },
  { name: 'sends nothing for a FLUSHQ', request: { opcode: Op.FLUSHQ }, reply: 'OK\r\n', expected: null },
  {
    name: 'answers a denied FLUSH AUTH_ERROR, as memcached answers a disabled flush',
    request: { opcode: Op.FLUSHQ },
    reply: 'CLIENT_ERROR flush_all not allowed\r\n',
    expected: response({ opcode: Op.FLUSHQ, status: Status.AUTH_ERROR, value: 'flush_all not allowed' }),
  },
  {
    name: 'answers a NOOP',
    request: { opcode: Op.NOOP, opaque: 9 },
    reply: 'MN\r\n',
    expected: response({ opcode: Op.NOOP, opaque: 9 }),
  },
  {
    name: 'acknowledges a QUIT before the close',
    request: { opcode: Op.QUIT },
    reply: null,
    expected: response({ opcode: Op.QUIT }),
  },
  { name: 'sends nothing for a QUITQ', request: { opcode: Op.QUITQ }, reply: null, expected: null },
  {
    name: 'sends nothing for a request left without a reply',
    request: { opcode: Op.GET, key: 'k' },
    reply: null,
    expected: null,
  },
  {
    name: 'answers STAT with one packet per row and an empty one',
    request: { opcode: Op.STAT, opaque: 10 },
    reply: 'STAT pid 12\r\nSTAT version 1.6.18 beta\r\nSTAT empty \r\nEND\r\n',
    expected: Buffer.concat([
      response({ opcode: Op.STAT, opaque: 10, key: 'pid', value: '12' }),
      response({ opcode: Op.STAT, opaque: 10, key: 'version', value: '1.6.18 beta' }),
      response({ opcode: Op.STAT, opaque: 10, key: 'empty', value: '' }),
      response({ opcode: Op.STAT, opaque: 10 }),
    ]),
  },
  {
    name: 'answers an unknown STAT group KEY_ENOENT, as memcached does',
    request: { opcode: Op.STAT, key: 'nonsense' },
    reply: 'ERROR\r\n',
    expected: response({ opcode: Op.STAT, status: Status.KEY_ENOENT, value: NOT_FOUND }),
  },
  {
    name: 'answers a denied STAT group AUTH_ERROR with the reason',
    request: { opcode: Op.STAT, key: 'settings' },
    reply: 'CLIENT_ERROR stats settings not allowed\r\n',
    expected: response({ opcode: Op.STAT, status: Status.AUTH_ERROR, value: 'stats settings not allowed' }),
  },
  {
    name: 'answers SASL_LIST_MECHS with PLAIN',
    request: { opcode: Op.SASL_LIST_MECHS },
    reply: 'OK\r\n',
    expected: response({ opcode: Op.SASL_LIST_MECHS, value: 'PLAIN' }),
  },
  {
    name: 'answers a successful SASL_AUTH "Authenticated"',
    request: { opcode: Op.SASL_AUTH, key: 'PLAIN', value: '\0u\0p' },
    reply: 'STORED\r\n',
    expected: response({ opcode: Op.SASL_AUTH, value: 'Authenticated' }),
  },
  {
    name: 'answers a failed SASL_AUTH AUTH_ERROR "Auth failure."',
    request: { opcode: Op.SASL_AUTH, key: 'PLAIN', value: '\0u\0p' },
    reply: 'CLIENT_ERROR authentication failure\r\n',
    expected: response({ opcode: Op.SASL_AUTH, status: Status.AUTH_ERROR, value: 'Auth failure.' }),
  },
  // ---- errors from the proxy or memcached, by request kind
  {
    name: 'sends a quiet request its error',
    request: { opcode: Op.GETQ, key: 'k' },
    reply: 'SERVER_ERROR backend failure\r\n',
    expected: response({ opcode: Op.GETQ, status: Status.ETMPFAIL, value: 'backend failure' }),
  },
  {
    name: 'answers a key too long once namespaced EINVAL',
    request: { opcode: Op.SETQ, key: 'k', extras: storeExtras(0, 0), value: 'v', opaque: 11 },
    reply: 'CLIENT_ERROR bad command line format\r\n',
    expected: response({ opcode: Op.SETQ, opaque: 11, status: Status.EINVAL, value: 'Invalid arguments' }),
  },
  {
    name: 'answers a value too large for memcached E2BIG',
    request: { opcode: Op.SET, key: 'k', extras: storeExtras(0, 0), value: 'v' },
    reply: 'SERVER_ERROR object too large for cache\r\n',
    expected: response({ opcode: Op.SET, status: Status.E2BIG, value: 'Too large.' }),
  },
  {
    name: 'answers a key outside the prefixes AUTH_ERROR with the reason',
    request: { opcode: Op.DELETE, key: 'k' },
    reply: 'CLIENT_ERROR access denied\r\n',
    expected: response({ opcode: Op.DELETE, status: Status.AUTH_ERROR, value: 'access denied' }),
  },
  {
    name: 'answers a rate-limited request ETMPFAIL',
    request: { opcode: Op.INCREMENTQ, key: 'n', extras: arithExtras(1n, 0n, 0) },
    reply: 'SERVER_ERROR rate limited\r\n',
    expected: response({ opcode: Op.INCREMENTQ, status: Status.ETMPFAIL, value: 'rate limited' }),
  },
  {
    name: 'answers an unparsable reply line EINTERNAL (never forwards it)',
    request: { opcode: Op.SET, key: 'k', extras: storeExtras(0, 0), value: 'v' },
    reply: 'VA 1\r\nx\r\n',
    expected: response({ opcode: Op.SET, status: Status.EINTERNAL, value: 'Internal error' }),
  },
];

describe('encodeBinaryReply: text reply → packet', () => {
  for (const f of FIXTURES) {
    it(f.name, () => {
      const req = parseOne(f.request);
      if (f.reply === null) {
        expect(encode(req, null)).toEqual(f.expected);
        return;
      }
      const text = Buffer.from(f.reply, 'latin1');
      for (const slices of replyCuts(text)) {
        const got = encode(req, slices);
        if (got === null || f.expected === null) expect(got).toBe(f.expected);
        else expect(got.toString('hex'), slices.map((s) => s.length).join('+')).toBe(f.expected.toString('hex'));
      }
    });
  }

  it('sends the value as the reply slices themselves, never a copy', () => {
    const req = parseOne({ opcode: Op.GET, key: 'foo' });
    const chunk = Buffer.from('VA 11 f0 c1\r\nhello world\r\n', 'latin1');
    req.reply = [chunk];
    const out = encodeBinaryReply(req) ?? [];
    expect(out).toHaveLength(2);
    expect(out[1]?.buffer).toBe(chunk.buffer);
    expect(out[1]?.toString()).toBe('hello world');
  });

  it('answers the parser-made errors in the binary vocabulary', () => {
    const cases: [PacketSpec, number, string][] = [
      [{ opcode: 0x42, opaque: 1 }, Status.UNKNOWN_COMMAND, 'Unknown command'],
      [{ opcode: Op.GET, extras: u32(0), key: 'k' }, Status.EINVAL, 'Invalid arguments'],
      [
        { opcode: Op.SETQ, key: 'k', extras: storeExtras(0, 0), value: Buffer.alloc(2 * 1024 * 1024) },
        Status.E2BIG,
        'Too large.',
      ],
    ];
    for (const [spec, status, text] of cases) {
      const req = parseOne(spec);
      expect(req.error).not.toBeNull();
      const got = encode(req, req.error === null ? null : [req.error]);
      expect(got?.toString('hex')).toBe(
        response({ opcode: spec.opcode, opaque: spec.opaque ?? 0, status, value: text }).toString('hex'),
      );
    }
  });

  it('passes a request without binary info unchanged (a fatal reply queued by the session)', () => {
    const req = new Request();
    const reply = [Buffer.from('CLIENT_ERROR line too long\r\n')];
    req.reply = reply;
    expect(encodeBinaryReply(req)).toBe(reply);
  });

  it('passes a reply that already is a packet, hiding a quiet success', () => {
    const noop = parseOne({ opcode: Op.NOOP, opaque: 3 });
    const pkt = binaryNoop(noop);
    expect(encode(noop, [pkt])?.equals(pkt)).toBe(true);
    const flushq = parseOne({ opcode: Op.FLUSHQ });
    expect(encode(flushq, [binaryFlushOk(flushq)])).toBeNull();
    const failed = binaryStatus(flushq, Status.ETMPFAIL, 'backend failure');
    expect(encode(flushq, [failed])?.equals(failed)).toBe(true);
  });
});

describe('mapTextError: text error line → binary status', () => {
  const table: [string, number, string][] = [
    ['ERROR', Status.UNKNOWN_COMMAND, 'Unknown command'],
    ['ERROR Too many open connections', Status.ETMPFAIL, 'Too many open connections'],
    ['CLIENT_ERROR bad command line format', Status.EINVAL, 'Invalid arguments'],
    ['CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]', Status.EINVAL, 'Invalid arguments'],
    ['CLIENT_ERROR bad data chunk', Status.EINVAL, 'Invalid arguments'],
    ['CLIENT_ERROR error decoding key', Status.EINVAL, 'Invalid arguments'],
    [
      'CLIENT_ERROR cannot increment or decrement non-numeric value',
      Status.DELTA_BADVAL,
      'Non-numeric server-side value for incr or decr',
    ],
    ['CLIENT_ERROR unauthenticated', Status.AUTH_ERROR, 'unauthenticated'],
    ['CLIENT_ERROR authentication failure', Status.AUTH_ERROR, 'Auth failure.'],
    ['CLIENT_ERROR auth token too long', Status.AUTH_ERROR, 'auth token too long'],
    ['CLIENT_ERROR access denied', Status.AUTH_ERROR, 'access denied'],
    ['CLIENT_ERROR flush_all not allowed', Status.AUTH_ERROR, 'flush_all not allowed'],
    ['CLIENT_ERROR stats cachedump not allowed', Status.AUTH_ERROR, 'stats cachedump not allowed'],
    ['SERVER_ERROR object too large for cache', Status.E2BIG, 'Too large.'],
    ['SERVER_ERROR out of memory storing object', Status.ENOMEM, 'Out of memory'],
    ['SERVER_ERROR Out of memory allocating item', Status.ENOMEM, 'Out of memory'],
    ['SERVER_ERROR rate limited', Status.ETMPFAIL, 'rate limited'],
    ['SERVER_ERROR backend failure', Status.ETMPFAIL, 'backend failure'],
    ['SERVER_ERROR something new', Status.EINTERNAL, 'something new'],
  ];
  for (const [line, status, text] of table) {
    it(`maps "${line}" to 0x${status.toString(16)} "${text}"`, () => {
      const mapped = mapTextError(Buffer.from(line, 'latin1'), Op.GET);
      expect({ status: mapped.status, text: mapped.text.toString('latin1') }).toEqual({ status, text });
    });
  }

  it('maps every pre-encoded reply of replies.ts to an error status', () => {
    const replies = [...Object.values(Replies), notAllowed('watch')].filter(
      (r) => !/^(OK|END|STORED|MN)\r\n$/.test(r.toString()),
    );
    for (const r of replies) {
      const mapped = mapTextError(r.subarray(0, r.length - 2), Op.SET);
      expect(mapped.status, r.toString()).not.toBe(Status.SUCCESS);
      expect(mapped.text.length, r.toString()).toBeGreaterThan(0);
    }
  });
});

describe('local reply helpers', () => {
  const req = parseOne({ opcode: Op.STAT, opaque: 0x0a0b0c0d });

  it('builds STAT rows and the empty terminator', () => {
    expect(
      binaryStats(req, [
        ['pid', 1],
        ['version', '1.6'],
      ]).toString('hex'),
    ).toBe(
      Buffer.concat([
        response({ opcode: Op.STAT, opaque: 0x0a0b0c0d, key: 'pid', value: '1' }),
        response({ opcode: Op.STAT, opaque: 0x0a0b0c0d, key: 'version', value: '1.6' }),
        response({ opcode: Op.STAT, opaque: 0x0a0b0c0d }),
      ]).toString('hex'),
    );
  });

  it('builds the SASL replies in memcached words', () => {
    const auth = parseOne({ opcode: Op.SASL_AUTH, key: 'PLAIN', value: 'x', opaque: 5 });
    expect(binarySaslOk(auth)).toEqual(response({ opcode: Op.SASL_AUTH, opaque: 5, value: 'Authenticated' }));
    expect(binarySaslFailure(auth)).toEqual(
      response({ opcode: Op.SASL_AUTH, opaque: 5, status: Status.AUTH_ERROR, value: 'Auth failure.' }),
    );
    const list = parseOne({ opcode: Op.SASL_LIST_MECHS, opaque: 6 });
    expect(binarySaslMechanisms(list)).toEqual(response({ opcode: Op.SASL_LIST_MECHS, opaque: 6, value: 'PLAIN' }));
  });

  it('builds status replies with memcached text by default', () => {
    expect(binaryStatus(req, Status.AUTH_ERROR)).toEqual(
      response({ opcode: Op.STAT, opaque: 0x0a0b0c0d, status: Status.AUTH_ERROR, value: 'Auth failure.' }),
    );
    expect(binaryStatus(req, Status.AUTH_CONTINUE, 'more')).toEqual(
      response({ opcode: Op.STAT, opaque: 0x0a0b0c0d, status: Status.AUTH_CONTINUE, value: 'more' }),
    );
    expect(binaryStatus(req, Status.SUCCESS)).toEqual(response({ opcode: Op.STAT, opaque: 0x0a0b0c0d }));
    expect(binaryFlushOk(req)).toEqual(response({ opcode: Op.STAT, opaque: 0x0a0b0c0d }));
  });

  it('builds an error packet for a request that was never parsed', () => {
    expect(binaryErrorPacket(Op.SET, 0xffffffff, Status.E2BIG)).toEqual(
      response({ opcode: Op.SET, opaque: 0xffffffff, status: Status.E2BIG, value: 'Too large.' }),
    );
  });
});

describe('binary request → upstream → binary reply, under a namespace', () => {
  const NS = Buffer.from('T7:', 'latin1');

  function roundTrip(spec: PacketSpec, upstreamReply: string): { upstream: string; reply: Buffer | null } {
    const req = parseOne(spec);
    req.ns = NS;
    const out: Buffer[] = [];
    expect(encodeRequest(req, out)).toBeNull();
    const fifo = new Fifo();
    fifo.items.push(req);
    new ResponseParser(fifo).feed(Buffer.from(upstreamReply, 'latin1'));
    expect(fifo.desyncs).toEqual([]);
    expect(req.done).toBe(true);
    const reply = encodeBinaryReply(req);
    return { upstream: Buffer.concat(out).toString('latin1'), reply: reply === null ? null : Buffer.concat(reply) };
  }

  it('namespaces a plain key and strips it from a GETK reply', () => {
    const { upstream, reply } = roundTrip(
      { opcode: Op.GETK, key: 'user:1', opaque: 1 },
      'VA 2 f3 c9 kT7:user:1\r\nhi\r\n',
    );
    expect(upstream).toBe('mg T7:user:1 v f c k\r\n');
    expect(reply).toEqual(
      response({ opcode: Op.GETK, opaque: 1, cas: 9n, extras: u32(3), key: 'user:1', value: 'hi' }),
    );
  });

  it('namespaces a binary key inside base64 and returns the raw key', () => {
    const nsKey = b64(Buffer.concat([NS, BIN_KEY]));
    const { upstream, reply } = roundTrip({ opcode: Op.GETKQ, key: BIN_KEY }, `VA 1 f0 c2 k${nsKey} b\r\nx\r\n`);
    expect(upstream).toBe(`mg ${nsKey} b v f c k\r\n`);
    expect(reply).toEqual(response({ opcode: Op.GETKQ, cas: 2n, extras: u32(0), key: BIN_KEY, value: 'x' }));
  });

  it('sends a SET as ms with its value and answers with the cas', () => {
    const { upstream, reply } = roundTrip(
      { opcode: Op.SET, key: 'k', extras: storeExtras(5, 60), value: 'hello', cas: 77n },
      'HD c78\r\n',
    );
    expect(upstream).toBe('ms T7:k 5 F5 T60 c C77\r\nhello\r\n');
    expect(reply).toEqual(response({ opcode: Op.SET, cas: 78n }));
  });

  it('sends an INCREMENT as ma and answers with the 64-bit value', () => {
    const { upstream, reply } = roundTrip(
      { opcode: Op.INCREMENT, key: 'n', extras: arithExtras(1n, 100n, 0) },
      'VA 3 c5\r\n100\r\n',
    );
    expect(upstream).toBe('ma T7:n D1 MI v c N0 J100\r\n');
    expect(reply).toEqual(response({ opcode: Op.INCREMENT, cas: 5n, value: u64(100n) }));
  });

  it('sends a binary key that no longer fits once namespaced in base64 as namespace + digest, returning the raw key', () => {
    const key = Buffer.alloc(250, 0xfe);
    const req = parseOne({ opcode: Op.GETK, key });
    req.ns = NS;
    const out: Buffer[] = [];
    expect(encodeRequest(req, out)).toBeNull();
    const line = Buffer.concat(out).toString('latin1');
    const token = line.slice(3, line.indexOf(' ', 3));
    const upstreamKey = Buffer.from(token, 'base64');
    expect(upstreamKey.subarray(0, NS.length)).toEqual(NS);
    expect(upstreamKey[NS.length]).toBe(0xff);
    expect(upstreamKey.length).toBe(NS.length + 44);
    const { reply } = roundTrip({ opcode: Op.GETK, key }, `VA 1 f0 c2 k${token} b\r\nx\r\n`);
    expect(reply).toEqual(response({ opcode: Op.GETK, cas: 2n, extras: u32(0), key, value: 'x' }));
  });

  it('returns the raw key of a GETK for a UTF-8 key memcached returns plain (stored by a text client)', () => {
    const key = Buffer.from('clé', 'utf8');
    const { upstream, reply } = roundTrip(
      { opcode: Op.GETK, key },
      `VA 1 f0 c2 k${Buffer.concat([NS, key]).toString('latin1')}\r\nx\r\n`,
    );
    expect(upstream).toBe(`mg ${b64(Buffer.concat([NS, key]))} b v f c k\r\n`);
    expect(reply).toEqual(response({ opcode: Op.GETK, cas: 2n, extras: u32(0), key, value: 'x' }));
  });
});
