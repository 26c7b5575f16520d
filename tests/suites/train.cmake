# Data sets, partitions, batch iterator and models of the native trainer (sparcol_train).
# src/train skips sparcol_train when OpenBLAS is missing; its tests go with it.
if(TARGET sparcol_train)
  add_executable(sparcol_train_tests
    ${CMAKE_CURRENT_LIST_DIR}/../unit/test_train_data.cpp
    ${CMAKE_CURRENT_LIST_DIR}/../unit/test_train_partition.cpp
    ${CMAKE_CURRENT_LIST_DIR}/../unit/test_train_models.cpp
    ${CMAKE_CURRENT_LIST_DIR}/../unit/test_train_gradcheck.cpp
    ${CMAKE_CURRENT_LIST_DIR}/../unit/test_train_dropit.cpp)
  target_link_libraries(sparcol_train_tests PRIVATE sparcol_train ZLIB::ZLIB GTest::gtest_main sparcol_warnings)
  gtest_discover_tests(sparcol_train_tests PROPERTIES LABELS unit TIMEOUT 120)
endif()
