/**
 * Password hashes for the config: scrypt, with the parameters in the string so
 * they can be raised later without breaking old hashes.
 *
 *   scrypt$<log2 N>$<r>$<p>$<salt, base64>$<derived key, base64>
 *
 * Verification is asynchronous (scrypt runs on the libuv thread pool, never on
 * the event loop) and compares with timingSafeEqual. An unknown user is checked
 * against a dummy hash of a configured credential's cost (DummyHashes).
 */
import { createHmac, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

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

export interface ScryptCost {
  readonly logN: number;
  readonly r: number;
  readonly p: number;
}

const DEFAULT_COST: ScryptCost = Object.freeze({ logN: DEFAULT_LOG_N, r: DEFAULT_R, p: DEFAULT_P });

/** A hash for the config; `cost` defaults to N = 2^15, r = 8, p = 1 (tests use cheaper ones). */
export async function hashPassword(password: string | Buffer, cost: ScryptCost = DEFAULT_COST): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const pw = typeof password === 'string' ? Buffer.from(password, 'utf8') : password;
  const key = await derive(pw, salt, cost.logN, cost.r, cost.p, KEY_BYTES);
  return [PREFIX, cost.logN, cost.r, cost.p, salt.toString('base64'), key.toString('base64')].join('$');
}

/** True when `password` matches `hash`. Constant-time comparison of the derived keys. */
export async function verifyPassword(hash: ParsedHash, password: Buffer): Promise<boolean> {
  const key = await derive(password, hash.salt, hash.logN, hash.r, hash.p, hash.key.length);
  return key.length === hash.key.length && timingSafeEqual(key, hash.key);
}

/**
 * Dummy hashes that make an unknown user cost what a known one costs.
 *
 * A credential's scrypt parameters set its cost (N = 2^10 takes a few ms,
 * 2^15 tens of ms), and they may differ between credentials. A single dummy
 * with fixed parameters would let a client tell unknown user names from known
 * ones by the time a failure takes. Instead there is one dummy per distinct
 * parameter set among the configured credentials (same N, r, p and key length,
 * a random salt and key), and an unknown user name is checked against the
 * dummy picked by a keyed hash (HMAC-SHA-256 under a random per-process key)
 * of the name. So:
 * - every unknown name costs exactly what some configured credential costs,
 *   the same way every time (a name cannot be tried twice to see it vary);
 * - which cost a name gets cannot be predicted without the key, so timing
 *   says nothing about whether the name exists;
 * - no check does more work than the most expensive credential (padding
 *   every check to the slowest would make cheap credentials pay for it).
 * With no credentials configured, the dummy uses the default parameters.
 */
/** One key per process, so a reload does not move a name to another cost. */
const DUMMY_PICK_KEY = randomBytes(32);

export class DummyHashes {
  private readonly dummies: readonly ParsedHash[];

  constructor(hashes: Iterable<ParsedHash>) {
    const byCost = new Map<string, ParsedHash>();
    for (const h of hashes) {
      const id = `${h.logN}/${h.r}/${h.p}/${h.key.length}`;
      if (!byCost.has(id)) byCost.set(id, dummyLike(h.logN, h.r, h.p, h.key.length));
    }
    // sorted, so the order the config lists credentials in does not matter
    const list = [...byCost.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map((e) => e[1]);
    this.dummies = list.length > 0 ? list : [dummyLike(DEFAULT_LOG_N, DEFAULT_R, DEFAULT_P, KEY_BYTES)];
  }

  /** The dummy an unknown user name is checked against. */
  for(user: Buffer): ParsedHash {
    const list = this.dummies;
    if (list.length === 1) return list[0] as ParsedHash;
    const pick = createHmac('sha256', DUMMY_PICK_KEY).update(user).digest().readUInt32BE(0) % list.length;
    return list[pick] as ParsedHash;
  }
}

function dummyLike(logN: number, r: number, p: number, keyBytes: number): ParsedHash {
  return Object.freeze({ logN, r, p, salt: randomBytes(SALT_BYTES), key: randomBytes(keyBytes) });
}

/** Spends the time of one verification against `dummy`, and always fails. */
export async function verifyDummy(dummy: ParsedHash, password: Buffer): Promise<false> {
  await verifyPassword(dummy, password);
  return false;
}
