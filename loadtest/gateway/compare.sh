#!/usr/bin/env bash
# The microservice gateway side by side: coronet-gateway and the same gateway
# in Go, in front of the same coronet-backend processes (0 ms and 2 ms).
#   loadtest/gateway/compare.sh [--seconds N] [--repetitions N]
# Writes loadtest/results/gateway.json and loadtest/results/gateway.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=8
reps=3
while (($#)); do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --repetitions) reps=$2; shift 2 ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
scripts/setup.sh --loadtest
scripts/build.sh
export GOPROXY=off GOFLAGS=-mod=mod GOCACHE=${GOCACHE:-/tmp/coronet-go-cache}
(cd loadtest/peers/go && go build -o ../../../build-release/bin/go-gateway ./gateway)
mkdir -p loadtest/results
python3 loadtest/gateway/compare.py "$seconds" "$reps" loadtest/results/gateway.json \
  "loadtest/gateway/compare.sh --seconds $seconds --repetitions $reps"
