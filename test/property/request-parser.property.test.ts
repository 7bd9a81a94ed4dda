import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RequestParser, type ParserLimits } from '../../src/protocol/text/request-parser.js';
import { RecordingSink, described, parseChunks, type DescribedRequest, type ParseOutcome } from '../helpers/splits.js';

/**
 * A request as the model sees it: its tokens, its data block and what the
 * parser must deliver. `rawArgs` marks stats / admin lines, whose `args` is
 * the raw range from the second token to the last, spaces included, so it is
 * filled in once the line's spacing is chosen.
 */
interface Model {
  tokens: string[];
  data: string | null;
  expected: DescribedRequest;
  rawArgs?: boolean;
}

interface Layout {
  lead: number;
  gaps: number[];
  trail: number;
  bareLf: boolean;
}

const latin1 = (codes: number[]): string => String.fromCharCode(...codes);

const keyByte = fc.oneof(fc.integer({ min: 0x21, max: 0x7e }), fc.integer({ min: 0x80, max: 0xff }));
const printableByte = fc.integer({ min: 0x21, max: 0x7e });
const keyArb = fc.oneof(
  { weight: 9, arbitrary: fc.array(keyByte, { minLength: 1, maxLength: 12 }).map(latin1) },
  { weight: 1, arbitrary: fc.array(keyByte, { minLength: 240, maxLength: 250 }).map(latin1) },
);
const printableToken = fc.array(printableByte, { minLength: 1, maxLength: 8 }).map(latin1);
const uint32 = fc.integer({ min: 0, max: 0xffff_ffff });
const int32 = fc.integer({ min: -0x8000_0000, max: 0x7fff_ffff });
const uint64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((v) => v.toString());
const valueArb = fc.oneof(
  fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b).toString('latin1')),
  fc.constantFrom('', '\r\n', 'get a\r\n', 'flush_all\r\n\r\n', '\n\n\r'),
);

const retrieve: fc.Arbitrary<Model> = fc
  .tuple(fc.constantFrom('get', 'gets'), fc.array(keyArb, { minLength: 1, maxLength: 5 }))
  .map(([cmd, keys]) => ({ tokens: [cmd, ...keys], data: null, expected: described({ cmd, keys }) }));

const gat: fc.Arbitrary<Model> = fc
  .tuple(fc.constantFrom('gat', 'gats'), int32, fc.array(keyArb, { minLength: 1, maxLength: 3 }))
  .map(([cmd, exptime, keys]) => ({
    tokens: [cmd, String(exptime), ...keys],
    data: null,
    expected: described({ cmd, exptime, keys }),
  }));

const store: fc.Arbitrary<Model> = fc
  .tuple(
    fc.constantFrom('set', 'add', 'replace', 'append', 'prepend', 'cas'),
    keyArb,
    uint32,
    int32,
    valueArb,
    uint64,
    fc.boolean(),
  )
  .map(([cmd, key, flags, exptime, value, cas, noreply]) => {
    const isCas = cmd === 'cas';
    const tokens = [cmd, key, String(flags), String(exptime), String(value.length)];
    if (isCas) tokens.push(cas);
    if (noreply) tokens.push('noreply');
    const expected = described({
      cmd,
      keys: [key],
      flags,
      exptime,
      bytes: value.length,
      num: isCas ? cas : '',
      noreply,
      value,
    });
    return { tokens, data: value, expected };
  });

const del: fc.Arbitrary<Model> = fc
  .tuple(keyArb, fc.constantFrom<string[]>([], ['0'], ['noreply'], ['0', 'noreply']))
  .map(([key, rest]) => ({
    tokens: ['delete', key, ...rest],
    data: null,
    expected: described({ cmd: 'delete', keys: [key], noreply: rest.includes('noreply') }),
  }));

const arith: fc.Arbitrary<Model> = fc
  .tuple(fc.constantFrom('incr', 'decr'), keyArb, uint64, fc.boolean())
  .map(([cmd, key, delta, noreply]) => ({
    tokens: [cmd, key, delta, ...(noreply ? ['noreply'] : [])],
    data: null,
    expected: described({ cmd, keys: [key], num: delta, noreply }),
  }));

const touch: fc.Arbitrary<Model> = fc.tuple(keyArb, int32, fc.boolean()).map(([key, exptime, noreply]) => ({
  tokens: ['touch', key, String(exptime), ...(noreply ? ['noreply'] : [])],
  data: null,
  expected: described({ cmd: 'touch', keys: [key], exptime, noreply }),
}));

