/**
 * Incremental decoder for memcached's text protocol, client → proxy.
 *
 * Bytes arrive in chunks of any size. Every complete command in a chunk is
 * parsed in one loop and handed to the sink in order, as one `Request` each.
 *
 *   chunk:  s e t ␠ k ␠ 0 ␠ 0 ␠ 3 \r \n a b c \r \n g e t ␠ k \r \n g e
 *           └──────── line ─────────┘      └value┘      └─ line ──┘      └ partial (copied)
 *
 * - A line whole in one chunk is a `subarray` of it; only a line that spans
 *   chunks is copied, into a buffer that becomes that request's `line`.
 * - A data block is counted down across chunks as `subarray` slices; the
 *   request is delivered once its data and the "\r\n" after it are read.
 * - A storage command with an error still has its data block read by count
 *   and dropped, so the value is never run as commands. Only a data length
 *   that cannot be read, or a line past `maxLineBytes`, ends the stream
 *   (`sink.onFatal`).
 *
 * protocol.txt is the authority on syntax. Where memgate differs from
 * memcached on purpose:
 * - numbers are plain digits (memcached's strtol also takes '+', '0x'…);
 *   a text exptime or flags past 32 bits wraps as memcached's does
 *   (bytes.ts parseExptime, parseFlags), but meta tokens, forwarded as they
 *   are, must fit their type (memcached wraps those too);
 * - a storage command with a bad key, flags or exptime has its value
 *   swallowed (memcached reads that value as commands);
 * - set/cas without a <bytes> token and ms without a <datalen> end the
 *   stream (memcached answers and reads on, out of step with the client);
 * - meta O and M tokens may not hold control bytes, and each meta command
 *   takes only the flags it uses (memcached ignores any flag it knows);
 * - `noreply` hides success replies only (memcached hides its errors too).
 * An HTTP request line ends the stream without a reply, as in memcached.
 *
 * NOTE: nearly 800 lines: the meta flag tables sit next to the code that
 * reads them.
 */
import { Syntax, lookupCommand } from './commands.js';
import { base64DecodedLength } from './base64.js';
import {
  CR,
  LF,
  LOWER_A,
  LOWER_Z,
  MAX_DATA_LENGTH,
  NO_NUMBER,
  SP,
  UINT32_MAX,
  UPPER_A,
  UPPER_Z,
  hasNoControlBytes,
  isKey,
  isPrintable,
  isToken,
  isUint64,
  parseExptime,
  parseFlags,
  parseInt32,
  parseUnsigned,
} from './bytes.js';
import { Replies } from './replies.js';
import { EMPTY, Request, type RequestSink } from './request.js';
import {
  MAX_BASE64_KEY_BYTES,
  MAX_KEY_BYTES,
  MAX_LINE_BYTES,
  MAX_OPAQUE_BYTES,
  MAX_UPSTREAM_LINE_BYTES,
  MAX_VALUE_BYTES,
} from '../limits.js';

export interface ParserLimits {
  /** longest command line, without its line end */
  maxLineBytes: number;
  /** largest data block accepted; larger ones are swallowed and answered TOO_LARGE */
  maxValueBytes: number;
}

export const DEFAULT_PARSER_LIMITS: Readonly<ParserLimits> = Object.freeze({
  maxLineBytes: MAX_LINE_BYTES,
  maxValueBytes: MAX_VALUE_BYTES,
});

/** What the parser is reading next. */
const State = {
  /** a command line (possibly continuing a partial one) */
  LINE: 0,
  /** the data block of `pending` */
  VALUE: 1,
  /** the "\r\n" after the data block of `pending` */
  VALUE_END: 2,
  /** after onFatal: input is ignored */
  CLOSED: 3,
} as const;
type State = (typeof State)[keyof typeof State];

/** How a meta flag's token (the bytes after its letter) is read. */
const FlagKind = {
  /** letter only; trailing bytes are dropped */
  BARE: 0,
  /** q: sets metaQuiet, not recorded */
  QUIET: 1,
  /** b: sets metaBase64, recorded as a bare letter */
  BASE64: 2,
  /** P, L: proxy hints, accepted and dropped */
  HINT: 3,
  /** C E D J R: unsigned 64-bit digits */
  UINT64: 4,
  /** F: unsigned 32-bit digits */
  UINT32: 5,
  /** T N: optional '-', digits, int32 */
  INT32: 6,
  /** O: up to MAX_OPAQUE_BYTES */
  OPAQUE: 7,
  /** M: exactly one mode character */
  MODE: 8,
} as const;

