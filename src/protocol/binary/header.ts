/**
 * memcached's binary protocol: the 24-byte packet header, opcodes and status
 * codes (memcached's protocol_binary.h; the protocol is deprecated upstream
 * since 1.6, but SASL clients such as memjs still speak only it).
 *
 *   byte  0        1        2        3        4        5        6        7
 *       ┌────────┬────────┬─────────────────┬────────┬────────┬─────────────────┐
 *     0 │ magic  │ opcode │   key length    │ extlen │datatype│ vbucket/status  │
 *       ├────────┴────────┴─────────────────┼────────┴────────┴─────────────────┤
 *     8 │        total body length          │             opaque                │
 *       ├───────────────────────────────────┴───────────────────────────────────┤
 *    16 │                                  cas                                  │
 *       └───────────────────────────────────────────────────────────────────────┘
 *   body: extras (extlen) │ key (key length) │ value (the rest of the body)
 *
 * Every number is big-endian. A request has magic 0x80, a response 0x81 and
 * echoes the request's opcode and opaque.
 */

export const MAGIC_REQUEST = 0x80;
export const MAGIC_RESPONSE = 0x81;

export const HEADER_BYTES = 24;

/** Byte offsets of the header fields. */
export const Offset = {
  MAGIC: 0,
  OPCODE: 1,
  KEY_LENGTH: 2,
  EXTRAS_LENGTH: 4,
  DATA_TYPE: 5,
  /** vbucket id in a request, status in a response */
  STATUS: 6,
  BODY_LENGTH: 8,
  OPAQUE: 12,
  CAS: 16,
} as const;

export const Opcode = {
  GET: 0x00,
  SET: 0x01,
  ADD: 0x02,
  REPLACE: 0x03,
  DELETE: 0x04,
  INCREMENT: 0x05,
  DECREMENT: 0x06,
  QUIT: 0x07,
  FLUSH: 0x08,
  GETQ: 0x09,
  NOOP: 0x0a,
  VERSION: 0x0b,
  GETK: 0x0c,
  GETKQ: 0x0d,
  APPEND: 0x0e,
  PREPEND: 0x0f,
  STAT: 0x10,
  SETQ: 0x11,
  ADDQ: 0x12,
  REPLACEQ: 0x13,
  DELETEQ: 0x14,
  INCREMENTQ: 0x15,
  DECREMENTQ: 0x16,
  QUITQ: 0x17,
  FLUSHQ: 0x18,
  APPENDQ: 0x19,
  PREPENDQ: 0x1a,
  TOUCH: 0x1c,
  GAT: 0x1d,
  GATQ: 0x1e,
  SASL_LIST_MECHS: 0x20,
  SASL_AUTH: 0x21,
  SASL_STEP: 0x22,
  GATK: 0x23,
  GATKQ: 0x24,
} as const;
export type Opcode = (typeof Opcode)[keyof typeof Opcode];

/** Response status (protocol_binary.h, protocol_binary_response_status). */
export const Status = {
  SUCCESS: 0x00,
  KEY_ENOENT: 0x01,
  KEY_EEXISTS: 0x02,
  E2BIG: 0x03,
  EINVAL: 0x04,
  NOT_STORED: 0x05,
  DELTA_BADVAL: 0x06,
  AUTH_ERROR: 0x20,
  AUTH_CONTINUE: 0x21,
  UNKNOWN_COMMAND: 0x81,
  ENOMEM: 0x82,
  NOT_SUPPORTED: 0x83,
  EINTERNAL: 0x84,
  EBUSY: 0x85,
  ETMPFAIL: 0x86,
} as const;
export type Status = (typeof Status)[keyof typeof Status];

/**
 * The body of an error response when there is no more specific reason:
 * memcached's own text (proto_bin.c, write_bin_error) for the statuses it
 * sends, plain words for the four it never sends (0x83..0x86).
 */
export const STATUS_TEXT: Readonly<Record<number, string>> = Object.freeze({
  [Status.KEY_ENOENT]: 'Not found',
  [Status.KEY_EEXISTS]: 'Data exists for key.',
  [Status.E2BIG]: 'Too large.',
  [Status.EINVAL]: 'Invalid arguments',
  [Status.NOT_STORED]: 'Not stored.',
  [Status.DELTA_BADVAL]: 'Non-numeric server-side value for incr or decr',
  [Status.AUTH_ERROR]: 'Auth failure.',
  [Status.UNKNOWN_COMMAND]: 'Unknown command',
  [Status.ENOMEM]: 'Out of memory',
  [Status.NOT_SUPPORTED]: 'Not supported',
  [Status.EINTERNAL]: 'Internal error',
  [Status.EBUSY]: 'Busy',
  [Status.ETMPFAIL]: 'Temporary failure',
});

/** Extras of a request, by their fixed lengths (protocol_binary.h request bodies). */
export const Extras = {
  /** set/add/replace: flags u32, expiration u32 */
  STORE: 8,
  /** incr/decr: delta u64, initial u64, expiration u32 */
  ARITH: 20,
  /** touch/gat/gatk: expiration u32; flush: optional expiration u32 */
  EXPIRATION: 4,
  /** get hit, gat hit, touch hit: the item's flags u32 */
  GET_RESPONSE: 4,
} as const;

