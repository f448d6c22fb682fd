#!/usr/bin/env bash
# Builds the container image with podman, under podman's default limits (an
# open-file limit of 1024 in the build), and proves its runtime stage serves
# without a container runtime: the image's filesystem is exported, and in a
# chroot of it, as uid 10001, the gateway and the three backends run with the
# image's own configs and the CORONET_* variables of
# configs/deploy/compose.yaml. The dashboard must answer in full,
# coronet-healthcheck must pass against each service, SIGTERM must stop each
# with status 0, and every binary in the image must find its shared
# libraries. Prints the image's size. Needs root; slow (the image build runs
# the test suite).
#   scripts/container-check.sh [--keep]   (--keep: leave the exported root)
#
# No image registry is reachable from here: the debian:bookworm and
# debian:bookworm-slim base images are made locally with debootstrap when
# podman does not have them.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 ]]; then
  echo "container-check.sh needs root (podman build, debootstrap, chroot)" >&2
  exit 1
fi
keep=false
[[ "${1:-}" == "--keep" ]] && keep=true
scripts/setup.sh --container-check

image=localhost/coronet:check
work=$(mktemp -d /var/tmp/coronet-container.XXXXXX)
root="$work/root"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for m in dev proc; do umount -l "$root/$m" 2>/dev/null || true; done
  if $keep; then echo "exported root kept at $root"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# --- the base images --------------------------------------------------------------
if ! podman image exists docker.io/library/debian:bookworm ||
   ! podman image exists docker.io/library/debian:bookworm-slim; then
  echo "== making debian:bookworm and debian:bookworm-slim with debootstrap --variant=minbase"
  base="$work/base"
  debootstrap --variant=minbase bookworm "$base" http://deb.debian.org/debian >/dev/null
  rm -rf "$base"/var/cache/apt/archives/*.deb "$base"/var/cache/apt/*.bin "$base"/var/lib/apt/lists/*
  tar -C "$base" -c . | podman import - docker.io/library/debian:bookworm >/dev/null
  # slim as Debian makes it: no documentation, manual pages or translations,
  # now or in packages installed later
  cat > "$base/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
CFG
  find "$base/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
  rm -rf "$base"/usr/share/man/* "$base"/usr/share/locale/* "$base"/usr/share/info/*
  tar -C "$base" -c . | podman import - docker.io/library/debian:bookworm-slim >/dev/null
  rm -rf "$base"
fi

# --- the build, under default limits -------------------------------------------------
echo "== podman build --isolation=chroot (the build stage runs the test suite; open-file limit as podman sets it)"
start=$(date +%s)
if ! podman build --isolation=chroot -t "$image" . >"$work/build.log" 2>&1; then
  tail -n 60 "$work/build.log"
  echo "container-check: the image build failed (its log above)" >&2
  exit 1
fi
grep -E "tests passed|quick: .* instead of|run.sh --quick" "$work/build.log" | sed 's/^/   build: /' || true
echo "   built in $(( $(date +%s) - start )) s"
size=$(podman image inspect "$image" --format '{{.Size}}')
echo "== runtime image: $image, $(( size / 1024 / 1024 )) MiB ($size bytes)"

# --- the runtime stage, without a container runtime -------------------------------
echo "== exporting the image's filesystem"
container=$(podman create "$image")
mkdir -p "$root"
podman export "$container" | tar -C "$root" -x
podman rm "$container" >/dev/null

echo "== shared libraries of every binary in the image (ldd in its own root)"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
missing=0
for bin in "$root"/usr/local/bin/coronet-*; do
  [[ -x $bin && $(head -c 4 "$bin" | tail -c 3) == ELF ]] || continue # coronet-healthcheck is a script
  name=/usr/local/bin/$(basename "$bin")
  if chroot "$root" /usr/bin/ldd "$name" | grep -q "not found"; then
    echo "   $name: $(chroot "$root" /usr/bin/ldd "$name" | grep 'not found' | tr '\n' ' ')"
    missing=1
  else
    echo "   $name: every library found"
  fi
done
((missing == 0)) || { echo "container-check: a binary in the image misses a shared library" >&2; exit 1; }
if chroot "$root" sh -c 'command -v c++ || command -v g++ || command -v cmake' >/dev/null; then
  echo "container-check: the runtime image holds a build tool" >&2
  exit 1
fi

for port in 8080 8081 8082 8083; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "container-check: something already listens on port $port; stop it first" >&2
    exit 1
  fi
done
# compose's service names, on this host's loopback
printf '127.0.0.1 users orders recommendations gateway\n' >> "$root/etc/hosts"

# Starts a command of the image in its root as uid 10001, with only the
# given variables; its pid goes into service_pid[name].
declare -A service_pid
run_in_image() {
  local name=$1
  shift
  chroot --userspec=10001:10001 "$root" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/ "$@" \
    >"$work/$name.log" 2>&1 &
  service_pid[$name]=$!
  pids+=($!)
}

wait_healthy() {
  local port=$1 pid=$2 name=$3
  for _ in $(seq 1 100); do
    if chroot --userspec=10001:10001 "$root" /usr/bin/env -i CORONET_SERVER_LISTEN="0.0.0.0:$port" \
        /usr/local/bin/coronet-healthcheck 2>/dev/null; then
      echo "   $name (:$port): coronet-healthcheck exits 0"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { cat "$work/$name.log"; echo "container-check: $name exited" >&2; exit 1; }
    sleep 0.1
  done
  cat "$work/$name.log"
  echo "container-check: $name never became healthy" >&2
  exit 1
}

echo "== the demo in the image's root, as uid 10001, with compose.yaml's variables"
port=8081
for role in users orders recommendations; do
  run_in_image "$role" CORONET_BACKEND_ROLE=$role CORONET_SERVER_LISTEN=0.0.0.0:$port \
    coronet-backend --config /etc/coronet/backend.toml
  wait_healthy $port "${service_pid[$role]}" "$role"
  port=$((port + 1))
done
run_in_image gateway CORONET_SERVER_LISTEN=0.0.0.0:8080 CORONET_BACKENDS_USERS=http://users:8081 \
  CORONET_BACKENDS_ORDERS=http://orders:8082 CORONET_BACKENDS_RECOMMENDATIONS=http://recommendations:8083 \
  coronet-gateway --config /etc/coronet/gateway.toml
wait_healthy 8080 "${service_pid[gateway]}" gateway

reply=$(curl -sS --fail --max-time 5 http://127.0.0.1:8080/api/users/1/dashboard)
echo "   dashboard: $reply"
if [[ "$reply" != *'"partial":false'* || "$reply" != *'"name":"User 1"'* || "$reply" != *'"orders":[{'* ||
      "$reply" != *'"recommendations":["'* ]]; then
  echo "container-check: the dashboard did not answer in full" >&2
  exit 1
fi

echo "== SIGTERM: each service drains and exits 0"
status=0
for name in gateway users orders recommendations; do
  pid=${service_pid[$name]}
  kill -TERM "$pid"
  rc=0
  wait "$pid" || rc=$?
  echo "   $name exited with status $rc"
  ((rc == 0)) || status=1
done
pids=()
((status == 0)) || { echo "container-check: a service did not exit 0 on SIGTERM" >&2; exit 1; }
echo "container-check: OK (image $(( size / 1024 / 1024 )) MiB)"
