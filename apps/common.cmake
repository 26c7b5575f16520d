# Support code shared by the programs (flag parsing, cross-rank validation, error reporting).
find_package(CLI11 CONFIG REQUIRED)
add_library(sparcol_app_support STATIC ${CMAKE_CURRENT_LIST_DIR}/common/app_support.cpp)
target_include_directories(sparcol_app_support PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(sparcol_app_support PUBLIC sparcol_mpi CLI11::CLI11 PRIVATE sparcol_io sparcol_topo sparcol_warnings)
