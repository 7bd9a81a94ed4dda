/**
 * Byte-level base64 (RFC 4648 standard alphabet, padded) for meta `b` keys.
 *
 * Keys sent with the meta `b` flag are base64 on the wire. To namespace one,
 * memgate decodes it, prepends the namespace and encodes the result again; on
 * the way back it decodes the reply's key, checks and strips the namespace and
 * encodes the rest. These helpers work between Buffers at given offsets, so
 * the hot path never builds a string.
 *
 * Decoding is as strict as memcached 1.6's: the length must be a multiple of
 * 4 and `=` may only pad the last quantum (`mg Zm9vYmF b` and `mg Zm9vYmFy= b`
 * both get `CLIENT_ERROR error decoding key` from memcached).
 */

const EQ = 0x3d; // '='

const ALPHABET = Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/', 'latin1');

/** byte → 6-bit value, -1 for bytes outside the alphabet */
const DECODE: Int8Array = (() => {
  const t = new Int8Array(256).fill(-1);
  for (let i = 0; i < ALPHABET.length; i++) t[ALPHABET[i] ?? 0] = i;
  return t;
})();

function sextet(src: Buffer, i: number): number {
  return DECODE[src[i] ?? EQ] ?? -1;
}

/** Length of the padded base64 text for `n` bytes. */
export function base64EncodedLength(n: number): number {
  return Math.ceil(n / 3) * 4;
}

/**
 * Length of the bytes `src[start, end)` decodes to, or -1 when it is not
 * valid padded base64 (length not a multiple of 4, bad byte, misplaced `=`).
 * Every byte is checked, so a non-negative result means decoding succeeds.
 */
export function base64DecodedLength(src: Buffer, start: number, end: number): number {
  const n = end - start;
  if (n < 0 || (n & 3) !== 0) return -1;
  if (n === 0) return 0;
  let pad = 0;
  if (src[end - 1] === EQ) pad = src[end - 2] === EQ ? 2 : 1;
  const dataEnd = end - pad;
  for (let i = start; i < dataEnd; i++) {
    if ((DECODE[src[i] ?? EQ] ?? -1) < 0) return -1;
  }
  return (n >> 2) * 3 - pad;
}

/**
 * Encodes `src[start, end)` into `dst` at `at`, padded. `dst` must have room
 * for base64EncodedLength(end - start) bytes. Returns the offset after the text.
 */
export function encodeBase64Into(src: Buffer, start: number, end: number, dst: Buffer, at: number): number {
  let o = at;
  let i = start;
  const whole = end - ((end - start) % 3);
  for (; i < whole; i += 3) {
    const n = ((src[i] ?? 0) << 16) | ((src[i + 1] ?? 0) << 8) | (src[i + 2] ?? 0);
    dst[o++] = ALPHABET[(n >> 18) & 63] ?? EQ;
    dst[o++] = ALPHABET[(n >> 12) & 63] ?? EQ;
    dst[o++] = ALPHABET[(n >> 6) & 63] ?? EQ;
    dst[o++] = ALPHABET[n & 63] ?? EQ;
  }
  const rest = end - i;
  if (rest === 1) {
    const n = (src[i] ?? 0) << 16;
    dst[o++] = ALPHABET[(n >> 18) & 63] ?? EQ;
    dst[o++] = ALPHABET[(n >> 12) & 63] ?? EQ;
    dst[o++] = EQ;
    dst[o++] = EQ;
  } else if (rest === 2) {
    const n = ((src[i] ?? 0) << 16) | ((src[i + 1] ?? 0) << 8);
    dst[o++] = ALPHABET[(n >> 18) & 63] ?? EQ;
    dst[o++] = ALPHABET[(n >> 12) & 63] ?? EQ;
    dst[o++] = ALPHABET[(n >> 6) & 63] ?? EQ;
    dst[o++] = EQ;
  }
  return o;
}

/**
 * Decodes `src[start, end)` into `dst` at `at`. Returns the offset after the
 * decoded bytes, or -1 when the text is not valid padded base64 (then `dst`
 * may hold partial output). `dst` needs base64DecodedLength() bytes of room.
 */
export function decodeBase64Into(src: Buffer, start: number, end: number, dst: Buffer, at: number): number {
  const len = base64DecodedLength(src, start, end);
  if (len < 0) return -1;
  let o = at;
  const stop = at + len;
  for (let i = start; i < end; i += 4) {
    const n =
      (sextet(src, i) << 18) |
      (sextet(src, i + 1) << 12) |
      ((sextet(src, i + 2) & 63) << 6) |
      (sextet(src, i + 3) & 63);
    dst[o++] = (n >> 16) & 0xff;
    if (o < stop) dst[o++] = (n >> 8) & 0xff;
    if (o < stop) dst[o++] = n & 0xff;
  }
  return stop;
}

/** The first byte the valid, non-empty base64 text at `src[at]` decodes to (no allocation, no full decode). */
export function base64FirstByte(src: Buffer, at: number): number {
  return ((sextet(src, at) << 2) | ((sextet(src, at + 1) & 63) >> 4)) & 0xff;
}

/** Decodes `src[start, end)` into a new Buffer, or null when it is not valid base64. */
export function decodeBase64(src: Buffer, start: number, end: number): Buffer | null {
  const len = base64DecodedLength(src, start, end);
  if (len < 0) return null;
  const out = Buffer.allocUnsafe(len);
  decodeBase64Into(src, start, end, out, 0);
  return out;
}
