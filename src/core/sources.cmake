target_sources(sparcol_core PRIVATE ${CMAKE_CURRENT_LIST_DIR}/error.cpp ${CMAKE_CURRENT_LIST_DIR}/payload.cpp
                                    ${CMAKE_CURRENT_LIST_DIR}/rng.cpp)
