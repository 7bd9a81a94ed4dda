/**
 * RequestParser: fixture tables per command family, each run whole, byte by
 * byte, split in two at every index and, up to 24 bytes, split every way
 * (test/helpers/splits.ts); then buffer ownership, lifecycle and default limits.
 *
 * NOTE: over 800 lines because the fixture tables are one list per command
 * family and every case is a line of protocol; split by family if it grows.
 * Exhaustive splitting costs 2^(n-1) runs for an n-byte fixture (about 1 s
 * at 21 bytes, 10 s at 24), so a case that needs more bytes usually ends with
 * a trailing `mn` or `version`, proving the stream is in sync instead.
 */
import { describe, expect, it } from 'vitest';
import { MAX_LINE_BYTES, MAX_VALUE_BYTES } from '../../../../src/protocol/limits.js';
import { base64DecodedLength } from '../../../../src/protocol/text/base64.js';
import { isUint64, parseInt32, parseUnsigned, NO_NUMBER } from '../../../../src/protocol/text/bytes.js';
import { Replies } from '../../../../src/protocol/text/replies.js';
import type { Request } from '../../../../src/protocol/text/request.js';
import { RequestParser } from '../../../../src/protocol/text/request-parser.js';
import {
  RecordingSink,
  described as r,
  parseChunks,
  runParserFixture,
  type ParserFixture,
} from '../../../helpers/splits.js';

const ERROR = 'ERROR';
const BAD_FORMAT = 'CLIENT_ERROR bad command line format';
const BAD_DELETE = 'CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]';
const BAD_CHUNK = 'CLIENT_ERROR bad data chunk';
const BAD_DELTA = 'CLIENT_ERROR invalid numeric delta argument';
const BAD_EXPTIME = 'CLIENT_ERROR invalid exptime argument';
const TOO_LONG = 'CLIENT_ERROR line too long';
const DUPLICATE = 'CLIENT_ERROR duplicate flag';
const INVALID_FLAG = 'CLIENT_ERROR invalid flag';
const INVALID_OR_DUPLICATE = 'CLIENT_ERROR invalid or duplicate flag';
const END = 'END';
const OPAQUE_LONG = 'CLIENT_ERROR opaque token too long';
const BAD_TOKEN = 'CLIENT_ERROR bad token in command line format';
const KEY_ENCODING = 'CLIENT_ERROR error decoding key';
const TOO_LARGE = 'SERVER_ERROR object too large for cache';

const K250 = 'k'.repeat(250);
const K251 = 'k'.repeat(251);
const version = r({ cmd: 'version' });
const unknown = r({ cmd: null, error: ERROR });

const retrieval: ParserFixture[] = [
  { name: 'parses a get with one key', bytes: 'get foo\r\n', expected: [r({ cmd: 'get', keys: ['foo'] })] },
  {
    name: 'splits gets keys on runs of spaces, ignoring leading and trailing spaces',
    bytes: '  gets  a   bb c  \r\n',
    expected: [r({ cmd: 'gets', keys: ['a', 'bb', 'c'] })],
  },
  {
    name: 'accepts a bare \\n line end',
    bytes: 'get foo\nget b\n',
    expected: [r({ cmd: 'get', keys: ['foo'] }), r({ cmd: 'get', keys: ['b'] })],
  },
  {
    name: 'answers a get without keys with ERROR',
    bytes: 'get\r\nget  \r\n',
    expected: [r({ cmd: 'get', error: ERROR }), r({ cmd: 'get', error: ERROR })],
  },
  { name: 'accepts a 250-byte key', bytes: `get ${K250}\r\n`, expected: [r({ cmd: 'get', keys: [K250] })] },
  {
    name: 'rejects a 251-byte key',
    bytes: `get a ${K251}\r\nmn\r\n`,
    expected: [r({ cmd: 'get', keys: ['a'], error: BAD_FORMAT }), r({ cmd: 'mn' })],
  },
  { name: 'rejects a tab inside a key', bytes: 'get a\tb\r\n', expected: [r({ cmd: 'get', error: BAD_FORMAT })] },
  { name: 'rejects a DEL byte in a key', bytes: 'get a\x7f\r\n', expected: [r({ cmd: 'get', error: BAD_FORMAT })] },
  {
    name: 'rejects a \\r inside a line as part of a key',
    bytes: 'get a\rb\r\n',
    expected: [r({ cmd: 'get', error: BAD_FORMAT })],
  },
  {
    name: 'strips only one \\r before the \\n',
    bytes: 'get a\r\r\n',
    expected: [r({ cmd: 'get', error: BAD_FORMAT })],
  },
  { name: 'accepts key bytes above 0x7f', bytes: 'get caf\xe9\r\n', expected: [r({ cmd: 'get', keys: ['caf\xe9'] })] },
  {
    name: 'stops at the first bad key and keeps the keys before it',
    bytes: 'get a b\x01 c\r\n',
    expected: [r({ cmd: 'get', keys: ['a'], error: BAD_FORMAT })],
  },
  {
    name: 'parses gat with its exptime and keys',
    bytes: 'gat 10 a b\r\n',
    expected: [r({ cmd: 'gat', exptime: 10, keys: ['a', 'b'] })],
  },
  {
    name: 'accepts a negative exptime on gats',
    bytes: 'gats -1 k\r\n',
    expected: [r({ cmd: 'gats', exptime: -1, keys: ['k'] })],
  },
  {
    name: 'answers a gat with an exptime and no keys with END, as memcached does',
    bytes: 'gat 10\r\ngats 0\r\n',
    expected: [r({ cmd: 'gat', exptime: 10, error: END }), r({ cmd: 'gats', error: END })],
  },
  {
    name: 'answers a gat without an exptime with invalid exptime, as memcached does',
    bytes: 'gat k\r\ngat\r\n',
    expected: [r({ cmd: 'gat', error: BAD_EXPTIME }), r({ cmd: 'gat', error: ERROR })],
  },
  {
    name: 'rejects a gat exptime with a plus sign',
    bytes: 'gat +5 k\r\n',
    expected: [r({ cmd: 'gat', error: BAD_EXPTIME })],
  },
  {
    name: 'wraps a gat exptime past int32 to an int32, as memcached does',
    bytes: 'gat 2147483648 k\r\n',
    expected: [r({ cmd: 'gat', exptime: -2147483648, keys: ['k'] })],
  },
  {
    name: 'accepts the smallest int32 exptime',
    bytes: 'gat -2147483648 k\r\n',
    expected: [r({ cmd: 'gat', exptime: -2147483648, keys: ['k'] })],
  },
  {
    name: 'rejects a gat exptime of a lone minus',
    bytes: 'gat - k\r\n',
    expected: [r({ cmd: 'gat', error: BAD_EXPTIME })],
  },
];

