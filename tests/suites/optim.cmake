# Optimizers on the loopback backend (threads as ranks).
add_executable(sparcol_optim_tests coll/test_optim.cpp)
target_link_libraries(sparcol_optim_tests PRIVATE sparcol GTest::gtest_main sparcol_warnings)
gtest_discover_tests(sparcol_optim_tests PROPERTIES LABELS coll TIMEOUT 300)
