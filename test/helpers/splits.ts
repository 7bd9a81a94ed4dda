/**
 * Fixture runner for incremental parsers: feeds the same bytes
 *   (a) whole, (b) byte by byte, (c) split in two at every index (empty
 *   chunks included), and (d) for inputs of EXHAUSTIVE_MAX_BYTES or less,
 *   split every possible way (all 2^(n-1) cut sets),
 * and asserts that every run delivers the same requests and the same fatal
 * reply. Runs are compared field by field on the raw `Request` (offsets,
 * line bytes, value bytes), which is cheap enough for millions of cut sets;
 * the readable projection (`describeRequest`) is only built for the
 * reference run and for a failure message.
 */
import { expect } from 'vitest';
import { COMMAND_BY_ID } from '../../src/protocol/text/commands.js';
import type { Request, RequestSink } from '../../src/protocol/text/request.js';
import { RequestParser, type ParserLimits } from '../../src/protocol/text/request-parser.js';

export const EXHAUSTIVE_MAX_BYTES = 24;

/** A request as plain data, for readable expectations. Byte ranges become latin1 strings. */
export interface DescribedRequest {
  /** command name; null for an unknown command or an empty line */
  cmd: string | null;
  keys: string[];
  flags: number;
  exptime: number;
  bytes: number;
  /** line[numStart, numEnd) */
  num: string;
  delay: number;
  /** line[argsStart, argsEnd) */
  args: string;
  noreply: boolean;
  metaFlags: string[];
  metaQuiet: boolean;
  metaBase64: boolean;
  /** the value slices joined, or null when the parser kept none */
  value: string | null;
  /** the error reply without its "\r\n" */
  error: string | null;
}

export interface ParseOutcome {
  requests: DescribedRequest[];
  /** the fatal reply without its "\r\n", or null */
  fatal: string | null;
}

export interface ParserFixture {
  /** states the behaviour: `it(name)` */
  name: string;
  bytes: string | Buffer;
  expected: DescribedRequest[];
  fatal?: string | null;
  limits?: Partial<ParserLimits>;
}

const latin1 = (b: Buffer, start: number, end: number): string => b.toString('latin1', start, end);

function replyText(reply: Buffer | null): string | null {
  if (reply === null) return null;
  const s = reply.toString('latin1');
  return s.endsWith('\r\n') ? s.slice(0, -2) : s;
}

function pairs(line: Buffer, offsets: readonly number[]): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < offsets.length; i += 2) out.push(latin1(line, offsets[i] ?? 0, offsets[i + 1] ?? 0));
  return out;
}

/** The readable projection of a request (keys, flags and value as latin1 strings). */
export function describeRequest(req: Request): DescribedRequest {
  const line = req.line;
  return {
    cmd: COMMAND_BY_ID[req.cmd]?.name ?? null,
    keys: pairs(line, req.keys),
    flags: req.flags,
    exptime: req.exptime,
    bytes: req.bytes,
    num: latin1(line, req.numStart, req.numEnd),
    delay: req.delay,
    args: latin1(line, req.argsStart, req.argsEnd),
    noreply: req.noreply,
    metaFlags: pairs(line, req.metaFlags),
    metaQuiet: req.metaQuiet,
    metaBase64: req.metaBase64,
    value: req.value === null ? null : Buffer.concat(req.value).toString('latin1'),
    error: replyText(req.error),
  };
}

/** An expected request: `cmd` plus the fields that differ from a fresh Request. */
export function described(fields: Partial<DescribedRequest> & { cmd: string | null }): DescribedRequest {
  return {
    keys: [],
    flags: 0,
    exptime: 0,
    bytes: 0,
    num: '',
    delay: -1,
    args: '',
    noreply: false,
    metaFlags: [],
    metaQuiet: false,
    metaBase64: false,
    value: null,
    error: null,
    ...fields,
  };
}

/** A sink that keeps what it is given; reusable across runs. */
export class RecordingSink implements RequestSink {
  requests: Request[] = [];
  fatal: Buffer | null = null;
  fatalCount = 0;

  onRequest(req: Request): void {
    this.requests.push(req);
  }

  onFatal(reply: Buffer): void {
    this.fatal = reply;
    this.fatalCount++;
  }

  clear(): void {
    this.requests.length = 0;
    this.fatal = null;
    this.fatalCount = 0;
  }

  outcome(): ParseOutcome {
    return { requests: this.requests.map(describeRequest), fatal: replyText(this.fatal) };
  }
}

/** Feeds `chunks` to a fresh parser and returns what it delivered. */
export function parseChunks(chunks: readonly Buffer[], limits?: Partial<ParserLimits>): ParseOutcome {
  const sink = new RecordingSink();
  const parser = new RequestParser(sink, limits);
  for (const c of chunks) parser.feed(c);
  return sink.outcome();
}

