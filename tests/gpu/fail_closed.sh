#!/usr/bin/env bash
# Proves that the GPU tests fail closed (docs/gpu.md, "Tests"), through CTest itself: on a machine
# without a GPU, a GPU case (a gtest case of sparcol_gpu_tests, an MPI case of sparcol_gpu_comm_tests,
# a script test) is reported as skipped, never as passed, and with SPARCOL_REQUIRE_GPU=1 as failed.
# With a GPU present there is nothing to prove here (exit 77, skipped); the suite itself runs.
# Usage: fail_closed.sh CTEST BUILD_DIR TEST_NAME...
set -uo pipefail
ctest=$1
build=$2
shift 2
log=$(mktemp)
# The inner CTest runs from a directory of its own that includes the build's tests, so that its logs
# (Testing/) do not overwrite those of the CTest run this test is part of.
proj=$(mktemp -d)
trap 'rm -rf "$log" "$proj"' EXIT
echo "subdirs(\"$(cd "$build" && pwd)\")" >"$proj/CTestTestfile.cmake"

# verdict unset|set NAME: runs one test by exact name under CTest, without SPARCOL_REQUIRE_GPU or with
# it set to 1; prints CTest's verdict: Passed, Skipped, Failed or Missing.
verdict() {
  local env_args=(-u SPARCOL_REQUIRE_GPU)
  [ "$1" = set ] && env_args=(SPARCOL_REQUIRE_GPU=1)
  (cd "$proj" && env "${env_args[@]}" "$ctest" -R "^$2\$" --output-on-failure) >"$log" 2>&1
  if grep -q "No tests were found" "$log"; then echo Missing
  elif grep -qE "Test +#[0-9]+: .*\*\*\*Skipped" "$log"; then echo Skipped
  elif grep -qE "Test +#[0-9]+: .* Passed" "$log"; then echo Passed
  else echo Failed
  fi
}

bad=0
for t in "$@"; do
  got=$(verdict unset "$t")
  case $got in
    Passed) echo "a GPU is present ($t passed): nothing to prove here"; exit 77 ;;
    Skipped) echo "ok: $t is reported as skipped without SPARCOL_REQUIRE_GPU" ;;
    *) echo "FAILED: $t without SPARCOL_REQUIRE_GPU: $got, expected Skipped"; cat "$log"; bad=1 ;;
  esac
  got=$(verdict set "$t")
  if [ "$got" = Failed ] && grep -qF "SPARCOL_REQUIRE_GPU is set" "$log"; then
    echo "ok: $t fails with SPARCOL_REQUIRE_GPU=1"
  else
    echo "FAILED: $t with SPARCOL_REQUIRE_GPU=1: $got, expected Failed naming SPARCOL_REQUIRE_GPU"; cat "$log"; bad=1
  fi
done
exit $bad
