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
     (cd "$scratch/build" && ./sparcol_consumer); then
    echo "consumer test: passed"
  else
    cat "$scratch"/*.log || true
    echo "consumer test: FAILED"
    status=1
  fi
  # The installed Python package (when the build has it): importable from the prefix alone.
  if grep -q '^SPARCOL_PYTHON_INSTALL_DIR:' "$build_dir/CMakeCache.txt" && [ -d "$build_dir/python/sparcol" ]; then
    pydir=$(sed -n 's/^SPARCOL_PYTHON_INSTALL_DIR:[A-Z]*=//p' "$build_dir/CMakeCache.txt")
    if (cd "$scratch" && PYTHONPATH="$scratch/prefix/$pydir" /usr/bin/python3 -c \
        'import sparcol, sparcol.torch, sys; assert sparcol.__file__.startswith(sys.argv[1]); print("installed Python package:", sparcol.__file__)' \
        "$scratch/prefix" 2>"$scratch/python.log"); then
      echo "python install test: passed"
    else
      cat "$scratch/python.log"
      echo "python install test: FAILED"
      status=1
    fi
  fi
fi
# The sanitizer pass: the whole suite at small sizes under AddressSanitizer and
# UndefinedBehaviorSanitizer (clang, CUDA off), plus the libFuzzer targets for a bounded time.
# SPARCOL_SANITIZE_PASS=0 skips it (it doubles the build time).
if [ $# -eq 0 ] && [ "${SPARCOL_SANITIZE_PASS:-1}" != 0 ]; then
  echo "== sanitizers: ASan + UBSan (clang), small sizes; fuzz targets"
  export SPARCOL_TEST_SMALL=1
  asan_dir=${SPARCOL_ASAN_BUILD_DIR:-build-asan}
  CC=clang CXX=clang++ SPARCOL_BUILD_DIR=$asan_dir bash scripts/build.sh -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSPARCOL_SANITIZE=ON -DSPARCOL_FUZZ=ON -DSPARCOL_ENABLE_CUDA=OFF -DSPARCOL_BUILD_BENCH=OFF
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  export LSAN_OPTIONS=suppressions=$root/tests/lsan.supp:print_suppressions=0
  # LeakSanitizer cannot run beside Open MPI's runtime (its tracer crashes), so leaks are checked in
  # the programs that do not start MPI: the unit and threads-as-ranks suites.
  (cd "$asan_dir" && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure --timeout 900 -j 2 -L "unit|coll") ||
    status=1
  (cd "$asan_dir" && ASAN_OPTIONS=detect_leaks=0 ctest --output-on-failure --timeout 900 -j 2 \
    -LE "unit|coll|slurm|slownet|faults") || status=1
fi
exit $status
