# sparcol-bench: the collective microbenchmark (docs/bench.md). Links the layers it uses (collectives,
# backends, io) rather than the umbrella.
if(NOT TARGET CLI11::CLI11)
  find_package(CLI11 CONFIG REQUIRED)
endif()
add_executable(sparcol-bench ${CMAKE_CURRENT_LIST_DIR}/sparcol_bench.cpp)
set_target_properties(sparcol-bench PROPERTIES OUTPUT_NAME sparcol-bench)
target_link_libraries(sparcol-bench PRIVATE sparcol_coll sparcol_mpi sparcol_io CLI11::CLI11 sparcol_warnings)
target_compile_definitions(sparcol-bench PRIVATE SPARCOL_BUILD_TYPE="${CMAKE_BUILD_TYPE}")
install(TARGETS sparcol-bench RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
