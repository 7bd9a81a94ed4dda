import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HEADER_BYTES, MAGIC_REQUEST, Opcode as Op, Status } from '../../src/protocol/binary/header.js';
import { BinaryRequestParser } from '../../src/protocol/binary/parser.js';
import { encodeBinaryReply } from '../../src/protocol/binary/reply.js';
import type { Request } from '../../src/protocol/text/request.js';
import { RequestParser } from '../../src/protocol/text/request-parser.js';
import { RecordingSink, isSameRequest } from '../helpers/splits.js';
import {
  BinaryRecordingSink,
  arithExtras,
  packet,
  storeExtras,
  u32,
  type PacketSpec,
} from '../unit/protocol/binary/binary-fixtures.js';

/**
 * A valid request packet and the meta line the parser must write for it,
 * built here independently of the parser (strings and Buffer#toString('base64')).
 */
interface Model {
  spec: PacketSpec;
  line: string;
}

const keyArb = fc
  .oneof(
    { weight: 5, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 12 }) },
    {
      weight: 3,
      arbitrary: fc
        .array(fc.integer({ min: 0x21, max: 0x7e }), { minLength: 1, maxLength: 12 })
        .map((a) => Uint8Array.from(a)),
    },
    { weight: 1, arbitrary: fc.uint8Array({ minLength: 240, maxLength: 250 }) },
  )
  .map((a) => Buffer.from(a));
const valueArb = fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a));
const uint32 = fc.integer({ min: 0, max: 0xffff_ffff });
const exptimeArb = fc.oneof(fc.constantFrom(0, 1, 0x7fff_ffff), fc.integer({ min: 0, max: 0x7fff_ffff }));
const uint64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const casArb = fc.oneof(fc.constant(0n), uint64);
const opaqueArb = uint32;

function isPlain(key: Buffer): boolean {
  return key.every((c) => c > 0x20 && c <= 0x7e);
}

function keyPart(key: Buffer): { token: string; b: string } {
  return isPlain(key) ? { token: key.toString('latin1'), b: '' } : { token: key.toString('base64'), b: ' b' };
}

const casFlag = (cas: bigint): string => (cas === 0n ? '' : ` C${cas}`);

const getModel: fc.Arbitrary<Model> = fc
  .tuple(fc.constantFrom(Op.GET, Op.GETQ, Op.GETK, Op.GETKQ), keyArb, opaqueArb, casArb)
  .map(([opcode, key, opaque, cas]) => {
    const k = keyPart(key);
    const withKey = opcode === Op.GETK || opcode === Op.GETKQ ? ' k' : '';
    return { spec: { opcode, key, opaque, cas }, line: `mg ${k.token}${k.b} v f c${withKey}` };
  });

const gatModel: fc.Arbitrary<Model> = fc
  .tuple(fc.constantFrom(Op.GAT, Op.GATQ, Op.GATK, Op.GATKQ, Op.TOUCH), keyArb, exptimeArb, opaqueArb)
  .map(([opcode, key, exptime, opaque]) => {
    const k = keyPart(key);
    const spec = { opcode, key, extras: u32(exptime), opaque };
    if (opcode === Op.TOUCH) return { spec, line: `mg ${k.token}${k.b} f c T${exptime}` };
    const withKey = opcode === Op.GATK || opcode === Op.GATKQ ? ' k' : '';
    return { spec, line: `mg ${k.token}${k.b} v f c${withKey} T${exptime}` };
  });

const storeModel: fc.Arbitrary<Model> = fc
  .tuple(
    fc.constantFrom(Op.SET, Op.SETQ, Op.ADD, Op.ADDQ, Op.REPLACE, Op.REPLACEQ),
    keyArb,
    uint32,
    exptimeArb,
    valueArb,
    casArb,
    opaqueArb,
  )
  .map(([opcode, key, flags, exptime, value, cas, opaque]) => {
    const k = keyPart(key);
    const mode =
      opcode === Op.ADD || opcode === Op.ADDQ ? ' ME' : opcode === Op.REPLACE || opcode === Op.REPLACEQ ? ' MR' : '';
    return {
      spec: { opcode, key, extras: storeExtras(flags, exptime), value, cas, opaque },
      line: `ms ${k.token} ${value.length}${k.b} F${flags} T${exptime} c${mode}${casFlag(cas)}`,
    };
  });

const concatModel: fc.Arbitrary<Model> = fc
  .tuple(fc.constantFrom(Op.APPEND, Op.APPENDQ, Op.PREPEND, Op.PREPENDQ), keyArb, valueArb, casArb)
  .map(([opcode, key, value, cas]) => {
    const k = keyPart(key);
    const mode = opcode === Op.APPEND || opcode === Op.APPENDQ ? 'MA' : 'MP';
    return { spec: { opcode, key, value, cas }, line: `ms ${k.token} ${value.length}${k.b} ${mode} c${casFlag(cas)}` };
  });

