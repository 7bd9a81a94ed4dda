/**
 * Output of one turn for one socket, written with as few `write` calls as
 * possible.
 *
 *   push(a) push(b) push(BIG) push(c) push(d)
 *        │                               writeTo(sock)
 *        ▼
 *   [ a b ] [ BIG ] [ c d ]     small neighbours are copied into one buffer;
 *     copy    as-is   copy      a chunk of COPY_LIMIT bytes or more is written
 *                               as the slice it is (large values are never copied)
 *
 * One buffer is one `write` (libuv tries it synchronously); several are
 * written corked, as one `writev`. Every `write` on a loopback TCP socket runs
 * the peer's receive path in the writer's own time, and Node's stream
 * machinery costs per chunk, so fewer, larger writes are what keeps a proxy's
 * CPU per request down. Copying a few dozen bytes is far cheaper than either.
 */

/** Chunks shorter than this are copied together; longer ones are written as they are. */
export const COPY_LIMIT = 16 * 1024;

/** What writeTo() needs of a socket (net.Socket, tls.TLSSocket). */
export interface BatchSink {
  write(chunk: Buffer): boolean;
  cork(): void;
  uncork(): void;
}

export class WriteBatch {
  private chunks: Buffer[];
  private total: number;

  constructor() {
    this.chunks = [];
    this.total = 0;
  }

  /** Bytes pushed since the last writeTo(). */
  get bytes(): number {
    return this.total;
  }

  get isEmpty(): boolean {
    return this.chunks.length === 0;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.total += chunk.length;
  }

  /** Forgets everything pushed (the socket is gone). */
  clear(): void {
    this.chunks.length = 0;
    this.total = 0;
  }

  /**
   * Writes everything pushed, in order, and empties the batch. Returns false
   * when the socket asked to wait for 'drain' (its buffer is over the mark).
   */
  writeTo(sink: BatchSink): boolean {
    const chunks = this.chunks;
    const n = chunks.length;
    if (n === 0) return true;
    // one chunk, or all small together: a single write
    const ok =
      n === 1 || this.total < COPY_LIMIT ? sink.write(runBuffer(chunks, 0, n, this.total)) : writeRuns(sink, chunks);
    chunks.length = 0;
    this.total = 0;
    return ok;
  }
}

/** `chunks[from, to)` copied into one buffer of `bytes` bytes. */
function copyRun(chunks: readonly Buffer[], from: number, to: number, bytes: number): Buffer {
  const out = Buffer.allocUnsafe(bytes);
  let at = 0;
  for (let i = from; i < to; i++) {
    const c = chunks[i] as Buffer;
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** `chunks[from, to)` as one buffer: the chunk itself when there is one, else a copy of them all. */
function runBuffer(chunks: readonly Buffer[], from: number, to: number, bytes: number): Buffer {
  return to - from === 1 ? (chunks[from] as Buffer) : copyRun(chunks, from, to, bytes);
}

/** Corked: each run of small chunks as one copy, each large chunk as it is. */
function writeRuns(sink: BatchSink, chunks: readonly Buffer[]): boolean {
  let ok = true;
  sink.cork();
  let runStart = 0;
  let runBytes = 0;
  for (let i = 0; i < chunks.length; i++) {
    const c = chunks[i] as Buffer;
    if (c.length < COPY_LIMIT) {
      runBytes += c.length;
      continue;
    }
    if (runBytes > 0) ok = sink.write(runBuffer(chunks, runStart, i, runBytes)) && ok;
    ok = sink.write(c) && ok;
    runStart = i + 1;
    runBytes = 0;
  }
  const n = chunks.length;
  if (runBytes > 0) ok = sink.write(runBuffer(chunks, runStart, n, runBytes)) && ok;
  sink.uncork();
  return ok;
}
