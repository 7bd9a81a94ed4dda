/**
 * Keyspace rules, over byte offsets only (keys are never turned into strings).
 *
 * namespace mode:  client key  "user:1"  →  upstream key  <prefix><generation>"user:1"
 *                  the usable key length is MAX_KEY_BYTES minus the namespace.
 * enforce mode:    the client key must already start with one of the tenant's
 *                  prefixes and passes unchanged.
 */
import { MAX_KEY_BYTES } from '../protocol/limits.js';
import { base64DecodedLength, base64EncodedLength } from '../protocol/text/base64.js';
import { Replies } from '../protocol/text/replies.js';
import type { Request } from '../protocol/text/request.js';

/**
 * Length of the key token memcached will see once the namespace is added.
 * memcached limits a base64 key (meta `b`) by its encoded token, so a binary
 * key is measured as base64(ns + decoded key).
 */
function upstreamKeyLength(req: Request, nsLength: number, start: number, end: number): number {
  if (!req.metaBase64) return nsLength + end - start;
  const decoded = base64DecodedLength(req.line, start, end);
  // the parser only lets valid base64 through; anything else can never fit
  return decoded < 0 ? Infinity : base64EncodedLength(nsLength + decoded);
}

/**
 * Checks every key of `req` against a namespace of `nsLength` bytes.
 * Returns null when all fit, else memcached's reply for a key that is too long.
 */
export function checkNamespacedKeys(req: Request, nsLength: number): Buffer | null {
  const keys = req.keys;
  for (let i = 0; i < keys.length; i += 2) {
    if (upstreamKeyLength(req, nsLength, keys[i] ?? 0, keys[i + 1] ?? 0) > MAX_KEY_BYTES) return Replies.BAD_FORMAT;
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
