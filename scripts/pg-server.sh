#!/usr/bin/env bash
# A throwaway PostgreSQL server in a directory of its own, for the tests and
# `scripts/run.sh --db`. Never touches a system cluster.
#   scripts/pg-server.sh start DIR [PORT]   prints the server's URL (PORT 0 or none: a free one)
#   scripts/pg-server.sh stop DIR
#   scripts/pg-server.sh restart DIR        fast restart, same port
#   scripts/pg-server.sh kill DIR           SIGKILL the postmaster (a crash)
# With CORONET_PG_TLS_CERT and CORONET_PG_TLS_KEY set, start serves TLS too
# with that certificate (scripts/make-certs.sh makes one).
# Run as root, the server runs as the 'postgres' user (PostgreSQL refuses
# root). A template cluster is made once (initdb) and copied for each start.
set -euo pipefail

die() { echo "pg-server: $*" >&2; exit 1; }
bindir=$(pg_config --bindir 2>/dev/null || true)
if [[ -z "$bindir" || ! -x "$bindir/initdb" ]]; then
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
fi
[[ -n "$bindir" && -x "$bindir/initdb" ]] || die "no PostgreSQL server binaries: install the Debian package 'postgresql' (scripts/setup.sh does)"

as_owner=()
if [[ $(id -u) -eq 0 ]]; then
  id postgres >/dev/null 2>&1 || die "running as root and there is no 'postgres' user to run the server as"
  as_owner=(runuser -u postgres --)
fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

template() {
  local version; version=$("$bindir/postgres" --version | awk '{print $NF}')
  local t="${TMPDIR:-/tmp}/coronet-pg-template-$(id -u)-$version"
  exec 9>"$t.lock"
  flock 9
  if [[ ! -f "$t/ready" ]]; then
    rm -rf "$t"; mkdir -p "$t"
    [[ ${#as_owner[@]} -gt 0 ]] && chown postgres "$t"
    "${as_owner[@]}" "$bindir/initdb" -D "$t/data" -U coronet -A trust -E UTF8 --locale=C.UTF-8 --no-sync >"$t/initdb.log" 2>&1 \
      || { cat "$t/initdb.log" >&2; die "initdb failed"; }
    touch "$t/ready"
  fi
  exec 9>&-
  echo "$t"
}

start() {
  local dir=$1 port=${2:-0}
  [[ "$port" == 0 ]] && port=$(free_port)
  mkdir -p "$dir"
  local parent; parent=$(dirname "$(realpath "$dir")")
  if [[ ${#as_owner[@]} -gt 0 ]] && ! runuser -u postgres -- test -x "$parent"; then
    chmod a+x "$parent" # the server's user must reach DIR (in a private temporary directory, say)
    runuser -u postgres -- test -x "$parent" || die "the 'postgres' user cannot reach $dir: choose a directory it can"
  fi
  local t; t=$(template)
  cp -a "$t/data" "$dir/data"
  [[ ${#as_owner[@]} -gt 0 ]] && chown -R postgres "$dir"
  echo "$port" >"$dir/port"
  local tls=""
  if [[ -n "${CORONET_PG_TLS_CERT:-}" ]]; then
    install -m 0644 "$CORONET_PG_TLS_CERT" "$dir/server.pem"
    install -m 0600 "$CORONET_PG_TLS_KEY" "$dir/server.key"
    [[ ${#as_owner[@]} -gt 0 ]] && chown postgres "$dir/server.pem" "$dir/server.key"
    tls="-c ssl=on -c ssl_cert_file=$dir/server.pem -c ssl_key_file=$dir/server.key"
  fi
  "${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o \
    "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 $tls" \
    start >/dev/null || { cat "$dir/server.log" >&2; die "the server did not start"; }
  echo "postgres://coronet@127.0.0.1:$port/postgres"
}

stop() {
  local dir=$1
  [[ -d "$dir/data" ]] || return 0
  "${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
}

restart() {
  local dir=$1
  "${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -m fast -w -t 60 restart >/dev/null \
    || { cat "$dir/server.log" >&2; die "the server did not restart"; }
}

kill_server() {
  local dir=$1
  local pid; pid=$(head -1 "$dir/data/postmaster.pid")
  kill -KILL "$pid"
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  restart) shift; restart "$@" ;;
  kill) shift; kill_server "$@" ;;
  *) sed -n '2,11p' "$0"; exit 2 ;;
esac
