#!/usr/bin/env bash
# Installs the Debian packages coronet needs, and nothing when they are all
# present. Usage: scripts/setup.sh [--loadtest] [--fuzz] [--fresh-check] [--container-check]
#   (default)      build + tests (python3-websockets, chromium, python3-h2, nghttp2-client, nginx:
#                  the foreign clients and servers the tests use; libpq-dev and postgresql for
#                  coronet::pg, libhiredis-dev and redis-server for coronet::redis, whose tests
#                  start servers of their own; protobuf-compiler, libprotobuf-dev and libprotoc-dev
#                  for coronet::grpc's messages and its protoc plugin, python3-grpcio for the
#                  gRPC interop peer) + micro-benchmarks
#   --loadtest     also the Go toolchain (and Go's x/net for the h2c peer, pgx for the database peer, grpc-go
#                  and protoc-gen-go for the gRPC peer) and perf
#   --fuzz         also clang and its sanitizer runtimes (libFuzzer) for scripts/test.sh
#   --io-uring     also liburing-dev (CORONET_REACTOR=io_uring)
#   --fresh-check  also debootstrap (for scripts/fresh-check.sh)
#   --container-check  also podman and debootstrap (for scripts/container-check.sh)
set -euo pipefail

packages=(
  g++ cmake make pkg-config ccache ca-certificates libssl-dev openssl
  libasio-dev node-llhttp libspdlog-dev libfmt-dev nlohmann-json3-dev
  libtomlplusplus-dev libcli11-dev doctest-dev libbenchmark-dev
  libnghttp2-dev nghttp2-client python3-h2 nginx-light zlib1g-dev libzstd-dev libbrotli-dev
  python3 python3-yaml python3-websockets chromium curl procps netcat-openbsd wrk
  universal-ctags libpq-dev postgresql libhiredis-dev redis-server testssl.sh
  protobuf-compiler libprotobuf-dev libprotoc-dev python3-grpcio
)
for arg in "$@"; do
  case "$arg" in
    --loadtest) packages+=(golang-go golang-golang-x-net-dev golang-github-jackc-pgx-v4-dev golang-google-grpc-dev
      golang-github-golang-protobuf-1-3-dev util-linux linux-perf) ;;
    --fuzz) packages+=(clang libclang-rt-dev) ;;
    --io-uring) packages+=(liburing-dev) ;;
    --fresh-check) packages+=(debootstrap) ;;
    --container-check) packages+=(podman debootstrap) ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
if [[ $(id -u) -eq 0 ]]; then
  sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo=(sudo)
else
  echo "setup: missing packages and no root rights. Run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
