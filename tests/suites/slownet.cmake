# scripts/slownet.sh (the emulated slow network): a tiny sparcol-bench run inside a rate-limited
# namespace, its bad input and interruption paths (tests/slurm/slownet_test.sh). Needs root for
# network namespaces; elsewhere the test reports itself skipped.
if(TARGET sparcol-bench)
  add_test(NAME slownet_bench_1gbit
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/slurm/slownet_test.sh $<TARGET_FILE:sparcol-bench>
                   ${MPIEXEC_EXECUTABLE})
  set_tests_properties(slownet_bench_1gbit PROPERTIES LABELS "slownet;mpi" TIMEOUT 120 SKIP_RETURN_CODE 77
                       ENVIRONMENT "${SPARCOL_MPI_TEST_ENV}" PROCESSORS 2)
endif()
