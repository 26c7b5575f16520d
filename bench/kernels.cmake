# sparcol-bench-kernels: every CUDA kernel's time and bandwidth against the device-to-device copy
# measured in the same run (bench/bench_kernels.cu, docs/gpu.md). CUDA builds only; without a GPU the
# program says "skipped" and exits 0. bench/torch_topk.py times torch.topk on the same sizes.
if(SPARCOL_HAVE_CUDA)
  # CMake 3.25 knows no C++20 flag for nvcc (see kernels/CMakeLists.txt); directory scope.
  if(NOT DEFINED CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
    set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
    set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
  endif()
  add_executable(sparcol-bench-kernels ${CMAKE_CURRENT_LIST_DIR}/bench_kernels.cu)
  target_link_libraries(sparcol-bench-kernels PRIVATE sparcol_cuda sparcol_warnings)
  target_compile_options(sparcol-bench-kernels PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-lineinfo>)
endif()