const deleteModel: fc.Arbitrary<Model> = fc
  .tuple(fc.constantFrom(Op.DELETE, Op.DELETEQ), keyArb, casArb)
  .map(([opcode, key, cas]) => {
    const k = keyPart(key);
    return { spec: { opcode, key, cas }, line: `md ${k.token}${k.b}${casFlag(cas)}` };
  });

const arithModel: fc.Arbitrary<Model> = fc
  .tuple(
    fc.constantFrom(Op.INCREMENT, Op.INCREMENTQ, Op.DECREMENT, Op.DECREMENTQ),
    keyArb,
    uint64,
    uint64,
    fc.oneof(exptimeArb, fc.constant(0xffff_ffff)),
    casArb,
  )
  .map(([opcode, key, delta, initial, exptime, cas]) => {
    const k = keyPart(key);
    const mode = opcode === Op.INCREMENT || opcode === Op.INCREMENTQ ? 'MI' : 'MD';
    const create = exptime === 0xffff_ffff ? '' : ` N${exptime} J${initial}`;
    return {
      spec: { opcode, key, extras: arithExtras(delta, initial, exptime), cas },
      line: `ma ${k.token}${k.b} D${delta} ${mode} v c${create}${casFlag(cas)}`,
    };
  });

const keylessModel: fc.Arbitrary<Model> = fc.oneof(
  fc.constant({ spec: { opcode: Op.VERSION }, line: 'version' }),
  fc.constant({ spec: { opcode: Op.NOOP }, line: '' }),
  fc.constant({ spec: { opcode: Op.QUIT }, line: 'quit' }),
  fc.constant({ spec: { opcode: Op.FLUSH }, line: 'flush_all' }),
  fc
    .integer({ min: 0, max: 0x7fff_ffff })
    .map((d) => ({ spec: { opcode: Op.FLUSHQ, extras: u32(d) }, line: `flush_all ${d}` })),
  fc.constantFrom('', 'items', 'slabs', 'detail dump').map((g) => ({
    spec: { opcode: Op.STAT, key: g },
    line: g === '' ? 'stats' : `stats ${g}`,
  })),
);

const modelArb: fc.Arbitrary<Model> = fc.oneof(
  getModel,
  gatModel,
  storeModel,
  concatModel,
  deleteModel,
  arithModel,
  keylessModel,
);

/** Cuts `input` at the given fractions of its length. */
function cut(input: Buffer, fractions: number[]): Buffer[] {
  const points = fractions.map((f) => Math.floor(f * input.length)).sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const p of points) {
    out.push(input.subarray(from, p));
    from = p;
  }
  out.push(input.subarray(from));
  return out;
}

const cutsArb = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 12 });

function parseAll(chunks: Buffer[]): BinaryRecordingSink {
  const sink = new BinaryRecordingSink();
  const parser = new BinaryRequestParser(sink);
  for (const c of chunks) parser.feed(c);
  return sink;
}

function textParse(req: Request): Request | undefined {
  const sink = new RecordingSink();
  const tail = req.value === null ? [] : [...req.value, Buffer.from('\r\n')];
  new RequestParser(sink).feed(Buffer.concat([req.line, Buffer.from('\r\n'), ...tail]));
  return sink.requests[0];
}

