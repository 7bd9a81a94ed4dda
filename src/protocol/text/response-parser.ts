/**
 * Incremental parser of memcached's replies on one upstream connection.
 *
 * memcached answers in request order, so the request at the head of the
 * connection's in-flight FIFO says where the next reply ends (its ReplyShape):
 *
 *   in flight:  [ get a b ][ set c ][ mg d v k ]        ← head first
 *   upstream:   VALUE <ns>a 0 1␍␊x␍␊END␍␊ STORED␍␊ VA 1 k<ns>d␍␊y␍␊
 *               └──── get a b ─────────┘ └ set ┘ └──── mg ───────┘
 *
 * For each finished reply it fills `req.reply` with the bytes the client gets
 * (unchanged lines and data blocks as slices of the upstream chunks, lines
 * whose key becomes the client's own key — taken from the request, in the
 * encoding memcached chose — as new small Buffers), `req.status`,
 * `req.hits`, `req.done`, shifts the FIFO and tells `req.owner`.
 *
 * Anything that does not answer the head request — a line the shape does not
 * allow, a reply key that is not the upstream key of a request key (see
 * upstream-key.ts), a data block without its CRLF, bytes with nothing in
 * flight — is a desync: the parser stops and tells its target, which destroys
 * the connection. Such bytes never reach a client.
 */
import { MAX_KEY_BYTES } from '../limits.js';
import { base64DecodedLength, decodeBase64Into } from './base64.js';
import { copyBytes } from './bytes.js';
import { Cmd, ReplyShape, Syntax, commandSpec } from './commands.js';
import { EMPTY, ReplyStatus, type Request } from './request.js';
import { clientKeyLength, isEchoedInBase64, isUpstreamKey, writeClientKey } from './upstream-key.js';

const SP = 0x20; // ' '
const CR = 0x0d; // \r
const LF = 0x0a; // \n
const LOWER_K = 0x6b; // 'k' meta flag: returned key
const LOWER_B = 0x62; // 'b' meta flag: key is base64
const LOWER_C = 0x63; // 'c' meta flag: cas unique
const LOWER_F = 0x66; // 'f' meta flag: client flags
const DIGIT_0 = 0x30; // '0'
const DIGIT_9 = 0x39; // '9'

/** Longest reply line kept while waiting for its end (STAT and metadump lines are short). */
export const MAX_REPLY_LINE_BYTES = 64 * 1024;

/** Where the parser takes its requests from and reports a desync. */
export interface InFlight {
  /** the oldest request still waiting for its reply, undefined when none */
  peek(): Request | undefined;
  /** removes the oldest request: its reply is complete */
  shift(): void;
  /** the upstream sent bytes that do not answer the head request; the stream is lost */
  onDesync(reason: string): void;
}

const State = { LINE: 0, DATA: 1, DATA_CR: 2, DATA_LF: 3, DEAD: 4 } as const;
type State = (typeof State)[keyof typeof State];

/** What a line means for the reply being read. */
const Next = { MORE: 0, DATA: 1, DONE: 2, BAD: 3 } as const;
type Next = (typeof Next)[keyof typeof Next];

const w = (s: string): Buffer => Buffer.from(s, 'latin1');
const END = w('END');
const VALUE_ = w('VALUE ');
const ERROR = w('ERROR');
const CLIENT_ERROR = w('CLIENT_ERROR');
const SERVER_ERROR = w('SERVER_ERROR');
const STORED = w('STORED');
const NOT_STORED = w('NOT_STORED');
const EXISTS = w('EXISTS');
const NOT_FOUND = w('NOT_FOUND');
const DELETED = w('DELETED');
const TOUCHED = w('TOUCHED');
const OK = w('OK');
const RESET = w('RESET');
const BUSY = w('BUSY');
const VERSION_ = w('VERSION ');
const MN = w('MN');
const ME_ = w('ME ');
const EN = w('EN');
const END_LINE = w('END\r\n');
const METADUMP = w('metadump');
const MGDUMP = w('mgdump');

/** meta return codes, as the 16-bit big-endian value of their two letters */
const code2 = (s: string): number => (s.charCodeAt(0) << 8) | s.charCodeAt(1);
const VA = code2('VA');
const HD = code2('HD');
const EN2 = code2('EN');
const NS = code2('NS');
const EX = code2('EX');
const NF = code2('NF');

