#!/usr/bin/env bash
# The soak: hello (plain and TLS), the gateway with its backends and the chat
# under steady mixed load for N minutes (60 by default), sampled every 10 s;
# fails when RSS grows past 5 % after the warm-up, when descriptors, tasks or
# connections are not back to idle after the load, or on any error.
#
#   loadtest/soak.sh [--minutes N] [--port-base N] [--bin DIR]
#
# Writes loadtest/results/soak.json; loadtest/report.sh draws its curves.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=60
bin=
pass=()
while (($#)); do
  case "$1" in
    --minutes) [[ $# -ge 2 && $2 =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "soak.sh: --minutes needs a number" >&2; exit 2; }
      minutes=$2; shift 2 ;;
    --port-base) [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || { echo "soak.sh: --port-base needs a number" >&2; exit 2; }
      pass+=("$1" "$2"); shift 2 ;;
    --bin) [[ $# -ge 2 ]] || { echo "soak.sh: --bin needs a directory" >&2; exit 2; }
      bin=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "soak.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
done
scripts/setup.sh
command -v wrk >/dev/null || { echo "soak.sh: 'wrk' is missing: install the Debian package 'wrk' (scripts/setup.sh does)" >&2; exit 1; }
if [[ -z $bin ]]; then
  source scripts/lib/build.sh
  coronet_build build-release -DCMAKE_BUILD_TYPE=Release -DCORONET_BUILD_TESTS=OFF -DCORONET_BUILD_APPS=ON
  bin=build-release/bin
fi
ulimit -n "$(ulimit -Hn)"
exec python3 loadtest/soak.py --minutes "$minutes" --bin "$bin" --command "loadtest/soak.sh --minutes $minutes" "${pass[@]}"
