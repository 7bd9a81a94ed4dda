/**
 * BinaryRequestParser: one fixture per opcode (packet bytes → the Request it
 * becomes, synthesised meta line included), each fed whole, byte by byte, in
 * two at every index and in three at every pair of indexes for short packets;
 * a cross-check that the text RequestParser reads every synthesised line into
 * the same fields; malformed packets, which are answered and skipped exactly;
 * and the framing edge cases (fatal input, limits, reset, buffer ownership).
 */
import { describe, expect, it } from 'vitest';
import { HEADER_BYTES, Opcode as Op } from '../../../../src/protocol/binary/header.js';
import { BinaryRequestParser, MAX_SKIPPABLE_BODY_BYTES } from '../../../../src/protocol/binary/parser.js';
import { SASL_MAX_DATA_BYTES } from '../../../../src/protocol/binary/sasl.js';
import { MAX_VALUE_BYTES } from '../../../../src/protocol/limits.js';
import { lookupCommand } from '../../../../src/protocol/text/commands.js';
import type { Request } from '../../../../src/protocol/text/request.js';
import { RequestParser } from '../../../../src/protocol/text/request-parser.js';
import { RecordingSink, described, isSameRequest, type DescribedRequest } from '../../../helpers/splits.js';
import {
  BinaryRecordingSink,
  arithExtras,
  packet,
  parseBinaryChunks,
  parseBinaryEverySplit,
  storeExtras,
  u32,
  type DescribedBinary,
  type DescribedBinaryRequest,
  type PacketSpec,
} from './binary-fixtures.js';

const BAD_FORMAT = 'CLIENT_ERROR bad command line format';
const TOO_LARGE = 'SERVER_ERROR object too large for cache';
const ERROR = 'ERROR';
const NO_CAS = '0000000000000000';

const QUIET = new Set<number>([
  Op.GETQ,
  Op.GETKQ,
  Op.GATQ,
  Op.GATKQ,
  Op.SETQ,
  Op.ADDQ,
  Op.REPLACEQ,
  Op.APPENDQ,
  Op.PREPENDQ,
  Op.DELETEQ,
  Op.INCREMENTQ,
  Op.DECREMENTQ,
  Op.QUITQ,
  Op.FLUSHQ,
]);
const RETURN_KEY = new Set<number>([Op.GETK, Op.GETKQ, Op.GATK, Op.GATKQ]);

function info(opcode: number, opaque = 0, cas = NO_CAS): DescribedBinary {
  return { opcode, opaque, cas, quiet: QUIET.has(opcode), returnKey: RETURN_KEY.has(opcode) };
}

/** An expected binary request: the text fields that differ from a fresh Request, its line and binary info. */
function b(
  spec: PacketSpec,
  fields: Partial<DescribedRequest> & { cmd: string | null; line?: string },
): DescribedBinaryRequest {
  const cas = (spec.cas ?? 0n).toString(16).padStart(16, '0');
  return { ...described(fields), line: fields.line ?? '', binary: info(spec.opcode, spec.opaque ?? 0, cas) };
}

interface Fixture {
  name: string;
  spec: PacketSpec;
  expected: Omit<DescribedBinaryRequest, 'binary'> & { cmd: string | null };
}

const m = (cmd: string, line: string, fields: Partial<DescribedRequest> = {}) => ({
  ...described({ cmd, ...fields }),
  line,
});

const BIN_KEY = Buffer.from([0x00, 0x01, 0xff, 0x20, 0x0d, 0x0a]);
const BIN_KEY_B64 = BIN_KEY.toString('base64');
const UTF8_KEY = Buffer.from('ключ', 'utf8');
const K250 = 'k'.repeat(250);
const BIN250 = Buffer.alloc(250, 0xfe);
const U64_MAX = 2n ** 64n - 1n;