const FLAG_KIND: Uint8Array = (() => {
  const kinds = new Uint8Array(128);
  const set = (letters: string, kind: number): void => {
    for (let i = 0; i < letters.length; i++) kinds[letters.charCodeAt(i)] = kind;
  };
  set('q', FlagKind.QUIET);
  set('b', FlagKind.BASE64);
  set('PL', FlagKind.HINT);
  set('CEDJR', FlagKind.UINT64);
  set('F', FlagKind.UINT32);
  set('TN', FlagKind.INT32);
  set('O', FlagKind.OPAQUE);
  set('M', FlagKind.MODE);
  return kinds;
})();

/**
 * A set of meta flag letters as two 32-bit masks: A..Z are bits 0..25 of
 * the first, a..z bits 0..25 of the second (no BigInt needed).
 */
function letterMasks(letters: string): readonly [number, number] {
  let upper = 0;
  let lower = 0;
  for (let i = 0; i < letters.length; i++) {
    const c = letters.charCodeAt(i);
    if (c >= UPPER_A && c <= UPPER_Z) upper |= 1 << (c - UPPER_A);
    else lower |= 1 << (c - LOWER_A);
  }
  return [upper, lower];
}

/**
 * Flags each meta command accepts (protocol.txt, Meta Get / Set / Delete /
 * Arithmetic / Debug). NOTE: protocol.txt lists C(token) for mg too.
 */
const META_GET_FLAGS = letterMasks('bcfhklOqstuvCENRTPL');
const META_SET_FLAGS = letterMasks('bcCEFIkOqsTMNPL');
const META_DELETE_FLAGS = letterMasks('bCEIkOqTxPL');
const META_ARITH_FLAGS = letterMasks('bCENJDTMOqtcvkPL');
const META_DEBUG_FLAGS = letterMasks('b');

function metaFlagsFor(syntax: Syntax): readonly [number, number] {
  switch (syntax) {
    case Syntax.META_GET:
      return META_GET_FLAGS;
    case Syntax.META_SET:
      return META_SET_FLAGS;
    case Syntax.META_DELETE:
      return META_DELETE_FLAGS;
    case Syntax.META_ARITH:
      return META_ARITH_FLAGS;
    default:
      return META_DEBUG_FLAGS;
  }
}

/**
 * Longest line, without its line end, of anything but get/gets/gat/gats:
 * memcached closes a connection holding more than 2048 bytes of a line that
 * does not start with "get " or "gets " (after at most 100 spaces; proto_text.c
 * try_read_command_ascii). memgate closes on such a line whole or in pieces
 * alike; a long gat/gats is accepted and sent upstream a key at a time.
 */
export const MAX_OTHER_LINE_BYTES = MAX_UPSTREAM_LINE_BYTES - 2;
/** memcached gives up on a line whose command starts after more spaces than this */
const MAX_LEADING_SPACES = 100;
const GET_ = Buffer.from('get ', 'latin1');
const GETS_ = Buffer.from('gets ', 'latin1');
const GAT_ = Buffer.from('gat ', 'latin1');
const GATS_ = Buffer.from('gats ', 'latin1');

const NOREPLY = Buffer.from('noreply', 'latin1');
const ZERO = Buffer.from('0', 'latin1');
const HTTP_SLASH = Buffer.from('HTTP/', 'latin1');
const INITIAL_TOKENS = 32;
const MIN_PARTIAL_BYTES = 256;
const SMALL_COPY_BYTES = 32;

export class RequestParser {
  private readonly sink: RequestSink;
  private maxLineBytes: number;
  private maxValueBytes: number;
  /** with a value over maxValueBytes: null swallows it (TOO_LARGE), a reply ends the stream with it */
  private oversizeFatal: Buffer | null;
  private state: State;
  /** bumped by reset(), so a reset from inside the sink stops the current feed() */
  private generation: number;
  /** bytes of a line that spans chunks; handed to the request when complete */
  private partial: Buffer;
  private partialLen: number;
  /** (start, end) of each token of the current line */
  private tokens: Int32Array;
  private tokenCount: number;
  /** the storage request whose data block is being read */
  private pending: Request | null;
  private valueLeft: number;
  private keepValue: boolean;
  /** bytes of the trailing "\r\n" read so far, and whether they were right */
  private endSeen: number;
  private endOk: boolean;

