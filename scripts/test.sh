#!/usr/bin/env bash
# Sets up, builds and runs every test: unit, loopback collectives, MPI (1-8 ranks), programs,
# and a separate project that consumes the installed CMake package.
# Usage: scripts/test.sh [ctest arguments...]     e.g. scripts/test.sh -L unit
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# Slurm packages: the local-cluster test of the sbatch scripts (tests/suites/slurm.cmake).
bash scripts/setup.sh munge slurmctld slurmd slurm-client
bash scripts/build.sh

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
build_dir=${SPARCOL_BUILD_DIR:-build}
status=0
(cd "$build_dir" && ctest --output-on-failure --timeout 600 -j "${SPARCOL_TEST_JOBS:-2}" "$@") || status=$?

# The installed package: install into a scratch prefix and build a tiny consumer project against it.
if [ $# -eq 0 ]; then
  echo "== find_package(sparcol) consumer test"
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  cmake --install "$build_dir" --prefix "$scratch/prefix" >/dev/null
  if cmake -S tests/consumer -B "$scratch/build" -DCMAKE_PREFIX_PATH="$scratch/prefix" >"$scratch/configure.log" 2>&1 &&
     cmake --build "$scratch/build" -j 2 >"$scratch/build.log" 2>&1 &&
     "$scratch/build/sparcol_consumer"; then
    echo "consumer test: passed"
  else
    cat "$scratch"/*.log || true
    echo "consumer test: FAILED"
    status=1
  fi
fi
exit $status
