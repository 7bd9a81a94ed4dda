/**
 * Text reply → binary response packet, for requests read by the binary parser.
 *
 * The upstream response parser (or the session, for local answers) leaves the
 * reply in `req.reply` in memcached's text vocabulary, namespace already
 * stripped; `encodeBinaryReply` turns it into the one packet (several for
 * STAT) the binary client expects, echoing the request's opcode and opaque:
 *
 *   req.reply:  "VA 5 f7 c42 kfoo\r\n" "hello" "\r\n"         (GETK)
 *   packet:     [81 0c 0003 04 00 0000 0000000c <opaque> <cas 42>][flags 7]["foo"] "hello"
 *               └──────────── one new Buffer ─────────────────────────────────┘ └ slice ┘
 *
 * Values are never copied: the data slices of the text reply follow the header.
 *
 * What maps to what (memcached's proto_bin.c is the model):
 *   VA / HD (mg)               SUCCESS, extras = flags, cas in the header, GETK: key, TOUCH: no value
 *   EN (mg)                    KEY_ENOENT "Not found" (GETK: the key as the body); GETQ/GETKQ: nothing
 *   HD (ms, md, ma), OK        SUCCESS (ms: cas in the header); ma VA: the counter as 8 bytes
 *   NS (ms)                    ADD: KEY_EEXISTS, REPLACE: KEY_ENOENT, others: NOT_STORED
 *   NS (ma)                    NOT_STORED
 *   EX / NF                    KEY_EEXISTS / KEY_ENOENT
 *   VERSION <v>                SUCCESS, body <v>
 *   STAT <name> <value>… END   one packet per row (key = name, body = value), then an empty one
 *   ERROR                      UNKNOWN_COMMAND "Unknown command" (STAT: KEY_ENOENT, memcached's answer
 *                              to an unknown stats group)
 *   CLIENT_ERROR <reason>      "…not allowed", access denied, (un)authenticated: AUTH_ERROR <reason>
 *                              (memcached answers a disabled flush with AUTH_ERROR); non-numeric
 *                              incr/decr: DELTA_BADVAL; any other: EINVAL "Invalid arguments"
 *   SERVER_ERROR <reason>      object too large: E2BIG "Too large."; out of memory: ENOMEM;
 *                              rate limited, backend failure: ETMPFAIL <reason>; others: EINTERNAL <reason>
 * Quiet opcodes send errors only (GETQ/GETKQ/GATQ/GATKQ also send hits).
 *
 * NOTE: about 700 lines: the reply-line reader, the error table and the local
 * reply helpers share the packet writer, and splitting them would export it.
 */
import type { BinaryInfo, Request } from '../text/request.js';
import { clientKeyBytes } from '../text/upstream-key.js';
import {
  Extras,
  HEADER_BYTES,
  MAGIC_RESPONSE,
  OpKind,
  Offset,
  Opcode,
  STATUS_TEXT,
  Status,
  opcodeInfo,
  writeResponseHeader,
} from './header.js';
import { SASL_MECHANISMS_BYTES } from './sasl.js';

const CR = 0x0d; // \r
const LF = 0x0a; // \n
const SP = 0x20; // ' '
const DIGIT_0 = 0x30; // '0'
const DIGIT_9 = 0x39; // '9'
const LOWER_C = 0x63; // 'c' meta flag: cas
const LOWER_F = 0x66; // 'f' meta flag: client flags
const TWO_32 = 0x1_0000_0000;

const w = (s: string): Buffer => Buffer.from(s, 'latin1');
const ERROR = w('ERROR');
const CLIENT_ERROR_ = w('CLIENT_ERROR ');
const SERVER_ERROR_ = w('SERVER_ERROR ');
const VERSION_ = w('VERSION ');
const STAT_ = w('STAT ');
const END = w('END');
const OK = w('OK');
const AUTHENTICATED = w('Authenticated');