const storage: ParserFixture[] = [
  {
    name: 'parses a set and its value',
    bytes: 'set k 5 10 3\r\nabc\r\n',
    expected: [r({ cmd: 'set', keys: ['k'], flags: 5, exptime: 10, bytes: 3, value: 'abc' })],
  },
  {
    name: 'parses noreply on a set',
    bytes: 'add k 0 0 1 noreply\r\nx\r\nmn\r\n',
    expected: [r({ cmd: 'add', keys: ['k'], bytes: 1, noreply: true, value: 'x' }), r({ cmd: 'mn' })],
  },
  {
    name: 'ignores a sixth set token that is not noreply, as memcached does',
    bytes: 'replace k 0 0 1 nope\r\nx\r\n',
    expected: [r({ cmd: 'replace', keys: ['k'], bytes: 1, value: 'x' })],
  },
  {
    name: 'reads a value containing \\r\\n by its length',
    bytes: 'set k 0 0 4\r\na\r\nb\r\n',
    expected: [r({ cmd: 'set', keys: ['k'], bytes: 4, value: 'a\r\nb' })],
  },
  {
    name: 'parses an empty value',
    bytes: 'prepend k 0 0 0\r\n\r\n',
    expected: [r({ cmd: 'prepend', keys: ['k'], value: '' })],
  },
  {
    name: 'accepts a negative exptime on set',
    bytes: 'set k 0 -1 1\r\nx\r\n',
    expected: [r({ cmd: 'set', keys: ['k'], exptime: -1, bytes: 1, value: 'x' })],
  },
  {
    name: 'accepts flags of 2^32-1',
    bytes: 'set k 4294967295 0 0\r\n\r\nmn\r\n',
    expected: [r({ cmd: 'set', keys: ['k'], flags: 4294967295, value: '' }), r({ cmd: 'mn' })],
  },
  {
    name: 'wraps set flags past 2^32-1 to a uint32, as memcached does',
    bytes: 'set k 4294967301 0 1\r\nx\r\nmn\r\n',
    expected: [r({ cmd: 'set', keys: ['k'], flags: 5, bytes: 1, value: 'x' }), r({ cmd: 'mn' })],
  },
  {
    name: 'swallows the value of a set whose flags pass 2^64-1',
    bytes: 'set k 18446744073709551616 0 1\r\nx\r\nmn\r\n',
    expected: [r({ cmd: 'set', keys: ['k'], bytes: 1, error: BAD_FORMAT }), r({ cmd: 'mn' })],
  },
  {
    name: 'wraps a set exptime past int32 to an int32, as memcached does',
    bytes: 'set k 0 4294967295 1\r\nx\r\nmn\r\n',
    expected: [r({ cmd: 'set', keys: ['k'], exptime: -1, bytes: 1, value: 'x' }), r({ cmd: 'mn' })],
  },
  {
    name: 'swallows the value of a set whose exptime passes 2^63-1',
    bytes: 'set k 0 9223372036854775808 1\r\nx\r\nmn\r\n',
    expected: [r({ cmd: 'set', keys: ['k'], bytes: 1, error: BAD_FORMAT }), r({ cmd: 'mn' })],
  },
  {
    name: 'rejects flags written with a plus sign',
    bytes: 'set k +5 0 1\r\nx\r\n',
    expected: [r({ cmd: 'set', keys: ['k'], bytes: 1, error: BAD_FORMAT })],
  },
  {
    name: 'rejects flags written in hex',
    bytes: 'set k 0x10 0 1\r\nx\r\n',
    expected: [r({ cmd: 'set', keys: ['k'], bytes: 1, error: BAD_FORMAT })],
  },
  {
    name: 'rejects an exptime written with an exponent',
    bytes: 'set k 0 1e3 1\r\nx\r\n',
    expected: [r({ cmd: 'set', keys: ['k'], bytes: 1, error: BAD_FORMAT })],
  },
  {
    name: 'rejects negative flags',
    bytes: 'set k -1 0 1\r\nx\r\n',
    expected: [r({ cmd: 'set', keys: ['k'], bytes: 1, error: BAD_FORMAT })],
  },
  {
    name: 'swallows the value of a set whose key is too long and stays in sync',
    bytes: `set ${K251} 0 0 11\r\nflush_all\r\n\r\nversion\r\n`,
    expected: [r({ cmd: 'set', bytes: 11, error: BAD_FORMAT }), version],
  },
  {
    name: 'swallows the value of a set whose key holds a control byte',
    bytes: 'set a\x01 0 0 5\r\nquit!\r\nmn\r\n',
    expected: [r({ cmd: 'set', bytes: 5, error: BAD_FORMAT }), r({ cmd: 'mn' })],
  },
  {
    name: 'swallows a value over maxValueBytes and answers TOO_LARGE',
    bytes: 'set k 0 0 5\r\nhello\r\nversion\r\n',
    limits: { maxValueBytes: 4 },
    expected: [r({ cmd: 'set', keys: ['k'], bytes: 5, error: TOO_LARGE }), version],
  },
  {
    name: 'accepts a value of exactly maxValueBytes',
    bytes: 'set k 0 0 4\r\nhell\r\n',
    limits: { maxValueBytes: 4 },
    expected: [r({ cmd: 'set', keys: ['k'], bytes: 4, value: 'hell' })],
  },
  {
    name: 'answers a data block not followed by \\r\\n with a bad data chunk and stays in sync by count',
    bytes: 'set k 0 0 3\r\nabcde\r\nversion\r\n',
    expected: [r({ cmd: 'set', keys: ['k'], bytes: 3, error: BAD_CHUNK }), unknown, version],
  },
  {
    name: 'checks the \\r after the data block',
    bytes: 'set k 0 0 1\nxx\nmn\n',
    expected: [r({ cmd: 'set', keys: ['k'], bytes: 1, error: BAD_CHUNK }), r({ cmd: 'mn' })],
  },
  {
    name: 'checks the \\n after the data block',
    bytes: 'set k 0 0 1\nx\rXmn\n',
    expected: [r({ cmd: 'set', keys: ['k'], bytes: 1, error: BAD_CHUNK }), r({ cmd: 'mn' })],
  },
  {
    name: 'keeps the first error when a rejected value also ends badly',
    bytes: 'set k 0 0 1\nxyzmn\n',
    limits: { maxValueBytes: 0 },
    expected: [r({ cmd: 'set', keys: ['k'], bytes: 1, error: TOO_LARGE }), r({ cmd: 'mn' })],
  },
  {
    name: 'answers a set with too many tokens with ERROR and swallows its value',
    bytes: 'set k 0 0 1 noreply x\r\nq\r\nmn\r\n',
    expected: [r({ cmd: 'set', bytes: 1, error: ERROR }), r({ cmd: 'mn' })],
  },
  {
    name: 'ends the stream when a set has no bytes token',
    bytes: 'set k 0 0\r\nx\r\nmn\r\n',
    expected: [],
    fatal: ERROR,
  },
  {
    name: 'ends the stream on a set whose bytes are not digits',
    bytes: 'mn\r\nset k 0 0 x\r\n',
    expected: [r({ cmd: 'mn' })],
    fatal: BAD_FORMAT,
  },
  {
    name: 'ends the stream on bytes written with a plus sign',
    bytes: 'set k 0 0 +5\r\n',
    expected: [],
    fatal: BAD_FORMAT,
  },
  { name: 'ends the stream on negative bytes', bytes: 'set k 0 0 -1\r\n', expected: [], fatal: BAD_FORMAT },
  { name: 'ends the stream on bytes in hex', bytes: 'set k 0 0 0x10\r\n', expected: [], fatal: BAD_FORMAT },
  {
    name: 'ends the stream on bytes past 2^31',
    bytes: 'set k 0 0 2147483649\r\nmn\r\n',
    expected: [],
    fatal: BAD_FORMAT,
  },
  { name: 'counts down bytes of 2^31 without delivering early', bytes: 'set k 0 0 2147483648\r\nabc', expected: [] },
  {
    name: 'parses a cas unique of 2^64-1 exactly',
    bytes: 'cas k 1 2 3 18446744073709551615\r\nabc\r\n',
    expected: [
      r({ cmd: 'cas', keys: ['k'], flags: 1, exptime: 2, bytes: 3, num: '18446744073709551615', value: 'abc' }),
    ],
  },
  {
    name: 'rejects a cas unique of 2^64 and swallows the value',
    bytes: 'cas k 1 2 3 18446744073709551616\r\nabc\r\nmn\r\n',
    expected: [r({ cmd: 'cas', keys: ['k'], flags: 1, exptime: 2, bytes: 3, error: BAD_FORMAT }), r({ cmd: 'mn' })],
  },
  {
    name: 'rejects a cas unique of 21 digits',
    bytes: 'cas k 0 0 0 000000000000000000001\r\n\r\n',
    expected: [r({ cmd: 'cas', keys: ['k'], error: BAD_FORMAT })],
  },
  {
    name: 'parses noreply on cas',
    bytes: 'cas k 0 0 1 7 noreply\r\nx\r\n',
    expected: [r({ cmd: 'cas', keys: ['k'], bytes: 1, num: '7', noreply: true, value: 'x' })],
  },
  {
    name: 'answers a cas without its unique with ERROR',
    bytes: 'cas k 0 0 1\nx\r\nmn\n',
    expected: [r({ cmd: 'cas', bytes: 1, error: ERROR }), r({ cmd: 'mn' })],
  },
  {
    name: 'parses a set with runs of spaces',
    bytes: '  set   k  1  2  3   noreply  \r\nabc\r\n',
    expected: [r({ cmd: 'set', keys: ['k'], flags: 1, exptime: 2, bytes: 3, noreply: true, value: 'abc' })],
  },
];

