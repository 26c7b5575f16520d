#!/usr/bin/env bash
# Runs a test program under mpirun for CTest, so that gtest_discover_tests can register every case of
# an MPI test binary as a test of its own (the launcher is the target's CROSSCOMPILING_EMULATOR).
# Usage: mpi_launch.sh MPIEXEC NUMPROC_FLAG [MPIEXEC_FLAGS...] -- PROGRAM [ARGS...]
# The number of ranks is SPARCOL_TEST_NP (1 when unset, as when gtest_discover_tests lists the cases).
set -u
mpiexec=$1
np_flag=$2
shift 2
flags=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  flags+=("$1")
  shift
done
shift  # the "--"
# Open MPI refuses to run as root without these; oversubscription lets 8 ranks share 2 cores.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# LeakSanitizer cannot run beside Open MPI's runtime (scripts/test.sh checks leaks in the programs
# that do not start MPI); this also covers the listing run of gtest_discover_tests at build time.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
exec "$mpiexec" "$np_flag" "${SPARCOL_TEST_NP:-1}" "${flags[@]}" "$@"
