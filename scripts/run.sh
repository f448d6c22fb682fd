#!/usr/bin/env bash
# Sets everything up, builds Release and starts the main demo in the
# foreground; Ctrl-C stops it cleanly. Extra arguments go to the app.
# Until the microservice gateway lands, the demo is coronet-hello.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/lib/build.sh
coronet_build build-release -DCMAKE_BUILD_TYPE=Release -DCORONET_BUILD_TESTS=OFF -DCORONET_BUILD_BENCH=OFF
echo "== starting coronet-hello; try:  curl http://127.0.0.1:8080/plaintext   (Ctrl-C to stop)"
exec build-release/bin/coronet-hello --config configs/hello.toml "$@"
