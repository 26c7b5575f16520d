# Backends beyond loopback, included by src/CMakeLists.txt once sparcol_mpi exists.
#
# make_backend.cpp (comm::make_backend, the one place that knows what was compiled in) goes into
# sparcol_mpi, which then links sparcol_nccl when NCCL was found.
# sparcol_nccl: NcclBackend (nccl_backend.cpp, the only file that includes nccl.h) over an IMPORTED
# target for the NCCL library found beside the CUDA toolkit (root CMakeLists.txt: NCCL_INCLUDE_DIR,
# NCCL_LIBRARY; cmake/sparcolConfig.cmake.in recreates the target for users of an installed sparcol).
target_sources(sparcol_mpi PRIVATE ${CMAKE_CURRENT_LIST_DIR}/make_backend.cpp)

if(SPARCOL_HAVE_NCCL)
  if(NOT TARGET sparcol::nccl_library)
    add_library(sparcol::nccl_library UNKNOWN IMPORTED)
    set_target_properties(sparcol::nccl_library PROPERTIES
      IMPORTED_LOCATION ${NCCL_LIBRARY} INTERFACE_INCLUDE_DIRECTORIES ${NCCL_INCLUDE_DIR})
  endif()
  add_library(sparcol_nccl ${CMAKE_CURRENT_LIST_DIR}/nccl_backend.cpp)
  target_link_libraries(sparcol_nccl PUBLIC sparcol_comm
                        PRIVATE sparcol_device sparcol::nccl_library CUDA::cudart $<BUILD_INTERFACE:sparcol_warnings>)
  # cuda_check.hpp is internal to src/device.
  target_include_directories(sparcol_nccl PRIVATE ${PROJECT_SOURCE_DIR}/src/device)
  target_link_libraries(sparcol_mpi PUBLIC sparcol_nccl)
  install(TARGETS sparcol_nccl EXPORT sparcolTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
