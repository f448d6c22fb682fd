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
set -euo pipefail
cd "$(dirname "$0")/.."
tls=false
http2=false
while [[ "${1:-}" == "--tls" || "${1:-}" == "--http2" ]]; do
  [[ "$1" == "--tls" ]] && tls=true
  [[ "$1" == "--http2" ]] && http2=true
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
stop() {
  # A second Ctrl-C (or a TERM from two senders at once) must not end this
  # script before every service has had its TERM: they would be orphaned.
  trap '' INT TERM
  trap - EXIT
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
  setsid "$bin/coronet-backend" --config configs/backend.toml --role "$role" --listen "127.0.0.1:$port" \
    "${backend_tls[@]}" &
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
   Ctrl-C stops everything.
MSG
wait -n "${pids[@]}" || true
echo "run.sh: a service exited; stopping the rest" >&2
