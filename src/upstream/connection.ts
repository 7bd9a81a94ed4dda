/**
 * One pipelined socket to memcached, shared by many client sessions.
 *
 *   send(req) ─▶ encode ─▶ WriteBatch (this turn's requests) ─setImmediate─▶ socket ─▶ memcached
 *                  │
 *                  └▶ in-flight FIFO:  [ head … tail ]   (array + head index)
 *                                         ▲
 *   memcached ─▶ onread ─▶ ResponseParser ┘ reads the head's shape, fills its
 *                                           reply, shifts it, tells its owner
 *
 * Reads (plain TCP and unix sockets) go straight from libuv into this
 * connection's read slab (`onread`), skipping the stream layer's per-read
 * Buffer, push and nextTick. Each read lands after the bytes of the reads
 * before it, so what the parser hands out (values are forwarded as slices,
 * never copied) is never overwritten; a slab with too little room left is
 * dropped for a new one, and lives on only while replies still point into it.
 * TLS sockets read through 'data' as before.
 *
 * States:  IDLE ─start─▶ CONNECTING ─connect─▶ UP
 *                            ▲    │ fail          │ close, error, timeout, desync
 *                            │    ▼               ▼
 *                            └── BACKOFF ◀────────┘        close(): CLOSING ─▶ CLOSED
 *
 * Every connection asks `version` first. Until that answer has come (while
 * CONNECTING, and while UP with the probe in flight) requests wait in a
 * bounded queue, unencoded: whether the server speaks the meta protocol
 * decides how they are sent (a one-key get as mg) and whether they may be sent
 * at all (a meta command to a pre-1.6 server is answered `ERROR` by memgate,
 * backend-guard.ts). While in BACKOFF the server is considered down: requests
 * fail at once with `SERVER_ERROR backend failure`. A broken connection
 * destroys its socket first (a late reply must never answer the next
 * request), then fails everything in flight, counts one reset by reason,
 * logs once at warn and reconnects with backoff.
 *
 * A CLIENT_ERROR or ERROR reply to a storage request (set … cas, ms) breaks
 * the connection too (BACKEND_ERROR): memcached may be reading the refused
 * data block as commands, so no later reply on that socket can be trusted.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { ResetReason, UpstreamCounters } from '../admin/counters.js';
import { formatHostPort } from '../config/schema.js';
import { ErrorCode, UpstreamError, type UpstreamErrorCode } from '../errors.js';
import { Cmd, ReplyShape, commandSpec } from '../protocol/text/commands.js';
import { notAllowed, Replies } from '../protocol/text/replies.js';
import { ReplyStatus, Request, type ReplyOwner } from '../protocol/text/request.js';
import { encodeRequest } from '../protocol/text/request-encoder.js';
import { ResponseParser, replyShapeOf, type InFlight } from '../protocol/text/response-parser.js';
import { backendRefusal, parseVersionReply, versionNumber } from './backend-guard.js';
import { WriteBatch } from './write-batch.js';

/**
 * Exponential reconnect backoff with jitter.
 *
 *   attempt:   0      1       2       3      ...
 *   ceiling:   min    2·min   4·min   8·min  ... capped at max
 *   delay:     uniformly in [ceiling/2, ceiling], never below min
 *
 * The jitter spreads the reconnects of many connections (and many memgate
 * instances) that lost the same server at the same moment.
 */
export class Backoff {
  private readonly minMs: number;
  private readonly maxMs: number;
  private readonly random: () => number;
  private attempt: number;

  /** `random` returns a number in [0, 1); tests pass a fixed one. */
  constructor(minMs: number, maxMs: number, random: () => number = Math.random) {
    this.minMs = Math.max(1, Math.floor(minMs));
    this.maxMs = Math.max(this.minMs, Math.floor(maxMs));
    this.random = random;
    this.attempt = 0;
  }

  /** Number of delays handed out since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** The delay before the next attempt, in ms; each call doubles the ceiling up to max. */
  next(): number {
    // 2^30 already passes any sane max; stop growing the exponent there
    const exp = Math.min(this.attempt, 30);
    this.attempt++;
    const ceiling = Math.min(this.maxMs, this.minMs * 2 ** exp);
    const delay = Math.floor(ceiling / 2 + (this.random() * ceiling) / 2);
    return Math.min(this.maxMs, Math.max(this.minMs, delay));
  }

