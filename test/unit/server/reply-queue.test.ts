import { describe, expect, it } from 'vitest';
import { ReplyStatus } from '../../../src/protocol/text/request.js';
import { fillSlot, isReplyHidden, ReplyQueue } from '../../../src/server/reply-queue.js';
import { buildRequest } from '../protocol/text/request-builder.js';

describe('reply slots', () => {
  it('fills a slot with memgate’s own reply, or with nothing', () => {
    const req = buildRequest('get k');
    const reply = Buffer.from('CLIENT_ERROR access denied\r\n');
    fillSlot(req, reply, ReplyStatus.ERROR);
    expect(req).toMatchObject({ reply: [reply], status: ReplyStatus.ERROR, done: true });
    const quit = buildRequest('quit');
    fillSlot(quit, null, ReplyStatus.NONE);
    expect(quit).toMatchObject({ reply: null, status: ReplyStatus.NONE, done: true });
  });

  it('keeps slots in arrival order', () => {
    const q = new ReplyQueue();
    const a = buildRequest('get a');
    const b = buildRequest('get b');
    q.push(a);
    q.push(b);
    expect(q.peek()).toBe(a);
    q.shift();
    expect(q.peek()).toBe(b);
    expect(q.length).toBe(1);
  });

  it.each([
    ['set k 0 0 1 noreply', ReplyStatus.STORED, true],
    ['set k 0 0 1 noreply', ReplyStatus.NOT_STORED, true],
    ['set k 0 0 1 noreply', ReplyStatus.ERROR, false],
    ['delete k noreply', ReplyStatus.NOT_FOUND, true],
    ['set k 0 0 1', ReplyStatus.STORED, false],
    ['mg k v q', ReplyStatus.MISS, true],
    ['mg k v q', ReplyStatus.OK, false],
    ['mg k q', ReplyStatus.HD, false],
    ['ms k 1 q', ReplyStatus.HD, true],
    ['ms k 1 q', ReplyStatus.NOT_STORED, false],
    ['md k q', ReplyStatus.HD, true],
    ['md k q', ReplyStatus.NOT_FOUND, false],
    ['ma k q', ReplyStatus.HD, true],
    ['ma k q', ReplyStatus.ERROR, false],
    ['mg k v', ReplyStatus.MISS, false],
  ] as const)('%s answered with status %i is hidden: %s', (line, status, hidden) => {
    const req = buildRequest(line);
    req.status = status;
    expect(isReplyHidden(req)).toBe(hidden);
  });
});
