#!/usr/bin/env bash
# The project's sbatch scripts (slurm/) run end to end on a live Slurm cluster: submit with small
# knobs, wait, check exit codes, tables, and HDF5 outputs; plus their bad-input paths.
# Usage: SLURM_CONF=... [SPARCOL_TEST_TRAIN=1] slurm_jobs_test.sh BIN_DIR WORK_DIR
# Normally started by `scripts/slurm-local.sh run-tests`, which brings the cluster up and down.
set -uo pipefail

bin=${1:?usage: slurm_jobs_test.sh BIN_DIR WORK_DIR}
work=${2:?usage: slurm_jobs_test.sh BIN_DIR WORK_DIR}
[ -n "${SLURM_CONF:-}" ] || { echo "slurm_jobs_test: SLURM_CONF is not set (use scripts/slurm-local.sh run-tests)"; exit 2; }
root=$(cd "$(dirname "$0")/../.." && pwd)
train=${SPARCOL_TEST_TRAIN:-0}
py=/usr/bin/python3
deadline_s=${SPARCOL_SLURM_TEST_DEADLINE_S:-210}
mkdir -p "$work"
cd "$work" || exit 2

failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
expect_grep() {  # expect_grep PATTERN FILE WHAT
  grep -qE -- "$1" "$2" || fail "$3: no '$1' in $2"
}

