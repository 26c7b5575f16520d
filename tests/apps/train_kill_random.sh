#!/usr/bin/env bash
# sparcol-train killed with SIGKILL at random times (docs/reliability.md, "Checkpoints and traces
# under faults"). Each trial starts a small 2-rank run with frequent checkpoints and trace flushes,
# kills every process of the job (mpirun and its ranks) after a random delay, then checks:
#   * nothing of the job survives the kill;
#   * the latest checkpoint loads and --resume completes the run, ending with bitwise the parameters
#     of an uninterrupted reference run, and a trace equal to the reference's except for the timing
#     columns; a kill before the first checkpoint must make --resume fail with
#     "no checkpoint" (exit 3), and a fresh start must then complete the run the same way;
#   * a copy of the latest checkpoint with one rank file truncated and the other's bit flipped at a
#     random place is refused by every rank (exit 3, naming truncation and the checksum), never loaded;
#   * the trace left by the kill opens and holds exactly the reference's rows up to a flush step, at
#     least up to the latest checkpoint (tests/apps/train_kill_check.py).
# The delays are drawn from a seed (printed; SPARCOL_KILL_SEED=N repeats a run).
# Usage: train_kill_random.sh SPARCOL_TRAIN MPIEXEC [TRIALS]
set -uo pipefail
bin=$1
mpiexec=$2
trials=${3:-20}
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
work=$(mktemp -d)
job=

