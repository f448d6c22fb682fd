#!/usr/bin/env bash
# Sets everything up, builds Release and runs the microservice demo on
# loopback: three coronet-backend services (users :8081, orders :8082,
# recommendations :8083) and coronet-gateway (:8080) in front of them.
# Ctrl-C (or SIGTERM) stops all four cleanly. Extra arguments go to the
# gateway (e.g. --set gateway.backend_timeout_ms=100).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
bin=build-release/bin

pids=()
stop() {
  trap - INT TERM EXIT
  if ((${#pids[@]})); then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  echo "== demo stopped"
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

# Waits until something accepts connections on 127.0.0.1:$1 (or the process dies).
wait_port() {
  local port=$1 pid=$2
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || { echo "run.sh: a service failed to start (see above)" >&2; exit 1; }
    sleep 0.1
  done
  echo "run.sh: nothing listening on port $port" >&2
  exit 1
}

port=8081
for role in users orders recommendations; do
  # setsid: Ctrl-C reaches only this script, which stops each service once.
  setsid "$bin/coronet-backend" --config configs/backend.toml --role "$role" --listen "127.0.0.1:$port" &
  pids+=($!)
  wait_port "$port" "$!"
  port=$((port + 1))
done
setsid "$bin/coronet-gateway" --config configs/gateway.toml "$@" &
pids+=($!)
wait_port 8080 "$!"

cat <<'MSG'
== coronet demo is up: gateway on :8080, backends on :8081-8083. Try:
     curl http://127.0.0.1:8080/api/users/1/dashboard
     curl http://127.0.0.1:8080/metrics
   Ctrl-C stops everything.
MSG
wait -n "${pids[@]}" || true
echo "run.sh: a service exited; stopping the rest" >&2
