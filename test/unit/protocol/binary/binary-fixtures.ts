/**
 * Test helpers for the binary protocol: a request packet builder, a recording
 * sink, the readable projection of a binary request, and a runner that feeds
 * the same bytes whole, byte by byte, split in two at every index and, for
 * short inputs, in three at every pair of indexes, asserting every run
 * delivers the same requests and the same fatal reply.
 */
import { expect } from 'vitest';
import { BinaryRequestParser, type BinaryParserLimits } from '../../../../src/protocol/binary/parser.js';
import { HEADER_BYTES, MAGIC_REQUEST } from '../../../../src/protocol/binary/header.js';
import type { Request } from '../../../../src/protocol/text/request.js';
import { RecordingSink, describeRequest, isSameRequest, type DescribedRequest } from '../../../helpers/splits.js';

export const THREE_WAY_MAX_BYTES = 80;

export interface PacketSpec {
  opcode: number;
  key?: string | Buffer;
  extras?: Buffer;
  value?: string | Buffer;
  opaque?: number;
  cas?: bigint;
  magic?: number;
  /** overrides of the lengths the header states (for malformed packets) */
  keyLength?: number;
  extrasLength?: number;
  bodyLength?: number;
  vbucket?: number;
  dataType?: number;
}

const bytes = (v: string | Buffer | undefined): Buffer =>
  v === undefined ? Buffer.alloc(0) : typeof v === 'string' ? Buffer.from(v, 'latin1') : v;

/** A request packet: header + extras + key + value. */
export function packet(spec: PacketSpec): Buffer {
  const key = bytes(spec.key);
  const extras = spec.extras ?? Buffer.alloc(0);
  const value = bytes(spec.value);
  const head = Buffer.alloc(HEADER_BYTES);
  head[0] = spec.magic ?? MAGIC_REQUEST;
  head[1] = spec.opcode;
  head.writeUInt16BE(spec.keyLength ?? key.length, 2);
  head[4] = spec.extrasLength ?? extras.length;
  head[5] = spec.dataType ?? 0;
  head.writeUInt16BE(spec.vbucket ?? 0, 6);
  head.writeUInt32BE(spec.bodyLength ?? extras.length + key.length + value.length, 8);
  head.writeUInt32BE(spec.opaque ?? 0, 12);
  head.writeBigUInt64BE(spec.cas ?? 0n, 16);
  return Buffer.concat([head, extras, key, value]);
}

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

export function storeExtras(flags: number, exptime: number): Buffer {
  return Buffer.concat([u32(flags), u32(exptime)]);
}

export function arithExtras(delta: bigint, initial: bigint, exptime: number): Buffer {
  const b = Buffer.alloc(20);
  b.writeBigUInt64BE(delta, 0);
  b.writeBigUInt64BE(initial, 8);
  b.writeUInt32BE(exptime >>> 0, 16);
  return b;
}

/** The binary half of a request, as plain data. */
export interface DescribedBinary {
  opcode: number;
  opaque: number;
  cas: string;
  quiet: boolean;
  returnKey: boolean;
}

/** A binary request as plain data: the text projection, its line and its binary info. */
export type DescribedBinaryRequest = DescribedRequest & { line: string; binary: DescribedBinary | null };

export function describeBinaryRequest(req: Request): DescribedBinaryRequest {
  const b = req.binary;
  return {
    ...describeRequest(req),
    line: req.line.toString('latin1'),
    binary:
      b === null
        ? null
        : {
            opcode: b.opcode,
            opaque: b.opaque,
            cas: b.cas.toString('hex'),
            quiet: b.quiet,
            returnKey: b.returnKey,
          },
  };
}

/** The text parser's recording sink, projected with the binary fields. */
export class BinaryRecordingSink extends RecordingSink {
  binaryOutcome(): BinaryOutcome {
    return {
      requests: this.requests.map(describeBinaryRequest),
      fatal: this.fatal === null ? null : this.fatal.toString('hex'),
    };
  }
}

export interface BinaryOutcome {
  requests: DescribedBinaryRequest[];
  /** the fatal reply as hex ('' for an empty one), or null */
  fatal: string | null;
}

export function parseBinaryChunks(chunks: readonly Buffer[], limits?: Partial<BinaryParserLimits>): BinaryOutcome {
  const sink = new BinaryRecordingSink();
  const parser = new BinaryRequestParser(sink, limits);
  for (const c of chunks) parser.feed(c);
  return sink.binaryOutcome();
}

function sameBinary(a: Request, b: Request): boolean {
  const x = a.binary;
  const y = b.binary;
  if (x === null || y === null) return x === y;
  return (
    x.opcode === y.opcode &&
    x.opaque === y.opaque &&
    x.cas.equals(y.cas) &&
    x.quiet === y.quiet &&
    x.returnKey === y.returnKey
  );
}

function sameOutcome(a: BinaryRecordingSink, b: BinaryRecordingSink): boolean {
  if (a.requests.length !== b.requests.length || a.fatalCount !== b.fatalCount) return false;
  if ((a.fatal === null) !== (b.fatal === null)) return false;
  if (a.fatal !== null && b.fatal !== null && !a.fatal.equals(b.fatal)) return false;
  for (let i = 0; i < a.requests.length; i++) {
    const x = a.requests[i];
    const y = b.requests[i];
    if (x === undefined || y === undefined || !isSameRequest(x, y) || !sameBinary(x, y)) return false;
  }
  return true;
}

/** Every cut of `input` the runner tries, lazily. */
export function* cuts(input: Buffer): Generator<{ how: string; chunks: Buffer[] }> {
  const n = input.length;
  yield { how: 'whole', chunks: [input] };
  yield { how: 'byte by byte', chunks: Array.from({ length: n }, (_, i) => input.subarray(i, i + 1)) };
  for (let i = 0; i <= n; i++) yield { how: `in two at ${i}`, chunks: [input.subarray(0, i), input.subarray(i)] };
  if (n <= THREE_WAY_MAX_BYTES) {
    for (let i = 1; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        yield { how: `in three at ${i},${j}`, chunks: [input.subarray(0, i), input.subarray(i, j), input.subarray(j)] };
      }
    }
  }
}

/**
 * Feeds `input` every way `cuts` knows through one parser (reset between runs),
 * failing on the first run that differs from feeding it whole. Returns the
 * whole-input outcome.
 */
export function parseBinaryEverySplit(input: Buffer, limits?: Partial<BinaryParserLimits>): BinaryOutcome {
  const ref = new BinaryRecordingSink();
  new BinaryRequestParser(ref, limits).feed(input);
  const sink = new BinaryRecordingSink();
  const parser = new BinaryRequestParser(sink, limits);
  for (const { how, chunks } of cuts(input)) {
    parser.reset();
    sink.clear();
    for (const c of chunks) parser.feed(c);
    if (!sameOutcome(sink, ref)) {
      expect({ how, ...sink.binaryOutcome() }).toEqual({ how, ...ref.binaryOutcome() });
      throw new Error(`${how}: same projection but different offsets or fatal count`);
    }
  }
  return ref.binaryOutcome();
}
