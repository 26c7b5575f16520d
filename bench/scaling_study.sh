#!/usr/bin/env bash
# Scaling study on this machine: sparcol-bench (and optionally sparcol-train) swept over ranks,
# densities and operations, on the normal network (shared memory) and on emulated slow networks
# (scripts/slownet.sh), repeated; then the cost model and the plots.
#
# Usage: bench/scaling_study.sh [options]
#   --bin DIR          sparcol-bench / sparcol-train directory (default build/bin)
#   --out DIR          results (default results/scaling); one subdirectory per network
#   --ranks LIST       worker counts (default "1 2 4 8")
#   --densities LIST   densities of the compressed operations (default "0.001 0.01 0.1")
#   --nets LIST        networks: shm (Open MPI's default, shared memory), tcp (TCP over an unlimited
#                      loopback), or a tc rate such as 1gbit, 10gbit (default "shm 1gbit 10gbit")
#   --latency T        queue of the emulated networks (scripts/slownet.sh --latency; default 200ms)
#   --repeats N        runs of every point; the analysis takes the median (default 3)
#   --resume           keep the runs already finished in OUT (marked by a .done file)
#   --minbytes S, --maxbytes S, --stepfactor F   the size sweep (default 1M, 64M, 4)
#   --slow-maxbytes S  largest size on rate-limited networks below 10 Gbit/s (default 16M)
#   --iters N, --warmup N   timed and warm-up runs per point (default 10, 2)
#   --train            also time training steps: sparcol-train, CNN, batch 16 per rank, dense DMSGD,
#                      GMC (top-k 1%) and GMC+ (RBGS 1%), --train-steps steps each
#   --train-steps N    steps per training run (default 60)
#   --no-analysis      only measure
# Every run's output table is kept beside its HDF5 file. Needs root for the emulated networks.
#
# Layout of OUT (read by bench/cost_model.py and bench/plot_scaling.py):
#   <net>/network.json                       {"label", "kind", "rate_gbits", "lanes", "cores"}
#   <net>/bench-p<P>-dense-r<R>.h5           dense-ring, mpi-allreduce at every size
#   <net>/bench-p<P>-d<D>-r<R>.h5            rbgs, sparse-allgather, mpi-allgatherv at density D
#   <net>/train-p<P>-<opt>-<comp>-r<R>.h5    training traces (--train)
#   analysis/                                cost model tables and plots
# The dense operations do not depend on the density, so they are timed once per (net, P, repeat).
# The density runs pass --no-xref: their reference (MPI_Allreduce of the whole vector) is the
# mpi-allreduce row of the dense run at the same P and size, which bench/plot_scaling.py uses.
# A dense all-reduce of 64 MiB still takes seconds below 10 Gbit/s: those networks use a smaller
# largest size (--slow-maxbytes).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bin=build/bin out=results/scaling ranks="1 2 4 8" densities="0.001 0.01 0.1" nets="shm 1gbit 10gbit"
latency=200ms resume=0 repeats=3 minbytes=1M maxbytes=64M factor=4 slow_maxbytes=16M iters=10 warmup=2 train=0 train_steps=60
analysis=1
die() {
  echo "scaling_study: error: $*" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --densities) densities=$2; shift 2 ;;
    --nets) nets=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --latency) latency=$2; shift 2 ;;
    --resume) resume=1; shift ;;
    --minbytes) minbytes=$2; shift 2 ;;
    --maxbytes) maxbytes=$2; shift 2 ;;
    --stepfactor) factor=$2; shift 2 ;;
    --slow-maxbytes) slow_maxbytes=$2; shift 2 ;;
    --iters) iters=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --train) train=1; shift ;;
    --train-steps) train_steps=$2; shift 2 ;;
    --no-analysis) analysis=0; shift ;;
    -h | --help) sed -n '/^# Usage:/,/^# Every run/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[ -x "$bin/sparcol-bench" ] || die "missing binary $bin/sparcol-bench (build it, or pass --bin DIR)"
[ "$train" -eq 0 ] || [ -x "$bin/sparcol-train" ] || die "missing binary $bin/sparcol-train (--train)"
[[ "$repeats" =~ ^[1-9][0-9]*$ ]] || die "--repeats must be a positive integer"
for p in $ranks; do [[ "$p" =~ ^[1-9][0-9]*$ ]] || die "--ranks holds '$p'"; done
bin=$(cd "$bin" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cores=$(nproc)

# Sizes as bytes, for the "slow network" cap.
to_bytes() {
  local v=$1
  case "$v" in
    *K) echo $((${v%K} * 1024)) ;; *M) echo $((${v%M} * 1048576)) ;; *G) echo $((${v%G} * 1073741824)) ;;
    *) echo "$v" ;;
  esac
}
rate_gbits() {  # 1gbit -> 1, 500mbit -> 0.5
  /usr/bin/python3 -c "
import re, sys
m = re.fullmatch(r'([0-9.]+)([kmgt]?)bit', sys.argv[1].lower())
print(float(m.group(1)) * {'': 1e-9, 'k': 1e-6, 'm': 1e-3, 'g': 1.0, 't': 1e3}[m.group(2)])" "$1"
}

