target_sources(sparcol_optim PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/layout_schedule.cpp
  ${CMAKE_CURRENT_LIST_DIR}/exchange.cpp
  ${CMAKE_CURRENT_LIST_DIR}/optimizer.cpp
  ${CMAKE_CURRENT_LIST_DIR}/dmsgd.cpp
  ${CMAKE_CURRENT_LIST_DIR}/ef_sgd.cpp
  ${CMAKE_CURRENT_LIST_DIR}/dgc.cpp
  ${CMAKE_CURRENT_LIST_DIR}/gmc.cpp
  ${CMAKE_CURRENT_LIST_DIR}/def_a.cpp
  ${CMAKE_CURRENT_LIST_DIR}/cser.cpp
  ${CMAKE_CURRENT_LIST_DIR}/marsit.cpp
  ${CMAKE_CURRENT_LIST_DIR}/powersgd.cpp
  ${CMAKE_CURRENT_LIST_DIR}/liec.cpp
  ${CMAKE_CURRENT_LIST_DIR}/local_sgd.cpp
  ${CMAKE_CURRENT_LIST_DIR}/cocod_sgd.cpp
  ${CMAKE_CURRENT_LIST_DIR}/decentralized.cpp
  ${CMAKE_CURRENT_LIST_DIR}/powergossip.cpp
  ${CMAKE_CURRENT_LIST_DIR}/a2cid2.cpp)
