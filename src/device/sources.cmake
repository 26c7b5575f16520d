# Device layer, in every build: GPU discovery, buffers and streams (device.cpp, on the CUDA runtime
# when SPARCOL_HAVE_CUDA, refusing GPU requests otherwise) and the CPU twins of every kernel
# (ops_cpu.cpp). The kernels themselves are in kernels/ (target sparcol_cuda).
target_sources(sparcol_core PRIVATE ${CMAKE_CURRENT_LIST_DIR}/device.cpp ${CMAKE_CURRENT_LIST_DIR}/ops_cpu.cpp)
if(SPARCOL_HAVE_CUDA)
  # Only device.cpp calls the runtime; its headers stay private (device.hpp exposes no CUDA type).
  target_link_libraries(sparcol_core PRIVATE CUDA::cudart)
endif()
