#!/usr/bin/env bash
# Configures and builds sparcol in ./build (or $SPARCOL_BUILD_DIR). Extra arguments go to CMake.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${SPARCOL_BUILD_DIR:-build}
jobs=${SPARCOL_JOBS:-$(nproc)}
mkdir -p "$build_dir"
log="$build_dir/configure.log"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DSPARCOL_WERROR=ON "$@" >"$log" 2>&1 || { cat "$log"; exit 1; }
grep -E '^-- (sparcol|  \[)' "$log" || true
cmake --build "$build_dir" -j "$jobs"
