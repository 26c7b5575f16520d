# The sign-bit ring all-reduces (Marsit and the cascading baseline, issue 13): masks, merge
# statistics and loopback sweeps (1 to 8 ranks), and the same checks under mpirun.
target_sources(sparcol_test_common PRIVATE ${CMAKE_CURRENT_LIST_DIR}/../common/sign_ring_checks.cpp)

add_executable(sparcol_sign_ring_tests ${CMAKE_CURRENT_LIST_DIR}/../coll/test_sign_ring.cpp)
target_link_libraries(sparcol_sign_ring_tests PRIVATE sparcol_test_common sparcol GTest::gtest_main sparcol_warnings)
gtest_discover_tests(sparcol_sign_ring_tests PROPERTIES LABELS coll TIMEOUT 120)

add_executable(sparcol_mpi_sign_ring_tests ${CMAKE_CURRENT_LIST_DIR}/../mpi/test_sign_ring_mpi.cpp)
target_link_libraries(sparcol_mpi_sign_ring_tests PRIVATE sparcol_mpi_test_main sparcol_test_common sparcol_warnings)
sparcol_add_mpi_test(sparcol_mpi_sign_ring_tests RANKS 1 2 3 4 8 TIMEOUT 120)

# The optimizers marsit and sign-cascade (issue 13).
add_executable(sparcol_marsit_optim_tests ${CMAKE_CURRENT_LIST_DIR}/../coll/test_marsit_optim.cpp)
target_link_libraries(sparcol_marsit_optim_tests PRIVATE sparcol GTest::gtest_main sparcol_warnings)
gtest_discover_tests(sparcol_marsit_optim_tests PROPERTIES LABELS coll TIMEOUT 120)

# powersgd (issue 13).
add_executable(sparcol_powersgd_tests ${CMAKE_CURRENT_LIST_DIR}/../coll/test_powersgd.cpp)
target_link_libraries(sparcol_powersgd_tests PRIVATE sparcol GTest::gtest_main sparcol_warnings)
gtest_discover_tests(sparcol_powersgd_tests PROPERTIES LABELS coll TIMEOUT 120)

# LIEC-SGD (issue 13): the sharded server's collective (loopback 1 to 8 ranks, mpirun 1, 2, 3, 4, 8)
# and the optimizer liec.
target_sources(sparcol_test_common PRIVATE ${CMAKE_CURRENT_LIST_DIR}/../common/liec_checks.cpp)

add_executable(sparcol_liec_tests ${CMAKE_CURRENT_LIST_DIR}/../coll/test_liec.cpp)
target_link_libraries(sparcol_liec_tests PRIVATE sparcol_test_common sparcol GTest::gtest_main sparcol_warnings)
gtest_discover_tests(sparcol_liec_tests PROPERTIES LABELS coll TIMEOUT 120)

add_executable(sparcol_mpi_liec_tests ${CMAKE_CURRENT_LIST_DIR}/../mpi/test_liec_mpi.cpp)
target_link_libraries(sparcol_mpi_liec_tests PRIVATE sparcol_mpi_test_main sparcol_test_common sparcol_warnings)
sparcol_add_mpi_test(sparcol_mpi_liec_tests RANKS 1 2 3 4 8 TIMEOUT 120)