describe('BinaryRequestParser properties', () => {
  it('writes the model line for any valid packet, chunked any way', () => {
    fc.assert(
      fc.property(modelArb, cutsArb, (model, fractions) => {
        const sink = parseAll(cut(packet(model.spec), fractions));
        expect(sink.fatal).toBeNull();
        expect(sink.requests).toHaveLength(1);
        const req = sink.requests[0];
        if (req === undefined) return;
        expect(req.error).toBeNull();
        expect(req.line.toString('latin1')).toBe(model.line);
        expect(req.binary?.opcode).toBe(model.spec.opcode);
        expect(req.binary?.opaque).toBe(model.spec.opaque ?? 0);
        if (model.line === '') return;
        // every field the text parser fills, offsets included
        const text = textParse(req);
        expect(text === undefined ? false : isSameRequest(req, text)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('decodes a pipeline of valid packets the same whole and chunked any way', () => {
    fc.assert(
      fc.property(fc.array(modelArb, { minLength: 1, maxLength: 8 }), cutsArb, (models, fractions) => {
        const input = Buffer.concat(models.map((m) => packet(m.spec)));
        const whole = parseAll([input]).binaryOutcome();
        const chunked = parseAll(cut(input, fractions)).binaryOutcome();
        expect(chunked).toEqual(whole);
        expect(whole.requests.map((r) => r.line)).toEqual(models.map((m) => m.line));
      }),
      { numRuns: 500 },
    );
  });

  it('never throws on random bytes, and never delivers after a fatal error', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), cutsArb, (bytes, fractions) => {
        const sink = new BinaryRecordingSink();
        const parser = new BinaryRequestParser(sink);
        for (const c of cut(Buffer.from(bytes), fractions)) parser.feed(c);
        expect(sink.fatalCount).toBeLessThanOrEqual(1);
        for (const req of sink.requests) expect(req.binary).not.toBeNull();
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws on random headers with a request magic, and stays in step with their lengths', () => {
    const headerArb = fc.record({
      opcode: fc.oneof(fc.integer({ min: 0, max: 0x30 }), fc.integer({ min: 0, max: 255 })),
      keyLength: fc.integer({ min: 0, max: 300 }),
      extrasLength: fc.integer({ min: 0, max: 30 }),
      bodyLength: fc.integer({ min: 0, max: 400 }),
      fill: fc.integer({ min: 0, max: 255 }),
    });
    fc.assert(
      fc.property(fc.array(headerArb, { minLength: 1, maxLength: 6 }), cutsArb, (headers, fractions) => {
        const packets = headers.map((h) => {
          const head = packet({
            opcode: h.opcode,
            keyLength: h.keyLength,
            extrasLength: h.extrasLength,
            bodyLength: h.bodyLength,
          });
          return Buffer.concat([head.subarray(0, HEADER_BYTES), Buffer.alloc(h.bodyLength, h.fill)]);
        });
        const sink = parseAll(cut(Buffer.concat(packets), fractions));
        // whatever each packet says, the parser reads exactly its body: one request per packet
        expect(sink.fatal).toBeNull();
        expect(sink.requests.map((r) => r.binary?.opcode)).toEqual(headers.map((h) => h.opcode));
        for (const req of sink.requests) {
          expect(req.binary?.opaque).toBe(0);
          if (req.error !== null) {
            expect(req.value).toBeNull();
            expect(req.line.length).toBe(0);
          }
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('stops at the first packet without the request magic', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 255 }).filter((m) => m !== MAGIC_REQUEST),
        (magic) => {
          const sink = parseAll([
            packet({ opcode: Op.NOOP }),
            packet({ opcode: Op.NOOP, magic }),
            packet({ opcode: Op.NOOP }),
          ]);
          expect(sink.requests).toHaveLength(1);
          expect(sink.fatal?.length).toBe(0);
        },
      ),
    );
  });
});

describe('encodeBinaryReply properties', () => {
  it('answers any GET hit with the flags, cas and value memcached sent, however the reply is cut', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(Op.GET, Op.GETQ, Op.GETK, Op.GETKQ),
        keyArb,
        uint32,
        uint64,
        valueArb,
        opaqueArb,
        cutsArb,
        (opcode, key, flags, cas, value, opaque, fractions) => {
          const req = parseAll([packet({ opcode, key, opaque })]).requests[0];
          if (req === undefined) throw new Error('no request');
          const k = keyPart(key);
          const text = Buffer.concat([
            Buffer.from(`VA ${value.length} f${flags} c${cas} k${k.token}${k.b}\r\n`, 'latin1'),
            value,
            Buffer.from('\r\n'),
          ]);
          req.reply = cut(text, fractions).filter((c) => c.length > 0);
          const out = Buffer.concat(encodeBinaryReply(req) ?? []);
          const returnsKey = opcode === Op.GETK || opcode === Op.GETKQ;
          const keyLength = returnsKey ? key.length : 0;
          expect(out.readUInt8(0)).toBe(0x81);
          expect(out.readUInt8(1)).toBe(opcode);
          expect(out.readUInt16BE(2)).toBe(keyLength);
          expect(out.readUInt8(4)).toBe(4);
          expect(out.readUInt16BE(6)).toBe(Status.SUCCESS);
          expect(out.readUInt32BE(8)).toBe(4 + keyLength + value.length);
          expect(out.readUInt32BE(12)).toBe(opaque);
          expect(out.readBigUInt64BE(16)).toBe(cas);
          expect(out.readUInt32BE(24)).toBe(flags);
          expect(out.subarray(28, 28 + keyLength).equals(returnsKey ? key : Buffer.alloc(0))).toBe(true);
          expect(out.subarray(28 + keyLength).equals(value)).toBe(true);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('answers any counter value as its 8 big-endian bytes', () => {
    fc.assert(
      fc.property(uint64, uint64, (value, cas) => {
        const req = parseAll([packet({ opcode: Op.INCREMENT, key: 'n', extras: arithExtras(1n, 0n, 0) })]).requests[0];
        if (req === undefined) throw new Error('no request');
        const digits = value.toString();
        req.reply = [Buffer.from(`VA ${digits.length} c${cas}\r\n${digits}\r\n`, 'latin1')];
        const out = Buffer.concat(encodeBinaryReply(req) ?? []);
        expect(out.readUInt32BE(8)).toBe(8);
        expect(out.readBigUInt64BE(16)).toBe(cas);
        expect(out.readBigUInt64BE(24)).toBe(value);
      }),
      { numRuns: 500 },
    );
  });
});
