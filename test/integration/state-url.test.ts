/**
 * `state.url: redis://…` until the Redis store lands: one clear line and exit
 * code 1 from `serve` and from `check-config`, never a stack trace, never the
 * URL's password.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/spawn-memcached.js';
import { runCli } from '../helpers/memgate-process.js';

let dir: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgate-state-url-'));
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

async function configWith(url: string): Promise<string> {
  const file = path.join(dir, `memgate-${Math.random().toString(36).slice(2)}.yaml`);
  fs.writeFileSync(
    file,
    `listen:
  - { host: 127.0.0.1, port: ${await freePort()}, tenant: shop }
upstream:
  servers: [ "127.0.0.1:1" ]
state: { url: "${url}" }
log: { level: warn }
tenants:
  shop: { prefix: "s:" }
`,
  );
  return file;
}

describe('state.url redis://', () => {
  it.each([
    ['redis://127.0.0.1:6379/0', 'redis://127.0.0.1:6379/0'],
    ['rediss://memgate:s3cret@cache.internal:6380/2', 'rediss://memgate:***@cache.internal:6380/2'],
  ])('%s: serve, check-config, state show and rotate print one line and exit 1', async (url, shown) => {
    const file = await configWith(url);
    const expected = `memgate: state.url ${shown} is not supported yet (only file: URLs)\n`;
    for (const cmd of [
      ['check-config'],
      ['serve'],
      ['serve', '--workers', '2'],
      ['state', 'show'],
      ['rotate', 'shop'],
    ]) {
      const r = await runCli([...cmd, '--config', file]);
      expect({ cmd, code: r.code, stderr: r.stderr, stdout: r.stdout }).toEqual({
        cmd,
        code: 1,
        stderr: expected,
        stdout: '',
      });
    }
  });
});