function sameNumbers(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Byte equality in JS: cheaper than Buffer#equals' native call for short lines. */
function sameBytes(a: Buffer, b: Buffer): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Same bytes in two lists of slices, however they are cut. */
function sameValue(a: readonly Buffer[] | null, b: readonly Buffer[] | null): boolean {
  if (a === null || b === null) return a === b;
  let ai = 0;
  let ao = 0;
  let bi = 0;
  let bo = 0;
  for (;;) {
    let x = a[ai];
    while (x !== undefined && ao === x.length) {
      x = a[++ai];
      ao = 0;
    }
    let y = b[bi];
    while (y !== undefined && bo === y.length) {
      y = b[++bi];
      bo = 0;
    }
    if (x === undefined || y === undefined) return x === y;
    if (x[ao++] !== y[bo++]) return false;
  }
}

function sameReply(a: Buffer | null, b: Buffer | null): boolean {
  return a === b || (a !== null && b !== null && a.equals(b));
}

/** Same request, field by field (offsets included), without building strings. */
export function isSameRequest(a: Request, b: Request): boolean {
  return (
    a.cmd === b.cmd &&
    a.flags === b.flags &&
    a.exptime === b.exptime &&
    a.bytes === b.bytes &&
    a.numStart === b.numStart &&
    a.numEnd === b.numEnd &&
    a.delay === b.delay &&
    a.argsStart === b.argsStart &&
    a.argsEnd === b.argsEnd &&
    a.noreply === b.noreply &&
    a.metaQuiet === b.metaQuiet &&
    a.metaBase64 === b.metaBase64 &&
    sameBytes(a.line, b.line) &&
    sameNumbers(a.keys, b.keys) &&
    sameNumbers(a.metaFlags, b.metaFlags) &&
    sameValue(a.value, b.value) &&
    sameReply(a.error, b.error)
  );
}

function isSameOutcome(a: RecordingSink, b: RecordingSink): boolean {
  if (a.requests.length !== b.requests.length || a.fatalCount !== b.fatalCount) return false;
  if (!sameReply(a.fatal, b.fatal)) return false;
  for (let i = 0; i < a.requests.length; i++) {
    const x = a.requests[i];
    const y = b.requests[i];
    if (x === undefined || y === undefined || !isSameRequest(x, y)) return false;
  }
  return true;
}

/**
 * Runs every splitting of `input` through one parser (reset between runs)
 * and throws, with both outcomes described, on the first run that differs
 * from feeding `input` whole. Returns the whole-input outcome.
 */
export function parseEverySplit(input: Buffer, limits?: Partial<ParserLimits>): ParseOutcome {
  const runner = new SplitRunner(input, limits);
  const n = input.length;
  const bytewise: Buffer[] = [];
  for (let i = 0; i < n; i++) bytewise.push(input.subarray(i, i + 1));
  runner.verifyChunks(bytewise, () => 'byte by byte');
  for (let i = 0; i <= n; i++) runner.verifyChunks([input.subarray(0, i), input.subarray(i)], () => `split at ${i}`);
  if (n <= EXHAUSTIVE_MAX_BYTES) runner.verifyEveryCutSet();
  return runner.ref.outcome();
}

/** One reference outcome, and a parser + sink reused for every other run. */
class SplitRunner {
  readonly ref = new RecordingSink();
  private readonly sink = new RecordingSink();
  private readonly parser: RequestParser;
  private readonly input: Buffer;

  constructor(input: Buffer, limits?: Partial<ParserLimits>) {
    this.input = input;
    new RequestParser(this.ref, limits).feed(input);
    this.parser = new RequestParser(this.sink, limits);
  }

  verifyChunks(chunks: readonly Buffer[], how: () => string): void {
    this.start();
    for (const c of chunks) this.parser.feed(c);
    this.verify(how);
  }

  /**
   * Every way of cutting the input into non-empty chunks: bit b of `mask`
   * cuts after b + 1 bytes. NOTE: 2^(n-1) runs, about 8 million at 24 bytes
   * (several seconds), so fixtures of 21..24 bytes are costly.
   */
  verifyEveryCutSet(): void {
    const input = this.input;
    const n = input.length;
    if (n < 2) return;
    // slices[i * (n + 1) + j] = input[i, j), made once so runs only feed.
    const slices: Buffer[] = [];
    for (let i = 0; i < n; i++) for (let j = 0; j <= n; j++) slices.push(input.subarray(i, Math.max(i, j)));
    const empty = Buffer.alloc(0);
    const sets = 2 ** (n - 1);
    let mask = 0;
    const how = (): string => {
      const cuts: number[] = [];
      for (let cut = 1; cut < n; cut++) if ((mask & (1 << (cut - 1))) !== 0) cuts.push(cut);
      return `cut at ${cuts.join(',')}`;
    };
    for (mask = 0; mask < sets; mask++) {
      this.start();
      let from = 0;
      for (let rest = mask; rest !== 0; rest &= rest - 1) {
        const cut = 32 - Math.clz32(rest & -rest);
        this.parser.feed(slices[from * (n + 1) + cut] ?? empty);
        from = cut;
      }
      this.parser.feed(slices[from * (n + 1) + n] ?? empty);
      this.verify(how);
    }
  }

  private start(): void {
    this.parser.reset();
    this.sink.clear();
  }

  // `how` is built only on failure: this runs millions of times per fixture.
  private verify(how: () => string): void {
    if (isSameOutcome(this.sink, this.ref)) return;
    // Fails with a readable diff of the two projections.
    expect({ how: how(), ...this.sink.outcome() }).toEqual({ how: how(), ...this.ref.outcome() });
    throw new Error(`${how()}: same projection but different offsets or fatal count`);
  }
}

/** Runs a fixture through every splitting and asserts its expected outcome. */
export function runParserFixture(fixture: ParserFixture): void {
  const input = typeof fixture.bytes === 'string' ? Buffer.from(fixture.bytes, 'latin1') : fixture.bytes;
  const outcome = parseEverySplit(input, fixture.limits);
  expect(outcome).toEqual({ requests: fixture.expected, fatal: fixture.fatal ?? null });
}
