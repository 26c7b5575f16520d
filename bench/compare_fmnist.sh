#!/usr/bin/env bash
# The GMC paper's comparison (ALGORITHMS.md 12.3 and 12.5) on Fashion-MNIST with sparcol-train:
#   Table 2 style: non-IID (Dirichlet 0.1), top-k: DGC w/ mfm, DGC w/o mfm, CSER, DEF-A, GMC
#                  (and dense DMSGD as the reference);
#   Table 4 style: RBGS, DEF-A (alpha 0.3) vs GMC+ (alpha 0.5), IID and non-IID.
# Every run uses the paper's protocol (--preset gmc-paper: momentum 0.9, weight decay 1e-4, cosine,
# batch 16 per worker, top-k density 0.25%) with RBGS at density 1/64 (ALGORITHMS.md 12.1 [P]).
# Writes into OUT (default results/compare): one trace per run (<table>-<run>.h5) with its log (.txt),
# table.md (final test accuracy and RCC per run, with the command) and compare-<table>.png.
#
# Usage: bench/compare_fmnist.sh [--model mlp|cnn] [--epochs E] [--ranks K] [--bin DIR] [--out DIR]
#                                [--only topk|rbgs] [--extra "FLAGS"]
# The defaults (mlp, 5 epochs, 4 ranks) take about 15 minutes on a loaded 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
model=mlp
epochs=5
ranks=4
bin=${SPARCOL_BUILD_DIR:-build}/bin
out=results/compare
only=
extra=
while [ $# -gt 0 ]; do
  case $1 in
    --model) model=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --extra) extra=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "compare_fmnist.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -x "$bin/sparcol-train" ] || { echo "compare_fmnist.sh: no $bin/sparcol-train (build it, or pass --bin)" >&2; exit 2; }
py=/usr/bin/python3
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
command_line="bench/compare_fmnist.sh --model $model --epochs $epochs --ranks $ranks${only:+ --only $only}${extra:+ --extra \"$extra\"}"
rbgs_density=0.015625
noniid=(--partition dirichlet --dirichlet-alpha 0.1)

# run TABLE NAME FLAGS...: one training run, its trace and log in OUT.
run() {
  local table=$1 name=$2
  shift 2
  echo "== $table/$name: $*"
  # shellcheck disable=SC2086  # $extra holds several flags
  mpirun -np "$ranks" --oversubscribe "$bin/sparcol-train" --preset gmc-paper --model "$model" --epochs "$epochs" \
    --trace "$out/$table-$name.h5" --overwrite --progress-every 1000 "$@" $extra >"$out/$table-$name.txt" 2>&1 ||
    { echo "compare_fmnist.sh: run $table/$name failed (see $out/$table-$name.txt)" >&2; exit 1; }
  tail -n 1 "$out/$table-$name.txt"
}

if [ "$only" != rbgs ]; then
  run topk dmsgd --optimizer dmsgd "${noniid[@]}"
  run topk dgc-mfm --optimizer dgc-mfm --compressor topk "${noniid[@]}"
  run topk dgc --optimizer dgc --compressor topk "${noniid[@]}"
  run topk cser --optimizer cser --compressor topk "${noniid[@]}"
  run topk def-a --optimizer def-a --compressor topk "${noniid[@]}"
  run topk gmc --optimizer gmc --compressor topk "${noniid[@]}"
fi
if [ "$only" != topk ]; then
  run rbgs def-a-iid --optimizer def-a --compressor rbgs --density "$rbgs_density" --alpha 0.3
  run rbgs gmc-plus-iid --optimizer gmc-plus --compressor rbgs --density "$rbgs_density" --alpha 0.5
  run rbgs def-a-noniid --optimizer def-a --compressor rbgs --density "$rbgs_density" --alpha 0.3 "${noniid[@]}"
  run rbgs gmc-plus-noniid --optimizer gmc-plus --compressor rbgs --density "$rbgs_density" --alpha 0.5 "${noniid[@]}"
fi

"$py" - "$out" "$command_line" <<'EOF'
import glob
import os
import sys

import h5py

out, command = sys.argv[1], sys.argv[2]
names = {"dmsgd": "DMSGD (dense)", "dgc-mfm": "DGC w/ mfm", "dgc": "DGC w/o mfm", "cser": "CSER", "def-a": "DEF-A",
         "gmc": "GMC", "gmc-plus": "GMC+"}
lines = [f"Command: `{command}`", ""]
for table, title in (("topk", "Non-IID (Dirichlet 0.1), top-k (GMC paper Table 2 style)"),
                     ("rbgs", "RBGS, DEF-A (alpha 0.3) vs GMC+ (alpha 0.5) (GMC paper Table 4 style)")):
    paths = sorted(glob.glob(os.path.join(out, f"{table}-*.h5")), key=os.path.getmtime)
    if not paths:
        continue
    lines += [f"### {title}", "",
              "| method | data | compressor | density | final test acc | best test acc | final train loss | RCC | time |",
              "|---|---|---|---|---|---|---|---|---|"]
    for p in paths:
        with h5py.File(p, "r") as f:
            a = f.attrs
            acc = f["eval/test_accuracy"][:]
            tl = f["eval/train_loss"][:]
            part = a["partition"].decode() if isinstance(a["partition"], bytes) else str(a["partition"])
            data = "IID" if part == "iid" else f"{part} {float(a['dirichlet_alpha']):g}"
            opt = a["optimizer"].decode() if isinstance(a["optimizer"], bytes) else str(a["optimizer"])
            comp = a["compressor"].decode() if isinstance(a["compressor"], bytes) else str(a["compressor"])
            alpha = f" (alpha {float(a['alpha']):g})" if opt in ("def-a", "gmc-plus") else ""
            lines.append(f"| {names.get(opt, opt)}{alpha} | {data} | {comp} | {float(a['density']):g} | "
                         f"{100 * acc[-1]:.2f}% | {100 * acc.max():.2f}% | {tl[-1]:.4f} | "
                         f"{100 * float(a['rcc']):.3f}% | {float(a['wall_time_s']):.0f} s |")
    lines.append("")
with open(os.path.join(out, "table.md"), "w") as f:
    f.write("\n".join(lines))
print("\n".join(lines))
EOF
for table in topk rbgs; do
  traces=$(ls -tr "$out"/$table-*.h5 2>/dev/null || true)
  [ -n "$traces" ] || continue
  # shellcheck disable=SC2086  # one argument per trace
  "$py" bench/plot_train.py "$out/compare-$table.png" $traces --title "Fashion-MNIST, $model, $ranks ranks: $table"
done
