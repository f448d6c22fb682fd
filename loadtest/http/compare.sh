#!/usr/bin/env bash
# HTTP benchmarks side by side in one run: coronet-hello (one worker), Go
# net/http (GOMAXPROCS=1), nginx (one worker) and a hand-written epoll floor,
# each pinned to one core with wrk on the other.
#   loadtest/http/compare.sh [--seconds N] [--repetitions N] [--idle N]
# Writes loadtest/results/http.json and loadtest/results/http.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=10
reps=3
idle=10000
while (($#)); do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --repetitions) reps=$2; shift 2 ;;
    --idle) idle=$2; shift 2 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done

scripts/setup.sh --loadtest
source scripts/lib/build.sh
coronet_build build-release -DCMAKE_BUILD_TYPE=Release -DCORONET_BUILD_TESTS=OFF -DCORONET_BUILD_APPS=ON
bins=build-release/bin
cc -O2 -Wall -Wextra -o "$bins/coronet-http-floor" loadtest/http/floor.c
export GOPROXY=off GOFLAGS=-mod=mod GOCACHE=${GOCACHE:-/tmp/coronet-go-cache}
(cd loadtest/peers/go && go build -o "../../../$bins/go-hello" ./hello)

# 10,000 idle connections need as many descriptors on both ends.
ulimit -n "$(ulimit -Hn)"
mkdir -p loadtest/results
python3 loadtest/http/compare.py "$seconds" "$reps" "$idle" loadtest/results/http.json \
  "loadtest/http/compare.sh --seconds $seconds --repetitions $reps --idle $idle"
