#!/usr/bin/env bash
# Writes loadtest/RESULTS.md (a table per scenario, coronet beside its peers
# with ratios and the targets) and SVG charts in loadtest/charts/ from the
# JSON that loadtest/run.sh left in loadtest/results/.
#   loadtest/report.sh
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
  "") ;;
  *) echo "report.sh: takes no arguments (try --help)" >&2; exit 2 ;;
esac
exec python3 loadtest/report.py
