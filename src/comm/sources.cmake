# mpi_backend.cpp is not here: it belongs to sparcol_mpi (src/CMakeLists.txt).
target_sources(sparcol_core PRIVATE ${CMAKE_CURRENT_LIST_DIR}/backend.cpp ${CMAKE_CURRENT_LIST_DIR}/loopback.cpp)
