/**
 * Keyspace rules, over byte offsets only (keys are never turned into strings).
 *
 * namespace mode:  client key  "user:1"  →  upstream key  <prefix><generation>"user:1"
 *                  every key memcached takes (up to 250 bytes) is usable: one
 *                  too long for that maps to <prefix><generation> + a digest
 *                  (src/protocol/text/upstream-key.ts decides each key's form).
 * enforce mode:    the client key must already start with one of the tenant's
 *                  prefixes and passes unchanged.
 */
import { MAX_KEY_BYTES } from '../protocol/limits.js';
import { Replies } from '../protocol/text/replies.js';
import type { Request } from '../protocol/text/request.js';
import { upstreamKeyLength } from '../protocol/text/upstream-key.js';

/**
 * Checks every key of `req` under the namespace `ns` (upstreamKeyLength, the
 * length the encoder writes). Returns null when all fit (every key the parser
 * accepts does: a long one is digested), else memcached's reply for a key
 * that is too long.
 */
export function checkNamespacedKeys(req: Request, ns: Buffer): Buffer | null {
  const keys = req.keys;
  for (let i = 0; i < keys.length; i += 2) {
    if (upstreamKeyLength(req, i, ns) > MAX_KEY_BYTES) return Replies.BAD_FORMAT;
  }
  return null;
}

function startsWithAny(line: Buffer, start: number, end: number, prefixes: readonly Buffer[]): boolean {
  for (const p of prefixes) {
    const n = p.length;
    if (end - start >= n && line.compare(p, 0, n, start, start + n) === 0) return true;
  }
  return false;
}

/**
 * Enforce mode: every key must start with one of `prefixes`. Base64 keys
 * (meta `b`) cannot be checked without decoding them, and enforce mode is about
 * readable prefixes, so they are refused.
 */
export function checkEnforcedKeys(req: Request, prefixes: readonly Buffer[]): Buffer | null {
  if (req.metaBase64) return Replies.ACCESS_DENIED;
  const keys = req.keys;
  for (let i = 0; i < keys.length; i += 2) {
    if (!startsWithAny(req.line, keys[i] ?? 0, keys[i + 1] ?? 0, prefixes)) return Replies.ACCESS_DENIED;
  }
  return null;
}
