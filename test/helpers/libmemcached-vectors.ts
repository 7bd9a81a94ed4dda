/**
 * libmemcached itself as the oracle for key placement: builds
 * test/vectors/ketama-vectors.c with `cc … -lmemcached` (scripts/setup.sh installs
 * libmemcached-dev) and asks it which server each key goes to. No network: the
 * generator only hashes. A missing compiler or library fails the test (never a skip).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { UpstreamServerSpec } from '../../src/upstream/topology.js';

const SOURCE = join(import.meta.dirname, '..', 'vectors', 'ketama-vectors.c');

export interface VectorGenerator {
  /** the index libmemcached picks for each key (servers in order; names are hashed as host "name", port 11211) */
  place(distribution: 'ketama' | 'modula', servers: readonly UpstreamServerSpec[], keys: readonly Buffer[]): number[];
  remove(): void;
}

/** A server line for the generator. libmemcached has no server names: a name is given as the host on port 11211, whose ketama string is then exactly `name-i`. */
function serverLine(server: UpstreamServerSpec): string {
  if (server.name !== null) return `${server.name} 11211 ${server.weight}`;
  if (server.path !== null) return `${server.path} 0 ${server.weight}`;
  return `${server.host} ${server.port} ${server.weight}`;
}

export function buildVectorGenerator(): VectorGenerator {
  const dir = mkdtempSync(join(tmpdir(), 'memgate-ketama-'));
  const binary = join(dir, 'ketama-vectors');
  execFileSync('cc', ['-O1', '-o', binary, SOURCE, '-lmemcached'], { stdio: ['ignore', 'ignore', 'pipe'] });
  return {
    place(distribution, servers, keys) {
      const input = [
        distribution,
        String(servers.length),
        ...servers.map(serverLine),
        ...keys.map((k) => k.toString('hex')),
      ].join('\n');
      const out = execFileSync(binary, [], { input: `${input}\n`, maxBuffer: 64 * 1024 * 1024 }).toString('latin1');
      return out
        .split('\n')
        .filter((line) => line !== '')
        .map(Number);
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
