add_executable(sparcol-toy ${CMAKE_CURRENT_LIST_DIR}/sparcol_toy.cpp)
target_link_libraries(sparcol-toy PRIVATE sparcol_app_support sparcol sparcol_warnings)
install(TARGETS sparcol-toy RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
