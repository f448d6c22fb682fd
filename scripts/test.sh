#!/usr/bin/env bash
# Sets everything up, builds and runs the test suite: a normal build (then
# every load-test scenario briefly, for correctness: loadtest/run.sh --quick),
# the same suite under ASan+UBSan, then a bounded libFuzzer run of the
# request path (CORONET_FUZZ_SECONDS, default 30).
#   scripts/test.sh                 normal + address,undefined + fuzz
#   scripts/test.sh --tsan          normal + address,undefined + thread + fuzz
#   scripts/test.sh --only=normal|asan|tsan|fuzz
set -euo pipefail
cd "$(dirname "$0")/.."

variants=(normal asan)
fuzz=1
for arg in "$@"; do
  case "$arg" in
    --tsan) variants+=(tsan) ;;
    --only=fuzz) variants=() ;;
    --only=normal|--only=asan|--only=tsan) variants=("${arg#--only=}"); fuzz=0 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

if (( fuzz )); then scripts/setup.sh --fuzz; else scripts/setup.sh; fi
source scripts/lib/build.sh

for variant in "${variants[@]}"; do
  case "$variant" in
    normal) dir=build;      flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
    asan)   dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=Debug -DCORONET_SANITIZE=address,undefined -DCORONET_BUILD_BENCH=OFF) ;;
    tsan)   dir=build-tsan; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCORONET_SANITIZE=thread -DCORONET_BUILD_BENCH=OFF) ;;
  esac
  echo "== $variant build ($dir)"
  coronet_build "$dir" -DCORONET_BUILD_TESTS=ON -DCORONET_BUILD_APPS=ON "${flags[@]}"
  echo "== $variant tests"
  ctest --test-dir "$dir" --output-on-failure -j "$CORONET_JOBS"
  if [[ $variant == normal ]]; then
    echo "== load-test scenarios, quick (correctness, not speed)"
    loadtest/run.sh --quick --bin build/bin
  fi
done

if (( fuzz )); then
  echo "== fuzz (request and response parsers, JSON helper, config loader, decompressor, router, WebSocket frames, chat protocol: ${CORONET_FUZZ_SECONDS:-20}s each)"
  tests/fuzz/run.sh "${CORONET_FUZZ_SECONDS:-20}"
fi