/** `buf[at, at + word.length)` equals `word` (a JS loop: cheaper than a native compare for short words). */
function bytesAt(buf: Buffer, at: number, word: Buffer): boolean {
  const n = word.length;
  for (let i = 0; i < n; i++) if (buf[at + i] !== word[i]) return false;
  return true;
}

function isWord(buf: Buffer, s: number, e: number, word: Buffer): boolean {
  return e - s === word.length && bytesAt(buf, s, word);
}

function startsWith(buf: Buffer, s: number, e: number, word: Buffer): boolean {
  return e - s >= word.length && bytesAt(buf, s, word);
}

const UPPER_E = 0x45; // 'E'
const UPPER_C = 0x43; // 'C'
const UPPER_S = 0x53; // 'S'

function isErrorLine(buf: Buffer, s: number, e: number): boolean {
  const c = buf[s];
  if (c === UPPER_E) return startsWith(buf, s, e, ERROR);
  if (c === UPPER_C) return startsWith(buf, s, e, CLIENT_ERROR);
  return c === UPPER_S && startsWith(buf, s, e, SERVER_ERROR);
}

/** Offset of the first space in `buf[from, end)`, or `end`. */
function tokenEnd(buf: Buffer, from: number, end: number): number {
  let i = from;
  while (i < end && buf[i] !== SP) i++;
  return i;
}

/** Decimal value of `buf[s, e)`; -1 when empty, not all digits, or longer than 15 digits. */
function parseDigits(buf: Buffer, s: number, e: number): number {
  if (e <= s || e - s > 15) return -1;
  let n = 0;
  for (let i = s; i < e; i++) {
    const c = buf[i] ?? 0;
    if (c < DIGIT_0 || c > DIGIT_9) return -1;
    n = n * 10 + (c - DIGIT_0);
  }
  return n;
}

function allDigits(buf: Buffer, s: number, e: number): boolean {
  if (e <= s) return false;
  for (let i = s; i < e; i++) {
    const c = buf[i] ?? 0;
    if (c < DIGIT_0 || c > DIGIT_9) return false;
  }
  return true;
}

/** The reply shape of `req`: the command table's, except lru_crawler dumps, which stream lines. */
export function replyShapeOf(req: Request): ReplyShape {
  const shape = commandSpec(req.cmd).reply;
  if (req.cmd !== Cmd.LRU_CRAWLER) return shape;
  const line = req.line;
  let s = req.argsStart;
  while (s < req.argsEnd && line[s] === SP) s++;
  const e = tokenEnd(line, s, req.argsEnd);
  if (isWord(line, s, e, METADUMP)) return ReplyShape.UNTIL_END;
  if (isWord(line, s, e, MGDUMP)) return ReplyShape.UNTIL_EN;
  return shape;
}

/** Scratch for decoded base64 reply keys. */
const rawKey = Buffer.allocUnsafe(4 * MAX_KEY_BYTES);

/** Decodes the base64 key `buf[ks, ke)` into `rawKey`; its length, or -1 when it is not base64 (or too long). */
function decodeReplyKey(buf: Buffer, ks: number, ke: number): number {
  const raw = base64DecodedLength(buf, ks, ke);
  return raw < 0 || raw > rawKey.length ? -1 : decodeBase64Into(buf, ks, ke, rawKey, 0);
}

export class ResponseParser {
  private readonly target: InFlight;
  private state: State;
  /** copy of a line that began in an earlier chunk: `partial[0, partialLen)`, reused */
  private partial: Buffer | null;
  private partialLen: number;
  /** bytes of the current data block still to come (its CRLF excluded) */
  private dataLeft: number;
  /** the request whose reply is being read, null between replies */
  private req: Request | null;
  private shape: ReplyShape;
  private parts: Buffer[];
  private lines: number;
  /** the chunk being parsed and the start of its bytes not yet added to `parts` */
  private chunk: Buffer;
  private runStart: number;
  /** replacement for the line just read, null when it passes unchanged */
  private lineOut: Buffer | null;
  private why: string;
  /** bumped by reset(): a feed loop whose epoch changed stops at once */
  private epoch: number;
  /** VALUE lists: the index in `req.keys` after the key of the last VALUE line */
  private keyCursor: number;

