# GPU tests (LABELS gpu). The device layer's tests (tests/gpu/test_device.cpp) build in every
# configuration: without a GPU or without CUDA they check that GPU requests fail clearly. The kernel
# tests (tests/gpu/test_kernels.cpp: every kernel against its CPU twin) need the launchers, so they
# build only with CUDA; without a GPU they skip and say why. Both are plain C++ calling the launchers
# of sparcol_cuda, so nvcc is not needed here.
add_executable(sparcol_gpu_tests ${CMAKE_CURRENT_LIST_DIR}/../gpu/test_device.cpp)
target_link_libraries(sparcol_gpu_tests PRIVATE sparcol GTest::gtest_main sparcol_warnings)
if(SPARCOL_HAVE_CUDA)
  target_sources(sparcol_gpu_tests PRIVATE ${CMAKE_CURRENT_LIST_DIR}/../gpu/test_kernels.cpp)
  target_link_libraries(sparcol_gpu_tests PRIVATE sparcol_cuda)
endif()
# The trainer's GPU model against the CPU model (and, without a GPU, the refusal), where the trainer
# is built (it needs OpenBLAS).
if(TARGET sparcol_train)
  target_sources(sparcol_gpu_tests PRIVATE ${CMAKE_CURRENT_LIST_DIR}/../gpu/test_gpu_model.cpp)
  target_link_libraries(sparcol_gpu_tests PRIVATE sparcol_train)
endif()
# The > 2^31-element cases move tens of GB and check them on the CPU: minutes on a GPU machine.
# A case that skipped (no GPU, tests/gpu/gpu_skip.hpp) is reported as skipped, never as passed; with
# SPARCOL_REQUIRE_GPU=1 it fails instead.
gtest_discover_tests(sparcol_gpu_tests PROPERTIES LABELS gpu TIMEOUT 1800
                     SKIP_REGULAR_EXPRESSION "\\[  SKIPPED \\]")

# The kernel benchmark as a user runs it: without a GPU it says so and exits 0, and the test is
# skipped (tests/gpu/bench_kernels.sh; failed under SPARCOL_REQUIRE_GPU=1). An explicit device that
# does not exist is a clear error with the documented status, never a crash (tests/apps/bad_input.table).
# (bench/ is configured after tests/, so test for the conditions that create the target, not for it.)
if(SPARCOL_HAVE_CUDA AND SPARCOL_BUILD_BENCH)
  add_test(NAME bench_kernels_runs COMMAND ${CMAKE_CURRENT_LIST_DIR}/../gpu/bench_kernels.sh
                                           $<TARGET_FILE:sparcol-bench-kernels> -b 20 -e 20 -n 2 -w 1)
  set_tests_properties(bench_kernels_runs PROPERTIES LABELS "gpu;bench" TIMEOUT 600 SKIP_RETURN_CODE 77)
  # Bad flags and a device that does not exist: rows of tests/apps/bad_input.table.
endif()
