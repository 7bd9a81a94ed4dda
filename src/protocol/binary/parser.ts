/**
 * Incremental decoder for memcached's binary protocol, client → proxy.
 *
 * Each request packet becomes the same `Request` record the text parser makes,
 * with a `line` the parser writes: the equivalent canonical *meta* command.
 * Policy, key checks, the upstream encoder and the upstream response parser
 * then work unchanged, and src/protocol/binary/reply.ts turns memcached's text
 * answer back into a binary response packet (`req.binary` keeps the opcode and
 * opaque it needs).
 *
 *   packet:  80 00 0003 00 00 0000 00000003 deadbeef 0000000000000000 "foo"
 *            └─ GET, key length 3, body length 3, opaque ───────────┘ └key┘
 *   line:    mg foo v f c                    (cmd MG, keys [3, 6], flags v f c)
 *
 *   GET/GETQ/GETK/GETKQ  mg <key> v f c [k]            GAT/GATQ/GATK/GATKQ  ... [k] T<exp>
 *   TOUCH                mg <key> f c T<exp>           DELETE(Q)            md <key> [C<cas>]
 *   SET/ADD/REPLACE(Q)   ms <key> <n> F<flags> T<exp> c [ME|MR] [C<cas>]   + value
 *   APPEND/PREPEND(Q)    ms <key> <n> MA|MP c [C<cas>]                     + value
 *   INCR/DECR(Q)         ma <key> D<delta> MI|MD v c [N<exp> J<initial>] [C<cas>]
 *   FLUSH(Q)             flush_all [<delay>]           STAT                 stats [<group>]
 *   VERSION              version                       QUIT(Q)              quit
 *   NOOP, SASL_*         binary-only command ids; SASL_AUTH/STEP: line = the
 *                        mechanism (keys [0, n]), value = the auth data slices
 *
 * A key is 1..250 arbitrary bytes. One made only of 0x21..0x7e is written as
 * it is; any other is written in base64 with the meta `b` flag (memcached
 * decodes it, so the stored key is the same bytes either way).
 *
 * Framing: the 24-byte header, then extras + key (read whole, from the chunk
 * or from a small scratch copy when they span chunks), then the value, kept
 * as `subarray` slices. Bad packets never end the stream while the body can
 * be counted: the request gets `error` (a text reply from replies.ts, which
 * reply.ts maps to a binary status) and exactly its body is skipped, unread.
 *   wrong magic                          onFatal(empty): nothing to answer, close (as memcached)
 *   body over MAX_SKIPPABLE_BODY_BYTES   onFatal(E2BIG packet), close
 *   unknown opcode                       ERROR → UNKNOWN_COMMAND
 *   body over maxBodyBytes, value over
 *   maxValueBytes                        SERVER_ERROR object too large for cache → E2BIG (a
 *                                        SET/ADD/REPLACE still gets its line and key: the
 *                                        session drops a refused SET's old item)
 *   extras + key over the body, wrong
 *   extras/key/value for the opcode, key
 *   over maxKeyBytes                     CLIENT_ERROR bad command line format → EINVAL
 * Expirations and the FLUSH delay are uint32s, which memcached reads with
 * realtime(): 0 never, up to 30 days relative, beyond that absolute Unix time
 * (0xffffffff is early 2106). The meta T/N tokens they become are int32s in
 * memcached, so a value past 2^31-1 (an absolute time after 2038-01-19) is
 * written as 2^31-1, the latest time a meta token can say: the item lives,
 * as it does in memcached's binary protocol (see metaExptime).
 * Where memgate differs from memcached on purpose: memcached closes the
 * connection after EINVAL and after a key over 250 bytes; memgate answers and
 * reads on, in step with the client.
 *
 * NOTE: about 700 lines: the line writers sit next to the framing that feeds
 * them, so the opcode → meta line table above can be checked in one file.
 */
