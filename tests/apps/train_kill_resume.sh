#!/usr/bin/env bash
# sparcol-train killed with SIGKILL in the middle of a run, after a checkpoint exists, then resumed with
# --resume: the resumed run must end with bitwise the same parameters (--save-params) and loss trace
# (every non-timing column, tests/apps/train_check_trace.py --compare) as an uninterrupted run.
# Usage: train_kill_resume.sh SPARCOL_TRAIN MPIEXEC [RANKS]
set -uo pipefail
bin=$1
mpiexec=$2
np=${3:-2}
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill -KILL $(pgrep -P "$pid" 2>/dev/null) "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAILED: $*"; for f in "$work"/*.txt; do [ -f "$f" ] && { echo "--- $f"; cat "$f"; }; done; exit 1; }

"$py" "$here/train_make_idx.py" "$work/data" --train 1024 --test 128 || fail "cannot generate the data"
# 1024 / (np x 16) steps per epoch; 3 epochs; checkpoints every 8 steps, evaluations every 5.
args=(--data "$work/data" --model mlp --optimizer gmc --compressor topk --density 0.02 --batch 16 --epochs 3
  --eval-every 5 --checkpoint-every 8 --progress-every 0 --quiet)
"$mpiexec" -np "$np" "$bin" "${args[@]}" --trace "$work/ref.h5" --checkpoint "$work/ck-ref" \
  --save-params "$work/ref.bin" >"$work/ref.txt" 2>&1 || fail "uninterrupted run: status $?"

# The same run, throttled, killed (every process, SIGKILL) once its second checkpoint exists.
"$mpiexec" -np "$np" "$bin" "${args[@]}" --trace "$work/t.h5" --checkpoint "$work/ck" --save-params "$work/p.bin" \
  --step-delay 60 >"$work/killed.txt" 2>&1 &
pid=$!
for _ in $(seq 1200); do
  [ -d "$work/ck/ckpt-16" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
[ -d "$work/ck/ckpt-16" ] || fail "no checkpoint at step 16 appeared"
kill -KILL $(pgrep -P "$pid") "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
pid=
[ ! -e "$work/p.bin" ] || fail "the run finished before it was killed (too fast to test an interruption)"
last=$(cat "$work/ck/latest")
echo "killed after $last"

"$mpiexec" -np "$np" "$bin" "${args[@]}" --trace "$work/t.h5" --checkpoint "$work/ck" --resume \
  --save-params "$work/p.bin" >"$work/resumed.txt" 2>&1 || fail "resumed run: status $?"
cmp "$work/ref.bin" "$work/p.bin" || fail "final parameters differ from the uninterrupted run's"
"$py" "$here/train_check_trace.py" "$work/t.h5" --ranks "$np" --compare "$work/ref.h5" || fail "traces differ"
echo "ok: resumed from $last; parameters and trace equal the uninterrupted run's"
