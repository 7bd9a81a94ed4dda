/**
 * Closed-loop load generator for memcached's text protocol.
 *
 *   node --import tsx bench/load/generator.ts --port 11211 [--connections 50] [--depth 16]
 *        [--ratio 10:1] [--value-size 32] [--keys 100000] [--get-keys 1] [--duration 10] [--warmup 1] [--json]
 *
 * N connections each keep `depth` single-key requests outstanding (a `get` or a `set`, picked
 * by the get:set ratio, on a uniformly random key; with --get-keys N each get names N random
 * keys, a multi-get that counts as one request). Before the timed phase every key is set
 * once (the preload), so gets hit. Replies are counted from Buffers by ReplyCounter; a
 * request's latency runs from the write that carried it to the chunk that completed its reply:
 *
 *   fill(): one clock read → write k requests → starts[tail..tail+k) = now
 *   data:   one clock read → ReplyCounter.feed(chunk) = c → record now - starts[head..head+c)
 *           → fill() c more (the connection is back to `depth` outstanding)
 *
 * Phases: connect → preload → warm-up (not recorded) → timed → drain (bounded) → close.
 * With --phases it prints `#phase timed-start` / `#phase timed-end` lines as the timed phase
 * starts and ends, so a parent process can sample CPU counters at the same moments.
 * With --json the last stdout line is the result as JSON: {ops, opsPerSec, p50Us, p99Us,
 * p999Us, errors, misses, …}. Run it as a child process (bench/run.ts does) so the load does
 * not share an event loop with the proxy under test.
 */
import net from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Histogram } from './histogram.js';
import { ReplyCounter } from './reply-counter.js';

export interface GeneratorOptions {
  readonly host: string;
  readonly port: number;
  readonly connections: number;
  /** requests each connection keeps outstanding */
  readonly depth: number;
  /** relative weights: gets : sets */
  readonly getWeight: number;
  readonly setWeight: number;
  readonly valueSize: number;
  readonly keys: number;
  /** keys per get: 1 = single-key gets, more = multi-gets (one request, one reply) */
  readonly getKeys: number;
  readonly keyPrefix: string;
  readonly durationSec: number;
  readonly warmupSec: number;
  /** set every key once before the warm-up */
  readonly preload: boolean;
  /** requests each connection keeps outstanding during the preload */
  readonly preloadDepth: number;
  readonly preloadTimeoutSec: number;
  readonly connectTimeoutMs: number;
  /** longest wait for outstanding replies after the timed phase */
  readonly drainTimeoutMs: number;
  readonly seed: number;
}

export const DEFAULT_GENERATOR_OPTIONS: GeneratorOptions = Object.freeze({
  host: '127.0.0.1',
  port: 11211,
  connections: 50,
  depth: 1,
  getWeight: 10,
  setWeight: 1,
  valueSize: 32,
  keys: 100_000,
  getKeys: 1,
  keyPrefix: 'k:',
  durationSec: 10,
  warmupSec: 1,
  preload: true,
  preloadDepth: 32,
  preloadTimeoutSec: 120,
  connectTimeoutMs: 5000,
  drainTimeoutMs: 2000,
  seed: 1,
});

export interface LoadResult {
  /** successful replies (hits + misses + stored) completed in the timed phase */
  ops: number;
  opsPerSec: number;
  p50Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
  meanUs: number;
  /** error replies, protocol errors and connection failures */
  errors: number;
  misses: number;
  hits: number;
  stored: number;
  durationSec: number;
  connections: number;
  depth: number;
  preloadSec: number;
  preloadErrors: number;
}

export type Phase = 'preload' | 'warmup' | 'timed-start' | 'timed-end';

export interface GeneratorHooks {
  onPhase?(phase: Phase): void;
}

const Mode = {
  IDLE: 0,
  PRELOAD: 1,
  LOAD: 2,
  STOPPING: 3,
} as const;
type Mode = (typeof Mode)[keyof typeof Mode];

const GET_ = Buffer.from('get ', 'latin1');
const SET_ = Buffer.from('set ', 'latin1');
const CRLF = Buffer.from('\r\n', 'latin1');

/** Everything a connection needs to encode a request; shared by all connections. */
class Workload {
  readonly keyLength: number;
  /** every key, back to back, each `keyLength` bytes */
  readonly keyTable: Buffer;
  /** ` 0 0 <size>\r\n<value>\r\n` */
  readonly setTail: Buffer;
  readonly maxRequestBytes: number;
  readonly keys: number;
  readonly getKeys: number;
  readonly setWeight: number;
  readonly totalWeight: number;

