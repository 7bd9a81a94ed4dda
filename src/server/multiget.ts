/**
 * A multi-key `get|gets|gat|gats` of one client session, answered in pieces so
 * that what memgate holds for the session stays within its reply bound
 * (`limits.maxPendingReplyBytesPerSession`) however the request is written,
 * and so that no line memcached would close the shared socket on is sent.
 *
 *   client:   get a b a c                         (keys in client order)
 *   unique:   a b c                               (each fetched once)
 *   upstream: mg <ns>a v f k │ mg <ns>b v f k │ mg <ns>c v f k
 *             └─ sent while the worst case of what is in flight fits the budget
 *   client:   VALUE a … VALUE b … VALUE a … VALUE c … END
 *             └─ written in client order as the answers arrive and the client
 *                drains; a repeated key's answer is the same Buffers again
 *
 * One upstream request per distinct key (a one-key get goes as `mg`, a gat as
 * `gat <exptime> <key>`): every such line is far below memcached's 2048-byte
 * limit for non-get lines (try_read_command_ascii closes a connection whose
 * line passes it), and each answer is one key's, so the answers of repeated
 * keys are known without parsing the VALUE list.
 *
 * Budget: each key in flight reserves the largest reply one key can have
 * (maxValueBytes, memcached's -I, plus its VALUE line); a key is sent only
 * while
 *
 *   bound − client socket's unwritten bytes − answers held − reserved
 *         − (other requests in flight × largest reply seen)  ≥  one key's worst case
 *
 * or, when nothing of this get is in flight or held, one key at a time. The
 * upstream socket is always read; the bound is kept by not asking for more.
 *
 * Servers: each key's request goes to the server its key maps to (the
 * session's UpstreamLink), so the keys of different servers are in flight
 * together and answer in any order; an answer finds its key by the key's
 * offset in the line. A slow server does not delay the fetching of the
 * others' keys. Once every key is sent, the answers are held (each was
 * reserved for already) and the session is woken only by the last one, so
 * the reply goes to the client in one write, as twemproxy's does, not in one
 * piece per server; while keys are still to be sent (the budget did not
 * allow them all) every answer wakes it, as it may write and send more. A
 * key whose server is marked down is answered as a miss at
 * once (the get's outcome is then backend_miss); a key whose answer was
 * lost (its connection broke) ends the reply with the error, as before.
 *
 * While a MultiGet is not finished, the session forwards nothing after it (it
 * stays at the head of the session's waiting list): requests keep their order
 * on the upstream socket, and their replies are not held behind it.
 *
 * NOTE: an item stored by another path than memgate larger than maxValueBytes
 * (memcached started with a larger -I) can exceed the reservation by its size.
 */
import { partsBytes } from '../protocol/text/bytes.js';
import { Cmd } from '../protocol/text/commands.js';
import { Replies } from '../protocol/text/replies.js';
import { ReplyStatus, Request, type ReplyOwner } from '../protocol/text/request.js';
import { SERVER_DOWN } from '../upstream/cluster.js';

/** A VALUE line's worst case on top of the value: name, 250-byte key, flags, length, cas, two CRLFs. */
const VALUE_LINE_BYTES = 512;
/** Most keys of one MultiGet in flight at once, however small the items. */
export const MAX_KEYS_IN_FLIGHT = 256;

/** More than a socket's default high-water mark (16 KiB). */
const WRITE_SLACK_BYTES = 64 * 1024;

const END_TAIL = Buffer.from('END\r\n', 'latin1');

/** What a MultiGet needs of its session. */
export interface MultiGetHost {
  /** sends one key's request upstream (to the server its key maps to) */
  sendUpstream(req: Request): void;
  /** the get is complete and some of its keys were misses because their server is marked down */
  onBackendMiss(parent: Request): void;
  /** a key's answer arrived: the session should flush (and pump) soon */
  onMultiGetProgress(): void;
  /** bytes budget left for this session now (bound minus what it holds and expects), may be negative */
  replyBudgetLeft(): number;
  /** the session has nothing else in flight or unwritten: one key may always go */
  isIdleApartFrom(mg: MultiGet): boolean;
}

/** Where the answers are written: a WriteBatch-like sink with a running byte count. */
export interface PartSink {
  push(chunk: Buffer): void;
  readonly bytes: number;
}

/**
 * Offsets of the first occurrence of each key (so `get a b a` fetches a and b),
 * with a small open-addressing table of FNV-1a hashes over the key bytes: no
 * strings are made of keys.
 */
