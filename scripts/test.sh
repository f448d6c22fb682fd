#!/usr/bin/env bash
# Sets everything up, builds and runs the test suite: a normal build, then the
# same suite under ASan+UBSan.
#   scripts/test.sh                 normal + address,undefined
#   scripts/test.sh --tsan          normal + address,undefined + thread
#   scripts/test.sh --only=normal|asan|tsan
set -euo pipefail
cd "$(dirname "$0")/.."

variants=(normal asan)
for arg in "$@"; do
  case "$arg" in
    --tsan) variants+=(tsan) ;;
    --only=normal|--only=asan|--only=tsan) variants=("${arg#--only=}") ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

scripts/setup.sh
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
done
