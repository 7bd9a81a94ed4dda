#!/usr/bin/env bash
# Installs what the bench needs beyond scripts/setup.sh, on a Debian machine with Node 20:
# memcached (the server under test), nutcracker (twemproxy, the C proxy baseline),
# libmemcached-tools (memcslap, for --external memcslap) and util-linux (taskset, for --pin).
# The bench is optional for CI; it skips twemproxy when nutcracker is missing.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v memcached >/dev/null 2>&1 || need+=(memcached)
command -v nutcracker >/dev/null 2>&1 || need+=(nutcracker)
command -v memcslap >/dev/null 2>&1 || need+=(libmemcached-tools)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)

if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  echo "bench/setup: installing Debian packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # the packages may start system services; the bench starts its own on free loopback ports
  for svc in memcached nutcracker; do
    if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl stop "$svc" >/dev/null 2>&1 || true; fi
    if command -v service >/dev/null 2>&1; then $SUDO service "$svc" stop >/dev/null 2>&1 || true; fi
  done
fi

if [ ! -d node_modules ]; then
  echo "bench/setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

echo "bench/setup: ready: $(memcached -V), $(nutcracker -V 2>&1 | head -n1), $(command -v memcslap)"