const others: ParserFixture[] = [
  { name: 'parses delete', bytes: 'delete k\r\n', expected: [r({ cmd: 'delete', keys: ['k'] })] },
  {
    name: 'parses delete noreply',
    bytes: 'delete k noreply\r\n',
    expected: [r({ cmd: 'delete', keys: ['k'], noreply: true })],
  },
  {
    name: 'accepts delete with a zero hold time',
    bytes: 'delete k 0\r\n',
    expected: [r({ cmd: 'delete', keys: ['k'] })],
  },
  {
    name: 'accepts delete with zero and noreply',
    bytes: 'delete k 0 noreply\r\n',
    expected: [r({ cmd: 'delete', keys: ['k'], noreply: true })],
  },
  {
    name: 'rejects delete with a non-zero hold time',
    bytes: 'delete k 5\r\n',
    expected: [r({ cmd: 'delete', error: BAD_DELETE })],
  },
  {
    name: 'rejects delete with two zeros',
    bytes: 'delete k 0 0\r\n',
    expected: [r({ cmd: 'delete', error: BAD_DELETE })],
  },
  {
    name: 'answers delete with more than four tokens with ERROR, as memcached does',
    bytes: 'delete k 0 0 x\r\n',
    expected: [r({ cmd: 'delete', error: ERROR })],
  },
  {
    name: 'answers delete without a key with ERROR',
    bytes: 'delete\r\n',
    expected: [r({ cmd: 'delete', error: ERROR })],
  },
  {
    name: 'rejects delete of a bad key',
    bytes: `delete ${K251}\r\n`,
    expected: [r({ cmd: 'delete', error: BAD_FORMAT })],
  },
  { name: 'parses incr with its delta', bytes: 'incr k 1\r\n', expected: [r({ cmd: 'incr', keys: ['k'], num: '1' })] },
  {
    name: 'parses decr with a 2^64-1 delta and noreply',
    bytes: 'decr k 18446744073709551615 noreply\r\n',
    expected: [r({ cmd: 'decr', keys: ['k'], num: '18446744073709551615', noreply: true })],
  },
  {
    name: 'rejects a delta of 2^64',
    bytes: 'incr k 18446744073709551616\r\n',
    expected: [r({ cmd: 'incr', keys: ['k'], error: BAD_DELTA })],
  },
  {
    name: 'rejects a negative delta',
    bytes: 'incr k -1\r\n',
    expected: [r({ cmd: 'incr', keys: ['k'], error: BAD_DELTA })],
  },
  {
    name: 'rejects a delta with a plus sign',
    bytes: 'decr k +1\r\n',
    expected: [r({ cmd: 'decr', keys: ['k'], error: BAD_DELTA })],
  },
  {
    name: 'answers incr without a delta with ERROR',
    bytes: 'incr k\r\n',
    expected: [r({ cmd: 'incr', error: ERROR })],
  },
  {
    name: 'answers incr with extra tokens with ERROR',
    bytes: 'incr k 1 noreply x\n',
    expected: [r({ cmd: 'incr', error: ERROR })],
  },
  {
    name: 'rejects incr of a key with a tab',
    bytes: 'incr a\tb 1\r\n',
    expected: [r({ cmd: 'incr', error: BAD_FORMAT })],
  },
  {
    name: 'rejects touch of a 251-byte key',
    bytes: `touch ${K251} 1\r\n`,
    expected: [r({ cmd: 'touch', error: BAD_FORMAT })],
  },
  { name: 'parses touch', bytes: 'touch k 10\r\n', expected: [r({ cmd: 'touch', keys: ['k'], exptime: 10 })] },
  {
    name: 'parses touch with a negative exptime and noreply',
    bytes: 'touch k -1 noreply\r\n',
    expected: [r({ cmd: 'touch', keys: ['k'], exptime: -1, noreply: true })],
  },
  {
    name: 'rejects a touch exptime that is not a number',
    bytes: 'touch k 1e3\r\n',
    expected: [r({ cmd: 'touch', keys: ['k'], error: BAD_EXPTIME })],
  },
  {
    name: 'answers touch without an exptime with ERROR',
    bytes: 'touch k\r\n',
    expected: [r({ cmd: 'touch', error: ERROR })],
  },
  { name: 'parses flush_all without a delay', bytes: 'flush_all\r\n', expected: [r({ cmd: 'flush_all' })] },
  { name: 'parses flush_all with a delay', bytes: 'flush_all 10\r\n', expected: [r({ cmd: 'flush_all', delay: 10 })] },
  {
    name: 'parses flush_all noreply',
    bytes: 'flush_all noreply\r\n',
    expected: [r({ cmd: 'flush_all', noreply: true })],
  },
  {
    name: 'parses flush_all with a delay and noreply',
    bytes: 'flush_all 0 noreply\n',
    expected: [r({ cmd: 'flush_all', delay: 0, noreply: true })],
  },
  {
    name: 'reads a negative flush_all delay as now, as memcached does',
    bytes: 'flush_all -1\r\n',
    expected: [r({ cmd: 'flush_all', delay: 0 })],
  },
  {
    name: 'answers a flush_all delay in hex with invalid exptime, as memcached does',
    bytes: 'flush_all 0x10\r\nflush_all abc\r\n',
    expected: [r({ cmd: 'flush_all', error: BAD_EXPTIME }), r({ cmd: 'flush_all', error: BAD_EXPTIME })],
  },
  {
    name: 'reads token 1 of a three-token flush_all as its delay, as memcached does',
    bytes: 'flush_all 1 2\r\nflush_all noreply 5\r\nflush_all 1 2 3\r\n',
    expected: [
      r({ cmd: 'flush_all', delay: 1 }),
      r({ cmd: 'flush_all', error: BAD_EXPTIME }),
      r({ cmd: 'flush_all', error: ERROR }),
    ],
  },
  { name: 'parses verbosity', bytes: 'verbosity 1\r\n', expected: [r({ cmd: 'verbosity', num: '1' })] },
  {
    name: 'parses verbosity noreply',
    bytes: 'verbosity 2 noreply\n',
    expected: [r({ cmd: 'verbosity', num: '2', noreply: true })],
  },
  {
    name: 'answers verbosity without a level with ERROR',
    bytes: 'verbosity\r\n',
    expected: [r({ cmd: 'verbosity', error: ERROR })],
  },
  {
    name: 'answers a verbosity level that is not digits with bad command line format, as memcached does',
    bytes: 'verbosity x\r\n',
    expected: [r({ cmd: 'verbosity', error: BAD_FORMAT })],
  },
  {
    name: 'reads verbosity noreply as a silent level 0, as memcached does',
    bytes: 'verbosity noreply\n',
    expected: [r({ cmd: 'verbosity', noreply: true })],
  },
  {
    name: 'parses version, quit and mn',
    bytes: 'version\r\nquit\nmn\r\n',
    expected: [version, r({ cmd: 'quit' }), r({ cmd: 'mn' })],
  },
  { name: 'ignores tokens after version, as memcached does', bytes: 'version foo\r\n', expected: [version] },
  { name: 'parses stats without arguments', bytes: 'stats\r\n', expected: [r({ cmd: 'stats' })] },
  {
    name: 'keeps stats arguments as one range without the spaces around it',
    bytes: 'stats  slabs  \r\n',
    expected: [r({ cmd: 'stats', args: 'slabs' })],
  },
  { name: 'keeps every stats argument', bytes: 'stats a b  c\r\n', expected: [r({ cmd: 'stats', args: 'a b  c' })] },
  {
    name: 'rejects a control byte in stats arguments',
    bytes: 'stats a\x01\r\n',
    expected: [r({ cmd: 'stats', args: 'a\x01', error: BAD_FORMAT })],
  },
  {
    name: 'rejects a byte above 0x7e in stats arguments',
    bytes: 'stats \xe9\r\n',
    expected: [r({ cmd: 'stats', args: '\xe9', error: BAD_FORMAT })],
  },
  {
    name: 'keeps admin arguments as one range',
    bytes: 'lru_crawler metadump all\r\n',
    expected: [r({ cmd: 'lru_crawler', args: 'metadump all' })],
  },
  {
    name: 'sees noreply at the end of an admin line',
    bytes: 'cache_memlimit 100 noreply\r\n',
    expected: [r({ cmd: 'cache_memlimit', args: '100 noreply', noreply: true })],
  },
  { name: 'parses an admin command without arguments', bytes: 'shutdown\r\n', expected: [r({ cmd: 'shutdown' })] },
  {
    name: 'answers an unknown command with ERROR and stays in sync',
    bytes: 'foo bar\r\nmn\r\n',
    expected: [unknown, r({ cmd: 'mn' })],
  },
  { name: 'matches command names case-sensitively', bytes: 'GET k\r\n', expected: [unknown] },
  { name: 'does not match a longer name', bytes: 'gett k\r\n', expected: [unknown] },
  { name: 'answers an empty line with ERROR', bytes: '\r\n\n', expected: [unknown, unknown] },
  { name: 'answers a line of spaces with ERROR', bytes: '   \r\n', expected: [unknown] },
  { name: 'delivers nothing for an incomplete line', bytes: 'get foo', expected: [] },
  { name: 'delivers nothing until the data block ends', bytes: 'set k 0 0 3\r\nabc\r', expected: [] },
];

