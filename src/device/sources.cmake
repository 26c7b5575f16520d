# Device layer, in every build: GPU discovery, buffers and streams (device.cpp, on the CUDA runtime
# when SPARCOL_HAVE_CUDA, refusing GPU requests otherwise), the CPU twins of every kernel
# (ops_cpu.cpp, coll_support_cpu.cpp) and the host/device dispatch (dispatch.cpp). The kernels
# themselves are in kernels/ (target sparcol_cuda).
target_sources(sparcol_core PRIVATE ${CMAKE_CURRENT_LIST_DIR}/device.cpp ${CMAKE_CURRENT_LIST_DIR}/ops_cpu.cpp
                                    ${CMAKE_CURRENT_LIST_DIR}/coll_support_cpu.cpp ${CMAKE_CURRENT_LIST_DIR}/dispatch.cpp)
if(SPARCOL_HAVE_CUDA)
  # Only device.cpp calls the runtime; its headers stay private (device.hpp exposes no CUDA type).
  target_link_libraries(sparcol_core PRIVATE CUDA::cudart)
  # The dispatch (and through it the collectives' device path) calls the launchers of sparcol_cuda,
  # which itself links sparcol_core: a cycle of two static libraries, which CMake supports by
  # repeating them on link lines. (sparcol_cuda is defined later, in kernels/.)
  target_link_libraries(sparcol_core PRIVATE sparcol_cuda)
endif()
