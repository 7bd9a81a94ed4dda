/**
 * Records memcached's replies to every case of test/helpers/recorded-replies.ts
 * into test/fixtures/memcached-replies.json (the response parser's unit test
 * reads it). Starts two memcached processes of its own (one normal, one `-m 2 -M`).
 *
 *   node --import tsx scripts/record-replies.ts
 */
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { recordAll } from '../test/helpers/recorded-replies.js';
import { spawnMemcached } from '../test/helpers/spawn-memcached.js';

const main = await spawnMemcached();
const small = await spawnMemcached(['-m', '2', '-M']);
try {
  const version = execFileSync(process.env.MEMCACHED_BIN ?? 'memcached', ['-V'], { encoding: 'latin1' }).trim();
  const recordings = await recordAll(main.port, small.port);
  const file = new URL('../test/fixtures/memcached-replies.json', import.meta.url);
  fs.mkdirSync(new URL('.', file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify({ version, recordings }, null, 2)}\n`);
  console.log(`wrote ${recordings.length} recordings from ${version}`);
} finally {
  await main.stop();
  await small.stop();
}
