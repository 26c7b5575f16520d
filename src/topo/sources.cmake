target_sources(sparcol_topo PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/acid.cpp
  ${CMAKE_CURRENT_LIST_DIR}/graph.cpp
  ${CMAKE_CURRENT_LIST_DIR}/neighbor_exchange.cpp
  ${CMAKE_CURRENT_LIST_DIR}/pair_gossip.cpp
  ${CMAKE_CURRENT_LIST_DIR}/relay.cpp)