  constructor(target: InFlight) {
    this.target = target;
    this.state = State.LINE;
    this.partial = null;
    this.partialLen = 0;
    this.dataLeft = 0;
    this.req = null;
    this.shape = ReplyShape.LINE;
    this.parts = [];
    this.lines = 0;
    this.chunk = EMPTY;
    this.runStart = 0;
    this.lineOut = null;
    this.why = '';
    this.epoch = 0;
    this.keyCursor = 0;
  }

  /** Forgets everything (the connection was replaced); a feed in progress stops. */
  reset(): void {
    this.epoch++;
    this.state = State.LINE;
    this.partial = null;
    this.partialLen = 0;
    this.dataLeft = 0;
    this.req = null;
    this.parts = [];
    this.lines = 0;
    this.chunk = EMPTY;
    this.runStart = 0;
    this.lineOut = null;
  }

  /** True while part of a reply has been read (a close now is a close mid-reply). */
  get isMidReply(): boolean {
    return this.req !== null || this.partialLen > 0;
  }

  feed(chunk: Buffer): void {
    if (this.state === State.DEAD) return;
    const epoch = this.epoch;
    const len = chunk.length;
    this.chunk = chunk;
    this.runStart = 0;
    let pos = 0;
    while (pos < len) {
      if (this.req === null && !this.begin()) return;
      const st: State = this.state;
      if (st === State.LINE) {
        pos = this.readLine(chunk, pos);
      } else if (st === State.DATA) {
        const n = Math.min(this.dataLeft, len - pos);
        pos += n;
        this.dataLeft -= n;
        if (this.dataLeft === 0) this.state = State.DATA_CR;
      } else if (st === State.DATA_CR) {
        if (chunk[pos] !== CR) return this.desync('data block not followed by CRLF');
        pos++;
        this.state = State.DATA_LF;
      } else {
        if (chunk[pos] !== LF) return this.desync('data block not followed by CRLF');
        pos++;
        this.state = State.LINE;
        if (this.shape === ReplyShape.META) {
          const req = this.req;
          // a get sent as mg: its one VALUE ends with END
          if (req !== null && req.upstreamMeta) this.appendLine(pos, END_LINE);
          this.complete(pos, req);
        }
      }
      if (this.epoch !== epoch) return;
    }
    if (this.req !== null && pos > this.runStart) this.parts.push(chunk.subarray(this.runStart, pos));
    this.chunk = EMPTY;
  }

  private desync(reason: string): void {
    this.state = State.DEAD;
    this.epoch++;
    this.req = null;
    this.partialLen = 0;
    this.chunk = EMPTY;
    this.target.onDesync(reason);
  }

  /** Takes the head request as the one being answered. */
  private begin(): boolean {
    const req = this.target.peek();
    if (req === undefined) {
      this.desync('reply bytes with no request in flight');
      return false;
    }
    this.req = req;
    this.shape = req.upstreamMeta ? ReplyShape.META : replyShapeOf(req);
    this.parts = [];
    this.lines = 0;
    this.keyCursor = 0;
    req.reply = this.parts;
    req.hits = 0;
    req.status = ReplyStatus.NONE;
    return true;
  }

