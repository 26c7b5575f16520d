#!/usr/bin/env bash
# Time to accuracy on an emulated slow network: dense DMSGD against GMC (top-k) and GMC+ (RBGS) on
# the CNN, each run inside scripts/slownet.sh, then test accuracy against wall-clock time.
#
# Usage: bench/time_to_accuracy.sh [options]
#   --bin DIR          directory of sparcol-train (default build/bin)
#   --out DIR          results (default results/time_to_accuracy)
#   --rate R           emulated network (default 1gbit; "shm" runs on shared memory instead)
#   --ranks P          workers (default 4)
#   --model M          trainer --model (default cnn)
#   --epochs E         epochs of every run (default 3)
#   --batch B          minibatch per rank (default 16)
#   --lr LR            initial learning rate, cosine schedule (default 0.05)
#   --density RHO      density of the compressed methods (default 0.01)
#   --methods LIST     methods, each OPTIMIZER[:COMPRESSOR][:FLAG=VALUE...] (default "dmsgd gmc:topk
#                      gmc-plus:rbgs"); COMPRESSOR none or absent: no --compressor/--density (the
#                      methods without one refuse them); FLAG=VALUE adds --FLAG VALUE to that method
#                      only, e.g. "local-sgd:period=8 cocod-sgd:period=8 vrl-sgd:period=8:momentum=0"
#   --eval-every N     evaluate every N steps (default: 8 evaluations per epoch)
#   --repeats N        runs of every method, interleaved (default 1)
#   --train-args "..." extra sparcol-train flags
#   --resume           keep finished runs already in OUT
# Writes OUT/tta-<optimizer>-<compressor>[-<flag><value>...]-r<R>.h5 (traces) and .txt (logs), OUT/setup.txt, and
# through bench/plot_scaling.py --tta: OUT/time_to_accuracy.png and OUT/time_to_accuracy.md (the time
# each method reaches dense's final accuracy). Needs root for the emulated network.
# Every method runs with the same seed, data, schedule and network; runs are interleaved method by
# method so that load from other users of the machine spreads over all methods alike.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bin=build/bin out=results/time_to_accuracy rate=1gbit ranks=4 model=cnn epochs=3 batch=16 lr=0.05
density=0.01 methods="dmsgd gmc:topk gmc-plus:rbgs" eval_every="" repeats=1 train_args="" resume=0
die() {
  echo "time_to_accuracy: error: $*" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --lr) lr=$2; shift 2 ;;
    --density) density=$2; shift 2 ;;
    --methods) methods=$2; shift 2 ;;
    --eval-every) eval_every=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --train-args) train_args=$2; shift 2 ;;
    --resume) resume=1; shift ;;
    -h | --help) sed -n '/^# Usage:/,/^# Every method/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[ -x "$bin/sparcol-train" ] || die "missing binary $bin/sparcol-train (build it, or pass --bin DIR)"
[[ "$ranks" =~ ^[1-9][0-9]*$ ]] || die "--ranks must be a positive integer"
[[ "$batch" =~ ^[1-9][0-9]*$ ]] || die "--batch must be a positive integer"
[[ "$repeats" =~ ^[1-9][0-9]*$ ]] || die "--repeats must be a positive integer"
# One method spec -> its run name (tta-NAME-rR) and its flags, in the globals m_name and m_flags.
parse_method() {
  local spec=$1 opt comp="" part
  local -a parts
  IFS=: read -r -a parts <<<"$spec"
  opt=${parts[0]}
  [[ "$opt" =~ ^[a-z0-9-]+$ ]] || die "--methods holds '$spec': '$opt' is not an optimizer name"
  m_name=$opt
  m_flags=(--optimizer "$opt")
  for part in "${parts[@]:1}"; do
    if [[ "$part" == *=* ]]; then
      [[ "${part%%=*}" =~ ^[a-z0-9-]+$ && -n "${part#*=}" ]] ||
        die "--methods holds '$spec': '$part' is not FLAG=VALUE"
      m_flags+=("--${part%%=*}" "${part#*=}")
      m_name+="-${part%%=*}${part#*=}"
    elif [ -z "$comp" ]; then
      comp=$part
    else
      die "--methods holds '$spec': a second compressor '$part' (expected OPTIMIZER[:COMPRESSOR][:FLAG=VALUE...])"
    fi
  done
  if [ -n "$comp" ] && [ "$comp" != none ]; then
    m_flags+=(--compressor "$comp" --density "$density")
    m_name="$opt-$comp${m_name#"$opt"}"
  else
    m_name="$opt-none${m_name#"$opt"}"
  fi
}
for m in $methods; do parse_method "$m"; done
if [ -z "$eval_every" ]; then
  # Fashion-MNIST has 60000 training samples; 8 evaluations per epoch give the curve its shape.
  eval_every=$((60000 / (ranks * batch) / 8))
  [ "$eval_every" -ge 1 ] || eval_every=1
fi
bin=$(cd "$bin" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

{
  echo "# bench/time_to_accuracy.sh, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "rate=$rate ranks=$ranks model=$model epochs=$epochs batch=$batch lr=$lr density=$density"
  echo "methods=$methods eval_every=$eval_every repeats=$repeats train_args=$train_args"
} >"$out/setup.txt"

start=$(date +%s)
for r in $(seq 1 "$repeats"); do
  for m in $methods; do
    parse_method "$m"
    name="tta-$m_name-r$r"
    if [ "$resume" -eq 1 ] && [ -e "$out/$name.done" ]; then
      continue
    fi
    rm -f "$out/$name.done"
    echo "== repeat $r/$repeats: $m on $rate, $ranks ranks (load: $(cut -d' ' -f1-3 /proc/loadavg))"
    cmd=(mpirun -np "$ranks" --oversubscribe "$bin/sparcol-train" --model "$model" "${m_flags[@]}"
      --epochs "$epochs" --batch "$batch" --lr "$lr"
      --schedule cosine --eval-every "$eval_every" --seed 1 --trace "$out/$name.h5" --overwrite)
    # shellcheck disable=SC2206  # train_args holds several flags
    cmd+=($train_args)
    t0=$(date +%s)
    if [ "$rate" = shm ]; then
      "${cmd[@]}" >"$out/$name.txt" 2>&1 || die "$name failed: $(tail -5 "$out/$name.txt")"
    else
      bash "$root/scripts/slownet.sh" --rate "$rate" -- "${cmd[@]}" >"$out/$name.txt" 2>&1 ||
        die "$name failed: $(tail -5 "$out/$name.txt")"
    fi
    touch "$out/$name.done"
    echo "   $(grep -E '^done:' "$out/$name.txt" || true) [$(($(date +%s) - t0)) s]"
  done
done
echo "measured in $(($(date +%s) - start)) s"
/usr/bin/python3 "$root/bench/plot_scaling.py" --tta --network "$([ "$rate" = shm ] && echo "shared memory" || echo "$rate emulated network")" --out "$out" "$out"
