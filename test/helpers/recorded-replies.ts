/**
 * Replies recorded from a real memcached, for the response parser.
 *
 * Each case is what a client sends to memgate. The client bytes go through the
 * real request parser, get the namespace `NS:` and the real encoder (one-key
 * gets become mg, as against memcached 1.6), and those exact upstream bytes
 * are sent to memcached, each followed by `mn`; the bytes before the closing
 * `MN` are the recorded reply. A few error cases send `upstream` bytes of
 * their own (inputs memgate never forwards) to record memcached's error lines.
 *
 * `scripts/record-replies.ts` writes the recordings to
 * `test/fixtures/memcached-replies.json`; `test/unit/protocol/text/
 * response-parser.recorded.test.ts` parses the committed file, and
 * `test/integration/recorded-replies.test.ts` re-records against the installed
 * memcached and compares (volatile numbers normalised).
 */
import net from 'node:net';
import { ReplyStatus, type Request, type RequestSink } from '../../src/protocol/text/request.js';
import { RequestParser } from '../../src/protocol/text/request-parser.js';
import { encodeRequest } from '../../src/protocol/text/request-encoder.js';
import { ResponseParser, type InFlight } from '../../src/protocol/text/response-parser.js';
import { splits } from '../unit/protocol/text/splits.js';

export const NS = 'NS:';
const S = ReplyStatus;

export interface ReplyCase {
  readonly name: string;
  /** what the client sends (latin1), value included */
  readonly client: string;
  readonly status: ReplyStatus;
  /** bytes sent upstream instead of the encoder's (error replies memgate never provokes) */
  readonly upstream?: string;
  /** base64 request key whose reply key is base64 of NS + key (the client sees base64 of key) */
  readonly base64Key?: string;
  /** the client reply of a get sent as mg: memcached's reply to this classic line, namespace stripped */
  readonly classic?: string;
  /** the server this case needs: the default one, or a tiny one that runs out of memory (-m 2 -M) */
  readonly server?: 'small';
}

const b64 = (bytes: number[] | string): string =>
  (typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : Buffer.from(bytes)).toString('base64');
const HIGH = [0xe2, 0x82, 0xac, 0x80, 0xff, 0x20, 0x00];
const LONG_KEY = 'k'.repeat(251);

