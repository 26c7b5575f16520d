#!/usr/bin/env bash
# sparcol-bench with --device cuda / --backend nccl, run as a user would under mpirun. With a GPU (and
# NCCL, for --backend nccl) the run must finish with every result right; without one it must fail
# with the documented status and message (9 "no CUDA device"; 2 "has no NCCL" in builds without
# NCCL), never crash or hang, and the test is then skipped (exit 77), or failed under
# SPARCOL_REQUIRE_GPU=1 (tests/gpu/gpu_skip.sh). Usage: bench_device.sh MPIEXEC NP BENCH [ARGS...]
set -uo pipefail
source "$(dirname "$0")/gpu_skip.sh"
mpiexec=$1
np=$2
shift 2
out=$(mktemp)
err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
"$mpiexec" -np "$np" --oversubscribe "$@" >"$out" 2>"$err"
rc=$?
case $rc in
  0)
    if ! grep -qF "total wrong: 0 (OK)" "$out"; then
      echo "exit 0 without 'total wrong: 0 (OK)':"; cat "$out" "$err"; exit 1
    fi
    echo "ok: ran on the GPU"; grep -E "^# ranks|^# avg busbw" "$out" ;;
  9)
    if ! grep -qF "no CUDA device" "$err"; then
      echo "exit 9 without 'no CUDA device':"; cat "$err"; exit 1
    fi
    gpu_skip "exit 9 as documented, no GPU: $(head -1 "$err")" ;;
  2)
    if ! grep -qF "has no NCCL" "$err"; then
      echo "exit 2 for another reason than a build without NCCL:"; cat "$err"; exit 1
    fi
    gpu_skip "exit 2 as documented, no NCCL in this build: $(head -1 "$err")" ;;
  *)
    echo "unexpected exit $rc:"; cat "$out" "$err"; exit 1 ;;
esac
