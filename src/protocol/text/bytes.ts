/**
 * Byte constants and allocation-free checks over `buf[start, end)` for the
 * text protocol. Numbers are read with digit loops that reject anything but
 * plain decimal digits (no '+', no '0x', no '1e3', no spaces) and stop as
 * soon as the value passes its bound, so a long run of digits never loses
 * precision.
 */

export const LF = 0x0a; // \n
export const CR = 0x0d; // \r
export const SP = 0x20; // ' '
export const MINUS = 0x2d; // -
export const DIGIT_0 = 0x30; // 0
export const DIGIT_9 = 0x39; // 9
export const UPPER_A = 0x41; // A
export const UPPER_Z = 0x5a; // Z
export const LOWER_A = 0x61; // a
export const LOWER_Z = 0x7a; // z
export const TILDE = 0x7e; // ~
export const DEL = 0x7f; // DEL

/** Returned by the number parsers when the token is not a number in range. */
export const NO_NUMBER = Number.MIN_SAFE_INTEGER;

export const UINT32_MAX = 0xffff_ffff;
export const INT32_MAX = 0x7fff_ffff;
export const INT32_MIN = -0x8000_0000;

/**
 * Largest data length (`<bytes>` of storage commands, `<datalen>` of ms)
 * that can still be counted and swallowed: 2^31. Anything larger cannot be
 * read, so the stream cannot be resynchronised.
 */
export const MAX_DATA_LENGTH = 0x8000_0000;

/** "a unique 64-bit value" (protocol.txt, Storage commands): 2^64 - 1. */
const UINT64_MAX_DIGITS = Buffer.from('18446744073709551615', 'latin1');

/**
 * `buf[start, end)` as an unsigned decimal no larger than `max`
 * (`max` ≤ 2^52), or NO_NUMBER. At least one digit, digits only.
 */
export function parseUnsigned(buf: Buffer, start: number, end: number, max: number): number {
  if (start >= end) return NO_NUMBER;
  let v = 0;
  for (let i = start; i < end; i++) {
    const d = (buf[i] ?? 0) - DIGIT_0;
    if (d < 0 || d > 9) return NO_NUMBER;
    v = v * 10 + d;
    if (v > max) return NO_NUMBER;
  }
  return v;
}

/**
 * `buf[start, end)` as a decimal with an optional leading '-', within
 * [min, max] (both within ±2^52), or NO_NUMBER.
 */
export function parseSigned(buf: Buffer, start: number, end: number, min: number, max: number): number {
  if (start < end && buf[start] === MINUS) {
    const v = parseUnsigned(buf, start + 1, end, -min);
    // `0 - v` keeps "-0" a plain 0.
    return v === NO_NUMBER ? NO_NUMBER : 0 - v;
  }
  return parseUnsigned(buf, start, end, max);
}

const TWO_32 = 0x1_0000_0000;
/** 2^63 - 1 and 2^63: the largest magnitudes strtol takes on a 64-bit system. */
const INT64_MAX_DIGITS = Buffer.from('9223372036854775807', 'latin1');
const INT64_MIN_DIGITS = Buffer.from('9223372036854775808', 'latin1');

/**
 * Digits `buf[start, end)` (leading zeros allowed) as a number no larger than
 * `limit` (the digits of 2^63-1, 2^63 or 2^64-1), reduced mod 2^32; or
 * NO_NUMBER when there is no digit, a non-digit, or the value is past `limit`.
 */
function digitsMod32(buf: Buffer, start: number, end: number, limit: Buffer): number {
  if (start >= end) return NO_NUMBER;
  let lo = 0;
  let first = end; // the first significant digit
  for (let i = start; i < end; i++) {
    const d = (buf[i] ?? 0) - DIGIT_0;
    if (d < 0 || d > 9) return NO_NUMBER;
    if (first === end && d !== 0) first = i;
    lo = (lo * 10 + d) % TWO_32; // < 2^36 before the reduction: exact
  }
  const n = end - first;
  if (n > limit.length) return NO_NUMBER;
  if (n === limit.length) {
    for (let i = 0; i < n; i++) {
      const diff = (buf[first + i] ?? 0) - (limit[i] ?? 0);
      if (diff !== 0) return diff < 0 ? lo : NO_NUMBER;
    }
  }
  return lo;
}

/**
 * A text exptime or flush_all delay as memcached reads it (util.c safe_strtol
 * on a 64-bit system: strtol to a 64-bit long, then kept as an int32): an
 * optional '-', digits within ±2^63, the result wrapped to int32 (so
 * 4294967295 is -1, which memcached takes as "expired"). NO_NUMBER otherwise.
 * NOTE: memcached's strtol also takes a leading '+' or spaces; memgate reads
 * plain digits only.
 */
export function parseExptime(buf: Buffer, start: number, end: number): number {
  const negative = start < end && buf[start] === MINUS;
  const lo = digitsMod32(buf, negative ? start + 1 : start, end, negative ? INT64_MIN_DIGITS : INT64_MAX_DIGITS);
  if (lo === NO_NUMBER) return NO_NUMBER;
  const v = negative ? (TWO_32 - lo) % TWO_32 : lo;
  return v > INT32_MAX ? v - TWO_32 : v;
}