const meta: ParserFixture[] = [
  {
    name: 'parses mg with flags',
    bytes: 'mg k v t\r\n',
    expected: [r({ cmd: 'mg', keys: ['k'], metaFlags: ['v', 't'] })],
  },
  {
    name: 'parses mg with every flag, dropping q, P and L and keeping b',
    bytes: 'mg Zm9v b c f h k l Oabc q s t u v C1 E2 N-1 R30 T60 Pfoo Lbar\r\n',
    expected: [
      r({
        cmd: 'mg',
        keys: ['Zm9v'],
        metaFlags: ['b', 'c', 'f', 'h', 'k', 'l', 'Oabc', 's', 't', 'u', 'v', 'C1', 'E2', 'N-1', 'R30', 'T60'],
        metaQuiet: true,
        metaBase64: true,
      }),
    ],
  },
  {
    name: 'parses ms with every flag and its data block',
    bytes: 'ms k 3 c C1 E2 F5 I k O1 q s T-1 MS N0 Px Ly\r\nabc\r\n',
    expected: [
      r({
        cmd: 'ms',
        keys: ['k'],
        bytes: 3,
        metaFlags: ['c', 'C1', 'E2', 'F5', 'I', 'k', 'O1', 's', 'T-1', 'MS', 'N0'],
        metaQuiet: true,
        value: 'abc',
      }),
    ],
  },
  {
    name: 'parses md with every flag',
    bytes: 'md a2V5 b C1 E2 I k O1 q T5 x Pp Ll\r\n',
    expected: [
      r({
        cmd: 'md',
        keys: ['a2V5'],
        metaFlags: ['b', 'C1', 'E2', 'I', 'k', 'O1', 'T5', 'x'],
        metaQuiet: true,
        metaBase64: true,
      }),
    ],
  },
  {
    name: 'parses ma with every flag',
    bytes: 'ma a2V5 C1 E2 N0 J5 D10 T1 MD O1 q t c v k Pp Ll b\r\n',
    expected: [
      r({
        cmd: 'ma',
        keys: ['a2V5'],
        metaFlags: ['C1', 'E2', 'N0', 'J5', 'D10', 'T1', 'MD', 'O1', 't', 'c', 'v', 'k', 'b'],
        metaQuiet: true,
        metaBase64: true,
      }),
    ],
  },
  { name: 'parses me', bytes: 'me k\r\n', expected: [r({ cmd: 'me', keys: ['k'] })] },
  {
    name: 'parses me with a base64 key',
    bytes: 'me a2V5 b\r\n',
    expected: [r({ cmd: 'me', keys: ['a2V5'], metaFlags: ['b'], metaBase64: true })],
  },
  {
    name: 'keeps only the letter of a flag that takes no token',
    bytes: 'mg k vxyz\r\n',
    expected: [r({ cmd: 'mg', keys: ['k'], metaFlags: ['v'] })],
  },
  {
    name: 'accepts a base64 key with padding',
    bytes: 'mg YQ== b\r\n',
    expected: [r({ cmd: 'mg', keys: ['YQ=='], metaFlags: ['b'], metaBase64: true })],
  },
  {
    name: 'rejects a base64 key whose length is not a multiple of 4',
    bytes: 'mg a2V b\r\n',
    expected: [r({ cmd: 'mg', metaFlags: ['b'], metaBase64: true, error: KEY_ENCODING })],
  },
  {
    name: 'rejects a base64 key with misplaced padding',
    bytes: 'mg a=V5 b\r\n',
    expected: [r({ cmd: 'mg', metaFlags: ['b'], metaBase64: true, error: KEY_ENCODING })],
  },
  {
    name: 'rejects a base64 key of only padding',
    bytes: 'mg ==== b\r\n',
    expected: [r({ cmd: 'mg', metaFlags: ['b'], metaBase64: true, error: KEY_ENCODING })],
  },
  {
    name: 'accepts a base64 key that decodes to 250 bytes',
    bytes: `mg ${Buffer.alloc(250, 1).toString('base64')} b\r\n`,
    expected: [r({ cmd: 'mg', keys: [Buffer.alloc(250, 1).toString('base64')], metaFlags: ['b'], metaBase64: true })],
  },
  {
    name: 'rejects a base64 key that decodes to 251 bytes with memcached words for a long key',
    bytes: `mg ${Buffer.alloc(251, 1).toString('base64')} b\r\n`,
    expected: [r({ cmd: 'mg', metaFlags: ['b'], metaBase64: true, error: BAD_FORMAT })],
  },
  {
    name: 'rejects a 251-byte meta key without b',
    bytes: `mg ${K251} v\r\n`,
    expected: [r({ cmd: 'mg', metaFlags: ['v'], error: BAD_FORMAT })],
  },
  { name: 'rejects a meta key with a tab', bytes: 'md a\tb\r\n', expected: [r({ cmd: 'md', error: BAD_FORMAT })] },
  { name: 'rejects an unknown flag', bytes: 'mg k z\r\n', expected: [r({ cmd: 'mg', error: INVALID_FLAG })] },
  {
    name: 'rejects a flag another command owns',
    bytes: 'mg k x\r\n',
    expected: [r({ cmd: 'mg', error: INVALID_FLAG })],
  },
  {
    name: 'rejects a flag token that starts with a digit',
    bytes: 'md k 1\r\nmg k 1\r\n',
    expected: [r({ cmd: 'md', error: INVALID_OR_DUPLICATE }), r({ cmd: 'mg', error: INVALID_FLAG })],
  },
  { name: 'rejects any flag but b on me', bytes: 'me k v\r\n', expected: [r({ cmd: 'me', error: INVALID_FLAG })] },
  {
    name: 'rejects a duplicate flag',
    bytes: 'mg k v v\r\n',
    expected: [r({ cmd: 'mg', metaFlags: ['v'], error: DUPLICATE })],
  },
  {
    name: 'rejects a duplicate flag with different tokens',
    bytes: 'mg k O1 O2\r\n',
    expected: [r({ cmd: 'mg', metaFlags: ['O1'], error: DUPLICATE })],
  },
  { name: 'rejects a duplicate proxy hint', bytes: 'mg k Pa Pb\r\n', expected: [r({ cmd: 'mg', error: DUPLICATE })] },
  {
    name: 'accepts an opaque of 32 bytes',
    bytes: `mg k O${'o'.repeat(32)}\r\n`,
    expected: [r({ cmd: 'mg', keys: ['k'], metaFlags: [`O${'o'.repeat(32)}`] })],
  },
  {
    name: 'rejects an opaque of 33 bytes',
    bytes: `mg k O${'o'.repeat(33)}\r\n`,
    expected: [r({ cmd: 'mg', error: OPAQUE_LONG })],
  },
  { name: 'rejects a T token with a plus sign', bytes: 'mg k T+5\r\n', expected: [r({ cmd: 'mg', error: BAD_TOKEN })] },
  {
    name: 'rejects a C token that is not digits',
    bytes: 'mg k Cx\r\n',
    expected: [r({ cmd: 'mg', error: BAD_TOKEN })],
  },
  {
    name: 'rejects a negative J token',
    bytes: 'ma k J-1\r\n',
    expected: [r({ cmd: 'ma', error: INVALID_OR_DUPLICATE })],
  },
  {
    name: 'rejects an N token past int32',
    bytes: 'mg k N2147483648\r\n',
    expected: [r({ cmd: 'mg', error: BAD_TOKEN })],
  },
  { name: 'rejects an empty T token', bytes: 'mg k T\r\n', expected: [r({ cmd: 'mg', error: BAD_TOKEN })] },
  {
    name: 'rejects an F token past 2^32-1',
    bytes: 'ms k 0 F4294967296\r\n\r\nmn\r\n',
    expected: [r({ cmd: 'ms', error: BAD_FORMAT }), r({ cmd: 'mn' })],
  },
  {
    name: 'rejects a D token past 2^64-1',
    bytes: 'ma k D18446744073709551616\r\n',
    expected: [r({ cmd: 'ma', error: INVALID_OR_DUPLICATE })],
  },
  {
    name: 'rejects an ms mode token longer than one character in memcached words',
    bytes: 'ms k 0 MSS\r\n\r\nmn\r\n',
    expected: [r({ cmd: 'ms', error: 'CLIENT_ERROR incorrect length for M token' }), r({ cmd: 'mn' })],
  },
  {
    name: 'rejects an ma mode token longer than one character',
    bytes: 'ma k MII\r\n',
    expected: [r({ cmd: 'ma', error: INVALID_OR_DUPLICATE })],
  },
  {
    name: 'rejects an empty mode token',
    bytes: 'ma k M\r\n',
    expected: [r({ cmd: 'ma', error: INVALID_OR_DUPLICATE })],
  },
  {
    name: 'answers mg and md without a key with ERROR, as memcached does',
    bytes: 'mg\r\nmd \r\n',
    expected: [r({ cmd: 'mg', error: ERROR }), r({ cmd: 'md', error: ERROR })],
  },
  {
    name: 'answers ma without a key with ERROR and me with BAD_FORMAT, as memcached does',
    bytes: 'ma\r\nme\r\n',
    expected: [r({ cmd: 'ma', error: ERROR }), r({ cmd: 'me', error: BAD_FORMAT })],
  },
  {
    name: 'ends the stream on ms without a datalen',
    bytes: 'mn\r\nms k\r\nx\r\n',
    expected: [r({ cmd: 'mn' })],
    fatal: BAD_FORMAT,
  },
  { name: 'ends the stream on ms without a key, with ERROR', bytes: 'ms\r\n', expected: [], fatal: ERROR },
  {
    name: 'ends the stream on an ms datalen that is not digits',
    bytes: 'ms k -1\r\n',
    expected: [],
    fatal: BAD_FORMAT,
  },
  {
    name: 'swallows the value of an ms with a bad flag',
    bytes: 'ms k 3 z\r\nabc\r\nmn\r\n',
    expected: [r({ cmd: 'ms', bytes: 3, error: INVALID_FLAG }), r({ cmd: 'mn' })],
  },
  {
    name: 'swallows an ms value over maxValueBytes',
    bytes: 'ms k 5 T0\r\nhello\r\nversion\r\n',
    limits: { maxValueBytes: 4 },
    expected: [r({ cmd: 'ms', keys: ['k'], bytes: 5, metaFlags: ['T0'], error: TOO_LARGE }), version],
  },
  {
    name: 'swallows the value of an ms whose key is too long',
    bytes: `ms ${K251} 9\r\nflush_all\r\nversion\r\n`,
    expected: [r({ cmd: 'ms', bytes: 9, error: BAD_FORMAT }), version],
  },
  {
    name: 'answers an ms data block not followed by \\r\\n with a bad data chunk',
    bytes: 'ms k 1\r\nxy\r\n',
    expected: [r({ cmd: 'ms', keys: ['k'], bytes: 1, error: BAD_CHUNK }), unknown],
  },
];

