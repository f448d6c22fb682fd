#!/usr/bin/env bash
# Sets everything up, builds Release and runs the microservice demo on
# loopback: three coronet-backend services (users :8081, orders :8082,
# recommendations :8083) and coronet-gateway (:8080) in front of them.
# Ctrl-C (or SIGTERM) stops all four cleanly. Extra arguments go to the
# gateway (e.g. --set gateway.backend_timeout_ms=100).
#   scripts/run.sh --tls   the same over HTTPS, in and out: a throwaway CA and
#                          certificates (scripts/make-certs.sh, nothing secret
#                          is committed), backends on https://, the gateway on
#                          https:// calling them with the CA trusted.
#   scripts/run.sh --http2 the gateway calls its backends over h2c (HTTP/2
#                          with prior knowledge): one multiplexed connection
#                          per backend and worker instead of a pool. (With
#                          --tls it speaks h2 to them anyway, chosen by ALPN.)
#                          The gateway serves HTTP/2 to clients either way
#                          (curl --http2-prior-knowledge, or h2 over TLS).
#   scripts/run.sh --db    the users and orders backends on PostgreSQL with a
#                          Redis cache instead of their in-memory store: both
#                          servers are started in a temporary directory
#                          (scripts/pg-server.sh, scripts/redis-server.sh; the
#                          database as the 'postgres' user under root) and
#                          stopped with the demo. Try the write routes:
#                          curl -d '{"name":"Ada","email":"ada@example.org"}' \
#                            -H 'Content-Type: application/json' 127.0.0.1:8081/users
set -euo pipefail
cd "$(dirname "$0")/.."
tls=false
http2=false
db=false
while [[ "${1:-}" == "--tls" || "${1:-}" == "--http2" || "${1:-}" == "--db" ]]; do
  [[ "$1" == "--tls" ]] && tls=true
  [[ "$1" == "--http2" ]] && http2=true
  [[ "$1" == "--db" ]] && db=true
  shift
done
scripts/build.sh
bin=build-release/bin
backend_tls=()
gateway_tls=()
scheme=http
if $tls; then
  pki=build-release/demo-pki
  scripts/make-certs.sh "$pki"
  scheme=https
  backend_tls=(--set "tls.cert_file=$pki/server.pem" --set "tls.key_file=$pki/server.key")
  gateway_tls=("${backend_tls[@]}" --set "client.ca_file=$pki/ca.pem")
  for i in 0 1 2; do
    role=(users orders recommendations)
    gateway_tls+=(--set "backends.${role[$i]}=https://127.0.0.1:$((8081 + i))")
  done
fi

if $http2; then
  gateway_tls+=(--set "client.http2=prior_knowledge")
fi

pids=()
data_dir=""
stop_servers() {
  if [[ -n "$data_dir" ]]; then
    scripts/redis-server.sh stop "$data_dir/redis" || true
    scripts/pg-server.sh stop "$data_dir/pg" || true
    rm -rf "$data_dir"
  fi
}
stop() {
  # A second Ctrl-C (or a TERM from two senders at once) must not end this
  # script before every service has had its TERM: they would be orphaned.
  trap '' INT TERM
  trap - EXIT
  if ((${#pids[@]})); then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  stop_servers
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

store=()
if $db; then
  data_dir=$(mktemp -d "${TMPDIR:-/tmp}/coronet-demo-XXXXXX")
  pg_url=$(scripts/pg-server.sh start "$data_dir/pg")
  redis_url=$(scripts/redis-server.sh start "$data_dir/redis")
  echo "== PostgreSQL at $pg_url, Redis at $redis_url (in $data_dir)"
  store=(--set "backend.store=$pg_url" --set "backend.cache=$redis_url")
fi

port=8081
for role in users orders recommendations; do
  role_store=()
  [[ "$role" != recommendations ]] && role_store=("${store[@]}")
  # setsid: Ctrl-C reaches only this script, which stops each service once.
  setsid "$bin/coronet-backend" --config configs/backend.toml --role "$role" --listen "127.0.0.1:$port" \
    "${backend_tls[@]}" "${role_store[@]}" &
  pids+=($!)
  wait_port "$port" "$!"
  port=$((port + 1))
done
setsid "$bin/coronet-gateway" --config configs/gateway.toml "${gateway_tls[@]}" "$@" &
pids+=($!)
wait_port 8080 "$!"

curl_tls=""
$tls && curl_tls="--cacert $pki/ca.pem "
calls="HTTP/1.1"
$http2 && calls="HTTP/2 (h2c)"
$tls && calls="HTTP/2 (h2, chosen by ALPN)"
h2_flag="--http2-prior-knowledge "
$tls && h2_flag="--http2 "
cat <<MSG
== coronet demo is up: gateway on :8080, backends on :8081-8083 ($scheme; the gateway calls them over $calls). Try:
     curl ${curl_tls}$scheme://127.0.0.1:8080/api/users/1/dashboard
     curl ${h2_flag}${curl_tls}$scheme://127.0.0.1:8080/api/users/1/dashboard
     curl ${curl_tls}$scheme://127.0.0.1:8080/metrics
     curl ${curl_tls}-H 'Content-Type: application/json' -d '{"name":"Ada","email":"ada@example.org"}' $scheme://127.0.0.1:8081/users
   The users and orders are $($db && echo "in PostgreSQL, cached in Redis" || echo "in memory (scripts/run.sh --db: PostgreSQL and Redis)").
   Ctrl-C stops everything.
MSG
wait -n "${pids[@]}" || true
echo "run.sh: a service exited; stopping the rest" >&2