/** meta return codes, as the 16-bit big-endian value of their two letters */
const code2 = (s: string): number => (s.charCodeAt(0) << 8) | s.charCodeAt(1);
const VA = code2('VA');
const HD = code2('HD');
const EN = code2('EN');
const NS = code2('NS');
const EX = code2('EX');
const NF = code2('NF');

/** memcached's text for each status, as bytes. */
const STATUS_BYTES: readonly (Buffer | undefined)[] = (() => {
  const out: (Buffer | undefined)[] = new Array<Buffer | undefined>(256).fill(undefined);
  for (const [status, text] of Object.entries(STATUS_TEXT)) out[Number(status)] = w(text);
  return out;
})();

function statusText(status: number): Buffer {
  return STATUS_BYTES[status & 0xff] ?? STATUS_BYTES[Status.EINTERNAL] ?? ERROR;
}

// ---- errors ------------------------------------------------------------

/** How a CLIENT_ERROR / SERVER_ERROR reason maps: a status, and memcached's text or the reason itself. */
interface ReasonRule {
  readonly reason: Buffer;
  /** match the reason's end instead of its start ("<command> not allowed") */
  readonly suffix: boolean;
  readonly status: Status;
  /** send memcached's text for `status` instead of the reason */
  readonly standardText: boolean;
}

const rule = (reason: string, status: Status, standardText: boolean, suffix = false): ReasonRule =>
  Object.freeze({ reason: w(reason), suffix, status, standardText });

const CLIENT_RULES: readonly ReasonRule[] = Object.freeze([
  rule('cannot increment or decrement non-numeric value', Status.DELTA_BADVAL, true),
  rule('authentication failure', Status.AUTH_ERROR, true),
  rule('unauthenticated', Status.AUTH_ERROR, false),
  rule('access denied', Status.AUTH_ERROR, false),
  rule('auth token too long', Status.AUTH_ERROR, false),
  rule(' not allowed', Status.AUTH_ERROR, false, true),
]);

const SERVER_RULES: readonly ReasonRule[] = Object.freeze([
  rule('object too large for cache', Status.E2BIG, true),
  rule('out of memory', Status.ENOMEM, true),
  rule('Out of memory', Status.ENOMEM, true),
  rule('rate limited', Status.ETMPFAIL, false),
  rule('backend failure', Status.ETMPFAIL, false),
  rule('too many authentications in progress', Status.ETMPFAIL, false),
]);

function matches(line: Buffer, s: number, e: number, r: ReasonRule): boolean {
  const n = r.reason.length;
  if (e - s < n) return false;
  const at = r.suffix ? e - n : s;
  for (let i = 0; i < n; i++) if (line[at + i] !== r.reason[i]) return false;
  return true;
}

function startsWith(buf: Buffer, s: number, e: number, word: Buffer): boolean {
  if (e - s < word.length) return false;
  for (let i = 0; i < word.length; i++) if (buf[s + i] !== word[i]) return false;
  return true;
}

function isWord(buf: Buffer, s: number, e: number, word: Buffer): boolean {
  return e - s === word.length && startsWith(buf, s, e, word);
}

/** True for `ERROR…`, `CLIENT_ERROR …` and `SERVER_ERROR …` lines. */
function isErrorLine(line: Buffer): boolean {
  const n = line.length;
  return (
    startsWith(line, 0, n, ERROR) || startsWith(line, 0, n, CLIENT_ERROR_) || startsWith(line, 0, n, SERVER_ERROR_)
  );
}

/** A binary status and its body text for a text error line (without its line end). */
export interface MappedError {
  status: Status;
  text: Buffer;
}

/**
 * The binary status for a text error line (`ERROR`, `CLIENT_ERROR <reason>`,
 * `SERVER_ERROR <reason>`, without "\r\n") answering a request of opcode
 * `opcode`. Exported for tests and docs.
 */