  constructor(sink: RequestSink, limits?: Partial<ParserLimits>) {
    this.sink = sink;
    this.maxLineBytes = limits?.maxLineBytes ?? DEFAULT_PARSER_LIMITS.maxLineBytes;
    this.maxValueBytes = limits?.maxValueBytes ?? DEFAULT_PARSER_LIMITS.maxValueBytes;
    this.oversizeFatal = null;
    this.state = State.LINE;
    this.generation = 0;
    this.partial = EMPTY;
    this.partialLen = 0;
    this.tokens = new Int32Array(INITIAL_TOKENS * 2);
    this.tokenCount = 0;
    this.pending = null;
    this.valueLeft = 0;
    this.keepValue = false;
    this.endSeen = 0;
    this.endOk = true;
  }

  /**
   * True while a request has started but is not complete (a partial line, or
   * a data block still arriving): the session's request deadline applies.
   */
  get isMidRequest(): boolean {
    return this.state === State.VALUE || this.state === State.VALUE_END || this.partialLen > 0;
  }

  /**
   * The request in progress missed its deadline: the stream cannot be
   * resynchronised (the rest of it may still come), so it ends with
   * `CLIENT_ERROR request timed out`.
   */
  expire(): void {
    if (this.isMidRequest) this.fatal(Replies.REQUEST_TIMEOUT);
  }

  /**
   * Lowers (or restores) the largest value accepted, for a tenant with a
   * smaller item limit: a larger value is swallowed without being buffered.
   */
  setMaxValueBytes(n: number): void {
    this.maxValueBytes = n;
    this.oversizeFatal = null;
  }

  /**
   * A tight bound on input, or (null) back to `maxLineBytes` / `maxValueBytes`:
   * lines over `lineBytes` end the stream (line too long), and so does a value
   * over `valueBytes`, with `reply`, as soon as its header is read. Used before
   * authentication, when nothing longer than an auth request is expected.
   */
  setInputBound(bound: { lineBytes: number; valueBytes: number; reply: Buffer } | null, limits: ParserLimits): void {
    this.maxLineBytes = bound === null ? limits.maxLineBytes : Math.min(bound.lineBytes, limits.maxLineBytes);
    this.maxValueBytes = bound === null ? limits.maxValueBytes : Math.min(bound.valueBytes, limits.maxValueBytes);
    this.oversizeFatal = bound === null ? null : bound.reply;
  }

  /** True after onFatal: further feed() calls are ignored (until reset()). */
  get isClosed(): boolean {
    return this.state === State.CLOSED;
  }

  /**
   * Drops any partial line or data block and reopens a closed parser.
   * Called from inside the sink, it also drops the rest of the chunk being fed.
   */
  reset(): void {
    this.state = State.LINE;
    this.generation++;
    this.partial = EMPTY;
    this.partialLen = 0;
    this.tokenCount = 0;
    this.pending = null;
    this.valueLeft = 0;
    this.keepValue = false;
    this.endSeen = 0;
    this.endOk = true;
  }

  /** Parses every complete command in `chunk`, delivering each in order. */
  feed(chunk: Buffer): void {
    const generation = this.generation;
    const n = chunk.length;
    let pos = 0;
    while (pos < n && this.generation === generation) {
      const state = this.state;
      if (state === State.LINE) pos = this.readLine(chunk, pos);
      else if (state === State.VALUE) pos = this.readValue(chunk, pos);
      else if (state === State.VALUE_END) pos = this.readValueEnd(chunk, pos);
      else return;
    }
  }

  // ---- framing ---------------------------------------------------------

  private readLine(chunk: Buffer, pos: number): number {
    const n = chunk.length;
    const nl = chunk.indexOf(LF, pos);
    if (nl === -1) {
      const have = this.partialLen + (n - pos);
      if (this.isTooLong(have, chunk[n - 1] ?? 0, chunk, pos)) {
        this.fatal(Replies.LINE_TOO_LONG);
        return n;
      }
      this.appendPartial(chunk, pos, n);
      return n;
    }
    // Check the length before copying anything, so memory stays bounded.
    const raw = this.partialLen + (nl - pos);
    const last = nl > pos ? chunk[nl - 1] : this.partial[this.partialLen - 1];
    const len = last === CR ? raw - 1 : raw;
    if (len > this.maxLineBytes || (len > MAX_OTHER_LINE_BYTES && !this.isMultiKeyLine(chunk, pos))) {
      this.fatal(Replies.LINE_TOO_LONG);
      return n;
    }
    let line: Buffer;
    if (this.partialLen === 0) {
      line = chunk.subarray(pos, nl);
    } else {
      // NOTE: the copy grows geometrically; the request keeps this buffer,
      // so the next partial line starts a fresh one.
      this.appendPartial(chunk, pos, nl);
      line = this.partial.subarray(0, this.partialLen);
      this.partial = EMPTY;
      this.partialLen = 0;
    }
    if (len < raw) line = line.subarray(0, len);
    this.parseLine(line);
    return nl + 1;
  }

