# Compressors (ALGORITHMS.md 1): unit tests, no MPI.
add_executable(sparcol_compress_tests ${CMAKE_CURRENT_LIST_DIR}/../unit/test_compress.cpp
               ${CMAKE_CURRENT_LIST_DIR}/../unit/test_compress_alloc.cpp)
target_link_libraries(sparcol_compress_tests PRIVATE sparcol GTest::gtest_main sparcol_warnings)
gtest_discover_tests(sparcol_compress_tests PROPERTIES LABELS unit TIMEOUT 300)