import { MAX_KEY_BYTES, MAX_VALUE_BYTES } from '../limits.js';
import { encodeBase64Into } from '../text/base64.js';
import { Cmd } from '../text/commands.js';
import { Replies } from '../text/replies.js';
import { writeInt } from '../text/request-encoder.js';
import { EMPTY, Request, type BinaryInfo, type RequestSink } from '../text/request.js';
import { HEADER_BYTES, MAGIC_REQUEST, Offset, OpKind, Opcode, Status, ZERO_CAS, opcodeInfo, Extras } from './header.js';
import { binaryErrorPacket } from './reply.js';
import { SASL_MAX_DATA_BYTES } from './sasl.js';

export interface BinaryParserLimits {
  /** largest value of a storage command; larger ones are skipped and answered E2BIG */
  maxValueBytes: number;
  /** longest key (at most MAX_KEY_BYTES, which meta commands allow) */
  maxKeyBytes: number;
  /** largest packet body; larger ones are skipped unread and answered E2BIG */
  maxBodyBytes: number;
}

export const DEFAULT_BINARY_PARSER_LIMITS: Readonly<BinaryParserLimits> = Object.freeze({
  maxValueBytes: MAX_VALUE_BYTES,
  maxKeyBytes: MAX_KEY_BYTES,
  maxBodyBytes: MAX_VALUE_BYTES + 1024,
});

/**
 * A body this large is not worth counting through: the client is not speaking
 * the protocol (or means harm), so the stream ends.
 */
export const MAX_SKIPPABLE_BODY_BYTES = 64 * 1024 * 1024;

const State = {
  /** the 24-byte header (possibly continuing a partial one) */
  HEADER: 0,
  /** extras + key of `pending` */
  FRONT: 1,
  /** the value of `pending`, kept as slices or dropped */
  VALUE: 2,
  /** after onFatal: input is ignored */
  CLOSED: 3,
} as const;
type State = (typeof State)[keyof typeof State];

const INT32_MAX = 0x7fff_ffff;
const UINT32_MAX = 0xffff_ffff;
const TWO_32 = 0x1_0000_0000;

const SP = 0x20; // ' '
const TILDE = 0x7e; // '~'
const CHAR_B = 0x62; // 'b' meta flag: base64 key

/**
 * The longest line the parser writes: `ma <336-byte base64 key> b D<20> MI v c
 * N<11> J<20> C<20>` is about 430 bytes.
 */
const MAX_SYNTH_LINE_BYTES = 512;

/** Byte strings the lines are made of. */
const w = (s: string): Buffer => Buffer.from(s, 'latin1');
const MG_ = w('mg ');
const MS_ = w('ms ');
const MD_ = w('md ');
const MA_ = w('ma ');
const VERSION = w('version');
const QUIT = w('quit');
const FLUSH_ALL = w('flush_all');
const STATS = w('stats');
const REQUEST_TIMED_OUT = w('request timed out');

/** Writes `src` at `dst[at]`; returns the offset after it. */
function put(dst: Buffer, at: number, src: Buffer): number {
  for (let i = 0; i < src.length; i++) dst[at + i] = src[i] ?? 0;
  return at + src.length;
}

/** Every byte of `buf[start, end)` is in 0x21..0x7e: the key can be sent as it is. */
function isPlainKey(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = buf[i] ?? 0;
    if (c <= SP || c > TILDE) return false;
  }
  return true;
}

/** Every byte of `buf[start, end)` is in 0x20..0x7e (a stats group: words and spaces). */
function isStatsGroup(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = buf[i] ?? 0;
    if (c < SP || c > TILDE) return false;
  }
  return true;
}

/** Scratch for the decimal digits of a 64-bit number, least significant first. */
const digits = new Uint8Array(20);

/**
 * Writes the unsigned 64-bit number `hi·2^32 + lo` in decimal at `dst[at]`
 * (no BigInt: a long division of the two 32-bit halves by 10).
 */
function writeUint64(dst: Buffer, at: number, hi: number, lo: number): number {
  if (hi < 0x20_0000) return writeInt(dst, at, hi * TWO_32 + lo); // below 2^53: exact as a double
  let h = hi;
  let l = lo;
  let n = 0;
  while (h !== 0 || l !== 0) {
    const qh = Math.floor(h / 10);
    const cur = (h - qh * 10) * TWO_32 + l; // < 10·2^32: exact
    const ql = Math.floor(cur / 10);
    digits[n++] = cur - ql * 10;
    h = qh;
    l = ql;
  }
  let o = at;
  while (n > 0) dst[o++] = 0x30 + (digits[--n] ?? 0);
  return o;
}

