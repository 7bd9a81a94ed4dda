import { describe, expect, it } from 'vitest';
import {
  HEADER_BYTES,
  MAGIC_RESPONSE,
  OPCODES,
  OpKind,
  Opcode,
  STATUS_TEXT,
  Status,
  ZERO_CAS,
  opcodeInfo,
  writeResponseHeader,
} from '../../../../src/protocol/binary/header.js';

describe('binary header constants', () => {
  it('has the status codes the style guide names', () => {
    expect(Status.AUTH_ERROR).toBe(0x20);
    expect(Status.AUTH_CONTINUE).toBe(0x21);
    expect(Status.UNKNOWN_COMMAND).toBe(0x81);
  });

  it("has memcached's text for every error status", () => {
    for (const status of Object.values(Status)) {
      if (status === Status.SUCCESS || status === Status.AUTH_CONTINUE) continue;
      expect(STATUS_TEXT[status], `0x${status.toString(16)}`).toBeTruthy();
    }
  });

  it('maps each quiet opcode to its loud twin, of the same kind', () => {
    const pairs: [number, number][] = [
      [Opcode.GETQ, Opcode.GET],
      [Opcode.GETKQ, Opcode.GETK],
      [Opcode.GATQ, Opcode.GAT],
      [Opcode.GATKQ, Opcode.GATK],
      [Opcode.SETQ, Opcode.SET],
      [Opcode.ADDQ, Opcode.ADD],
      [Opcode.REPLACEQ, Opcode.REPLACE],
      [Opcode.APPENDQ, Opcode.APPEND],
      [Opcode.PREPENDQ, Opcode.PREPEND],
      [Opcode.DELETEQ, Opcode.DELETE],
      [Opcode.INCREMENTQ, Opcode.INCREMENT],
      [Opcode.DECREMENTQ, Opcode.DECREMENT],
      [Opcode.QUITQ, Opcode.QUIT],
      [Opcode.FLUSHQ, Opcode.FLUSH],
    ];
    for (const [quiet, loud] of pairs) {
      const q = opcodeInfo(quiet);
      const l = opcodeInfo(loud);
      expect(q.quiet).toBe(true);
      expect(l.quiet).toBe(false);
      expect(q.base).toBe(loud);
      expect(l.base).toBe(loud);
      expect(q.kind).toBe(l.kind);
      expect(q.returnKey).toBe(l.returnKey);
    }
    const quietCount = OPCODES.filter((o) => o.quiet).length;
    expect(quietCount).toBe(pairs.length);
  });

  it('knows exactly the opcodes it defines', () => {
    const known = new Set<number>(Object.values(Opcode));
    for (let op = 0; op < 256; op++) {
      expect(opcodeInfo(op).kind !== OpKind.UNKNOWN, `0x${op.toString(16)}`).toBe(known.has(op));
    }
  });

  it('writes a response header big-endian at fixed offsets', () => {
    const dst = Buffer.alloc(HEADER_BYTES + 2, 0xee);
    const cas = Buffer.from('0102030405060708', 'hex');
    writeResponseHeader(dst, 1, Opcode.GETK, Status.KEY_ENOENT, 0x0102, 4, 0x0a0b0c0d, 0xfffffffe, cas);
    expect(dst.toString('hex')).toBe(
      'ee' + '81' + '0c' + '0102' + '04' + '00' + '0001' + '0a0b0c0d' + 'fffffffe' + '0102030405060708' + 'ee',
    );
    writeResponseHeader(dst, 1, Opcode.NOOP, Status.SUCCESS, 0, 0, 0, 0, null);
    expect(dst[1]).toBe(MAGIC_RESPONSE);
    expect(dst.subarray(17, 25).equals(ZERO_CAS)).toBe(true);
  });
});