export function firstOccurrences(line: Buffer, keys: readonly number[]): Int32Array {
  const n = keys.length >> 1;
  const first = new Int32Array(n);
  let size = 16;
  while (size < n * 2) size <<= 1;
  const table = new Int32Array(size).fill(-1);
  const mask = size - 1;
  for (let i = 0; i < n; i++) {
    const s = keys[i * 2] ?? 0;
    const e = keys[i * 2 + 1] ?? 0;
    let h = 0x811c9dc5;
    for (let j = s; j < e; j++) h = Math.imul(h ^ (line[j] ?? 0), 0x01000193);
    let slot = h & mask;
    for (;;) {
      const k = table[slot] ?? -1;
      if (k < 0) {
        table[slot] = i;
        first[i] = i;
        break;
      }
      const ks = keys[k * 2] ?? 0;
      const ke = keys[k * 2 + 1] ?? 0;
      if (ke - ks === e - s && line.compare(line, s, e, ks, ke) === 0) {
        first[i] = k;
        break;
      }
      slot = (slot + 1) & mask;
    }
  }
  return first;
}

/** One key's request: the parent's command, line, namespace and exptime, one key. */
function keyRequest(parent: Request, index: number, owner: ReplyOwner): Request {
  const r = new Request();
  r.cmd = parent.cmd;
  r.line = parent.line;
  r.keys.push(parent.keys[index * 2] ?? 0, parent.keys[index * 2 + 1] ?? 0);
  r.exptime = parent.exptime;
  r.ns = parent.ns;
  r.owner = owner;
  return r;
}

/**
 * `parts` of a one-key VALUES reply without its final `END\r\n` (a hit's
 * VALUE line and data, or nothing for a miss); null when it does not end so.
 */
function withoutEnd(parts: Buffer[]): Buffer[] | null {
  const last = parts[parts.length - 1];
  if (last === undefined || last.length < END_TAIL.length) return null;
  const at = last.length - END_TAIL.length;
  if (last.compare(END_TAIL, 0, END_TAIL.length, at, last.length) !== 0) return null;
  if (at === 0) parts.pop();
  else parts[parts.length - 1] = last.subarray(0, at);
  return parts;
}

