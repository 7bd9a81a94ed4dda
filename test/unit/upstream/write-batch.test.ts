import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { COPY_LIMIT, WriteBatch, type BatchSink } from '../../../src/upstream/write-batch.js';

/** Records what a socket would be asked to do. */
class Sink implements BatchSink {
  readonly writes: Buffer[] = [];
  readonly events: string[] = [];
  accept = true;
  write(chunk: Buffer): boolean {
    this.writes.push(chunk);
    this.events.push(`write ${chunk.length}`);
    return this.accept;
  }
  cork(): void {
    this.events.push('cork');
  }
  uncork(): void {
    this.events.push('uncork');
  }
}

const b = (s: string) => Buffer.from(s, 'latin1');

describe('WriteBatch', () => {
  it('writes nothing when empty', () => {
    const sink = new Sink();
    expect(new WriteBatch().writeTo(sink)).toBe(true);
    expect(sink.events).toEqual([]);
  });

  it('writes a single chunk as it is, without copying', () => {
    const sink = new Sink();
    const batch = new WriteBatch();
    const chunk = b('END\r\n');
    batch.push(chunk);
    batch.writeTo(sink);
    expect(sink.writes).toHaveLength(1);
    expect(sink.writes[0]).toBe(chunk);
  });

  it('copies small chunks into one write, in order, and empties itself', () => {
    const sink = new Sink();
    const batch = new WriteBatch();
    for (const s of ['VALUE k 0 2\r\n', 'hi\r\n', '', 'END\r\n']) batch.push(b(s));
    expect(batch.bytes).toBe(22);
    batch.writeTo(sink);
    expect(sink.events).toEqual(['write 22']);
    expect(sink.writes[0]?.toString('latin1')).toBe('VALUE k 0 2\r\nhi\r\nEND\r\n');
    expect([batch.isEmpty, batch.bytes]).toEqual([true, 0]);
  });

  it('writes a large chunk as it is, corked between copies of the small runs around it', () => {
    const sink = new Sink();
    const batch = new WriteBatch();
    const big = Buffer.alloc(COPY_LIMIT, 0x78);
    for (const c of [b('a'), b('bc'), big, b('d'), b('ef')]) batch.push(c);
    batch.writeTo(sink);
    expect(sink.events).toEqual(['cork', 'write 3', `write ${COPY_LIMIT}`, 'write 3', 'uncork']);
    expect(sink.writes[1]).toBe(big);
    expect(Buffer.concat(sink.writes).toString('latin1')).toBe(`abc${'x'.repeat(COPY_LIMIT)}def`);
  });

  it('returns false when the socket asks to wait for drain', () => {
    const sink = new Sink();
    sink.accept = false;
    const batch = new WriteBatch();
    batch.push(b('x'));
    batch.push(Buffer.alloc(COPY_LIMIT));
    expect(batch.writeTo(sink)).toBe(false);
  });

  it('forgets everything on clear', () => {
    const sink = new Sink();
    const batch = new WriteBatch();
    batch.push(b('x'));
    batch.clear();
    batch.writeTo(sink);
    expect(sink.events).toEqual([]);
  });

  it('always writes exactly the bytes pushed, in order, never copying a large chunk', () => {
    const sizes = fc.array(
      fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: COPY_LIMIT - 2, max: COPY_LIMIT + 2 })),
      {
        maxLength: 12,
      },
    );
    fc.assert(
      fc.property(sizes, (lens) => {
        const chunks = lens.map((n, i) => Buffer.alloc(n, 0x41 + (i % 26)));
        const batch = new WriteBatch();
        for (const c of chunks) batch.push(c);
        const sink = new Sink();
        batch.writeTo(sink);
        expect(Buffer.concat(sink.writes).equals(Buffer.concat(chunks))).toBe(true);
        for (const c of chunks) if (c.length >= COPY_LIMIT) expect(sink.writes).toContain(c);
      }),
    );
  });
});