export function mapTextError(line: Buffer, opcode: number): MappedError {
  const n = line.length;
  if (startsWith(line, 0, n, CLIENT_ERROR_)) return mapReason(line, CLIENT_ERROR_.length, CLIENT_RULES, Status.EINVAL);
  if (startsWith(line, 0, n, SERVER_ERROR_))
    return mapReason(line, SERVER_ERROR_.length, SERVER_RULES, Status.EINTERNAL);
  if (n === ERROR.length) {
    // memcached answers a stats group it does not know with KEY_ENOENT
    const status = opcodeInfo(opcode).kind === OpKind.STAT ? Status.KEY_ENOENT : Status.UNKNOWN_COMMAND;
    return { status, text: statusText(status) };
  }
  // `ERROR <reason>` (too many connections): the proxy cannot take the request now
  let s = ERROR.length;
  while (s < n && line[s] === SP) s++;
  return { status: Status.ETMPFAIL, text: line.subarray(s) };
}

function mapReason(line: Buffer, s: number, rules: readonly ReasonRule[], fallback: Status): MappedError {
  const e = line.length;
  for (const r of rules) {
    if (matches(line, s, e, r))
      return { status: r.status, text: r.standardText ? statusText(r.status) : line.subarray(s) };
  }
  // EINVAL keeps memcached's words; an unknown SERVER_ERROR keeps its reason
  return { status: fallback, text: fallback === Status.EINVAL ? statusText(fallback) : line.subarray(s) };
}

// ---- packets -----------------------------------------------------------

/**
 * One response packet: header, then `extrasLength` bytes (left for the caller
 * to fill at offset 24), then `head` (key or small body), all in one Buffer;
 * `valueLength` more bytes follow as separate slices.
 */
function packet(
  b: BinaryInfo,
  status: number,
  extrasLength: number,
  keyLength: number,
  head: Buffer | null,
  valueLength: number,
): Buffer {
  const headLength = head === null ? 0 : head.length;
  const out = Buffer.allocUnsafe(HEADER_BYTES + extrasLength + headLength);
  const body = extrasLength + headLength + valueLength;
  writeResponseHeader(out, 0, b.opcode, status, keyLength, extrasLength, body, b.opaque, null);
  if (head !== null) head.copy(out, HEADER_BYTES + extrasLength);
  return out;
}

/** A response of only a header and `body` (an error text, a version, a counter): one Buffer. */
function bodyPacket(b: BinaryInfo, status: number, body: Buffer | null): Buffer {
  return packet(b, status, 0, 0, body, 0);
}

/** An error response for a request that may not have been parsed (fatal framing errors). */
export function binaryErrorPacket(opcode: number, opaque: number, status: number, text?: Buffer): Buffer {
  const body = text ?? statusText(status);
  const out = Buffer.allocUnsafe(HEADER_BYTES + body.length);
  writeResponseHeader(out, 0, opcode, status, 0, 0, body.length, opaque, null);
  body.copy(out, HEADER_BYTES);
  return out;
}

/** A response with `status` and `text` (memcached's text for the status when omitted; empty for SUCCESS). */
export function binaryStatus(req: Request, status: number, text?: string | Buffer): Buffer {
  const b = infoOf(req);
  let body: Buffer | null;
  if (text === undefined) body = status === Status.SUCCESS ? null : statusText(status);
  else body = typeof text === 'string' ? w(text) : text;
  return bodyPacket(b, status, body);
}

/** NOOP's answer (also the end of a pipeline of quiet requests). */
export function binaryNoop(req: Request): Buffer {
  return bodyPacket(infoOf(req), Status.SUCCESS, null);
}

/** FLUSH's answer once the tenant's generation has rotated. */
export function binaryFlushOk(req: Request): Buffer {
  return bodyPacket(infoOf(req), Status.SUCCESS, null);
}

/** STAT's answer: one packet per row (key = name, body = value), then an empty packet. */
export function binaryStats(req: Request, rows: readonly (readonly [string, string | number])[]): Buffer {
  const b = infoOf(req);
  const parts: Buffer[] = [];
  for (const [name, value] of rows) parts.push(statPacket(b, w(name), w(String(value))));
  parts.push(bodyPacket(b, Status.SUCCESS, null));
  return Buffer.concat(parts);
}

