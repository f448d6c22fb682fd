#!/usr/bin/env bash
# Sets everything up, builds and runs the test suite: a normal build (then
# every load-test scenario briefly, for correctness: loadtest/run.sh --quick),
# the same suite under ASan+UBSan, then a bounded libFuzzer run of the
# request path (CORONET_FUZZ_SECONDS, default 30).
#   scripts/test.sh                 normal + address,undefined + fuzz
#   scripts/test.sh --tsan          normal + address,undefined + thread + fuzz
#   scripts/test.sh --reactors      also the io_uring and select builds (CORONET_REACTOR), each its whole suite
#   scripts/test.sh --reactors=quick  ...each only the unit tests and the HTTP/2, gRPC and hello-shutdown
#                                   integration tests, built without the other apps
#   scripts/test.sh --reactor=io_uring:quick  one of them (io_uring or select; :quick optional)
#   scripts/test.sh --only=normal|asan|tsan|fuzz|io_uring|select
set -euo pipefail
cd "$(dirname "$0")/.."

variants=(normal asan)
fuzz=1
reactor_scope=whole
for arg in "$@"; do
  case "$arg" in
    --tsan) variants+=(tsan) ;;
    --reactors) variants+=(io_uring select) ;;
    --reactors=quick) variants+=(io_uring select); reactor_scope=quick ;;
    --reactor=io_uring|--reactor=select) variants+=("${arg#--reactor=}") ;;
    --reactor=io_uring:quick|--reactor=select:quick) r=${arg#--reactor=}; variants+=("${r%:quick}"); reactor_scope=quick ;;
    --only=fuzz) variants=() ;;
    --only=normal|--only=asan|--only=tsan|--only=io_uring|--only=select) variants=("${arg#--only=}"); fuzz=0 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

setup=()
(( fuzz )) && setup+=(--fuzz)
[[ " ${variants[*]} " == *" io_uring "* ]] && setup+=(--io-uring)
scripts/setup.sh "${setup[@]}"
source scripts/lib/build.sh

# The quick reactor run: what depends on the reactor most (sockets, timers,
# TLS, HTTP/1.1 and HTTP/2 both ways, the client's pools, pg and redis in
# the unit tests; streams and shutdown end to end).
quick_targets=(coronet_tests coronet-hello coronet-backend coronet-gateway coronet-grpc-interop coronet-grpc-interop-client)
quick_integration='^(http2|grpc): |^shutdown: hello_'

for variant in "${variants[@]}"; do
  targets=()
  quick=0
  case "$variant" in
    normal) dir=build;      flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
    asan)   dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=Debug -DCORONET_SANITIZE=address,undefined -DCORONET_BUILD_BENCH=OFF) ;;
    tsan)   dir=build-tsan; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCORONET_SANITIZE=thread -DCORONET_BUILD_BENCH=OFF) ;;
    io_uring|select)
      dir=build-$variant; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCORONET_REACTOR=$variant -DCORONET_BUILD_BENCH=OFF)
      if [[ $reactor_scope == quick ]]; then
        quick=1
        flags[0]=-DCMAKE_BUILD_TYPE=None # -O0 without debug information: compiles fastest (the ASan run shows the suite holds at -O0)
        targets=(--)
        for t in "${quick_targets[@]}"; do targets+=(--target "$t"); done
      fi ;;
  esac
  echo "== $variant build ($dir)"
  if [[ $variant == io_uring ]] && ! why=$(cmake -S . -B "$dir" -DCORONET_REACTOR=io_uring 2>&1 >/dev/null); then
    if [[ $why == *"cannot create an io_uring ring"* ]]; then
      # Not a failure of coronet: this machine (its kernel, sysctl or seccomp
      # profile) refuses io_uring, which configuring found and said.
      echo "== io_uring: SKIPPED, this machine refuses io_uring:"
      echo "$why" | grep -A3 "cannot create" | sed 's/^/   /'
      continue
    fi
    echo "$why" >&2
    exit 1
  fi
  coronet_build "$dir" -DCORONET_BUILD_TESTS=ON -DCORONET_BUILD_APPS=ON "${flags[@]}" "${targets[@]}"
  if (( quick )); then
    echo "== $variant tests (quick: every unit test, then the HTTP/2, gRPC and hello shutdown integration tests)"
    "$dir/bin/coronet_tests"
    ctest --test-dir "$dir" --output-on-failure -j "$CORONET_JOBS" -R "$quick_integration"
  else
    echo "== $variant tests"
    ctest --test-dir "$dir" --output-on-failure -j "$CORONET_JOBS"
  fi
  if [[ $variant == normal ]]; then
    echo "== load-test scenarios, quick (correctness, not speed)"
    loadtest/run.sh --quick --bin build/bin
  fi
done

if (( fuzz )); then
  echo "== fuzz (request and response parsers, JSON helper, config loader, decompressor, router, WebSocket frames, chat protocol: ${CORONET_FUZZ_SECONDS:-20}s each)"
  tests/fuzz/run.sh "${CORONET_FUZZ_SECONDS:-20}"
fi