  /**
   * A line of `have` bytes so far (last byte `last`) and no "\n" yet is sure
   * to end over the limit: one byte over is still fine if it is the "\r"
   * that the "\n" will strip. Deciding early keeps memory bounded; deciding
   * exactly keeps the outcome the same however the input is split.
   */
  private isTooLong(have: number, last: number, chunk: Buffer, pos: number): boolean {
    let max = this.maxLineBytes;
    if (have > MAX_OTHER_LINE_BYTES && max > MAX_OTHER_LINE_BYTES && !this.isMultiKeyLine(chunk, pos)) {
      max = MAX_OTHER_LINE_BYTES;
    }
    return have > max + 1 || (have === max + 1 && last !== CR);
  }

  /**
   * The line kept so far (`partial`, then `chunk` from `pos`) is a get, gets,
   * gat or gats after at most MAX_LEADING_SPACES spaces. Only asked of lines
   * past MAX_OTHER_LINE_BYTES, so its first bytes are there.
   */
  private isMultiKeyLine(chunk: Buffer, pos: number): boolean {
    let i = 0;
    while (i <= MAX_LEADING_SPACES && this.lineByte(chunk, pos, i) === SP) i++;
    if (i > MAX_LEADING_SPACES) return false;
    return (
      this.lineStartsWith(chunk, pos, i, GET_) ||
      this.lineStartsWith(chunk, pos, i, GETS_) ||
      this.lineStartsWith(chunk, pos, i, GAT_) ||
      this.lineStartsWith(chunk, pos, i, GATS_)
    );
  }

  private lineByte(chunk: Buffer, pos: number, i: number): number {
    return i < this.partialLen ? (this.partial[i] ?? 0) : (chunk[pos + i - this.partialLen] ?? 0);
  }

  private lineStartsWith(chunk: Buffer, pos: number, at: number, word: Buffer): boolean {
    for (let j = 0; j < word.length; j++) if (this.lineByte(chunk, pos, at + j) !== word[j]) return false;
    return true;
  }

  private appendPartial(chunk: Buffer, from: number, to: number): void {
    const need = this.partialLen + (to - from);
    if (need > this.partial.length) {
      const grown = Math.min(Math.max(MIN_PARTIAL_BYTES, this.partial.length * 2), this.maxLineBytes + 2);
      const next = Buffer.allocUnsafe(Math.max(need, grown));
      this.partial.copy(next, 0, 0, this.partialLen);
      this.partial = next;
    }
    const dst = this.partial;
    if (to - from > SMALL_COPY_BYTES) {
      chunk.copy(dst, this.partialLen, from, to);
    } else {
      // NOTE: a byte loop beats Buffer#copy's native call for a few bytes
      // (lines that trickle in).
      for (let i = from, j = this.partialLen; i < to; i++, j++) dst[j] = chunk[i] ?? 0;
    }
    this.partialLen = need;
  }

  private readValue(chunk: Buffer, pos: number): number {
    const take = Math.min(this.valueLeft, chunk.length - pos);
    const req = this.pending;
    if (this.keepValue && req !== null && req.value !== null) req.value.push(chunk.subarray(pos, pos + take));
    this.valueLeft -= take;
    if (this.valueLeft === 0) this.state = State.VALUE_END;
    return pos + take;
  }

  private readValueEnd(chunk: Buffer, pos: number): number {
    const b = chunk[pos];
    if (this.endSeen === 0) {
      this.endOk = b === CR;
      this.endSeen = 1;
      return pos + 1;
    }
    if (b !== LF) this.endOk = false;
    const req = this.pending;
    this.pending = null;
    this.state = State.LINE;
    if (req === null) return pos + 1;
    if (!this.endOk && req.error === null) {
      req.error = Replies.BAD_DATA_CHUNK;
      req.value = null;
    }
    this.sink.onRequest(req);
    return pos + 1;
  }

