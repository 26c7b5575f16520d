# Compressor kernels on one core: sparcol top-k vs std::nth_element and memcpy, and the other compressors.
add_executable(sparcol_bench_topk ${CMAKE_CURRENT_LIST_DIR}/bench_topk.cpp)
target_link_libraries(sparcol_bench_topk PRIVATE sparcol_compress benchmark::benchmark sparcol_warnings)
