import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeBase64 } from '../../../../src/protocol/text/base64.js';
import { encodeRequest } from '../../../../src/protocol/text/request-encoder.js';
import type { Request } from '../../../../src/protocol/text/request.js';
import {
  DIGEST_MARKER,
  DIGEST_PART_BYTES,
  clientKeyBytes,
  isUpstreamKey,
  planUpstreamKey,
  upstreamKeyBytes,
  upstreamKeyLength,
} from '../../../../src/protocol/text/upstream-key.js';
import { buildRequest } from './request-builder.js';

const isTextSafe = (k: Uint8Array): boolean => k.every((c) => c > 0x20 && c !== 0x7f);

/** A one-key `mg` for client key `key` (plain when `plain` and text-safe, else base64 with b) under `ns`. */
function request(key: Uint8Array, ns: Buffer, plain: boolean): Request {
  const k = Buffer.from(key);
  if (plain && isTextSafe(key)) return buildRequest(`mg ${k.toString('latin1')} v`, { ns });
  return buildRequest(`mg ${k.toString('base64')} b v`, { ns });
}

/** The upstream key's bytes (decoded) and its token length, as the encoder sends them. */
function upstreamOf(req: Request): { raw: Buffer; token: number } {
  const out: Buffer[] = [];
  expect(encodeRequest(req, out)).toBeNull();
  const line = Buffer.concat(out);
  const end = line.indexOf(0x20, 3);
  const token = line.subarray(3, end);
  const base64 = line.subarray(end).includes(Buffer.from(' b'));
  const raw = base64 ? (decodeBase64(token, 0, token.length) ?? Buffer.alloc(0)) : Buffer.from(token);
  return { raw, token: token.length };
}

const namespace = fc
  .tuple(fc.stringMatching(/^[\x21-\x7e]{1,64}$/), fc.stringMatching(/^[0-9A-Za-z]{8}$/))
  .map(([p, g]) => Buffer.from(p + g, 'latin1'));
const clientKey = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 250 }),
  fc.stringMatching(/^[\x21-\x7e]{1,250}$/).map((s) => new Uint8Array(Buffer.from(s, 'latin1'))),
  fc.integer({ min: 150, max: 250 }).map((n) => new Uint8Array(Buffer.alloc(n, 0x61))),
);

function isDirect(raw: Buffer, ns: Buffer, key: Uint8Array): boolean {
  return raw.equals(Buffer.concat([ns, Buffer.from(key)]));
}

describe('upstream keys of a namespaced tenant', () => {
  it('maps distinct client keys to distinct upstream keys, all ≤ 250 bytes, inside the namespace, never equal to a direct key', () => {
    fc.assert(
      fc.property(
        namespace,
        fc.array(fc.tuple(clientKey, fc.boolean()), { minLength: 2, maxLength: 6 }),
        (ns, keys) => {
          const seen = new Map<string, string>();
          for (const [key, plain] of keys) {
            const req = request(key, ns, plain);
            const { raw, token } = upstreamOf(req);
            expect(token).toBeLessThanOrEqual(250);
            expect(upstreamKeyLength(req, 0)).toBe(token);
            expect(upstreamKeyLength(request(key, Buffer.alloc(0), plain), 0, ns)).toBe(token);
            expect(raw.subarray(0, ns.length).equals(ns)).toBe(true);
            if (!isDirect(raw, ns, key)) {
              // a digested key: the marker where no direct key has it, and a fixed length
              expect(raw[ns.length]).toBe(DIGEST_MARKER);
              expect(raw.length).toBe(ns.length + DIGEST_PART_BYTES);
            } else {
              expect(key[0]).not.toBe(DIGEST_MARKER);
            }
            expect(isUpstreamKey(req, 0, raw, 0, raw.length)).toBe(true);
            expect(upstreamKeyBytes(req, 0)).toEqual(raw);
            expect(clientKeyBytes(req, 0).equals(Buffer.from(key))).toBe(true);
            const k = Buffer.from(key).toString('hex');
            const u = raw.toString('hex');
            const before = seen.get(u);
            if (before !== undefined) expect(before).toBe(k);
            seen.set(u, k);
          }
        },
      ),
    );
  });

  it('maps a key to the same upstream key whether it is sent plain or in base64', () => {
    fc.assert(
      fc.property(
        namespace,
        fc.stringMatching(/^[\x21-\x7e\x80-\xff]{1,250}$/).map((s) => new Uint8Array(Buffer.from(s, 'latin1'))),
        (ns, key) => {
          expect(upstreamOf(request(key, ns, true)).raw).toEqual(upstreamOf(request(key, ns, false)).raw);
        },
      ),
    );
  });

  it('digests only keys that do not fit, or that begin with the marker byte', () => {
    const ns = Buffer.from('a7Zk2:T3m9QxA0', 'latin1');
    const fits = new Uint8Array(Buffer.alloc(250 - ns.length, 0x61));
    const over = new Uint8Array(Buffer.alloc(251 - ns.length, 0x61));
    expect(planUpstreamKey(request(fits, ns, true), 0, ns.length).digested).toBe(false);
    expect(planUpstreamKey(request(over, ns, true), 0, ns.length).digested).toBe(true);
    const marked = new Uint8Array([DIGEST_MARKER, 0x61]);
    expect(planUpstreamKey(request(marked, ns, true), 0, ns.length).digested).toBe(true);
    expect(planUpstreamKey(request(marked, ns, false), 0, ns.length).digested).toBe(true);
  });

  it('keys the digest with the namespace: another tenant or generation gets another digest', () => {
    const key = new Uint8Array(Buffer.alloc(250, 0x62));
    const a = upstreamOf(request(key, Buffer.from('a:00000000'), true)).raw.subarray(10);
    const b = upstreamOf(request(key, Buffer.from('b:00000000'), true)).raw.subarray(10);
    const c = upstreamOf(request(key, Buffer.from('a:00000001'), true)).raw.subarray(10);
    expect(a.equals(b)).toBe(false);
    expect(a.equals(c)).toBe(false);
  });

  it('passes keys unchanged without a namespace', () => {
    const req = buildRequest(`mg ${'k'.repeat(250)} v`);
    const p = planUpstreamKey(req, 0, -1);
    expect(p.digested).toBe(false);
    expect(p.tokenLength).toBe(250);
    expect(upstreamKeyLength(req, 0)).toBe(250);
    expect(upstreamKeyBytes(req, 0).toString()).toBe('k'.repeat(250));
    const bin = buildRequest(`mg ${Buffer.from('abc').toString('base64')} b v`);
    expect(upstreamKeyBytes(bin, 0).toString()).toBe('abc');
    expect(upstreamKeyLength(bin, 0)).toBe(4); // the base64 token as sent
  });

  it('gives -1 for a base64 key that does not decode once a namespace must be added, its token length without one', () => {
    const bad = buildRequest('mg !!!! b v');
    expect(upstreamKeyLength(bad, 0)).toBe(4);
    expect(upstreamKeyLength(bad, 0, Buffer.from('ns:00000000'))).toBe(-1);
  });
});
