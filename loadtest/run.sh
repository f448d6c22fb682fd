#!/usr/bin/env bash
# The load-testing suite: each scenario side by side with its peers.
#
#   loadtest/run.sh [SCENARIO...] [--quick] [--seconds N] [--repetitions N]
#                   [--port-base N] [--bin DIR] [--baseline DIR]
#
# Scenarios: plaintext json pipelined post-echo gateway connections echo chat
# tls-plaintext tls-handshakes gateway-tls h2c-plaintext h2-tls gateway-h2c two-workers chaos (all when
# none is named).
# Builds Release if needed (build-release/), builds
# the Go peers, then for each scenario starts coronet and its peers (Go;
# nginx and the epoll floor where they fit), pins each server to one core and
# the load generator to the other, warms up, measures for --seconds (10),
# repeats --repetitions times (3) and writes loadtest/results/<scenario>.json
# with medians. loadtest/report.sh turns those into loadtest/RESULTS.md.
#
# --quick: every scenario for 2 s, coronet only, one repetition; fails unless
# every response was valid and there were no socket errors and no non-2xx.
# It checks correctness, never speed (CI runs it). Writes <scenario>-quick.json.
# --bin DIR: use the binaries in DIR instead of building Release.
# --baseline DIR: also run DIR/coronet-hello (a build from before a change)
# beside the current one in plaintext, json and pipelined, as 'before'.
# --port-base N: the suite listens on N..N+99 (18000).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }
quick=0
bin=
passthrough=()
scenarios=()
while (($#)); do
  case "$1" in
    --quick) quick=1; passthrough+=(--quick); shift ;;
    --seconds|--repetitions|--port-base)
      [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || { echo "run.sh: $1 needs a number" >&2; exit 2; }
      passthrough+=("$1" "$2"); shift 2 ;;
    --bin)
      [[ $# -ge 2 ]] || { echo "run.sh: --bin needs a directory" >&2; exit 2; }
      bin=$2; shift 2 ;;
    --baseline)
      [[ $# -ge 2 && -x $2/coronet-hello ]] || { echo "run.sh: --baseline needs a folder with coronet-hello" >&2; exit 2; }
      passthrough+=("$1" "$(cd "$2" && pwd)"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "run.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    *) scenarios+=("$1"); shift ;;
  esac
done

known=$(python3 loadtest/suite.py --list)
for s in "${scenarios[@]}"; do
  if [[ " $known " != *" $s "* ]]; then
    echo "run.sh: unknown scenario '$s'; the scenarios are: $known" >&2
    exit 2
  fi
done

if ((quick)); then scripts/setup.sh; else scripts/setup.sh --loadtest; fi

need() {
  command -v "$1" >/dev/null || { echo "run.sh: '$1' is missing: $2" >&2; exit 1; }
}
need wrk "install the Debian package 'wrk' (scripts/setup.sh does)"
need h2load "install the Debian package 'nghttp2-client' (scripts/setup.sh does): the HTTP/2 load generator"
need python3 "install the Debian package 'python3'"
if (($(nproc) > 1)); then
  need taskset "install the Debian package 'util-linux' (pins servers and load generators to cores)"
fi
if ((!quick)); then
  need go "install the Debian package 'golang-go' (scripts/setup.sh --loadtest does): the Go peers"
  need nginx "install the Debian package 'nginx-light' (scripts/setup.sh --loadtest does): the nginx peer"
  need cc "install the Debian package 'gcc': the epoll floor"
fi

if [[ -z $bin ]]; then
  source scripts/lib/build.sh
  coronet_build build-release -DCMAKE_BUILD_TYPE=Release -DCORONET_BUILD_TESTS=OFF -DCORONET_BUILD_APPS=ON
  bin=build-release/bin
fi
for tool in coronet-hello coronet-gateway coronet-backend coronet-echo coronet-chat coronet-load-echo coronet-load-chat; do
  [[ -x $bin/$tool ]] || { echo "run.sh: $bin/$tool is missing: build the apps (scripts/build.sh)" >&2; exit 1; }
done

peers=()
if ((!quick)); then
  peer_dir=$(mktemp -d /tmp/coronet-peers.XXXXXX)
  trap 'rm -rf "$peer_dir"' EXIT
  if cc -O2 -Wall -Wextra -o "$bin/coronet-http-floor" loadtest/http/floor.c 2>"$peer_dir/floor.log"; then
    :
  else
    echo "run.sh: the epoll floor did not build: $(head -c 300 "$peer_dir/floor.log")" >&2
    exit 1
  fi
  export GOPROXY=off GOFLAGS=-mod=mod GOCACHE=${GOCACHE:-/tmp/coronet-go-cache}
  # The HTTP/2 peer needs golang.org/x/net: Debian's copy, in GOPATH mode.
  if GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= go build -o "$peer_dir/go-h2-hello" ./loadtest/peers/go-h2/hello \
      2>"$peer_dir/go-h2-hello.log"; then
    peers+=(--peer "go-h2-hello=$peer_dir/go-h2-hello")
  else
    reason="go build failed (scripts/setup.sh --loadtest installs golang-golang-x-net-dev): $(tr '\n' ' ' <"$peer_dir/go-h2-hello.log" | head -c 300)"
    echo "run.sh: skipping the Go HTTP/2 peer: $reason" >&2
    peers+=(--skipped-peer "go-h2-hello=$reason")
  fi
  # The database peer needs pgx: Debian's copy, in GOPATH mode.
  if GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= go build -o "$peer_dir/go-techempower" \
      ./loadtest/peers/go-pg/techempower 2>"$peer_dir/go-techempower.log"; then
    peers+=(--peer "go-techempower=$peer_dir/go-techempower")
  else
    reason="go build failed (scripts/setup.sh --loadtest installs golang-github-jackc-pgx-v4-dev): $(tr '\n' ' ' <"$peer_dir/go-techempower.log" | head -c 300)"
    echo "run.sh: skipping the Go database peer: $reason" >&2
    peers+=(--skipped-peer "go-techempower=$reason")
  fi
  # The gRPC peer: grpc-go, and protoc-gen-go to write its messages and service from
  # apps/grpc-interop/proto, both Debian's, in GOPATH mode.
  go_grpc=$peer_dir/go-grpc-path
  if mkdir -p "$go_grpc/src/coronet-peer/testpb" &&
      GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= go build -o "$peer_dir/protoc-gen-go" \
        github.com/golang/protobuf/protoc-gen-go 2>"$peer_dir/go-grpc.log" &&
      protoc --plugin=protoc-gen-go="$peer_dir/protoc-gen-go" \
        --go_out=plugins=grpc,Mempty.proto=coronet-peer/testpb,Mmessages.proto=coronet-peer/testpb,Mtest.proto=coronet-peer/testpb:"$go_grpc/src/coronet-peer/testpb" \
        -I apps/grpc-interop/proto empty.proto messages.proto test.proto 2>>"$peer_dir/go-grpc.log" &&
      sed -i 's/^package grpc_testing/package testpb/' "$go_grpc"/src/coronet-peer/testpb/*.go &&
      cp -r loadtest/peers/go-grpc/testservice "$go_grpc/src/coronet-peer/" &&
      GO111MODULE=off GOPATH="$go_grpc:/usr/share/gocode" GOFLAGS= go build -o "$peer_dir/go-grpc" \
        coronet-peer/testservice 2>>"$peer_dir/go-grpc.log"; then
    peers+=(--peer "go-grpc=$peer_dir/go-grpc")
  else
    reason="go build failed (scripts/setup.sh --loadtest installs golang-google-grpc-dev and golang-github-golang-protobuf-1-3-dev): $(tr '\n' ' ' <"$peer_dir/go-grpc.log" | head -c 300)"
    echo "run.sh: skipping the Go gRPC peer: $reason" >&2
    peers+=(--skipped-peer "go-grpc=$reason")
  fi
  for peer in hello gateway echo chat; do
    if (cd loadtest/peers/go && go build -o "$peer_dir/go-$peer" "./$peer") 2>"$peer_dir/go-$peer.log"; then
      peers+=(--peer "go-$peer=$peer_dir/go-$peer")
    else
      reason="go build failed: $(tr '\n' ' ' <"$peer_dir/go-$peer.log" | head -c 300)"
      echo "run.sh: skipping the Go $peer peer: $reason" >&2
      peers+=(--skipped-peer "go-$peer=$reason")
    fi
  done
fi

# 10,000 connections need as many descriptors on both ends.
ulimit -n "$(ulimit -Hn)"
command="loadtest/run.sh${scenarios[*]:+ ${scenarios[*]}}${passthrough[*]:+ ${passthrough[*]}}"
# Debian's Python, with the packages setup.sh installs (python3-grpcio, python3-protobuf), even when
# another python3 comes first on the PATH.
python=python3
[[ -x /usr/bin/python3 ]] && python=/usr/bin/python3
"$python" loadtest/suite.py "${scenarios[@]}" "${passthrough[@]}" --bin "$bin" "${peers[@]}" --command "$command"