/** Writes the 8 big-endian bytes `buf[at, at + 8)` as an unsigned decimal. */
function writeUint64At(dst: Buffer, o: number, buf: Buffer, at: number): number {
  return writeUint64(dst, o, buf.readUInt32BE(at), buf.readUInt32BE(at + 4));
}

function isZero8(buf: Buffer, at: number): boolean {
  for (let i = at; i < at + 8; i++) if (buf[i] !== 0) return false;
  return true;
}

/**
 * A binary expiration (uint32) as the int32 a meta T/N token or a text
 * flush_all delay carries, with the same meaning in memcached: values up to
 * 2^31-1 are the same number; later absolute times become 2^31-1 (memcached
 * would truncate a larger token to a negative int32, which expires at once).
 */
export function metaExptime(exptime: number): number {
  return exptime > INT32_MAX ? INT32_MAX : exptime;
}

/** The command id a request of this opcode becomes. */
function commandOf(kind: OpKind, opcode: number): Cmd | 0 {
  switch (kind) {
    case OpKind.GET:
    case OpKind.GAT:
    case OpKind.TOUCH:
      return Cmd.MG;
    case OpKind.STORE:
    case OpKind.CONCAT:
      return Cmd.MS;
    case OpKind.DELETE:
      return Cmd.MD;
    case OpKind.ARITH:
      return Cmd.MA;
    case OpKind.NOOP:
      return Cmd.BIN_NOOP;
    case OpKind.VERSION:
      return Cmd.VERSION;
    case OpKind.QUIT:
      return Cmd.QUIT;
    case OpKind.FLUSH:
      return Cmd.FLUSH_ALL;
    case OpKind.STAT:
      return Cmd.STATS;
    case OpKind.SASL_LIST_MECHS:
      return Cmd.SASL_LIST_MECHS;
    case OpKind.SASL_AUTH:
      return opcode === Opcode.SASL_STEP ? Cmd.SASL_STEP : Cmd.SASL_AUTH;
    default:
      return 0;
  }
}

export class BinaryRequestParser {
  private readonly sink: RequestSink;
  private readonly maxValueBytes: number;
  private readonly maxKeyBytes: number;
  private readonly maxBodyBytes: number;
  /** 0, or a body size past which a packet ends the stream (E2BIG) at once */
  private fatalBodyBytes: number;
  private state: State;
  /** bumped by reset(), so a reset from inside the sink stops the current feed() */
  private generation: number;
  /** a header that spans chunks: `head[0, headLen)` */
  private readonly head: Buffer;
  private headLen: number;
  /** extras + key that span chunks: `front[0, frontHave)` of `frontLen` */
  private readonly front: Buffer;
  private frontHave: number;
  // ---- the packet being read ----
  private kind: OpKind;
  private opcode: number;
  private keyLength: number;
  private extrasLength: number;
  private frontLen: number;
  private valueLength: number;
  /** the request being read (its value or skipped body still to come) */
  private pending: Request | null;
  /** body bytes still to read in VALUE */
  private left: number;
  private keepValue: boolean;
  /** where lines are written before being copied out at their exact length */
  private readonly scratch: Buffer;

  constructor(sink: RequestSink, limits?: Partial<BinaryParserLimits>) {
    this.sink = sink;
    this.maxValueBytes = limits?.maxValueBytes ?? DEFAULT_BINARY_PARSER_LIMITS.maxValueBytes;
    // NOTE: a meta key (plain or decoded base64) is at most MAX_KEY_BYTES, whatever the config says.
    this.maxKeyBytes = Math.min(limits?.maxKeyBytes ?? DEFAULT_BINARY_PARSER_LIMITS.maxKeyBytes, MAX_KEY_BYTES);
    this.maxBodyBytes = limits?.maxBodyBytes ?? DEFAULT_BINARY_PARSER_LIMITS.maxBodyBytes;
    this.fatalBodyBytes = 0;
    this.state = State.HEADER;
    this.generation = 0;
    this.head = Buffer.alloc(HEADER_BYTES);
    this.headLen = 0;
    this.front = Buffer.alloc(Extras.ARITH + MAX_KEY_BYTES);
    this.frontHave = 0;
    this.kind = OpKind.UNKNOWN;
    this.opcode = 0;
    this.keyLength = 0;
    this.extrasLength = 0;
    this.frontLen = 0;
    this.valueLength = 0;
    this.pending = null;
    this.left = 0;
    this.keepValue = false;
    this.scratch = Buffer.alloc(MAX_SYNTH_LINE_BYTES);
  }