/** Every opcode, as memcached's binary protocol defines it. */
const VALID: Fixture[] = [
  {
    name: 'reads GET as mg with value, flags and cas',
    spec: { opcode: Op.GET, key: 'foo', opaque: 0xdeadbeef },
    expected: m('mg', 'mg foo v f c', { keys: ['foo'], metaFlags: ['v', 'f', 'c'] }),
  },
  {
    name: 'reads GETQ like GET, quiet',
    spec: { opcode: Op.GETQ, key: 'foo', opaque: 1 },
    expected: m('mg', 'mg foo v f c', { keys: ['foo'], metaFlags: ['v', 'f', 'c'] }),
  },
  {
    name: 'reads GETK with the k flag',
    spec: { opcode: Op.GETK, key: 'foo', opaque: 2 },
    expected: m('mg', 'mg foo v f c k', { keys: ['foo'], metaFlags: ['v', 'f', 'c', 'k'] }),
  },
  {
    name: 'reads GETKQ with the k flag, quiet',
    spec: { opcode: Op.GETKQ, key: 'foo', opaque: 3 },
    expected: m('mg', 'mg foo v f c k', { keys: ['foo'], metaFlags: ['v', 'f', 'c', 'k'] }),
  },
  {
    name: 'reads GAT as mg with a T flag',
    spec: { opcode: Op.GAT, key: 'foo', extras: u32(300), opaque: 4 },
    expected: m('mg', 'mg foo v f c T300', { keys: ['foo'], metaFlags: ['v', 'f', 'c', 'T300'] }),
  },
  {
    name: 'reads GATQ like GAT, quiet',
    spec: { opcode: Op.GATQ, key: 'foo', extras: u32(0) },
    expected: m('mg', 'mg foo v f c T0', { keys: ['foo'], metaFlags: ['v', 'f', 'c', 'T0'] }),
  },
  {
    name: 'reads GATK with k and T',
    spec: { opcode: Op.GATK, key: 'foo', extras: u32(2_147_483_647) },
    expected: m('mg', 'mg foo v f c k T2147483647', {
      keys: ['foo'],
      metaFlags: ['v', 'f', 'c', 'k', 'T2147483647'],
    }),
  },
  {
    name: 'reads GATKQ with k and T, quiet',
    spec: { opcode: Op.GATKQ, key: 'foo', extras: u32(5) },
    expected: m('mg', 'mg foo v f c k T5', { keys: ['foo'], metaFlags: ['v', 'f', 'c', 'k', 'T5'] }),
  },
  {
    name: 'reads TOUCH as mg without a value',
    spec: { opcode: Op.TOUCH, key: 'foo', extras: u32(60), opaque: 5 },
    expected: m('mg', 'mg foo f c T60', { keys: ['foo'], metaFlags: ['f', 'c', 'T60'] }),
  },
  {
    name: 'reads SET as ms with flags, TTL and a cas return',
    spec: { opcode: Op.SET, key: 'foo', extras: storeExtras(7, 0), value: 'hello', opaque: 6 },
    expected: m('ms', 'ms foo 5 F7 T0 c', { keys: ['foo'], metaFlags: ['F7', 'T0', 'c'], bytes: 5, value: 'hello' }),
  },
  {
    name: 'reads SETQ with a cas as a C flag',
    spec: { opcode: Op.SETQ, key: 'foo', extras: storeExtras(0xffffffff, 100), value: 'hi', cas: 42n },
    expected: m('ms', 'ms foo 2 F4294967295 T100 c C42', {
      keys: ['foo'],
      metaFlags: ['F4294967295', 'T100', 'c', 'C42'],
      bytes: 2,
      value: 'hi',
    }),
  },
  {
    name: 'reads a SET with an empty value',
    spec: { opcode: Op.SET, key: 'e', extras: storeExtras(0, 0) },
    expected: m('ms', 'ms e 0 F0 T0 c', { keys: ['e'], metaFlags: ['F0', 'T0', 'c'], bytes: 0, value: '' }),
  },
  {
    name: 'reads ADD as ms mode E',
    spec: { opcode: Op.ADD, key: 'foo', extras: storeExtras(1, 10), value: 'v' },
    expected: m('ms', 'ms foo 1 F1 T10 c ME', {
      keys: ['foo'],
      metaFlags: ['F1', 'T10', 'c', 'ME'],
      bytes: 1,
      value: 'v',
    }),
  },
  {
    name: 'reads ADDQ as ms mode E',
    spec: { opcode: Op.ADDQ, key: 'foo', extras: storeExtras(0, 0), value: 'v' },
    expected: m('ms', 'ms foo 1 F0 T0 c ME', {
      keys: ['foo'],
      metaFlags: ['F0', 'T0', 'c', 'ME'],
      bytes: 1,
      value: 'v',
    }),
  },
  {
    name: 'reads REPLACE as ms mode R',
    spec: { opcode: Op.REPLACE, key: 'foo', extras: storeExtras(0, 0), value: 'v', cas: 9n },
    expected: m('ms', 'ms foo 1 F0 T0 c MR C9', {
      keys: ['foo'],
      metaFlags: ['F0', 'T0', 'c', 'MR', 'C9'],
      bytes: 1,
      value: 'v',
    }),
  },
  {
    name: 'reads REPLACEQ as ms mode R',
    spec: { opcode: Op.REPLACEQ, key: 'foo', extras: storeExtras(0, 0), value: 'v' },
    expected: m('ms', 'ms foo 1 F0 T0 c MR', {
      keys: ['foo'],
      metaFlags: ['F0', 'T0', 'c', 'MR'],
      bytes: 1,
      value: 'v',
    }),
  },
  {
    name: 'reads APPEND as ms mode A',
    spec: { opcode: Op.APPEND, key: 'foo', value: 'abc' },
    expected: m('ms', 'ms foo 3 MA c', { keys: ['foo'], metaFlags: ['MA', 'c'], bytes: 3, value: 'abc' }),
  },
  {
    name: 'reads APPENDQ with a cas',
    spec: { opcode: Op.APPENDQ, key: 'foo', value: 'abc', cas: U64_MAX },
    expected: m('ms', 'ms foo 3 MA c C18446744073709551615', {
      keys: ['foo'],
      metaFlags: ['MA', 'c', 'C18446744073709551615'],
      bytes: 3,
      value: 'abc',
    }),
  },
  {
    name: 'reads PREPEND as ms mode P',
    spec: { opcode: Op.PREPEND, key: 'foo', value: 'x' },
    expected: m('ms', 'ms foo 1 MP c', { keys: ['foo'], metaFlags: ['MP', 'c'], bytes: 1, value: 'x' }),
  },
  {
    name: 'reads PREPENDQ as ms mode P',
    spec: { opcode: Op.PREPENDQ, key: 'foo', value: 'x' },
    expected: m('ms', 'ms foo 1 MP c', { keys: ['foo'], metaFlags: ['MP', 'c'], bytes: 1, value: 'x' }),
  },
  {
    name: 'reads DELETE as md',
    spec: { opcode: Op.DELETE, key: 'foo', opaque: 7 },
    expected: m('md', 'md foo', { keys: ['foo'] }),
  },
  {
    name: 'reads DELETEQ with a cas',
    spec: { opcode: Op.DELETEQ, key: 'foo', cas: 123n },
    expected: m('md', 'md foo C123', { keys: ['foo'], metaFlags: ['C123'] }),
  },
  {
    name: 'reads INCREMENT as ma that creates a missing counter',
    spec: { opcode: Op.INCREMENT, key: 'n', extras: arithExtras(5n, 10n, 0) },
    expected: m('ma', 'ma n D5 MI v c N0 J10', { keys: ['n'], metaFlags: ['D5', 'MI', 'v', 'c', 'N0', 'J10'] }),
  },
  {
    name: 'reads INCREMENTQ with 64-bit delta and initial',
    spec: { opcode: Op.INCREMENTQ, key: 'n', extras: arithExtras(U64_MAX, 2n ** 63n, 3600), cas: 2n ** 32n },
    expected: m('ma', 'ma n D18446744073709551615 MI v c N3600 J9223372036854775808 C4294967296', {
      keys: ['n'],
      metaFlags: ['D18446744073709551615', 'MI', 'v', 'c', 'N3600', 'J9223372036854775808', 'C4294967296'],
    }),
  },
  {
    name: 'reads DECREMENT with expiration 0xffffffff as ma that does not create',
    spec: { opcode: Op.DECREMENT, key: 'n', extras: arithExtras(3n, 0n, 0xffffffff) },
    expected: m('ma', 'ma n D3 MD v c', { keys: ['n'], metaFlags: ['D3', 'MD', 'v', 'c'] }),
  },
  {
    name: 'reads DECREMENTQ as ma mode D',
    spec: { opcode: Op.DECREMENTQ, key: 'n', extras: arithExtras(2n ** 53n + 1n, 0n, 0xffffffff) },
    expected: m('ma', 'ma n D9007199254740993 MD v c', {
      keys: ['n'],
      metaFlags: ['D9007199254740993', 'MD', 'v', 'c'],
    }),
  },
  {
    name: 'reads NOOP as the binary-only noop command',
    spec: { opcode: Op.NOOP, opaque: 0xffffffff },
    expected: m('noop', ''),
  },
  { name: 'reads VERSION', spec: { opcode: Op.VERSION }, expected: m('version', 'version') },
  { name: 'reads QUIT', spec: { opcode: Op.QUIT }, expected: m('quit', 'quit') },
  { name: 'reads QUITQ as quit, quiet', spec: { opcode: Op.QUITQ }, expected: m('quit', 'quit') },
  { name: 'reads FLUSH without extras', spec: { opcode: Op.FLUSH }, expected: m('flush_all', 'flush_all') },
  // Expirations past 2^31-1 are absolute times after 2038-01-19 (0xffffffff: 2106) in memcached's binary
  // protocol, where the item lives; the meta token says the latest time an int32 can.
  {
    name: 'reads a SET expiration of 0xffffffff (-1 to some clients) as the latest meta TTL',
    spec: { opcode: Op.SET, key: 'foo', extras: storeExtras(0, 0xffffffff), value: 'hello' },
    expected: m('ms', 'ms foo 5 F0 T2147483647 c', {
      keys: ['foo'],
      metaFlags: ['F0', 'T2147483647', 'c'],
      bytes: 5,
      value: 'hello',
    }),
  },
  {
    name: 'reads a SET expiration of 2^31 as the latest meta TTL',
    spec: { opcode: Op.ADDQ, key: 'foo', extras: storeExtras(0, 0x80000000), value: 'h' },
    expected: m('ms', 'ms foo 1 F0 T2147483647 c ME', {
      keys: ['foo'],
      metaFlags: ['F0', 'T2147483647', 'c', 'ME'],
      bytes: 1,
      value: 'h',
    }),
  },
  {
    name: 'reads a GAT expiration past 2^31-1 as the latest meta TTL',
    spec: { opcode: Op.GAT, key: 'foo', extras: u32(0xfffffffe) },
    expected: m('mg', 'mg foo v f c T2147483647', { keys: ['foo'], metaFlags: ['v', 'f', 'c', 'T2147483647'] }),
  },
  {
    name: 'reads a TOUCH expiration past 2^31-1 as the latest meta TTL',
    spec: { opcode: Op.TOUCH, key: 'foo', extras: u32(0x9000_0000) },
    expected: m('mg', 'mg foo f c T2147483647', { keys: ['foo'], metaFlags: ['f', 'c', 'T2147483647'] }),
  },
  {
    name: 'reads an INCREMENT expiration past 2^31-1 (not 0xffffffff) as a create with the latest TTL',
    spec: { opcode: Op.INCREMENT, key: 'n', extras: arithExtras(1n, 7n, 0x80000000) },
    expected: m('ma', 'ma n D1 MI v c N2147483647 J7', {
      keys: ['n'],
      metaFlags: ['D1', 'MI', 'v', 'c', 'N2147483647', 'J7'],
    }),
  },
  {
    name: 'reads a FLUSH delay past 2^31-1 as the latest delay',
    spec: { opcode: Op.FLUSH, extras: u32(0xffffffff) },
    expected: m('flush_all', 'flush_all 2147483647', { delay: 2147483647 }),
  },
  {
    name: 'reads FLUSH with a delay',
    spec: { opcode: Op.FLUSH, extras: u32(30) },
    expected: m('flush_all', 'flush_all 30', { delay: 30 }),
  },
  {
    name: 'reads FLUSHQ with a zero delay',
    spec: { opcode: Op.FLUSHQ, extras: u32(0) },
    expected: m('flush_all', 'flush_all 0', { delay: 0 }),
  },
  { name: 'reads STAT without a group', spec: { opcode: Op.STAT }, expected: m('stats', 'stats') },
  {
    name: 'reads STAT with a group',
    spec: { opcode: Op.STAT, key: 'items' },
    expected: m('stats', 'stats items', { args: 'items' }),
  },
  {
    name: 'reads STAT with a group of two words',
    spec: { opcode: Op.STAT, key: 'detail dump' },
    expected: m('stats', 'stats detail dump', { args: 'detail dump' }),
  },
  {
    name: 'reads SASL_LIST_MECHS',
    spec: { opcode: Op.SASL_LIST_MECHS },
    expected: m('sasl_list_mechs', ''),
  },
  {
    name: 'reads SASL_AUTH: the mechanism as the key, the data as the value',
    spec: { opcode: Op.SASL_AUTH, key: 'PLAIN', value: '\0user\0secret' },
    expected: m('sasl_auth', 'PLAIN', { keys: ['PLAIN'], value: '\0user\0secret' }),
  },
  {
    name: 'reads SASL_STEP like SASL_AUTH',
    spec: { opcode: Op.SASL_STEP, key: 'PLAIN', value: '' },
    expected: m('sasl_step', 'PLAIN', { keys: ['PLAIN'], value: '' }),
  },
];

