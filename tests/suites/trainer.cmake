# The trainer (sparcol/train/{trainer,trace,checkpoint}.hpp) on threads-as-ranks, and sparcol-train as
# a user runs it under mpirun: a real Fashion-MNIST run whose trace layout is checked with h5py, a
# run killed with SIGKILL and resumed (bitwise the same loss trace and parameters), runs killed at
# random times, and bad input that needs runs set up first (the rest: tests/apps/bad_input.table).
if(TARGET sparcol_train)
  add_executable(sparcol_trainer_tests ${CMAKE_CURRENT_LIST_DIR}/../train/test_trainer.cpp)
  target_link_libraries(sparcol_trainer_tests PRIVATE sparcol_train sparcol_io GTest::gtest_main sparcol_warnings)
  gtest_discover_tests(sparcol_trainer_tests PROPERTIES LABELS "train" TIMEOUT 300)
endif()

if(TARGET sparcol-train)
  set(_train $<TARGET_FILE:sparcol-train>)
  set(_apps ${CMAKE_CURRENT_LIST_DIR}/../apps)
  # Scripts call "$mpiexec -np N"; the environment allows root and oversubscription.
  add_test(NAME train_e2e_np2 COMMAND bash ${_apps}/train_e2e.sh ${_train} ${MPIEXEC_EXECUTABLE})
  add_test(NAME train_kill_resume_np2 COMMAND bash ${_apps}/train_kill_resume.sh ${_train} ${MPIEXEC_EXECUTABLE} 2)
  set_tests_properties(train_e2e_np2 train_kill_resume_np2 PROPERTIES LABELS "app;mpi;train" TIMEOUT 300
                       ENVIRONMENT "${SPARCOL_MPI_TEST_ENV}" PROCESSORS 2 SKIP_RETURN_CODE 77)
  # 20 runs killed with SIGKILL at random times (the seed is printed), each resumed and checked; label
  # faults keeps it out of the sanitizer pass (timing under ASan would only slow it down).
  add_test(NAME train_kill_random_np2 COMMAND bash ${_apps}/train_kill_random.sh ${_train} ${MPIEXEC_EXECUTABLE} 20)
  set_tests_properties(train_kill_random_np2 PROPERTIES LABELS "app;mpi;train;faults" TIMEOUT 300
                       ENVIRONMENT "${SPARCOL_MPI_TEST_ENV}" PROCESSORS 2)
  # Bad flags, data files, checkpoint files and outputs: rows of tests/apps/bad_input.table
  # (tests/suites/bad_input.cmake). These cases need more than one command or rank to set up.
  foreach(case IN ITEMS data-on-some-ranks trace-exists checkpoint-other-config checkpoint-other-world-size
                        trace-other-config)
    add_test(NAME train_bad_${case} COMMAND bash ${_apps}/train_bad_input.sh ${_train} ${MPIEXEC_EXECUTABLE} ${case})
    # Bad input must end quickly on every rank: the timeout turns a hang into a failure.
    set_tests_properties(train_bad_${case} PROPERTIES LABELS "app;mpi;train" TIMEOUT 120
                         ENVIRONMENT "${SPARCOL_MPI_TEST_ENV}" PROCESSORS 2)
  endforeach()

  add_test(NAME train_help COMMAND ${_train} --help)
  set_tests_properties(train_help PROPERTIES LABELS "app;train" TIMEOUT 60
                       PASS_REGULAR_EXPRESSION "--checkpoint-every.*--resume")
endif()
