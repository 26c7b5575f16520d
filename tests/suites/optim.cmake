# Optimizers on the loopback backend (threads as ranks).
add_executable(sparcol_optim_tests coll/test_optim.cpp)
target_link_libraries(sparcol_optim_tests PRIVATE sparcol_core GTest::gtest_main sparcol_warnings)
gtest_discover_tests(sparcol_optim_tests PROPERTIES LABELS coll TIMEOUT 300)

# No allocation inside the step loop (its own binary: it replaces the global operator new).
add_executable(sparcol_optim_alloc_tests ${CMAKE_CURRENT_LIST_DIR}/../unit/test_optim_alloc.cpp)
target_link_libraries(sparcol_optim_alloc_tests PRIVATE sparcol_core GTest::gtest_main sparcol_warnings)
gtest_discover_tests(sparcol_optim_alloc_tests PROPERTIES LABELS unit TIMEOUT 120)