  constructor(opts: GeneratorOptions) {
    const width = String(Math.max(0, opts.keys - 1)).length;
    this.keys = opts.keys;
    this.keyLength = Buffer.byteLength(opts.keyPrefix, 'latin1') + width;
    this.keyTable = Buffer.allocUnsafe(this.keyLength * opts.keys);
    for (let i = 0; i < opts.keys; i++) {
      this.keyTable.write(opts.keyPrefix + String(i).padStart(width, '0'), i * this.keyLength, 'latin1');
    }
    const value = Buffer.alloc(opts.valueSize);
    for (let i = 0; i < value.length; i++) value[i] = 0x61 + (i % 26); // a..z
    this.setTail = Buffer.concat([Buffer.from(` 0 0 ${opts.valueSize}\r\n`, 'latin1'), value, CRLF]);
    this.getKeys = opts.getKeys;
    this.maxRequestBytes = Math.max(
      GET_.length + (this.keyLength + 1) * opts.getKeys + CRLF.length,
      SET_.length + this.keyLength + this.setTail.length,
    );
    this.setWeight = opts.setWeight;
    this.totalWeight = opts.getWeight + opts.setWeight;
  }

  /** Writes `get <key>\r\n` at `at`; returns the end. */
  encodeGet(out: Buffer, at: number, key: number): number {
    let p = at + GET_.copy(out, at);
    p += this.keyTable.copy(out, p, key * this.keyLength, (key + 1) * this.keyLength);
    return p + CRLF.copy(out, p);
  }

  /** Writes `get <key> <key>…\r\n` (getKeys keys, drawn by `next`) at `at`; returns the end. */
  encodeMultiGet(out: Buffer, at: number, next: () => number): number {
    let p = at + GET_.copy(out, at) - 1;
    for (let i = 0; i < this.getKeys; i++) {
      out[p++] = 0x20; // ' '
      const key = next() % this.keys;
      p += this.keyTable.copy(out, p, key * this.keyLength, (key + 1) * this.keyLength);
    }
    return p + CRLF.copy(out, p);
  }

  /** Writes `set <key> 0 0 <n>\r\n<value>\r\n` at `at`; returns the end. */
  encodeSet(out: Buffer, at: number, key: number): number {
    let p = at + SET_.copy(out, at);
    p += this.keyTable.copy(out, p, key * this.keyLength, (key + 1) * this.keyLength);
    return p + this.setTail.copy(out, p);
  }
}

/** One client connection and its ring of request start times. */
class LoadConnection {
  readonly socket: net.Socket;
  readonly replies: ReplyCounter;
  /** start time (ns) of each outstanding request, oldest at `head` */
  private readonly starts: Float64Array;
  private head: number;
  inFlight: number;
  /** xorshift32 state */
  private rng: number;
  closed: boolean;

  constructor(
    private readonly run: LoadRun,
    socket: net.Socket,
    capacity: number,
    seed: number,
  ) {
    this.socket = socket;
    this.replies = new ReplyCounter();
    this.starts = new Float64Array(capacity);
    this.head = 0;
    this.inFlight = 0;
    this.rng = seed >>> 0 || 1;
    this.closed = false;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => this.onClose());
    socket.on('close', () => this.onClose());
  }

  /** nextRandom bound once, for encodeMultiGet */
  private readonly draw = (): number => this.nextRandom();

  private nextRandom(): number {
    let x = this.rng;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.rng = x >>> 0;
    return this.rng;
  }

  private onData(chunk: Buffer): void {
    const now = Number(process.hrtime.bigint());
    const done = this.replies.feed(chunk);
    if (this.replies.failed) {
      this.run.protocolErrors++;
      this.socket.destroy();
      return;
    }
    const cap = this.starts.length;
    const hist = this.run.recording ? this.run.histogram : null;
    for (let i = 0; i < done; i++) {
      if (hist !== null) hist.record(now - (this.starts[this.head] ?? now));
      this.head = this.head + 1 === cap ? 0 : this.head + 1;
    }
    this.inFlight -= done;
    this.run.onCompleted(done);
    this.fill(now);
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.run.onConnectionClosed(this);
  }

  /** Tops the connection up to its target of outstanding requests, in one write. */
  fill(now: number): void {
    if (this.closed) return;
    const run = this.run;
    const target = run.mode === Mode.PRELOAD ? run.preloadDepth : run.mode === Mode.LOAD ? run.depth : 0;
    let want = target - this.inFlight;
    if (run.mode === Mode.PRELOAD) want = Math.min(want, run.keys - run.preloadCursor);
    if (want <= 0) return;
    const w = run.workload;
    const out = Buffer.allocUnsafe(want * w.maxRequestBytes);
    const cap = this.starts.length;
    let tail = (this.head + this.inFlight) % cap;
    let p = 0;
    for (let i = 0; i < want; i++) {
      if (run.mode === Mode.PRELOAD) {
        p = w.encodeSet(out, p, run.preloadCursor++);
      } else {
        const r = this.nextRandom();
        const key = r % w.keys;
        // a second draw for the command keeps key and command independent
        if (this.nextRandom() % w.totalWeight < w.setWeight) p = w.encodeSet(out, p, key);
        else p = w.getKeys === 1 ? w.encodeGet(out, p, key) : w.encodeMultiGet(out, p, this.draw);
      }
      this.starts[tail] = now;
      tail = tail + 1 === cap ? 0 : tail + 1;
    }
    this.inFlight += want;
    this.socket.write(out.subarray(0, p));
  }
}

