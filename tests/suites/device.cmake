# Device layer, CPU side (no GPU needed): the CPU twins of the CUDA kernels against the compressors,
# the collectives' decoders and the optimizers (tests/unit/test_device_ops_cpu.cpp).
add_executable(sparcol_device_tests ${CMAKE_CURRENT_LIST_DIR}/../unit/test_device_ops_cpu.cpp)
target_link_libraries(sparcol_device_tests PRIVATE sparcol GTest::gtest_main sparcol_warnings)
gtest_discover_tests(sparcol_device_tests PROPERTIES LABELS unit TIMEOUT 300)