/** Keys that are not printable ASCII go base64 with the `b` flag. */
const KEYS: Fixture[] = [
  {
    name: 'writes a key with control bytes in base64 with b',
    spec: { opcode: Op.GET, key: BIN_KEY },
    expected: m('mg', `mg ${BIN_KEY_B64} b v f c`, {
      keys: [BIN_KEY_B64],
      metaFlags: ['b', 'v', 'f', 'c'],
      metaBase64: true,
    }),
  },
  {
    name: 'writes a UTF-8 key in base64',
    spec: { opcode: Op.SET, key: UTF8_KEY, extras: storeExtras(0, 0), value: 'v' },
    expected: m('ms', `ms ${UTF8_KEY.toString('base64')} 1 b F0 T0 c`, {
      keys: [UTF8_KEY.toString('base64')],
      metaFlags: ['b', 'F0', 'T0', 'c'],
      metaBase64: true,
      bytes: 1,
      value: 'v',
    }),
  },
  {
    name: 'writes a key with a space in base64 (a space would end the token)',
    spec: { opcode: Op.DELETE, key: 'a b' },
    expected: m('md', 'md YSBi b', { keys: ['YSBi'], metaFlags: ['b'], metaBase64: true }),
  },
  {
    name: 'writes a base64 key of an incr before its flags',
    spec: { opcode: Op.INCREMENT, key: '\x7f', extras: arithExtras(1n, 0n, 0xffffffff) },
    expected: m('ma', 'ma fw== b D1 MI v c', {
      keys: ['fw=='],
      metaFlags: ['b', 'D1', 'MI', 'v', 'c'],
      metaBase64: true,
    }),
  },
  {
    name: 'accepts a 250-byte printable key as it is',
    spec: { opcode: Op.GETK, key: K250 },
    expected: m('mg', `mg ${K250} v f c k`, { keys: [K250], metaFlags: ['v', 'f', 'c', 'k'] }),
  },
  {
    name: 'accepts a 250-byte binary key as 336 bytes of base64',
    spec: { opcode: Op.TOUCH, key: BIN250, extras: u32(1) },
    expected: m('mg', `mg ${BIN250.toString('base64')} b f c T1`, {
      keys: [BIN250.toString('base64')],
      metaFlags: ['b', 'f', 'c', 'T1'],
      metaBase64: true,
    }),
  },
];