  /** Reads one line at `pos` (or keeps its start for the next chunk); returns the offset after it. */
  private readLine(chunk: Buffer, pos: number): number {
    const len = chunk.length;
    const nl = chunk.indexOf(LF, pos);
    if (nl < 0) {
      if (pos > this.runStart) this.parts.push(chunk.subarray(this.runStart, pos));
      this.keepPartial(chunk, pos);
      this.runStart = len;
      return len;
    }
    const next = nl + 1;
    const have = this.partialLen;
    const joined = have > 0;
    let line = chunk;
    let start = pos;
    if (joined) {
      // NOTE: only a line split across chunks is copied (STYLE.md hot-path rule 4)
      line = Buffer.allocUnsafe(have + next - pos);
      this.partial?.copy(line, 0, 0, have);
      chunk.copy(line, have, pos, next);
      start = 0;
      this.partialLen = 0;
    }
    const lf = joined ? line.length - 1 : nl;
    const hasCR = lf > start && line[lf - 1] === CR;
    const end = hasCR ? lf - 1 : lf;
    const req = this.req;
    if (req === null) return next;
    this.lineOut = null;
    let what: Next = Next.BAD;
    if (!hasCR && this.shape !== ReplyShape.UNTIL_END && this.shape !== ReplyShape.UNTIL_EN) {
      this.why = 'reply line not ended by CRLF';
    } else {
      what = this.onLine(req, line, start, end);
    }
    this.lines++;
    if (what === Next.BAD) {
      this.desync(this.why);
      return next;
    }
    const out = this.lineOut;
    if (out !== null) {
      if (!joined && pos > this.runStart) this.parts.push(chunk.subarray(this.runStart, pos));
      this.parts.push(out);
      this.runStart = next;
    } else if (joined) {
      this.parts.push(line);
      this.runStart = next;
    }
    if (what === Next.DATA) this.state = State.DATA;
    else if (what === Next.DONE) this.complete(next, req);
    return next;
  }

  /** Appends `chunk[pos..]`, the start of a line whose end has not come yet, to `partial`. */
  private keepPartial(chunk: Buffer, pos: number): void {
    const have = this.partialLen;
    const need = have + chunk.length - pos;
    if (need > MAX_REPLY_LINE_BYTES) {
      this.desync('reply line too long');
      return;
    }
    let store = this.partial;
    if (store === null || store.length < need) {
      const grown = Buffer.allocUnsafe(Math.min(MAX_REPLY_LINE_BYTES, Math.max(256, need * 2)));
      if (store !== null) store.copy(grown, 0, 0, have);
      store = grown;
      this.partial = grown;
    }
    chunk.copy(store, have, pos);
    this.partialLen = need;
  }

  /** Adds `line` to the reply after the current chunk's bytes before `pos`. */
  private appendLine(pos: number, line: Buffer): void {
    if (pos > this.runStart) this.parts.push(this.chunk.subarray(this.runStart, pos));
    this.parts.push(line);
    this.runStart = pos;
  }

  /** Finishes the reply of `req`, whose last byte is before `end` in the current chunk. */
  private complete(end: number, req: Request | null): void {
    if (req === null) return;
    if (end > this.runStart) this.parts.push(this.chunk.subarray(this.runStart, end));
    this.runStart = end;
    this.req = null;
    req.done = true;
    this.target.shift();
    req.owner?.onReply(req);
  }

  private bad(why: string): Next {
    this.why = why;
    return Next.BAD;
  }

  /** Classifies one line `buf[s, e)` (without its line end) of the reply to `req`. */
  private onLine(req: Request, buf: Buffer, s: number, e: number): Next {
    if (isErrorLine(buf, s, e)) {
      req.status = ReplyStatus.ERROR;
      return Next.DONE;
    }
    switch (this.shape) {
      case ReplyShape.VALUES:
        return this.onValuesLine(req, buf, s, e);
      case ReplyShape.META:
        return this.onMetaLine(req, buf, s, e);
      case ReplyShape.UNTIL_END:
        return this.onListLine(req, buf, s, e, END);
      case ReplyShape.UNTIL_EN:
        return this.onListLine(req, buf, s, e, EN);
      default:
        return this.onSingleLine(req, buf, s, e);
    }
  }

  /** `VALUE <key> <flags> <bytes> [<cas>]` or `END` */
  private onValuesLine(req: Request, buf: Buffer, s: number, e: number): Next {
    if (isWord(buf, s, e, END)) {
      req.status = req.hits > 0 ? ReplyStatus.OK : ReplyStatus.MISS;
      return Next.DONE;
    }
    if (!startsWith(buf, s, e, VALUE_)) return this.bad('unexpected line in a VALUE list');
    const ks = s + VALUE_.length;
    const ke = tokenEnd(buf, ks, e);
    const fe = tokenEnd(buf, ke + 1, e);
    const be = tokenEnd(buf, fe + 1, e);
    const bytes = parseDigits(buf, fe + 1, be);
    if (ke === ks || !allDigits(buf, ke + 1, fe) || bytes < 0) return this.bad('malformed VALUE line');
    if (be < e && !allDigits(buf, be + 1, e)) return this.bad('malformed VALUE line');
    if (!this.echoValueKey(req, buf, s, e, ks, ke)) return Next.BAD;
    req.hits++;
    this.dataLeft = bytes;
    return Next.DATA;
  }