/** One run of the generator: its connections, phase and results. */
class LoadRun {
  readonly workload: Workload;
  readonly histogram: Histogram;
  readonly connections: LoadConnection[];
  readonly depth: number;
  readonly preloadDepth: number;
  readonly keys: number;
  mode: Mode;
  recording: boolean;
  preloadCursor: number;
  preloadCompleted: number;
  protocolErrors: number;
  connectionFailures: number;
  private preloadDone: (() => void) | null;
  private drained: (() => void) | null;

  constructor(readonly opts: GeneratorOptions) {
    this.workload = new Workload(opts);
    this.histogram = new Histogram();
    this.connections = [];
    this.depth = opts.depth;
    this.preloadDepth = Math.max(opts.preloadDepth, 1);
    this.keys = opts.keys;
    this.mode = Mode.IDLE;
    this.recording = false;
    this.preloadCursor = 0;
    this.preloadCompleted = 0;
    this.protocolErrors = 0;
    this.connectionFailures = 0;
    this.preloadDone = null;
    this.drained = null;
  }

  onCompleted(n: number): void {
    if (this.mode === Mode.PRELOAD) {
      this.preloadCompleted += n;
      if (this.preloadCompleted >= this.keys) this.preloadDone?.();
    } else if (this.mode === Mode.STOPPING && this.drained !== null && this.inFlight() === 0) {
      this.drained();
    }
  }

  onConnectionClosed(_conn: LoadConnection): void {
    if (this.mode !== Mode.STOPPING) this.connectionFailures++;
    if (this.connections.every((c) => c.closed)) {
      this.preloadDone?.();
      this.drained?.();
    }
  }

  inFlight(): number {
    let n = 0;
    for (const c of this.connections) if (!c.closed) n += c.inFlight;
    return n;
  }

  fillAll(): void {
    const now = Number(process.hrtime.bigint());
    for (const c of this.connections) c.fill(now);
  }

  async connect(): Promise<void> {
    const { host, port, connections, connectTimeoutMs } = this.opts;
    const capacity = Math.max(this.depth, this.preloadDepth);
    const pending: Promise<void>[] = [];
    for (let i = 0; i < connections; i++) {
      pending.push(
        new Promise<void>((resolve, reject) => {
          const socket = net.connect({ host, port, noDelay: true });
          const timer = setTimeout(() => {
            socket.destroy();
            reject(new Error(`connect to ${host}:${port} timed out after ${connectTimeoutMs} ms`));
          }, connectTimeoutMs);
          socket.once('connect', () => {
            clearTimeout(timer);
            resolve();
          });
          socket.once('error', (err) => {
            clearTimeout(timer);
            reject(err);
          });
          this.connections.push(new LoadConnection(this, socket, capacity, this.opts.seed * 7919 + i * 104_729 + 1));
        }),
      );
    }
    try {
      await Promise.all(pending);
    } catch (err) {
      this.close();
      throw err;
    }
  }

