#!/usr/bin/env bash
# System calls per keep-alive request, by reactor: coronet-hello with one
# worker pinned to CPU 0, wrk (16 connections, one thread) on CPU 1 for
# SECONDS, and strace -c -f attached to the server for that window; prints
# strace's table and the calls per request (wrk's count). The figure is what
# the reactor costs per request, not a speed (strace slows everything).
#   loadtest/syscalls/count.sh BIN_DIR [SECONDS]   (BIN_DIR: a build's bin/, any CORONET_REACTOR)
set -euo pipefail
bin=${1:?usage: count.sh BIN_DIR [SECONDS]}
seconds=${2:-3}
for tool in strace wrk taskset bc; do
  command -v "$tool" >/dev/null || { echo "count.sh: needs $tool (scripts/setup.sh --loadtest installs it)" >&2; exit 2; }
done
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp)
taskset -c 0 "$bin/coronet-hello" --listen "127.0.0.1:$port" --threads 1 --log-level warn &
server=$!
trap 'kill -TERM $server 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do
  (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
  sleep 0.05
done
taskset -c 1 wrk -t1 -c16 -d1s "http://127.0.0.1:$port/plaintext" >/dev/null # connections open, warm
strace -c -f -q -p "$server" -o "$log" &
tracer=$!
sleep 0.5 # attached to every thread
out=$(taskset -c 1 wrk -t1 -c16 -d"${seconds}s" "http://127.0.0.1:$port/plaintext")
kill -INT $tracer
wait $tracer 2>/dev/null || true
requests=$(awk '/requests in/ {print $1}' <<<"$out")
cat "$log"
calls=$(awk '$1 == "100.00" {print $4}' "$log")
echo "requests: $requests, system calls: $calls, per request: $(bc <<<"scale=2; $calls / $requests")"
