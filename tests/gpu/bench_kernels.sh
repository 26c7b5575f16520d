#!/usr/bin/env bash
# sparcol-bench-kernels as a user runs it. With a GPU it must print its table ("# copy bandwidth");
# without one it prints "skipped: no CUDA device" and exits 0, and the test is then skipped (exit 77),
# or failed under SPARCOL_REQUIRE_GPU=1 (tests/gpu/gpu_skip.sh). Usage: bench_kernels.sh BENCH [ARGS...]
set -uo pipefail
source "$(dirname "$0")/gpu_skip.sh"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$@" >"$out" 2>&1
rc=$?
if [ $rc -ne 0 ]; then
  echo "exit $rc:"; cat "$out"; exit 1
fi
if grep -qF "# copy bandwidth" "$out"; then
  echo "ok: ran on the GPU"; cat "$out"; exit 0
fi
if grep -qF "skipped: no CUDA device" "$out"; then
  gpu_skip "$(grep -F "skipped: no CUDA device" "$out" | head -1)"
fi
echo "exit 0 without the table or the no-GPU message:"; cat "$out"; exit 1