/** What an opcode asks for; the parser reads each family the same way. */
export const OpKind = {
  UNKNOWN: 0,
  GET: 1,
  GAT: 2,
  TOUCH: 3,
  STORE: 4,
  CONCAT: 5,
  DELETE: 6,
  ARITH: 7,
  NOOP: 8,
  VERSION: 9,
  QUIT: 10,
  FLUSH: 11,
  STAT: 12,
  SASL_LIST_MECHS: 13,
  SASL_AUTH: 14,
} as const;
export type OpKind = (typeof OpKind)[keyof typeof OpKind];

/** Properties of one opcode. */
export interface OpcodeInfo {
  readonly kind: OpKind;
  /** the non-quiet opcode of the same command (GETQ → GET); the opcode itself when not quiet */
  readonly base: number;
  readonly quiet: boolean;
  /** GETK, GETKQ, GATK, GATKQ */
  readonly returnKey: boolean;
}

const UNKNOWN_OPCODE: OpcodeInfo = Object.freeze({ kind: OpKind.UNKNOWN, base: -1, quiet: false, returnKey: false });

/** Opcode → its properties; unknown opcodes map to kind UNKNOWN. */
export const OPCODES: readonly OpcodeInfo[] = (() => {
  const t: OpcodeInfo[] = new Array<OpcodeInfo>(256).fill(UNKNOWN_OPCODE);
  const op = (code: number, kind: OpKind, base: number = code, returnKey = false): void => {
    t[code] = Object.freeze({ kind, base, quiet: base !== code, returnKey });
  };
  const O = Opcode;
  const K = OpKind;
  op(O.GET, K.GET);
  op(O.GETQ, K.GET, O.GET);
  op(O.GETK, K.GET, O.GETK, true);
  op(O.GETKQ, K.GET, O.GETK, true);
  op(O.GAT, K.GAT);
  op(O.GATQ, K.GAT, O.GAT);
  op(O.GATK, K.GAT, O.GATK, true);
  op(O.GATKQ, K.GAT, O.GATK, true);
  op(O.TOUCH, K.TOUCH);
  op(O.SET, K.STORE);
  op(O.SETQ, K.STORE, O.SET);
  op(O.ADD, K.STORE);
  op(O.ADDQ, K.STORE, O.ADD);
  op(O.REPLACE, K.STORE);
  op(O.REPLACEQ, K.STORE, O.REPLACE);
  op(O.APPEND, K.CONCAT);
  op(O.APPENDQ, K.CONCAT, O.APPEND);
  op(O.PREPEND, K.CONCAT);
  op(O.PREPENDQ, K.CONCAT, O.PREPEND);
  op(O.DELETE, K.DELETE);
  op(O.DELETEQ, K.DELETE, O.DELETE);
  op(O.INCREMENT, K.ARITH);
  op(O.INCREMENTQ, K.ARITH, O.INCREMENT);
  op(O.DECREMENT, K.ARITH);
  op(O.DECREMENTQ, K.ARITH, O.DECREMENT);
  op(O.NOOP, K.NOOP);
  op(O.VERSION, K.VERSION);
  op(O.QUIT, K.QUIT);
  op(O.QUITQ, K.QUIT, O.QUIT);
  op(O.FLUSH, K.FLUSH);
  op(O.FLUSHQ, K.FLUSH, O.FLUSH);
  op(O.STAT, K.STAT);
  op(O.SASL_LIST_MECHS, K.SASL_LIST_MECHS);
  op(O.SASL_AUTH, K.SASL_AUTH);
  op(O.SASL_STEP, K.SASL_AUTH);
  return Object.freeze(t);
})();

export function opcodeInfo(opcode: number): OpcodeInfo {
  return OPCODES[opcode & 0xff] ?? UNKNOWN_OPCODE;
}

/** All-zero cas bytes, shared by every request that sends none. Never written to. */
export const ZERO_CAS: Buffer = Buffer.alloc(8);

/**
 * Writes a response header at `dst[at, at + 24)`. `cas` is 8 big-endian bytes
 * (or null for 0). Data type is always 0 (raw bytes).
 */
export function writeResponseHeader(
  dst: Buffer,
  at: number,
  opcode: number,
  status: number,
  keyLength: number,
  extrasLength: number,
  bodyLength: number,
  opaque: number,
  cas: Buffer | null,
): void {
  dst[at + Offset.MAGIC] = MAGIC_RESPONSE;
  dst[at + Offset.OPCODE] = opcode;
  dst.writeUInt16BE(keyLength, at + Offset.KEY_LENGTH);
  dst[at + Offset.EXTRAS_LENGTH] = extrasLength;
  dst[at + Offset.DATA_TYPE] = 0;
  dst.writeUInt16BE(status, at + Offset.STATUS);
  dst.writeUInt32BE(bodyLength, at + Offset.BODY_LENGTH);
  dst.writeUInt32BE(opaque >>> 0, at + Offset.OPAQUE);
  if (cas === null) dst.fill(0, at + Offset.CAS, at + HEADER_BYTES);
  else cas.copy(dst, at + Offset.CAS, 0, 8);
}
