/**
 * The one place that decides a request key's upstream bytes: what memcached
 * stores for a client key, how long its token is and how it is encoded. The
 * encoder writes it, policy checks it, the response parser compares reply
 * keys with it, and key → server hashing must use the same bytes.
 *
 *   no namespace (admin, enforce):  the key token as sent
 *   namespace N, client key K (decoded bytes when sent with meta `b`):
 *     direct      N K              when it fits (below)
 *     digested    N 0xFF D         D = base64url(HMAC-SHA256(key N, K)): 43 bytes
 *
 * Direct when K's first byte is not 0xFF and
 *   K is text-safe (no byte ≤ 0x20, no DEL: the text protocol can carry it)  |N| + |K| ≤ 250
 *   K is not (only base64 can carry it)                                      base64(N K) ≤ 250 bytes
 * The rule reads only K's bytes, never how K was sent, so `set K …` and
 * `ms <base64 K> b` name the same item, as they do in memcached itself.
 *
 * Why a digested key never equals a direct one: both begin with N, and the
 * byte after N is K[0] for a direct key and 0xFF for a digested one; a K that
 * begins with 0xFF is digested whatever its length, so no direct key has 0xFF
 * there. 0xFF never occurs in UTF-8, so a UTF-8 key that fits never pays for a digest.
 * Two digested keys are equal only if HMAC-SHA256 collides; its key N holds
 * the tenant's secret prefix (and generation), so a tenant cannot even compute
 * its own digests, let alone search for collisions. N 0xFF D is at most
 * 72 + 44 bytes (MAX_PREFIX_BYTES + generation), so it fits plain or base64.
 *
 * Encoding: the upstream token is sent as the client sent its key (plain, or
 * base64 with `b`), so memcached marks the item binary exactly when it would
 * for a direct client — its `k`/`ME` echo depends on that mark. The one
 * exception: a text-safe K sent in base64 whose `base64(N K)` would pass 250
 * bytes goes plain (and its item is not marked binary; isEchoedInBase64).
 *
 * Client keys are echoed from the request (writeClientKey), never from the
 * reply: a digested upstream key no longer contains the client's key.
 */
import { createHmac } from 'node:crypto';
import { MAX_KEY_BYTES } from '../limits.js';
import {
  base64DecodedLength,
  base64EncodedLength,
  base64FirstByte,
  decodeBase64Into,
  encodeBase64Into,
} from './base64.js';
import { copyBytes, equalBytes, hasNoControlBytes } from './bytes.js';
import type { Request } from './request.js';

/** The byte after the namespace of every digested key (never in UTF-8; a direct key never has it there). */
export const DIGEST_MARKER = 0xff;
/** Length of the digest part after the namespace: the marker and 43 base64url characters of HMAC-SHA256. */
export const DIGEST_PART_BYTES = 44;

/** Where a key's upstream form is described; one shared record, valid until the next planUpstreamKey call. */
export class UpstreamKeyPlan {
  /** bytes of the key token written upstream (base64 text when `base64`); -1: a base64 key that does not decode */
  tokenLength = 0;
  /** the token is base64 (meta `b`) */
  base64 = false;
  /** N 0xFF D instead of N K */
  digested = false;
  /** length of the upstream key's bytes (decoded) */
  rawLength = 0;
}

const plan = new UpstreamKeyPlan();

/** Scratch for a decoded client key (at most 250 bytes) and for N + key before base64 encoding. */
const clientRaw = Buffer.allocUnsafe(MAX_KEY_BYTES);
const upstreamRaw = Buffer.allocUnsafe(1024);

/** Decodes the base64 key `req.keys[i]` into `clientRaw`; its length, or -1. */
function decodeClientKey(req: Request, i: number): number {
  const s = req.keys[i] ?? 0;
  const e = req.keys[i + 1] ?? 0;
  const n = base64DecodedLength(req.line, s, e);
  if (n < 0 || n > clientRaw.length) return -1;
  return decodeBase64Into(req.line, s, e, clientRaw, 0);
}

/**
 * Describes the upstream form of key `i` of `req` (i: index of its start in
 * `req.keys`) under a namespace of `nsLength` bytes (-1: no namespace).
 * Costs nothing more than a length sum for a plain key that fits.
 */