  /** True after onFatal: further feed() calls are ignored (until reset()). */
  get isClosed(): boolean {
    return this.state === State.CLOSED;
  }

  /**
   * A packet whose body is over `n` bytes ends the stream (E2BIG) as soon as
   * its header is read; 0 lifts it. Used before authentication, when nothing
   * larger than a SASL exchange is expected.
   */
  setFatalBodyBytes(n: number): void {
    this.fatalBodyBytes = n;
  }

  /**
   * True while a packet has started but is not complete (part of its header,
   * or of its body): the session's request deadline applies.
   */
  get isMidRequest(): boolean {
    return (
      this.state === State.FRONT || this.state === State.VALUE || (this.state === State.HEADER && this.headLen > 0)
    );
  }

  /**
   * The packet in progress missed its deadline: the stream cannot be
   * resynchronised, so it ends with an EINVAL "request timed out" response
   * (for the packet's opcode and opaque, or zeros when its header is not whole).
   */
  expire(): void {
    if (!this.isMidRequest) return;
    const b = this.pending?.binary;
    const opcode = b?.opcode ?? (this.headLen > Offset.OPCODE ? (this.head[Offset.OPCODE] ?? 0) : 0);
    this.fatal(binaryErrorPacket(opcode, b?.opaque ?? 0, Status.EINVAL, REQUEST_TIMED_OUT));
  }

  /**
   * Drops any partial packet and reopens a closed parser. Called from inside
   * the sink, it also drops the rest of the chunk being fed.
   */
  reset(): void {
    this.state = State.HEADER;
    this.generation++;
    this.headLen = 0;
    this.frontHave = 0;
    this.pending = null;
    this.left = 0;
    this.keepValue = false;
  }

  /** Parses every complete packet in `chunk`, delivering each request in order. */
  feed(chunk: Buffer): void {
    const generation = this.generation;
    const n = chunk.length;
    let pos = 0;
    while (pos < n && this.generation === generation) {
      const state = this.state;
      if (state === State.HEADER) pos = this.readHeader(chunk, pos);
      else if (state === State.FRONT) pos = this.readFront(chunk, pos);
      else if (state === State.VALUE) pos = this.readValue(chunk, pos);
      else return;
    }
  }

  // ---- framing ---------------------------------------------------------

  private readHeader(chunk: Buffer, pos: number): number {
    const n = chunk.length;
    if (this.headLen === 0 && n - pos >= HEADER_BYTES) {
      this.onHeader(chunk, pos);
      return pos + HEADER_BYTES;
    }
    const take = Math.min(HEADER_BYTES - this.headLen, n - pos);
    chunk.copy(this.head, this.headLen, pos, pos + take);
    this.headLen += take;
    if (this.headLen === HEADER_BYTES) {
      this.headLen = 0;
      this.onHeader(this.head, 0);
    }
    return pos + take;
  }

  private readFront(chunk: Buffer, pos: number): number {
    const n = chunk.length;
    const need = this.frontLen;
    if (this.frontHave === 0 && n - pos >= need) {
      this.onFront(chunk, pos);
      return pos + need;
    }
    const take = Math.min(need - this.frontHave, n - pos);
    chunk.copy(this.front, this.frontHave, pos, pos + take);
    this.frontHave += take;
    if (this.frontHave === need) {
      this.frontHave = 0;
      this.onFront(this.front, 0);
    }
    return pos + take;
  }

