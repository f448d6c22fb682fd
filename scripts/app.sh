#!/usr/bin/env bash
# Sets everything up, builds Release and runs one app in the foreground with
# its commented config from configs/:
#   scripts/app.sh echo [ARGS...]    TCP echo on :7000 (--set echo.udp=true adds UDP)
#   scripts/app.sh chat [ARGS...]    chat: nc 127.0.0.1 7070, or http://127.0.0.1:8090/
#   scripts/app.sh hello|backend|gateway [ARGS...]
# Extra arguments go to the app (--set section.key=value, --listen, ...).
# Ctrl-C stops it gracefully.
set -euo pipefail
cd "$(dirname "$0")/.."
app=${1:-}
case "$app" in
  echo|chat|hello|backend|gateway) shift ;;
  -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
  *) echo "app.sh: name an app: echo, chat, hello, backend or gateway (try --help)" >&2; exit 2 ;;
esac
scripts/build.sh
exec "build-release/bin/coronet-$app" --config "configs/$app.toml" "$@"
