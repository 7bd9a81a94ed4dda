/**
 * Property: whatever a tenant sends, every key memgate forwards upstream lies
 * inside that tenant's namespace. The upstream bytes are parsed back with the
 * same request parser (they are valid text protocol) and every key checked.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Disposition, TENANT_DISPOSITION } from '../../src/policy/command-deny.js';
import { checkNamespacedKeys } from '../../src/policy/key-prefix.js';
import { decodeBase64 } from '../../src/protocol/text/base64.js';
import { encodeRequest } from '../../src/protocol/text/request-encoder.js';
import { RequestParser } from '../../src/protocol/text/request-parser.js';
import type { Request, RequestSink } from '../../src/protocol/text/request.js';

const NS = Buffer.from('t3n4nt:Ab3dE9xQ', 'latin1');

function parseAll(bytes: Buffer): Request[] {
  const out: Request[] = [];
  const sink: RequestSink = { onRequest: (r) => out.push(r), onFatal: () => undefined };
  new RequestParser(sink).feed(bytes);
  return out;
}

/** What memgate would send upstream for these client bytes, for a namespace-mode tenant. */
function forwarded(client: Buffer): Buffer {
  const out: Buffer[] = [];
  for (const req of parseAll(client)) {
    if (req.error !== null || TENANT_DISPOSITION[req.cmd] !== Disposition.FORWARD) continue;
    if (checkNamespacedKeys(req, NS) !== null) continue;
    req.ns = NS;
    encodeRequest(req, out);
  }
  return Buffer.concat(out);
}

function keyBytes(req: Request, i: number): Buffer {
  const start = req.keys[i] ?? 0;
  const end = req.keys[i + 1] ?? 0;
  return req.metaBase64 ? (decodeBase64(req.line, start, end) ?? Buffer.alloc(0)) : req.line.subarray(start, end);
}

const keyChar = fc.constantFrom(...'abcXYZ019:_-./\t \x7f\x00é=+'.split(''));
const safeKeyChar = fc.constantFrom(...'abcXYZ019:_-./é+='.split(''));
const key = fc.oneof(
  fc.array(keyChar, { minLength: 0, maxLength: 300 }).map((a) => a.join('')),
  // long valid keys: up to memcached's 250 bytes and just past it
  fc.array(safeKeyChar, { minLength: 225, maxLength: 252 }).map((a) => a.join('')),
);
const command = fc.oneof(
  fc
    .tuple(fc.constantFrom('get', 'gets'), fc.array(key, { minLength: 0, maxLength: 4 }))
    .map(([c, ks]) => `${c} ${ks.join(' ')}\r\n`),
  fc
    .tuple(fc.constantFrom('set', 'add', 'append', 'cas'), key, fc.nat(20))
    .map(([c, k, n]) => `${c} ${k} 0 0 ${n}${c === 'cas' ? ' 1' : ''}\r\n${'v'.repeat(n)}\r\n`),
  fc.tuple(fc.constantFrom('delete', 'touch 10', 'incr 1', 'decr 1'), key).map(([c, k]) => {
    const [name, arg] = c.split(' ');
    return `${name} ${k}${arg === undefined ? '' : ` ${arg}`}\r\n`;
  }),
  fc
    .tuple(fc.constantFrom('mg', 'md', 'ma', 'me'), key, fc.constantFrom('', ' v', ' k', ' b', ' b k v', ' q'))
    .map(([c, k, f]) => `${c} ${k}${c === 'me' ? (f === ' b' ? ' b' : '') : f}\r\n`),
  fc
    .tuple(key, fc.nat(10), fc.constantFrom('', ' b', ' T0 F1'))
    .map(([k, n, f]) => `ms ${k} ${n}${f}\r\n${'x'.repeat(n)}\r\n`),
  fc
    .tuple(fc.constantFrom('gat', 'gats'), fc.array(key, { minLength: 1, maxLength: 3 }))
    .map(([c, ks]) => `${c} 5 ${ks.join(' ')}\r\n`),
  fc.constantFrom(
    'stats\r\n',
    'version\r\n',
    'mn\r\n',
    'flush_all\r\n',
    'lru_crawler metadump all\r\n',
    'stats cachedump 1 1\r\n',
  ),
);

describe('namespace property', () => {
  it('never forwards a key outside the tenant namespace, nor one longer than memcached allows', () => {
    let checked = 0;
    let digested = 0;
    fc.assert(
      fc.property(fc.array(command, { minLength: 1, maxLength: 20 }), (cmds) => {
        const upstream = forwarded(Buffer.from(cmds.join(''), 'latin1'));
        for (const req of parseAll(upstream)) {
          expect(req.error).toBeNull();
          for (let i = 0; i < req.keys.length; i += 2) {
            const k = keyBytes(req, i);
            expect(k.subarray(0, NS.length).equals(NS)).toBe(true);
            expect((req.keys[i + 1] ?? 0) - (req.keys[i] ?? 0)).toBeLessThanOrEqual(250);
            checked++;
            if (k[NS.length] === 0xff) digested++;
          }
        }
      }),
      { numRuns: 500 },
    );
    // the generator must really produce forwarded keys, or the property proves nothing
    expect(checked).toBeGreaterThan(500);
    // ... and long keys, which go upstream as namespace + digest
    expect(digested).toBeGreaterThan(10);
  });

  it('never forwards any admin command or a real flush for a tenant', () => {
    fc.assert(
      fc.property(fc.array(command, { minLength: 1, maxLength: 20 }), (cmds) => {
        const text = forwarded(Buffer.from(cmds.join(''), 'latin1')).toString('latin1');
        expect(text).not.toMatch(/(^|\n)(flush_all|lru_crawler|stats|watch|shutdown|slabs|lru|verbosity)\b/);
      }),
      { numRuns: 300 },
    );
  });
});
