# One whole optimizer step at d = 2^24 on one rank, against one memcpy of the vector.
add_executable(sparcol_bench_optim_step ${CMAKE_CURRENT_LIST_DIR}/bench_optim_step.cpp)
target_link_libraries(sparcol_bench_optim_step PRIVATE sparcol_optim benchmark::benchmark sparcol_warnings)
