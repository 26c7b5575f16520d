# File formats (sparcol_io): the HDF5 layer. No MPI.
add_executable(sparcol_io_tests unit/test_h5.cpp)
target_link_libraries(sparcol_io_tests PRIVATE sparcol_io GTest::gtest_main sparcol_warnings)
gtest_discover_tests(sparcol_io_tests PROPERTIES LABELS "unit;io" TIMEOUT 60)