/** In order: later cases see the items earlier ones stored. */
export const REPLY_CASES: readonly ReplyCase[] = [
  // classic storage
  { name: 'set', client: 'set k1 5 0 3\r\nabc\r\n', status: S.STORED },
  { name: 'add of an existing key', client: 'add k1 0 0 1\r\nz\r\n', status: S.NOT_STORED },
  { name: 'replace of a missing key', client: 'replace nope 0 0 1\r\nz\r\n', status: S.NOT_STORED },
  { name: 'append', client: 'append k1 0 0 2\r\nde\r\n', status: S.STORED },
  { name: 'prepend', client: 'prepend k1 0 0 1\r\n_\r\n', status: S.STORED },
  { name: 'append to a missing key', client: 'append nope 0 0 1\r\nz\r\n', status: S.NOT_STORED },
  { name: 'cas with a stale unique', client: 'cas k1 0 0 1 1\r\nx\r\n', status: S.EXISTS },
  { name: 'cas of a missing key', client: 'cas nope 0 0 1 1\r\nx\r\n', status: S.NOT_FOUND },
  { name: 'set noreply (noreply is never forwarded)', client: 'set k2 0 0 2 noreply\r\nhi\r\n', status: S.STORED },
  { name: 'set of an empty value', client: 'set empty 0 0 0\r\n\r\n', status: S.STORED },
  // classic retrieval
  { name: 'get hit (sent as mg)', client: 'get k1\r\n', status: S.OK, classic: 'get NS:k1\r\n' },
  { name: 'get miss (sent as mg)', client: 'get nope\r\n', status: S.MISS, classic: 'get NS:nope\r\n' },
  { name: 'gets hit (sent as mg)', client: 'gets k1\r\n', status: S.OK, classic: 'gets NS:k1\r\n' },
  { name: 'get of an empty value (sent as mg)', client: 'get empty\r\n', status: S.OK, classic: 'get NS:empty\r\n' },
  { name: 'get of two keys, one missing', client: 'get k1 nope k2\r\n', status: S.OK },
  { name: 'gets of two keys', client: 'gets k1 k2\r\n', status: S.OK },
  { name: 'get of two missing keys', client: 'get nope nope2\r\n', status: S.MISS },
  { name: 'gat', client: 'gat 0 k1\r\n', status: S.OK },
  { name: 'gats of two keys', client: 'gats 100 k1 nope\r\n', status: S.OK },
  { name: 'gat miss', client: 'gat 0 nope\r\n', status: S.MISS },
  // other classic
  { name: 'touch', client: 'touch k1 0\r\n', status: S.TOUCHED },
  { name: 'touch of a missing key', client: 'touch nope 0\r\n', status: S.NOT_FOUND },
  { name: 'set a number', client: 'set n 0 0 2\r\n10\r\n', status: S.STORED },
  { name: 'incr', client: 'incr n 18446744073709551605\r\n', status: S.NUMBER },
  { name: 'incr wraps', client: 'incr n 1\r\n', status: S.NUMBER },
  { name: 'decr', client: 'decr n 5\r\n', status: S.NUMBER },
  { name: 'incr of a missing key', client: 'incr nope 1\r\n', status: S.NOT_FOUND },
  {
    name: 'incr of a value that is not a number',
    client: 'incr k1 1\r\n',
    status: S.ERROR,
  },
  { name: 'delete', client: 'delete k2\r\n', status: S.DELETED },
  { name: 'delete of a missing key', client: 'delete k2\r\n', status: S.NOT_FOUND },
  { name: 'version', client: 'version\r\n', status: S.OK },
  { name: 'verbosity', client: 'verbosity 0\r\n', status: S.OK },
  // meta set
  { name: 'ms', client: 'ms m1 2\r\nhi\r\n', status: S.HD },
  { name: 'ms T F', client: 'ms m1 2 T0 F7\r\nhi\r\n', status: S.HD },
  { name: 'ms k O c', client: 'ms m1 2 k O123 c\r\nhi\r\n', status: S.HD },
  { name: 'ms q (q is never forwarded)', client: 'ms m1 2 q\r\nhi\r\n', status: S.HD },
  { name: 'ms add mode of an existing key', client: 'ms m1 2 ME\r\nhi\r\n', status: S.NOT_STORED },
  { name: 'ms append mode', client: 'ms m1 2 MA\r\n++\r\n', status: S.HD },
  { name: 'ms prepend mode', client: 'ms m1 1 MP\r\n-\r\n', status: S.HD },
  { name: 'ms replace mode of a missing key', client: 'ms nope 1 MR\r\nx\r\n', status: S.NOT_STORED },
  { name: 'ms set mode', client: 'ms m2 3 MS T100\r\nabc\r\n', status: S.HD },
  { name: 'ms with a stale cas', client: 'ms m2 1 C1\r\nx\r\n', status: S.EXISTS },
  { name: 'ms with a cas of a missing key', client: 'ms nope 1 C1\r\nx\r\n', status: S.NOT_FOUND },
  { name: 'ms invalidate with a stale cas (stored, marked stale)', client: 'ms m2 1 C1 I\r\nx\r\n', status: S.HD },
  { name: 'ms of an empty value', client: 'ms m3 0\r\n\r\n', status: S.HD },
  {
    name: 'ms of a base64 key with k',
    client: `ms ${b64('bin')} 2 b k\r\nBB\r\n`,
    status: S.HD,
    base64Key: b64('bin'),
  },
  {
    name: 'ms of a base64 key with bytes >= 0x80',
    client: `ms ${b64(HIGH)} 2 b k O9\r\nHH\r\n`,
    status: S.HD,
    base64Key: b64(HIGH),
  },
  // meta get
  { name: 'mg without flags', client: 'mg m1\r\n', status: S.HD },
  { name: 'mg v', client: 'mg m1 v\r\n', status: S.OK },
  { name: 'mg k v', client: 'mg m1 k v\r\n', status: S.OK },
  { name: 'mg s f t', client: 'mg m1 s f t\r\n', status: S.HD },
  { name: 'mg every returning flag', client: 'mg m2 v c f h k l O77 s t\r\n', status: S.OK },
  { name: 'mg of an empty value', client: 'mg m3 v s\r\n', status: S.OK },
  { name: 'mg miss', client: 'mg nope v\r\n', status: S.MISS },
  { name: 'mg miss with k O', client: 'mg nope k O5 v\r\n', status: S.MISS },
  { name: 'mg miss with q (q is never forwarded)', client: 'mg nope v q\r\n', status: S.MISS },
  { name: 'mg vivify on miss (an empty VA with W)', client: 'mg viv N30 v c t\r\n', status: S.OK },
  { name: 'mg of a vivified item', client: 'mg viv v c t\r\n', status: S.OK },
  { name: 'mg recache', client: 'mg m2 R30 v\r\n', status: S.OK },
  { name: 'mg touch', client: 'mg m2 T30 t\r\n', status: S.HD },
  { name: 'mg no-bump', client: 'mg m2 u v\r\n', status: S.OK },
  { name: 'mg E (not in memcached 1.6.18)', client: 'mg m2 E5 v\r\n', status: S.ERROR },
  { name: 'mg of a base64 key', client: `mg ${b64('bin')} b k v\r\n`, status: S.OK, base64Key: b64('bin') },
  {
    name: 'mg of a base64 key with bytes >= 0x80',
    client: `mg ${b64(HIGH)} b k v c O3\r\n`,
    status: S.OK,
    base64Key: b64(HIGH),
  },
  { name: 'mg of a base64 miss', client: `mg ${b64('nobin')} b k v\r\n`, status: S.MISS, base64Key: b64('nobin') },
  // keys with bytes >= 0x80 sent as they are (no b)
  { name: 'set of a key with bytes >= 0x80', client: 'set \xe9t\xe9 0 0 1\r\n\xff\r\n', status: S.STORED },
  {
    name: 'get of a key with bytes >= 0x80 (sent as mg)',
    client: 'get \xe9t\xe9\r\n',
    status: S.OK,
    classic: 'get NS:\xe9t\xe9\r\n',
  },
  { name: 'get of two keys with bytes >= 0x80', client: 'get \xe9t\xe9 \xe0\r\n', status: S.OK },
  { name: 'mg k v of a key with bytes >= 0x80', client: 'mg \xe9t\xe9 k v\r\n', status: S.OK },
  { name: 'me of a key with bytes >= 0x80', client: 'me \xe9t\xe9\r\n', status: S.OK },
  // meta delete and arithmetic
  { name: 'md', client: 'md m3\r\n', status: S.HD },
  { name: 'md of a missing key with k', client: 'md m3 k\r\n', status: S.NOT_FOUND },
  { name: 'md with a stale cas', client: 'md m1 C1\r\n', status: S.EXISTS },
  { name: 'md invalidate', client: 'md m1 I T30\r\n', status: S.HD },
  { name: 'mg of an invalidated item', client: 'mg m1 v c\r\n', status: S.OK },
  { name: 'md q O (q is never forwarded)', client: 'md m1 q O1\r\n', status: S.HD },
  { name: 'ma auto-create', client: 'ma cnt N0 J5 v k\r\n', status: S.OK },
  { name: 'ma decrement', client: 'ma cnt MD D2 v\r\n', status: S.OK },
  { name: 'ma t c v', client: 'ma cnt t c v\r\n', status: S.OK },
  { name: 'ma without v', client: 'ma cnt\r\n', status: S.HD },
  { name: 'ma of a missing key', client: 'ma nope\r\n', status: S.NOT_FOUND },
  { name: 'ma of a value that is not a number', client: 'ma m2\r\n', status: S.ERROR },
  { name: 'ma with a base64 key', client: `ma ${b64('bcnt')} b N0 J1 v k\r\n`, status: S.OK, base64Key: b64('bcnt') },
  { name: 'mn', client: 'mn\r\n', status: S.OK },
  { name: 'me', client: 'me cnt\r\n', status: S.OK },
  { name: 'me miss', client: 'me nope\r\n', status: S.MISS },
  { name: 'me of a base64 key', client: `me ${b64('bin')} b\r\n`, status: S.OK, base64Key: b64('bin') },
  // memcached's error replies (lines memgate itself never forwards: upstream bytes of their own)
  {
    name: 'CLIENT_ERROR bad command line format (a key over 250 bytes; no data sent)',
    client: 'set k 0 0 1\r\nx\r\n',
    upstream: `set ${LONG_KEY} 0 0 1\r\n`,
    status: S.ERROR,
  },
  {
    name: 'CLIENT_ERROR bad data chunk',
    client: 'set k 0 0 1\r\nx\r\n',
    upstream: 'set NS:bad 0 0 1\r\nxyz',
    status: S.ERROR,
  },
  { name: 'ERROR (an unknown command)', client: 'mn\r\n', upstream: 'bogus\r\n', status: S.ERROR },
  {
    name: 'SERVER_ERROR object too large for cache',
    client: `set big 0 0 ${2 * 1024 * 1024}\r\n${'b'.repeat(2 * 1024 * 1024)}\r\n`,
    status: S.ERROR,
  },
  {
    name: 'ms SERVER_ERROR object too large for cache',
    client: `ms big ${2 * 1024 * 1024}\r\n${'b'.repeat(2 * 1024 * 1024)}\r\n`,
    status: S.ERROR,
  },
  {
    name: 'SERVER_ERROR out of memory storing object (memcached -m 2 -M, full)',
    client: `set oom 0 0 ${100 * 1024}\r\n${'o'.repeat(100 * 1024)}\r\n`,
    status: S.ERROR,
    server: 'small',
  },
];