  private readValue(chunk: Buffer, pos: number): number {
    const take = Math.min(this.left, chunk.length - pos);
    const req = this.pending;
    if (this.keepValue && take > 0 && req !== null && req.value !== null)
      req.value.push(chunk.subarray(pos, pos + take));
    this.left -= take;
    if (this.left === 0) this.deliver();
    return pos + take;
  }

  /** Reads the next `bytes` of the stream into `req.value` (or drops them when `req` has an error), then delivers it. */
  private expectBody(req: Request, bytes: number): void {
    this.pending = req;
    this.keepValue = req.error === null;
    this.left = bytes;
    if (bytes === 0) {
      this.deliver();
      return;
    }
    this.state = State.VALUE;
  }

  private deliver(): void {
    const req = this.pending;
    this.pending = null;
    this.state = State.HEADER;
    if (req !== null) this.sink.onRequest(req);
  }

  /** The stream cannot be resynchronised: stop reading and let the session answer and close. */
  private fatal(reply: Buffer): void {
    this.state = State.CLOSED;
    this.pending = null;
    this.headLen = 0;
    this.frontHave = 0;
    this.sink.onFatal(reply);
  }

  // ---- packets ---------------------------------------------------------

  /** A whole header at `buf[at, at + 24)`: checks it and sets up the body. */
  private onHeader(buf: Buffer, at: number): void {
    if (buf[at + Offset.MAGIC] !== MAGIC_REQUEST) {
      this.fatal(EMPTY); // memcached closes without a word
      return;
    }
    const opcode = buf[at + Offset.OPCODE] ?? 0;
    const keyLength = buf.readUInt16BE(at + Offset.KEY_LENGTH);
    const extrasLength = buf[at + Offset.EXTRAS_LENGTH] ?? 0;
    const bodyLength = buf.readUInt32BE(at + Offset.BODY_LENGTH);
    const opaque = buf.readUInt32BE(at + Offset.OPAQUE);
    const fatalBody = this.fatalBodyBytes > 0 && bodyLength > this.fatalBodyBytes;
    if (fatalBody || (bodyLength > MAX_SKIPPABLE_BODY_BYTES && bodyLength > this.maxBodyBytes)) {
      this.fatal(binaryErrorPacket(opcode, opaque, Status.E2BIG));
      return;
    }
    const info = opcodeInfo(opcode);
    const cas = isZero8(buf, at + Offset.CAS)
      ? ZERO_CAS
      : Buffer.from(buf.subarray(at + Offset.CAS, at + HEADER_BYTES));
    const binary: BinaryInfo = { opcode, opaque, cas, quiet: info.quiet, returnKey: info.returnKey };
    const req = new Request();
    req.binary = binary;
    req.cmd = commandOf(info.kind, opcode);
    this.kind = info.kind;
    this.opcode = opcode;
    this.keyLength = keyLength;
    this.extrasLength = extrasLength;
    this.frontLen = keyLength + extrasLength;
    this.valueLength = bodyLength - this.frontLen;
    req.error = this.checkShape(info.kind, bodyLength);
    // a SET-family packet refused as too large still has its key read: a refused SET drops the old item
    if (req.error !== null && !(req.error === Replies.TOO_LARGE && info.kind === OpKind.STORE)) {
      this.expectBody(req, bodyLength);
      return;
    }
    this.pending = req;
    if (this.frontLen === 0) {
      this.onFront(EMPTY, 0);
      return;
    }
    this.frontHave = 0;
    this.state = State.FRONT;
  }

