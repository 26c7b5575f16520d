# Device layer, in every build, as two targets (src/CMakeLists.txt) with the kernels between them:
# sparcol_device: GPU discovery, buffers and streams (device.cpp, on the CUDA runtime when
# SPARCOL_HAVE_CUDA, refusing GPU requests otherwise) and the CPU twins of every kernel (ops_cpu.cpp,
# coll_support_cpu.cpp). sparcol_dispatch: the host/device dispatch (dispatch.cpp), which calls a
# twin or, in CUDA builds, a launcher of the kernels in kernels/ (target sparcol_cuda).
target_sources(sparcol_device PRIVATE ${CMAKE_CURRENT_LIST_DIR}/device.cpp ${CMAKE_CURRENT_LIST_DIR}/ops_cpu.cpp
                                      ${CMAKE_CURRENT_LIST_DIR}/coll_support_cpu.cpp)
target_sources(sparcol_dispatch PRIVATE ${CMAKE_CURRENT_LIST_DIR}/dispatch.cpp)
if(SPARCOL_HAVE_CUDA)
  # Only device.cpp calls the runtime; its headers stay private (device.hpp exposes no CUDA type).
  target_link_libraries(sparcol_device PRIVATE CUDA::cudart)
  # The dispatch calls the launchers (sparcol_cuda, defined later in kernels/; it links sparcol_device,
  # never the dispatch, so there is no cycle).
  target_link_libraries(sparcol_dispatch PRIVATE sparcol_cuda)
endif()
