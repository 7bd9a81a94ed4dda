/**
 * Request → the canonical bytes memgate sends to memcached.
 *
 * The client's raw line is never forwarded: every command line is rebuilt from
 * the parsed Request, so nothing the parser did not understand reaches the
 * shared server, and the namespace is prepended to every key on the way.
 *
 *   client:   "set  foo 1 0 5 noreply\r\n" "hello" "\r\n"
 *   upstream: "set <ns>foo 1 0 5\r\n"      "hello" "\r\n"
 *              └─ one Buffer.allocUnsafe ─┘ └ slices as-is ┘ └ shared CRLF
 *
 * Classic `noreply` and meta `q` are never sent: memgate reads every reply
 * and hides the ones the client asked not to see.
 */
import { MAX_KEY_BYTES, MAX_UPSTREAM_LINE_BYTES } from '../limits.js';
import { copyBytes, partsBytes } from './bytes.js';
import { Cmd, Syntax, commandSpec, type CommandSpec } from './commands.js';
import { CRLF, Replies } from './replies.js';
import type { Request } from './request.js';
import { upstreamKeyLength, upstreamKeyPlan, writeUpstreamKey } from './upstream-key.js';

const SP = 0x20; // ' '
const CR = 0x0d; // \r
const LF = 0x0a; // \n
const MINUS = 0x2d; // '-'
const ZERO = 0x30; // '0'
const LOWER_B = 0x62; // 'b'

/** Number of decimal digits of a non-negative integer (up to 2^53). */
export function digitCount(n: number): number {
  let d = 1;
  let v = n;
  while (v >= 10) {
    v = Math.floor(v / 10);
    d++;
  }
  return d;
}

/** Length of `n` written in decimal, sign included. */
export function intLength(n: number): number {
  return n < 0 ? 1 + digitCount(-n) : digitCount(n);
}

/** Writes the integer `n` in decimal at `at`; returns the offset after it. */
export function writeInt(dst: Buffer, at: number, n: number): number {
  let o = at;
  let v = n;
  if (v < 0) {
    dst[o++] = MINUS;
    v = -v;
  }
  const end = o + digitCount(v);
  for (let i = end - 1; i >= o; i--) {
    const q = Math.floor(v / 10);
    dst[i] = ZERO + (v - q * 10);
    v = q;
  }
  return end;
}

/**
 * The reply for a key memcached would refuse, or null. memcached checks the
 * key token as sent (base64 text included) against 250 bytes, and for set/ms
 * it then reads the data block as commands: forwarding such a key would make
 * its extra `ERROR` desynchronise the shared connection.
 */
function keyRefusal(upstreamLength: number): Buffer | null {
  if (upstreamLength < 0) return Replies.KEY_ENCODING;
  return upstreamLength > MAX_KEY_BYTES ? Replies.BAD_FORMAT : null;
}

/**
 * A meta flag token that is dropped upstream: the `b` of a base64 key that
 * goes to memcached plain (upstream-key.ts: a text-safe key too long for base64).
 */
function isDroppedFlag(req: Request, plainKey: boolean, fs: number, fe: number): boolean {
  return plainKey && req.metaBase64 && fe - fs === 1 && req.line[fs] === LOWER_B;
}

function writeName(spec: CommandSpec, dst: Buffer): number {
  const name = spec.nameBytes;
  return copyBytes(name, 0, name.length, dst, 0);
}

function writeRange(req: Request, start: number, end: number, dst: Buffer, at: number): number {
  return copyBytes(req.line, start, end, dst, at);
}

function endLine(dst: Buffer, at: number): number {
  dst[at] = CR;
  dst[at + 1] = LF;
  return at + 2;
}

/** Sum of the value slices; -1 when they do not add up to `req.bytes`. */
function checkValue(req: Request): number {
  const total = req.value === null ? 0 : partsBytes(req.value);
  return total === req.bytes ? total : -1;
}

function pushValue(req: Request, out: Buffer[]): void {
  const v = req.value;
  if (v !== null) {
    for (let i = 0; i < v.length; i++) {
      const slice = v[i];
      if (slice !== undefined && slice.length > 0) out.push(slice);
    }
  }
  out.push(CRLF);
}

const MG_ = Buffer.from('mg ', 'latin1');
/** flags of the mg a one-key get is sent as: value, client flags, key (checked against the request's) */
const MG_GET_FLAGS = Buffer.from(' v f k\r\n', 'latin1');
/** ... and of a one-key gets: the cas unique too */
const MG_GETS_FLAGS = Buffer.from(' v f c k\r\n', 'latin1');

/**
 * A one-key `get|gets <key>` as `mg <key> v f [c] k`. memcached 1.6 ends the
 * batch of a classic get with a write of its own (one send per request), but
 * answers a pipeline of mg with one write per batch; the response parser
 * turns `VA`/`EN` back into `VALUE … END` / `END` (request.upstreamMeta).
 */
