# Timings and a sanity training run of the native trainer's models on the full Fashion-MNIST
# (minutes; no assertions): built on request, never run by ctest (docs/models.md).
#   cmake --build <dir> --target sparcol_train_sanity && <dir>/bin/sparcol_train_sanity --help
if(TARGET sparcol_train)
  add_executable(sparcol_train_sanity EXCLUDE_FROM_ALL ${CMAKE_CURRENT_LIST_DIR}/train_sanity.cpp)
  target_link_libraries(sparcol_train_sanity PRIVATE sparcol_train sparcol_warnings)
endif()