# Every process of the job: the launcher runs in its own session (setsid), and its ranks stay in that
# session even when the launcher is gone. Kill until none is left.
kill_job() {
  local sid=$1 left
  for _ in $(seq 100); do
    # Zombies are dead already (they wait for their parent to collect them).
    left=$( (ps -o pid=,stat= -s "$sid"; ps -o pid=,stat= -p "$sid") 2>/dev/null | awk '$2 !~ /^Z/ {print $1}' | sort -u)
    [ -z "$left" ] && return 0
    kill -KILL $left 2>/dev/null
    sleep 0.02
  done
  return 1
}
cleanup() {
  [ -n "$job" ] && kill_job "$job"
  rm -rf "$work"
}
trap cleanup EXIT
# The failing trial's outputs ($d) and the reference's.
d=
fail() {
  echo "FAILED: $*"
  for f in "$work"/ref.txt ${d:+"$d"/*.txt}; do [ -f "$f" ] && { echo "--- $f"; tail -8 "$f"; }; done
  exit 1
}

seed=${SPARCOL_KILL_SEED:-$(( $(date +%s%N) % 1000000 ))}
echo "seed $seed (SPARCOL_KILL_SEED=$seed repeats this run), $trials trials"
RANDOM=$seed

"$py" "$here/train_make_idx.py" "$work/data" --train 512 --test 64 || fail "cannot generate the data"
# 2 ranks x batch 16 on 512 samples: 16 steps per epoch, 32 steps. Flushes at every evaluation (5),
# epoch end (16) and checkpoint (4), so a kill finds a recent flush and a recent checkpoint.
delay=20
args=(--data "$work/data" --model mlp --optimizer gmc --compressor topk --density 0.02 --batch 16 --epochs 2
  --eval-every 5 --checkpoint-every 4 --keep-checkpoints 2 --progress-every 0 --quiet)
run() { "$mpiexec" -np 2 "$bin" "${args[@]}" "$@"; }
# A job whose ranks all exit with an error (the damaged checkpoint below) ends at once instead of
# after Open MPI's grace period before it kills the ranks (1 s): they are gone already.
export OMPI_MCA_odls_base_sigkill_timeout=0

# The reference, throttled like the killed runs: its duration bounds the random kill times.
t0=$(date +%s%N)
run --trace "$work/ref.h5" --checkpoint "$work/ck-ref" --save-params "$work/ref.bin" --step-delay $delay \
  >"$work/ref.txt" 2>&1 || fail "uninterrupted run: status $?"
span_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "reference run: ${span_ms} ms; kill times drawn from [0, $((span_ms + 100))] ms"

none=0 finished=0 resumed=0
for i in $(seq "$trials"); do
  d=$work/trial-$i
  mkdir -p "$d"
  kill_ms=$(( (RANDOM * 32768 + RANDOM) % (span_ms + 101) ))
  # The job in its own session; a wrapper waits for it, so that the shell's "Killed" notice goes nowhere.
  (
    setsid "$mpiexec" -np 2 "$bin" "${args[@]}" --trace "$d/t.h5" --checkpoint "$d/ck" --save-params "$d/p.bin" \
      --step-delay $delay >"$d/killed.txt" 2>&1 &
    echo $! >"$d/sid"
    wait
  ) 2>/dev/null &
  wrapper=$!
  sleep "$(printf '%d.%03d' $((kill_ms / 1000)) $((kill_ms % 1000)))"
  for _ in $(seq 500); do [ -s "$d/sid" ] && break; sleep 0.01; done
  job=$(cat "$d/sid") || fail "trial $i: the job did not start"
  kill_job "$job" || fail "trial $i: processes of the job survive SIGKILL"
  wait "$wrapper"
  job=
  [ -f "$d/t.h5" ] && cp "$d/t.h5" "$d/killed.h5"
  # What --resume will take: `latest`, or the newest ckpt-<step> when the kill came between renaming
  # a checkpoint into place and updating `latest` (docs/train.md).
  latest=none
  [ -f "$d/ck/latest" ] && [ -d "$d/ck/$(cat "$d/ck/latest")" ] && latest=$(cat "$d/ck/latest")
  if [ "$latest" = none ] && [ -d "$d/ck" ]; then
    newest=$(ls "$d/ck" | grep -E '^ckpt-[0-9]+$' | sort -t- -k2 -n | tail -1)
    [ -n "$newest" ] && latest=$newest
  fi
  echo "$latest" >"$d/latest"
  what="killed at ${kill_ms} ms, latest checkpoint: $latest"

  if [ -e "$d/p.bin" ]; then
    # The run ended before the kill: a resume has nothing to do and succeeds.
    finished=$((finished + 1))
    run --trace "$d/t.h5" --checkpoint "$d/ck" --resume >"$d/resumed.txt" 2>&1 ||
      fail "trial $i ($what): resume of a finished run: status $?"
  elif [ "$latest" = none ]; then
    # Killed before the first checkpoint: nothing to resume (docs/train.md), a fresh start instead.
    none=$((none + 1))
    run --trace "$d/t.h5" --checkpoint "$d/ck" --resume >"$d/resumed.txt" 2>&1
    rc=$?
    [ $rc -eq 3 ] || fail "trial $i ($what): --resume without a checkpoint: status $rc, expected 3"
    grep -qE "no checkpoint in|checkpoint directory .* does not exist" "$d/resumed.txt" ||
      fail "trial $i ($what): --resume without a checkpoint does not say so"
    run --trace "$d/t.h5" --overwrite --checkpoint "$d/ck" --save-params "$d/p.bin" >"$d/fresh.txt" 2>&1 ||
      fail "trial $i ($what): fresh start after the kill: status $?"
  else
    resumed=$((resumed + 1))
    # A damaged copy of the latest checkpoint: rank a's file cut short, rank b's with one bit flipped.
    bad=$d/bad/$latest
    mkdir -p "$bad"
    cp "$d/ck/$latest"/rank-*.bin "$bad/"
    a=$((RANDOM % 2))
    b=$((1 - a))
    size=$(stat -c %s "$bad/rank-$a.bin")
    truncate -s $(( (RANDOM * 32768 + RANDOM) % size )) "$bad/rank-$a.bin"
    size=$(stat -c %s "$bad/rank-$b.bin")
    off=$(( (RANDOM * 32768 + RANDOM) % size ))
    byte=$(od -An -tu1 -j "$off" -N1 "$bad/rank-$b.bin" | tr -d ' ')
    printf "\\$(printf '%03o' $(( byte ^ (1 << (RANDOM % 8)) )))" |
      dd of="$bad/rank-$b.bin" bs=1 seek="$off" conv=notrunc 2>/dev/null
    run --resume "$bad" --checkpoint "$d/ck-bad" --save-params "$d/bad.bin" >"$d/bad.txt" 2>&1
    rc=$?
    [ $rc -eq 3 ] || fail "trial $i ($what): damaged checkpoint: status $rc, expected 3"
    grep -qE "rank $a: error: checkpoint '.*rank-$a.bin': truncated" "$d/bad.txt" ||
      fail "trial $i ($what): the truncated rank-$a.bin is not named as truncated"
    grep -qE "rank $b: error: checkpoint '.*rank-$b.bin': (header )?checksum mismatch|rank $b: error: checkpoint '.*rank-$b.bin': wrong magic" "$d/bad.txt" ||
      fail "trial $i ($what): the bit flip at byte $off of rank-$b.bin is not named"
    [ ! -e "$d/bad.bin" ] && [ ! -e "$d/ck-bad" ] || fail "trial $i ($what): the damaged checkpoint was loaded"

    run --trace "$d/t.h5" --checkpoint "$d/ck" --resume --save-params "$d/p.bin" >"$d/resumed.txt" 2>&1 ||
      fail "trial $i ($what): resume: status $?"
  fi
  cmp -s "$work/ref.bin" "$d/p.bin" || fail "trial $i ($what): final parameters differ from the uninterrupted run's"
  echo "trial $i: $what: ok"
done
echo "$resumed resumed from a checkpoint, $none killed before the first checkpoint, $finished finished before the kill"
[ "$resumed" -gt 0 ] || fail "no trial was killed after a checkpoint: the kill times do not cover the run"

# Traces: the killed ones (consistent prefixes of the reference up to a flush) and the final ones.
d=
"$py" "$here/train_kill_check.py" "$work" --trials "$trials" --steps-per-epoch 16 --eval-every 5 \
  --checkpoint-every 4 --total-steps 32 || fail "trace checks"
echo "ok: $trials trials"
