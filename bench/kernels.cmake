# sparcol-bench-kernels: every CUDA kernel's time and bandwidth against the device-to-device copy
# measured in the same run (bench/bench_kernels.cu, docs/gpu.md). CUDA builds only; without a GPU the
# program says "skipped" and exits 0. bench/torch_topk.py times torch.topk on the same sizes.
if(SPARCOL_HAVE_CUDA)
  add_executable(sparcol-bench-kernels ${CMAKE_CURRENT_LIST_DIR}/bench_kernels.cu)
  target_link_libraries(sparcol-bench-kernels PRIVATE sparcol_cuda sparcol_compress sparcol_warnings)
  target_compile_options(sparcol-bench-kernels PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-lineinfo>)
endif()
