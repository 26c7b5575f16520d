# libFuzzer targets (SPARCOL_FUZZ=ON, clang). Each runs for SPARCOL_FUZZ_SECONDS (default 20) as a
# CTest test, from a small seed corpus; a crash or sanitizer report fails the test.
if(SPARCOL_FUZZ)
  set(SPARCOL_FUZZ_SECONDS 20 CACHE STRING "Seconds each fuzz target runs under ctest")
  function(sparcol_add_fuzz name)
    cmake_parse_arguments(ARG "" "" "SOURCES;LIBS;CORPUS" ${ARGN})
    add_executable(${name} ${ARG_SOURCES})
    target_link_libraries(${name} PRIVATE ${ARG_LIBS} sparcol_warnings)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    add_test(NAME ${name}
             COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/run_fuzzer.sh $<TARGET_FILE:${name}> ${SPARCOL_FUZZ_SECONDS}
                     ${ARG_CORPUS})
    set_tests_properties(${name} PROPERTIES LABELS fuzz TIMEOUT 600)
  endfunction()
  sparcol_add_fuzz(sparcol_fuzz_idx SOURCES fuzz/fuzz_idx.cpp LIBS sparcol_train
                   CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/idx)
endif()
