/**
 * The pure parts of src/server/multiget.ts: which keys of a multi-get repeat an
 * earlier one (each distinct key is asked upstream once), and when a MultiGet
 * wakes its session (fake host: no sockets).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Cmd } from '../../../src/protocol/text/commands.js';
import { ReplyStatus, Request } from '../../../src/protocol/text/request.js';
import { firstOccurrences, MultiGet, type MultiGetHost, type PartSink } from '../../../src/server/multiget.js';

/** The line `get k1 k2 …` and its key offsets, as the request parser records them. */
function line(keys: readonly string[]): { buf: Buffer; offsets: number[] } {
  const offsets: number[] = [];
  let text = 'get';
  for (const k of keys) {
    text += ' ';
    offsets.push(text.length, text.length + k.length);
    text += k;
  }
  return { buf: Buffer.from(text, 'latin1'), offsets };
}

describe('firstOccurrences', () => {
  it('points every key at its first occurrence', () => {
    const { buf, offsets } = line(['a', 'b', 'a', 'c', 'b', 'a']);
    expect([...firstOccurrences(buf, offsets)]).toEqual([0, 1, 0, 3, 1, 0]);
  });

  it('tells keys apart that share a prefix or differ only in length', () => {
    const { buf, offsets } = line(['ab', 'a', 'abc', 'ab', 'b', 'a']);
    expect([...firstOccurrences(buf, offsets)]).toEqual([0, 1, 2, 0, 4, 1]);
  });

  it('matches indexOf for any list of keys (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.stringMatching(/^[a-d]{1,3}$/), { minLength: 1, maxLength: 400 }), (keys) => {
        const { buf, offsets } = line(keys);
        expect([...firstOccurrences(buf, offsets)]).toEqual(keys.map((k) => keys.indexOf(k)));
      }),
      { numRuns: 200 },
    );
  });
});

/** A host whose budget allows a fixed number of keys' worst case, as the session's does; it records what it is asked. */
class FakeHost implements MultiGetHost {
  readonly sent: Request[] = [];
  wakes = 0;
  mg: MultiGet | null = null;
  constructor(private readonly budget: number) {}
  sendUpstream(req: Request): void {
    this.sent.push(req);
  }
  onBackendMiss(): void {}
  onMultiGetProgress(): void {
    this.wakes++;
  }
  replyBudgetLeft(): number {
    return this.budget - (this.mg?.heldAndReservedBytes ?? 0);
  }
  isIdleApartFrom(): boolean {
    return false;
  }
}

class Sink implements PartSink {
  readonly parts: Buffer[] = [];
  bytes = 0;
  push(chunk: Buffer): void {
    this.parts.push(chunk);
    this.bytes += chunk.length;
  }
}

const MAX_VALUE = 1024;
const PER_KEY = MAX_VALUE + 512;

function multiGet(keys: readonly string[], budgetKeys: number): { mg: MultiGet; host: FakeHost } {
  const { buf, offsets } = line(keys);
  const parent = new Request();
  parent.cmd = Cmd.GET;
  parent.line = buf;
  parent.keys.push(...offsets);
  const host = new FakeHost(budgetKeys * PER_KEY);
  const mg = new MultiGet(parent, host, MAX_VALUE, 1024 * 1024);
  host.mg = mg;
  return { mg, host };
}

/** Answers one sent key request as a hit whose value is the key itself. */
function answer(mg: MultiGet, req: Request, buf: Buffer): void {
  const s = req.keys[0] ?? 0;
  const key = buf.toString('latin1', s, req.keys[1] ?? 0);
  req.status = ReplyStatus.OK;
  req.reply = [Buffer.from(`VALUE ${key} 0 ${key.length}\r\n${key}\r\nEND\r\n`, 'latin1')];
  mg.onReply(req);
}

describe('MultiGet wake-ups', () => {
  it('with every key sent, wakes the session only on the last answer, then writes the whole reply at once', () => {
    const { mg, host } = multiGet(['a', 'b', 'a', 'c'], 100);
    mg.pump();
    expect(mg.allSent).toBe(true);
    expect(host.sent.length).toBe(3);
    const [ra, rb, rc] = host.sent;
    if (ra === undefined || rb === undefined || rc === undefined) throw new Error('not sent');
    answer(mg, rb, mg.parent.line);
    answer(mg, ra, mg.parent.line);
    expect(host.wakes).toBe(0);
    answer(mg, rc, mg.parent.line);
    expect(host.wakes).toBe(1);
    const out = new Sink();
    expect(mg.writeReady(out, 0)).toBe(true);
    expect(Buffer.concat(out.parts).toString('latin1')).toBe(
      'VALUE a 0 1\r\na\r\nVALUE b 0 1\r\nb\r\nVALUE a 0 1\r\na\r\nVALUE c 0 1\r\nc\r\nEND\r\n',
    );
  });

  it('with keys still to send (the budget allowed only part), wakes the session on every answer', () => {
    const { mg, host } = multiGet(['a', 'b', 'c', 'd'], 2);
    mg.pump();
    expect(mg.allSent).toBe(false);
    expect(host.sent.length).toBe(2);
    const [ra, rb] = host.sent;
    if (ra === undefined || rb === undefined) throw new Error('not sent');
    answer(mg, rb, mg.parent.line);
    expect(host.wakes).toBe(1);
    answer(mg, ra, mg.parent.line);
    expect(host.wakes).toBe(2);
  });

  it('an error answer wakes the session at once even with other keys in flight', () => {
    const { mg, host } = multiGet(['a', 'b', 'c'], 100);
    mg.pump();
    const [ra] = host.sent;
    if (ra === undefined) throw new Error('not sent');
    ra.status = ReplyStatus.ERROR;
    ra.reply = [Buffer.from('SERVER_ERROR backend failure\r\n', 'latin1')];
    mg.onReply(ra);
    expect(host.wakes).toBe(1);
  });
});
