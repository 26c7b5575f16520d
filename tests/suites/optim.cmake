# Optimizers on the loopback backend (threads as ranks).
add_executable(sparcol_optim_tests coll/test_optim.cpp)
target_link_libraries(sparcol_optim_tests PRIVATE sparcol GTest::gtest_main sparcol_warnings)
gtest_discover_tests(sparcol_optim_tests PROPERTIES LABELS coll TIMEOUT 300)
# The same tests on the other executors (tests/coll/test_optim.cpp, run()): every pass dense, and a
# CUDA device (reported as skipped without one; a failure with SPARCOL_REQUIRE_GPU=1).
gtest_discover_tests(sparcol_optim_tests TEST_SUFFIX .host-dense
                     PROPERTIES LABELS coll TIMEOUT 300 ENVIRONMENT SPARCOL_TEST_EXECUTOR=host-dense)
gtest_discover_tests(sparcol_optim_tests TEST_SUFFIX .device
                     PROPERTIES LABELS gpu TIMEOUT 300 ENVIRONMENT SPARCOL_TEST_EXECUTOR=device
                     SKIP_REGULAR_EXPRESSION "device executor run skipped")

# No allocation inside the step loop (its own binary: it replaces the global operator new).
add_executable(sparcol_optim_alloc_tests ${CMAKE_CURRENT_LIST_DIR}/../unit/test_optim_alloc.cpp)
target_link_libraries(sparcol_optim_alloc_tests PRIVATE sparcol GTest::gtest_main sparcol_warnings)
gtest_discover_tests(sparcol_optim_alloc_tests PROPERTIES LABELS unit TIMEOUT 120)

# The local-SGD family (tests/coll/test_local_sgd.cpp): identities, corrections, STL's schedule.
add_executable(sparcol_local_sgd_tests ${CMAKE_CURRENT_LIST_DIR}/../coll/test_local_sgd.cpp)
target_link_libraries(sparcol_local_sgd_tests PRIVATE sparcol GTest::gtest_main sparcol_warnings)
gtest_discover_tests(sparcol_local_sgd_tests PROPERTIES LABELS coll TIMEOUT 120)

# Communication behind computation (tests/coll/test_background.cpp): bitwise equal to blocking, 1-8 ranks.
add_executable(sparcol_background_tests ${CMAKE_CURRENT_LIST_DIR}/../coll/test_background.cpp)
target_link_libraries(sparcol_background_tests PRIVATE sparcol GTest::gtest_main sparcol_warnings)
gtest_discover_tests(sparcol_background_tests PROPERTIES LABELS coll TIMEOUT 120)

# The same under mpirun, MPI initialised at MPI_THREAD_MULTIPLE (tests/mpi/test_overlap_mpi.cpp).
add_library(sparcol_mpi_test_main_mt STATIC mpi/mpi_main.cpp mpi/mpi_test.cpp)
target_link_libraries(sparcol_mpi_test_main_mt PUBLIC sparcol_mpi GTest::gtest PRIVATE sparcol_warnings)
target_compile_definitions(sparcol_mpi_test_main_mt PRIVATE SPARCOL_TEST_MPI_THREAD_LEVEL=kMultiple)
add_executable(sparcol_mpi_overlap_tests mpi/test_overlap_mpi.cpp)
target_link_libraries(sparcol_mpi_overlap_tests PRIVATE sparcol_mpi_test_main_mt sparcol sparcol_warnings)
sparcol_add_mpi_test(sparcol_mpi_overlap_tests RANKS 1 2 3 4 8)
