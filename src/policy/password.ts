/**
 * Password hashes for the config: scrypt, with the parameters in the string so
 * they can be raised later without breaking old hashes.
 *
 *   scrypt$<log2 N>$<r>$<p>$<salt, base64>$<derived key, base64>
 *
 * Verification is asynchronous (scrypt runs on the libuv thread pool, never on
 * the event loop) and compares with timingSafeEqual. An unknown user is checked
 * against a dummy hash so that it takes as long as a known one.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const PREFIX = 'scrypt';
/** N = 2^15, r = 8, p = 1: about 32 MiB and tens of milliseconds per check. */
const DEFAULT_LOG_N = 15;
const DEFAULT_R = 8;
const DEFAULT_P = 1;
const SALT_BYTES = 16;
const KEY_BYTES = 32;
const MAX_LOG_N = 20;

export interface ParsedHash {
  readonly logN: number;
  readonly r: number;
  readonly p: number;
  readonly salt: Buffer;
  readonly key: Buffer;
}

function derive(password: Buffer, salt: Buffer, logN: number, r: number, p: number, keyLen: number): Promise<Buffer> {
  const N = 2 ** logN;
  const opts: ScryptOptions = { N, r, p, maxmem: 128 * N * r * p + 16 * 1024 * 1024 };
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keyLen, opts, (err, key) => (err === null ? resolve(key) : reject(err)));
  });
}

/** Parses a hash string; returns a message naming the problem instead of throwing. */
export function parsePasswordHash(text: string): ParsedHash | string {
  const parts = text.split('$');
  if (parts.length !== 6 || parts[0] !== PREFIX) {
    return 'must be a hash from `memgate hash-password` (scrypt$<logN>$<r>$<p>$<salt>$<key>), never a plain password';
  }
  const [, logNText, rText, pText, saltText, keyText] = parts as [string, string, string, string, string, string];
  const logN = Number(logNText);
  const r = Number(rText);
  const p = Number(pText);
  if (!Number.isInteger(logN) || logN < 10 || logN > MAX_LOG_N) return `scrypt log2(N) must be 10..${MAX_LOG_N}`;
  if (!Number.isInteger(r) || r < 1 || r > 32) return 'scrypt r must be 1..32';
  if (!Number.isInteger(p) || p < 1 || p > 16) return 'scrypt p must be 1..16';
  const salt = Buffer.from(saltText, 'base64');
  const key = Buffer.from(keyText, 'base64');
  if (salt.length < 8) return 'scrypt salt is too short';
  if (key.length < 16) return 'scrypt key is too short';
  return { logN, r, p, salt, key };
}

export async function hashPassword(password: string | Buffer): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const pw = typeof password === 'string' ? Buffer.from(password, 'utf8') : password;
  const key = await derive(pw, salt, DEFAULT_LOG_N, DEFAULT_R, DEFAULT_P, KEY_BYTES);
  return [PREFIX, DEFAULT_LOG_N, DEFAULT_R, DEFAULT_P, salt.toString('base64'), key.toString('base64')].join('$');
}

/** True when `password` matches `hash`. Constant-time comparison of the derived keys. */
export async function verifyPassword(hash: ParsedHash, password: Buffer): Promise<boolean> {
  const key = await derive(password, hash.salt, hash.logN, hash.r, hash.p, hash.key.length);
  return key.length === hash.key.length && timingSafeEqual(key, hash.key);
}

let dummy: ParsedHash | null = null;

/** Spends the time of one verification with the default parameters, and always fails. */
export async function verifyDummy(password: Buffer): Promise<false> {
  if (dummy === null) {
    dummy = {
      logN: DEFAULT_LOG_N,
      r: DEFAULT_R,
      p: DEFAULT_P,
      salt: randomBytes(SALT_BYTES),
      key: randomBytes(KEY_BYTES),
    };
  }
  await verifyPassword(dummy, password);
  return false;
}
