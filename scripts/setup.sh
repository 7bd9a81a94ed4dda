#!/usr/bin/env bash
# Installs what memgate and its tests need on a fresh Debian machine with Node 20:
# Debian's memcached, redis-server, libmemcached-tools (memccapable, memcslap),
# python3-pymemcache, the compat suite's clients (pylibmc, php-memcached, dalli,
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
# the real-client compat suite (test/compat): each client loads only in Debian's own interpreter
/usr/bin/python3 -c 'import pylibmc' >/dev/null 2>&1 || need+=(python3-pylibmc)
/usr/bin/php -r 'exit(class_exists("Memcached") ? 0 : 1);' >/dev/null 2>&1 || need+=(php-cli php-memcached)
/usr/bin/ruby -e 'require "dalli"' >/dev/null 2>&1 || need+=(ruby ruby-dalli)
/usr/bin/perl -MCache::Memcached::Fast -e 1 >/dev/null 2>&1 || need+=(libcache-memcached-fast-perl)
[ -x /usr/sbin/saslpasswd2 ] || need+=(sasl2-bin) # a sasldb for the direct SASL memcached

if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  echo "setup: installing Debian packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # the packages start system services; memgate's tests start their own servers on free ports
  for svc in memcached redis-server; do
    if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl stop "$svc" >/dev/null 2>&1 || true; fi
    if command -v service >/dev/null 2>&1; then $SUDO service "$svc" stop >/dev/null 2>&1 || true; fi
  done
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
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