  /** Back to the minimum (the connection proved itself). */
  reset(): void {
    this.attempt = 0;
  }
}

export const ConnState = { IDLE: 0, CONNECTING: 1, UP: 2, BACKOFF: 3, CLOSING: 4, CLOSED: 5 } as const;
export type ConnState = (typeof ConnState)[keyof typeof ConnState];

/**
 * How a connection tells its server (cluster.ts) that it failed or answered,
 * so that `failureLimit` failures in a row mark the server down.
 */
export interface ConnectionHealth {
  /** the connection broke (not by close()); `code` says how */
  onConnectionBroken(code: UpstreamErrorCode): void;
  /** the first reply since the connection was (re)made: the server answers */
  onConnectionAnswered(): void;
  /** the least delay before the next reconnect (retryAfterMs while the server is marked down), else 0 */
  readonly retryDelayMs: number;
}

/** TLS to memcached (-Z): the server certificate is always verified. */
export interface ConnectionTls {
  readonly ca?: Buffer | undefined;
  readonly cert?: Buffer | undefined;
  readonly key?: Buffer | undefined;
  /** the name the certificate must carry; absent: the host (an IP address is matched against the IP SANs) */
  readonly servername?: string | undefined;
}

/**
 * tls.connect options for a memcached server at `host` ('' for a unix socket):
 * the certificate is always verified. servername (SNI and the name checked)
 * defaults to the host, and is left out for an IP address, which is matched
 * against the certificate's IP SANs.
 */
export function memcachedTlsOptions(host: string, t: ConnectionTls): tls.ConnectionOptions {
  const servername = t.servername ?? (host !== '' && net.isIP(host) === 0 ? host : undefined);
  return { ca: t.ca, cert: t.cert, key: t.key, servername, rejectUnauthorized: true };
}

export interface ConnectionOptions {
  readonly host: string;
  readonly port: number;
  /** a unix socket path instead of host:port */
  readonly path?: string | null;
  /** how the server is shown in logs and metrics (default host:port) */
  readonly address?: string;
  readonly tls?: ConnectionTls | null;
  readonly health?: ConnectionHealth;
  readonly connectTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly backoffMinMs: number;
  readonly backoffMaxMs: number;
  /** requests queued while connecting; more fail at once */
  readonly maxQueued: number;
  /**
   * Send one-key get/gets as mg once the server's `version` says it is
   * memcached 1.6 or later (asked first thing on every connection).
   */
  readonly metaGets: boolean;
  readonly logger: Logger;
  /** where resets are counted (shared by the server's connections); a private set when absent */
  readonly counters?: UpstreamCounters;
}

/** Completes `req` with a local reply (status ERROR) and tells its owner. */
export function failRequest(req: Request, reply: Buffer): void {
  req.reply = [reply];
  req.status = ReplyStatus.ERROR;
  req.hits = 0;
  req.done = true;
  req.owner?.onReply(req);
}

const COMPACT_AT = 1024;
const VERSION_LINE = Buffer.from('version\r\n', 'latin1');
/** The version token of a `VERSION <token>` reply, as `stats` shows it (one word). */
const VERSION_TOKEN = /^VERSION ([\x21-\x7e]{1,64})$/;
const FIRST_META_VERSION = versionNumber(1, 6, 0);

/** True when a `VERSION …` reply names memcached 1.6 or later (meta commands with `VA`/`EN` replies). */
export function speaksMeta(versionReply: string): boolean {
  return parseVersionReply(versionReply) >= FIRST_META_VERSION;
}

/** The `version` a connection asks before anything else. */
function versionProbe(owner: ReplyOwner): Request {
  const req = new Request();
  req.cmd = Cmd.VERSION;
  req.line = VERSION_LINE.subarray(0, 7);
  req.argsStart = 7;
  req.argsEnd = 7;
  req.owner = owner;
  return req;
}
const WATCH_NOT_ALLOWED = notAllowed('watch');

/** The reset each way of breaking counts (close() is not a reset). */
const RESET_REASON_BY_CODE: Partial<Record<UpstreamErrorCode, ResetReason>> = {
  [ErrorCode.UPSTREAM_TIMEOUT]: ResetReason.TIMEOUT,
  [ErrorCode.UPSTREAM_CLOSED]: ResetReason.CLOSED,
  [ErrorCode.UPSTREAM_DESYNC]: ResetReason.DESYNC,
  [ErrorCode.UPSTREAM_BACKEND_ERROR]: ResetReason.BACKEND_ERROR,
  [ErrorCode.UPSTREAM_CONNECT]: ResetReason.CONNECT_FAILED,
  [ErrorCode.UPSTREAM_SOCKET]: ResetReason.SOCKET_ERROR,
};

