/**
 * The compat scenario (test/compat/README.md) with memjs (Node; binary
 * protocol, SASL PLAIN when given a user name). memjs 1.3 has no multi-get,
 * cas or version call.
 *
 * Usage: node --import tsx memjs_scenario.ts '<json options>' (see pylibmc_scenario.py).
 * Prints one JSON line per step: {"step": name, "outcome": value}.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import memjs from 'memjs';

interface Options {
  port: number;
  user?: string;
  password?: string;
  prefix?: string;
  maxKey?: number;
}

const opts = JSON.parse(process.argv[2] ?? '{}') as Options;
const P = opts.prefix ?? '';
const MAX_KEY = opts.maxKey ?? 250;
const COUNTERS = [
  'cmd_get',
  'cmd_set',
  'cmd_touch',
  'cmd_flush',
  'get_hits',
  'get_misses',
  'delete_hits',
  'delete_misses',
  'incr_hits',
  'incr_misses',
  'decr_hits',
  'decr_misses',
  'cas_hits',
  'cas_misses',
  'cas_badval',
  'touch_hits',
  'touch_misses',
];

const connect = (): memjs.Client =>
  memjs.Client.create(`127.0.0.1:${opts.port}`, {
    username: opts.user,
    password: opts.password,
    retries: 0,
    timeout: 10,
    conntimeout: 5,
    logger: { log: () => undefined },
  });
let m = connect();

function out(step: string, outcome: unknown): void {
  process.stdout.write(`${JSON.stringify({ step, outcome })}\n`);
}

/** A value as an outcome: short text as itself, anything else by length and digest. */
function show(v: unknown): unknown {
  if (Buffer.isBuffer(v)) {
    if (v.length <= 64 && v.every((b) => b >= 0x20 && b < 0x7f)) return v.toString('latin1');
    return { len: v.length, sha1: createHash('sha1').update(v).digest('hex') };
  }
  if (Array.isArray(v)) return v.map(show);
  return v;
}

async function step(name: string, fn: () => Promise<unknown>): Promise<void> {
  try {
    out(name, show(await fn()));
  } catch (e) {
    // memjs rejects with an Error whose message is memcached's status text
    out(name, `error:${(e as Error).message}`);
  }
}

const k = (name: string): string => P + name;
const get = async (key: string): Promise<Buffer | null> => (await m.get(key)).value;

function stats(): Promise<Record<string, string>> {
  return new Promise((resolve, reject) =>
    m.stats((err, _server, s) => (err !== null ? reject(err) : resolve(s ?? {}))),
  );
}

const version = (createRequire(import.meta.url)('memjs/package.json') as { version: string }).version;
out('client', { name: 'memjs', version, node: process.versions.node, protocol: opts.user ? 'binary SASL' : 'binary' });
const before = await stats();
out(
  'stats_names',
  ['pid', 'uptime', 'time', 'version', 'curr_connections', ...COUNTERS].filter((n) => n in before).sort(),
);
out('stats_version', before.version ?? null);

await step('set', () => m.set(k('a'), 'alpha', {}));
await step('get', () => get(k('a')));
await step('get_miss', () => get(k('missing')));
await step('add_existing', () => m.add(k('a'), 'x', {}));
await step('add_new', () => m.add(k('added'), 'new', {}));
await step('replace_existing', () => m.replace(k('a'), 'beta', {}));
await step('replace_missing', () => m.replace(k('missing'), 'x', {}));
await step('append', async () => [await m.append(k('a'), '-end'), await get(k('a'))]);
await step('prepend', async () => [await m.prepend(k('a'), 'start-'), await get(k('a'))]);
await step('append_missing', () => m.append(k('missing'), 'x'));
await step('incr', async () => [await m.set(k('n'), '10', {}), (await m.increment(k('n'), 5, {})).value]);
await step('decr', async () => (await m.decrement(k('n'), 3, {})).value);
await step('decr_below_zero', async () => (await m.decrement(k('n'), 100, {})).value);
await step('incr_wrap', async () => [
  await m.set(k('w'), '18446744073709551615', {}),
  (await m.increment(k('w'), 2, {})).value,
]);
await step('incr_missing', async () => (await m.increment(k('missing'), 1, {})).success);
await step('incr_initial', async () => [
  (await m.increment(k('fresh'), 1, { initial: 7 })).value,
  await get(k('fresh')),
]);
await step('incr_non_numeric', async () => (await m.increment(k('a'), 1, {})).success);
await step('get_counter', () => get(k('n')));
await step('touch', async () => [await m.touch(k('a'), 100), await get(k('a'))]);
await step('touch_missing', () => m.touch(k('missing'), 100));
await step('delete', () => m.delete(k('a')));
await step('delete_missing', () => m.delete(k('a')));
await step('get_deleted', () => get(k('a')));
const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
await step('bytes_256', async () => [
  await m.set(k('bin'), all, {}),
  all.equals((await get(k('bin'))) ?? Buffer.alloc(0)),
]);
await step('empty_value', async () => [await m.set(k('empty'), '', {}), await get(k('empty'))]);
const big = Buffer.from(Array.from({ length: 1000 * 1000 }, (_, i) => (i * 7) % 251));
await step('value_1mb', async () => [
  await m.set(k('big'), big, {}),
  big.equals((await get(k('big'))) ?? Buffer.alloc(0)),
]);
const longest = k('L'.repeat(MAX_KEY - P.length));
await step('longest_key', async () => [await m.set(longest, 'long', {}), await get(longest)]);
// memcached closes a binary connection after a key over 250 bytes (memgate keeps it open), and memjs
// then never settles a request on it: each of these steps ends with a new connection
await step('key_too_long', () => m.set(`${longest}X`, 'x', {}));
m.close();
m = connect();
await step('get_key_too_long', () => get(`${longest}X`));
m.close();
m = connect();
await step('flush_all', async () => [
  await m.set(k('f'), 'x', {}),
  Object.values(await m.flush()),
  await get(k('f')),
  await get(longest),
]);
const after = await stats();
out(
  'stats_delta',
  Object.fromEntries(
    COUNTERS.filter((n) => n in before && n in after).map((n) => [n, Number(after[n]) - Number(before[n])]),
  ),
);
await step('value_too_large', async () => [
  await m.set(k('big'), big, {}),
  await m.set(k('big'), Buffer.concat([big, big]), {}),
]);
await step('get_after_too_large', async () => (await get(k('big'))) === null);
out('done', true);
m.close();
