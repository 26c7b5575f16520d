# sparcol-bench: the collective microbenchmark (docs/bench.md). Links the layers it uses (collectives,
# backends, io) rather than the umbrella.
if(NOT TARGET CLI11::CLI11)
  find_package(CLI11 CONFIG REQUIRED)
endif()
# The bench's sources are compiled once, into an object library shared by the program and its
# test-hooks twin; the two differ only in one translation unit (bench/hooks_on.cpp, hooks_off.cpp).
add_library(sparcol_bench_objs OBJECT
    ${CMAKE_CURRENT_LIST_DIR}/sparcol_bench.cpp ${CMAKE_CURRENT_LIST_DIR}/bench/options.cpp
    ${CMAKE_CURRENT_LIST_DIR}/bench/runs.cpp ${CMAKE_CURRENT_LIST_DIR}/bench/timing.cpp
    ${CMAKE_CURRENT_LIST_DIR}/bench/output.cpp ${CMAKE_CURRENT_LIST_DIR}/bench/overlap.cpp)
target_link_libraries(sparcol_bench_objs PUBLIC sparcol_coll sparcol_topo sparcol_mpi sparcol_io CLI11::CLI11 sparcol_warnings)
target_include_directories(sparcol_bench_objs PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_compile_definitions(sparcol_bench_objs PRIVATE SPARCOL_BUILD_TYPE="${CMAKE_BUILD_TYPE}")

add_executable(sparcol-bench ${CMAKE_CURRENT_LIST_DIR}/bench/hooks_off.cpp)
set_target_properties(sparcol-bench PROPERTIES OUTPUT_NAME sparcol-bench)
target_link_libraries(sparcol-bench PRIVATE sparcol_bench_objs)
install(TARGETS sparcol-bench RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# The same program with its test hooks (SPARCOL_BENCH_CORRUPT: spoil one result element so that the
# -c check can be tested). Built for the tests only, never installed: the hooks stay out of the release.
if(SPARCOL_BUILD_TESTS)
  add_executable(sparcol-bench-test-hooks ${CMAKE_CURRENT_LIST_DIR}/bench/hooks_on.cpp)
  target_link_libraries(sparcol-bench-test-hooks PRIVATE sparcol_bench_objs)
endif()