function run(f: Fixture): void {
  const input = packet(f.spec);
  const outcome = parseBinaryEverySplit(input);
  expect(outcome).toEqual({ requests: [b(f.spec, f.expected)], fatal: null });
}

/** The text parser's reading of a synthesised line (+ the value, for ms). */
function textParse(req: Request): Request | undefined {
  const sink = new RecordingSink();
  const parser = new RequestParser(sink);
  const value = req.value === null ? [] : [...req.value, Buffer.from('\r\n')];
  parser.feed(Buffer.concat([req.line, Buffer.from('\r\n'), ...(req.cmd === 0 || value.length === 0 ? [] : value)]));
  return sink.requests[0];
}

function parseOne(spec: PacketSpec): Request {
  const sink = new BinaryRecordingSink();
  new BinaryRequestParser(sink).feed(packet(spec));
  const req = sink.requests[0];
  if (req === undefined) throw new Error('no request');
  return req;
}

describe('BinaryRequestParser: one request per opcode', () => {
  for (const f of VALID) it(f.name, () => run(f));

  it('covers every opcode memcached defines', () => {
    const seen = new Set(VALID.map((f) => f.spec.opcode));
    for (const [name, code] of Object.entries(Op)) expect(seen.has(code), name).toBe(true);
  });
});

