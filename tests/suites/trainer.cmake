# The trainer (sparcol/train/{trainer,trace,checkpoint}.hpp) on threads-as-ranks, and sparcol-train as
# a user runs it under mpirun: a real Fashion-MNIST run whose trace layout is checked with h5py, a
# run killed with SIGKILL and resumed (bitwise the same loss trace and parameters), runs killed at
# random times, and bad input.
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
  foreach(case IN ITEMS data-missing-dir data-wrong-magic data-truncated data-wrong-count data-missing-file
                        data-garbage data-on-some-ranks trace-unwritable trace-exists save-params-unwritable
                        checkpoint-not-a-directory resume-nothing checkpoint-corrupt checkpoint-truncated
                        checkpoint-other-config checkpoint-other-world-size trace-other-config)
    add_test(NAME train_bad_${case} COMMAND bash ${_apps}/train_bad_input.sh ${_train} ${MPIEXEC_EXECUTABLE} ${case})
    # Bad input must end quickly on every rank: the timeout turns a hang into a failure.
    set_tests_properties(train_bad_${case} PROPERTIES LABELS "app;mpi;train" TIMEOUT 120
                         ENVIRONMENT "${SPARCOL_MPI_TEST_ENV}" PROCESSORS 2)
  endforeach()

  # Bad flags, one process (checked before any data is read): "expected text|arguments". No square
  # brackets in the texts: CMake would not split the list inside them.
  set(_train_bad_flags
    "unknown model 'vgg'|--model vgg"
    "--density must be in (0, 1|--density 0"
    "--density must be in (0, 1|--density 1.5"
    "unknown method 'adam'|--optimizer adam"
    "unknown compressor 'zip'|--compressor zip"
    "--lr must be > 0|--lr -1"
    "--momentum must be in|--momentum 1"
    "--alpha must be in|--alpha 2"
    "--batch must be in|--batch 0"
    "--epochs must be in (0, 1e6|--epochs 0"
    "needs --params|--model synthetic"
    "--params applies to --model synthetic only|--params 100"
    "--schedule step needs --milestones|--schedule step"
    "unknown schedule 'linear'|--schedule linear"
    "unknown partition 'random'|--partition random"
    "--dirichlet-alpha must be > 0|--partition dirichlet --dirichlet-alpha 0"
    "unknown policy 'ignore'|--nan-policy ignore"
    "unknown normalisation 'ln'|--norm ln"
    "unknown preset 'paper'|--preset paper"
    "--checkpoint-every needs --checkpoint DIR|--checkpoint-every 5"
    "--resume needs a checkpoint|--resume"
    "--eval-virtual applies to --optimizer def-a only|--eval-virtual"
    "--timeout must be in|--timeout -1"
    "--nope|--nope"
    "abc|--lr abc")
  set(_i 0)
  foreach(case ${_train_bad_flags})
    string(REPLACE "|" ";" parts "${case}")
    list(GET parts 0 want)
    list(GET parts 1 args)
    separate_arguments(args UNIX_COMMAND "${args}")
    add_test(NAME train_bad_flag_${_i} COMMAND ${_apps}/expect_fail.sh "${want}" ${_train} ${args})
    set_tests_properties(train_bad_flag_${_i} PROPERTIES LABELS "app;train" TIMEOUT 60
                         ENVIRONMENT "${SPARCOL_MPI_TEST_ENV}")
    math(EXPR _i "${_i} + 1")
  endforeach()
  add_test(NAME train_help COMMAND ${_train} --help)
  set_tests_properties(train_help PROPERTIES LABELS "app;train" TIMEOUT 60
                       PASS_REGULAR_EXPRESSION "--checkpoint-every.*--resume")
endif()