  /** Reads `req`'s data block next: kept as slices unless `req` already has an error. */
  private expectValue(req: Request): void {
    if (this.oversizeFatal !== null && req.bytes > this.maxValueBytes) {
      this.fatal(this.oversizeFatal);
      return;
    }
    this.pending = req;
    this.keepValue = req.error === null;
    if (this.keepValue) req.value = [];
    this.valueLeft = req.bytes;
    this.endSeen = 0;
    this.endOk = true;
    this.state = req.bytes > 0 ? State.VALUE : State.VALUE_END;
  }

  /** The stream cannot be resynchronised: stop reading and let the session answer and close. */
  private fatal(reply: Buffer): void {
    this.state = State.CLOSED;
    this.pending = null;
    this.partial = EMPTY;
    this.partialLen = 0;
    this.sink.onFatal(reply);
  }

  // ---- tokens ----------------------------------------------------------

  /** Splits `line` on runs of spaces (memcached's tokenizer: spaces only). */
  private tokenize(line: Buffer): void {
    const n = line.length;
    let count = 0;
    let i = 0;
    while (i < n) {
      while (i < n && line[i] === SP) i++;
      if (i === n) break;
      const start = i;
      while (i < n && line[i] !== SP) i++;
      if (count * 2 === this.tokens.length) this.growTokens();
      this.tokens[count * 2] = start;
      this.tokens[count * 2 + 1] = i;
      count++;
    }
    this.tokenCount = count;
  }

  private growTokens(): void {
    const next = new Int32Array(this.tokens.length * 2);
    next.set(this.tokens);
    this.tokens = next;
  }

  private ts(i: number): number {
    return this.tokens[i * 2] ?? 0;
  }

  private te(i: number): number {
    return this.tokens[i * 2 + 1] ?? 0;
  }

  private isNoreply(line: Buffer, i: number): boolean {
    return isToken(line, this.ts(i), this.te(i), NOREPLY);
  }

  /** Token `i` starts with "HTTP/" (an HTTP request line's version). */
  private isHttpVersion(line: Buffer, i: number): boolean {
    const start = this.ts(i);
    return (
      this.te(i) - start >= HTTP_SLASH.length &&
      line.compare(HTTP_SLASH, 0, HTTP_SLASH.length, start, start + HTTP_SLASH.length) === 0
    );
  }

  private isKeyToken(line: Buffer, i: number): boolean {
    return isKey(line, this.ts(i), this.te(i), MAX_KEY_BYTES);
  }

  // ---- lines -----------------------------------------------------------

  private parseLine(line: Buffer): void {
    this.tokenize(line);
    const req = new Request();
    req.line = line;
    const spec = this.tokenCount === 0 ? undefined : lookupCommand(line, this.ts(0), this.te(0));
    if (spec === undefined) {
      // An HTTP request line (`POST / HTTP/1.1`): a browser or an SSRF-able web
      // app, whose headers and body must never run as commands. memcached
      // closes without a word (proto_text.c: an unknown command whose last
      // token starts with "HTTP/").
      if (this.tokenCount > 0 && this.isHttpVersion(line, this.tokenCount - 1)) {
        this.fatal(EMPTY);
        return;
      }
      req.error = Replies.ERROR;
      this.sink.onRequest(req);
      return;
    }
    req.cmd = spec.id;
    switch (spec.syntax) {
      case Syntax.STORE:
        this.parseStorage(req, false);
        return;
      case Syntax.CAS:
        this.parseStorage(req, true);
        return;
      case Syntax.META_SET:
        this.parseMetaSet(req);
        return;
      case Syntax.RETRIEVE:
        req.error = this.parseKeys(req, 1);
        break;
      case Syntax.GAT:
        req.error = this.parseGat(req);
        break;
      case Syntax.DELETE:
        req.error = this.parseDelete(req);
        break;
      case Syntax.ARITH:
        req.error = this.parseArith(req);
        break;
      case Syntax.TOUCH:
        req.error = this.parseTouch(req);
        break;
      case Syntax.FLUSH:
        req.error = this.parseFlush(req);
        break;
      case Syntax.VERBOSITY:
        req.error = this.parseVerbosity(req);
        break;
      case Syntax.STATS:
        req.error = this.parseArgs(req, false);
        break;
      case Syntax.ADMIN_LINE:
        req.error = this.parseArgs(req, true);
        break;
      case Syntax.META_GET:
      case Syntax.META_DELETE:
      case Syntax.META_ARITH:
      case Syntax.META_DEBUG:
        // without a key: ERROR, as memcached (me: its bad command line format)
        if (this.tokenCount >= 2) req.error = this.parseMeta(req, spec.syntax, 2);
        else req.error = spec.syntax === Syntax.META_DEBUG ? Replies.BAD_FORMAT : Replies.ERROR;
        break;
      default:
        // NO_ARGS (version, quit, mn): memcached ignores extra tokens.
        break;
    }
    this.sink.onRequest(req);
  }

