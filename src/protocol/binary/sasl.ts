/**
 * SASL over memcached's binary protocol (SASL_LIST_MECHS 0x20, SASL_AUTH
 * 0x21, SASL_STEP 0x22). memgate offers one mechanism, PLAIN (RFC 4616):
 * the client's first SASL_AUTH carries the whole credential, so no step
 * follows and AUTH_CONTINUE is never sent.
 *
 *   SASL_AUTH  key = "PLAIN"   value = [authzid] NUL authcid NUL passwd
 *
 * The binary parser hands the mechanism as the request's only key range and
 * the credential as its value slices; the session checks the credential the
 * way it checks ASCII auth. Protocol code only takes the bytes apart.
 */

/** The mechanisms memgate offers, as SASL_LIST_MECHS answers them (space separated). */
export const SASL_MECHANISMS = 'PLAIN';
export const SASL_MECHANISMS_BYTES: Buffer = Buffer.from(SASL_MECHANISMS, 'latin1');

const PLAIN = Buffer.from('PLAIN', 'latin1');

/** RFC 4616: authzid, authcid and passwd are each at most 255 octets. */
export const SASL_PLAIN_FIELD_MAX_BYTES = 255;
/** The longest PLAIN message: three fields and two NUL separators. */
export const SASL_PLAIN_MAX_BYTES = 3 * SASL_PLAIN_FIELD_MAX_BYTES + 2;
/**
 * Largest SASL_AUTH / SASL_STEP value the binary parser keeps; larger ones are
 * swallowed unread and refused, so an unauthenticated client cannot make
 * memgate buffer more than this.
 */
export const SASL_MAX_DATA_BYTES = 1024;
/** Longest mechanism name SASL allows (RFC 4422: 1..20 characters). */
export const SASL_MAX_MECHANISM_BYTES = 20;
/**
 * Largest packet body an unauthenticated binary connection may send: a
 * SASL_AUTH / SASL_STEP (mechanism as key, data as value). Larger ones end the
 * connection before their body is read.
 */
export const SASL_MAX_BODY_BYTES = SASL_MAX_MECHANISM_BYTES + SASL_MAX_DATA_BYTES;

const NUL = 0x00;

export interface SaslPlainCredential {
  /** identity to act as; empty when the client sent none */
  authzid: Buffer;
  /** authentication identity: the user name */
  user: Buffer;
  password: Buffer;
}

/** True when `line[start, end)` names the PLAIN mechanism (case-sensitive, as SASL names are). */
export function isPlainMechanism(line: Buffer, start: number, end: number): boolean {
  if (end - start !== PLAIN.length) return false;
  for (let i = 0; i < PLAIN.length; i++) if (line[start + i] !== PLAIN[i]) return false;
  return true;
}

/**
 * Takes a PLAIN message apart: `[authzid] NUL authcid NUL passwd`. Null when
 * it is longer than SASL_PLAIN_MAX_BYTES, does not hold exactly two NULs, or
 * a field is out of RFC 4616's bounds (authcid and passwd 1..255 octets,
 * authzid 0..255). The fields are slices of `data` (or of one copy when the
 * message came as several slices).
 */
export function parseSaslPlain(data: Buffer | readonly Buffer[] | null): SaslPlainCredential | null {
  const buf = joined(data);
  if (buf === null) return null;
  const n = buf.length;
  const first = buf.indexOf(NUL);
  if (first < 0) return null;
  const second = buf.indexOf(NUL, first + 1);
  if (second < 0 || buf.indexOf(NUL, second + 1) >= 0) return null;
  const userLength = second - first - 1;
  const passwordLength = n - second - 1;
  if (first > SASL_PLAIN_FIELD_MAX_BYTES) return null;
  if (userLength < 1 || userLength > SASL_PLAIN_FIELD_MAX_BYTES) return null;
  if (passwordLength < 1 || passwordLength > SASL_PLAIN_FIELD_MAX_BYTES) return null;
  return {
    authzid: buf.subarray(0, first),
    user: buf.subarray(first + 1, second),
    password: buf.subarray(second + 1),
  };
}

/** The message as one Buffer, or null when absent or longer than a PLAIN message can be. */
function joined(data: Buffer | readonly Buffer[] | null): Buffer | null {
  if (data === null) return null;
  if (Buffer.isBuffer(data)) return data.length <= SASL_PLAIN_MAX_BYTES ? data : null;
  const slices = data as readonly Buffer[];
  let total = 0;
  for (const s of slices) total += s.length;
  if (total > SASL_PLAIN_MAX_BYTES) return null;
  if (slices.length === 1) return slices[0] ?? null;
  return Buffer.concat(slices as Buffer[], total);
}
