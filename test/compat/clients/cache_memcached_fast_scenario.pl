#!/usr/bin/perl
# The compat scenario (test/compat/README.md) with Perl's Cache::Memcached::Fast (text protocol).
# Usage: perl cache_memcached_fast_scenario.pl '<json options>' (see pylibmc_scenario.py for the options).
# Prints one JSON line per step: {"step": name, "outcome": value}. The client has no stats call.
use strict;
use warnings;
use Cache::Memcached::Fast;
use Digest::SHA qw(sha1_hex);
use JSON::PP;

my $opts = decode_json($ARGV[0]);
my $P = $opts->{prefix} // '';
my $MAX_KEY = $opts->{maxKey} // 250;
my $json = JSON::PP->new->canonical;
my $m = Cache::Memcached::Fast->new({
    servers => ["127.0.0.1:$opts->{port}"],
    connect_timeout => 5,
    io_timeout => 10,
    close_on_error => 1,
    max_size => 4 * 1024 * 1024,    # so that a value over memcached's item limit reaches the server
    compress_threshold => -1,
});

sub out { my ($step, $outcome) = @_; print $json->encode({ step => $step, outcome => $outcome }), "\n"; }

# A value as an outcome: short text as itself, anything else by length and digest; undef as null.
sub show {
    my ($v) = @_;
    return undef unless defined $v;
    if (ref $v eq 'ARRAY') { return [map { show($_) } @$v]; }
    if (ref $v eq 'HASH') { return { map { $_ => show($v->{$_}) } keys %$v }; }
    return $v if length($v) <= 64 && $v =~ /^[\x20-\x7e]*$/;
    return { len => length($v), sha1 => sha1_hex($v) };
}

sub step { my ($name, $fn) = @_; out($name, show(scalar $fn->())); }
sub k { return $P . $_[0]; }
sub g { return scalar $m->get($_[0]); }
sub bool { my ($v) = @_; return defined $v ? ($v ? JSON::PP::true : JSON::PP::false) : undef; }

out('client', { name => 'Cache::Memcached::Fast', version => "$Cache::Memcached::Fast::VERSION", perl => sprintf('%vd', $^V),
    protocol => 'text' });
step('version', sub { (values %{ $m->server_versions })[0] });
step('set', sub { bool($m->set(k('a'), 'alpha')) });
step('get', sub { g(k('a')) });
step('get_miss', sub { g(k('missing')) });
step('set_multi', sub {
    my $r = $m->set_multi([k('m1'), 'one'], [k('m2'), 'two'], [k('m3'), 'three']);
    [map { bool($r->{$_}) } sort keys %$r];
});
step('get_multi', sub { my $r = $m->get_multi(k('m1'), k('missing'), k('m3'), k('m2')); [map { "$_=$r->{$_}" } sort keys %$r] });
step('set_multi_100', sub { my $r = $m->set_multi(map { [k("n$_"), "$_"] } 0 .. 99); scalar grep { $_ } values %$r });
step('get_multi_100', sub { scalar keys %{ $m->get_multi((map { k("n$_") } 0 .. 99), k('nx')) } });
step('add_existing', sub { bool($m->add(k('a'), 'x')) });
step('add_new', sub { bool($m->add(k('added'), 'new')) });
step('replace_existing', sub { bool($m->replace(k('a'), 'beta')) });
step('replace_missing', sub { bool($m->replace(k('missing'), 'x')) });
step('append', sub { [bool($m->append(k('a'), '-end')), g(k('a'))] });
step('prepend', sub { [bool($m->prepend(k('a'), 'start-')), g(k('a'))] });
step('append_missing', sub { bool($m->append(k('missing'), 'x')) });
step('gets_cas', sub {
    my $r = $m->gets(k('a'));
    my $first = $m->cas(k('a'), $r->[0], 'cas1');
    my $stale = $m->cas(k('a'), $r->[0], 'cas2');
    [$r->[1], bool($first), bool($stale), g(k('a'))];
});
step('cas_missing', sub { bool($m->cas(k('missing'), 12345, 'x')) });
step('gets_missing', sub { $m->gets(k('missing')) });
step('gats', sub { my $r = $m->gats(100, k('a')); defined $r ? $r->[1] : undef });
step('incr', sub { [bool($m->set(k('n'), '10')), $m->incr(k('n'), 5)] });
step('decr', sub { $m->decr(k('n'), 3) });
step('decr_below_zero', sub { $m->decr(k('n'), 100) });
step('incr_wrap', sub { [bool($m->set(k('w'), '18446744073709551615')), $m->incr(k('w'), 2)] });
step('incr_missing', sub { bool($m->incr(k('missing'), 1)) });
step('incr_non_numeric', sub { $m->incr(k('a'), 1) });
step('get_counter', sub { g(k('n')) });
step('touch', sub { [bool($m->touch(k('a'), 100)), g(k('a'))] });
step('touch_missing', sub { bool($m->touch(k('missing'), 100)) });
step('gat', sub { $m->gat(100, k('a')) });
step('gat_missing', sub { $m->gat(100, k('missing')) });
step('delete', sub { bool($m->delete(k('a'))) });
step('delete_missing', sub { bool($m->delete(k('a'))) });
step('get_deleted', sub { g(k('a')) });
step('delete_multi', sub {
    my $r = $m->delete_multi(k('m1'), k('m2'));
    [(map { bool($r->{$_}) } sort keys %$r), [sort keys %{ $m->get_multi(k('m1'), k('m2'), k('m3')) }]];
});
my $all = join '', map { chr } 0 .. 255;
step('bytes_256', sub { [bool($m->set(k('bin'), $all)), bool(g(k('bin')) eq $all)] });
step('empty_value', sub { [bool($m->set(k('empty'), '')), g(k('empty'))] });
my $big = join '', map { chr($_ * 7 % 251) } 0 .. 999_999;
step('value_1mb', sub { [bool($m->set(k('big'), $big)), bool((g(k('big')) // '') eq $big)] });
my $longest = k('L' x ($MAX_KEY - length $P));
step('longest_key', sub { [bool($m->set($longest, 'long')), g($longest)] });
step('key_too_long', sub { bool($m->set($longest . 'X', 'x')) });
step('get_key_too_long', sub { g($longest . 'X') });
step('get_after_key_too_long', sub { g(k('n')) });
step('flush_all', sub {
    [bool($m->set(k('f'), 'x')), bool((values %{ $m->flush_all })[0]), g(k('f')), g($longest)];
});
out('stats_delta', 'not supported by the client');
step('value_too_large', sub { [bool($m->set(k('big'), $big)), bool($m->set(k('big'), $big . $big))] });
step('get_after_too_large', sub { bool(!defined g(k('big'))) });
out('done', JSON::PP::true);
