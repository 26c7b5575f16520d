#!/usr/bin/env bash
# A rank killed (SIGKILL) or stopped (SIGSTOP) in the middle of a run: every other rank must end,
# non-zero, within the timeout + 10 s, and the output must name the operation the survivors were in
# and the failed or silent rank.
# Usage: kill_rank.sh PROGRAM MPIEXEC NP SIGNAL [FLAGS...]
#   PROGRAM sparcol-toy (default flags: --method gmc; it runs --iterations 100000000) or sparcol-train
#   (flags required; it runs a synthetic model for --epochs 100000 without progress lines)
set -uo pipefail
prog=$1 mpiexec=$2 np=$3 sig=$4
shift 4
flags=("$@")
lead=(--iterations 100000000)
case "$(basename "$prog")" in
  sparcol-train*) lead=(--model synthetic --epochs 100000 --progress-every 0) ;;
  *) [ ${#flags[@]} -gt 0 ] || flags=(--method gmc) ;;
esac
timeout_s=4
export SPARCOL_TIMEOUT_S=$timeout_s OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$mpiexec" -np "$np" --oversubscribe "$prog" "${lead[@]}" "${flags[@]}" >"$out" 2>&1 &
launcher=$!
victim_rank=$((np - 1))
victim=""
for _ in $(seq 1 100); do  # wait until every rank runs, then find the victim by its MPI rank
  for pid in $(pgrep -P "$launcher" 2>/dev/null); do
    if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$victim_rank"; then
      victim=$pid
    fi
  done
  [ -n "$victim" ] && [ "$(pgrep -P "$launcher" | wc -l)" -ge "$np" ] && break
  sleep 0.1
done
if [ -z "$victim" ]; then echo "could not find rank $victim_rank"; kill -9 "$launcher"; exit 1; fi
sleep 1.5  # well inside the training loop
start=$(date +%s%N)
kill -"$sig" "$victim"
limit=$((timeout_s + 10))
rc=0
for _ in $(seq 1 $((limit * 10))); do
  kill -0 "$launcher" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$launcher" 2>/dev/null; then
  echo "FAIL: the job still runs $limit s after SIG$sig to rank $victim_rank"
  kill -9 "$victim" 2>/dev/null; kill -9 "$launcher" 2>/dev/null
  cat "$out"; exit 1
fi
wait "$launcher"; rc=$?
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
kill -9 "$victim" 2>/dev/null
echo "SIG$sig to rank $victim_rank of $np: job ended with status $rc after ${elapsed_ms} ms"
grep -E "sparcol: rank|exited on signal|MPI_ABORT" "$out" | head -8
fail=0
[ "$rc" -ne 0 ] || { echo "FAIL: exit status 0"; fail=1; }
# The failed or silent rank is named ...
grep -qE "rank $victim_rank( |\)|,|$)" "$out" || { echo "FAIL: rank $victim_rank is not named"; fail=1; }
# ... and so is the operation the survivors were in.
grep -qE "sparcol: rank [0-9]+: error: (timed out after [0-9.]+ s in [a-z]|terminated by signal [0-9]+ while in [a-z])" "$out" ||
  { echo "FAIL: no survivor names its operation"; fail=1; }
[ $fail -eq 0 ] && echo PASS
exit $fail
