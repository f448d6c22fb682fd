#!/usr/bin/env bash
# Sets everything up and builds the apps in Release into build-release/bin
# (coronet-gateway, coronet-backend, coronet-hello, coronet-echo). Used by
# scripts/run.sh and by the Dockerfile's build stage. Extra arguments go to
# CMake's configure step.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/lib/build.sh
coronet_build build-release -DCMAKE_BUILD_TYPE=Release -DCORONET_BUILD_TESTS=OFF -DCORONET_BUILD_BENCH=OFF \
  -DCORONET_BUILD_APPS=ON "$@"