const keyless: fc.Arbitrary<Model> = fc.oneof(
  fc
    .tuple(fc.option(fc.integer({ min: 0, max: 0x7fff_ffff }), { nil: undefined }), fc.boolean())
    .map(([delay, noreply]) => ({
      tokens: ['flush_all', ...(delay === undefined ? [] : [String(delay)]), ...(noreply ? ['noreply'] : [])],
      data: null,
      expected: described({ cmd: 'flush_all', delay: delay ?? -1, noreply }),
    })),
  fc.tuple(uint32, fc.boolean()).map(([level, noreply]) => ({
    tokens: ['verbosity', String(level), ...(noreply ? ['noreply'] : [])],
    data: null,
    expected: described({ cmd: 'verbosity', num: String(level), noreply }),
  })),
  fc.constantFrom('version', 'quit', 'mn').map((cmd) => ({ tokens: [cmd], data: null, expected: described({ cmd }) })),
  fc
    .tuple(
      fc.constantFrom(
        'stats',
        'lru_crawler',
        'watch',
        'shutdown',
        'slabs',
        'lru',
        'cache_memlimit',
        'misbehave',
        'debugtime',
        'extstore',
      ),
      fc.array(fc.oneof(printableToken, fc.constant('noreply')), { maxLength: 3 }),
    )
    .map(([cmd, args]) => ({
      tokens: [cmd, ...args],
      data: null,
      rawArgs: true,
      expected: described({ cmd, noreply: cmd !== 'stats' && args.length > 0 && args[args.length - 1] === 'noreply' }),
    })),
);

/** One meta flag: its token, and what the parser records for it (null: nothing). */
function metaFlag(letter: string): fc.Arbitrary<{ token: string; recorded: string | null }> {
  const bare = (recorded: string | null): fc.Arbitrary<{ token: string; recorded: string | null }> =>
    fc.oneof(fc.constant(''), printableToken).map((suffix) => ({ token: letter + suffix, recorded }));
  const withToken = (arb: fc.Arbitrary<string>): fc.Arbitrary<{ token: string; recorded: string | null }> =>
    arb.map((t) => ({ token: letter + t, recorded: letter + t }));
  switch (letter) {
    case 'q':
    case 'P':
    case 'L':
      return letter === 'q' ? bare(null) : printableToken.map((t) => ({ token: letter + t, recorded: null }));
    case 'C':
    case 'E':
    case 'D':
    case 'J':
    case 'R':
      return withToken(uint64);
    case 'F':
      return withToken(uint32.map(String));
    case 'T':
    case 'N':
      return withToken(int32.map(String));
    case 'O':
      return withToken(fc.array(keyByte, { maxLength: 32 }).map(latin1));
    case 'M':
      return withToken(keyByte.map((c) => String.fromCharCode(c)));
    default:
      return bare(letter);
  }
}

const META_LETTERS: Record<string, string> = {
  mg: 'bcfhklOqstuvCENRTPL',
  ms: 'bcCEFIkOqsTMNPL',
  md: 'bCEIkOqTxPL',
  ma: 'bCENJDTMOqtcvkPL',
  me: 'b',
};

const base64Key = fc
  .oneof(
    { weight: 9, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 40 }) },
    { weight: 1, arbitrary: fc.uint8Array({ minLength: 248, maxLength: 250 }) },
  )
  .map((b) => Buffer.from(b).toString('base64'));

const metaArb: fc.Arbitrary<Model> = fc
  .constantFrom('mg', 'ms', 'md', 'ma', 'me')
  .chain((cmd) =>
    fc.tuple(
      fc.constant(cmd),
      fc
        .shuffledSubarray([...(META_LETTERS[cmd] ?? '')])
        .chain((letters) => fc.tuple(fc.constant(letters), ...letters.map(metaFlag))),
      keyArb,
      base64Key,
      valueArb,
    ),
  )
  .map(([cmd, [letters, ...flags], plainKey, b64Key, value]) => {
    const isBase64 = letters.includes('b');
    const key = isBase64 ? b64Key : plainKey;
    const isSet = cmd === 'ms';
    const tokens = [cmd, key, ...(isSet ? [String(value.length)] : []), ...flags.map((f) => f.token)];
    const metaFlags = flags.flatMap((f) => (f.recorded === null ? [] : [f.recorded]));
    const expected = described({
      cmd,
      keys: [key],
      bytes: isSet ? value.length : 0,
      metaFlags,
      metaQuiet: letters.includes('q'),
      metaBase64: isBase64,
      value: isSet ? value : null,
    });
    return { tokens, data: isSet ? value : null, expected };
  });

const requestArb: fc.Arbitrary<Model> = fc.oneof(retrieve, gat, store, del, arith, touch, keyless, metaArb);

const layoutArb = (tokenCount: number): fc.Arbitrary<Layout> =>
  fc.record({
    lead: fc.integer({ min: 0, max: 2 }),
    gaps: fc.array(fc.integer({ min: 1, max: 3 }), { minLength: tokenCount, maxLength: tokenCount }),
    trail: fc.integer({ min: 0, max: 2 }),
    bareLf: fc.boolean(),
  });