const lineLimit: ParserFixture[] = [
  {
    name: 'accepts a line of exactly maxLineBytes',
    bytes: 'get 123456789012\r\n',
    limits: { maxLineBytes: 16 },
    expected: [r({ cmd: 'get', keys: ['123456789012'] })],
  },
  {
    name: 'accepts a line of exactly maxLineBytes ended by a bare \\n',
    bytes: 'get 123456789012\n',
    limits: { maxLineBytes: 16 },
    expected: [r({ cmd: 'get', keys: ['123456789012'] })],
  },
  {
    name: 'ends the stream on a line one byte over maxLineBytes',
    bytes: 'mn\r\nget 1234567890123\r\nmn\r\n',
    limits: { maxLineBytes: 16 },
    expected: [r({ cmd: 'mn' })],
    fatal: TOO_LONG,
  },
  {
    name: 'ends the stream on a long line before its \\n arrives',
    bytes: 'get 12345678901234',
    limits: { maxLineBytes: 16 },
    expected: [],
    fatal: TOO_LONG,
  },
  {
    name: 'counts a \\r followed by more bytes as part of the line',
    bytes: 'get 123456789012\rx\r\n',
    limits: { maxLineBytes: 16 },
    expected: [],
    fatal: TOO_LONG,
  },
];

