# The layering (STYLE.md 1, docs/architecture.md), as the build enforces it:
#  * layers_enforced: a compressor source that includes a comm header does not compile (try_compile),
#    and every library target can include exactly the layers it may (tests/layers/CMakeLists.txt);
#  * layers_link_graph: the link graph in docs/architecture.md is the one this source tree generates
#    (scripts/link-graph.sh; skipped when this build finds other optional targets than it shows).
set(_layer_targets sparcol_core sparcol_device sparcol_dispatch sparcol_compress sparcol_comm sparcol_coll sparcol_topo
                   sparcol_optim sparcol_io sparcol_mpi)
foreach(_t sparcol_cuda sparcol_nccl sparcol_train)
  if(TARGET ${_t})
    list(APPEND _layer_targets ${_t})
  endif()
endforeach()
string(REPLACE ";" " " _layer_list "${_layer_targets}")
set(_content "set(SPARCOL_LAYER_TARGETS ${_layer_list})\n")
foreach(_t IN LISTS _layer_targets)
  string(APPEND _content "set(SPARCOL_INCLUDES_${_t} \"$<TARGET_PROPERTY:${_t},INCLUDE_DIRECTORIES>\")\n")
endforeach()
file(GENERATE OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/layers/includes.cmake CONTENT "${_content}")
add_test(NAME layers_enforced
         COMMAND ${CMAKE_COMMAND} --fresh -S ${CMAKE_CURRENT_SOURCE_DIR}/layers -B ${CMAKE_CURRENT_BINARY_DIR}/layers/checks
                 -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER} -DSPARCOL_SOURCE_DIR=${PROJECT_SOURCE_DIR}
                 -DSPARCOL_LAYER_INCLUDES=${CMAKE_CURRENT_BINARY_DIR}/layers/includes.cmake)
set_tests_properties(layers_enforced PROPERTIES LABELS "unit;layers" TIMEOUT 300)

find_program(SPARCOL_LAYERS_PYTHON python3)
if(SPARCOL_LAYERS_PYTHON)
  set(_graph_args -DSPARCOL_ENABLE_CUDA=${SPARCOL_HAVE_CUDA} -DSPARCOL_ENABLE_NCCL=${SPARCOL_HAVE_NCCL}
                  -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER} -DCMAKE_C_COMPILER=${CMAKE_C_COMPILER})
  if(SPARCOL_HAVE_CUDA)
    list(APPEND _graph_args -DCMAKE_CUDA_COMPILER=${CMAKE_CUDA_COMPILER})
  endif()
  add_test(NAME layers_link_graph
           COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/link-graph.sh --check ${PROJECT_SOURCE_DIR}/docs/architecture.md
                   ${_graph_args})
  set_tests_properties(layers_link_graph PROPERTIES LABELS "unit;layers" TIMEOUT 900 SKIP_RETURN_CODE 77)
else()
  message(WARNING "python3 not found: the link graph check (layers_link_graph) is not registered")
endif()
