import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_GENERATOR_OPTIONS, parseGeneratorArgs, parseRatio, runLoad } from '../../../bench/load/generator.js';

/**
 * A tiny in-process memcached stand-in that checks every request the generator sends:
 * `get <key>` and `set <key> 0 0 <n>` + exactly n bytes + CRLF, nothing else.
 */
class FakeMemcached {
  readonly server: net.Server;
  readonly items = new Map<string, string>();
  readonly malformed: string[] = [];
  gets = 0;
  sets = 0;

  constructor(private readonly valueSize: number) {
    this.server = net.createServer((s) => this.serve(s));
  }

  listen(): Promise<number> {
    return new Promise((resolve) => {
      this.server.listen(0, '127.0.0.1', () => {
        const a = this.server.address();
        resolve(typeof a === 'object' && a !== null ? a.port : 0);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private serve(s: net.Socket): void {
    let buf = '';
    s.on('error', () => s.destroy());
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      let out = '';
      for (;;) {
        const eol = buf.indexOf('\r\n');
        if (eol === -1) break;
        const line = buf.slice(0, eol);
        const get = /^get (k:\d+)$/.exec(line);
        const set = /^set (k:\d+) 0 0 (\d+)$/.exec(line);
        if (get?.[1] !== undefined) {
          this.gets++;
          const v = this.items.get(get[1]);
          out += v === undefined ? 'END\r\n' : `VALUE ${get[1]} 0 ${v.length}\r\n${v}\r\nEND\r\n`;
          buf = buf.slice(eol + 2);
        } else if (set?.[1] !== undefined) {
          const n = Number(set[2]);
          if (buf.length < eol + 2 + n + 2) break;
          const value = buf.slice(eol + 2, eol + 2 + n);
          if (n !== this.valueSize || buf.slice(eol + 2 + n, eol + 4 + n) !== '\r\n') this.malformed.push(line);
          this.items.set(set[1], value);
          this.sets++;
          out += 'STORED\r\n';
          buf = buf.slice(eol + 4 + n);
        } else {
          this.malformed.push(line);
          out += 'ERROR\r\n';
          buf = buf.slice(eol + 2);
        }
      }
      if (out !== '') s.write(out);
    });
  }
}

let fake: FakeMemcached | null = null;
afterEach(async () => {
  await fake?.close();
  fake = null;
});

describe('runLoad', () => {
  it('preloads every key, then keeps the pipeline full of well-formed gets and sets', async () => {
    fake = new FakeMemcached(32);
    const port = await fake.listen();
    const result = await runLoad({
      ...DEFAULT_GENERATOR_OPTIONS,
      port,
      connections: 3,
      depth: 4,
      keys: 250,
      durationSec: 0.3,
      warmupSec: 0.05,
    });
    expect(fake.malformed).toEqual([]);
    expect(fake.items.size).toBe(250);
    expect([...fake.items.keys()].every((k) => /^k:\d{3}$/.test(k))).toBe(true);
    expect(result.preloadErrors).toBe(0);
    expect(result.errors).toBe(0);
    expect(result.misses).toBe(0);
    expect(result.ops).toBeGreaterThan(0);
    expect(result.ops).toBe(result.hits + result.stored);
    // 10:1 gets to sets, give or take
    expect(result.hits / Math.max(1, result.stored)).toBeGreaterThan(5);
    expect(result.p50Us).toBeGreaterThan(0);
    expect(result.p99Us).toBeGreaterThanOrEqual(result.p50Us);
    expect(result.p999Us).toBeGreaterThanOrEqual(result.p99Us);
  });

  it('counts error replies as errors, not ops', async () => {
    const server = net.createServer((s) => {
      s.on('error', () => s.destroy());
      s.on('data', (d: Buffer) => {
        const n = d
          .toString('latin1')
          .split('\r\n')
          .filter((l) => /^(get|set) /.test(l)).length;
        s.write('SERVER_ERROR rate limited\r\n'.repeat(n));
      });
    });
    const port = await new Promise<number>((resolve) =>
      server.listen(0, '127.0.0.1', () => {
        const a = server.address();
        resolve(typeof a === 'object' && a !== null ? a.port : 0);
      }),
    );
    try {
      const result = await runLoad({
        ...DEFAULT_GENERATOR_OPTIONS,
        port,
        connections: 2,
        depth: 2,
        valueSize: 0,
        preload: false,
        durationSec: 0.2,
        warmupSec: 0,
      });
      expect(result.ops).toBe(0);
      expect(result.errors).toBeGreaterThan(0);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('rejects a port nobody listens on', async () => {
    const probe = net.createServer();
    const port = await new Promise<number>((resolve) =>
      probe.listen(0, '127.0.0.1', () => {
        const a = probe.address();
        resolve(typeof a === 'object' && a !== null ? a.port : 0);
      }),
    );
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    await expect(runLoad({ ...DEFAULT_GENERATOR_OPTIONS, port, connections: 2, durationSec: 0.1 })).rejects.toThrow();
  });
});

describe('parseGeneratorArgs', () => {
  it('reads every flag and keeps the defaults for the rest', () => {
    const cli = parseGeneratorArgs(['--port', '22211', '--depth', '16', '--ratio', '9:1', '--skip-preload', '--json']);
    expect(cli.json).toBe(true);
    expect(cli.phases).toBe(false);
    expect(cli.options).toMatchObject({
      port: 22211,
      depth: 16,
      getWeight: 9,
      setWeight: 1,
      preload: false,
      connections: 50,
    });
  });

  it('rejects a bad ratio and a non-numeric depth', () => {
    expect(() => parseRatio('10')).toThrow(/10:1/);
    expect(() => parseGeneratorArgs(['--depth', 'x'])).toThrow(/depth/);
  });
});