/** SASL_LIST_MECHS's answer: the mechanisms, space separated. */
export function binarySaslMechanisms(req: Request): Buffer {
  return bodyPacket(infoOf(req), Status.SUCCESS, SASL_MECHANISMS_BYTES);
}

/** SASL_AUTH / SASL_STEP succeeded (memcached's words). */
export function binarySaslOk(req: Request): Buffer {
  return bodyPacket(infoOf(req), Status.SUCCESS, AUTHENTICATED);
}

/** SASL_AUTH / SASL_STEP failed: AUTH_ERROR "Auth failure." (memcached's words). */
export function binarySaslFailure(req: Request): Buffer {
  return bodyPacket(infoOf(req), Status.AUTH_ERROR, statusText(Status.AUTH_ERROR));
}

const NO_INFO: BinaryInfo = Object.freeze({
  opcode: Opcode.NOOP,
  opaque: 0,
  cas: Buffer.alloc(8),
  quiet: false,
  returnKey: false,
});

function infoOf(req: Request): BinaryInfo {
  return req.binary ?? NO_INFO;
}

function statPacket(b: BinaryInfo, name: Buffer, value: Buffer): Buffer {
  const out = Buffer.allocUnsafe(HEADER_BYTES + name.length + value.length);
  writeResponseHeader(out, 0, b.opcode, Status.SUCCESS, name.length, 0, name.length + value.length, b.opaque, null);
  name.copy(out, HEADER_BYTES);
  value.copy(out, HEADER_BYTES + name.length);
  return out;
}

// ---- reading the text reply ----------------------------------------------

/**
 * Reads lines and counted data from the reply's slices. A line normally sits
 * in one slice (the response parser copies a line split across chunks), but
 * one that does not is copied here, so any cut of the reply reads the same.
 */
class SliceReader {
  private slices: readonly Buffer[];
  private index: number;
  private offset: number;

  constructor() {
    this.slices = [];
    this.index = 0;
    this.offset = 0;
  }

  start(slices: readonly Buffer[]): void {
    this.slices = slices;
    this.index = 0;
    this.offset = 0;
  }

  /** The next line without its "\r\n" (or "\n"), or null when no line end is left. */
  line(): Buffer | null {
    const slices = this.slices;
    for (let i = this.index; i < slices.length; i++) {
      const s = slices[i];
      if (s === undefined) continue;
      const lf = s.indexOf(LF, i === this.index ? this.offset : 0);
      if (lf < 0) continue;
      let line: Buffer;
      if (i === this.index) {
        line = s.subarray(this.offset, lf);
      } else {
        const parts: Buffer[] = [(slices[this.index] ?? Buffer.alloc(0)).subarray(this.offset)];
        for (let j = this.index + 1; j < i; j++) parts.push(slices[j] ?? Buffer.alloc(0));
        parts.push(s.subarray(0, lf));
        line = Buffer.concat(parts);
      }
      this.index = i;
      this.offset = lf + 1;
      const n = line.length;
      return n > 0 && line[n - 1] === CR ? line.subarray(0, n - 1) : line;
    }
    return null;
  }

  /** Pushes the next `n` bytes onto `out` as slices; false when fewer are left. */
  take(n: number, out: Buffer[]): boolean {
    let left = n;
    const slices = this.slices;
    while (left > 0) {
      const s = slices[this.index];
      if (s === undefined) return false;
      const have = s.length - this.offset;
      if (have <= 0) {
        this.index++;
        this.offset = 0;
        continue;
      }
      const k = Math.min(have, left);
      out.push(s.subarray(this.offset, this.offset + k));
      this.offset += k;
      left -= k;
    }
    return true;
  }
}

const reader = new SliceReader();

// ---- numbers -------------------------------------------------------------

/** `buf[s, e)` as an unsigned 32-bit decimal, or -1. */
function parseUint32(buf: Buffer, s: number, e: number): number {
  if (e <= s || e - s > 10) return -1;
  let v = 0;
  for (let i = s; i < e; i++) {
    const c = buf[i] ?? 0;
    if (c < DIGIT_0 || c > DIGIT_9) return -1;
    v = v * 10 + (c - DIGIT_0);
  }
  return v > 0xffff_ffff ? -1 : v;
}