# run_on NET COMMAND...: the command on network NET.
run_on() {
  local net=$1
  shift
  case "$net" in
    shm) "$@" ;;
    tcp) bash "$root/scripts/slownet.sh" --rate none -- "$@" ;;
    *) bash "$root/scripts/slownet.sh" --rate "$net" --latency "$latency" -- "$@" ;;
  esac
}

# measure NET NAME COMMAND...: one run into NET/NAME.{h5,txt}; NET/NAME.done marks success, and
# --resume keeps such runs. A failed run is tried once more: on the shared machine a run can
# die of causes outside it (another user's job killing stray processes); a second failure stops the
# study.
measure() {
  local net=$1 name=$2
  shift 2
  local dir="$out/$net"
  if [ "$resume" -eq 1 ] && [ -e "$dir/$name.done" ] && [ -s "$dir/$name.h5" ]; then
    return 0
  fi
  rm -f "$dir/$name.done"
  local attempt
  for attempt in 1 2; do
    if run_on "$net" "$@" >"$dir/$name.txt" 2>&1; then
      touch "$dir/$name.done"
      return 0
    fi
    echo "   run $net/$name failed (attempt $attempt): $(tail -3 "$dir/$name.txt" | tr '\n' ' ')"
  done
  die "run $net/$name failed twice"
}

declare -A net_max=()
for net in $nets; do
  dir="$out/$net"
  mkdir -p "$dir"
  net_max[$net]=$maxbytes
  case "$net" in
    shm)
      printf '{"label": "shm", "kind": "shm", "rate_gbits": null, "lanes": %d, "cores": %d}\n' "$cores" "$cores" \
        >"$dir/network.json" ;;
    tcp)
      printf '{"label": "tcp", "kind": "tcp", "rate_gbits": null, "lanes": %d, "cores": %d}\n' "$cores" "$cores" \
        >"$dir/network.json" ;;
    *)
      [[ "$net" =~ ^[0-9]+([.][0-9]+)?[kmgt]?bit$ ]] || die "--nets holds '$net': use shm, tcp or a rate like 1gbit"
      gb=$(rate_gbits "$net")
      # One token bucket carries every rank's traffic: a single shared lane.
      printf '{"label": "%s", "kind": "emulated", "rate_gbits": %s, "lanes": 1, "cores": %d, "queue": "%s"}\n' \
        "$net" "$gb" "$cores" "$latency" >"$dir/network.json"
      if /usr/bin/python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < 10 else 1)" "$gb" &&
        (($(to_bytes "$slow_maxbytes") < $(to_bytes "$maxbytes"))); then
        net_max[$net]=$slow_maxbytes
      fi
      ;;
  esac
done

# Repeats outermost, so that every network's repeats spread over the whole study and load that
# drifts over minutes (other users of the machine) spreads over all of them alike.
start=$(date +%s)
for r in $(seq 1 "$repeats"); do
  for net in $nets; do
    for p in $ranks; do
      echo "== repeat $r/$repeats, $net, P=$p (load: $(cut -d' ' -f1-3 /proc/loadavg))"
      sweep=(-b "$minbytes" -e "${net_max[$net]}" -f "$factor" -n "$iters" -w "$warmup")
      measure "$net" "bench-p$p-dense-r$r" mpirun -np "$p" --oversubscribe "$bin/sparcol-bench" "${sweep[@]}" \
        --op dense-ring,mpi-allreduce --h5 "$out/$net/bench-p$p-dense-r$r.h5"
      for d in $densities; do
        measure "$net" "bench-p$p-d$d-r$r" mpirun -np "$p" --oversubscribe "$bin/sparcol-bench" "${sweep[@]}" \
          --op rbgs,sparse-allgather,mpi-allgatherv --density "$d" --no-xref --h5 "$out/$net/bench-p$p-d$d-r$r.h5"
      done
      if [ "$train" -eq 1 ]; then
        for m in dmsgd:none gmc:topk gmc-plus:rbgs; do
          opt=${m%%:*} comp=${m#*:}
          name="train-p$p-$opt-$comp-r$r"
          # dmsgd has no compressor, and sparcol-train refuses --compressor for it (exit 2).
          comp_flags=()
          [ "$comp" = none ] || comp_flags=(--compressor "$comp" --density 0.01)
          # Time per step only: a short run, one evaluation on a few test samples at the end.
          measure "$net" "$name" mpirun -np "$p" --oversubscribe "$bin/sparcol-train" --model cnn --optimizer "$opt" \
            "${comp_flags[@]}" --batch 16 --lr 0.05 --max-steps "$train_steps" --eval-every 0 \
            --test-samples 500 --progress-every 0 --overwrite --trace "$out/$net/$name.h5"
        done
      fi
    done
  done
done
echo "measured in $(($(date +%s) - start)) s"

if [ "$analysis" -eq 1 ]; then
  dirs=()
  for net in $nets; do dirs+=("$out/$net"); done
  /usr/bin/python3 "$root/bench/cost_model.py" --out "$out/analysis" "${dirs[@]}"
  /usr/bin/python3 "$root/bench/plot_scaling.py" --out "$out/analysis" "${dirs[@]}"
fi