export interface Recording {
  readonly name: string;
  /** the bytes sent to memcached (latin1), the value cut to its first 64 bytes when long */
  readonly upstream: string;
  /** memcached's reply (latin1) */
  readonly reply: string;
  /** memcached's reply to `classic`, when the case has one */
  readonly classicReply?: string;
}

/** The one request the client bytes of `c` parse to, with the namespace, as the session hands it on. */
export function clientRequest(c: ReplyCase): Request {
  // (not splits.ts' RecordingSink: this file also runs outside vitest, in scripts/record-replies.ts)
  const sink: RequestSink & { requests: Request[] } = {
    requests: [],
    onRequest(req) {
      this.requests.push(req);
    },
    onFatal() {
      throw new Error(`case "${c.name}": the client bytes end the stream`);
    },
  };
  const parser = new RequestParser(sink, { maxValueBytes: 8 * 1024 * 1024 });
  parser.feed(Buffer.from(c.client, 'latin1'));
  const req = sink.requests[0];
  if (req === undefined || sink.requests.length !== 1 || req.error !== null) {
    throw new Error(`case "${c.name}": the client bytes are not one valid request`);
  }
  req.ns = Buffer.from(NS, 'latin1');
  return req;
}

/** The bytes memgate sends for `c` to memcached 1.6 (or the case's own). */
export function upstreamBytes(c: ReplyCase): Buffer {
  if (c.upstream !== undefined) return Buffer.from(c.upstream, 'latin1');
  const out: Buffer[] = [];
  const refused = encodeRequest(clientRequest(c), out, true);
  if (refused !== null) throw new Error(`case "${c.name}": the encoder refused it`);
  return Buffer.concat(out);
}