/** `buf[s, e)` as a decimal of at most 15 digits, or -1. */
function parseSize(buf: Buffer, s: number, e: number): number {
  if (e <= s || e - s > 15) return -1;
  let v = 0;
  for (let i = s; i < e; i++) {
    const c = buf[i] ?? 0;
    if (c < DIGIT_0 || c > DIGIT_9) return -1;
    v = v * 10 + (c - DIGIT_0);
  }
  return v;
}

/**
 * Writes the unsigned 64-bit decimal in `slices` (digits only, 1..20 of them,
 * at most 2^64 - 1) as 8 big-endian bytes at `dst[at]`; false when it is not
 * such a number. No BigInt: the two 32-bit halves are multiplied by 10.
 */
function writeDecimalAsUint64(slices: readonly Buffer[], dst: Buffer, at: number): boolean {
  let hi = 0;
  let lo = 0;
  let count = 0;
  for (const s of slices) {
    for (let i = 0; i < s.length; i++) {
      const c = s[i] ?? 0;
      if (c < DIGIT_0 || c > DIGIT_9) return false;
      if (++count > 20) return false;
      const l = lo * 10 + (c - DIGIT_0); // < 2^36: exact
      const carry = Math.floor(l / TWO_32);
      lo = l - carry * TWO_32;
      hi = hi * 10 + carry;
      if (hi >= TWO_32) return false;
    }
  }
  if (count === 0) return false;
  dst.writeUInt32BE(hi, at);
  dst.writeUInt32BE(lo, at + 4);
  return true;
}

const one: Buffer[] = [Buffer.alloc(0)];

/** `buf[s, e)` as 8 big-endian cas bytes at `dst[at]`; false when not a u64 decimal. */
function writeCas(buf: Buffer, s: number, e: number, dst: Buffer, at: number): boolean {
  one[0] = buf.subarray(s, e);
  return writeDecimalAsUint64(one, dst, at);
}

// ---- meta reply lines ------------------------------------------------------

/** What a meta reply line (`VA <n> f.. c..`, `HD c..`, `EN`) says, by offsets (a `k` key is not read: see returnedKey). */
class MetaLine {
  code = 0;
  /** VA: the data length */
  size = -1;
  flags = 0;
  casStart = -1;
  casEnd = -1;

  read(line: Buffer): boolean {
    this.size = -1;
    this.flags = 0;
    this.casStart = -1;
    const n = line.length;
    if (n < 2 || (n > 2 && line[2] !== SP)) return false;
    this.code = ((line[0] ?? 0) << 8) | (line[1] ?? 0);
    let i = 3;
    if (this.code === VA) {
      const e = tokenEnd(line, i, n);
      this.size = parseSize(line, i, e);
      if (this.size < 0) return false;
      i = e;
    }
    while (i < n) {
      if (line[i] === SP) {
        i++;
        continue;
      }
      const e = tokenEnd(line, i, n);
      const letter = line[i];
      if (letter === LOWER_F) {
        this.flags = parseUint32(line, i + 1, e);
        if (this.flags < 0) return false;
      } else if (letter === LOWER_C) {
        this.casStart = i + 1;
        this.casEnd = e;
      }
      i = e;
    }
    return true;
  }
}

function tokenEnd(buf: Buffer, from: number, end: number): number {
  let i = from;
  while (i < end && buf[i] !== SP) i++;
  return i;
}

const meta = new MetaLine();

/**
 * The key to return for GETK: the client's own key bytes, as memcached's
 * binary protocol returns the stored key (the same bytes). Never the reply's
 * `k` token: memcached encodes it by how the item was stored, and for a long
 * namespaced key the upstream key is a digest (src/protocol/text/upstream-key.ts).
 */
function returnedKey(req: Request): Buffer {
  return clientKeyBytes(req, 0);
}

// ---- the encoder -----------------------------------------------------------

