/**
 * Property: whatever a tenant sends, every key memgate forwards upstream lies
 * inside that tenant's namespace. The upstream bytes are parsed back with the
 * same request parser (they are valid text protocol) and every key checked.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { authorize, Verdict, VerdictFields } from '../../src/policy/authorize.js';
import { compilePolicy, Rights } from '../../src/policy/compile.js';
import { MAX_KEYS_PER_GET } from '../../src/protocol/limits.js';
import { decodeBase64 } from '../../src/protocol/text/base64.js';
import { encodeRequest } from '../../src/protocol/text/request-encoder.js';
import { RequestParser } from '../../src/protocol/text/request-parser.js';
import type { Request, RequestSink } from '../../src/protocol/text/request.js';
import { TenantRuntime } from '../../src/server/tenants.js';

const GENERATION = 'Ab3dE9xQ';
const NS = Buffer.from(`t3n4nt:${GENERATION}`, 'latin1');
/** enforce mode: the key prefixes the tenant may use */
const ENFORCED = ['ab', 'c:'];

const policy = compilePolicy(
  parseConfigText(
    [
      'listen:',
      '  - { host: 127.0.0.1, port: 11211 }',
      'upstream:',
      '  servers: [ "127.0.0.1:11212" ]',
      'tenants:',
      '  shop: { prefix: "t3n4nt:" }',
      `  app: { prefix: "ab", mode: enforce, prefixes: [ ${ENFORCED.map((p) => `"${p}"`).join(', ')} ] }`,
      '',
    ].join('\n'),
    'property.yaml',
    {},
  ),
);

function runtime(name: string): TenantRuntime {
  const p = policy.tenants.get(name);
  if (p === undefined) throw new Error(`no tenant ${name}`);
  return new TenantRuntime(p, GENERATION, { maxKeysPerGet: MAX_KEYS_PER_GET, maxValueBytes: 1024 * 1024 });
}

function parseAll(bytes: Buffer): Request[] {
  const out: Request[] = [];
  const sink: RequestSink = { onRequest: (r) => out.push(r), onFatal: () => undefined };
  new RequestParser(sink).feed(bytes);
  return out;
}

/** What memgate would send upstream for these client bytes of tenant `name` (authorize decides, as the session does). */
function forwarded(client: Buffer, name = 'shop'): Buffer {
  const t = runtime(name);
  const verdict = new VerdictFields();
  const out: Buffer[] = [];
  for (const req of parseAll(client)) {
    if (authorize(t, Rights.READ_WRITE, req, 0, MAX_KEYS_PER_GET, verdict) !== Verdict.FORWARD) continue;
    req.ns = verdict.ns;
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

  it('never forwards a key outside the enforced prefixes of an enforce-mode tenant', () => {
    let checked = 0;
    const enforcedKey = fc
      .tuple(fc.constantFrom('', ...ENFORCED, 'a', 'c', 'xab'), key)
      .map(([p, k]) => `${p}${k}`.slice(0, 250));
    const enforcedCommand = fc.oneof(
      command,
      fc
        .tuple(fc.constantFrom('get', 'gets'), fc.array(enforcedKey, { minLength: 1, maxLength: 4 }))
        .map(([c, ks]) => `${c} ${ks.join(' ')}\r\n`),
      fc.tuple(enforcedKey, fc.nat(5)).map(([k, n]) => `set ${k} 0 0 ${n}\r\n${'v'.repeat(n)}\r\n`),
      fc.tuple(enforcedKey, fc.constantFrom('', ' v', ' b')).map(([k, f]) => `mg ${k}${f}\r\n`),
    );
    fc.assert(
      fc.property(fc.array(enforcedCommand, { minLength: 1, maxLength: 20 }), (cmds) => {
        const upstream = forwarded(Buffer.from(cmds.join(''), 'latin1'), 'app');
        for (const req of parseAll(upstream)) {
          expect(req.error).toBeNull();
          expect(req.metaBase64).toBe(false);
          for (let i = 0; i < req.keys.length; i += 2) {
            const k = keyBytes(req, i).toString('latin1');
            expect(ENFORCED.some((p) => k.startsWith(p))).toBe(true);
            checked++;
          }
        }
      }),
      { numRuns: 300 },
    );
    // the generator must really produce forwarded keys, or the property proves nothing
    expect(checked).toBeGreaterThan(100);
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