  /**
   * The reply for a packet whose lengths do not fit its opcode (as memcached's
   * dispatch_bin_command checks them), or null.
   */
  private checkShape(kind: OpKind, bodyLength: number): Buffer | null {
    if (kind === OpKind.UNKNOWN) return Replies.ERROR;
    const ext = this.extrasLength;
    const key = this.keyLength;
    const value = this.valueLength;
    if (value < 0) return Replies.BAD_FORMAT;
    let ok: boolean;
    switch (kind) {
      case OpKind.GET:
      case OpKind.DELETE:
        ok = ext === 0 && key > 0 && value === 0;
        break;
      case OpKind.GAT:
      case OpKind.TOUCH:
        ok = ext === Extras.EXPIRATION && key > 0 && value === 0;
        break;
      case OpKind.STORE:
        ok = ext === Extras.STORE && key > 0;
        break;
      case OpKind.CONCAT:
      case OpKind.SASL_AUTH:
        ok = ext === 0 && key > 0;
        break;
      case OpKind.ARITH:
        ok = ext === Extras.ARITH && key > 0 && value === 0;
        break;
      case OpKind.FLUSH:
        ok = (ext === 0 || ext === Extras.EXPIRATION) && key === 0 && value === 0;
        break;
      case OpKind.STAT:
        ok = ext === 0 && value === 0;
        break;
      default:
        // NOOP, VERSION, QUIT, SASL_LIST_MECHS: nothing after the header
        ok = bodyLength === 0;
    }
    if (!ok || key > this.maxKeyBytes) return Replies.BAD_FORMAT;
    // after the shape, as memcached checks the lengths (dispatch_bin_command) before the size
    if (bodyLength > this.maxBodyBytes) return Replies.TOO_LARGE;
    if (kind === OpKind.SASL_AUTH) return value > SASL_MAX_DATA_BYTES ? Replies.TOO_LARGE : null;
    if (kind === OpKind.STORE || kind === OpKind.CONCAT) return value > this.maxValueBytes ? Replies.TOO_LARGE : null;
    return null;
  }

  /** Extras at `buf[at, at + extlen)`, the key after them: writes the request's line. */
  private onFront(buf: Buffer, at: number): void {
    const req = this.pending;
    if (req === null) return;
    const ks = at + this.extrasLength;
    const ke = ks + this.keyLength;
    switch (this.kind) {
      case OpKind.GET:
      case OpKind.GAT:
      case OpKind.TOUCH:
        req.error = this.writeGet(req, buf, at, ks, ke);
        break;
      case OpKind.STORE:
      case OpKind.CONCAT:
        req.error = this.writeSet(req, buf, at, ks, ke) ?? req.error; // TOO_LARGE stays
        break;
      case OpKind.DELETE:
        this.writeDelete(req, buf, ks, ke);
        break;
      case OpKind.ARITH:
        req.error = this.writeArith(req, buf, at, ks, ke);
        break;
      case OpKind.FLUSH:
        req.error = this.writeFlush(req, buf, at);
        break;
      case OpKind.STAT:
        req.error = this.writeStats(req, buf, ks, ke);
        break;
      case OpKind.VERSION:
        req.line = VERSION;
        break;
      case OpKind.QUIT:
        req.line = QUIT;
        break;
      case OpKind.SASL_AUTH:
        // the mechanism is the line and its one key; the auth data is the value
        req.line = Buffer.from(buf.subarray(ks, ke));
        req.keys.push(0, ke - ks);
        break;
      default:
        // NOOP, SASL_LIST_MECHS: nothing to write
        break;
    }
    if (req.error !== null && req.error !== Replies.TOO_LARGE) this.clearParsed(req);
    const hasValue = this.kind === OpKind.STORE || this.kind === OpKind.CONCAT || this.kind === OpKind.SASL_AUTH;
    if (hasValue && req.error === null) req.value = [];
    this.expectBody(req, this.valueLength);
  }

  /** A request refused after its extras were read carries only its command, binary info and error. */
  private clearParsed(req: Request): void {
    req.line = EMPTY;
    req.keys.length = 0;
    req.metaFlags.length = 0;
    req.metaBase64 = false;
    req.bytes = 0;
  }

  // ---- lines -----------------------------------------------------------
  //
  // Each writer fills `scratch`, recording keys and meta flags as the text
  // parser would for the same line, then copies the line out at its length.

  /** Writes the key token at `o` (plain, or base64 with `b` added later); records it. */
  private writeKey(req: Request, o: number, buf: Buffer, ks: number, ke: number): number {
    const dst = this.scratch;
    let end: number;
    if (isPlainKey(buf, ks, ke)) {
      end = o + buf.copy(dst, o, ks, ke);
    } else {
      req.metaBase64 = true;
      end = encodeBase64Into(buf, ks, ke, dst, o);
    }
    req.keys.push(o, end);
    return end;
  }

