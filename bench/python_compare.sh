#!/usr/bin/env bash
# The measurements of docs/results.md, "sparcol from PyTorch", side by side in one run: the
# Fashion-MNIST example with sparcol's dense method and GMC at 1% (full runs, accuracy), the time and
# bytes per step of DDP with gloo, torch's PowerSGD hook and each sparcol hook (--steps steps each),
# then bench_hooks.py (the hooks against the bare collectives on the example's bucket sizes).
# Usage: bench/python_compare.sh [OUT_DIR] [RANKS] [EPOCHS] [STEPS]    (defaults: results/python 4 2 150)
# Environment: SPARCOL_BUILD_DIR (default build), as for the example.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-results/python}
np=${2:-4}
epochs=${3:-2}
steps=${4:-150}
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
run() {  # run NAME ARGS...
  local name=$1
  shift
  echo "== $name: $*"
  mpirun -np "$np" /usr/bin/python3 python/examples/train_fmnist.py --json "$out/$name.json" "$@" 2>&1 |
    grep -v '^$' | tee "$out/$name.log" | grep -E '^(#|epoch)'
}
echo "# start $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
run dense --method dmsgd --epochs "$epochs"
run gmc --method gmc --density 0.01 --epochs "$epochs"
for h in gloo powersgd dense topk rbgs sign; do
  run "ddp-$h" --ddp "$h" --density 0.01 --max-steps "$steps"
done
echo "== bench_hooks"
mpirun -np "$np" /usr/bin/python3 python/examples/bench_hooks.py --density 0.01 2>&1 | grep -v '^$' |
  tee "$out/bench_hooks.log" | grep -v '^--' || true
echo "# end $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 - "$out" <<'PY'
import json, os, sys
d = sys.argv[1]
print("| run | steps | test accuracy (%) | time/step (ms, mean) | median (ms) | bytes sent/step (rank 0) |")
print("|---|---:|---:|---:|---:|---:|")
for name in ["dense", "gmc"] + [f"ddp-{h}" for h in ("gloo", "powersgd", "dense", "topk", "rbgs", "sign")]:
    p = os.path.join(d, name + ".json")
    if not os.path.exists(p):
        continue
    s = json.load(open(p))
    print(f"| {s['config']} | {s['steps']} | {s['test_accuracy']:.2f} | {s['time_per_step_ms']:.1f} | "
          f"{s['median_step_ms']:.1f} | {s['steady_bytes_per_step']:,.0f} |")
PY
