#!/usr/bin/env bash
# The main job: sets up, builds, and runs a 4-rank collective benchmark on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
build_dir=${SPARCOL_BUILD_DIR:-build}
mkdir -p results
mpirun -np 4 --oversubscribe "$build_dir/bin/sparcol-bench" -b 1M -e 64M -f 4 --op all --density 0.01 \
  -n 10 -w 3 -c 1 --h5 results/bench.h5
