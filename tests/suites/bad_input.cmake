# Bad input for every program: one test per row of tests/apps/bad_input.table (program, case, ranks,
# exit status, arguments, stderr pattern), run by tests/apps/bad_input.py. Rows of programs this build
# does not make are skipped at configure time. docs/reliability.md, "Bad input".
find_program(SPARCOL_TEST_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT SPARCOL_TEST_PYTHON)
  find_program(SPARCOL_TEST_PYTHON python3)
endif()
if(NOT SPARCOL_TEST_PYTHON)
  message(WARNING "python3 was not found: the bad-input suite (tests/apps/bad_input.py, one test per row of "
                  "tests/apps/bad_input.table) is NOT registered, so ctest will not check how the programs "
                  "handle bad input. Install python3 and configure again.")
endif()
set(_bad_table ${CMAKE_CURRENT_LIST_DIR}/../apps/bad_input.table)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${_bad_table})

set(_bad_programs)
set(_bad_bins)
foreach(program sparcol-train sparcol-toy sparcol-bench)
  if(TARGET ${program})
    list(APPEND _bad_programs ${program})
    list(APPEND _bad_bins --bin "${program}=$<TARGET_FILE:${program}>")
  endif()
endforeach()
# bench/ is configured after tests/: test for the conditions that create the target.
if(SPARCOL_HAVE_CUDA AND SPARCOL_BUILD_BENCH)
  list(APPEND _bad_programs sparcol-bench-kernels)
  list(APPEND _bad_bins --bin "sparcol-bench-kernels=$<TARGET_FILE:sparcol-bench-kernels>")
endif()
if(SPARCOL_TEST_PYTHON AND _bad_programs)
  # Only the first two columns are read here; whole lines would not do as CMake list elements
  # (the patterns hold unbalanced square brackets).
  file(READ ${_bad_table} _bad_text)
  string(REGEX MATCHALL "\n[a-z][-a-z0-9]* \\| [-a-z0-9]+ \\|" _bad_rows "\n${_bad_text}")
  foreach(row IN LISTS _bad_rows)
    string(REGEX MATCH "([^ |\n]+) \\| ([^ |]+) \\|" _ "${row}")
    set(_program ${CMAKE_MATCH_1})
    set(_case ${CMAKE_MATCH_2})
    if(NOT _program IN_LIST _bad_programs)
      continue()
    endif()
    add_test(NAME bad_input.${_program}.${_case}
             COMMAND ${SPARCOL_TEST_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/../apps/bad_input.py ${_bad_table} ${_program}
                     ${_case} ${_bad_bins} --mpiexec ${MPIEXEC_EXECUTABLE})
    # The programs' own labels too (ctest -L train runs the trainer's rows).
    set(_labels app bad-input)
    if(_program STREQUAL "sparcol-train")
      list(APPEND _labels train)
    elseif(_program MATCHES "^sparcol-bench")
      list(APPEND _labels bench)
    endif()
    # Bad input must end quickly: the timeout turns a hang into a failure. Not label faults: the
    # sanitizer pass runs these too (they need no timing).
    set_tests_properties(bad_input.${_program}.${_case} PROPERTIES LABELS "${_labels}" TIMEOUT 120
                         ENVIRONMENT "${SPARCOL_MPI_TEST_ENV}")
  endforeach()
endif()
