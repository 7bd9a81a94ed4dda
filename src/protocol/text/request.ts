/**
 * The one record a client command becomes. The text parser (and later the
 * binary parser) fills the "request" half; policy fills `ns`; the upstream
 * connection fills the "reply" half; the session writes `reply` in order.
 *
 * All positions are byte offsets into `line`, the command line without its
 * line end (for a binary packet: the equivalent meta line the binary parser
 * writes). Values are kept as the Buffer slices they arrived in.
 *
 *   line:  g e t ␠ f o o ␠ b a r
 *                 ^start ^end
 *   keys:  [4, 7, 8, 11]       (start, end) pairs, in request order
 */
import type { Cmd } from './commands.js';

export const EMPTY = Buffer.alloc(0);

/**
 * Class of the first reply line, set by whoever answers the request. The
 * session uses it for `noreply` / meta `q` hiding and for tenant stats.
 */
export const ReplyStatus = {
  NONE: 0,
  /** VALUE...END with at least one VALUE, VA, ME, STAT...END, VERSION, OK, MN */
  OK: 1,
  /** END with no VALUE, EN */
  MISS: 2,
  STORED: 3,
  NOT_STORED: 4,
  EXISTS: 5,
  NOT_FOUND: 6,
  DELETED: 7,
  TOUCHED: 8,
  /** the new value of incr/decr */
  NUMBER: 9,
  /** ERROR, CLIENT_ERROR ..., SERVER_ERROR ... (never hidden by noreply or q) */
  ERROR: 10,
  /** meta `HD` (success without a value); `VA` is OK, `EN` is MISS, NS/EX/NF as above */
  HD: 11,
} as const;
export type ReplyStatus = (typeof ReplyStatus)[keyof typeof ReplyStatus];

/**
 * What a request read by the binary parser (src/protocol/binary/parser.ts)
 * needs to be answered in binary: the reply echoes `opcode` and `opaque`, and
 * src/protocol/binary/reply.ts turns the text reply into one packet.
 */
export interface BinaryInfo {
  /** the request's opcode, as sent (quiet variants included); echoed in the reply */
  readonly opcode: number;
  /** the request's opaque, echoed in the reply (unsigned 32-bit) */
  readonly opaque: number;
  /** the request header's 8 cas bytes, big-endian (all zero when none) */
  readonly cas: Buffer;
  /** a quiet opcode (GETQ, SETQ, ...): success replies are not sent, errors are */
  readonly quiet: boolean;
  /** GETK, GETKQ, GATK, GATKQ: the reply carries the key */
  readonly returnKey: boolean;
}

/** What sent a request upstream and counts it in flight until answered (src/upstream/cluster.ts UpstreamLink). */
export interface UpstreamSender {
  answered(req: Request): void;
}

/** Told when a forwarded request has its reply (or its failure). */
export interface ReplyOwner {
  onReply(req: Request): void;
}

export class Request {
  /** command id from commands.ts */
  cmd: Cmd | 0;
  /** the command line without "\r\n" (a slice of the read chunk or a copy of a partial line) */
  line: Buffer;
  /** (start, end) offset pairs of every key in `line`, in request order */
  keys: number[];
  /** client flags (storage commands), 32-bit unsigned */
  flags: number;
  /** exptime (storage, touch, gat, gats); may be negative: "expire at once" */
  exptime: number;
  /** length of the data block (storage commands, ms) */
  bytes: number;
  /**
   * A numeric argument kept as its digits, so 64-bit values stay exact:
   * the cas unique of `cas`, the delta of `incr`/`decr`, the level of `verbosity`.
   */
  numStart: number;
  numEnd: number;
  /** flush_all delay in seconds, -1 when absent */
  delay: number;
  /** raw range of everything after the command name (stats sub-commands, admin families) */
  argsStart: number;
  argsEnd: number;
  /** classic `noreply` was the last token */
  noreply: boolean;
  /** meta flags except `q`: (start, end) pairs of each flag token in `line` */
  metaFlags: number[];
  /** meta `q`: noreply semantics for the codes memcached documents per command */
  metaQuiet: boolean;
  /** meta `b`: the key is base64 encoded */
  metaBase64: boolean;
  /** the data block without its "\r\n", as the slices it arrived in; null when none */
  value: Buffer[] | null;
  /** set by the parser (or policy) when the request is answered locally with this reply */
  error: Buffer | null;
  /** set by the binary parser: the request came as a binary packet and is answered as one */
  binary: BinaryInfo | null;

  // ---- filled by policy / session / upstream ----
  /** namespace (tenant prefix + generation) prepended upstream and stripped from replies; null: keys pass unchanged */
  ns: Buffer | null;
  /** digests of the keys that map to `ns` + digest (upstream-key.ts), by key number; null until one is needed */
  digests: (Buffer | undefined)[] | null;
  /** who is told when the reply is complete */
  owner: ReplyOwner | null;
  /** bytes to write to the client, in order */
  reply: Buffer[] | null;
  status: ReplyStatus;
  /** number of VALUE / VA items in the reply (hits) */
  hits: number;
  done: boolean;
  /** monotonic ms when the request was written upstream */
  sentAtMs: number;
  /** the session already counted this request's outcome where it decided it (a denial, a rate limit) */
  outcomeCounted: boolean;
  /** set by the encoder: a one-key get/gets went upstream as `mg`; its VA/EN reply is read back as VALUE/END */
  upstreamMeta: boolean;
  /** a SET refused as too large, sent upstream as a delete of its key (server/oversized-set.ts) */
  oversizedSet: boolean;
  /** index of the server (in its pool) the upstream cluster sent this request to; -1 when none */
  upstreamServer: number;
  /** who sent it there and counts it in flight (the session's link to the cluster); told when it is answered */
  upstreamLink: UpstreamSender | null;

  constructor() {
    this.cmd = 0;
    this.line = EMPTY;
    this.keys = [];
    this.flags = 0;
    this.exptime = 0;
    this.bytes = 0;
    this.numStart = 0;
    this.numEnd = 0;
    this.delay = -1;
    this.argsStart = 0;
    this.argsEnd = 0;
    this.noreply = false;
    this.metaFlags = [];
    this.metaQuiet = false;
    this.metaBase64 = false;
    this.value = null;
    this.error = null;
    this.binary = null;
    this.ns = null;
    this.digests = null;
    this.owner = null;
    this.reply = null;
    this.status = ReplyStatus.NONE;
    this.hits = 0;
    this.done = false;
    this.sentAtMs = 0;
    this.outcomeCounted = false;
    this.upstreamMeta = false;
    this.oversizedSet = false;
    this.upstreamServer = -1;
    this.upstreamLink = null;
  }

  get keyCount(): number {
    return this.keys.length >> 1;
  }
}

/** Where the parser delivers its output. Given once, at construction. */
export interface RequestSink {
  /** a complete request (or one carrying `error`, to be answered in its place in order) */
  onRequest(req: Request): void;
  /**
   * The stream cannot be resynchronised (line too long, unreadable data
   * length): write `reply` after the replies already owed, then close.
   */
  onFatal(reply: Buffer): void;
}
