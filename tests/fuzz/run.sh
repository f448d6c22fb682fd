#!/usr/bin/env bash
# Builds the request-path fuzz target with clang (libFuzzer, ASan, UBSan) and
# runs it for a bounded time over the seed corpus. Usage:
#   tests/fuzz/run.sh [SECONDS]     (default 30)
# Exits 0 when clang is missing (the fuzz run is optional there), non-zero
# when the fuzzer finds a crash; the crashing input is left in build-fuzz/.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
seconds="${1:-30}"
out="$root/build-fuzz"
llhttp_src=/usr/share/llhttp
llhttp_inc=/usr/share/include/llhttp

if ! command -v clang++ >/dev/null || ! command -v clang >/dev/null; then
  echo "fuzz: clang not installed; skipping the fuzz run (apt-get install clang)"
  exit 0
fi
if [[ ! -f "$llhttp_src/llhttp.c" ]]; then
  echo "fuzz: llhttp C sources not found in $llhttp_src (Debian package node-llhttp)" >&2
  exit 1
fi

mkdir -p "$out/corpus"
flags=(-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined)
objects=()
for c in llhttp api http; do
  obj="$out/llhttp_$c.o"
  if [[ ! -f "$obj" || "$llhttp_src/$c.c" -nt "$obj" ]]; then
    clang "${flags[@]/-fsanitize=fuzzer,/-fsanitize=fuzzer-no-link,}" -I"$llhttp_inc" -c "$llhttp_src/$c.c" -o "$obj"
  fi
  objects+=("$obj")
done
clang++ -std=c++20 "${flags[@]}" -I"$root/framework/include" -I"$root/framework/src" -I"$llhttp_inc" \
  "$root/tests/fuzz/request_parser.cpp" "$root/framework/src/http/request_parser.cpp" \
  "$root/framework/src/http/types.cpp" "${objects[@]}" -o "$out/fuzz_request_parser"

echo "fuzz: running the request parser for ${seconds}s"
# New inputs go to build-fuzz/corpus; the seeds in the tree stay as they are.
cd "$out"
./fuzz_request_parser -max_total_time="$seconds" -timeout=5 -rss_limit_mb=1024 -print_final_stats=1 \
  "$out/corpus" "$root/tests/fuzz/corpus"