/**
 * What counts towards marking a server down: it did not connect, did not
 * answer in time, or dropped the connection. A desync or a refused storage
 * request can follow from what a client sent, and a client must never be
 * able to take a shared server out of service.
 */
const FAILURE_CODES: ReadonlySet<UpstreamErrorCode> = new Set<UpstreamErrorCode>([
  ErrorCode.UPSTREAM_CONNECT,
  ErrorCode.UPSTREAM_TIMEOUT,
  ErrorCode.UPSTREAM_CLOSED,
  ErrorCode.UPSTREAM_SOCKET,
]);

const UPPER_C = 0x43; // 'C' of CLIENT_ERROR
const UPPER_E = 0x45; // 'E' of ERROR

/**
 * A storage request (its data block went upstream) that memcached answered
 * CLIENT_ERROR or ERROR. SERVER_ERROR (out of memory storing object, object
 * too large for cache) is not one: memcached swallows the data block first.
 */
function isRefusedStorage(req: Request): boolean {
  if (req.status !== ReplyStatus.ERROR || !commandSpec(req.cmd).hasValue) return false;
  const first = req.reply?.[0]?.[0];
  return first === UPPER_C || first === UPPER_E;
}

/** Requests batched and not yet written past this many bytes make the connection count as blocked. */
const MAX_BATCH_BYTES = 1024 * 1024;

function writeTick(conn: UpstreamConnection): void {
  conn.writeBatch();
}

function checkTimeoutTick(conn: UpstreamConnection): void {
  conn.checkTimeout();
}

function connectTimeoutTick(conn: UpstreamConnection): void {
  conn.onConnectTimeout();
}

function reconnectTick(conn: UpstreamConnection): void {
  conn.reconnect();
}

/** A read slab: the region after the bytes already read is the next read's buffer. */
const READ_SLAB_BYTES = 64 * 1024;
/** Less room than this left in the slab: the next read gets a new one (as large a read as libuv's usual 64 KiB is not needed). */
const MIN_READ_BYTES = 16 * 1024;

export class UpstreamConnection implements InFlight, ReplyOwner {
  readonly address: string;
  private readonly opts: ConnectionOptions;
  private readonly log: Logger;
  private readonly parser: ResponseParser;
  private readonly backoff: Backoff;
  private state: ConnState;
  private socket: net.Socket | null;
  /** in-flight requests, oldest at `head` */
  private fifo: (Request | undefined)[];
  private head: number;
  /** requests waiting, unencoded, for the connection to open and its version probe to be answered */
  private queued: Request[];
  /** encoder output of one send(), reused */
  private readonly scratch: Buffer[];
  /**
   * Requests sent in this turn of the event loop, written together once the
   * turn's I/O callbacks have run (setImmediate): every client whose request
   * arrived in the same poll shares one write to memcached.
   */
  private readonly batch: WriteBatch;
  private writeScheduled: boolean;
  /** clock read once per batch */
  private tickNowMs: number;
  private blocked: boolean;
  private drainCallbacks: (() => void)[];
  private checkTimer: NodeJS.Timeout | null;
  private connectTimer: NodeJS.Timeout | null;
  private reconnectTimer: NodeJS.Timeout | null;
  /** a down state was logged at warn; the next one only at debug until the connection is up again */
  private downLogged: boolean;
  private repliedSinceConnect: boolean;
  /** monotonic ms of the last connect */
  private upSinceMs: number;
  /** monotonic ms of the last bytes read from memcached (a reply in progress is not a timeout) */
  private lastReadMs: number;
  private closeWaiters: (() => void)[];
  /** this socket's server answered the version probe as memcached 1.6+: one-key gets go as mg */
  private metaGets: boolean;
  /** the version probe of this socket has been answered: requests are encoded and written at once */
  private versionKnown: boolean;
  /** this socket's server speaks the meta protocol (mg ms md ma mn me) */
  private serverMeta: boolean;
  /** this socket's server version (backend-guard.ts versionNumber), 0 when unknown */
  private serverVersion: number;
  /** the version string the server last answered (kept across reconnects), null before any */
  private versionText: string | null;
  private readonly counters: UpstreamCounters;
  /** the slab reads land in (plain sockets), and how much of it earlier reads filled */
  private readSlab: Buffer | null;
  private readUsed: number;
  private readonly nextReadBufferBound: () => Buffer;

