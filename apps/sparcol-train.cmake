# sparcol-train: the native trainer (docs/train.md). Built when sparcol_train is (OpenBLAS found).
# It links the CPU libraries only (no sparcol_cuda): the trainer runs its models on the CPU, and the
# README's main job builds just this target, so it must not wait for the CUDA kernels.
if(TARGET sparcol_train)
  add_executable(sparcol-train ${CMAKE_CURRENT_LIST_DIR}/sparcol_train.cpp)
  target_link_libraries(sparcol-train PRIVATE sparcol_app_support sparcol_mpi sparcol_io sparcol_train
                        sparcol_warnings)
  install(TARGETS sparcol-train RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