  /** `VA <size> <flags>*` or `HD|EN|NS|EX|NF <flags>*` */
  private onMetaLine(req: Request, buf: Buffer, s: number, e: number): Next {
    if (e - s < 2 || (e > s + 2 && buf[s + 2] !== SP)) return this.bad('unexpected meta reply line');
    const code = ((buf[s] ?? 0) << 8) | (buf[s + 1] ?? 0);
    if (req.upstreamMeta) return this.onGetAsMetaLine(req, buf, s, e, code);
    if (code === VA) {
      const ze = tokenEnd(buf, s + 3, e);
      const size = parseDigits(buf, s + 3, ze);
      if (size < 0) return this.bad('malformed VA line');
      if (!this.echoMetaKey(req, buf, s, e, ze)) return Next.BAD;
      req.status = ReplyStatus.OK;
      req.hits = 1;
      this.dataLeft = size;
      return Next.DATA;
    }
    let status: ReplyStatus;
    if (code === HD) status = ReplyStatus.HD;
    else if (code === EN2) status = ReplyStatus.MISS;
    else if (code === NS) status = ReplyStatus.NOT_STORED;
    else if (code === EX) status = ReplyStatus.EXISTS;
    else if (code === NF) status = ReplyStatus.NOT_FOUND;
    else return this.bad('unexpected meta reply code');
    if (!this.echoMetaKey(req, buf, s, e, s + 2)) return Next.BAD;
    req.status = status;
    return Next.DONE;
  }

  /**
   * The reply to a one-key get/gets sent as `mg <ns><key> v f [c] k`
   * (encodeGetAsMeta): `EN [k<ns><key>]` becomes `END`; `VA <size> f<flags>
   * [c<cas>] k<ns><key> [W|X|Z]` becomes the client's `VALUE <key> <flags>
   * <size> [<cas>]`. A returned key must be exactly the one asked for.
   */
  private onGetAsMetaLine(req: Request, buf: Buffer, s: number, e: number, code: number): Next {
    const isValue = code === VA;
    if (!isValue && code !== EN2) return this.bad('unexpected reply to a get sent as mg');
    const ze = isValue ? tokenEnd(buf, s + 3, e) : s + 2;
    const size = isValue ? parseDigits(buf, s + 3, ze) : 0;
    if (size < 0) return this.bad('malformed VA line');
    let fs = -1;
    let fe = -1;
    let cs = -1;
    let ce = -1;
    let ks = -1;
    let ke = -1;
    let base64 = false;
    let i = ze;
    while (i < e) {
      if (buf[i] === SP) {
        i++;
        continue;
      }
      const te = tokenEnd(buf, i, e);
      const flag = buf[i];
      if (flag === LOWER_B && te === i + 1) {
        // the item was stored with a binary key (ms … b): memcached returns it in base64
        base64 = true;
      } else if (flag === LOWER_F) {
        fs = i + 1;
        fe = te;
      } else if (flag === LOWER_C) {
        cs = i + 1;
        ce = te;
      } else if (flag === LOWER_K) {
        ks = i + 1;
        ke = te;
      }
      i = te;
    }
    if (ks >= 0 && !this.isRequestKey(req, buf, ks, ke, base64)) return this.bad("reply key is not the request's key");
    if (!isValue) {
      req.status = ReplyStatus.MISS;
      this.lineOut = END_LINE;
      return Next.DONE;
    }
    const withCas = req.cmd === Cmd.GETS;
    if (ks < 0 || !allDigits(buf, fs, fe) || (withCas && !allDigits(buf, cs, ce))) return this.bad('malformed VA line');
    const line = req.line;
    const keyStart = req.keys[0] ?? 0;
    const keyEnd = req.keys[1] ?? 0;
    const sizeLen = ze - (s + 3);
    let len = VALUE_.length + (keyEnd - keyStart) + 1 + (fe - fs) + 1 + sizeLen + 2;
    if (withCas) len += 1 + ce - cs;
    const out = Buffer.allocUnsafe(len);
    let o = copyBytes(VALUE_, 0, VALUE_.length, out, 0);
    o = copyBytes(line, keyStart, keyEnd, out, o);
    out[o++] = SP;
    o = copyBytes(buf, fs, fe, out, o);
    out[o++] = SP;
    o = copyBytes(buf, s + 3, ze, out, o);
    if (withCas) {
      out[o++] = SP;
      o = copyBytes(buf, cs, ce, out, o);
    }
    out[o] = CR;
    out[o + 1] = LF;
    this.lineOut = out;
    req.status = ReplyStatus.OK;
    req.hits = 1;
    this.dataLeft = size;
    return Next.DATA;
  }

