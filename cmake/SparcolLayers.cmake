# Layers the build enforces (STYLE.md 1, docs/architecture.md).
#
# Every header lives under include/sparcol/<layer>/, so one include directory holding the whole tree
# would let any source reach any layer. Instead each library target gets an include directory of its
# own, generated here at configure time, that holds only its own layer's headers (symbolic links to
# the sources); a target sees the headers of exactly the targets it links, through CMake's usage
# requirements. A compressor that includes "sparcol/comm/backend.hpp" therefore does not compile:
# sparcol_compress links neither sparcol_comm nor anything above it, so no directory it is given
# holds sparcol/comm/ (tests/layers proves it with try_compile).
#
# The installed package keeps the ordinary tree (include/sparcol/...): the check is on sparcol's own
# sources, a user of the package sees every layer, as through sparcol::sparcol.

# sparcol_layer_headers(<target> <layer> [ONLY <file>...] [EXCLUDE <file>...])
# Gives <target> a PUBLIC build include directory with include/sparcol/<layer>/*.hpp, or only the
# files named by ONLY, or all but those named by EXCLUDE (paths relative to the layer directory).
function(sparcol_layer_headers target layer)
  cmake_parse_arguments(ARG "" "" "ONLY;EXCLUDE" ${ARGN})
  set(src ${PROJECT_SOURCE_DIR}/include/sparcol/${layer})
  set(tree ${PROJECT_BINARY_DIR}/layers/${target})
  file(GLOB_RECURSE headers CONFIGURE_DEPENDS RELATIVE ${src} ${src}/*.hpp)
  if(ARG_ONLY)
    set(headers ${ARG_ONLY})
  endif()
  if(ARG_EXCLUDE)
    list(REMOVE_ITEM headers ${ARG_EXCLUDE})
  endif()
  # Rebuilt on every configure, so that a deleted or renamed header leaves no link behind.
  file(REMOVE_RECURSE ${tree})
  foreach(h IN LISTS headers)
    if(NOT EXISTS ${src}/${h})
      message(FATAL_ERROR "sparcol_layer_headers(${target}): no header include/sparcol/${layer}/${h}")
    endif()
    get_filename_component(dir ${tree}/sparcol/${layer}/${h} DIRECTORY)
    file(MAKE_DIRECTORY ${dir})
    file(CREATE_LINK ${src}/${h} ${tree}/sparcol/${layer}/${h} SYMBOLIC)
  endforeach()
  target_include_directories(${target} PUBLIC $<BUILD_INTERFACE:${tree}>)
  set_property(GLOBAL APPEND PROPERTY SPARCOL_LAYER_TARGETS ${target})
endfunction()

# sparcol_layer_library(<target> <layer> [LINK <target>...]): a library for the layer whose sources
# src/<layer>/sources.cmake adds (target_sources on <target>), PUBLIC links on the layers below.
function(sparcol_layer_library target layer)
  cmake_parse_arguments(ARG "" "" "LINK" ${ARGN})
  add_library(${target})
  target_link_libraries(${target} PUBLIC ${ARG_LINK} PRIVATE $<BUILD_INTERFACE:sparcol_warnings>)
  sparcol_layer_headers(${target} ${layer})
endfunction()