/** Every command once: [line, data block (without its "\r\n")]. */
const PIPELINE_PARTS: readonly (readonly [string, string?])[] = [
  ['get a'],
  ['gets a b'],
  ['gat 1 a'],
  ['gats 1 a'],
  ['set a 1 2 3', 'abc'],
  ['add a 0 0 1', 'x'],
  ['replace a 0 0 1 noreply', 'y'],
  ['append a 0 0 2', 'zz'],
  ['prepend a 0 0 0', ''],
  ['cas a 0 0 1 99', 'q'],
  ['delete a'],
  ['incr a 5'],
  ['decr a 2 noreply'],
  ['touch a 100'],
  ['flush_all 10'],
  ['stats items'],
  ['version'],
  ['verbosity 1'],
  ['mg a v'],
  ['ms a 2 T0', 'hi'],
  ['md a q'],
  ['ma a D3'],
  ['mn'],
  ['me a'],
  ['lru_crawler crawl all'],
  ['watch fetchers'],
  ['shutdown'],
  ['slabs automove 1'],
  ['lru mode flat'],
  ['cache_memlimit 64'],
  ['misbehave'],
  ['debugtime 1'],
  ['extstore compact'],
  ['bogus'],
  ['quit'],
];

/** The pipeline with `eol` after each command line; data blocks always end in "\r\n". */
function pipelineBytes(eol: string): string {
  return PIPELINE_PARTS.map(([line, data]) => (data === undefined ? line + eol : `${line}${eol}${data}\r\n`)).join('');
}