describe('BinaryRequestParser: keys', () => {
  for (const f of KEYS) it(f.name, () => run(f));
});

describe('BinaryRequestParser: the synthesised line is what the text parser reads', () => {
  const cases = [...VALID, ...KEYS].filter((f) => {
    const name = f.expected.cmd ?? '';
    return lookupCommand(Buffer.from(name), 0, name.length) !== undefined;
  });
  for (const f of cases) {
    it(`${f.name}: same fields from RequestParser`, () => {
      const req = parseOne(f.spec);
      const text = textParse(req);
      expect(text).toBeDefined();
      if (text === undefined) return;
      // offsets, flags, value, error: every field the text parser fills
      expect(isSameRequest(req, text), JSON.stringify(f.expected)).toBe(true);
    });
  }

  it('leaves the binary-only commands out of the text command table', () => {
    for (const name of ['noop', 'sasl_list_mechs', 'sasl_auth', 'sasl_step']) {
      expect(lookupCommand(Buffer.from(name), 0, name.length)).toBeUndefined();
    }
    const out = parseTextLine('noop\r\n');
    expect(out?.error?.toString()).toBe('ERROR\r\n');
  });
});

function parseTextLine(s: string): Request | undefined {
  const sink = new RecordingSink();
  new RequestParser(sink).feed(Buffer.from(s, 'latin1'));
  return sink.requests[0];
}

const NOOP = packet({ opcode: Op.NOOP, opaque: 77 });
const noop = b({ opcode: Op.NOOP, opaque: 77 }, { cmd: 'noop' });

interface BadFixture {
  name: string;
  input: Buffer;
  expected: DescribedBinaryRequest[];
  fatal?: string | null;
  limits?: Parameters<typeof parseBinaryEverySplit>[1];
}

/** An error request: only its command, binary info and error. */
const e = (spec: PacketSpec, cmd: string | null, error: string): DescribedBinaryRequest => b(spec, { cmd, error });