  /** ` b` after the key (and data length) of a base64 key. */
  private flagBase64(req: Request, o: number): number {
    if (!req.metaBase64) return o;
    return this.flag(req, o, CHAR_B);
  }

  /** ` <letter>`: a bare meta flag. */
  private flag(req: Request, o: number, letter: number): number {
    const dst = this.scratch;
    dst[o] = SP;
    dst[o + 1] = letter;
    req.metaFlags.push(o + 1, o + 2);
    return o + 2;
  }

  /** ` <letter><number>`: a meta flag with a (non-negative, < 2^53) number. */
  private flagNumber(req: Request, o: number, letter: number, n: number): number {
    const dst = this.scratch;
    dst[o] = SP;
    dst[o + 1] = letter;
    const end = writeInt(dst, o + 2, n);
    req.metaFlags.push(o + 1, end);
    return end;
  }

  /** ` <letter><u64>` from 8 big-endian bytes at `buf[at]`. */
  private flagUint64(req: Request, o: number, letter: number, buf: Buffer, at: number): number {
    const dst = this.scratch;
    dst[o] = SP;
    dst[o + 1] = letter;
    const end = writeUint64At(dst, o + 2, buf, at);
    req.metaFlags.push(o + 1, end);
    return end;
  }

  /** ` M<mode>` */
  private flagMode(req: Request, o: number, mode: number): number {
    const dst = this.scratch;
    dst[o] = SP;
    dst[o + 1] = 0x4d; // 'M'
    dst[o + 2] = mode;
    req.metaFlags.push(o + 1, o + 3);
    return o + 3;
  }

  /** ` C<cas>` when the header's cas is not zero. */
  private flagCas(req: Request, o: number): number {
    const cas = req.binary?.cas ?? ZERO_CAS;
    if (cas === ZERO_CAS) return o;
    return this.flagUint64(req, o, 0x43 /* 'C' */, cas, 0);
  }

  /** Copies `scratch[0, len)` out as the request's own line. */
  private finishLine(req: Request, len: number): void {
    const line = Buffer.allocUnsafe(len);
    this.scratch.copy(line, 0, 0, len);
    req.line = line;
  }

  /** GET family `mg <key> [b] v f c [k] [T<exp>]`; TOUCH `mg <key> [b] f c T<exp>`. */
  private writeGet(req: Request, buf: Buffer, at: number, ks: number, ke: number): Buffer | null {
    const kind = this.kind;
    let exptime = 0;
    if (kind !== OpKind.GET) exptime = metaExptime(buf.readUInt32BE(at));
    let o = put(this.scratch, 0, MG_);
    o = this.writeKey(req, o, buf, ks, ke);
    o = this.flagBase64(req, o);
    if (kind !== OpKind.TOUCH) o = this.flag(req, o, 0x76); // 'v': the value
    o = this.flag(req, o, 0x66); // 'f': client flags, for the extras
    o = this.flag(req, o, 0x63); // 'c': cas, for the header
    if (req.binary?.returnKey === true) o = this.flag(req, o, 0x6b); // 'k': the key, for GETK
    if (kind !== OpKind.GET) o = this.flagNumber(req, o, 0x54, exptime); // 'T': touch
    this.finishLine(req, o);
    return null;
  }

