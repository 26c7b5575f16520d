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
  # One row per (method, k), one for the methods that take no --k.
  add_test(NAME toy_rows_without_k COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/apps/toy_rows.sh $<TARGET_FILE:sparcol-toy>)
  set_tests_properties(toy_rows_without_k PROPERTIES LABELS app TIMEOUT 120)
  # Bad flags and outputs: rows of tests/apps/bad_input.table (tests/suites/bad_input.cmake).
endif()