const badSpecs = {
  unknown: { opcode: 0x30, key: 'k', value: 'abcd', opaque: 9 },
  getExtras: { opcode: Op.GET, key: 'foo', extras: u32(1) },
  getNoKey: { opcode: Op.GET },
  getValue: { opcode: Op.GET, key: 'foo', value: 'x' },
  keyOverBody: { opcode: Op.GET, key: 'foo', keyLength: 10 },
  extrasOverBody: { opcode: Op.SET, key: 'foo', extras: storeExtras(0, 0), extrasLength: 12, value: 'v' },
  key251: { opcode: Op.DELETE, key: 'k'.repeat(251) },
  setNoExtras: { opcode: Op.SET, key: 'foo', value: 'hello' },
  incrNoExtras: { opcode: Op.INCREMENT, key: 'n' },
  flushKey: { opcode: Op.FLUSH, key: 'x' },
  noopBody: { opcode: Op.NOOP, value: 'zz' },
  versionKey: { opcode: Op.VERSION, key: 'v' },
  deleteExtras: { opcode: Op.DELETE, key: 'foo', extras: u32(0) },
  statControl: { opcode: Op.STAT, key: 'it\nems' },
  statExtras: { opcode: Op.STAT, extras: u32(0) },
  saslNoKey: { opcode: Op.SASL_AUTH, value: 'x' },
  saslLarge: { opcode: Op.SASL_AUTH, key: 'PLAIN', value: Buffer.alloc(SASL_MAX_DATA_BYTES + 1, 0x61) },
  appendExtras: { opcode: Op.APPEND, key: 'foo', extras: u32(0), value: 'x' },
  touchNoExtras: { opcode: Op.TOUCH, key: 'foo' },
} satisfies Record<string, PacketSpec>;

const BAD: BadFixture[] = [
  {
    name: 'answers an unknown opcode UNKNOWN_COMMAND and skips its body',
    input: Buffer.concat([packet(badSpecs.unknown), NOOP]),
    expected: [e(badSpecs.unknown, null, ERROR), noop],
  },
  ...(
    [
      ['refuses GET with extras', badSpecs.getExtras, 'mg'],
      ['refuses GET without a key', badSpecs.getNoKey, 'mg'],
      ['refuses GET with a value', badSpecs.getValue, 'mg'],
      ['refuses a key longer than the body', badSpecs.keyOverBody, 'mg'],
      ['refuses extras + key longer than the body', badSpecs.extrasOverBody, 'ms'],
      ['refuses a 251-byte key', badSpecs.key251, 'md'],
      ['refuses SET without its 8 bytes of extras', badSpecs.setNoExtras, 'ms'],
      ['refuses INCREMENT without its 20 bytes of extras', badSpecs.incrNoExtras, 'ma'],
      ['refuses FLUSH with a key', badSpecs.flushKey, 'flush_all'],
      ['refuses NOOP with a body', badSpecs.noopBody, 'noop'],
      ['refuses VERSION with a key', badSpecs.versionKey, 'version'],
      ['refuses DELETE with extras', badSpecs.deleteExtras, 'md'],
      ['refuses a STAT group with control bytes', badSpecs.statControl, 'stats'],
      ['refuses STAT with extras', badSpecs.statExtras, 'stats'],
      ['refuses SASL_AUTH without a mechanism', badSpecs.saslNoKey, 'sasl_auth'],
      ['refuses APPEND with extras', badSpecs.appendExtras, 'ms'],
      ['refuses TOUCH without its expiration', badSpecs.touchNoExtras, 'mg'],
    ] as const
  ).map(([name, spec, cmd]): BadFixture => ({
    name: `${name} (EINVAL), and stays in sync`,
    input: Buffer.concat([packet(spec), NOOP]),
    expected: [e(spec, cmd, BAD_FORMAT), noop],
  })),
  {
    name: 'refuses SASL data over SASL_MAX_DATA_BYTES without keeping it',
    input: Buffer.concat([packet(badSpecs.saslLarge), NOOP]),
    expected: [e(badSpecs.saslLarge, 'sasl_auth', TOO_LARGE), noop],
  },
  {
    name: 'refuses a value over maxValueBytes (E2BIG) and skips it, keeping the line of its key (a refused SET drops the old item)',
    input: Buffer.concat([packet({ opcode: Op.SET, key: 'k', extras: storeExtras(0, 0), value: 'x'.repeat(9) }), NOOP]),
    expected: [
      b(
        { opcode: Op.SET },
        {
          cmd: 'ms',
          line: 'ms k 9 F0 T0 c',
          keys: ['k'],
          metaFlags: ['F0', 'T0', 'c'],
          bytes: 9,
          error: TOO_LARGE,
        },
      ),
      noop,
    ],
    limits: { maxValueBytes: 8 },
  },
  {
    name: 'refuses a SET body over maxBodyBytes (E2BIG) and skips its value, keeping the line of its key',
    input: Buffer.concat([
      packet({ opcode: Op.SET, key: 'k', extras: storeExtras(0, 0), value: 'x'.repeat(40) }),
      NOOP,
    ]),
    expected: [
      b(
        { opcode: Op.SET },
        { cmd: 'ms', line: 'ms k 40 F0 T0 c', keys: ['k'], metaFlags: ['F0', 'T0', 'c'], bytes: 40, error: TOO_LARGE },
      ),
      noop,
    ],
    limits: { maxBodyBytes: 32 },
  },
  {
    name: 'answers a malformed packet over maxBodyBytes EINVAL, as memcached checks the lengths first',
    input: Buffer.concat([packet({ opcode: Op.GET, key: 'k', value: 'x'.repeat(40) }), NOOP]),
    expected: [e({ opcode: Op.GET }, 'mg', BAD_FORMAT), noop],
    limits: { maxBodyBytes: 32 },
  },
  {
    name: 'accepts a value of exactly maxValueBytes',
    input: packet({ opcode: Op.APPEND, key: 'k', value: 'x'.repeat(8) }),
    expected: [
      b(
        { opcode: Op.APPEND },
        { cmd: 'ms', line: 'ms k 8 MA c', keys: ['k'], metaFlags: ['MA', 'c'], bytes: 8, value: 'xxxxxxxx' },
      ),
    ],
    limits: { maxValueBytes: 8 },
  },
  {
    name: 'refuses a body over maxBodyBytes (E2BIG) whatever the opcode, and skips it',
    input: Buffer.concat([packet({ opcode: Op.GET, key: 'k'.repeat(40) }), NOOP]),
    expected: [e({ opcode: Op.GET }, 'mg', TOO_LARGE), noop],
    limits: { maxBodyBytes: 32 },
  },
  {
    name: 'honours a smaller maxKeyBytes',
    input: Buffer.concat([packet({ opcode: Op.GET, key: 'abcde' }), packet({ opcode: Op.GET, key: 'abcd' })]),
    expected: [
      e({ opcode: Op.GET }, 'mg', BAD_FORMAT),
      b({ opcode: Op.GET }, { cmd: 'mg', line: 'mg abcd v f c', keys: ['abcd'], metaFlags: ['v', 'f', 'c'] }),
    ],
    limits: { maxKeyBytes: 4 },
  },
  {
    name: 'closes without a reply on a wrong magic byte, after the requests before it',
    input: Buffer.concat([NOOP, packet({ opcode: Op.NOOP, magic: 0x81 }), NOOP]),
    expected: [noop],
    fatal: '',
  },
  {
    name: 'closes on a text command sent to the binary port',
    input: Buffer.from('get foo\r\nget bar\r\nget baz\r\n', 'latin1'),
    expected: [],
    fatal: '',
  },
];