const pipeline: ParserFixture = {
  name: 'parses every command pipelined in one buffer, in order',
  bytes: pipelineBytes('\r\n'),
  expected: [
    r({ cmd: 'get', keys: ['a'] }),
    r({ cmd: 'gets', keys: ['a', 'b'] }),
    r({ cmd: 'gat', exptime: 1, keys: ['a'] }),
    r({ cmd: 'gats', exptime: 1, keys: ['a'] }),
    r({ cmd: 'set', keys: ['a'], flags: 1, exptime: 2, bytes: 3, value: 'abc' }),
    r({ cmd: 'add', keys: ['a'], bytes: 1, value: 'x' }),
    r({ cmd: 'replace', keys: ['a'], bytes: 1, noreply: true, value: 'y' }),
    r({ cmd: 'append', keys: ['a'], bytes: 2, value: 'zz' }),
    r({ cmd: 'prepend', keys: ['a'], value: '' }),
    r({ cmd: 'cas', keys: ['a'], bytes: 1, num: '99', value: 'q' }),
    r({ cmd: 'delete', keys: ['a'] }),
    r({ cmd: 'incr', keys: ['a'], num: '5' }),
    r({ cmd: 'decr', keys: ['a'], num: '2', noreply: true }),
    r({ cmd: 'touch', keys: ['a'], exptime: 100 }),
    r({ cmd: 'flush_all', delay: 10 }),
    r({ cmd: 'stats', args: 'items' }),
    version,
    r({ cmd: 'verbosity', num: '1' }),
    r({ cmd: 'mg', keys: ['a'], metaFlags: ['v'] }),
    r({ cmd: 'ms', keys: ['a'], bytes: 2, metaFlags: ['T0'], value: 'hi' }),
    r({ cmd: 'md', keys: ['a'], metaQuiet: true }),
    r({ cmd: 'ma', keys: ['a'], metaFlags: ['D3'] }),
    r({ cmd: 'mn' }),
    r({ cmd: 'me', keys: ['a'] }),
    r({ cmd: 'lru_crawler', args: 'crawl all' }),
    r({ cmd: 'watch', args: 'fetchers' }),
    r({ cmd: 'shutdown' }),
    r({ cmd: 'slabs', args: 'automove 1' }),
    r({ cmd: 'lru', args: 'mode flat' }),
    r({ cmd: 'cache_memlimit', args: '64' }),
    r({ cmd: 'misbehave' }),
    r({ cmd: 'debugtime', args: '1' }),
    r({ cmd: 'extstore', args: 'compact' }),
    unknown,
    r({ cmd: 'quit' }),
  ],
};

describe('RequestParser fixtures (whole, byte by byte, split at every index, every split up to 24 bytes)', () => {
  describe('retrieval', () => it.each(retrieval)('$name', runParserFixture));
  describe('storage', () => it.each(storage)('$name', runParserFixture));
  describe('other commands', () => it.each(others)('$name', runParserFixture));
  describe('meta', () => it.each(meta)('$name', runParserFixture));
  describe('line limit', () => it.each(lineLimit)('$name', runParserFixture));
  it(pipeline.name, () => runParserFixture(pipeline));
  it('parses the pipeline with bare \\n line ends the same way', () =>
    runParserFixture({ ...pipeline, bytes: pipelineBytes('\n') }));
});

function feedAll(
  chunks: readonly Buffer[],
  limits?: { maxLineBytes?: number; maxValueBytes?: number },
): {
  sink: RecordingSink;
  parser: RequestParser;
} {
  const sink = new RecordingSink();
  const parser = new RequestParser(sink, limits);
  for (const c of chunks) parser.feed(c);
  return { sink, parser };
}

function only(sink: RecordingSink): Request {
  expect(sink.requests).toHaveLength(1);
  const req = sink.requests[0];
  if (req === undefined) throw new Error('no request');
  return req;
}

describe('RequestParser buffers', () => {
  it('keeps a line that is whole in one chunk as a slice of that chunk', () => {
    const chunk = Buffer.alloc(16);
    chunk.write('get foo\r\n', 'latin1');
    const req = only(feedAll([chunk.subarray(0, 9)]).sink);
    expect(req.line.buffer).toBe(chunk.buffer);
    expect(req.line.toString('latin1')).toBe('get foo');
  });

  it('copies a line that spans chunks into a buffer of its own', () => {
    const a = Buffer.alloc(4);
    a.write('get ', 'latin1');
    const b = Buffer.alloc(5);
    b.write('foo\r\n', 'latin1');
    const req = only(feedAll([a, b]).sink);
    expect(req.line.buffer).not.toBe(a.buffer);
    expect(req.line.buffer).not.toBe(b.buffer);
    expect(req.line.toString('latin1')).toBe('get foo');
  });

  it('keeps a value as slices of the chunks it arrived in', () => {
    const a = Buffer.from('set k 0 0 6\r\nabc', 'latin1');
    const b = Buffer.from('def\r\n', 'latin1');
    const req = only(feedAll([a, b]).sink);
    expect(req.value).toHaveLength(2);
    expect(req.value?.[0]?.buffer).toBe(a.buffer);
    expect(req.value?.[1]?.buffer).toBe(b.buffer);
    expect(Buffer.concat(req.value ?? []).toString('latin1')).toBe('abcdef');
  });

  it('keeps no value for a storage request with an error', () => {
    const req = only(feedAll([Buffer.from('set k x 0 3\r\nabc\r\n', 'latin1')]).sink);
    expect(req.error).toBe(Replies.BAD_FORMAT);
    expect(req.value).toBeNull();
  });

  it('delivers a storage request only once the \\r\\n after its data is read', () => {
    const sink = new RecordingSink();
    const parser = new RequestParser(sink);
    parser.feed(Buffer.from('set k 0 0 3\r\nabc', 'latin1'));
    parser.feed(Buffer.from('\r', 'latin1'));
    expect(sink.requests).toHaveLength(0);
    parser.feed(Buffer.from('\n', 'latin1'));
    expect(sink.requests).toHaveLength(1);
  });

  it('gives every command a fresh Request', () => {
    const { sink } = feedAll([Buffer.from('mn\r\nmn\r\n', 'latin1')]);
    expect(sink.requests).toHaveLength(2);
    expect(sink.requests[0]).not.toBe(sink.requests[1]);
  });

  it('sets the error to the shared pre-encoded reply', () => {
    const req = only(feedAll([Buffer.from('bogus\r\n', 'latin1')]).sink);
    expect(req.error).toBe(Replies.ERROR);
    expect(req.cmd).toBe(0);
  });
});

describe('RequestParser lifecycle', () => {
  it('ignores input after a fatal error and reports it closed', () => {
    const { sink, parser } = feedAll([Buffer.from('set k 0 0 x\r\n', 'latin1')]);
    expect(parser.isClosed).toBe(true);
    expect(sink.fatal).toBe(Replies.BAD_FORMAT);
    parser.feed(Buffer.from('mn\r\n', 'latin1'));
    expect(sink.requests).toHaveLength(0);
    expect(sink.fatalCount).toBe(1);
  });

  it('drops a partial line on reset', () => {
    const { sink, parser } = feedAll([Buffer.from('get fo', 'latin1')]);
    parser.reset();
    parser.feed(Buffer.from('mn\r\n', 'latin1'));
    expect(sink.outcome().requests.map((q) => q.cmd)).toEqual(['mn']);
  });

  it('drops a partial data block on reset', () => {
    const { sink, parser } = feedAll([Buffer.from('set k 0 0 10\r\nabc', 'latin1')]);
    parser.reset();
    parser.feed(Buffer.from('mn\r\n', 'latin1'));
    expect(sink.outcome().requests.map((q) => q.cmd)).toEqual(['mn']);
  });

  it('reopens a closed parser on reset', () => {
    const { sink, parser } = feedAll([Buffer.from('ms k\r\n', 'latin1')]);
    expect(parser.isClosed).toBe(true);
    parser.reset();
    expect(parser.isClosed).toBe(false);
    parser.feed(Buffer.from('mn\r\n', 'latin1'));
    expect(sink.requests).toHaveLength(1);
  });

  it('drops the rest of the chunk when the sink resets the parser', () => {
    const seen: string[] = [];
    const parser: RequestParser = new RequestParser({
      onRequest(req) {
        seen.push(req.line.toString('latin1'));
        if (seen.length === 1) parser.reset();
      },
      onFatal() {},
    });
    parser.feed(Buffer.from('mn\r\nversion\r\n', 'latin1'));
    parser.feed(Buffer.from('quit\r\n', 'latin1'));
    expect(seen).toEqual(['mn', 'quit']);
  });
});

