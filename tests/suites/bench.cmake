# sparcol-bench (apps/sparcol-bench.cmake) run as a user would under mpirun, its bad-input handling,
# its output files (tests/bench/check_bench.py), and the collective algorithm options added while
# tuning the collectives for it (tests/bench/test_tuned_collectives.cpp, loopback).
add_executable(sparcol_tuned_coll_tests bench/test_tuned_collectives.cpp)
target_link_libraries(sparcol_tuned_coll_tests PRIVATE sparcol GTest::gtest_main sparcol_warnings)
gtest_discover_tests(sparcol_tuned_coll_tests PROPERTIES LABELS "coll;bench" TIMEOUT 300)

if(TARGET sparcol-bench)
  # The Debian interpreter first: python3-h5py (scripts/setup.sh) is installed for it, not for
  # interpreters a user may have earlier on PATH.
  find_program(SPARCOL_BENCH_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH)
  if(NOT SPARCOL_BENCH_PYTHON)
    find_program(SPARCOL_BENCH_PYTHON python3)
  endif()
  if(SPARCOL_BENCH_PYTHON)
    set(_bench_driver ${SPARCOL_BENCH_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/bench/check_bench.py
        --bench $<TARGET_FILE:sparcol-bench> --mpiexec ${MPIEXEC_EXECUTABLE}
        --workdir ${CMAKE_CURRENT_BINARY_DIR}/bench_runs)
    foreach(case IN ITEMS
        sweep:1 sweep:2 sweep:4 nan:3 nan-block-covers-middle:3 loopback:1 outputs:2 corrupt:2 no-xref:2
        help:1 version:1 unknown-flag:2 negative-size:2 non-numeric-size:2 density-zero:2
        density-above-one:2 k-above-d:2 unknown-op:2 mismatched-sizes:3 mismatched-density:2
        one-rank-rejects:2 unwritable-output:2 loopback-under-mpirun:2
        neighbor:4 neighbor-torus-misfit:3)
      string(REPLACE ":" ";" _parts ${case})
      list(GET _parts 0 _name)
      list(GET _parts 1 _np)
      if(_name STREQUAL "corrupt")
        # SPARCOL_BENCH_CORRUPT exists only in the bench's test build (apps/sparcol-bench.cmake).
        add_test(NAME bench_${_name}_np${_np}
                 COMMAND ${SPARCOL_BENCH_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/bench/check_bench.py
                         --bench $<TARGET_FILE:sparcol-bench-test-hooks> --mpiexec ${MPIEXEC_EXECUTABLE}
                         --workdir ${CMAKE_CURRENT_BINARY_DIR}/bench_runs --np ${_np} ${_name})
      else()
        add_test(NAME bench_${_name}_np${_np} COMMAND ${_bench_driver} --np ${_np} ${_name})
      endif()
      # Bad-input cases must end quickly on every rank: the timeout turns a hang into a failure.
      set_tests_properties(bench_${_name}_np${_np} PROPERTIES LABELS "bench;mpi" TIMEOUT 120
                           ENVIRONMENT "${SPARCOL_MPI_TEST_ENV}" PROCESSORS 2)
    endforeach()
    # The released program has no test hooks: with SPARCOL_BENCH_CORRUPT=1 it still checks clean.
    add_test(NAME bench_corrupt_hook_absent_np2 COMMAND ${_bench_driver} --np 2 sweep)
    set_tests_properties(bench_corrupt_hook_absent_np2 PROPERTIES LABELS "bench;mpi" TIMEOUT 120
                         ENVIRONMENT "${SPARCOL_MPI_TEST_ENV};SPARCOL_BENCH_CORRUPT=1" PROCESSORS 2)
    # bench/cost_model.py on sparcol-bench files simulated round by round on networks of known latency
    # and link rate (tests/bench/check_cost_model.py; the simulation does not use the model's formulas).
    foreach(case IN ITEMS recover miss bad-input)
      add_test(NAME cost_model_${case}
               COMMAND ${SPARCOL_BENCH_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/bench/check_cost_model.py
                       --script ${PROJECT_SOURCE_DIR}/bench/cost_model.py
                       --workdir ${CMAKE_CURRENT_BINARY_DIR}/cost_model_runs ${case})
      set_tests_properties(cost_model_${case} PROPERTIES LABELS "bench" TIMEOUT 300)
    endforeach()
  else()
    message(WARNING "python3 not found: the sparcol-bench program tests are not registered")
  endif()
endif()
