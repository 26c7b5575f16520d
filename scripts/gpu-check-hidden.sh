#!/usr/bin/env bash
# Proves the carry of scripts/gpu-carry.sh on a Debian machine that has the packages installed: runs
# scripts/gpu-check.sh --use-carry in a private mount namespace in which every regular file that the
# carried packages installed here is hidden (bound over by /dev/null), so the build and every run can
# only use the copies unpacked from the carry, as on a GPU machine without Debian's archive. A file
# that leaks through from the system shows as a build or load failure. Needs root (unshare -m).
# Usage: scripts/gpu-check-hidden.sh CARRY_DIR [gpu-check.sh flags...]
set -euo pipefail
carry=${1:?usage: gpu-check-hidden.sh CARRY_DIR [gpu-check.sh flags...]}
shift
here=$(cd "$(dirname "$0")" && pwd)
[ -d "$carry/debs" ] || { echo "gpu-check-hidden: $carry/debs does not exist (scripts/gpu-carry.sh)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "gpu-check-hidden: needs root for a private mount namespace" >&2; exit 2; }

list=$(mktemp)
trap 'rm -f "$list"' EXIT
for deb in "$carry"/debs/*.deb; do
  pkg=$(dpkg-deb -f "$deb" Package)
  dpkg -L "$pkg" 2>/dev/null || true
done | while read -r f; do
  if [ -f "$f" ] && [ ! -L "$f" ]; then echo "$f"; fi
done | sort -u >"$list"
echo "gpu-check-hidden: hiding $(wc -l <"$list") installed files of the carried packages"
unshare -m bash -c '
  set -e
  while read -r f; do mount --bind /dev/null "$f"; done <"$1"
  shift
  exec "$@"
' hide "$list" bash "$here/gpu-check.sh" --carry "$carry" --use-carry "$@"