function encodeGetAsMeta(req: Request, withCas: boolean, out: Buffer[]): Buffer | null {
  const k = upstreamKeyLength(req, 0);
  const refused = keyRefusal(k);
  if (refused !== null) return refused;
  const flags = withCas ? MG_GETS_FLAGS : MG_GET_FLAGS;
  const dst = Buffer.allocUnsafe(MG_.length + k + flags.length);
  let o = copyBytes(MG_, 0, MG_.length, dst, 0);
  o = writeUpstreamKey(req, 0, dst, o);
  copyBytes(flags, 0, flags.length, dst, o);
  out.push(dst);
  req.upstreamMeta = true;
  return null;
}

/** `get|gets <keys>` and `gat|gats <exptime> <keys>` */
function encodeRetrieve(req: Request, spec: CommandSpec, withExptime: boolean, out: Buffer[]): Buffer | null {
  const keys = req.keys;
  let len = spec.nameBytes.length + 2;
  if (withExptime) len += 1 + intLength(req.exptime);
  for (let i = 0; i < keys.length; i += 2) {
    const k = upstreamKeyLength(req, i);
    const refused = keyRefusal(k);
    if (refused !== null) return refused;
    len += 1 + k;
  }
  // a multi-key gat is sent one key at a time (src/server/multiget.ts); this only guards the shared socket
  if (withExptime && len > MAX_UPSTREAM_LINE_BYTES) return Replies.LINE_TOO_LONG;
  const dst = Buffer.allocUnsafe(len);
  let o = writeName(spec, dst);
  if (withExptime) {
    dst[o++] = SP;
    o = writeInt(dst, o, req.exptime);
  }
  for (let i = 0; i < keys.length; i += 2) {
    dst[o++] = SP;
    o = writeUpstreamKey(req, i, dst, o);
  }
  endLine(dst, o);
  out.push(dst);
  return null;
}

/** `set|add|replace|append|prepend <key> <flags> <exptime> <bytes>` and `cas ... <cas unique>` + data */
function encodeStore(req: Request, spec: CommandSpec, withCas: boolean, out: Buffer[]): Buffer | null {
  if (checkValue(req) < 0) return Replies.BAD_DATA_CHUNK;
  const k = upstreamKeyLength(req, 0);
  const refused = keyRefusal(k);
  if (refused !== null) return refused;
  let len = spec.nameBytes.length + 1 + k + 1 + digitCount(req.flags) + 1 + intLength(req.exptime);
  len += 1 + digitCount(req.bytes) + 2;
  if (withCas) len += 1 + req.numEnd - req.numStart;
  const dst = Buffer.allocUnsafe(len);
  let o = writeName(spec, dst);
  dst[o++] = SP;
  o = writeUpstreamKey(req, 0, dst, o);
  dst[o++] = SP;
  o = writeInt(dst, o, req.flags);
  dst[o++] = SP;
  o = writeInt(dst, o, req.exptime);
  dst[o++] = SP;
  o = writeInt(dst, o, req.bytes);
  if (withCas) {
    dst[o++] = SP;
    o = writeRange(req, req.numStart, req.numEnd, dst, o);
  }
  endLine(dst, o);
  out.push(dst);
  pushValue(req, out);
  return null;
}

/** Commands of one key and optional trailing parts: delete, incr/decr, touch. */
function encodeKeyCommand(req: Request, spec: CommandSpec, syntax: Syntax, out: Buffer[]): Buffer | null {
  const k = upstreamKeyLength(req, 0);
  const refused = keyRefusal(k);
  if (refused !== null) return refused;
  let len = spec.nameBytes.length + 1 + k + 2;
  if (syntax === Syntax.ARITH) len += 1 + req.numEnd - req.numStart;
  else if (syntax === Syntax.TOUCH) len += 1 + intLength(req.exptime);
  const dst = Buffer.allocUnsafe(len);
  let o = writeName(spec, dst);
  dst[o++] = SP;
  o = writeUpstreamKey(req, 0, dst, o);
  if (syntax === Syntax.ARITH) {
    dst[o++] = SP;
    o = writeRange(req, req.numStart, req.numEnd, dst, o);
  } else if (syntax === Syntax.TOUCH) {
    dst[o++] = SP;
    o = writeInt(dst, o, req.exptime);
  }
  endLine(dst, o);
  out.push(dst);
  return null;
}

