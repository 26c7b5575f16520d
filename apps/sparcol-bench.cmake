# sparcol-bench: the collective microbenchmark (docs/bench.md). Links the layers it uses (collectives,
# backends, io) rather than the umbrella.
if(NOT TARGET CLI11::CLI11)
  find_package(CLI11 CONFIG REQUIRED)
endif()
set(SPARCOL_BENCH_SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/sparcol_bench.cpp ${CMAKE_CURRENT_LIST_DIR}/bench/options.cpp
    ${CMAKE_CURRENT_LIST_DIR}/bench/runs.cpp ${CMAKE_CURRENT_LIST_DIR}/bench/timing.cpp
    ${CMAKE_CURRENT_LIST_DIR}/bench/output.cpp ${CMAKE_CURRENT_LIST_DIR}/bench/overlap.cpp)
add_executable(sparcol-bench ${SPARCOL_BENCH_SOURCES})
set_target_properties(sparcol-bench PROPERTIES OUTPUT_NAME sparcol-bench)
target_link_libraries(sparcol-bench PRIVATE sparcol_coll sparcol_topo sparcol_mpi sparcol_io CLI11::CLI11 sparcol_warnings)
target_include_directories(sparcol-bench PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_compile_definitions(sparcol-bench PRIVATE SPARCOL_BUILD_TYPE="${CMAKE_BUILD_TYPE}")
install(TARGETS sparcol-bench RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# The same program with its test hooks (SPARCOL_BENCH_CORRUPT: spoil one result element so that the
# -c check can be tested). Built for the tests only, never installed: the hooks stay out of the release.
if(SPARCOL_BUILD_TESTS)
  add_executable(sparcol-bench-test-hooks ${SPARCOL_BENCH_SOURCES})
  target_link_libraries(sparcol-bench-test-hooks PRIVATE sparcol_coll sparcol_topo sparcol_mpi sparcol_io CLI11::CLI11 sparcol_warnings)
  target_include_directories(sparcol-bench-test-hooks PRIVATE ${CMAKE_CURRENT_LIST_DIR})
  target_compile_definitions(sparcol-bench-test-hooks PRIVATE SPARCOL_BUILD_TYPE="${CMAKE_BUILD_TYPE}"
                                                              SPARCOL_BENCH_TEST_HOOKS)
endif()
