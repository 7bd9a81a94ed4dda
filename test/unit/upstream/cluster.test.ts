import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Replies } from '../../../src/protocol/text/replies.js';
import { ReplyStatus } from '../../../src/protocol/text/request.js';
import { SERVER_DOWN, UpstreamCluster, type ClusterOptions } from '../../../src/upstream/cluster.js';
import { buildRing } from '../../../src/upstream/ring.js';
import { serverSpec } from '../../../src/upstream/topology.js';
import { topologyOf } from '../../helpers/upstream-pool.js';
import { RecordingOwner, buildRequest } from '../protocol/text/request-builder.js';

// ports nothing listens on; nothing is started, so nothing connects
const SERVERS = ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3'];

const open: UpstreamCluster[] = [];

function cluster(over: Partial<ClusterOptions> = {}, pools: Record<string, readonly string[]> = { default: SERVERS }) {
  const c = new UpstreamCluster({
    topology: topologyOf(pools),
    connectionsPerServer: 2,
    connectTimeoutMs: 1000,
    requestTimeoutMs: 2000,
    backoffMinMs: 50,
    backoffMaxMs: 2000,
    failureLimit: 2,
    logger: pino({ level: 'silent' }),
    ...over,
  });
  open.push(c);
  return c;
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

/** A key of the form `k<i>` that the ring over `servers` puts on `index`. */
function keyOn(servers: readonly string[], index: number): string {
  const ring = buildRing(
    servers.map((s) => serverSpec(s)),
    'ketama',
  );
  for (let i = 0; i < 10_000; i++) {
    const k = Buffer.from(`k${i}`);
    if (ring.pick(k, 0, k.length) === index) return `k${i}`;
  }
  throw new Error('no key');
}

describe('UpstreamLink', () => {
  it('sends each key to the server the ring names, and a session stays on one connection there while in flight', () => {
    const c = cluster();
    const link = c.link('default', 0);
    const pool = c.pool('default');
    for (let s = 0; s < 3; s++) {
      const k = keyOn(SERVERS, s);
      for (let n = 1; n <= 3; n++) {
        link.send(buildRequest(`get ${k}`, { owner: new RecordingOwner() }));
        const counts = pool.servers.map((srv) => srv.conns.map((conn) => conn.inFlight));
        // every request of this session on server s is queued on the same one of its connections
        expect(counts[s]?.filter((x) => x > 0)).toEqual([n]);
      }
    }
    expect(link.hasInFlight).toBe(true);
  });

  it('spreads sessions over the connections of a server by their seed', () => {
    const c = cluster({}, { default: ['127.0.0.1:1'] });
    const conns = c.pool('default').servers[0]?.conns ?? [];
    c.link('default', 0).send(buildRequest('get a', { owner: new RecordingOwner() }));
    c.link('default', 1).send(buildRequest('get a', { owner: new RecordingOwner() }));
    expect(conns.map((x) => x.inFlight)).toEqual([1, 1]);
  });

  it('forgets a request once answered (answered), so the session may move connections', () => {
    const c = cluster();
    const link = c.link('default', 0);
    const req = buildRequest(`get ${keyOn(SERVERS, 1)}`, { owner: new RecordingOwner() });
    link.send(req);
    expect(req.upstreamServer).toBe(1);
    link.answered(req);
    expect(req.upstreamServer).toBe(-1);
    expect(link.hasInFlight).toBe(false);
  });

  it('uses a tenant pool of its own, and the default pool for a name it does not know', () => {
    const c = cluster({}, { default: ['127.0.0.1:1'], x: ['127.0.0.1:2'] });
    expect(c.link('x', 0).pool.name).toBe('x');
    expect(c.link('nope', 0).pool.name).toBe('default');
  });
});

describe('a server marked down', () => {
  it('after failureLimit failures in a row fails its keys at once, and the others are not touched', () => {
    const c = cluster();
    const server = c.pool('default').servers[1];
    if (server === undefined) throw new Error('no server');
    server.onConnectionBroken();
    expect(server.down).toBe(false);
    server.onConnectionBroken();
    expect(server.down).toBe(true);
    expect(server.retryDelayMs).toBe(1000);
    const owner = new RecordingOwner();
    const link = c.link('default', 0);
    const dead = buildRequest(`get ${keyOn(SERVERS, 1)}`, { owner });
    link.send(dead);
    expect(owner.replies).toEqual([dead]);
    expect(dead.reply?.[0]).toBe(SERVER_DOWN);
    expect(dead.reply?.[0]?.equals(Replies.BACKEND_FAILURE)).toBe(true);
    expect(dead.status).toBe(ReplyStatus.ERROR);
    const alive = buildRequest(`get ${keyOn(SERVERS, 0)}`, { owner });
    link.send(alive);
    expect(owner.replies).toHaveLength(1); // queued on server 0, not failed
    expect(c.health().map((h) => h.down)).toEqual([false, true, false]);
  });

  it('comes back when a connection is answered again', () => {
    const c = cluster();
    const server = c.pool('default').servers[2];
    if (server === undefined) throw new Error('no server');
    server.onConnectionBroken();
    server.onConnectionBroken();
    server.onConnectionAnswered();
    expect(server.down).toBe(false);
    expect(server.retryDelayMs).toBe(0);
  });

  it('an answer in between resets the count: failures must be consecutive', () => {
    const c = cluster();
    const server = c.pool('default').servers[0];
    if (server === undefined) throw new Error('no server');
    server.onConnectionBroken();
    server.onConnectionAnswered();
    server.onConnectionBroken();
    expect(server.down).toBe(false);
  });

  it('with ejectHosts leaves the ring: its keys go where the ring over the live servers puts them', () => {
    const c = cluster({ ejectHosts: true });
    const pool = c.pool('default');
    const server = pool.servers[1];
    if (server === undefined) throw new Error('no server');
    server.onConnectionBroken();
    server.onConnectionBroken();
    const live = [SERVERS[0] ?? '', SERVERS[2] ?? ''];
    const link = c.link('default', 0);
    for (let i = 0; i < 30; i++) {
      const req = buildRequest(`get k${i}`, { owner: new RecordingOwner() });
      link.send(req);
      const liveRing = buildRing(
        live.map((s) => serverSpec(s)),
        'ketama',
      );
      const k = Buffer.from(`k${i}`);
      expect(req.upstreamServer).toBe(liveRing.pick(k, 0, k.length) === 0 ? 0 : 2);
    }
    server.onConnectionAnswered();
    const back = buildRequest(`get ${keyOn(SERVERS, 1)}`, { owner: new RecordingOwner() });
    link.send(back);
    expect(back.upstreamServer).toBe(1);
  });
});

describe('UpstreamCluster', () => {
  it('is ready only when every pool has a server up', () => {
    const c = cluster({}, { default: ['127.0.0.1:1'], x: ['127.0.0.1:2'] });
    expect(c.isReady()).toBe(false);
    expect(c.health().map((h) => [h.address, h.pool])).toEqual([
      ['127.0.0.1:1', 'default'],
      ['127.0.0.1:2', 'x'],
    ]);
  });

  it('refuses a pool whose TLS file cannot be read, naming the pool and the file', () => {
    const topology = topologyOf({ default: ['127.0.0.1:1'] });
    const spec = topology.pools.get('default');
    if (spec === undefined) throw new Error('no pool');
    const withTls = new Map([['default', { ...spec, tls: { ca: '/nonexistent/ca.pem' } }]]);
    expect(() => cluster({ topology: { pools: withTls } })).toThrow(/pool "default": cannot read tls.ca/);
  });
});

describe('admin fan-out', () => {
  const inFlightPerServer = (c: UpstreamCluster) =>
    c.pool('default').servers.map((s) => s.conns.reduce((n, x) => n + x.inFlight, 0));

  it('sends a plain stats to every server, and stats <group> to the first only', () => {
    const c = cluster();
    const link = c.link('default', 0);
    link.send(buildRequest('stats', { owner: new RecordingOwner() }));
    expect(inFlightPerServer(c)).toEqual([1, 1, 1]);
    link.send(buildRequest('stats settings', { owner: new RecordingOwner() }));
    expect(inFlightPerServer(c)).toEqual([2, 1, 1]);
  });

  it('answers the first error when a server is down, once every server has answered', async () => {
    const c = cluster();
    const server = c.pool('default').servers[1];
    server?.onConnectionBroken();
    server?.onConnectionBroken();
    const owner = new RecordingOwner();
    const req = buildRequest('flush_all', { owner });
    c.link('default', 0).send(req);
    expect(inFlightPerServer(c)).toEqual([1, 0, 1]);
    expect(owner.replies).toHaveLength(0);
    await c.close(); // the other two fail too
    expect(owner.replies).toEqual([req]);
    expect(req.reply?.[0]?.equals(Replies.BACKEND_FAILURE)).toBe(true);
  });

  it('with ejectHosts skips a server marked down', () => {
    const c = cluster({ ejectHosts: true });
    const server = c.pool('default').servers[1];
    server?.onConnectionBroken();
    server?.onConnectionBroken();
    const owner = new RecordingOwner();
    c.link('default', 0).send(buildRequest('stats', { owner }));
    expect(inFlightPerServer(c)).toEqual([1, 0, 1]);
    expect(owner.replies).toHaveLength(0);
  });
});

describe('logging of server state', () => {
  it('logs going down and coming back once each, at warn', () => {
    const lines: { level: number; msg: string }[] = [];
    const logger = pino(
      { level: 'info' },
      { write: (t: string) => lines.push(JSON.parse(t) as { level: number; msg: string }) },
    );
    const c = cluster({ logger });
    const server = c.pool('default').servers[0];
    for (let i = 0; i < 6; i++) server?.onConnectionBroken();
    server?.onConnectionAnswered();
    server?.onConnectionAnswered();
    expect(lines.map((l) => [l.level, l.msg])).toEqual([
      [40, 'upstream server marked down'],
      [40, 'upstream server back up'],
    ]);
  });
});