/** memcached's REALTIME_MAXDELTA: an exptime or delay past 30 days is an absolute Unix time. */
export const MAX_RELATIVE_EXPTIME_S = 30 * 24 * 3600;

/**
 * Seconds from now until an exptime or flush_all delay comes, as memcached's
 * realtime() reads it: 0 or less is now, up to 30 days is relative, beyond
 * that an absolute Unix time (now if it has passed).
 */
export function secondsUntil(exptime: number, nowUnixMs: number): number {
  if (exptime <= 0) return 0;
  if (exptime <= MAX_RELATIVE_EXPTIME_S) return exptime;
  return Math.max(0, exptime - Math.floor(nowUnixMs / 1000));
}

/**
 * Text client flags or a verbosity level as memcached reads them (util.c
 * safe_strtoul on a 64-bit system): digits within 2^64-1, kept as a uint32
 * (so 4294967296 is 0). NO_NUMBER otherwise.
 */
export function parseFlags(buf: Buffer, start: number, end: number): number {
  return digitsMod32(buf, start, end, UINT64_MAX_DIGITS);
}

/** exptime and meta T/N tokens: an optional '-', then digits, within int32. */
export function parseInt32(buf: Buffer, start: number, end: number): number {
  return parseSigned(buf, start, end, INT32_MIN, INT32_MAX);
}

/**
 * True when `buf[start, end)` is an unsigned 64-bit decimal: 1 to 20
 * digits, and at 20 digits no more than 18446744073709551615. The digits are
 * compared as bytes, so the value never goes through a float.
 */
export function isUint64(buf: Buffer, start: number, end: number): boolean {
  const n = end - start;
  if (n < 1 || n > UINT64_MAX_DIGITS.length) return false;
  for (let i = start; i < end; i++) {
    const c = buf[i] ?? 0;
    if (c < DIGIT_0 || c > DIGIT_9) return false;
  }
  if (n < UINT64_MAX_DIGITS.length) return true;
  for (let i = 0; i < n; i++) {
    const d = (buf[start + i] ?? 0) - (UINT64_MAX_DIGITS[i] ?? 0);
    if (d !== 0) return d < 0;
  }
  return true;
}

/**
 * True when `buf[start, end)` equals `literal` byte for byte. NOTE: a byte
 * loop, because Buffer#compare's native call costs more than comparing the
 * few bytes of a token.
 */
export function isToken(buf: Buffer, start: number, end: number, literal: Buffer): boolean {
  return equalBytes(buf, start, end, literal, 0, literal.length);
}

/** True when `a[as, ae)` and `b[bs, be)` hold the same bytes (a byte loop, as isToken). */
export function equalBytes(a: Buffer, as: number, ae: number, b: Buffer, bs: number, be: number): boolean {
  const n = ae - as;
  if (n !== be - bs) return false;
  for (let j = 0; j < n; j++) if (a[as + j] !== b[bs + j]) return false;
  return true;
}

/**
 * A key (protocol.txt, Keys): 1..maxBytes bytes, "must not include control
 * characters or whitespace": no byte ≤ 0x20 and no DEL. Bytes ≥ 0x80 pass,
 * as they do in memcached (UTF-8 keys).
 */
export function isKey(buf: Buffer, start: number, end: number, maxBytes: number): boolean {
  const n = end - start;
  if (n < 1 || n > maxBytes) return false;
  return hasNoControlBytes(buf, start, end);
}

/** No byte ≤ 0x20 and no DEL in `buf[start, end)`. */
export function hasNoControlBytes(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = buf[i] ?? 0;
    if (c <= SP || c === DEL) return false;
  }
  return true;
}

/** Every byte of `buf[start, end)` is printable ASCII (0x21..0x7e). */
export function isPrintable(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = buf[i] ?? 0;
    if (c <= SP || c > TILDE) return false;
  }
  return true;
}

/** Ranges up to this long are copied by copyBytes' own loop; longer ones by Buffer#copy. */
const LOOP_COPY_MAX = 24;

/**
 * Copies `src[start, end)` to `dst` at `at`; returns the offset after it.
 * Keys, flags and numbers are a few dozen bytes at most, and for those a
 * plain loop costs a fraction of Buffer#copy, which crosses into C++ on
 * every call (measured on Node 20: ~5–30 ns against ~45 ns).
 */
export function copyBytes(src: Buffer, start: number, end: number, dst: Buffer, at: number): number {
  if (end - start > LOOP_COPY_MAX) return at + src.copy(dst, at, start, end);
  let o = at;
  for (let i = start; i < end; i++) dst[o++] = src[i] ?? 0;
  return o;
}

/** Total bytes of a list of slices (a reply's or a value's parts). */
export function partsBytes(parts: readonly Buffer[]): number {
  let n = 0;
  for (let i = 0; i < parts.length; i++) n += parts[i]?.length ?? 0;
  return n;
}