/** The bytes of `m` laid out with `layout`, and its expected projection. */
function encode(m: Model, layout: Layout): { bytes: string; expected: DescribedRequest } {
  let line = ' '.repeat(layout.lead);
  let argsFrom = -1;
  m.tokens.forEach((t, i) => {
    if (i > 0) line += ' '.repeat(layout.gaps[i] ?? 1);
    if (i === 1) argsFrom = line.length;
    line += t;
  });
  const args = m.rawArgs === true && argsFrom >= 0 ? line.slice(argsFrom) : '';
  line += ' '.repeat(layout.trail);
  const bytes = line + (layout.bareLf ? '\n' : '\r\n') + (m.data === null ? '' : `${m.data}\r\n`);
  return { bytes, expected: { ...m.expected, args } };
}

const laidOut = requestArb.chain((m) => layoutArb(m.tokens.length).map((layout) => encode(m, layout)));

/** `input` cut at the given points (taken modulo its length, empty chunks allowed). */
function cutAt(input: Buffer, cuts: readonly number[]): Buffer[] {
  const points = cuts.map((c) => c % (input.length + 1)).sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const p of points) {
    chunks.push(input.subarray(from, p));
    from = p;
  }
  chunks.push(input.subarray(from));
  return chunks;
}

const cutsArb = fc.array(fc.nat(), { maxLength: 12 });

describe('RequestParser properties', () => {
  it('parses valid pipelined requests back to themselves, however they are chunked', () => {
    fc.assert(
      fc.property(fc.array(laidOut, { minLength: 1, maxLength: 8 }), cutsArb, (requests, cuts) => {
        const input = Buffer.from(requests.map((q) => q.bytes).join(''), 'latin1');
        const outcome = parseChunks(cutAt(input, cuts));
        expect(outcome).toEqual({ requests: requests.map((q) => q.expected), fatal: null });
      }),
      { numRuns: 400 },
    );
  });

  const limitsArb: fc.Arbitrary<Partial<ParserLimits>> = fc.record(
    { maxLineBytes: fc.integer({ min: 0, max: 64 }), maxValueBytes: fc.integer({ min: 0, max: 16 }) },
    { requiredKeys: [] },
  );

  const outcomeOf = (chunks: readonly Buffer[], limits: Partial<ParserLimits>): ParseOutcome & { threw: unknown } => {
    const sink = new RecordingSink();
    const parser = new RequestParser(sink, limits);
    let threw: unknown = null;
    try {
      for (const c of chunks) parser.feed(c);
    } catch (e) {
      threw = e;
    }
    return { ...sink.outcome(), threw };
  };

  it('never throws on random bytes and delivers the same however they are chunked', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), cutsArb, limitsArb, (bytes, cuts, limits) => {
        const input = Buffer.from(bytes);
        const whole = outcomeOf([input], limits);
        expect(whole.threw).toBeNull();
        expect(outcomeOf(cutAt(input, cuts), limits)).toEqual(whole);
      }),
      { numRuns: 1000 },
    );
  });

  /** Fragments that reach deep into the parser: names, numbers, flags, odd spacing, line ends. */
  const fragment = fc.oneof(
    fc.constantFrom('get', 'gat', 'set', 'cas', 'delete', 'incr', 'touch', 'flush_all', 'verbosity', 'stats', 'watch'),
    fc.constantFrom('mg', 'ms', 'md', 'ma', 'me', 'mn', 'version', 'quit', 'bogus'),
    fc.constantFrom('0', '1', '3', '-1', '+5', '0x10', '1e3', '2147483648', '4294967296', '18446744073709551616'),
    fc.constantFrom('noreply', 'k', 'Zm9v', 'b', 'q', 'v', 'T-1', 'O123', 'MS', 'Pp', 'F1', 'D2', 'x', 'zz'),
    fc.constantFrom(' ', '  ', '\t', '\r\n', '\n', '\r', '\x7f', '\xe9', '='),
  );

  it('never throws on protocol-like noise and delivers the same however it is chunked', () => {
    fc.assert(
      fc.property(fc.array(fragment, { maxLength: 60 }), cutsArb, limitsArb, (fragments, cuts, limits) => {
        const input = Buffer.from(fragments.join(''), 'latin1');
        const whole = outcomeOf([input], limits);
        expect(whole.threw).toBeNull();
        expect(outcomeOf(cutAt(input, cuts), limits)).toEqual(whole);
        const bytewise: Buffer[] = [];
        for (let i = 0; i < input.length; i++) bytewise.push(input.subarray(i, i + 1));
        expect(outcomeOf(bytewise, limits)).toEqual(whole);
      }),
      { numRuns: 1000 },
    );
  });
});
