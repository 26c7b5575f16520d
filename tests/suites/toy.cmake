# sparcol-toy as a user runs it.
if(TARGET sparcol-toy)
  add_test(NAME toy_mpi_vs_simulate_2
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/apps/toy_mpi_vs_simulate.sh $<TARGET_FILE:sparcol-toy> ${MPIEXEC_EXECUTABLE} 2)
  add_test(NAME toy_mpi_vs_simulate_3
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/apps/toy_mpi_vs_simulate.sh $<TARGET_FILE:sparcol-toy> ${MPIEXEC_EXECUTABLE} 3)
  set_tests_properties(toy_mpi_vs_simulate_2 toy_mpi_vs_simulate_3 PROPERTIES LABELS "app;mpi" TIMEOUT 300
                       ENVIRONMENT "${SPARCOL_MPI_TEST_ENV}")
  # The paper's qualitative outcome with the spec's setting-1 constants (ALGORITHMS.md 11).
  add_test(NAME toy_paper_outcome COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/apps/toy_paper_outcome.sh $<TARGET_FILE:sparcol-toy>)
  set_tests_properties(toy_paper_outcome PROPERTIES LABELS app TIMEOUT 300)
  set(_toy_bad
    "unknown method 'gmcc'|--simulate 2 --method gmcc"
    "--k 3 must be in|--simulate 2 --k 3"
    "--lr must be > 0|--simulate 2 --lr -0.1"
    "--alpha must be in|--simulate 2 --alpha 1.5"
    "--beta must be in|--simulate 2 --beta 1"
    "unknown compressor 'topkk'|--simulate 2 --compressor topkk"
    "not an integer|--simulate 2 --k x"
    "--setting|--setting 3"
    "--nope|--nope"
    "does not exist|--simulate 2 --h5 /nonexistent-dir/t.h5"
    "--lr = abc|--simulate 2 --lr abc")
  set(_i 0)
  foreach(case ${_toy_bad})
    string(REPLACE "|" ";" parts "${case}")
    list(GET parts 0 want)
    list(GET parts 1 args)
    separate_arguments(args UNIX_COMMAND "${args}")
    add_test(NAME toy_bad_input_${_i}
             COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/apps/expect_fail.sh "${want}" $<TARGET_FILE:sparcol-toy> ${args})
    set_tests_properties(toy_bad_input_${_i} PROPERTIES LABELS app TIMEOUT 60)
    math(EXPR _i "${_i} + 1")
  endforeach()
endif()
