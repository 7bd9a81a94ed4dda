import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { ErrorCode, ProxyError, UpstreamError, hasErrorCode } from '../../../src/errors.js';
import { Replies } from '../../../src/protocol/text/replies.js';
import { ReplyStatus } from '../../../src/protocol/text/request.js';
import { UpstreamPool, type UpstreamOptions } from '../../helpers/upstream-pool.js';
import { RecordingOwner, buildRequest } from '../protocol/text/request-builder.js';

const options = (over: Partial<UpstreamOptions> = {}): UpstreamOptions => ({
  servers: ['127.0.0.1:1'],
  connectionsPerServer: 2,
  connectTimeoutMs: 1000,
  requestTimeoutMs: 2000,
  backoffMinMs: 50,
  backoffMaxMs: 2000,
  logger: pino({ level: 'silent' }),
  ...over,
});

describe('UpstreamPool (no network)', () => {
  it('refuses an empty server list', () => {
    expect(() => new UpstreamPool(options({ servers: [] }))).toThrow(ProxyError);
  });

  it('queues requests before start and fails them with backend failure on close', async () => {
    const pool = new UpstreamPool(options());
    const owner = new RecordingOwner();
    const req = buildRequest('get a', { ns: 'T:', owner });
    pool.send(0, req);
    expect(owner.replies).toHaveLength(0);
    expect(pool.health()).toEqual([{ address: '127.0.0.1:1', up: false, inFlight: 1 }]);
    await pool.close();
    expect(owner.replies).toEqual([req]);
    expect(req.reply).toEqual([Replies.BACKEND_FAILURE]);
    expect(req.status).toBe(ReplyStatus.ERROR);
    expect(req.done).toBe(true);
  });

  it('fails requests at once after close', async () => {
    const pool = new UpstreamPool(options());
    await pool.close();
    const owner = new RecordingOwner();
    pool.send(1, buildRequest('mn', { owner }));
    expect(owner.replies.map((r) => r.reply)).toEqual([[Replies.BACKEND_FAILURE]]);
  });

  it('bounds the queue of a connection that is not open yet', async () => {
    const pool = new UpstreamPool(options({ maxQueued: 3 }));
    const owner = new RecordingOwner();
    for (let i = 0; i < 5; i++) pool.send(0, buildRequest('mn', { owner }));
    expect(owner.replies).toHaveLength(2);
    expect(pool.health()[0]?.inFlight).toBe(3);
    await pool.close();
    expect(owner.replies).toHaveLength(5);
  });

  it('keeps a meta request unencoded until the server has said whether it speaks meta', async () => {
    const pool = new UpstreamPool(options());
    const owner = new RecordingOwner();
    pool.send(0, buildRequest('mg Zm9vYmF b v', { ns: 'T:', owner }));
    // not refused yet (the encoder runs once the version is known): queued, then failed with the pool
    expect(owner.replies).toHaveLength(0);
    expect(pool.health()[0]?.inFlight).toBe(1);
    await pool.close();
    expect(owner.replies[0]?.reply).toEqual([Replies.BACKEND_FAILURE]);
  });

  it('never forwards watch (it would turn the shared socket into a log stream)', async () => {
    const pool = new UpstreamPool(options());
    const owner = new RecordingOwner();
    pool.send(0, buildRequest('watch fetchers', { owner }));
    expect(owner.replies[0]?.reply?.[0]?.toString()).toBe('CLIENT_ERROR watch not allowed\r\n');
    expect(owner.replies[0]?.status).toBe(ReplyStatus.ERROR);
    await pool.close();
  });

  it('never forwards quit (it would close the shared socket)', async () => {
    const pool = new UpstreamPool(options());
    const owner = new RecordingOwner();
    pool.send(0, buildRequest('quit', { owner }));
    expect(owner.replies[0]?.done).toBe(true);
    expect(owner.replies[0]?.reply).toBeNull();
    expect(pool.health()[0]?.inFlight).toBe(0);
    await pool.close();
  });

  it('calls a drain callback on the next tick when the slot is not blocked', async () => {
    const pool = new UpstreamPool(options());
    expect(pool.isBlocked(0)).toBe(false);
    let called = 0;
    pool.onDrain(0, () => called++);
    expect(called).toBe(0);
    await new Promise((r) => process.nextTick(r));
    expect(called).toBe(1);
    await pool.close();
  });
});

describe('errors', () => {
  it('UpstreamError carries a stable code, the address and the cause', () => {
    const cause = new Error('ECONNRESET');
    const err = new UpstreamError(ErrorCode.UPSTREAM_CLOSED, '127.0.0.1:11211', 'closed', { cause });
    expect(err).toBeInstanceOf(ProxyError);
    expect(err.code).toBe('ERR_UPSTREAM_CLOSED');
    expect(err.address).toBe('127.0.0.1:11211');
    expect(err.cause).toBe(cause);
    expect(hasErrorCode(err, 'ERR_UPSTREAM_CLOSED')).toBe(true);
    expect(hasErrorCode(new Error('x'), 'ERR_UPSTREAM_CLOSED')).toBe(false);
  });
});