  /** Keys from token `first` to the end of the line; at least one. */
  private parseKeys(req: Request, first: number): Buffer | null {
    const line = req.line;
    if (this.tokenCount <= first) return Replies.ERROR;
    for (let i = first; i < this.tokenCount; i++) {
      if (!this.isKeyToken(line, i)) return Replies.BAD_FORMAT;
      req.keys.push(this.ts(i), this.te(i));
    }
    return null;
  }

  /** gat|gats <exptime> <key>*: without keys, memcached answers a bare END. */
  private parseGat(req: Request): Buffer | null {
    if (this.tokenCount < 2) return Replies.ERROR;
    const exptime = parseExptime(req.line, this.ts(1), this.te(1));
    if (exptime === NO_NUMBER) return Replies.INVALID_EXPTIME;
    req.exptime = exptime;
    return this.tokenCount === 2 ? Replies.END : this.parseKeys(req, 2);
  }

  /**
   * set|add|replace|append|prepend <key> <flags> <exptime> <bytes> [noreply]
   * cas <key> <flags> <exptime> <bytes> <cas unique> [noreply]
   */
  private parseStorage(req: Request, isCas: boolean): void {
    const line = req.line;
    const count = this.tokenCount;
    // Without a readable <bytes> the data block cannot be skipped.
    if (count < 5) {
      this.fatal(Replies.ERROR);
      return;
    }
    const bytes = parseUnsigned(line, this.ts(4), this.te(4), MAX_DATA_LENGTH);
    if (bytes === NO_NUMBER) {
      this.fatal(Replies.BAD_FORMAT);
      return;
    }
    req.bytes = bytes;
    const noreplyAt = isCas ? 6 : 5;
    if (count < noreplyAt || count > noreplyAt + 1) req.error = Replies.ERROR;
    else req.error = this.checkStorage(req, isCas);
    if (count === noreplyAt + 1) req.noreply = this.isNoreply(line, noreplyAt);
    this.expectValue(req);
  }

  private checkStorage(req: Request, isCas: boolean): Buffer | null {
    const line = req.line;
    if (!this.isKeyToken(line, 1)) return Replies.BAD_FORMAT;
    req.keys.push(this.ts(1), this.te(1));
    const flags = parseFlags(line, this.ts(2), this.te(2));
    if (flags === NO_NUMBER) return Replies.BAD_FORMAT;
    req.flags = flags;
    const exptime = parseExptime(line, this.ts(3), this.te(3));
    if (exptime === NO_NUMBER) return Replies.BAD_FORMAT;
    req.exptime = exptime;
    if (isCas) {
      if (!isUint64(line, this.ts(5), this.te(5))) return Replies.BAD_FORMAT;
      req.numStart = this.ts(5);
      req.numEnd = this.te(5);
    }
    return req.bytes > this.maxValueBytes ? Replies.TOO_LARGE : null;
  }

  /** delete <key> [0] [noreply] */
  private parseDelete(req: Request): Buffer | null {
    const line = req.line;
    const count = this.tokenCount;
    if (count < 2 || count > 4) return Replies.ERROR;
    if (count >= 3) {
      const isZero = isToken(line, this.ts(2), this.te(2), ZERO);
      req.noreply = this.isNoreply(line, count - 1);
      const valid = count === 3 ? isZero || req.noreply : isZero && req.noreply;
      if (!valid) return Replies.BAD_DELETE_FORMAT;
    }
    if (!this.isKeyToken(line, 1)) return Replies.BAD_FORMAT;
    req.keys.push(this.ts(1), this.te(1));
    return null;
  }