describe('BinaryRequestParser: malformed packets', () => {
  for (const f of BAD) {
    it(f.name, () => {
      expect(parseBinaryEverySplit(f.input, f.limits)).toEqual({ requests: f.expected, fatal: f.fatal ?? null });
    });
  }

  it('closes on a body over MAX_SKIPPABLE_BODY_BYTES with an E2BIG packet, before reading it', () => {
    const head = packet({ opcode: Op.SET, opaque: 0x01020304, bodyLength: MAX_SKIPPABLE_BODY_BYTES + 1 });
    const outcome = parseBinaryEverySplit(head.subarray(0, HEADER_BYTES));
    const e2big =
      '81' +
      '01' +
      '0000' +
      '00' +
      '00' +
      '0003' +
      '0000000a' +
      '01020304' +
      NO_CAS +
      Buffer.from('Too large.').toString('hex');
    expect(outcome).toEqual({ requests: [], fatal: e2big });
  });

  it('skips a body of MAX_SKIPPABLE_BODY_BYTES without keeping it, and reads on', () => {
    const sink = new BinaryRecordingSink();
    const parser = new BinaryRequestParser(sink);
    parser.feed(packet({ opcode: Op.SET, key: 'k', extras: storeExtras(0, 0), bodyLength: MAX_SKIPPABLE_BODY_BYTES }));
    const chunk = Buffer.alloc(1024 * 1024, 0x80);
    let left = MAX_SKIPPABLE_BODY_BYTES - 9;
    while (left > 0) {
      const n = Math.min(left, chunk.length);
      parser.feed(chunk.subarray(0, n));
      left -= n;
    }
    expect(sink.requests).toHaveLength(1);
    expect(sink.requests[0]?.error?.toString()).toBe(`${TOO_LARGE}\r\n`);
    expect(sink.requests[0]?.value).toBeNull();
    parser.feed(NOOP);
    expect(sink.binaryOutcome().requests.map((r) => r.cmd)).toEqual(['ms', 'noop']);
  });

  it('ignores input after a fatal error until reset', () => {
    const sink = new BinaryRecordingSink();
    const parser = new BinaryRequestParser(sink);
    parser.feed(Buffer.from([0x00]));
    parser.feed(Buffer.alloc(HEADER_BYTES - 1));
    expect(parser.isClosed).toBe(true);
    expect(sink.fatalCount).toBe(1);
    parser.feed(NOOP);
    expect(sink.requests).toHaveLength(0);
    parser.reset();
    expect(parser.isClosed).toBe(false);
    parser.feed(NOOP);
    expect(sink.binaryOutcome().requests).toEqual([noop]);
  });

  it('never throws on a header claiming 4 GiB', () => {
    const head = packet({ opcode: Op.GET, bodyLength: 0xffffffff, keyLength: 0xffff, extrasLength: 0xff });
    expect(parseBinaryChunks([head])).toEqual({
      requests: [],
      fatal: expect.any(String) as unknown as string,
    });
  });
});