export function planUpstreamKey(req: Request, i: number, nsLength: number): UpstreamKeyPlan {
  const line = req.line;
  const s = req.keys[i] ?? 0;
  const e = req.keys[i + 1] ?? 0;
  if (nsLength < 0) {
    plan.base64 = req.metaBase64;
    plan.digested = false;
    plan.tokenLength = e - s;
    plan.rawLength = e - s;
    return plan;
  }
  if (!req.metaBase64) {
    const raw = nsLength + e - s;
    plan.base64 = false;
    // a key memcached itself refuses (over 250 bytes) stays too long: the encoder refuses it
    plan.digested = (raw > MAX_KEY_BYTES && e - s <= MAX_KEY_BYTES) || line[s] === DIGEST_MARKER;
    plan.rawLength = plan.digested ? nsLength + DIGEST_PART_BYTES : raw;
    plan.tokenLength = plan.rawLength;
    return plan;
  }
  const n = base64DecodedLength(line, s, e);
  if (n < 0 || n > MAX_KEY_BYTES) {
    plan.base64 = true;
    plan.digested = false;
    plan.rawLength = n < 0 ? -1 : nsLength + n;
    plan.tokenLength = n < 0 ? -1 : base64EncodedLength(plan.rawLength);
    return plan;
  }
  let direct = base64EncodedLength(nsLength + n) <= MAX_KEY_BYTES;
  let plainOnly = false;
  if (!direct && nsLength + n <= MAX_KEY_BYTES) {
    // fits only plain: allowed when the text protocol could carry K as it is
    const k = decodeClientKey(req, i);
    direct = hasNoControlBytes(clientRaw, 0, k);
    plainOnly = direct;
  }
  if (direct && n > 0 && base64FirstByte(line, s) === DIGEST_MARKER) {
    direct = false;
    plainOnly = false;
  }
  const base64 = !plainOnly;
  plan.digested = !direct;
  plan.base64 = base64;
  plan.rawLength = direct ? nsLength + n : nsLength + DIGEST_PART_BYTES;
  plan.tokenLength = base64 ? base64EncodedLength(plan.rawLength) : plan.rawLength;
  return plan;
}

/** planUpstreamKey of key `i` under `ns` (by default the request's own namespace, `req.ns`). */
export function upstreamKeyPlan(req: Request, i: number, ns: Buffer | null = req.ns): UpstreamKeyPlan {
  return planUpstreamKey(req, i, ns === null ? -1 : ns.length);
}

/**
 * The one length of key `i`'s upstream token: the bytes the encoder writes
 * for it (base64 text when it goes upstream in base64), under `ns` (by
 * default `req.ns`). -1 when a base64 key does not decode while a namespace
 * must be added. Without a namespace the key passes unchanged (memcached
 * validates base64 itself). Its bytes, decoded, are upstreamKeyBytes.
 */
export function upstreamKeyLength(req: Request, i: number, ns: Buffer | null = req.ns): number {
  return upstreamKeyPlan(req, i, ns).tokenLength;
}

/** The digest part (marker + 43 bytes) of key `i`, computed once per request and key. */
function digestOf(req: Request, i: number, ns: Buffer): Buffer {
  let digests = req.digests;
  if (digests === null) {
    digests = new Array<Buffer | undefined>(req.keys.length >> 1).fill(undefined);
    req.digests = digests;
  }
  const cached = digests[i >> 1];
  if (cached !== undefined) return cached;
  const h = createHmac('sha256', ns);
  if (req.metaBase64) h.update(clientRaw.subarray(0, decodeClientKey(req, i)));
  else h.update(req.line.subarray(req.keys[i] ?? 0, req.keys[i + 1] ?? 0));
  const out = Buffer.allocUnsafe(DIGEST_PART_BYTES);
  out[0] = DIGEST_MARKER;
  out.write(h.digest('base64url'), 1, DIGEST_PART_BYTES - 1, 'latin1');
  digests[i >> 1] = out;
  return out;
}

/** Writes the raw (decoded) upstream key of key `i` into `upstreamRaw`; its length. */
function rawUpstreamKey(req: Request, i: number, ns: Buffer, p: UpstreamKeyPlan): number {
  const n = ns.length;
  copyBytes(ns, 0, n, upstreamRaw, 0);
  if (p.digested) {
    const d = digestOf(req, i, ns);
    return copyBytes(d, 0, d.length, upstreamRaw, n);
  }
  const s = req.keys[i] ?? 0;
  const e = req.keys[i + 1] ?? 0;
  if (!req.metaBase64) return copyBytes(req.line, s, e, upstreamRaw, n);
  return decodeBase64Into(req.line, s, e, upstreamRaw, n);
}

/**
 * Writes the upstream token of key `i` at `dst[at]` as planned by
 * planUpstreamKey (with `req.ns`); returns the offset after it. `dst` must
 * have room for the plan's tokenLength.
 */
