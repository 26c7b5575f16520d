# The one place where a GPU test script decides between skipping and failing (docs/gpu.md, "Tests");
# sourced by the scripts of tests/gpu. gpu_skip REASON: without SPARCOL_REQUIRE_GPU (or with it "0")
# prints "skipped: REASON" and exits 77, which CTest reports as skipped (SKIP_RETURN_CODE 77); with
# SPARCOL_REQUIRE_GPU=1 prints the reason as a failure and exits 1.
gpu_skip() {
  if [ -n "${SPARCOL_REQUIRE_GPU:-}" ] && [ "${SPARCOL_REQUIRE_GPU}" != 0 ]; then
    echo "FAILED: SPARCOL_REQUIRE_GPU is set, but this test cannot run: $*"
    exit 1
  fi
  echo "skipped: $*"
  exit 77
}
