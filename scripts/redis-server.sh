#!/usr/bin/env bash
# A throwaway Redis server in a directory of its own, for `scripts/run.sh
# --db` (the tests start theirs from C++). Never touches a system server.
#   scripts/redis-server.sh start DIR [PORT]   prints the server's URL (PORT 0 or none: a free one)
#   scripts/redis-server.sh stop DIR
# It listens on 127.0.0.1 only and saves nothing.
set -euo pipefail

die() { echo "redis-server: $*" >&2; exit 1; }
command -v redis-server >/dev/null || die "no redis-server: install the Debian package 'redis-server' (scripts/setup.sh does)"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
  local dir=$1 port=${2:-0}
  [[ "$port" == 0 ]] && port=$(free_port)
  mkdir -p "$dir"
  dir=$(realpath "$dir")
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "$dir" --protected-mode no \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/server.log" >/dev/null \
    || die "the server did not start"
  for _ in $(seq 1 100); do
    if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then
      echo "$port" >"$dir/port"
      echo "redis://127.0.0.1:$port"
      return 0
    fi
    sleep 0.05
  done
  cat "$dir/server.log" >&2 || true
  die "the server did not answer on port $port"
}

stop() {
  local dir=$1
  [[ -f "$dir/redis.pid" ]] || return 0
  local pid; pid=$(cat "$dir/redis.pid")
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  *) sed -n '2,7p' "$0"; exit 2 ;;
esac
