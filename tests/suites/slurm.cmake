# The sbatch scripts (slurm/) end to end on a single-node Slurm cluster brought up on this machine
# and torn down afterwards (scripts/slurm-local.sh run-tests; checks in tests/slurm/). Needs root;
# installs munge, slurmctld, slurmd and slurm-client through scripts/setup.sh when they are missing.
# With the trainer built, the training job and the scaling study's training runs are checked too.
if(TARGET sparcol-bench)
  set(_slurm_args run-tests --bin $<TARGET_FILE_DIR:sparcol-bench>)
  if(TARGET sparcol-train)
    list(APPEND _slurm_args --train)
  endif()
  add_test(NAME slurm_local_cluster COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/slurm-local.sh ${_slurm_args})
  # RESOURCE_LOCK: two of these would both advertise 8 CPUs on the same 2 cores.
  set_tests_properties(slurm_local_cluster PROPERTIES LABELS slurm TIMEOUT 300 PROCESSORS 2
                       SKIP_RETURN_CODE 77 RESOURCE_LOCK sparcol_slurm)
endif()
