#!/usr/bin/env bash
# Installs what memgate and its tests need on a fresh Debian machine with Node 20:
# Debian's memcached, redis-server, libmemcached-tools (memccapable, memcslap),
# python3-pymemcache, prometheus (promtool), tmux, systemd (systemd-analyze), cc + libmemcached-dev +
# nutcracker (ring placement tests), the compat suite's clients (pylibmc, php-memcached, dalli,
# Cache::Memcached::Fast) and sasl2-bin, and the npm packages (npm ci, which also builds dist/).
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v memcached >/dev/null 2>&1 || need+=(memcached)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v memccapable >/dev/null 2>&1 || need+=(libmemcached-tools)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# for the README's examples
command -v nc >/dev/null 2>&1 || need+=(netcat-openbsd)
command -v curl >/dev/null 2>&1 || need+=(curl)
/usr/bin/python3 -c 'import pymemcache' >/dev/null 2>&1 || need+=(python3-pymemcache)
# operator tools: promtool (alert rules), tmux (the `memgate top` test), systemd-analyze (the unit file)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v tmux >/dev/null 2>&1 || need+=(tmux)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# the ring's placement tests: libmemcached itself (a C vector generator) and pylibmc
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
[ -f /usr/include/libmemcached-1.0/memcached.h ] || need+=(libmemcached-dev)
/usr/bin/python3 -c 'import pylibmc' >/dev/null 2>&1 || need+=(python3-pylibmc)
php -r 'exit(class_exists("Memcached") ? 0 : 1);' >/dev/null 2>&1 || need+=(php-cli php-memcached)
# ... and twemproxy (md5 ketama), whose placement the ring also matches
command -v nutcracker >/dev/null 2>&1 || need+=(nutcracker)
# the real-client compat suite (test/compat): each client loads only in Debian's own interpreter
/usr/bin/ruby -e 'require "dalli"' >/dev/null 2>&1 || need+=(ruby ruby-dalli)
/usr/bin/perl -MCache::Memcached::Fast -e 1 >/dev/null 2>&1 || need+=(libcache-memcached-fast-perl)
[ -x /usr/sbin/saslpasswd2 ] || need+=(sasl2-bin) # a sasldb for the direct SASL memcached

if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  echo "setup: installing Debian packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # the packages start system services; memgate's tests start their own servers on free ports
  for svc in memcached redis-server prometheus nutcracker; do
    if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl stop "$svc" >/dev/null 2>&1 || true; fi
    if command -v service >/dev/null 2>&1; then $SUDO service "$svc" stop >/dev/null 2>&1 || true; fi
  done
fi

if [ -L node_modules ]; then
  # A git worktree sharing another checkout's install: `npm ci` would empty the shared
  # directory through the link (every other worktree loses its packages) and replace the link.
  echo "setup: node_modules is a link to a shared install ($(readlink node_modules)); not running npm ci"
  npm run --silent build
elif [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  # Some registry mirrors leave optional platform packages out of the lock file,
  # which makes `npm ci` refuse it; `npm install` then installs the same
  # versions from the lock without rewriting it.
  if ! npm ci --no-audit --no-fund --loglevel=error 2>/tmp/memgate-npm-ci.log; then
    echo "setup: npm ci refused the lock file ($(grep -m1 -o 'Missing: [^ ]*' /tmp/memgate-npm-ci.log || echo see /tmp/memgate-npm-ci.log)); npm install"
    npm install --no-audit --no-fund --loglevel=error
  fi
else
  npm run --silent build
fi