/** The key number whose start offset is `start` (keys are in line order), or -1. */
function keyIndexAt(keys: readonly number[], start: number): number {
  let lo = 0;
  let hi = (keys.length >> 1) - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const at = keys[mid * 2] ?? 0;
    if (at === start) return mid;
    if (at < start) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

export function isMultiGet(req: Request): boolean {
  const c = req.cmd;
  return req.keys.length > 2 && (c === Cmd.GET || c === Cmd.GETS || c === Cmd.GAT || c === Cmd.GATS);
}

export class MultiGet implements ReplyOwner {
  readonly parent: Request;
  private readonly host: MultiGetHost;
  /** the largest reply one key can have */
  private readonly perKeyBytes: number;
  /** index of the first occurrence of each client key */
  private readonly first: Int32Array;
  /** per first occurrence: client keys still to write (the key and its repeats) */
  private readonly uses: Int32Array;
  /** per key index (first occurrences only): its answer once arrived, until its last use is written */
  private readonly answers: (Buffer[] | null)[];
  /** next client key to send (first occurrences only are sent) */
  private sendPos: number;
  /** next client key to write */
  private writePos: number;
  private inFlight: number;
  /** keys answered as misses because their server is marked down */
  private backendMisses: number;
  /** bytes of answers arrived and not released (each distinct answer counted once) */
  private held: number;
  /** the first failure (an upstream error for one key): ends the reply in place of END */
  private failure: Buffer | null;
  private hits: number;
  /**
   * The client socket's queue is filled with answers up to the session's bound
   * and no further (at least one key's worst case more than WRITE_SLACK_BYTES).
   * Writing stops only with WRITE_SLACK_BYTES or more queued, past a socket's
   * high-water mark, so a 'drain' always comes to resume it.
   */
  private readonly writeBoundBytes: number;

  constructor(parent: Request, host: MultiGetHost, maxValueBytes: number, boundBytes: number) {
    this.parent = parent;
    this.host = host;
    this.perKeyBytes = maxValueBytes + VALUE_LINE_BYTES;
    this.writeBoundBytes = Math.max(boundBytes, this.perKeyBytes + WRITE_SLACK_BYTES);
    const n = parent.keys.length >> 1;
    this.first = firstOccurrences(parent.line, parent.keys);
    this.uses = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const f = this.first[i] ?? i;
      this.uses[f] = (this.uses[f] ?? 0) + 1;
    }
    this.answers = new Array<Buffer[] | null>(n).fill(null);
    this.sendPos = 0;
    this.writePos = 0;
    this.inFlight = 0;
    this.backendMisses = 0;
    this.held = 0;
    this.failure = null;
    this.hits = 0;
  }

  /** Worst case of the answers this get expects plus the ones it holds. */
  get heldAndReservedBytes(): number {
    return this.held + this.inFlight * this.perKeyBytes;
  }

  /** Keys asked upstream and not yet answered. */
  get keysInFlight(): number {
    return this.inFlight;
  }

  /** Every key was sent (or the get failed and sends no more). */
  get allSent(): boolean {
    return this.sendPos >= this.first.length || this.failure !== null;
  }

  /** The reply is complete (the parent is done): the session may forward what follows. */
  get finished(): boolean {
    return this.parent.done && this.inFlight === 0;
  }

  /** Sends keys while the budget allows. */
  pump(): void {
    const n = this.first.length;
    while (this.sendPos < n && this.failure === null && this.inFlight < MAX_KEYS_IN_FLIGHT) {
      const i = this.sendPos;
      if ((this.first[i] ?? i) !== i) {
        this.sendPos++;
        continue;
      }
      const mayAlways = this.inFlight === 0 && this.held === 0 && this.host.isIdleApartFrom(this);
      if (!mayAlways && this.host.replyBudgetLeft() < this.perKeyBytes) return;
      this.sendPos++;
      this.inFlight++;
      const r = keyRequest(this.parent, i, this);
      this.host.sendUpstream(r);
      // the get's latency counts from its first key's write
      if (this.parent.sentAtMs === 0) this.parent.sentAtMs = r.sentAtMs;
    }
  }

  /**
   * One key's answer (or its failure). Keys on different servers answer in
   * any order; the key's offset in the line says which one it is. A key
   * whose server is marked down (SERVER_DOWN) is a miss.
   */
  onReply(req: Request): void {
    req.upstreamLink?.answered(req);
    this.inFlight--;
    const i = keyIndexAt(this.parent.keys, req.keys[0] ?? -1);
    const parts = req.reply;
    req.reply = null;
    if (this.failure !== null || this.parent.done) {
      this.host.onMultiGetProgress();
      return;
    }
    const serverDown = req.status === ReplyStatus.ERROR && parts !== null && parts[0] === SERVER_DOWN;
    if (i >= 0 && serverDown) {
      this.backendMisses++;
      this.answers[i] = [];
      this.host.onMultiGetProgress();
      return;
    }
    const answer = i < 0 || req.status === ReplyStatus.ERROR || parts === null ? null : withoutEnd(parts);
    if (answer === null) {
      const isErrorLine = i >= 0 && req.status === ReplyStatus.ERROR && parts !== null && parts.length > 0;
      this.failure = isErrorLine ? Buffer.concat(parts) : Replies.BACKEND_FAILURE;
    } else {
      this.answers[i] = answer;
      this.held += partsBytes(answer);
      // every key sent and some still to come: nothing is flushed or sent until the last one
      if (this.inFlight > 0 && this.allSent) return;
    }
    this.host.onMultiGetProgress();
  }

  /**
   * Writes the answers that are ready, in client key order, into `out` while
   * the client socket's queue (`queued` bytes, plus what this call wrote)
   * stays under the bound. Completes the parent (END, or the failure) after
   * the last key. Returns true when the parent is done.
   */
  writeReady(out: PartSink, queued: number): boolean {
    const parent = this.parent;
    if (parent.done) return true;
    const n = this.first.length;
    const start = out.bytes;
    while (this.writePos < n) {
      const i = this.writePos;
      const f = this.first[i] ?? i;
      const answer = this.answers[f] ?? null;
      if (answer === null) break;
      const size = partsBytes(answer);
      const pending = queued + out.bytes - start;
      if (size > 0 && pending >= WRITE_SLACK_BYTES && pending + size > this.writeBoundBytes) break;
      for (let p = 0; p < answer.length; p++) {
        const b = answer[p];
        if (b !== undefined) out.push(b);
      }
      if (size > 0) this.hits++;
      const left = (this.uses[f] ?? 1) - 1;
      this.uses[f] = left;
      if (left === 0) {
        this.answers[f] = null;
        this.held -= size;
      }
      this.writePos++;
    }
    if (this.failure !== null) {
      // nothing more is asked; the keys not answered in order before it are not written
      this.finish(this.failure, ReplyStatus.ERROR, out);
      return true;
    }
    if (this.writePos < n) return false;
    if (this.backendMisses > 0) this.host.onBackendMiss(parent);
    this.finish(Replies.END, this.hits > 0 ? ReplyStatus.OK : ReplyStatus.MISS, out);
    return true;
  }

  /** The session closed: forget the answers (replies still in flight are dropped as they come). */
  abandon(): void {
    this.failure = Replies.BACKEND_FAILURE;
    this.answers.fill(null);
    this.held = 0;
  }

  private finish(last: Buffer, status: ReplyStatus, out: PartSink): void {
    const parent = this.parent;
    out.push(last);
    parent.status = status;
    parent.hits = this.hits;
    parent.reply = null;
    parent.done = true;
    this.answers.fill(null);
    this.held = 0;
  }
}