  constructor(opts: ConnectionOptions) {
    this.opts = opts;
    this.address = opts.address ?? formatHostPort(opts.host, opts.port);
    this.log = opts.logger;
    this.parser = new ResponseParser(this);
    this.backoff = new Backoff(opts.backoffMinMs, opts.backoffMaxMs);
    this.state = ConnState.IDLE;
    this.socket = null;
    this.fifo = [];
    this.head = 0;
    this.queued = [];
    this.scratch = [];
    this.batch = new WriteBatch();
    this.writeScheduled = false;
    this.tickNowMs = 0;
    this.blocked = false;
    this.drainCallbacks = [];
    this.checkTimer = null;
    this.connectTimer = null;
    this.reconnectTimer = null;
    this.downLogged = false;
    this.repliedSinceConnect = false;
    this.upSinceMs = 0;
    this.lastReadMs = 0;
    this.closeWaiters = [];
    this.metaGets = false;
    this.versionKnown = false;
    this.serverMeta = false;
    this.serverVersion = 0;
    this.versionText = null;
    this.counters = opts.counters ?? new UpstreamCounters(this.address);
    this.readSlab = null;
    this.readUsed = 0;
    this.nextReadBufferBound = () => this.nextReadBuffer();
  }

  get connState(): ConnState {
    return this.state;
  }

  get isUp(): boolean {
    return this.state === ConnState.UP;
  }

  /** memcached's version string as this server last answered the version probe; null before any answer */
  get version(): string | null {
    return this.versionText;
  }

  /** requests written and not answered, and requests queued until the connection can take them */
  get inFlight(): number {
    return this.fifo.length - this.head + this.queued.length;
  }

  get isBlocked(): boolean {
    return this.blocked || this.batch.bytes >= MAX_BATCH_BYTES;
  }

  start(): void {
    if (this.state !== ConnState.IDLE) return;
    const tickMs = Math.max(5, Math.min(250, Math.floor(this.opts.requestTimeoutMs / 4)));
    this.checkTimer = setInterval(checkTimeoutTick, tickMs, this);
    this.checkTimer.unref();
    this.connect();
  }

  /**
   * Encodes and writes `req` (or queues it while connecting). Never throws: on
   * any failure `req` is completed with a local reply, possibly synchronously.
   */
  send(req: Request): void {
    const st = this.state;
    if (st === ConnState.BACKOFF || st === ConnState.CLOSING || st === ConnState.CLOSED) {
      failRequest(req, Replies.BACKEND_FAILURE);
      return;
    }
    if (replyShapeOf(req) === ReplyShape.NONE) {
      // quit: memcached would close the shared socket; the session handles it itself
      req.reply = null;
      req.status = ReplyStatus.NONE;
      req.done = true;
      req.owner?.onReply(req);
      return;
    }
    if (req.cmd === Cmd.WATCH) {
      // a watcher turns the socket into a log stream; it cannot share a pipelined connection
      failRequest(req, WATCH_NOT_ALLOWED);
      return;
    }
    if (st !== ConnState.UP || !this.versionKnown) {
      if (this.inFlight >= this.opts.maxQueued) {
        failRequest(req, Replies.BACKEND_FAILURE);
        return;
      }
      this.queued.push(req);
      return;
    }
    this.write(req);
  }

  /** Encodes `req` for this socket's server and batches it, or answers it in memcached's place. */
  private write(req: Request): void {
    const out = this.scratch;
    out.length = 0;
    const refused = backendRefusal(req, this.serverMeta, this.serverVersion) ?? encodeRequest(req, out, this.metaGets);
    if (refused !== null) {
      failRequest(req, refused);
      return;
    }
    this.scheduleWrite();
    req.sentAtMs = this.tickNowMs;
    this.fifo.push(req);
    for (let i = 0; i < out.length; i++) {
      const b = out[i];
      if (b !== undefined) this.batch.push(b);
    }
  }