  /** `buf[ks, ke)` (base64 text when `base64`) is the upstream key of the request's one key. */
  private isRequestKey(req: Request, buf: Buffer, ks: number, ke: number, base64: boolean): boolean {
    if (!base64) return isUpstreamKey(req, 0, buf, ks, ke);
    const raw = decodeReplyKey(buf, ks, ke);
    return raw >= 0 && isUpstreamKey(req, 0, rawKey, 0, raw);
  }

  /** Lines until `last` (stats, lru_crawler dumps); a first line OK, RESET or BUSY ends it too. */
  private onListLine(req: Request, buf: Buffer, s: number, e: number, last: Buffer): Next {
    const first = this.lines === 0;
    if (
      isWord(buf, s, e, last) ||
      (first && (isWord(buf, s, e, OK) || isWord(buf, s, e, RESET) || startsWith(buf, s, e, BUSY)))
    ) {
      req.status = ReplyStatus.OK;
      return Next.DONE;
    }
    return Next.MORE;
  }

  /** The one-line replies, checked against what the command can answer. */
  private onSingleLine(req: Request, buf: Buffer, s: number, e: number): Next {
    let status: ReplyStatus = ReplyStatus.NONE;
    const syntax = commandSpec(req.cmd).syntax;
    switch (syntax) {
      case Syntax.STORE:
      case Syntax.CAS:
        if (isWord(buf, s, e, STORED)) status = ReplyStatus.STORED;
        else if (isWord(buf, s, e, NOT_STORED)) status = ReplyStatus.NOT_STORED;
        else if (isWord(buf, s, e, EXISTS)) status = ReplyStatus.EXISTS;
        else if (isWord(buf, s, e, NOT_FOUND)) status = ReplyStatus.NOT_FOUND;
        break;
      case Syntax.DELETE:
        if (isWord(buf, s, e, DELETED)) status = ReplyStatus.DELETED;
        else if (isWord(buf, s, e, NOT_FOUND)) status = ReplyStatus.NOT_FOUND;
        break;
      case Syntax.ARITH: {
        // "The number MAY be space-padded at the end" (protocol.txt, Increment/Decrement)
        let de = e;
        while (de > s && buf[de - 1] === SP) de--;
        if (allDigits(buf, s, de)) status = ReplyStatus.NUMBER;
        else if (isWord(buf, s, e, NOT_FOUND)) status = ReplyStatus.NOT_FOUND;
        break;
      }
      case Syntax.TOUCH:
        if (isWord(buf, s, e, TOUCHED)) status = ReplyStatus.TOUCHED;
        else if (isWord(buf, s, e, NOT_FOUND)) status = ReplyStatus.NOT_FOUND;
        break;
      case Syntax.FLUSH:
      case Syntax.VERBOSITY:
        if (isWord(buf, s, e, OK)) status = ReplyStatus.OK;
        break;
      case Syntax.NO_ARGS:
        if (req.cmd === Cmd.VERSION ? startsWith(buf, s, e, VERSION_) : isWord(buf, s, e, MN)) status = ReplyStatus.OK;
        break;
      case Syntax.META_DEBUG:
        if (isWord(buf, s, e, EN)) status = ReplyStatus.MISS;
        else if (startsWith(buf, s, e, ME_)) {
          if (!this.echoDebugKey(req, buf, s, e)) return Next.BAD;
          status = ReplyStatus.OK;
        }
        break;
      default:
        // admin families answer OK, BUSY, a value...: any one line
        status = ReplyStatus.OK;
    }
    if (status === ReplyStatus.NONE) return this.bad('unexpected reply line');
    req.status = status;
    return Next.DONE;
  }