/**
 * The binary response to `req` (read by BinaryRequestParser), from the text
 * reply in `req.reply`: the packet's Buffers in order (header and small parts
 * in one new Buffer, value slices as they are), or null when nothing is sent
 * (a quiet success, a GETQ miss, a request left without a reply).
 *
 * - A request without `binary` (a fatal reply queued by the session) and a
 *   reply that already is a binary packet (first byte 0x81, from the helpers
 *   below) pass unchanged; a quiet opcode's packet of status SUCCESS is
 *   dropped (gets excepted).
 * - A reply of null is no packet, except QUIT, which memcached acknowledges
 *   before closing (QUITQ: nothing).
 */
export function encodeBinaryReply(req: Request): Buffer[] | null {
  const b = req.binary;
  const reply = req.reply;
  if (b === null) return reply;
  const info = opcodeInfo(b.opcode);
  const kind = info.kind;
  if (reply === null || reply.length === 0) {
    return kind === OpKind.QUIT && !b.quiet ? [bodyPacket(b, Status.SUCCESS, null)] : null;
  }
  if (reply[0]?.[0] === MAGIC_RESPONSE) return isHiddenPacket(b, kind, reply) ? null : reply;
  reader.start(reply);
  const line = reader.line();
  if (line === null) return [bodyPacket(b, Status.EINTERNAL, statusText(Status.EINTERNAL))];
  if (isErrorLine(line)) {
    const mapped = mapTextError(line, b.opcode);
    return [bodyPacket(b, mapped.status, mapped.text)];
  }
  let out: Buffer[] | null;
  switch (kind) {
    case OpKind.GET:
    case OpKind.GAT:
    case OpKind.TOUCH:
      out = encodeGet(req, b, kind, line);
      break;
    case OpKind.STORE:
    case OpKind.CONCAT:
    case OpKind.DELETE:
      out = encodeUpdate(b, info.base, line);
      break;
    case OpKind.ARITH:
      out = encodeArith(b, line);
      break;
    case OpKind.STAT:
      return encodeStats(b, line);
    case OpKind.VERSION:
      out = startsWith(line, 0, line.length, VERSION_)
        ? [bodyPacket(b, Status.SUCCESS, line.subarray(VERSION_.length))]
        : null;
      break;
    case OpKind.FLUSH:
      out = isWord(line, 0, line.length, OK) ? [bodyPacket(b, Status.SUCCESS, null)] : null;
      break;
    case OpKind.NOOP:
    case OpKind.QUIT:
      out = [bodyPacket(b, Status.SUCCESS, null)];
      break;
    case OpKind.SASL_LIST_MECHS:
      out = [bodyPacket(b, Status.SUCCESS, SASL_MECHANISMS_BYTES)];
      break;
    case OpKind.SASL_AUTH:
      out = [bodyPacket(b, Status.SUCCESS, AUTHENTICATED)];
      break;
    default:
      out = [bodyPacket(b, Status.UNKNOWN_COMMAND, statusText(Status.UNKNOWN_COMMAND))];
  }
  // a line the command cannot answer: the proxy, not the client, is at fault
  if (out === null) return [bodyPacket(b, Status.EINTERNAL, statusText(Status.EINTERNAL))];
  if (out.length === 0 || (b.quiet && isQuietSuccess(kind, out[0]))) return null;
  return out;
}

/** A quiet request's success is not sent, except a get's hit (GETQ, GETKQ, GATQ, GATKQ). */
function isQuietSuccess(kind: OpKind, first: Buffer | undefined): boolean {
  if (first === undefined || first.readUInt16BE(Offset.STATUS) !== Status.SUCCESS) return false;
  return kind !== OpKind.GET && kind !== OpKind.GAT;
}

function isHiddenPacket(b: BinaryInfo, kind: OpKind, reply: readonly Buffer[]): boolean {
  const first = reply[0];
  return b.quiet && first !== undefined && first.length >= HEADER_BYTES && isQuietSuccess(kind, first);
}