  async preload(): Promise<void> {
    this.mode = Mode.PRELOAD;
    const done = new Promise<void>((resolve) => (this.preloadDone = resolve));
    this.fillAll();
    const ok = await raceTimeout(done, this.opts.preloadTimeoutSec * 1000);
    this.preloadDone = null;
    this.mode = Mode.IDLE;
    if (!ok) throw new Error(`preload of ${this.keys} keys did not finish in ${this.opts.preloadTimeoutSec} s`);
    if (this.connections.every((c) => c.closed)) throw new Error('every connection closed during the preload');
  }

  startLoad(): void {
    this.mode = Mode.LOAD;
    this.fillAll();
  }

  startRecording(): void {
    this.histogram.reset();
    for (const c of this.connections) c.replies.resetCounters();
    this.protocolErrors = 0;
    this.connectionFailures = 0;
    this.recording = true;
  }

  /** Stops recording and returns the timed phase's counts. */
  stopRecording(): { hits: number; misses: number; stored: number; errors: number } {
    this.recording = false;
    let hits = 0;
    let misses = 0;
    let stored = 0;
    let errors = this.protocolErrors + this.connectionFailures;
    for (const c of this.connections) {
      hits += c.replies.hits;
      misses += c.replies.misses;
      stored += c.replies.stored;
      errors += c.replies.errors;
    }
    return { hits, misses, stored, errors };
  }

  /** Stops sending and waits (bounded) for the outstanding replies. */
  async drain(): Promise<void> {
    this.mode = Mode.STOPPING;
    if (this.inFlight() === 0) return;
    const done = new Promise<void>((resolve) => (this.drained = resolve));
    await raceTimeout(done, this.opts.drainTimeoutMs);
    this.drained = null;
  }

  close(): void {
    this.mode = Mode.STOPPING;
    for (const c of this.connections) c.socket.destroy();
  }
}

