/**
 * Counts memcached text-protocol replies straight from Buffers, for the load generator.
 *
 * The generator only sends `get` (one key, or several with --get-keys) and `set`, so a
 * reply is one of
 *
 *   END\r\n                                   get, miss
 *   VALUE <key> <flags> <bytes>[ <cas>]\r\n   get, hit: the data block is skipped by
 *   <bytes of data>\r\n                       counting, never read or copied (a
 *   END\r\n                                   multi-get: several VALUE blocks, one hit)
 *   STORED\r\n                                set
 *   any other line (ERROR, CLIENT_ERROR …,    an error reply; it still completes one
 *   SERVER_ERROR …, NOT_STORED, …)            request, so the pipeline stays in step
 *
 * Replies come back in request order, so the caller only needs how many completed in
 * a chunk: feed() returns that number and bumps the per-kind counters. Lines are found
 * with indexOf(LF); only a line cut by a chunk boundary is copied (into `carry`).
 * A malformed VALUE line, a data block not ending in CRLF or a line longer than
 * MAX_REPLY_LINE_BYTES leaves the stream out of step: the counter turns `failed` and
 * ignores everything after it.
 */

const LF = 0x0a; // \n
const CR = 0x0d; // \r
const SPACE = 0x20;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;

const END = Buffer.from('END', 'latin1');
const STORED = Buffer.from('STORED', 'latin1');
const VALUE_ = Buffer.from('VALUE ', 'latin1');

/** memcached's key limit (250) plus the rest of a VALUE line, with room to spare */
export const MAX_REPLY_LINE_BYTES = 1024;
/** memcached -I tops out at 1 GiB; a larger length is garbage */
const MAX_DATA_BYTES = 1024 * 1024 * 1024;

const State = {
  /** reading a reply line */
  LINE: 0,
  /** skipping the data bytes of a VALUE block */
  DATA: 1,
  /** expecting the CR after a data block */
  DATA_CR: 2,
  /** expecting the LF after a data block */
  DATA_LF: 3,
  /** out of step: ignore everything */
  FAILED: 4,
} as const;
type State = (typeof State)[keyof typeof State];

function isLine(buf: Buffer, start: number, end: number, word: Buffer): boolean {
  return end - start === word.length && buf.compare(word, 0, word.length, start, end) === 0;
}

function startsWith(buf: Buffer, start: number, end: number, word: Buffer): boolean {
  return end - start > word.length && buf.compare(word, 0, word.length, start, start + word.length) === 0;
}

/**
 * The <bytes> field of `VALUE <key> <flags> <bytes>[ <cas>]`, given the line after "VALUE ";
 * -1 when the line is malformed.
 */
export function parseValueBytes(buf: Buffer, start: number, end: number): number {
  let i = start;
  // skip <key> and <flags>: two tokens, each followed by one space
  for (let token = 0; token < 2; token++) {
    const tokenStart = i;
    while (i < end && buf[i] !== SPACE) i++;
    if (i === tokenStart || i === end) return -1;
    i++;
  }
  let n = 0;
  const digitsStart = i;
  while (i < end && buf[i] !== SPACE) {
    const c = buf[i] ?? 0;
    if (c < DIGIT_0 || c > DIGIT_9) return -1;
    n = n * 10 + (c - DIGIT_0);
    if (n > MAX_DATA_BYTES) return -1;
    i++;
  }
  return i === digitsStart ? -1 : n;
}

/** Counts replies; see the file comment. One per connection. */
export class ReplyCounter {
  hits: number;
  misses: number;
  stored: number;
  errors: number;
  failed: boolean;
  private state: State;
  /** VALUE blocks seen in the get reply being read */
  private values: number;
  /** data bytes (without the CRLF) left in the current VALUE block */
  private remaining: number;
  private readonly carry: Buffer;
  private carryLength: number;

  constructor() {
    this.hits = 0;
    this.misses = 0;
    this.stored = 0;
    this.errors = 0;
    this.failed = false;
    this.state = State.LINE;
    this.values = 0;
    this.remaining = 0;
    this.carry = Buffer.allocUnsafe(MAX_REPLY_LINE_BYTES);
    this.carryLength = 0;
  }

  /** Zero the counters (the parse state is kept: a reply may be half read). */
  resetCounters(): void {
    this.hits = 0;
    this.misses = 0;
    this.stored = 0;
    this.errors = 0;
  }

  /** Every reply counted so far. */
  completed(): number {
    return this.hits + this.misses + this.stored + this.errors;
  }

  /** Parse a chunk; returns how many replies it completed. */
  feed(chunk: Buffer): number {
    const before = this.completed();
    let pos = 0;
    const len = chunk.length;
    while (pos < len && this.state !== State.FAILED) {
      if (this.state === State.LINE) pos = this.readLine(chunk, pos);
      else pos = this.skipData(chunk, pos);
    }
    return this.completed() - before;
  }

  /** Reads one line (or stashes its start); returns the next position. */
  private readLine(chunk: Buffer, pos: number): number {
    const lf = chunk.indexOf(LF, pos);
    if (lf === -1) {
      const rest = chunk.length - pos;
      if (this.carryLength + rest > MAX_REPLY_LINE_BYTES) return this.fail(chunk.length);
      chunk.copy(this.carry, this.carryLength, pos);
      this.carryLength += rest;
      return chunk.length;
    }
    if (this.carryLength === 0) {
      if (lf - pos > MAX_REPLY_LINE_BYTES) return this.fail(chunk.length);
      this.onLine(chunk, pos, lf > pos && chunk[lf - 1] === CR ? lf - 1 : lf);
      return lf + 1;
    }
    // NOTE: the line began in an earlier chunk; finish it in `carry`.
    if (this.carryLength + (lf - pos) > MAX_REPLY_LINE_BYTES) return this.fail(chunk.length);
    chunk.copy(this.carry, this.carryLength, pos, lf);
    let end = this.carryLength + (lf - pos);
    this.carryLength = 0;
    if (end > 0 && this.carry[end - 1] === CR) end--;
    this.onLine(this.carry, 0, end);
    return lf + 1;
  }

  private onLine(buf: Buffer, start: number, end: number): void {
    if (isLine(buf, start, end, END)) {
      if (this.values > 0) this.hits++;
      else this.misses++;
      this.values = 0;
      return;
    }
    if (startsWith(buf, start, end, VALUE_)) {
      const bytes = parseValueBytes(buf, start + VALUE_.length, end);
      if (bytes < 0) {
        this.fail(0);
        return;
      }
      this.values++;
      this.remaining = bytes;
      this.state = bytes === 0 ? State.DATA_CR : State.DATA;
      return;
    }
    this.values = 0;
    if (isLine(buf, start, end, STORED)) this.stored++;
    else this.errors++;
  }

  /** Skips data bytes and checks the CRLF after them; returns the next position. */
  private skipData(chunk: Buffer, pos: number): number {
    if (this.state === State.DATA) {
      const n = Math.min(this.remaining, chunk.length - pos);
      this.remaining -= n;
      if (this.remaining === 0) this.state = State.DATA_CR;
      return pos + n;
    }
    const expected = this.state === State.DATA_CR ? CR : LF;
    if (chunk[pos] !== expected) return this.fail(chunk.length);
    this.state = this.state === State.DATA_CR ? State.DATA_LF : State.LINE;
    return pos + 1;
  }

  private fail(next: number): number {
    this.state = State.FAILED;
    this.failed = true;
    return next;
  }
}