describe('BinaryRequestParser: pipelines and buffers', () => {
  it('reads every opcode pipelined in one buffer, in order', () => {
    const all = [...VALID, ...KEYS];
    const input = Buffer.concat(all.map((f) => packet(f.spec)));
    const outcome = parseBinaryEverySplit(input);
    expect(outcome).toEqual({ requests: all.map((f) => b(f.spec, f.expected)), fatal: null });
  });

  it('reads good and bad packets pipelined, answering each in its place', () => {
    const specs = [
      VALID[0]?.spec,
      badSpecs.unknown,
      VALID[9]?.spec,
      badSpecs.setNoExtras,
      badSpecs.key251,
      VALID[20]?.spec,
    ].filter((s): s is PacketSpec => s !== undefined);
    const outcome = parseBinaryEverySplit(Buffer.concat(specs.map(packet)));
    expect(outcome.requests.map((r) => [r.cmd, r.error])).toEqual([
      ['mg', null],
      [null, ERROR],
      ['ms', null],
      ['ms', BAD_FORMAT],
      ['md', BAD_FORMAT],
      ['md', null],
    ]);
  });

  it('keeps the value as slices of the chunk it arrived in, never a copy', () => {
    const chunk = packet({ opcode: Op.SET, key: 'foo', extras: storeExtras(0, 0), value: 'hello world' });
    const req = parseOne({ opcode: Op.SET, key: 'foo', extras: storeExtras(0, 0), value: 'hello world' });
    expect(req.value?.map((v) => v.toString())).toEqual(['hello world']);
    const sink = new BinaryRecordingSink();
    const parser = new BinaryRequestParser(sink);
    parser.feed(chunk.subarray(0, chunk.length - 5));
    parser.feed(chunk.subarray(chunk.length - 5));
    const value = sink.requests[0]?.value ?? [];
    expect(value).toHaveLength(2);
    expect(value[0]?.buffer).toBe(chunk.buffer);
    expect(value[1]?.buffer).toBe(chunk.buffer);
  });

  it('gives every request a line of its own (the scratch buffer is reused)', () => {
    const sink = new BinaryRecordingSink();
    const parser = new BinaryRequestParser(sink);
    parser.feed(Buffer.concat([packet({ opcode: Op.GET, key: 'first' }), packet({ opcode: Op.GET, key: 'second' })]));
    expect(sink.requests.map((r) => r.line.toString())).toEqual(['mg first v f c', 'mg second v f c']);
  });

  it('stops the current chunk when the sink resets the parser', () => {
    const parser: { p: BinaryRequestParser | null } = { p: null };
    const seen: string[] = [];
    const sink = {
      onRequest(req: Request): void {
        seen.push(req.line.toString());
        parser.p?.reset();
      },
      onFatal(): void {},
    };
    parser.p = new BinaryRequestParser(sink);
    parser.p.feed(Buffer.concat([packet({ opcode: Op.GET, key: 'a' }), packet({ opcode: Op.GET, key: 'b' })]));
    expect(seen).toEqual(['mg a v f c']);
  });

  it('accepts a SET of the default item size with its key under the default body limit', () => {
    const value = Buffer.alloc(MAX_VALUE_BYTES, 0x61);
    const req = parseOne({ opcode: Op.SET, key: 'k'.repeat(250), extras: storeExtras(0, 0), value });
    expect(req.error).toBeNull();
    expect(req.bytes).toBe(MAX_VALUE_BYTES);
    const over = parseOne({
      opcode: Op.SET,
      key: 'k',
      extras: storeExtras(0, 0),
      value: Buffer.alloc(MAX_VALUE_BYTES + 1),
    });
    expect(over.error?.toString()).toBe(`${TOO_LARGE}\r\n`);
  });

  it('keeps the header cas bytes, and shares one zero buffer when there is none', () => {
    const a = parseOne({ opcode: Op.GET, key: 'a' });
    const c = parseOne({ opcode: Op.GET, key: 'c' });
    expect(a.binary?.cas).toBe(c.binary?.cas);
    const d = parseOne({ opcode: Op.DELETE, key: 'd', cas: 0x0102030405060708n });
    expect(d.binary?.cas.toString('hex')).toBe('0102030405060708');
  });
});