/** Resolves true when `p` settles first, false after `ms`. */
function raceTimeout(p: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  return Promise.race([p.then(() => true), timeout]).finally(() => clearTimeout(timer));
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const toUs = (ns: number): number => Math.round(ns / 10) / 100;

/** Runs the whole load (connect, preload, warm-up, timed phase, drain) and returns the result. */
export async function runLoad(opts: GeneratorOptions, hooks: GeneratorHooks = {}): Promise<LoadResult> {
  validateOptions(opts);
  const run = new LoadRun(opts);
  try {
    await run.connect();
    let preloadSec = 0;
    let preloadErrors = 0;
    if (opts.preload) {
      hooks.onPhase?.('preload');
      const t = process.hrtime.bigint();
      await run.preload();
      preloadSec = Number(process.hrtime.bigint() - t) / 1e9;
      preloadErrors = run.stopRecording().errors;
    }
    hooks.onPhase?.('warmup');
    run.startLoad();
    await sleep(opts.warmupSec * 1000);
    run.startRecording();
    hooks.onPhase?.('timed-start');
    const t0 = process.hrtime.bigint();
    await sleep(opts.durationSec * 1000);
    const counts = run.stopRecording();
    const elapsedSec = Number(process.hrtime.bigint() - t0) / 1e9;
    hooks.onPhase?.('timed-end');
    await run.drain();
    const h = run.histogram;
    const ops = counts.hits + counts.misses + counts.stored;
    return {
      ops,
      opsPerSec: Math.round(ops / elapsedSec),
      p50Us: toUs(h.percentile(50)),
      p99Us: toUs(h.percentile(99)),
      p999Us: toUs(h.percentile(99.9)),
      maxUs: toUs(h.max),
      meanUs: toUs(h.mean()),
      errors: counts.errors,
      misses: counts.misses,
      hits: counts.hits,
      stored: counts.stored,
      durationSec: Math.round(elapsedSec * 1000) / 1000,
      connections: opts.connections,
      depth: opts.depth,
      preloadSec: Math.round(preloadSec * 1000) / 1000,
      preloadErrors,
    };
  } finally {
    run.close();
  }
}

function validateOptions(o: GeneratorOptions): void {
  const problems: string[] = [];
  const int = (name: string, v: number, min: number, max: number): void => {
    if (!Number.isInteger(v) || v < min || v > max)
      problems.push(`${name} must be an integer from ${min} to ${max} (got ${v})`);
  };
  int('port', o.port, 1, 65535);
  int('connections', o.connections, 1, 10_000);
  int('depth', o.depth, 1, 4096);
  int('getWeight', o.getWeight, 0, 1_000_000);
  int('setWeight', o.setWeight, 0, 1_000_000);
  int('valueSize', o.valueSize, 0, 1024 * 1024);
  int('keys', o.keys, 1, 10_000_000);
  int('getKeys', o.getKeys, 1, 100);
  int('preloadDepth', o.preloadDepth, 1, 4096);
  if (o.getWeight + o.setWeight === 0) problems.push('the get:set ratio must not be 0:0');
  if (!(o.durationSec > 0 && o.durationSec <= 3600)) problems.push('duration must be over 0 and at most 3600 s');
  if (!(o.warmupSec >= 0 && o.warmupSec <= 600)) problems.push('warm-up must be from 0 to 600 s');
  if (!/^[\x21-\x7e]*$/.test(o.keyPrefix)) problems.push('the key prefix must be printable ASCII without spaces');
  if (problems.length > 0) throw new Error(`generator: ${problems.join('; ')}`);
}

/** Parses `10:1` into get and set weights. */
export function parseRatio(text: string): { getWeight: number; setWeight: number } {
  const m = /^(\d+):(\d+)$/.exec(text);
  if (m === null) throw new Error(`--ratio must look like 10:1 (gets:sets), got "${text}"`);
  return { getWeight: Number(m[1]), setWeight: Number(m[2]) };
}

export interface GeneratorCli {
  readonly options: GeneratorOptions;
  readonly json: boolean;
  readonly phases: boolean;
}

/** Parses the generator's command line (see the file comment). */
export function parseGeneratorArgs(argv: readonly string[]): GeneratorCli {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      connections: { type: 'string', short: 'c' },
      depth: { type: 'string', short: 'd' },
      ratio: { type: 'string' },
      'value-size': { type: 'string' },
      keys: { type: 'string' },
      'get-keys': { type: 'string' },
      'key-prefix': { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      'skip-preload': { type: 'boolean' },
      'preload-depth': { type: 'string' },
      seed: { type: 'string' },
      json: { type: 'boolean' },
      phases: { type: 'boolean' },
    },
  });
  const d = DEFAULT_GENERATOR_OPTIONS;
  const num = (v: string | undefined, fallback: number): number => (v === undefined ? fallback : Number(v));
  const ratio =
    values.ratio === undefined ? { getWeight: d.getWeight, setWeight: d.setWeight } : parseRatio(values.ratio);
  const options: GeneratorOptions = {
    ...d,
    host: values.host ?? d.host,
    port: num(values.port, d.port),
    connections: num(values.connections, d.connections),
    depth: num(values.depth, d.depth),
    ...ratio,
    valueSize: num(values['value-size'], d.valueSize),
    keys: num(values.keys, d.keys),
    getKeys: num(values['get-keys'], d.getKeys),
    keyPrefix: values['key-prefix'] ?? d.keyPrefix,
    durationSec: num(values.duration, d.durationSec),
    warmupSec: num(values.warmup, d.warmupSec),
    preload: values['skip-preload'] !== true,
    preloadDepth: num(values['preload-depth'], d.preloadDepth),
    seed: num(values.seed, d.seed),
  };
  validateOptions(options);
  return { options, json: values.json === true, phases: values.phases === true };
}

async function main(): Promise<void> {
  const cli = parseGeneratorArgs(process.argv.slice(2));
  const hooks: GeneratorHooks = cli.phases ? { onPhase: (phase) => process.stdout.write(`#phase ${phase}\n`) } : {};
  const result = await runLoad(cli.options, hooks);
  if (cli.json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  const o = cli.options;
  process.stdout.write(
    `${o.host}:${o.port} connections=${o.connections} depth=${o.depth} ratio=${o.getWeight}:${o.setWeight} ` +
      `value=${o.valueSize}B keys=${o.keys}\n` +
      `  ${result.opsPerSec} ops/s (${result.ops} in ${result.durationSec} s)  ` +
      `p50 ${result.p50Us} µs  p99 ${result.p99Us} µs  p99.9 ${result.p999Us} µs  max ${result.maxUs} µs\n` +
      `  hits ${result.hits}  misses ${result.misses}  stored ${result.stored}  errors ${result.errors}` +
      (o.preload ? `  (preload ${result.preloadSec} s, ${result.preloadErrors} errors)` : '') +
      '\n',
  );
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href;
if (isMain) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`generator: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