/** mg's answer to a GET, GAT or TOUCH: VA + data, HD (touch), EN. */
function encodeGet(req: Request, b: BinaryInfo, kind: OpKind, line: Buffer): Buffer[] | null {
  if (!meta.read(line)) return null;
  const code = meta.code;
  if (code === EN) {
    if (b.quiet) return []; // a quiet get's miss: nothing at all
    if (!b.returnKey) return [bodyPacket(b, Status.KEY_ENOENT, statusText(Status.KEY_ENOENT))];
    const key = returnedKey(req);
    // memcached's GETK miss: the key as the body, no text
    return [packet(b, Status.KEY_ENOENT, 0, key.length, key, 0)];
  }
  if (code !== VA && code !== HD) return null;
  const key = b.returnKey ? returnedKey(req) : null;
  const keyLength = key === null ? 0 : key.length;
  const valueLength = code === VA && kind !== OpKind.TOUCH ? meta.size : 0;
  const head = packet(b, Status.SUCCESS, Extras.GET_RESPONSE, keyLength, key, valueLength);
  head.writeUInt32BE(meta.flags, HEADER_BYTES);
  if (meta.casStart >= 0 && !writeCas(line, meta.casStart, meta.casEnd, head, Offset.CAS)) return null;
  const out = [head];
  if (valueLength > 0 && !reader.take(valueLength, out)) return null;
  return out;
}

/** ms / md answers: HD (with ms's cas), NS, EX, NF. */
function encodeUpdate(b: BinaryInfo, base: number, line: Buffer): Buffer[] | null {
  if (!meta.read(line)) return null;
  let status: Status;
  switch (meta.code) {
    case HD: {
      const head = bodyPacket(b, Status.SUCCESS, null);
      if (meta.casStart >= 0 && !writeCas(line, meta.casStart, meta.casEnd, head, Offset.CAS)) return null;
      return [head];
    }
    case NS:
      // proto_bin.c complete_update_bin: a refused add exists, a refused replace is missing
      if (base === Opcode.ADD) status = Status.KEY_EEXISTS;
      else if (base === Opcode.REPLACE) status = Status.KEY_ENOENT;
      else status = Status.NOT_STORED;
      break;
    case EX:
      status = Status.KEY_EEXISTS;
      break;
    case NF:
      status = Status.KEY_ENOENT;
      break;
    default:
      return null;
  }
  return [bodyPacket(b, status, statusText(status))];
}

/** ma's answer: VA + the counter's digits (sent as 8 big-endian bytes), NF, NS, EX. */
function encodeArith(b: BinaryInfo, line: Buffer): Buffer[] | null {
  if (!meta.read(line)) return null;
  let status: Status;
  switch (meta.code) {
    case VA: {
      const digits: Buffer[] = [];
      if (!reader.take(meta.size, digits)) return null;
      const out = Buffer.allocUnsafe(HEADER_BYTES + 8);
      writeResponseHeader(out, 0, b.opcode, Status.SUCCESS, 0, 0, 8, b.opaque, null);
      if (!writeDecimalAsUint64(digits, out, HEADER_BYTES)) return null;
      if (meta.casStart >= 0 && !writeCas(line, meta.casStart, meta.casEnd, out, Offset.CAS)) return null;
      return [out];
    }
    case NF:
      status = Status.KEY_ENOENT;
      break;
    case NS:
      status = Status.NOT_STORED;
      break;
    case EX:
      status = Status.KEY_EEXISTS;
      break;
    default:
      return null;
  }
  return [bodyPacket(b, status, statusText(status))];
}

/** `STAT <name> <value>` lines until `END`: a packet per row and an empty one to end. */
function encodeStats(b: BinaryInfo, first: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let line: Buffer | null = first;
  while (line !== null && !isWord(line, 0, line.length, END)) {
    const n = line.length;
    if (startsWith(line, 0, n, STAT_)) {
      const ns = STAT_.length;
      const ne = tokenEnd(line, ns, n);
      out.push(statPacket(b, line.subarray(ns, ne), line.subarray(Math.min(ne + 1, n))));
    }
    line = reader.line();
  }
  out.push(bodyPacket(b, Status.SUCCESS, null));
  return out;
}
