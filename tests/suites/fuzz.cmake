# libFuzzer targets (SPARCOL_FUZZ=ON, clang). Each runs for SPARCOL_FUZZ_SECONDS (default 20) as a
# CTest test, from a small seed corpus; a crash or sanitizer report fails the test.
if(SPARCOL_FUZZ)
  set(SPARCOL_FUZZ_SECONDS 20 CACHE STRING "Seconds each fuzz target runs under ctest")
  function(sparcol_add_fuzz name)
    cmake_parse_arguments(ARG "" "" "SOURCES;LIBS;CORPUS;FLAGS" ${ARGN})
    add_executable(${name} ${ARG_SOURCES})
    target_link_libraries(${name} PRIVATE ${ARG_LIBS} sparcol_warnings)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    add_test(NAME ${name}
             COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/run_fuzzer.sh $<TARGET_FILE:${name}> ${SPARCOL_FUZZ_SECONDS}
                     ${ARG_CORPUS} ${ARG_FLAGS})
    set_tests_properties(${name} PROPERTIES LABELS fuzz TIMEOUT 600)
  endfunction()
  sparcol_add_fuzz(sparcol_fuzz_idx SOURCES fuzz/fuzz_idx.cpp LIBS sparcol_train
                   CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/idx)
  # The checkpoint reader holds nothing larger than its input (at most 64 KiB here): a single
  # allocation above 16 MiB is a finding.
  sparcol_add_fuzz(sparcol_fuzz_checkpoint SOURCES fuzz/fuzz_checkpoint.cpp LIBS sparcol_train ZLIB::ZLIB
                   CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/checkpoint FLAGS -malloc_limit_mb=16)
endif()
