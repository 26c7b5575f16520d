# mpi_backend.cpp and make_backend.cpp are not here: they belong to sparcol_mpi (src/CMakeLists.txt,
# src/comm/backends.cmake); nccl_backend.cpp is sparcol_nccl's (src/comm/backends.cmake).
target_sources(sparcol_comm PRIVATE ${CMAKE_CURRENT_LIST_DIR}/backend.cpp ${CMAKE_CURRENT_LIST_DIR}/loopback.cpp
                                    ${CMAKE_CURRENT_LIST_DIR}/grouped_backend.cpp)
