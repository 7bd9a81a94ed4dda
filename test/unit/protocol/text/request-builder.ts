/**
 * Builds `Request` records by hand for the encoder, response parser and
 * upstream tests, without the real request parser (written separately): the
 * test line is split on single spaces and the fields are filled the way the
 * parser documents them in request.ts.
 */
import { Syntax, lookupCommand } from '../../../../src/protocol/text/commands.js';
import { Request, type ReplyOwner } from '../../../../src/protocol/text/request.js';
import type { InFlight } from '../../../../src/protocol/text/response-parser.js';

export interface BuildOptions {
  /** namespace prepended upstream */
  ns?: string | Buffer | null;
  /** the data block, as one string or as the slices it "arrived" in */
  value?: string | Buffer | Buffer[];
  owner?: ReplyOwner | null;
  /** the encoder sent this one-key get/gets as mg (see encodeGetAsMeta) */
  upstreamMeta?: boolean;
}

/** `line` is the client's command line without "\r\n", tokens separated by single spaces. */
export function buildRequest(line: string, opts: BuildOptions = {}): Request {
  const req = new Request();
  const buf = Buffer.from(line, 'latin1');
  req.line = buf;
  const tokens: { s: number; e: number; t: string }[] = [];
  let at = 0;
  for (const t of line.split(' ')) {
    if (t !== '') tokens.push({ s: at, e: at + t.length, t });
    at += t.length + 1;
  }
  const name = tokens[0];
  if (name === undefined) throw new Error('empty line');
  const spec = lookupCommand(buf, name.s, name.e);
  if (spec === undefined) throw new Error(`unknown command ${name.t}`);
  req.cmd = spec.id;
  const tok = (i: number) => {
    const t = tokens[i];
    if (t === undefined) throw new Error(`"${line}" has no token ${i}`);
    return t;
  };
  let rest = tokens.slice(1);
  if (rest.at(-1)?.t === 'noreply' && spec.syntax <= Syntax.VERBOSITY) {
    req.noreply = true;
    rest = rest.slice(0, -1);
  }
  const key = (t: { s: number; e: number }) => req.keys.push(t.s, t.e);
  const num = (t: { s: number; e: number }) => {
    req.numStart = t.s;
    req.numEnd = t.e;
  };
  const metaFlags = (from: number) => {
    for (const t of rest.slice(from)) {
      if (t.t === 'q') {
        req.metaQuiet = true;
        continue;
      }
      if (t.t === 'b') req.metaBase64 = true;
      req.metaFlags.push(t.s, t.e);
    }
  };
  switch (spec.syntax) {
    case Syntax.RETRIEVE:
      rest.forEach(key);
      break;
    case Syntax.GAT:
      req.exptime = Number(tok(1).t);
      rest.slice(1).forEach(key);
      break;
    case Syntax.STORE:
    case Syntax.CAS:
      key(tok(1));
      req.flags = Number(tok(2).t);
      req.exptime = Number(tok(3).t);
      req.bytes = Number(tok(4).t);
      if (spec.syntax === Syntax.CAS) num(tok(5));
      break;
    case Syntax.DELETE:
      key(tok(1));
      break;
    case Syntax.ARITH:
      key(tok(1));
      num(tok(2));
      break;
    case Syntax.TOUCH:
      key(tok(1));
      req.exptime = Number(tok(2).t);
      break;
    case Syntax.FLUSH:
      if (rest[0] !== undefined) req.delay = Number(rest[0].t);
      break;
    case Syntax.VERBOSITY:
      // a level that is not digits (including a lone `noreply`) leaves the range empty
      if (rest[0] !== undefined && /^\d+$/.test(rest[0].t)) num(rest[0]);
      break;
    case Syntax.NO_ARGS:
      break;
    case Syntax.STATS:
    case Syntax.ADMIN_LINE:
      req.argsStart = Math.min(name.e + 1, buf.length);
      req.argsEnd = buf.length;
      break;
    case Syntax.META_SET:
      key(tok(1));
      req.bytes = Number(tok(2).t);
      metaFlags(2);
      break;
    case Syntax.META_DEBUG:
      key(tok(1));
      if (rest[1]?.t === 'b') req.metaBase64 = true;
      break;
    default:
      key(tok(1));
      metaFlags(1);
  }
  if (spec.hasValue) {
    const v = opts.value ?? '';
    req.value = Array.isArray(v) ? v : [typeof v === 'string' ? Buffer.from(v, 'latin1') : v];
  }
  const ns = opts.ns ?? null;
  req.ns = typeof ns === 'string' ? Buffer.from(ns, 'latin1') : ns;
  req.owner = opts.owner ?? null;
  req.upstreamMeta = opts.upstreamMeta ?? false;
  return req;
}

/** The response parser's side of an upstream connection: a FIFO and a desync record. */
export class Fifo implements InFlight {
  readonly items: Request[] = [];
  readonly desyncs: string[] = [];
  peek(): Request | undefined {
    return this.items[0];
  }
  shift(): void {
    this.items.shift();
  }
  onDesync(reason: string): void {
    this.desyncs.push(reason);
  }
}

/** Records every completed request, in completion order. */
export class RecordingOwner implements ReplyOwner {
  readonly replies: Request[] = [];
  onReply(req: Request): void {
    this.replies.push(req);
  }
}

/** The client bytes of a completed request, as latin1. */
export function replyText(req: Request): string {
  return Buffer.concat(req.reply ?? []).toString('latin1');
}
