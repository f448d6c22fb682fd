#!/usr/bin/env bash
# Builds the fuzz targets with clang (libFuzzer, ASan, UBSan) and runs each
# for a bounded time over its seed corpus: the request parser (the server's
# request path), the response parser (the client's), the JSON request helper,
# the config loader (TOML file, flags, environment), the request-body
# decompressor (gzip, deflate, zstd, br), the router (matching,
# percent-decoding, query parameters), the WebSocket frame reader (masked and
# unmasked, fragmented, control frames) and the chat's line protocol. Usage:
#   tests/fuzz/run.sh [SECONDS]        each target for SECONDS (default 30)
#   tests/fuzz/run.sh --minutes N      all of them for N minutes in total
# Each run's output is in build-fuzz/logs/NAME.log; a summary (executions,
# coverage, new inputs) is printed at the end. Exits 0 when clang is missing
# (the fuzz run is optional there), non-zero when a fuzzer finds a crash; the
# crashing input is left in build-fuzz/.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
targets=(request_parser:corpus response_parser:corpus-response json_body:corpus-json config_loader:corpus-config
  codec:corpus-codec router:corpus-router websocket_frames:corpus-websocket chat_protocol:corpus-chat)
seconds=30
case "${1:-}" in
  --minutes)
    [[ ${2:-} =~ ^[0-9]+$ && $2 -gt 0 ]] || { echo "fuzz: --minutes needs a whole number above 0" >&2; exit 2; }
    seconds=$(( $2 * 60 / ${#targets[@]} )) ;;
  '') ;;
  *)
    [[ $1 =~ ^[0-9]+$ && $1 -gt 0 ]] || { echo "fuzz: usage: tests/fuzz/run.sh [SECONDS | --minutes N]" >&2; exit 2; }
    seconds=$1 ;;
esac
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
# Asio's coroutine support is off by default under clang 14 with libstdc++;
# the headers these targets include only need it declared.
coro=(-DASIO_HAS_CO_AWAIT -DASIO_HAS_STD_COROUTINE)
build() { # NAME SOURCES... [-- LIBS]
  local name=$1
  shift
  clang++ -std=c++20 "${flags[@]}" "${coro[@]}" -I"$root/framework/include" -I"$root/framework/src" -I"$llhttp_inc" \
    "$@" "$root/framework/src/http/headers.cpp" "$root/framework/src/http/request.cpp" "$root/framework/src/http/status.cpp" "$root/framework/src/detail/memory.cpp" "$root/framework/src/text.cpp" "${objects[@]}" -lfmt -o "$out/fuzz_$name"
}
build request_parser "$root/tests/fuzz/request_parser.cpp" "$root/framework/src/http1/request_parser.cpp"
build response_parser "$root/tests/fuzz/response_parser.cpp" "$root/framework/src/http1/response_parser.cpp"
build json_body "$root/tests/fuzz/json_body.cpp" "$root/framework/src/http/json.cpp"
# NDEBUG as in every real build: toml++ asserts on a few malformed documents
# (a control byte in a table header) that, with NDEBUG, it reports as the
# parse errors they are.
build config_loader -DNDEBUG "$root/tests/fuzz/config_loader.cpp" "$root/framework/src/config.cpp" \
  "$root/framework/src/log.cpp" "$root/framework/src/utf8.cpp" -lspdlog
build codec "$root/tests/fuzz/codec.cpp" "$root/framework/src/middleware/codec.cpp" -lz -lzstd -lbrotlidec
build websocket_frames "$root/tests/fuzz/websocket_frames.cpp" "$root/framework/src/websocket/frames.cpp" \
  "$root/framework/src/utf8.cpp"
build chat_protocol -I"$root/apps" "$root/tests/fuzz/chat_protocol.cpp" "$root/apps/chat/protocol.cpp" \
  "$root/framework/src/utf8.cpp"
# The router's coroutines: clang 14 cannot emit them with UBSan ("cannot
# represent a difference across sections"), so this one has ASan only.
flags=(-g0 -O1 -fsanitize=fuzzer,address)
build router "$root/tests/fuzz/router.cpp" "$root/framework/src/http/router.cpp" "$root/framework/src/http/error.cpp" \
  "$root/framework/src/error.cpp" \
  "$root/framework/src/metrics.cpp" -lspdlog

# New inputs go to build-fuzz/corpus*; the seeds in the tree stay as they are.
cd "$out"
mkdir -p logs
summary=()
for target in "${targets[@]}"; do
  name=${target%%:*} seeds=${target#*:}
  echo "fuzz: running the ${name//_/ } for ${seconds}s"
  mkdir -p "$out/$seeds"
  status=0
  "./fuzz_$name" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=1024 -print_final_stats=1 \
    "$out/$seeds" "$root/tests/fuzz/$seeds" >"logs/$name.log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "logs/$name.log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "logs/$name.log" | tail -1)
  summary+=("$(printf '%-18s %12s runs  %-10s  %s' "$name" "${runs:-?}" "${cov:-cov: ?}" \
    "$([[ $status == 0 ]] && echo ok || echo "FAILED (exit $status)")")")
  if [[ $status != 0 ]]; then
    tail -60 "logs/$name.log" >&2
    printf '%s\n' "${summary[@]}"
    echo "fuzz: $name failed; its input is in $out (crash-*, leak-*, timeout-* or oom-*)" >&2
    exit "$status"
  fi
done
printf '%s\n' "${summary[@]}"
