#!/usr/bin/env bash
# The main job: sets up, builds the trainer, and trains the CNN on Fashion-MNIST on 4 MPI ranks with
# GMC (top-k, 1% density) for 3 epochs. Writes results/train.h5 (the trace, docs/traces.md) and
# results/train.png (its plot). About 5 minutes on a fresh 2-core machine: the packages (~1 min), the
# build of sparcol-train and the libraries it links (~2-3 min), training (~1-2 min).
# Environment: SPARCOL_BUILD_DIR (default build), SPARCOL_JOBS (default: all cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
build_dir=${SPARCOL_BUILD_DIR:-build}
jobs=${SPARCOL_JOBS:-$(nproc)}
mkdir -p "$build_dir"
# The configuration of scripts/build.sh (scripts/test.sh reuses it), but only the trainer is built.
log="$build_dir/configure.log"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DSPARCOL_WERROR=ON >"$log" 2>&1 || { cat "$log"; exit 1; }
grep -E '^-- (sparcol|  \[)' "$log" || true
cmake --build "$build_dir" -j "$jobs" --target sparcol-train

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p results
mpirun -np 4 --oversubscribe "$build_dir/bin/sparcol-train" --model cnn --optimizer gmc --compressor topk \
  --density 0.01 --lr 0.05 --batch 32 --epochs 3 --trace results/train.h5 --overwrite
/usr/bin/python3 bench/plot_train.py results/train.png results/train.h5 \
  --title "sparcol-train: CNN on Fashion-MNIST, 4 ranks, GMC with top-k 1%"
echo "main job done in ${SECONDS} s: results/train.h5, results/train.png"
