# The GPU communication path (docs/gpu.md: NcclBackend, device buffers in the collectives, MPI
# staging, the executor dispatch).
#
# sparcol_devpath_tests (every build, no GPU, label coll): the NCCL point-to-point rules on a
# host-memory emulation (tests/gpu/emulated_nccl), every collective over it, the collectives'
# executor path on host memory (the CPU twins) against their host path, and the fused optimizers on
# host memory against the CPU optimizers (tests/gpu/test_fused.cpp), bitwise.
# sparcol_gpu_comm_tests (under mpirun, labels gpu and mpi): the executor path over MpiBackend, and
# device buffers over MpiBackend (staging) and NcclBackend; the device cases skip without a GPU
# (NCCL also without a GPU per rank) and say why. Without a GPU, make_backend("nccl") must fail
# clearly on every rank.
add_library(sparcol_devpath_checks STATIC ${CMAKE_CURRENT_LIST_DIR}/../gpu/devpath_checks.cpp
                                          ${CMAKE_CURRENT_LIST_DIR}/../gpu/emulated_nccl.cpp)
target_link_libraries(sparcol_devpath_checks PUBLIC sparcol_core PRIVATE sparcol_warnings)

add_executable(sparcol_devpath_tests ${CMAKE_CURRENT_LIST_DIR}/../gpu/test_devpath.cpp
                                     ${CMAKE_CURRENT_LIST_DIR}/../gpu/test_fused.cpp)
target_link_libraries(sparcol_devpath_tests PRIVATE sparcol_devpath_checks sparcol_test_common sparcol_mpi
                      GTest::gtest_main sparcol_warnings)
gtest_discover_tests(sparcol_devpath_tests PROPERTIES LABELS coll TIMEOUT 600)

add_executable(sparcol_gpu_comm_tests ${CMAKE_CURRENT_LIST_DIR}/../gpu/test_gpu_comm_mpi.cpp)
target_link_libraries(sparcol_gpu_comm_tests PRIVATE sparcol_mpi_test_main sparcol_devpath_checks
                      sparcol_test_common sparcol_warnings)
sparcol_add_mpi_test(sparcol_gpu_comm_tests RANKS 1 2 3 TIMEOUT 600)
foreach(np 1 2 3)
  set_tests_properties(sparcol_gpu_comm_tests_np${np} PROPERTIES LABELS "gpu;mpi")
endforeach()