/** How many lines of `text` are exactly `line` (which ends in CRLF). */
function countLines(text: string, line: string): number {
  let n = 0;
  for (let at = text.indexOf(line); at !== -1; at = text.indexOf(line, at + line.length)) {
    if (at === 0 || text[at - 1] === '\n') n++;
  }
  return n;
}

/** One connection to memcached: send bytes, read until `mn`'s MN closes the reply. */
export class Recorder {
  private readonly sock: net.Socket;
  private buf = Buffer.alloc(0);
  private wake: (() => void) | null = null;

  private constructor(sock: net.Socket) {
    this.sock = sock;
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake?.();
    });
  }

  static connect(port: number): Promise<Recorder> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => resolve(new Recorder(s)));
      s.once('error', reject);
    });
  }

  /** memcached's reply to `bytes`: everything before the MN of an `mn` sent after them. */
  async exchange(bytes: Buffer, timeoutMs = 5000): Promise<string> {
    this.sock.write(Buffer.concat([bytes, Buffer.from('mn\r\n', 'latin1')]));
    // the case itself may be an mn: wait for one MN per mn sent, not the first one that arrives
    const expected = countLines(bytes.toString('latin1'), 'mn\r\n') + 1;
    const deadline = Date.now() + timeoutMs;
    while (
      !this.buf.toString('latin1').endsWith('MN\r\n') ||
      countLines(this.buf.toString('latin1'), 'MN\r\n') < expected
    ) {
      if (Date.now() > deadline)
        throw new Error(`no MN after ${JSON.stringify(bytes.subarray(0, 64).toString('latin1'))}`);
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, 50);
      });
    }
    const text = this.buf.toString('latin1');
    this.buf = Buffer.alloc(0);
    return text.slice(0, -'MN\r\n'.length);
  }

  close(): void {
    this.sock.destroy();
  }
}

