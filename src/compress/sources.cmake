target_sources(sparcol_compress PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/compressor.cpp
  ${CMAKE_CURRENT_LIST_DIR}/none.cpp
  ${CMAKE_CURRENT_LIST_DIR}/topk.cpp
  ${CMAKE_CURRENT_LIST_DIR}/topk_sampled.cpp
  ${CMAKE_CURRENT_LIST_DIR}/random_k.cpp
  ${CMAKE_CURRENT_LIST_DIR}/random_block.cpp
  ${CMAKE_CURRENT_LIST_DIR}/sign.cpp
  ${CMAKE_CURRENT_LIST_DIR}/sidco.cpp)