export function writeUpstreamKey(req: Request, i: number, dst: Buffer, at: number): number {
  const ns = req.ns;
  const s = req.keys[i] ?? 0;
  const e = req.keys[i + 1] ?? 0;
  if (ns === null) return copyBytes(req.line, s, e, dst, at);
  const p = planUpstreamKey(req, i, ns.length);
  if (!p.digested && !req.metaBase64) return copyBytes(req.line, s, e, dst, copyBytes(ns, 0, ns.length, dst, at));
  const raw = rawUpstreamKey(req, i, ns, p);
  return p.base64 ? encodeBase64Into(upstreamRaw, 0, raw, dst, at) : copyBytes(upstreamRaw, 0, raw, dst, at);
}

/**
 * The bytes memcached stores for key `i` (decoded when the token is base64):
 * what key → server hashing must hash. A view of a scratch buffer, valid
 * until the next call into this module; copy it to keep it.
 */
export function upstreamKeyBytes(req: Request, i: number): Buffer {
  const ns = req.ns;
  if (ns !== null) {
    const raw = rawUpstreamKey(req, i, ns, planUpstreamKey(req, i, ns.length));
    return upstreamRaw.subarray(0, Math.max(raw, 0));
  }
  if (!req.metaBase64) return req.line.subarray(req.keys[i] ?? 0, req.keys[i + 1] ?? 0);
  return clientRaw.subarray(0, Math.max(decodeClientKey(req, i), 0));
}

/** True when `buf[s, e)` (raw bytes, decoded if they came as base64) is key `i`'s upstream key. */
export function isUpstreamKey(req: Request, i: number, buf: Buffer, s: number, e: number): boolean {
  const ns = req.ns;
  const ks = req.keys[i] ?? 0;
  const ke = req.keys[i + 1] ?? 0;
  if (ns === null) {
    if (!req.metaBase64) return equalBytes(buf, s, e, req.line, ks, ke);
    const k = decodeClientKey(req, i);
    return k >= 0 && equalBytes(buf, s, e, clientRaw, 0, k);
  }
  const p = planUpstreamKey(req, i, ns.length);
  if (e - s !== p.rawLength) return false;
  const n = ns.length;
  if (!equalBytes(buf, s, s + n, ns, 0, n)) return false;
  if (!p.digested && !req.metaBase64) return equalBytes(buf, s + n, e, req.line, ks, ke);
  const raw = rawUpstreamKey(req, i, ns, p);
  return equalBytes(buf, s, e, upstreamRaw, 0, raw);
}

/**
 * Whether the client's key `i` is shown in base64, memcached having returned
 * the upstream key in base64 (`replyBase64`) or plain. memcached's choice is
 * followed — it shows a key as the item was stored — except where it says
 * nothing: a base64 key that went upstream plain (too long for base64 once
 * namespaced) is shown in base64, as asked; and bytes the text protocol cannot
 * carry are always base64.
 */
export function isEchoedInBase64(req: Request, i: number, replyBase64: boolean): boolean {
  if (replyBase64 || !req.metaBase64) return replyBase64;
  const ns = req.ns;
  if (ns !== null && !planUpstreamKey(req, i, ns.length).base64) return true;
  const k = decodeClientKey(req, i);
  return !hasNoControlBytes(clientRaw, 0, k);
}

/** Length of the client's key `i` as plain bytes, or as base64 text when `asBase64`. */
export function clientKeyLength(req: Request, i: number, asBase64: boolean): number {
  const s = req.keys[i] ?? 0;
  const e = req.keys[i + 1] ?? 0;
  const raw = req.metaBase64 ? base64DecodedLength(req.line, s, e) : e - s;
  return asBase64 ? base64EncodedLength(raw) : raw;
}

/**
 * Writes the client's key `i` at `dst[at]`: its bytes, plain or (`asBase64`)
 * as base64 text re-encoded from them, as memcached shows a stored key.
 * Returns the offset after it.
 */
export function writeClientKey(req: Request, i: number, asBase64: boolean, dst: Buffer, at: number): number {
  const s = req.keys[i] ?? 0;
  const e = req.keys[i + 1] ?? 0;
  if (!req.metaBase64) {
    return asBase64 ? encodeBase64Into(req.line, s, e, dst, at) : copyBytes(req.line, s, e, dst, at);
  }
  const k = decodeClientKey(req, i);
  return asBase64 ? encodeBase64Into(clientRaw, 0, k, dst, at) : copyBytes(clientRaw, 0, k, dst, at);
}

/** Key `i`'s client bytes (decoded when sent in base64), as a new Buffer (binary GETK replies). */
export function clientKeyBytes(req: Request, i: number): Buffer {
  const s = req.keys[i] ?? 0;
  const e = req.keys[i + 1] ?? 0;
  if (!req.metaBase64) return Buffer.from(req.line.subarray(s, e));
  const k = decodeClientKey(req, i);
  return Buffer.from(clientRaw.subarray(0, Math.max(k, 0)));
}