  /**
   * Finds the `k<key>` token among meta flags from `from` and puts the
   * client's key in its place. memcached encodes that key by how the item was
   * stored (`k<base64> b` for an item stored with a binary key), not by how it
   * was asked for, so only the reply's own `b` says which it is.
   */
  private echoMetaKey(req: Request, buf: Buffer, s: number, e: number, from: number): boolean {
    const ns = req.ns;
    if (ns === null || ns.length === 0) return true;
    let ks = -1;
    let ke = -1;
    let base64 = false;
    let i = from;
    while (i < e) {
      if (buf[i] === SP) {
        i++;
        continue;
      }
      const te = tokenEnd(buf, i, e);
      if (buf[i] === LOWER_K) {
        if (ks >= 0) {
          this.why = 'meta reply with two key tokens';
          return false;
        }
        ks = i + 1;
        ke = te;
      } else if (buf[i] === LOWER_B && te === i + 1) {
        base64 = true;
      }
      i = te;
    }
    if (ks < 0) return true;
    if (!this.isRequestKey(req, buf, ks, ke, base64)) return this.outsideNamespace();
    this.echoKey(req, 0, buf, s, e, ks, ke, base64, true);
    return true;
  }

  /**
   * `ME <key> exp=…`: memcached writes the key plain, or in base64 (with no
   * flag to say so) when the item was stored with a binary key. Whichever of
   * the two is the upstream key decides how the client's key is shown.
   */
  private echoDebugKey(req: Request, buf: Buffer, s: number, e: number): boolean {
    const ns = req.ns;
    if (ns === null || ns.length === 0) return true;
    const ks = s + ME_.length;
    const ke = tokenEnd(buf, ks, e);
    // a plain key and its base64 text differ in length, so at most one matches
    if (isUpstreamKey(req, 0, buf, ks, ke)) this.echoKey(req, 0, buf, s, e, ks, ke, false, false);
    else if (this.isRequestKey(req, buf, ks, ke, true)) this.echoKey(req, 0, buf, s, e, ks, ke, true, false);
    else return this.outsideNamespace();
    return true;
  }

  /**
   * `VALUE <key> …` of a get, gets, gat or gats: memcached answers the hits in
   * the order of the request's keys (a key asked twice, twice), so the key
   * after the last match that this upstream key belongs to is the one echoed.
   */
  private echoValueKey(req: Request, buf: Buffer, s: number, e: number, ks: number, ke: number): boolean {
    const ns = req.ns;
    if (ns === null || ns.length === 0) return true;
    const keys = req.keys;
    for (let i = this.keyCursor; i < keys.length; i += 2) {
      if (isUpstreamKey(req, i, buf, ks, ke)) {
        this.keyCursor = i + 2;
        this.echoKey(req, i, buf, s, e, ks, ke, false, false);
        return true;
      }
    }
    return this.outsideNamespace();
  }

  private outsideNamespace(): boolean {
    this.why = "reply key is not one of the request's keys";
    return false;
  }

  /**
   * Puts line `buf[s, e)` with its key `buf[ks, ke)` (base64 text when
   * `replyBase64`) replaced by the client's key `i` into `lineOut`. A meta `k`
   * key shown in base64 where memcached wrote it plain gets memcached's ` b`.
   */
  private echoKey(
    req: Request,
    i: number,
    buf: Buffer,
    s: number,
    e: number,
    ks: number,
    ke: number,
    replyBase64: boolean,
    isMetaFlag: boolean,
  ): void {
    const asBase64 = isEchoedInBase64(req, i, replyBase64);
    const addFlag = isMetaFlag && asBase64 && !replyBase64;
    const keyLen = clientKeyLength(req, i, asBase64);
    const out = Buffer.allocUnsafe(ks - s + keyLen + (addFlag ? 2 : 0) + e - ke + 2);
    let o = copyBytes(buf, s, ks, out, 0);
    o = writeClientKey(req, i, asBase64, out, o);
    if (addFlag) {
      out[o++] = SP;
      out[o++] = LOWER_B;
    }
    o = copyBytes(buf, ke, e, out, o);
    out[o] = CR;
    out[o + 1] = LF;
    this.lineOut = out;
  }
}