/** `mg|md|ma <key> <flags>*`, `ms <key> <bytes> <flags>*` + data, `me <key> [b]` */
function encodeMeta(req: Request, spec: CommandSpec, syntax: Syntax, out: Buffer[]): Buffer | null {
  const withValue = syntax === Syntax.META_SET;
  if (withValue && checkValue(req) < 0) return Replies.BAD_DATA_CHUNK;
  const plan = upstreamKeyPlan(req, 0);
  const k = plan.tokenLength;
  const refused = keyRefusal(k);
  if (refused !== null) return refused;
  const plainKey = !plan.base64;
  const flags = req.metaFlags;
  const isDebug = syntax === Syntax.META_DEBUG;
  let len = spec.nameBytes.length + 1 + k + 2;
  if (withValue) len += 1 + digitCount(req.bytes);
  if (isDebug) {
    if (!plainKey) len += 2;
  } else {
    for (let i = 0; i < flags.length; i += 2) {
      const fs = flags[i] ?? 0;
      const fe = flags[i + 1] ?? 0;
      if (!isDroppedFlag(req, plainKey, fs, fe)) len += 1 + fe - fs;
    }
  }
  const dst = Buffer.allocUnsafe(len);
  let o = writeName(spec, dst);
  dst[o++] = SP;
  o = writeUpstreamKey(req, 0, dst, o);
  if (withValue) {
    dst[o++] = SP;
    o = writeInt(dst, o, req.bytes);
  }
  if (isDebug) {
    if (!plainKey) {
      dst[o++] = SP;
      dst[o++] = LOWER_B;
    }
  } else {
    for (let i = 0; i < flags.length; i += 2) {
      const fs = flags[i] ?? 0;
      const fe = flags[i + 1] ?? 0;
      if (isDroppedFlag(req, plainKey, fs, fe)) continue;
      dst[o++] = SP;
      o = writeRange(req, fs, fe, dst, o);
    }
  }
  endLine(dst, o);
  out.push(dst);
  if (withValue) pushValue(req, out);
  return null;
}

const VERBOSITY_ZERO = Buffer.from('verbosity 0\r\n', 'latin1');

/** Keyless commands: flush_all [delay], verbosity <level>, version, mn, stats [args], admin families. */
function encodeKeyless(req: Request, spec: CommandSpec, syntax: Syntax, out: Buffer[]): Buffer | null {
  let len = spec.nameBytes.length + 2;
  let argStart = 0;
  let argEnd = 0;
  if (syntax === Syntax.VERBOSITY) {
    if (req.numEnd <= req.numStart) {
      out.push(VERBOSITY_ZERO); // a level that is not digits is level 0 to memcached
      return null;
    }
    argStart = req.numStart;
    argEnd = req.numEnd;
  } else if (syntax === Syntax.STATS || syntax === Syntax.ADMIN_LINE) {
    // the raw argument range, without the spaces around it
    const line = req.line;
    argStart = req.argsStart;
    argEnd = req.argsEnd;
    while (argStart < argEnd && line[argStart] === SP) argStart++;
    while (argEnd > argStart && line[argEnd - 1] === SP) argEnd--;
  }
  const hasDelay = syntax === Syntax.FLUSH && req.delay >= 0;
  if (hasDelay) len += 1 + intLength(req.delay);
  if (argEnd > argStart) len += 1 + argEnd - argStart;
  if (len > MAX_UPSTREAM_LINE_BYTES) return Replies.LINE_TOO_LONG;
  const dst = Buffer.allocUnsafe(len);
  let o = writeName(spec, dst);
  if (hasDelay) {
    dst[o++] = SP;
    o = writeInt(dst, o, req.delay);
  }
  if (argEnd > argStart) {
    dst[o++] = SP;
    o = writeRange(req, argStart, argEnd, dst, o);
  }
  endLine(dst, o);
  out.push(dst);
  return null;
}

/**
 * Pushes the canonical upstream form of `req` onto `out`: one new Buffer per
 * command line, value slices as they are (never copied). With `metaGets` (the
 * server speaks meta commands), a one-key get or gets goes as `mg`.
 *
 * Returns null when `req` was encoded, otherwise the reply to answer it with
 * instead (nothing is pushed), for requests that would desynchronise or
 * escape the shared connection:
 * - `CLIENT_ERROR error decoding key`: a base64 key that does not decode while
 *   a namespace must be added;
 * - `CLIENT_ERROR bad command line format`: a key longer than 250 bytes as
 *   sent (memcached does not swallow the data block of such a set or ms);
 * - `CLIENT_ERROR bad data chunk`: value slices that do not add up to `bytes`
 *   (memcached would read the rest of the stream as data);
 * - `CLIENT_ERROR line too long`: a line other than get/gets longer than
 *   MAX_UPSTREAM_LINE_BYTES (memcached would close the shared connection).
 */
export function encodeRequest(req: Request, out: Buffer[], metaGets = false): Buffer | null {
  const spec = commandSpec(req.cmd);
  const syntax = spec.syntax;
  switch (syntax) {
    case Syntax.RETRIEVE:
      if (metaGets && req.keys.length === 2) {
        return encodeGetAsMeta(req, req.cmd === Cmd.GETS, out);
      }
      return encodeRetrieve(req, spec, false, out);
    case Syntax.GAT:
      return encodeRetrieve(req, spec, true, out);
    case Syntax.STORE:
      return encodeStore(req, spec, false, out);
    case Syntax.CAS:
      return encodeStore(req, spec, true, out);
    case Syntax.DELETE:
    case Syntax.ARITH:
    case Syntax.TOUCH:
      return encodeKeyCommand(req, spec, syntax, out);
    case Syntax.META_GET:
    case Syntax.META_SET:
    case Syntax.META_DELETE:
    case Syntax.META_ARITH:
    case Syntax.META_DEBUG:
      return encodeMeta(req, spec, syntax, out);
    default:
      return encodeKeyless(req, spec, syntax, out);
  }
}
