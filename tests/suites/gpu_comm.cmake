# The GPU communication path (docs/gpu.md: NcclBackend, device buffers in the collectives, MPI
# staging, the executor dispatch).
#
# sparcol_devpath_tests (every build, no GPU, label coll): the NCCL point-to-point rules on a
# host-memory emulation (tests/gpu/emulated_nccl), every collective over it, the collectives'
# executor path on host memory (the CPU twins) against their host path, and the optimizers on their
# executors (tests/gpu/test_optim_exec.cpp: tracked sparse aggregates against every pass dense,
# the NCCL emulation, a device executor against the host), bitwise.
# sparcol_gpu_comm_tests (under mpirun, labels gpu and mpi): the executor path over MpiBackend, and
# device buffers over MpiBackend (staging) and NcclBackend; the device cases skip without a GPU
# (NCCL also without a GPU per rank) and say why. Without a GPU, make_backend("nccl") must fail
# clearly on every rank.
add_library(sparcol_devpath_checks STATIC ${CMAKE_CURRENT_LIST_DIR}/../gpu/devpath_checks.cpp
                                          ${CMAKE_CURRENT_LIST_DIR}/../gpu/emulated_nccl.cpp)
target_link_libraries(sparcol_devpath_checks PUBLIC sparcol sparcol_test_common PRIVATE sparcol_warnings)

add_executable(sparcol_devpath_tests ${CMAKE_CURRENT_LIST_DIR}/../gpu/test_devpath.cpp
                                     ${CMAKE_CURRENT_LIST_DIR}/../gpu/test_optim_exec.cpp)
target_link_libraries(sparcol_devpath_tests PRIVATE sparcol_devpath_checks sparcol_test_common sparcol_mpi
                      GTest::gtest_main sparcol_warnings)
gtest_discover_tests(sparcol_devpath_tests PROPERTIES LABELS coll TIMEOUT 600
                     SKIP_REGULAR_EXPRESSION "\\[  SKIPPED \\]")

add_executable(sparcol_gpu_comm_tests ${CMAKE_CURRENT_LIST_DIR}/../gpu/test_gpu_comm_mpi.cpp)
target_link_libraries(sparcol_gpu_comm_tests PRIVATE sparcol_mpi_test_main sparcol_devpath_checks
                      sparcol_test_common sparcol_warnings)
sparcol_add_mpi_test(sparcol_gpu_comm_tests RANKS 1 2 3 TIMEOUT 600 LABELS gpu mpi)

# Fail closed, through CTest (tests/gpu/fail_closed.sh; here because gpu.cmake is read before this
# file): without a GPU, a gtest case, an MPI case and
# a script test are each reported as skipped, and as failed with SPARCOL_REQUIRE_GPU=1. With a GPU
# present the script has nothing to prove and reports itself skipped.
set(_fail_closed Device.BuffersStreamsAndPointerKindsOnGpu sparcol_gpu_comm_tests_np1.GpuCommMpi.DeviceBuffersOverMpiStaging)
if(SPARCOL_HAVE_CUDA AND SPARCOL_BUILD_BENCH)
  list(APPEND _fail_closed bench_kernels_runs)
endif()
add_test(NAME gpu_tests_fail_closed
         COMMAND ${CMAKE_CURRENT_LIST_DIR}/../gpu/fail_closed.sh ${CMAKE_CTEST_COMMAND} ${CMAKE_BINARY_DIR} ${_fail_closed})
set_tests_properties(gpu_tests_fail_closed PROPERTIES LABELS gpu TIMEOUT 300 SKIP_RETURN_CODE 77 PROCESSORS 2)


# sparcol-bench's --device and --backend nccl (docs/bench.md): a run that succeeds on a GPU machine
# and fails clearly without one (tests/gpu/bench_device.sh), and the flag combinations that are errors
# everywhere. (apps/ is configured before tests/, so the target exists here when it is built.)
if(TARGET sparcol-bench)
  set(_bench_dev ${CMAKE_CURRENT_LIST_DIR}/../gpu/bench_device.sh ${MPIEXEC_EXECUTABLE})
  set(_fail ${CMAKE_CURRENT_LIST_DIR}/../apps/expect_fail.sh)
  set(_mpirun ${MPIEXEC_EXECUTABLE} -np 2 --oversubscribe)
  add_test(NAME bench_device_cuda_mpi_np2
           COMMAND ${_bench_dev} 2 $<TARGET_FILE:sparcol-bench> --device cuda -b 4K -e 1M -f 16 -n 3 -w 1)
  add_test(NAME bench_device_cuda_nccl_np1
           COMMAND ${_bench_dev} 1 $<TARGET_FILE:sparcol-bench> --backend nccl --device cuda -b 4K -e 1M -f 16 -n 3 -w 1)
  add_test(NAME bench_device_nccl_needs_cuda
           COMMAND ${_fail} "--backend nccl" ${_mpirun} $<TARGET_FILE:sparcol-bench> --backend nccl)
  add_test(NAME bench_device_loopback_is_host_only
           COMMAND ${_fail} "--backend loopback moves host memory only" $<TARGET_FILE:sparcol-bench>
                   --backend loopback --ranks 2 --device cuda)
  add_test(NAME bench_device_unknown
           COMMAND ${_fail} "--device must be 'cpu' or 'cuda', got 'tpu'" ${_mpirun} $<TARGET_FILE:sparcol-bench>
                   --device tpu)
  add_test(NAME bench_device_op_of_another_library
           COMMAND ${_fail} "--op nccl-allreduce needs --backend nccl" ${_mpirun} $<TARGET_FILE:sparcol-bench>
                   --op nccl-allreduce)
  set_tests_properties(bench_device_cuda_mpi_np2 bench_device_cuda_nccl_np1 bench_device_nccl_needs_cuda
                       bench_device_loopback_is_host_only bench_device_unknown bench_device_op_of_another_library
                       PROPERTIES LABELS "gpu;bench;mpi" TIMEOUT 300 ENVIRONMENT "${SPARCOL_MPI_TEST_ENV}" PROCESSORS 2
                       SKIP_RETURN_CODE 77)
endif()
