#!/usr/bin/env bash
# Runs the primitive benchmarks of coronet and of their Go twins in one go,
# both pinned to the same core (one worker / GOMAXPROCS=1; the cross-worker
# ping-pong gets two cores on both sides), and prints medians and ratios.
#   loadtest/micro/compare.sh [--repetitions N] [--parked N]
# Writes loadtest/results/primitives.json and loadtest/results/primitives.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
reps=5
parked=1000000
while (($#)); do
  case "$1" in
    --repetitions) reps=$2; shift 2 ;;
    --parked) parked=$2; shift 2 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done

scripts/setup.sh --loadtest
source scripts/lib/build.sh
coronet_build build-release -DCMAKE_BUILD_TYPE=Release -DCORONET_BUILD_TESTS=OFF -DCORONET_BUILD_BENCH=ON
bench=build-release/bin/coronet-bench-primitives
mkdir -p loadtest/results
out=loadtest/results
one_core=$(( $(nproc) > 1 ? 1 : 0 ))
two_cores="0-$(( $(nproc) > 1 ? 1 : 0 ))"

echo "== coronet (taskset -c $one_core; cross-worker on $two_cores)"
taskset -c "$one_core" "$bench" --benchmark_filter='^BM_(spawn_join|channel_pingpong|channel_buffered|fanout|select)/' \
  --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true \
  --benchmark_format=json > "$out/coronet-primitives.json"
taskset -c "$two_cores" "$bench" --benchmark_filter='^BM_channel_pingpong_cross_worker' \
  --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true \
  --benchmark_format=json > "$out/coronet-cross.json"
coronet_parked=$(taskset -c "$one_core" "$bench" --parked="$parked")

echo "== Go $(go version | cut -d' ' -f3) (GOMAXPROCS=1 on core $one_core; -cpu 2 for cross-worker)"
export GOPROXY=off GOFLAGS=-mod=mod GOCACHE=${GOCACHE:-/tmp/coronet-go-cache}
(cd loadtest/peers/go && taskset -c "$one_core" go test ./primitives -run '^$' -cpu 1 -count "$reps" \
  -bench 'SpawnJoin|ChannelPingpong$|ChannelBuffered1024|Fanout16|Select2') > "$out/go-primitives.txt"
(cd loadtest/peers/go && taskset -c "$two_cores" go test ./primitives -run '^$' -cpu 2 -count "$reps" \
  -bench 'ChannelPingpongCrossWorker') > "$out/go-cross.txt"
(cd loadtest/peers/go && go build -o /tmp/coronet-go-parked ./parked)
go_parked=$(taskset -c "$one_core" /tmp/coronet-go-parked -n "$parked")

python3 loadtest/micro/report.py "$out" "$coronet_parked" "$go_parked" "$reps" \
  "loadtest/micro/compare.sh --repetitions $reps --parked $parked"
