# frozen_string_literal: true

# The compat scenario (test/compat/README.md) with Ruby's dalli (3.0.6: binary protocol, optional SASL).
# Usage: ruby dalli_scenario.rb '<json options>' (see pylibmc_scenario.py for the options).
# Prints one JSON line per step: {"step": name, "outcome": value}.
require 'dalli'
require 'digest'
require 'json'
require 'logger'

opts = JSON.parse(ARGV[0])
P = opts.fetch('prefix', '')
MAX_KEY = opts.fetch('maxKey', 250)
Dalli.logger = Logger.new(nil)
client_opts = { socket_timeout: 10, socket_max_failures: 0, down_retry_delay: 0, compress: false,
                value_max_bytes: 4 * 1024 * 1024 }
client_opts.merge!(username: opts['user'], password: opts['password']) if opts['user']
M = Dalli::Client.new("127.0.0.1:#{opts['port']}", client_opts)
RAW = { raw: true }.freeze

COUNTERS = %w[cmd_get cmd_set cmd_touch cmd_flush get_hits get_misses delete_hits delete_misses incr_hits
              incr_misses decr_hits decr_misses cas_hits cas_misses cas_badval touch_hits touch_misses].freeze

def out(step, outcome)
  puts JSON.generate({ step: step, outcome: outcome })
  $stdout.flush
end

# A value as an outcome: short text as itself, anything else by length and digest.
def show(value)
  case value
  when String
    value.bytesize <= 64 && value.b.match?(/\A[\x20-\x7e]*\z/n) ? value : { len: value.bytesize, sha1: Digest::SHA1.hexdigest(value) }
  when Array then value.map { |x| show(x) }
  when Hash then value.sort.to_h.transform_values { |x| show(x) }
  else value
  end
end

def step(name)
  out(name, show(yield))
rescue StandardError => e
  out(name, "error:#{e.class}")
end

def k(name) = P + name

def stats = M.stats.values.first || {}

out('client', { name: 'dalli', version: Dalli::VERSION, ruby: RUBY_VERSION,
                protocol: opts['user'] ? 'binary SASL' : 'binary' })
before = stats
out('stats_names', (%w[pid uptime time version curr_connections] + COUNTERS).select { |n| before.key?(n) }.sort)
out('stats_version', before['version'])
step('version') { M.version.values.first }

step('set') { M.set(k('a'), 'alpha', nil, RAW) ? true : false }
step('get') { M.get(k('a'), RAW) }
step('get_miss') { M.get(k('missing'), RAW) }
step('set_multi') { M.multi { %w[one two three].each_with_index { |v, i| M.set(k("m#{i + 1}"), v, nil, RAW) } } && true }
step('get_multi') { M.get_multi(k('m1'), k('missing'), k('m3'), k('m2')) }
step('set_multi_100') { M.multi { 100.times { |i| M.set(k("n#{i}"), i.to_s, nil, RAW) } } && true }
step('get_multi_100') { M.get_multi(*(0...100).map { |i| k("n#{i}") }, k('nx')).size }
step('add_existing') { M.add(k('a'), 'x', nil, RAW) }
step('add_new') { M.add(k('added'), 'new', nil, RAW) ? true : false }
step('replace_existing') { M.replace(k('a'), 'beta', nil, RAW) ? true : false }
step('replace_missing') { M.replace(k('missing'), 'x', nil, RAW) }
step('append') { [M.append(k('a'), '-end') ? true : false, M.get(k('a'), RAW)] }
step('prepend') { [M.prepend(k('a'), 'start-') ? true : false, M.get(k('a'), RAW)] }
step('append_missing') { M.append(k('missing'), 'x') }
step('gets_cas') do
  value, cas = M.get_cas(k('a'))
  first = M.set_cas(k('a'), 'cas1', cas, nil, RAW) ? true : false
  stale = M.set_cas(k('a'), 'cas2', cas, nil, RAW)
  [value, first, stale, M.get(k('a'), RAW)]
end
step('cas_block') { [M.cas(k('a'), nil, RAW) { |v| "#{v}!" }.is_a?(Integer), M.get(k('a'), RAW)] }
step('cas_missing') { M.set_cas(k('missing'), 'x', 12_345, nil, RAW) }
step('replace_cas_stale') { M.replace_cas(k('a'), 'x', 12_345, nil, RAW) }
step('gets_missing') { M.get_cas(k('missing')) }
step('get_multi_cas') { M.get_multi_cas(k('a'), k('missing')).transform_values(&:first) }
step('incr') { [M.set(k('n'), '10', nil, RAW) ? true : false, M.incr(k('n'), 5)] }
step('decr') { M.decr(k('n'), 3) }
step('decr_below_zero') { M.decr(k('n'), 100) }
step('incr_wrap') { [M.set(k('w'), '18446744073709551615', nil, RAW) ? true : false, M.incr(k('w'), 2)] }
step('incr_missing') { M.incr(k('missing'), 1) }
step('incr_initial') { [M.incr(k('fresh'), 1, nil, 7), M.get(k('fresh'), RAW)] }
step('incr_non_numeric') { M.incr(k('a'), 1) }
step('get_counter') { M.get(k('n'), RAW) }
step('touch') { [M.touch(k('a'), 100), M.get(k('a'), RAW)] }
step('touch_missing') { M.touch(k('missing'), 100) }
step('gat') { M.gat(k('a'), 100) }
step('gat_missing') { M.gat(k('missing'), 100) }
step('delete') { M.delete(k('a')) }
step('delete_missing') { M.delete(k('a')) }
step('get_deleted') { M.get(k('a'), RAW) }
step('delete_cas_stale') { M.delete_cas(k('m1'), 12_345) }
all = (0..255).map(&:chr).join.b
step('bytes_256') { [M.set(k('bin'), all, nil, RAW) ? true : false, M.get(k('bin'), RAW) == all] }
step('empty_value') { [M.set(k('empty'), '', nil, RAW) ? true : false, M.get(k('empty'), RAW)] }
step('marshalled_value') { [M.set(k('obj'), { 'a' => [1, 2] }) ? true : false, M.get(k('obj'))] }
big = (0...1_000_000).map { |i| (i * 7 % 251).chr }.join.b
step('value_1mb') { [M.set(k('big'), big, nil, RAW) ? true : false, M.get(k('big'), RAW) == big] }
longest = k('L' * (MAX_KEY - P.length))
step('longest_key') { [M.set(longest, 'long', nil, RAW) ? true : false, M.get(longest, RAW)] }
step('key_too_long') { [M.set("#{longest}X", 'x', nil, RAW) ? true : false, M.get("#{longest}X", RAW)] }
step('flush_all') { [M.set(k('f'), 'x', nil, RAW) ? true : false, M.flush.size, M.get(k('f'), RAW), M.get(longest, RAW)] }
after = stats
out('stats_delta', COUNTERS.select { |n| before.key?(n) && after.key?(n) }.to_h { |n| [n, after[n].to_i - before[n].to_i] })
step('value_too_large') { [M.set(k('big'), big, nil, RAW) ? true : false, M.set(k('big'), big + big, nil, RAW)] }
step('get_after_too_large') { M.get(k('big'), RAW).nil? }
out('done', true)