  /** incr|decr <key> <delta> [noreply] */
  private parseArith(req: Request): Buffer | null {
    const line = req.line;
    const count = this.tokenCount;
    if (count < 3 || count > 4) return Replies.ERROR;
    if (count === 4) req.noreply = this.isNoreply(line, 3);
    if (!this.isKeyToken(line, 1)) return Replies.BAD_FORMAT;
    req.keys.push(this.ts(1), this.te(1));
    if (!isUint64(line, this.ts(2), this.te(2))) return Replies.INVALID_DELTA;
    req.numStart = this.ts(2);
    req.numEnd = this.te(2);
    return null;
  }

  /** touch <key> <exptime> [noreply] */
  private parseTouch(req: Request): Buffer | null {
    const line = req.line;
    const count = this.tokenCount;
    if (count < 3 || count > 4) return Replies.ERROR;
    if (count === 4) req.noreply = this.isNoreply(line, 3);
    if (!this.isKeyToken(line, 1)) return Replies.BAD_FORMAT;
    req.keys.push(this.ts(1), this.te(1));
    const exptime = parseExptime(line, this.ts(2), this.te(2));
    if (exptime === NO_NUMBER) return Replies.INVALID_EXPTIME;
    req.exptime = exptime;
    return null;
  }

  /**
   * flush_all [delay] [noreply], read as memcached 1.6 reads it: one to three
   * tokens (else ERROR); unless the line is `flush_all` or `flush_all
   * noreply`, token 1 is the delay (so `flush_all 5 junk` is a delay of 5 and
   * `flush_all noreply 5` an invalid one). A delay of 0 or less means now.
   */
  private parseFlush(req: Request): Buffer | null {
    const line = req.line;
    const count = this.tokenCount;
    if (count > 3) return Replies.ERROR;
    req.noreply = count > 1 && this.isNoreply(line, count - 1);
    if (count === (req.noreply ? 2 : 1)) return null;
    const delay = parseExptime(line, this.ts(1), this.te(1));
    if (delay === NO_NUMBER) return Replies.INVALID_EXPTIME;
    req.delay = delay > 0 ? delay : 0;
    return null;
  }

  /**
   * verbosity <level> [noreply]. As in memcached, the last token may be
   * `noreply`, and a level that is not a number is `CLIENT_ERROR bad command
   * line format`. `verbosity noreply` is silent (memcached's error for it is
   * hidden by its noreply): it is read as level 0, the num range left empty
   * and the encoder sends level 0.
   */
  private parseVerbosity(req: Request): Buffer | null {
    const line = req.line;
    const count = this.tokenCount;
    if (count < 2 || count > 3) return Replies.ERROR;
    req.noreply = this.isNoreply(line, count - 1);
    if (count === 2 && req.noreply) return null;
    if (parseFlags(line, this.ts(1), this.te(1)) === NO_NUMBER) return Replies.BAD_FORMAT;
    req.numStart = this.ts(1);
    req.numEnd = this.te(1);
    return null;
  }

  /** stats [args] and the admin families: one raw range of printable tokens. */
  private parseArgs(req: Request, isAdmin: boolean): Buffer | null {
    const line = req.line;
    const count = this.tokenCount;
    if (count === 1) {
      req.argsStart = this.te(0);
      req.argsEnd = this.te(0);
      return null;
    }
    req.argsStart = this.ts(1);
    req.argsEnd = this.te(count - 1);
    if (isAdmin) req.noreply = this.isNoreply(line, count - 1);
    for (let i = 1; i < count; i++) {
      if (!isPrintable(line, this.ts(i), this.te(i))) return Replies.BAD_FORMAT;
    }
    return null;
  }

  // ---- meta ------------------------------------------------------------

  /**
   * ms <key> <datalen> <flag>* + data block. Without a readable datalen the
   * stream ends, with memcached's words (`ms`: ERROR; `ms <key>`, a bad
   * datalen: bad command line format).
   */
  private parseMetaSet(req: Request): void {
    const line = req.line;
    if (this.tokenCount < 3) {
      this.fatal(this.tokenCount < 2 ? Replies.ERROR : Replies.BAD_FORMAT);
      return;
    }
    const bytes = parseUnsigned(line, this.ts(2), this.te(2), MAX_DATA_LENGTH);
    if (bytes === NO_NUMBER) {
      this.fatal(Replies.BAD_FORMAT);
      return;
    }
    req.bytes = bytes;
    req.error = this.parseMeta(req, Syntax.META_SET, 3);
    if (req.error === null && bytes > this.maxValueBytes) req.error = Replies.TOO_LARGE;
    this.expectValue(req);
  }

