# The Python package (python/, docs/python.md) under mpirun, as users run it: /usr/bin/python3 with
# the build tree's package first on sys.path (SPARCOL_PYTHON_DIR). The torch tests exit 77 (skipped,
# with the reason) when torch is not importable; when the package is not built at all, one test says
# so and is skipped, never passed. Labels python;mpi.
set(_py_env "${SPARCOL_MPI_TEST_ENV};SPARCOL_PYTHON_DIR=${PROJECT_BINARY_DIR}/python;OMP_NUM_THREADS=1")
set(_py_dir ${CMAKE_CURRENT_SOURCE_DIR}/python)
if(SPARCOL_HAVE_PYTHON)
  # sparcol_py_test(name ranks script [args...])
  function(sparcol_py_test name ranks script)
    add_test(NAME ${name}
             COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${ranks} ${SPARCOL_MPIEXEC_PREFLAGS}
                     ${Python3_EXECUTABLE} ${_py_dir}/${script} ${ARGN})
    set_tests_properties(${name} PROPERTIES LABELS "python;mpi" TIMEOUT 300 SKIP_RETURN_CODE 77
                                            ENVIRONMENT "${_py_env}" PROCESSORS 2)
  endfunction()
  sparcol_py_test(python_module_np1 1 test_module.py)
  sparcol_py_test(python_module_np3 3 test_module.py)
  sparcol_py_test(python_mpi_preinit_np2 2 test_mpi_preinit.py)

  # The native reference of the torch optimizer's trajectory test (a fixture of it).
  add_executable(sparcol_py_native_flat_problem python/native_flat_problem.cpp)
  target_link_libraries(sparcol_py_native_flat_problem PRIVATE sparcol sparcol_warnings)
  set(_ref ${CMAKE_CURRENT_BINARY_DIR}/python_native_trajectory.bin)
  add_test(NAME python_native_trajectory
           COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 ${SPARCOL_MPIEXEC_PREFLAGS}
                   $<TARGET_FILE:sparcol_py_native_flat_problem> ${_ref} 15 85 20 0.05 0.001 0.1)
  set_tests_properties(python_native_trajectory PROPERTIES LABELS "python;mpi" TIMEOUT 120
                       ENVIRONMENT "${SPARCOL_MPI_TEST_ENV}" FIXTURES_SETUP python_trajectory)
  sparcol_py_test(python_torch_optimizer_np2 2 test_torch_optimizer.py ${_ref})
  set_tests_properties(python_torch_optimizer_np2 PROPERTIES FIXTURES_REQUIRED python_trajectory)
  sparcol_py_test(python_ddp_hooks_np4 4 test_ddp_hooks.py)
else()
  add_test(NAME python_package COMMAND ${CMAKE_COMMAND} -E echo "skipped: the Python package is not built (${SPARCOL_PYTHON_REASON})")
  set_tests_properties(python_package PROPERTIES LABELS "python;mpi" SKIP_REGULAR_EXPRESSION "skipped:")
endif()