# ------------------------------------------------------------------------------------------------
# 1. Bad input that needs no cluster: a job script outside Slurm, an uneven layout.
# ------------------------------------------------------------------------------------------------
echo "== job scripts outside Slurm"
for s in "$root"/slurm/*.sbatch; do
  out=$(env -u SLURM_JOB_ID bash "$s" 2>&1)
  st=$?
  if [ "$st" -ne 2 ] || ! grep -q "is a Slurm batch script" <<<"$out"; then
    fail "$(basename "$s") outside Slurm: status $st, output: $out"
  fi
done
echo "== 3 tasks on 2 nodes (faked allocation)"
out=$(SLURM_JOB_ID=999 SLURM_JOB_NAME=fake SLURM_NTASKS=3 SLURM_JOB_NUM_NODES=2 SPARCOL_ROOT="$root" \
  SPARCOL_RESULTS="$work/fake" bash "$root/slurm/bench_sweep.sbatch" 2>&1)
st=$?
{ [ "$st" -eq 2 ] && grep -q "3 tasks do not divide evenly over 2 nodes" <<<"$out"; } ||
  fail "uneven layout: status $st, output: $out"
[ ! -e "$work/fake" ] || fail "the uneven layout was refused only after creating its results directory"

# ------------------------------------------------------------------------------------------------
# 2. Jobs on the cluster.
# ------------------------------------------------------------------------------------------------
export SPARCOL_ROOT=$root SPARCOL_BIN=$bin SPARCOL_RESULTS=$work/results
declare -A job_kind=()
submit() {  # submit KIND [VAR=value...] -- SBATCH_ARGS... SCRIPT
  local kind=$1 id
  shift
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  if ! id=$(env "${envs[@]}" sbatch --parsable "$@" 2>&1); then
    fail "sbatch $* refused: $id"
    return
  fi
  id=${id%%;*}
  job_kind[$id]=$kind
  echo "submitted job $id ($kind)"
}

echo "== submitting"
# A sweep, checked results, at two densities, on 4 ranks via srun --mpi=pmix.
submit sweep BENCH_MINBYTES=64K BENCH_MAXBYTES=256K BENCH_STEPFACTOR=4 BENCH_ITERS=3 BENCH_WARMUP=1 \
  BENCH_DENSITIES="0.01 0.1" -- "$root/slurm/bench_sweep.sbatch"
# The documented alternative: Open MPI's mpirun inside the allocation.
submit sweep-mpirun SPARCOL_LAUNCHER=mpirun BENCH_MINBYTES=64K BENCH_MAXBYTES=64K BENCH_ITERS=3 \
  BENCH_WARMUP=1 BENCH_DENSITIES=0.01 -- --job-name=sparcol-bench-mpirun "$root/slurm/bench_sweep.sbatch"
# Worker counts 1, 2, 4 (8 does not fit the 4-task job and must be skipped with a note), with the
# analysis scripts on the outputs.
scaling_env=(SCALING_RANKS="1 2 4 8" SCALING_DENSITIES="0.01" SCALING_MINBYTES=64K SCALING_MAXBYTES=256K
  SCALING_ITERS=3 SCALING_WARMUP=1 SCALING_TRAIN="$train")
if [ "$train" -eq 1 ]; then
  scaling_env+=(SCALING_METHODS="dmsgd:none gmc:topk" SCALING_MODEL=mlp SCALING_EPOCHS=1
    SCALING_TRAIN_ARGS="${SPARCOL_TEST_TRAIN_ARGS:---train-samples 2048 --test-samples 512}")
fi
submit scaling "${scaling_env[@]}" -- "$root/slurm/scaling.sbatch"
train_id=""
if [ "$train" -eq 1 ]; then
  # 16 steps per epoch (2048 samples, 4 ranks x 32): the first job stops after 8 with a checkpoint,
  # the second resumes from it once the first succeeded, and finishes the epoch.
  train_env=(TRAIN_MODEL=mlp TRAIN_EPOCHS=1 TRAIN_BATCH=32 TRAIN_OPTIMIZER=gmc TRAIN_COMPRESSOR=topk
    TRAIN_CHECKPOINT=1)
  train_data="--train-samples 2048 --test-samples 512"
  submit train "${train_env[@]}" TRAIN_ARGS="$train_data --max-steps 8" -- "$root/slurm/train.sbatch"
  for id in "${!job_kind[@]}"; do [ "${job_kind[$id]}" = train ] && train_id=$id; done
  if [ -n "$train_id" ]; then
    submit train-resume "${train_env[@]}" TRAIN_ARGS="$train_data" \
      TRAIN_RESUME="$SPARCOL_RESULTS/sparcol-train-$train_id/checkpoint" -- --dependency=afterok:"$train_id" \
      --job-name=sparcol-train-resume "$root/slurm/train.sbatch"
  fi
fi
# A missing binary: the job must fail at once with a message.
submit missing-binary SPARCOL_BIN="$work/no-such-dir" -- --job-name=sparcol-missing "$root/slurm/bench_sweep.sbatch"
# An impossible request is rejected at submission, not left pending forever.
if out=$(sbatch --parsable -N 2 -n 4 "$root/slurm/bench_sweep.sbatch" 2>&1); then
  fail "sbatch -N 2 on a one-node cluster was accepted (job ${out%%;*})"
  scancel "${out%%;*}" 2>/dev/null
fi

echo "== waiting (at most $deadline_s s)"
start=$(date +%s)
while :; do
  pending=$(squeue -h -o %i 2>/dev/null | wc -l)
  [ "$pending" -eq 0 ] && break
  if (($(date +%s) - start > deadline_s)); then
    fail "jobs still queued or running after $deadline_s s:"
    squeue
    break
  fi
  sleep 0.5
done
echo "jobs finished after $(($(date +%s) - start)) s"

# ------------------------------------------------------------------------------------------------
# 3. Outputs.
# ------------------------------------------------------------------------------------------------
job_field() {  # job_field ID FIELD  (from scontrol show job)
  scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1
}
for id in "${!job_kind[@]}"; do
  kind=${job_kind[$id]}
  name=$(job_field "$id" JobName)
  state=$(job_field "$id" JobState)
  code=$(job_field "$id" ExitCode)
  out="$work/$name-$id.out"
  dir="$SPARCOL_RESULTS/$name-$id"
  echo "== job $id ($kind): $state, exit $code"
  if [ "$kind" = missing-binary ]; then
    [ "$state" = FAILED ] && [ "$code" = "2:0" ] || fail "missing binary: state $state exit $code, expected FAILED 2:0"
    expect_grep "missing binary $work/no-such-dir/sparcol-bench" "$out" "missing binary"
    [ ! -e "$dir" ] || fail "missing binary: the results directory $dir was created anyway"
    continue
  fi
  if [ "$state" != COMPLETED ] || [ "$code" != "0:0" ]; then
    fail "job $id ($kind) ended $state with exit $code"
    [ -r "$out" ] && tail -30 "$out"
    continue
  fi
  [ -s "$dir/job.txt" ] || fail "$kind: no $dir/job.txt"
  expect_grep "OMPI_MCA_mpi_yield_when_idle=1" "$dir/job.txt" "$kind: yield when oversubscribed"
  case "$kind" in
    sweep)
      for d in 0.01 0.1; do
        expect_grep "total wrong: 0 \(OK\)" "$dir/bench-d$d.txt" "sweep d=$d"
        expect_grep "^# ranks 4," "$dir/bench-d$d.txt" "sweep d=$d ranks"
        "$py" "$root/tests/slurm/check_h5.py" bench "$dir/bench-d$d.h5" 4 || fail "sweep d=$d: HDF5 check"
      done
      ;;
    sweep-mpirun)
      expect_grep "total wrong: 0 \(OK\)" "$dir/bench-d0.01.txt" "mpirun sweep"
      "$py" "$root/tests/slurm/check_h5.py" bench "$dir/bench-d0.01.h5" 4 || fail "mpirun sweep: HDF5 check"
      ;;
    scaling)
      expect_grep "skipping P=8: the job has 4 tasks" "$out" "scaling skips P=8"
      for p in 1 2 4; do
        "$py" "$root/tests/slurm/check_h5.py" bench "$dir/bench-p$p-d0.01.h5" "$p" || fail "scaling P=$p: HDF5 check"
        if [ "$train" -eq 1 ]; then
          for m in dmsgd-none gmc-topk; do
            "$py" "$root/tests/slurm/check_h5.py" train "$dir/train-p$p-$m.h5" "$p" || fail "scaling train P=$p $m"
          done
        fi
      done
      [ ! -e "$dir/bench-p8-d0.01.h5" ] || fail "scaling ran P=8 on 4 tasks"
      [ -s "$dir/analysis/cost_model.md" ] || fail "scaling: no analysis/cost_model.md"
      ls "$dir"/analysis/*.png >/dev/null 2>&1 || fail "scaling: no plots in $dir/analysis"
      ;;
    train | train-resume)
      "$py" "$root/tests/slurm/check_h5.py" train "$dir/trace.h5" 4 || fail "$kind: trace check"
      [ -d "$dir/checkpoint" ] && [ -n "$(ls -A "$dir/checkpoint")" ] || fail "$kind: no checkpoint in $dir/checkpoint"
      # The first job ran steps 1-8; the resumed one continued at step 8 and completed the epoch (16),
      # its trace continuing the first one's.
      want=8
      if [ "$kind" = train-resume ]; then
        want=16
        expect_grep "resumed at step 8 from .*/sparcol-train-$train_id/checkpoint" "$dir/train.txt" "resume"
      fi
      got=$("$py" -c 'import h5py, sys; print(int(h5py.File(sys.argv[1], "r").attrs["completed_steps"]))' \
        "$dir/trace.h5" 2>&1)
      [ "$got" = "$want" ] || fail "$kind: completed_steps = $got, expected $want"
      ;;
  esac
done

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed; slurmctld and slurmd logs:"
  tail -n 20 "$(dirname "$SLURM_CONF")"/log/*.log
  exit 1
fi
echo "all Slurm job checks passed"