  /**
   * The flags from token `first` on, then the key (token 1), which `b`
   * changes. md and ma answer every problem with a flag in memcached's one
   * text for them, except an opaque too long (which memcached checks later).
   */
  private parseMeta(req: Request, syntax: Syntax, first: number): Buffer | null {
    const error = this.parseMetaFlags(req, syntax, first);
    if (error === null) return this.readMetaKey(req, this.ts(1), this.te(1));
    const isDeleteOrArith = syntax === Syntax.META_DELETE || syntax === Syntax.META_ARITH;
    return isDeleteOrArith && error !== Replies.OPAQUE_TOO_LONG ? Replies.INVALID_OR_DUPLICATE_FLAG : error;
  }

  private parseMetaFlags(req: Request, syntax: Syntax, first: number): Buffer | null {
    const line = req.line;
    const [allowedUpper, allowedLower] = metaFlagsFor(syntax);
    let seenUpper = 0;
    let seenLower = 0;
    for (let i = first; i < this.tokenCount; i++) {
      const start = this.ts(i);
      const letter = line[start] ?? 0;
      const isUpper = letter >= UPPER_A && letter <= UPPER_Z;
      const isLower = letter >= LOWER_A && letter <= LOWER_Z;
      const bit = isUpper ? 1 << (letter - UPPER_A) : isLower ? 1 << (letter - LOWER_A) : 0;
      const allowed = isUpper ? allowedUpper : allowedLower;
      if ((allowed & bit) === 0) return Replies.INVALID_FLAG;
      const seen = isUpper ? seenUpper : seenLower;
      if ((seen & bit) !== 0) return Replies.DUPLICATE_FLAG;
      if (isUpper) seenUpper |= bit;
      else seenLower |= bit;
      const error = this.readMetaFlag(req, letter, start, this.te(i), syntax);
      if (error !== null) return error;
    }
    return null;
  }

  private readMetaFlag(req: Request, letter: number, start: number, end: number, syntax: Syntax): Buffer | null {
    const line = req.line;
    switch (FLAG_KIND[letter]) {
      case FlagKind.QUIET:
        req.metaQuiet = true;
        return null;
      case FlagKind.HINT:
        return null;
      case FlagKind.BASE64:
        req.metaBase64 = true;
        break;
      case FlagKind.UINT64:
        if (!isUint64(line, start + 1, end)) return Replies.BAD_TOKEN;
        req.metaFlags.push(start, end);
        return null;
      case FlagKind.UINT32:
        // ms F: memcached gives no reason of its own, so its default one
        if (parseUnsigned(line, start + 1, end, UINT32_MAX) === NO_NUMBER)
          return syntax === Syntax.META_SET ? Replies.BAD_FORMAT : Replies.BAD_TOKEN;
        req.metaFlags.push(start, end);
        return null;
      case FlagKind.INT32:
        if (parseInt32(line, start + 1, end) === NO_NUMBER) return Replies.BAD_TOKEN;
        req.metaFlags.push(start, end);
        return null;
      case FlagKind.OPAQUE:
        if (end - start - 1 > MAX_OPAQUE_BYTES) return Replies.OPAQUE_TOO_LONG;
        if (!hasNoControlBytes(line, start + 1, end)) return Replies.BAD_TOKEN;
        req.metaFlags.push(start, end);
        return null;
      case FlagKind.MODE:
        if (end - start !== 2 && syntax === Syntax.META_SET) return Replies.BAD_MODE_LENGTH;
        if (end - start !== 2 || !hasNoControlBytes(line, start + 1, end)) return Replies.BAD_TOKEN;
        req.metaFlags.push(start, end);
        return null;
      default:
        break;
    }
    // A flag without a token: only its letter is kept.
    req.metaFlags.push(start, start + 1);
    return null;
  }

  private readMetaKey(req: Request, start: number, end: number): Buffer | null {
    if (req.metaBase64) {
      // a key over 250 bytes gets memcached's words for a long key token, decodable or not
      if (end - start > MAX_BASE64_KEY_BYTES) return Replies.BAD_FORMAT;
      const decoded = base64DecodedLength(req.line, start, end);
      if (decoded > MAX_KEY_BYTES) return Replies.BAD_FORMAT;
      if (decoded < 1) return Replies.KEY_ENCODING;
    } else if (!isKey(req.line, start, end, MAX_KEY_BYTES)) {
      return Replies.BAD_FORMAT;
    }
    req.keys.push(start, end);
    return null;
  }
}