const shorten = (s: string): string => (s.length > 200 ? `${s.slice(0, 64)}…(${s.length} bytes)` : s);

/** Fills a `-m 2 -M` memcached until a 100 kB set is refused with out of memory. */
async function fill(r: Recorder): Promise<void> {
  const value = 'f'.repeat(100 * 1024);
  for (let i = 0; i < 200; i++) {
    const reply = await r.exchange(Buffer.from(`set fill${i} 0 0 ${value.length}\r\n${value}\r\n`, 'latin1'));
    if (reply.startsWith('SERVER_ERROR out of memory')) return;
  }
  throw new Error('the small memcached never ran out of memory');
}

/** Records every case against memcached on `port` (and `smallPort`, a fresh `-m 2 -M` one). */
export async function recordAll(port: number, smallPort: number): Promise<Recording[]> {
  const main = await Recorder.connect(port);
  const small = await Recorder.connect(smallPort);
  await fill(small);
  const out: Recording[] = [];
  for (const c of REPLY_CASES) {
    const r = c.server === 'small' ? small : main;
    const up = upstreamBytes(c);
    const reply = await r.exchange(up);
    const classicReply = c.classic === undefined ? undefined : await r.exchange(Buffer.from(c.classic, 'latin1'));
    out.push({
      name: c.name,
      upstream: shorten(up.toString('latin1')),
      reply,
      ...(classicReply === undefined ? {} : { classicReply }),
    });
  }
  main.close();
  small.close();
  return out;
}

/** Numbers that change from run to run (cas uniques, times, sizes of memcached's own) as `#`. */
export function normalise(reply: string): string {
  return reply
    .replace(/^(VALUE \S+ \d+ \d+) \d+/gm, '$1 #')
    .replace(/ (c|t|l|h)-?\d+/g, ' $1#')
    .replace(/(exp|la|cas|fetch|cls|size)=[^ \r]+/g, '$1=#')
    .replace(/^VERSION .*$/gm, 'VERSION #');
}

/** What the client must receive for `rec`: memcached's reply with the namespace taken out of its keys. */
export function expectedClientReply(c: ReplyCase, rec: Recording): string {
  if (c.classic !== undefined) return (rec.classicReply ?? '').split(NS).join('');
  if (c.base64Key !== undefined) {
    const raw = Buffer.from(c.base64Key, 'base64');
    const upstreamKey = Buffer.concat([Buffer.from(NS, 'latin1'), raw]).toString('base64');
    return rec.reply.split(upstreamKey).join(c.base64Key);
  }
  return rec.reply.split(NS).join('');
}

/**
 * Feeds `rec.reply` to a ResponseParser whose head request is the case's, cut
 * every way (splits.ts); returns what went wrong (empty: the reply parsed as
 * memcached means it, every way).
 */
export function checkRecording(c: ReplyCase, rec: Recording): string[] {
  const req = clientRequest(c);
  encodeRequest(req, [], true); // marks a one-key get sent as mg, as the connection does
  const want = expectedClientReply(c, rec);
  const problems: string[] = [];
  for (const { how, chunks } of splits(Buffer.from(rec.reply, 'latin1'))) {
    req.reply = null;
    req.status = ReplyStatus.NONE;
    req.hits = 0;
    req.done = false;
    const fifo = [req];
    const desyncs: string[] = [];
    const target: InFlight = {
      peek: () => fifo[0],
      shift: () => void fifo.shift(),
      onDesync: (reason) => void desyncs.push(reason),
    };
    const parser = new ResponseParser(target);
    for (const chunk of chunks) parser.feed(Buffer.from(chunk));
    const got = Buffer.concat(req.reply ?? []).toString('latin1');
    const problem =
      desyncs.length > 0
        ? `desync: ${desyncs.join(', ')}`
        : !req.done
          ? 'reply not complete'
          : got !== want
            ? `client gets ${JSON.stringify(got)}, want ${JSON.stringify(want)}`
            : req.status !== c.status
              ? `status ${req.status}, want ${c.status}`
              : null;
    if (problem !== null) {
      problems.push(`${how}: ${problem}`);
      if (problems.length >= 3) break;
    }
  }
  return problems;
}