  /**
   * SET/ADD/REPLACE `ms <key> <n> [b] F<flags> T<exp> c [ME|MR] [C<cas>]`,
   * APPEND/PREPEND `ms <key> <n> [b] MA|MP c [C<cas>]`.
   */
  private writeSet(req: Request, buf: Buffer, at: number, ks: number, ke: number): Buffer | null {
    const isStore = this.kind === OpKind.STORE;
    let flags = 0;
    let exptime = 0;
    if (isStore) {
      flags = buf.readUInt32BE(at);
      exptime = metaExptime(buf.readUInt32BE(at + 4));
    }
    const dst = this.scratch;
    let o = put(dst, 0, MS_);
    o = this.writeKey(req, o, buf, ks, ke);
    dst[o++] = SP;
    o = writeInt(dst, o, this.valueLength);
    req.bytes = this.valueLength;
    o = this.flagBase64(req, o);
    const base = opcodeInfo(this.opcode).base;
    if (isStore) {
      o = this.flagNumber(req, o, 0x46, flags); // 'F'
      o = this.flagNumber(req, o, 0x54, exptime); // 'T'
      o = this.flag(req, o, 0x63); // 'c': the new cas, for the header
      if (base === Opcode.ADD)
        o = this.flagMode(req, o, 0x45); // 'E': add
      else if (base === Opcode.REPLACE) o = this.flagMode(req, o, 0x52); // 'R': replace
    } else {
      o = this.flagMode(req, o, base === Opcode.APPEND ? 0x41 : 0x50); // 'A' append, 'P' prepend
      o = this.flag(req, o, 0x63); // 'c'
    }
    o = this.flagCas(req, o);
    this.finishLine(req, o);
    return null;
  }

  /** `md <key> [b] [C<cas>]` */
  private writeDelete(req: Request, buf: Buffer, ks: number, ke: number): void {
    let o = put(this.scratch, 0, MD_);
    o = this.writeKey(req, o, buf, ks, ke);
    o = this.flagBase64(req, o);
    o = this.flagCas(req, o);
    this.finishLine(req, o);
  }

  /**
   * `ma <key> [b] D<delta> MI|MD v c [N<exp> J<initial>] [C<cas>]`. An
   * expiration of 0xffffffff means "do not create a missing counter"
   * (protocol_binary.h); any other creates it with `initial`.
   */
  private writeArith(req: Request, buf: Buffer, at: number, ks: number, ke: number): Buffer | null {
    const raw = buf.readUInt32BE(at + 16);
    const create = raw !== UINT32_MAX;
    const exptime = metaExptime(raw);
    let o = put(this.scratch, 0, MA_);
    o = this.writeKey(req, o, buf, ks, ke);
    o = this.flagBase64(req, o);
    o = this.flagUint64(req, o, 0x44, buf, at); // 'D': delta
    const isIncr = opcodeInfo(this.opcode).base === Opcode.INCREMENT;
    o = this.flagMode(req, o, isIncr ? 0x49 : 0x44); // 'I' incr, 'D' decr
    o = this.flag(req, o, 0x76); // 'v': the new value
    o = this.flag(req, o, 0x63); // 'c': its cas
    if (create) {
      o = this.flagNumber(req, o, 0x4e, exptime); // 'N': create on miss, with this TTL
      o = this.flagUint64(req, o, 0x4a, buf, at + 8); // 'J': initial value
    }
    o = this.flagCas(req, o);
    this.finishLine(req, o);
    return null;
  }

  /** `flush_all [<delay>]` */
  private writeFlush(req: Request, buf: Buffer, at: number): Buffer | null {
    if (this.extrasLength === 0) {
      req.line = FLUSH_ALL;
      return null;
    }
    const delay = metaExptime(buf.readUInt32BE(at));
    const dst = this.scratch;
    let o = put(dst, 0, FLUSH_ALL);
    dst[o++] = SP;
    o = writeInt(dst, o, delay);
    req.delay = delay;
    this.finishLine(req, o);
    return null;
  }

  /** `stats [<group>]`: the key is the group (`items`, `settings`, `detail dump`...). */
  private writeStats(req: Request, buf: Buffer, ks: number, ke: number): Buffer | null {
    if (!isStatsGroup(buf, ks, ke)) return Replies.BAD_FORMAT;
    const dst = this.scratch;
    let o = put(dst, 0, STATS);
    const nameEnd = o;
    if (ke > ks) {
      dst[o++] = SP;
      o += buf.copy(dst, o, ks, ke);
    }
    // the raw argument range, as the text parser reads it: first to last non-space byte
    let s = nameEnd;
    let e = o;
    while (s < e && dst[s] === SP) s++;
    while (e > s && dst[e - 1] === SP) e--;
    req.argsStart = s === e ? nameEnd : s;
    req.argsEnd = s === e ? nameEnd : e;
    if (o === nameEnd) {
      req.line = STATS;
      return null;
    }
    this.finishLine(req, o);
    return null;
  }
}
