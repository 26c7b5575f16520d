#!/usr/bin/env bash
# sparcol-train's bad input that needs more than one command or rank to set up: data present on some
# ranks only, a trace that must not be overwritten, and checkpoints and traces that belong to another
# run. Each case must fail with a non-zero status (not a signal) and a message naming the file and
# rank, and must leave existing checkpoints and traces byte for byte as they were. Bad flags, missing,
# empty, truncated and corrupt data and checkpoint files and unwritable outputs are rows of
# tests/apps/bad_input.table.
# Usage: train_bad_input.sh SPARCOL_TRAIN MPIEXEC CASE
set -uo pipefail
bin=$1
mpiexec=$2
case_name=$3
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAILED: $*"; exit 1; }
expect() { "$here/expect_fail.sh" "$@" || exit 1; }
data=$work/data
"$py" "$here/train_make_idx.py" "$data" --train 256 --test 64 || fail "cannot generate the data"
base=(--epochs 1 --batch 16 --progress-every 0 --quiet)
args=(--data "$data" "${base[@]}")
t2=("$mpiexec" -np 2 "$bin" "${args[@]}")
# A finished 2-rank run with a trace and checkpoints (8 steps: checkpoints at 4 and 8).
prepare_run() {
  "${t2[@]}" --trace "$work/t.h5" --checkpoint "$work/ck" --checkpoint-every 4 >/dev/null 2>&1 || fail "setup run failed"
  (cd "$work" && find ck t.h5 -type f -print0 | sort -z | xargs -0 md5sum) >"$work/before.md5"
}
# Nothing that existed may have changed.
unchanged() {
  (cd "$work" && find ck t.h5 -type f -print0 | sort -z | xargs -0 md5sum) >"$work/after.md5"
  diff "$work/before.md5" "$work/after.md5" >/dev/null || fail "existing files changed: $(diff "$work/before.md5" "$work/after.md5")"
}

case $case_name in
  data-on-some-ranks)
    # MPMD: rank 0 sees the data, rank 1 does not. Rank 1 names its file; rank 0 names rank 1.
    mpmd=("$mpiexec" -np 1 "$bin" "${args[@]}" : -np 1 "$bin" --data "$work/none" "${base[@]}")
    expect "rank 1: error: $work/none/train-images-idx3-ubyte.gz: no such file" "${mpmd[@]}"
    expect "rank 0: error: stopping: rank 1 rejected its input" "${mpmd[@]}" ;;
  trace-exists)
    prepare_run
    expect "--trace: '$work/t.h5' exists; pass --overwrite" "${t2[@]}" --trace "$work/t.h5"
    unchanged ;;
  checkpoint-other-config)
    prepare_run
    expect "checkpoint '$work/ck/ckpt-8/rank-0.bin' was written by another configuration (lr: 0.1 vs 0.05" \
      "${t2[@]}" --trace "$work/t.h5" --checkpoint "$work/ck" --resume --lr 0.05
    unchanged ;;
  checkpoint-other-world-size)
    prepare_run
    expect "checkpoint '$work/ck/ckpt-8/rank-0.bin' was written by a run on 2 ranks; this run has 4" \
      "$mpiexec" -np 4 "$bin" "${args[@]}" --trace "$work/t.h5" --checkpoint "$work/ck" --resume
    unchanged ;;
  trace-other-config)
    # Resuming a checkpoint into the trace of another run.
    prepare_run
    "${t2[@]}" --seed 7 --checkpoint "$work/ck7" >/dev/null 2>&1 || fail "setup run failed"
    expect "--trace: '$work/t.h5' was written by another configuration (seed: 1 vs 7" \
      "${t2[@]}" --seed 7 --trace "$work/t.h5" --checkpoint "$work/ck7" --resume
    unchanged ;;
  *) fail "unknown case $case_name" ;;
esac
