<?php
// The compat scenario (test/compat/README.md) with php-memcached (libmemcached).
// Usage: php php_memcached_scenario.php '<json options>' (see pylibmc_scenario.py for the options).
// Prints one JSON line per step: {"step": name, "outcome": value}. A failed call's outcome is
// "error:<libmemcached result code>" (getResultCode(), as an application sees it).

$opts = json_decode($argv[1], true);
$P = $opts['prefix'] ?? '';
$MAX_KEY = $opts['maxKey'] ?? 250;
$m = new Memcached();
$m->setOption(Memcached::OPT_CONNECT_TIMEOUT, 5000);
$m->setOption(Memcached::OPT_RECV_TIMEOUT, 5000000);
$m->setOption(Memcached::OPT_SEND_TIMEOUT, 5000000);
$m->setOption(Memcached::OPT_COMPRESSION, false);
$m->setOption(Memcached::OPT_BINARY_PROTOCOL, $opts['protocol'] === 'binary');
if (isset($opts['user'])) $m->setSaslAuthData($opts['user'], $opts['password']);
$m->addServer('127.0.0.1', $opts['port']);

$COUNTERS = ['cmd_get', 'cmd_set', 'cmd_touch', 'cmd_flush', 'get_hits', 'get_misses', 'delete_hits',
  'delete_misses', 'incr_hits', 'incr_misses', 'decr_hits', 'decr_misses', 'cas_hits', 'cas_misses',
  'cas_badval', 'touch_hits', 'touch_misses'];

function out($step, $outcome) {
  echo json_encode(['step' => $step, 'outcome' => $outcome], JSON_UNESCAPED_SLASHES), "\n";
}

/** A value as an outcome: short text as itself, anything else by length and digest. */
function show($v) {
  if (is_string($v)) {
    if (strlen($v) <= 64 && preg_match('/^[\x20-\x7e]*$/', $v)) return $v;
    return ['len' => strlen($v), 'sha1' => sha1($v)];
  }
  if (is_array($v)) {
    ksort($v);
    return array_map('show', $v);
  }
  return $v;
}

/** Runs one call: its value, or when it fails (false), the result code. */
function step($name, $fn) {
  global $m;
  $v = $fn();
  $code = $m->getResultCode();
  if ($v === false && $code !== Memcached::RES_SUCCESS) $v = 'error:' . $code;
  out($name, show($v));
}

function k($name) {
  global $P;
  return $P . $name;
}

function stats() {
  global $m;
  $s = $m->getStats();
  return $s === false ? [] : (array_values($s)[0] ?? []);
}

out('client', ['name' => 'php-memcached', 'version' => phpversion('memcached'),
  'libmemcached' => Memcached::LIBMEMCACHED_VERSION_HEX, 'php' => PHP_VERSION, 'protocol' => $opts['protocol']]);
$before = stats();
out('stats_names', array_values(array_filter(array_merge(['pid', 'uptime', 'time', 'version', 'curr_connections'], $COUNTERS),
  fn($n) => array_key_exists($n, $before))));
out('stats_version', $before['version'] ?? null);
step('version', fn() => array_values($m->getVersion() ?: [false])[0]);

step('set', fn() => $m->set(k('a'), 'alpha'));
step('get', fn() => $m->get(k('a')));
step('get_miss', fn() => $m->get(k('missing')));
step('set_multi', fn() => $m->setMulti([k('m1') => 'one', k('m2') => 'two', k('m3') => 'three']));
step('get_multi', fn() => $m->getMulti([k('m1'), k('missing'), k('m3'), k('m2')]));
$hundred = [];
for ($i = 0; $i < 100; $i++) $hundred[k("n$i")] = (string) $i;
step('set_multi_100', fn() => $m->setMulti($hundred));
step('get_multi_100', fn() => count($m->getMulti(array_merge(array_keys($hundred), [k('nx')]))));
step('add_existing', fn() => $m->add(k('a'), 'x'));
step('add_new', fn() => $m->add(k('added'), 'new'));
step('replace_existing', fn() => $m->replace(k('a'), 'beta'));
step('replace_missing', fn() => $m->replace(k('missing'), 'x'));
step('append', fn() => [$m->append(k('a'), '-end'), $m->get(k('a'))]);
step('prepend', fn() => [$m->prepend(k('a'), 'start-'), $m->get(k('a'))]);
step('append_missing', fn() => $m->append(k('missing'), 'x'));
step('gets_cas', function () use ($m) {
  $r = $m->get(k('a'), null, Memcached::GET_EXTENDED);
  $first = $m->cas($r['cas'], k('a'), 'cas1');
  $stale = $m->cas($r['cas'], k('a'), 'cas2');
  return [show($r['value']), $first, $stale, $m->get(k('a'))];
});
step('cas_missing', fn() => $m->cas(12345, k('missing'), 'x'));
step('gets_missing', fn() => $m->get(k('missing'), null, Memcached::GET_EXTENDED));
step('incr', fn() => [$m->set(k('n'), '10'), $m->increment(k('n'), 5)]);
step('decr', fn() => $m->decrement(k('n'), 3));
step('decr_below_zero', fn() => $m->decrement(k('n'), 100));
step('incr_wrap', fn() => [$m->set(k('w'), '18446744073709551615'), $m->increment(k('w'), 2)]);
step('incr_missing', fn() => $m->increment(k('missing'), 1));
step('incr_non_numeric', fn() => $m->increment(k('a'), 1));
step('get_counter', fn() => $m->get(k('n')));
step('touch', fn() => [$m->touch(k('a'), 100), $m->get(k('a'))]);
step('touch_missing', fn() => $m->touch(k('missing'), 100));
step('delete', fn() => $m->delete(k('a')));
step('delete_missing', fn() => $m->delete(k('a')));
step('get_deleted', fn() => $m->get(k('a')));
step('delete_multi', fn() => [$m->deleteMulti([k('m1'), k('m2')]), $m->getMulti([k('m1'), k('m2'), k('m3')])]);
$all = '';
for ($i = 0; $i < 256; $i++) $all .= chr($i);
step('bytes_256', fn() => [$m->set(k('bin'), $all), $m->get(k('bin')) === $all]);
step('empty_value', fn() => [$m->set(k('empty'), ''), $m->get(k('empty'))]);
$big = '';
for ($i = 0; $i < 1000 * 1000; $i++) $big .= chr($i * 7 % 251);
step('value_1mb', fn() => [$m->set(k('big'), $big), $m->get(k('big')) === $big]);
$longest = k(str_repeat('L', $MAX_KEY - strlen($P)));
step('longest_key', fn() => [$m->set($longest, 'long'), $m->get($longest)]);
step('key_too_long', fn() => $m->set($longest . 'X', 'x'));
step('get_key_too_long', fn() => $m->get($longest . 'X'));
step('flush_all', fn() => [$m->set(k('f'), 'x'), $m->flush(), $m->get(k('f')), $m->get($longest)]);
$after = stats();
$delta = [];
foreach ($COUNTERS as $n) if (isset($before[$n], $after[$n])) $delta[$n] = $after[$n] - $before[$n];
out('stats_delta', $delta);
step('value_too_large', fn() => [$m->set(k('big'), $big), $m->set(k('big'), $big . $big)]);
step('get_after_too_large', fn() => $m->get(k('big')) === false);
out('done', true);
