target_sources(sparcol_coll PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/agree.cpp
  ${CMAKE_CURRENT_LIST_DIR}/background.cpp
  ${CMAKE_CURRENT_LIST_DIR}/dense.cpp
  ${CMAKE_CURRENT_LIST_DIR}/ring_allreduce.cpp
  ${CMAKE_CURRENT_LIST_DIR}/rbgs_allreduce.cpp
  ${CMAKE_CURRENT_LIST_DIR}/sparse_allgather.cpp
  ${CMAKE_CURRENT_LIST_DIR}/sign_allgather.cpp
  ${CMAKE_CURRENT_LIST_DIR}/sign_ring_allreduce.cpp
  ${CMAKE_CURRENT_LIST_DIR}/liec_allreduce.cpp)
