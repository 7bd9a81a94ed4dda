/** src/log.ts (kept next to the config tests: redaction guards the config's secrets). */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { connectionLogger, createLogger } from '../../../src/log.js';

function capture(): { stream: Writable; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString('utf8'));
      callback();
    },
  });
  return {
    stream,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe('createLogger', () => {
  it('redacts passwords, tokens and authorization headers', () => {
    const out = capture();
    const log = createLogger('info', out.stream);
    log.info({ password: 'p1', token: 't1', authorization: 'Bearer a1' }, 'top level');
    log.info({ tenant: { password: 'p2' }, admin: { token: 't2' }, headers: { authorization: 'Bearer a2' } }, 'nested');
    const text = JSON.stringify(out.lines());
    for (const secret of ['p1', 't1', 'a1', 'p2', 't2', 'a2']) expect(text).not.toContain(secret);
    expect(out.lines()[0]).toMatchObject({ password: '[redacted]', token: '[redacted]', authorization: '[redacted]' });
    expect(out.lines()[1]).toMatchObject({ tenant: { password: '[redacted]' }, admin: { token: '[redacted]' } });
  });

  it('honours the level', () => {
    const out = capture();
    const log = createLogger('warn', out.stream);
    log.info('hidden');
    log.warn('shown');
    expect(out.lines().map((l) => l.msg)).toEqual(['shown']);
    expect(log.isLevelEnabled('debug')).toBe(false);
  });
});

describe('connectionLogger', () => {
  it('binds conn and peer, and takes the tenant later', () => {
    const out = capture();
    const conn = connectionLogger(createLogger('info', out.stream), 7, '10.1.2.3:5000');
    conn.info('accepted');
    conn.setBindings({ tenant: 'shop' });
    conn.info('identified');
    expect(out.lines()).toMatchObject([
      { conn: 7, peer: '10.1.2.3:5000', msg: 'accepted' },
      { conn: 7, peer: '10.1.2.3:5000', tenant: 'shop', msg: 'identified' },
    ]);
  });
});