  /** `cb` runs once when the socket is writable again (at once, next tick, when it is not blocked). */
  onDrain(cb: () => void): void {
    if (!this.isBlocked) {
      process.nextTick(cb);
      return;
    }
    if (!this.drainCallbacks.includes(cb)) this.drainCallbacks.push(cb);
  }

  /**
   * Stops taking requests, waits (up to requestTimeoutMs) for the replies in
   * flight, then closes the socket. Whatever is still in flight then fails.
   */
  close(): Promise<void> {
    if (this.state === ConnState.CLOSED) return Promise.resolve();
    const wasUp = this.state === ConnState.UP;
    this.state = ConnState.CLOSING;
    this.clearTimer('reconnectTimer');
    if (!wasUp || this.inFlight === 0) {
      this.finishClose();
      return Promise.resolve();
    }
    const timer = setTimeout(() => this.finishClose(), this.opts.requestTimeoutMs);
    timer.unref();
    return new Promise((resolve) => {
      this.closeWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  // ---- InFlight (used by the response parser) ----

  peek(): Request | undefined {
    return this.fifo[this.head];
  }

  shift(): void {
    if (this.head >= this.fifo.length) return;
    const answered = this.fifo[this.head];
    this.fifo[this.head] = undefined;
    this.head++;
    if (this.head === this.fifo.length) {
      this.fifo.length = 0;
      this.head = 0;
    } else if (this.head >= COMPACT_AT && this.head * 2 >= this.fifo.length) {
      this.fifo = this.fifo.slice(this.head);
      this.head = 0;
    }
    if (!this.repliedSinceConnect) {
      // a connection that answers has proved itself: the next failure starts from the minimum delay
      this.repliedSinceConnect = true;
      this.backoff.reset();
      this.opts.health?.onConnectionAnswered();
    }
    if (this.state === ConnState.CLOSING && this.head === this.fifo.length) this.finishClose();
    else if (answered !== undefined && isRefusedStorage(answered)) {
      // the reply itself is memcached's and still reaches its owner (the parser tells it after shift)
      this.broken(ErrorCode.UPSTREAM_BACKEND_ERROR, 'memcached refused a storage request (CLIENT_ERROR / ERROR)');
    }
  }

  /**
   * The version probe's reply (the only request this connection owns), or its
   * failure when the socket broke first: a failed probe's socket is gone, and
   * its successor asks again.
   */
  onReply(req: Request): void {
    // a probe failed with its socket: the queued requests were failed with it
    if (this.state !== ConnState.UP && this.state !== ConnState.CLOSING) return;
    const parts = req.reply;
    const text = req.status === ReplyStatus.OK && parts !== null ? Buffer.concat(parts).toString('latin1').trim() : '';
    // anything but a VERSION line (an ERROR from something that is not memcached 1.6) means no meta
    this.serverMeta = speaksMeta(text);
    this.serverVersion = parseVersionReply(text);
    const token = VERSION_TOKEN.exec(text)?.[1];
    if (token !== undefined) this.versionText = token;
    this.metaGets = this.opts.metaGets && this.serverMeta;
    this.versionKnown = true;
    if (this.log.isLevelEnabled('debug'))
      this.log.debug({ version: text, meta: this.serverMeta, metaGets: this.metaGets }, 'upstream version');
    const waiting = this.queued;
    if (waiting.length === 0) return;
    this.queued = [];
    for (let i = 0; i < waiting.length; i++) {
      const r = waiting[i];
      if (r !== undefined) this.write(r);
    }
  }

  onDesync(reason: string): void {
    this.broken(ErrorCode.UPSTREAM_DESYNC, `backend desync: ${reason}`);
  }

  // ---- timers and socket events (module-level tick functions call these) ----

  /** Writes the requests batched in this turn. */
  writeBatch(): void {
    this.writeScheduled = false;
    const sock = this.socket;
    if (sock === null || sock.destroyed || (this.state !== ConnState.UP && this.state !== ConnState.CLOSING)) {
      // a dropped socket's requests were failed with it; while connecting they wait in pendingOut
      this.batch.clear();
      return;
    }
    const wasBlocked = this.isBlocked;
    if (!this.batch.writeTo(sock)) this.blocked = true;
    else if (wasBlocked && !this.blocked) this.onWritable();
  }

  /**
   * Breaks the connection when its oldest request has waited requestTimeoutMs
   * with no byte from memcached: a large reply still arriving (one tenant's
   * huge multi-get) is progress, not a hung server, and must not fail every
   * other tenant's requests on the socket.
   */
  checkTimeout(): void {
    if (this.state !== ConnState.UP && this.state !== ConnState.CLOSING) return;
    const req = this.fifo[this.head];
    if (req === undefined) return;
    const since = req.sentAtMs > this.lastReadMs ? req.sentAtMs : this.lastReadMs;
    if (performance.now() - since > this.opts.requestTimeoutMs) {
      this.broken(ErrorCode.UPSTREAM_TIMEOUT, `no reply within ${this.opts.requestTimeoutMs} ms`);
    }
  }

  onConnectTimeout(): void {
    this.connectTimer = null;
    if (this.state === ConnState.CONNECTING) {
      this.broken(ErrorCode.UPSTREAM_CONNECT, `connect timed out after ${this.opts.connectTimeoutMs} ms`);
    }
  }

  reconnect(): void {
    this.reconnectTimer = null;
    if (this.state === ConnState.BACKOFF) this.connect();
  }

  private scheduleWrite(): void {
    if (!this.writeScheduled) {
      this.writeScheduled = true;
      this.tickNowMs = performance.now();
      setImmediate(writeTick, this);
    }
  }

  private connect(): void {
    this.state = ConnState.CONNECTING;
    this.repliedSinceConnect = false;
    // a new socket reads into a new slab: nothing of the old socket's can be written over
    this.readSlab = null;
    const sock = this.openSocket((nread, buf) => {
      // buf is the Buffer nextReadBuffer() gave; true: keep reading (memcached's socket is never paused)
      if (sock === this.socket) this.onRead(nread, buf as Buffer);
      return true;
    });
    this.socket = sock;
    this.connectTimer = setTimeout(connectTimeoutTick, this.opts.connectTimeoutMs, this);
    this.connectTimer.unref();
    // over TLS nothing is written before the handshake has verified the server's certificate
    sock.on(this.opts.tls == null ? 'connect' : 'secureConnect', () => {
      if (sock === this.socket) this.onConnect(sock);
    });
    if (this.opts.tls != null) {
      sock.on('data', (chunk: Buffer) => {
        if (sock !== this.socket) return;
        this.lastReadMs = performance.now(); // once per chunk
        this.parser.feed(chunk);
      });
    }
    sock.on('drain', () => {
      if (sock === this.socket) this.onWritable();
    });
    sock.on('error', (err: Error) => {
      if (sock !== this.socket) return;
      const connecting = this.state === ConnState.CONNECTING;
      this.broken(connecting ? ErrorCode.UPSTREAM_CONNECT : ErrorCode.UPSTREAM_SOCKET, err.message, err);
    });
    sock.on('close', () => {
      if (sock !== this.socket) return;
      const mid = this.parser.isMidReply ? ' mid-reply' : '';
      this.broken(ErrorCode.UPSTREAM_CLOSED, `connection closed by memcached${mid}`);
    });
  }

  /** A plain socket reads into the read slab and calls `onread` for each read; a TLS one emits 'data'. */
  private openSocket(onread: (nread: number, buf: Uint8Array) => boolean): net.Socket {
    const o = this.opts;
    const t = o.tls;
    if (t == null) {
      const reads = { buffer: this.nextReadBufferBound, callback: onread };
      if (o.path != null) return net.connect({ path: o.path, onread: reads });
      return net.connect({ host: o.host, port: o.port, noDelay: true, keepAlive: true, onread: reads });
    }
    return tls.connect({
      ...(o.path != null ? { path: o.path } : { host: o.host, port: o.port }),
      ...memcachedTlsOptions(o.host, t),
    });
  }

  /** `nread` bytes arrived at the start of `buf` (the region nextReadBuffer() gave). */
  private onRead(nread: number, buf: Buffer): void {
    this.readUsed += nread;
    this.lastReadMs = performance.now(); // once per read
    this.parser.feed(buf.subarray(0, nread));
  }

  /** Where the next read lands: right after the bytes read so far, or in a new slab. */
  private nextReadBuffer(): Buffer {
    let slab = this.readSlab;
    if (slab === null || slab.length - this.readUsed < MIN_READ_BYTES) {
      slab = Buffer.allocUnsafeSlow(READ_SLAB_BYTES);
      this.readSlab = slab;
      this.readUsed = 0;
    }
    return slab.subarray(this.readUsed);
  }

  private onConnect(sock: net.Socket): void {
    this.clearTimer('connectTimer');
    this.state = ConnState.UP;
    this.upSinceMs = performance.now();
    if (this.opts.path == null) {
      sock.setNoDelay(true);
      sock.setKeepAlive(true, 30_000);
    }
    if (this.downLogged) {
      this.log.warn('upstream connection restored');
      this.downLogged = false;
    } else if (this.log.isLevelEnabled('debug')) {
      this.log.debug('upstream connected');
    }
    // asked before anything else; the requests queued meanwhile are written once it is answered
    this.versionKnown = false;
    this.scheduleWrite();
    const probe = versionProbe(this);
    probe.sentAtMs = this.tickNowMs;
    this.fifo.push(probe);
    this.batch.push(VERSION_LINE);
  }

  private onWritable(): void {
    this.blocked = false;
    const cbs = this.drainCallbacks;
    if (cbs.length === 0) return;
    this.drainCallbacks = [];
    for (let i = 0; i < cbs.length; i++) cbs[i]?.();
  }

  /**
   * The connection cannot be trusted any more: destroy the socket, fail
   * everything in flight, and (unless closing) reconnect after a backoff.
   */
  private broken(code: UpstreamErrorCode, message: string, cause?: unknown): void {
    const closing = this.state === ConnState.CLOSING || this.state === ConnState.CLOSED;
    // a connection that stayed up a while proved itself even if it was idle
    if (this.state === ConnState.UP && performance.now() - this.upSinceMs > this.opts.backoffMaxMs)
      this.backoff.reset();
    const err = new UpstreamError(code, this.address, message, cause === undefined ? undefined : { cause });
    const reason = RESET_REASON_BY_CODE[code];
    if (reason !== undefined) this.counters.resets[reason] = (this.counters.resets[reason] ?? 0) + 1;
    this.dropSocket();
    if (closing) {
      this.finishClose();
      return;
    }
    this.state = ConnState.BACKOFF;
    const health = this.opts.health;
    if (health !== undefined && FAILURE_CODES.has(code)) health.onConnectionBroken(code);
    const delayMs = Math.max(this.backoff.next(), health?.retryDelayMs ?? 0);
    this.reconnectTimer = setTimeout(reconnectTick, delayMs, this);
    this.reconnectTimer.unref();
    const failed = this.inFlight;
    if (!this.downLogged) {
      this.downLogged = true;
      this.log.warn({ err, code, failed, retryInMs: delayMs }, 'upstream connection broken');
    } else if (this.log.isLevelEnabled('debug')) {
      this.log.debug({ err, code, failed, retryInMs: delayMs }, 'upstream still down');
    }
    this.failAll(Replies.BACKEND_FAILURE);
    this.onWritable();
  }

  /** Destroys the socket and forgets everything read or queued on it. */
  private dropSocket(): void {
    const sock = this.socket;
    this.socket = null;
    if (sock !== null) sock.destroy();
    this.clearTimer('connectTimer');
    this.parser.reset();
    this.batch.clear();
    this.metaGets = false;
    this.versionKnown = false;
    this.serverMeta = false;
    this.serverVersion = 0;
  }

  /** Fails every in-flight request; new ones may be sent from the owners' callbacks. */
  private failAll(reply: Buffer): void {
    const list = this.fifo;
    const from = this.head;
    const waiting = this.queued;
    this.fifo = [];
    this.head = 0;
    this.queued = [];
    for (let i = from; i < list.length; i++) {
      const req = list[i];
      if (req !== undefined) failRequest(req, reply);
    }
    for (let i = 0; i < waiting.length; i++) {
      const req = waiting[i];
      if (req !== undefined) failRequest(req, reply);
    }
  }

  private finishClose(): void {
    if (this.state === ConnState.CLOSED) return;
    this.state = ConnState.CLOSED;
    this.clearTimer('checkTimer');
    this.clearTimer('connectTimer');
    this.clearTimer('reconnectTimer');
    this.dropSocket();
    this.failAll(Replies.BACKEND_FAILURE);
    this.onWritable();
    const waiters = this.closeWaiters;
    this.closeWaiters = [];
    for (const w of waiters) w();
  }

  private clearTimer(which: 'checkTimer' | 'connectTimer' | 'reconnectTimer'): void {
    const t = this[which];
    if (t !== null) {
      clearTimeout(t);
      this[which] = null;
    }
  }
}