describe('RequestParser default limits', () => {
  it(`accepts a line of MAX_LINE_BYTES (${MAX_LINE_BYTES}) and ends the stream on one byte more`, () => {
    const keys = (n: number): string => `get ${'k'.repeat(n - 4)}`;
    const ok = Buffer.from(`${keys(MAX_LINE_BYTES)}\r\n`, 'latin1');
    expect(parseChunks([ok]).requests).toHaveLength(1);
    const tooLong = Buffer.from(`${keys(MAX_LINE_BYTES + 1)}\r\n`, 'latin1');
    expect(parseChunks([tooLong]).fatal).toBe(TOO_LONG);
    const pieces = [tooLong.subarray(0, 1000), tooLong.subarray(1000, 60000), tooLong.subarray(60000)];
    expect(parseChunks(pieces).fatal).toBe(TOO_LONG);
  });

  it('ends the stream on an endless line without a \\n once it passes MAX_LINE_BYTES', () => {
    const sink = new RecordingSink();
    const parser = new RequestParser(sink);
    const junk = Buffer.from(`get ${'a'.repeat(4092)}`, 'latin1');
    parser.feed(junk);
    const more = Buffer.alloc(4096, 0x61);
    for (let i = 0; i < 1000 && !parser.isClosed; i++) parser.feed(more);
    expect(sink.fatal).toBe(Replies.LINE_TOO_LONG);
  });

  describe("memcached's 2048-byte rule for lines other than get/gets/gat/gats", () => {
    const line = (head: string, total: number): Buffer =>
      Buffer.from(`${head}${'k'.repeat(total - head.length)}\r\nmn\r\n`, 'latin1');
    const pieces = (b: Buffer): Buffer[] => [b.subarray(0, 100), b.subarray(100, 2100), b.subarray(2100)];

    it.each(['set ', 'touch ', 'stats ', 'mg ', 'delete ', 'lru_crawler ', '  incr ', 'getx ', 'get\t'])(
      'ends the stream on a %j line of 2047 bytes, whole or in pieces, and reads one of 2046',
      (head) => {
        expect(parseChunks([line(head, 2047)]).fatal).toBe(TOO_LONG);
        expect(parseChunks(pieces(line(head, 2047))).fatal).toBe(TOO_LONG);
        // (a set without a data length still ends the stream, with its own reply)
        expect(parseChunks(pieces(line(head, 2046))).fatal).not.toBe(TOO_LONG);
      },
    );

    it.each(['get ', 'gets ', 'gat 0 ', 'gats 10 ', `${' '.repeat(100)}get `])(
      'reads a %j line of 20,000 bytes, whole or in pieces',
      (head) => {
        for (const chunks of [[line(head, 20_000)], pieces(line(head, 20_000))]) {
          const out = parseChunks(chunks);
          expect(out.fatal).toBeNull();
          expect(out.requests).toHaveLength(2);
        }
      },
    );

    it('ends the stream on a get line of 20,000 bytes after 101 spaces, as memcached does', () => {
      expect(parseChunks([line(`${' '.repeat(101)}get `, 20_000)]).fatal).toBe(TOO_LONG);
    });
  });

  it(`swallows a value of MAX_VALUE_BYTES + 1 (${MAX_VALUE_BYTES + 1}) as TOO_LARGE and accepts MAX_VALUE_BYTES`, () => {
    const big = Buffer.alloc(MAX_VALUE_BYTES + 1, 0x0a);
    const input = Buffer.concat([
      Buffer.from(`set k 0 0 ${MAX_VALUE_BYTES + 1}\r\n`, 'latin1'),
      big,
      Buffer.from(`\r\nset k 0 0 ${MAX_VALUE_BYTES}\r\n`, 'latin1'),
      big.subarray(1),
      Buffer.from('\r\nmn\r\n', 'latin1'),
    ]);
    for (const cut of [1, 17, 65536, input.length - 3]) {
      const out = parseChunks([input.subarray(0, cut), input.subarray(cut)]);
      expect(out.requests.map((q) => [q.cmd, q.error, q.value?.length ?? null])).toEqual([
        ['set', TOO_LARGE, null],
        ['set', null, MAX_VALUE_BYTES],
        ['mn', null, null],
      ]);
    }
  });
});

describe('bytes', () => {
  it('parses plain decimal digits only', () => {
    const b = (s: string): Buffer => Buffer.from(s, 'latin1');
    expect(parseUnsigned(b('0042'), 0, 4, 100)).toBe(42);
    for (const s of ['', '+5', '0x10', '1e3', ' 1', '-1', '101'])
      expect(parseUnsigned(b(s), 0, s.length, 100)).toBe(NO_NUMBER);
    expect(parseInt32(b('-0'), 0, 2)).toBe(0);
    expect(Object.is(parseInt32(b('-0'), 0, 2), -0)).toBe(false);
    expect(parseInt32(b('2147483647'), 0, 10)).toBe(2147483647);
    expect(parseInt32(b('-2147483649'), 0, 11)).toBe(NO_NUMBER);
  });

  it('checks 64-bit unsigned digits without floats', () => {
    const ok = (s: string): boolean => isUint64(Buffer.from(s, 'latin1'), 0, s.length);
    expect(ok('18446744073709551615')).toBe(true);
    expect(ok('09446744073709551615')).toBe(true);
    expect(ok('18446744073709551616')).toBe(false);
    expect(ok('18446744073709551700')).toBe(false);
    expect(ok('9999999999999999999')).toBe(true);
    expect(ok('')).toBe(false);
  });

  it('measures base64 keys and rejects non-canonical ones', () => {
    const len = (s: string): number => base64DecodedLength(Buffer.from(s, 'latin1'), 0, s.length);
    expect(len('Zm9v')).toBe(3);
    expect(len('Zm8=')).toBe(2);
    expect(len('Zg==')).toBe(1);
    for (const s of ['Zm9', 'Z===', '=m9v', 'Zm9v=', 'Zm-v', 'Zm 9']) expect(len(s)).toBe(-1);
  });
});
