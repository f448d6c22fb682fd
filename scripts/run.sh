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
#   scripts/run.sh --grpc  the gateway calls the users service over gRPC
#                          (demo.Users, apps/proto/users.proto: h2c, or h2
#                          with --tls) instead of GET /users/{id}; the
#                          backend serves both on its one port.
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
grpc=false
while [[ "${1:-}" == "--tls" || "${1:-}" == "--http2" || "${1:-}" == "--db" || "${1:-}" == "--grpc" ]]; do
  [[ "$1" == "--tls" ]] && tls=true
  [[ "$1" == "--http2" ]] && http2=true
  [[ "$1" == "--db" ]] && db=true
  [[ "$1" == "--grpc" ]] && grpc=true
  shift
done
# CORONET_DEMO_BIN: binaries built already (the demo's test runs this script on its build).
if [[ -n "${CORONET_DEMO_BIN:-}" ]]; then
  bin=$CORONET_DEMO_BIN
else
  scripts/build.sh
  bin=build-release/bin
fi
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
if $grpc; then
  if $tls; then
    gateway_tls+=(--set "backends.users=grpcs://127.0.0.1:8081")
  else
    gateway_tls+=(--set "backends.users=grpc://127.0.0.1:8081")
  fi
fi

declare -A pid_of=() # each running service's pid, by name
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
  trap '' INT TERM USR1
  trap - EXIT
  local pids=("${pid_of[@]}")
  if ((${#pids[@]})); then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  stop_servers
  echo "== demo stopped"
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

# Waits until something accepts connections on 127.0.0.1:$1; fails when
# process $2 dies first, or after 10 s.
wait_port() {
  local port=$1 pid=$2
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

store=()
if $db; then
  data_dir=$(mktemp -d "${TMPDIR:-/tmp}/coronet-demo-XXXXXX")
  pg_url=$(scripts/pg-server.sh start "$data_dir/pg")
  redis_url=$(scripts/redis-server.sh start "$data_dir/redis")
  echo "== PostgreSQL at $pg_url, Redis at $redis_url (in $data_dir)"
  store=(--set "backend.store=$pg_url" --set "backend.cache=$redis_url")
fi

services=(users orders recommendations gateway)
gateway_args=("$@")
port_of() {
  case $1 in users) echo 8081 ;; orders) echo 8082 ;; recommendations) echo 8083 ;; gateway) echo 8080 ;; esac
}

# Starts service $1 and waits until it listens.
start_service() {
  local name=$1 port; port=$(port_of "$1")
  # setsid: Ctrl-C reaches only this script, which stops each service once.
  if [[ "$name" == gateway ]]; then
    setsid "$bin/coronet-gateway" --config configs/gateway.toml "${gateway_tls[@]}" "${gateway_args[@]}" &
  else
    local role_store=()
    [[ "$name" != recommendations ]] && role_store=("${store[@]}")
    setsid "$bin/coronet-backend" --config configs/backend.toml --role "$name" --listen "127.0.0.1:$port" \
      "${backend_tls[@]}" "${role_store[@]}" &
  fi
  pid_of[$name]=$!
  if ! wait_port "$port" "$!"; then
    echo "run.sh: $name did not start on :$port (see above)" >&2
    kill -TERM "${pid_of[$name]}" 2>/dev/null || true
    unset "pid_of[$name]"
    return 1
  fi
}

for name in "${services[@]}"; do
  start_service "$name" || exit 1
done

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
# A service that exits is reported, and the others keep running: the
# gateway answers partially without orders or recommendations, 502 without
# users. SIGUSR1 starts every stopped service again.
restart=false
trap 'restart=true' USR1
describe() { # $1: wait's status
  if (($1 > 128)); then echo "killed by SIG$(kill -l $(($1 - 128)))"; else echo "exit status $1"; fi
}
while :; do
  if $restart; then
    restart=false
    for name in "${services[@]}"; do
      [[ -n "${pid_of[$name]:-}" ]] && continue
      if start_service "$name"; then echo "== $name is back (pid ${pid_of[$name]})"; fi
    done
  fi
  live=("${pid_of[@]}")
  if ((${#live[@]} == 0)); then
    echo "run.sh: every service has exited; stopping" >&2
    exit 1
  fi
  finished=""
  wait -n -p finished "${live[@]}" && status=0 || status=$?
  [[ -z "${finished:-}" ]] && continue # a signal (USR1) ended the wait (and left it unset)
  for name in "${services[@]}"; do
    [[ "${pid_of[$name]:-}" == "$finished" ]] || continue
    unset "pid_of[$name]"
    cat <<MSG >&2
== $name (pid $finished) exited: $(describe "$status"). The others keep running. Try:
     curl ${curl_tls}$scheme://127.0.0.1:8080/api/users/1/dashboard   # orders or recommendations gone: 200, "partial":true; users gone: 502
     curl -s ${curl_tls}$scheme://127.0.0.1:8080/metrics | grep -E 'coronet_http_client_(requests|ejections)_total'
   Bring it back: kill -USR1 $$   (starts every stopped service again). Ctrl-C stops everything.
MSG
  done
done
