/**
 * Generations: the random token between a tenant's prefix and its keys.
 *
 *   upstream key = <tenant prefix><generation><client key>
 *                   "q7Zk2:"       "T3m9QxA0"  "user:1"
 *
 * A tenant's flush_all replaces its generation, so every old key becomes
 * unreachable at once and the items age out by LRU.
 *
 * The token is FIXED-WIDTH on purpose. With a variable-width counter,
 * generation "1" + key "0x" and generation "10" + key "x" are the same upstream
 * key, and a flush would not hide the old item. With a fixed width the
 * generation always ends at the same offset, so two different generations can
 * never produce the same upstream key.
 *
 * It is RANDOM on purpose: a lost state file must never bring back an old
 * generation, and a fresh random token cannot (62^8 ≈ 2.2e14 values).
 */
import { randomBytes } from 'node:crypto';

/** Width of every generation, in bytes (= characters: the alphabet is ASCII). */
export const GENERATION_BYTES = 8;

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/**
 * Bytes at or above this would favour the first symbols under `% 62`
 * (256 = 4 × 62 + 8: bytes 248..255 would map to '0'..'7' a fifth time),
 * so they are thrown away and drawn again (rejection sampling).
 */
const ACCEPT_BELOW = 256 - (256 % ALPHABET.length); // 248

const GENERATION_RE = new RegExp(`^[0-9A-Za-z]{${GENERATION_BYTES}}$`);

/**
 * A fresh random generation: GENERATION_BYTES characters from [0-9A-Za-z].
 * `random` is for tests that need to feed chosen bytes; it defaults to crypto.randomBytes.
 */
export function newGeneration(random: (size: number) => Buffer = randomBytes): string {
  let out = '';
  while (out.length < GENERATION_BYTES) {
    // 8 of 256 byte values are rejected, so twice the width almost always finishes in one draw.
    const bytes = random(GENERATION_BYTES * 2);
    for (const b of bytes) {
      if (b >= ACCEPT_BELOW) continue;
      out += ALPHABET.charAt(b % ALPHABET.length);
      if (out.length === GENERATION_BYTES) break;
    }
  }
  return out;
}

/** True when `s` has the shape of a generation (exact width, alphabet [0-9A-Za-z]). */
export function isGeneration(s: unknown): s is string {
  return typeof s === 'string' && GENERATION_RE.test(s);
}
