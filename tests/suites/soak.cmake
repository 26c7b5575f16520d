# Soak (docs/reliability.md): random collectives back to back, checked, watching memory. CI runs a
# short soak; -DSPARCOL_SOAK_LONG=ON and `ctest -L soak-long` (or `mpirun -np 4 build/bin/sparcol_soak 10000`) runs the full one.
add_executable(sparcol_soak soak/soak.cpp)
target_link_libraries(sparcol_soak PRIVATE sparcol_test_common sparcol_mpi sparcol_warnings)
add_test(NAME soak_short_np4 COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 4 ${SPARCOL_MPIEXEC_PREFLAGS}
                                     $<TARGET_FILE:sparcol_soak> 1000 14)
set_tests_properties(soak_short_np4 PROPERTIES LABELS "mpi;soak" TIMEOUT 300 ENVIRONMENT "${SPARCOL_MPI_TEST_ENV}"
                     PROCESSORS 2)
option(SPARCOL_SOAK_LONG "Register the 10,000-collective soak test (label soak-long)" OFF)
if(SPARCOL_SOAK_LONG)
  add_test(NAME soak_long_np4 COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 4 ${SPARCOL_MPIEXEC_PREFLAGS}
                                      $<TARGET_FILE:sparcol_soak> 10000 18)
  set_tests_properties(soak_long_np4 PROPERTIES LABELS "soak-long" TIMEOUT 7200
                       ENVIRONMENT "${SPARCOL_MPI_TEST_ENV}" PROCESSORS 2)
endif()
