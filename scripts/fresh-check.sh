#!/usr/bin/env bash
# Proves the README's commands on a brand-new Debian 12 root: debootstrap a
# minimal bookworm into a temporary folder, copy this checkout in, run
# scripts/test.sh inside a chroot, then start the demo and check it answers.
# Needs root. Slow (a few minutes for the root, then a full build and test).
#   scripts/fresh-check.sh [--keep]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 ]]; then
  echo "fresh-check.sh needs root (debootstrap, chroot, mounts)" >&2
  exit 1
fi
keep=false
[[ "${1:-}" == "--keep" ]] && keep=true
scripts/setup.sh --fresh-check

root=$(mktemp -d /var/tmp/coronet-fresh.XXXXXX)
cleanup() {
  for m in dev/pts dev proc sys; do umount -l "$root/$m" 2>/dev/null || true; done
  if $keep; then echo "fresh root kept at $root"; else rm -rf "$root"; fi
}
trap cleanup EXIT

echo "== debootstrap bookworm (minbase) into $root"
debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
cp /etc/resolv.conf "$root/etc/resolv.conf"

echo "== copying the checkout (tracked files only)"
mkdir -p "$root/src/coronet"
git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$root/src/coronet"

echo "== README test command inside the fresh root"
chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  bash -c 'cd /src/coronet && scripts/test.sh'

echo "== README run command inside the fresh root: start the demo and talk to it"
chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin bash -c '
  cd /src/coronet
  scripts/run.sh > /tmp/run.log 2>&1 &
  pid=$!
  for i in $(seq 1 900); do
    grep -q "coronet demo is up" /tmp/run.log && break
    kill -0 $pid 2>/dev/null || break
    sleep 1
  done
  grep -q "coronet demo is up" /tmp/run.log || { cat /tmp/run.log; exit 1; }
  reply=$(curl -sS --fail http://127.0.0.1:8080/api/users/1/dashboard)
  kill -TERM $pid; wait $pid
  echo "demo answered: $reply"
  grep -q "stopped" /tmp/run.log
  [[ "$reply" == *"\"partial\":false"* && "$reply" == *"\"name\":\"User 1\""* ]]'
echo "fresh-check: OK"
