#!/usr/bin/env bash
# The README's first command: installs what memgate needs, starts a real
# memcached on 127.0.0.1:11212 (loopback only, no UDP), and runs memgate in
# the foreground in front of it with the sample config docker/config/example.yaml.
# Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

CONFIG="${MEMGATE_CONFIG:-docker/config/example.yaml}"
MC_PORT="${MEMCACHED_PORT:-11212}"
mkdir -p .memgate

mc_pid=
if ! (exec 3<>"/dev/tcp/127.0.0.1/$MC_PORT") 2>/dev/null; then
  user_args=()
  [ "$(id -u)" -eq 0 ] && user_args=(-u memcache)
  id memcache >/dev/null 2>&1 || user_args=(-u root)
  [ "$(id -u)" -ne 0 ] && user_args=()
  memcached -U 0 -l 127.0.0.1 -p "$MC_PORT" -m 64 "${user_args[@]}" &
  mc_pid=$!
  echo "quickstart: memcached started on 127.0.0.1:$MC_PORT (pid $mc_pid)"
fi
trap '[ -n "$mc_pid" ] && kill "$mc_pid" 2>/dev/null || true' EXIT

node dist/cli.js check-config --config "$CONFIG"
echo "quickstart: memgate serving with $CONFIG; try: printf 'set hello 0 0 5\r\nworld\r\nget hello\r\n' | nc -q1 127.0.0.1 11311"
node dist/cli.js serve --config "$CONFIG"
