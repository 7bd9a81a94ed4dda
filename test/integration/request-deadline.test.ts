/**
 * limits.requestTimeoutMs is a deadline per request, on every protocol: from
 * the first byte of a request until it is whole. A client that trickles a
 * request (a byte every 100 ms never trips an inactivity timer) gets a clear
 * reply at the deadline and the connection closes; a session that sends whole
 * requests, however slowly, is never cut off.
 */
import { describe, expect, it } from 'vitest';
import { useMemcachedAndProxy } from '../helpers/memcached-and-proxy.js';
import { TextClient } from '../helpers/text-client.js';
import { packet, storeExtras } from '../unit/protocol/binary/binary-fixtures.js';

const TIMEOUT_MS = 600;
const TRICKLE_GAP_MS = 100;
/** a trickle longer than this means the deadline never fired */
const TRICKLE_MAX_BYTES = 40;

const SLOW = 1;
// NOTE: maxKeysPerGet 1 keeps the ops burst at 1 (a burst below maxKeysPerGet is raised to it)
const env = useMemcachedAndProxy(`
listen:
  - { host: 127.0.0.1, port: 0, tenant: alpha }
  - { host: 127.0.0.1, port: 0, tenant: slow }
upstream:
  servers: [ "\${UPSTREAM}" ]
state: { url: "\${STATE}" }
limits: { requestTimeoutMs: ${TIMEOUT_MS} }
tenants:
  alpha: { prefix: "a7Zk2:" }
  slow: { prefix: "s:", limits: { opsPerSecond: 1, burst: 1, maxKeysPerGet: 1, overLimit: delay, maxDelayMs: 5000 } }
`);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Sends `bytes` one byte per TRICKLE_GAP_MS until they run out or the server closes; returns how many were sent. */
async function trickle(c: TextClient, bytes: Buffer): Promise<number> {
  let sent = 0;
  while (sent < bytes.length && sent < TRICKLE_MAX_BYTES && !c.closed) {
    c.send(bytes.subarray(sent, sent + 1));
    sent++;
    await sleep(TRICKLE_GAP_MS);
  }
  return sent;
}

describe('request deadline', () => {
  it('cuts off a trickling text set at the deadline, with CLIENT_ERROR request timed out', async () => {
    const c = await TextClient.connect(env.gate.port(0));
    c.send('set trickled 0 0 30\r\n');
    const sent = await trickle(c, Buffer.from('x'.repeat(30) + '\r\n'));
    await c.waitClosed(3000);
    expect(c.take().toString('latin1')).toBe('CLIENT_ERROR request timed out\r\n');
    expect(sent).toBeLessThan(30); // the value never arrived whole
    const check = await TextClient.connect(env.gate.port(0));
    expect(await check.request('get trickled\r\n')).toBe('END\r\n');
    check.close();
  });

  it('cuts off a trickling command line at the deadline', async () => {
    const c = await TextClient.connect(env.gate.port(0));
    const sent = await trickle(c, Buffer.from(`get ${'k'.repeat(60)}\r\n`));
    await c.waitClosed(3000);
    expect(c.take().toString('latin1')).toBe('CLIENT_ERROR request timed out\r\n');
    expect(sent).toBeLessThan(TRICKLE_MAX_BYTES);
  });

  it('cuts off a trickling binary packet at the deadline, with an EINVAL response', async () => {
    const c = await TextClient.connect(env.gate.port(0));
    const p = packet({
      opcode: 0x01,
      key: 'bin-trickled',
      extras: storeExtras(0, 0),
      value: 'v'.repeat(30),
      opaque: 77,
    });
    c.send(p.subarray(0, 30)); // the header and part of the body
    const sent = await trickle(c, p.subarray(30));
    await c.waitClosed(3000);
    const reply = c.take();
    expect(sent).toBeLessThan(p.length - 30);
    expect(reply[0]).toBe(0x81); // a response
    expect(reply[1]).toBe(0x01); // to the SET
    expect(reply.readUInt16BE(6)).toBe(0x04); // EINVAL
    expect(reply.readUInt32BE(12)).toBe(77); // its opaque
    expect(reply.subarray(24).toString('latin1')).toBe('request timed out');
  });

  it('cuts off a binary header that never completes', async () => {
    const c = await TextClient.connect(env.gate.port(0));
    const p = packet({ opcode: 0x0a }); // NOOP
    const sent = await trickle(c, Buffer.concat([p, p]).subarray(0, 23));
    await c.waitClosed(3000);
    expect(sent).toBeLessThan(23);
    const reply = c.take();
    expect(reply.readUInt16BE(6)).toBe(0x04);
    expect(reply.subarray(24).toString('latin1')).toBe('request timed out');
  });

  it('never cuts off a pipelined session that sends whole requests, however long it lasts', async () => {
    const c = await TextClient.connect(env.gate.port(0));
    const big = 'b'.repeat(512 * 1024); // arrives in many chunks, quickly
    const started = performance.now();
    let rounds = 0;
    while (performance.now() - started < TIMEOUT_MS * 2.5 && rounds < 20) {
      const reply = await c.request(
        `set p${rounds} 0 0 3\r\nabc\r\nget p${rounds}\r\nset big 0 0 ${big.length}\r\n${big}\r\n`,
      );
      expect(reply).toBe(`STORED\r\nVALUE p${rounds} 0 3\r\nabc\r\nEND\r\nSTORED\r\n`);
      rounds++;
      await sleep(TIMEOUT_MS / 3);
    }
    expect(c.closed).toBe(false);
    expect(rounds).toBeGreaterThan(2);
    c.close();
  });

  it('does not count time memgate is not reading (a request held over the rate limit) against the client', async () => {
    const c = await TextClient.connect(env.gate.port(SLOW));
    // the second get waits about a second for budget (longer than the deadline) with reading paused; the set
    // that started in the same chunk is finished a third of the deadline after that get is answered: well
    // within the deadline once the paused second is not counted, past it if it were
    c.send('get a\r\nget b\r\nset held 0 0 5\r\nab');
    expect(await c.readUntil('END\r\nEND\r\n', 5000)).toBe('END\r\nEND\r\n');
    await sleep(TIMEOUT_MS / 3);
    c.send('cde\r\n');
    expect(await c.readUntil('\r\n', 5000)).toBe('STORED\r\n');
    expect(c.closed).toBe(false);
    c.close();
  });

  it('never cuts off a binary session that idles between whole packets', async () => {
    const c = await TextClient.connect(env.gate.port(0));
    for (let i = 0; i < 4; i++) {
      c.send(packet({ opcode: 0x0a, opaque: i }));
      const reply = await c.readBytes(24);
      expect(reply.readUInt16BE(6)).toBe(0);
      await sleep(TIMEOUT_MS / 2);
    }
    expect(c.closed).toBe(false);
    c.close();
  });
});
