# Helpers for the sbatch scripts in this directory; sourced by them, not a job script itself.
#
# Contract with the scripts: they set their knobs (SPARCOL_BIN, SPARCOL_RESULTS, SPARCOL_LAUNCHER,
# SPARCOL_SRUN_MPI and their own), refuse to run outside Slurm themselves (before sourcing this file,
# whose location they only know inside a job), then call sparcol_init with the names of their knobs.
# Every check fails with "sparcol-slurm: error: ..." on stderr and exit status 2, before any step runs
# and before the results directory exists.

sparcol_die() {
  echo "sparcol-slurm: error: $*" >&2
  exit 2
}

sparcol_log() {
  echo "sparcol-slurm: $*"
}

# Checks that every argument is an executable file.
sparcol_check_binaries() {
  local b
  for b in "$@"; do
    [ -x "$b" ] || sparcol_die "missing binary $b: build it (scripts/build.sh) or point SPARCOL_BIN at its directory"
  done
}

# sparcol_init: checks the allocation and the launcher; sets SPARCOL_TASKS, SPARCOL_NODES,
# SPARCOL_TASKS_PER_NODE and, when nodes are oversubscribed, OMPI_MCA_mpi_yield_when_idle.
sparcol_init() {
  SPARCOL_TASKS=${SLURM_NTASKS:-}
  SPARCOL_NODES=${SLURM_JOB_NUM_NODES:-${SLURM_NNODES:-1}}
  [ -n "$SPARCOL_TASKS" ] || sparcol_die "the job has no task count: submit it with -n/--ntasks (and -N/--nodes)"
  [[ "$SPARCOL_TASKS" =~ ^[0-9]+$ && "$SPARCOL_NODES" =~ ^[0-9]+$ && "$SPARCOL_NODES" -gt 0 ]] ||
    sparcol_die "unexpected SLURM_NTASKS='$SPARCOL_TASKS' or node count '$SPARCOL_NODES'"
  # Every node runs the same number of ranks: the scripts and the studies assume a regular layout
  # (one rank per GPU, the same number of GPUs per node), and an uneven one makes the slowest node
  # decide every step without saying so.
  if ((SPARCOL_TASKS % SPARCOL_NODES != 0)); then
    sparcol_die "$SPARCOL_TASKS tasks do not divide evenly over $SPARCOL_NODES nodes: ask for a multiple, e.g. -N $SPARCOL_NODES --ntasks-per-node=N"
  fi
  SPARCOL_TASKS_PER_NODE=$((SPARCOL_TASKS / SPARCOL_NODES))

  case "$SPARCOL_LAUNCHER" in
    srun)
      command -v srun >/dev/null || sparcol_die "srun not found on this node"
      ;;
    mpirun)
      command -v mpirun >/dev/null || sparcol_die "mpirun not found on this node (SPARCOL_LAUNCHER=mpirun)"
      # Open MPI refuses to start as root without these; under srun the ranks are not its children.
      if [ "$(id -u)" -eq 0 ]; then
        export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
      fi
      ;;
    *) sparcol_die "SPARCOL_LAUNCHER='$SPARCOL_LAUNCHER': use srun or mpirun" ;;
  esac

  # More ranks than cores on a node (Slurm may advertise more CPUs than there are): Open MPI believes
  # it owns a core per rank and busy-polls, and the waiting ranks starve the working ones (2000 small
  # all-reduces took 10 s instead of 0.01 s on the test machine). Yielding when idle avoids that.
  local cores
  cores=$(nproc)
  if ((SPARCOL_TASKS_PER_NODE > cores)) && [ -z "${OMPI_MCA_mpi_yield_when_idle:-}" ]; then
    export OMPI_MCA_mpi_yield_when_idle=1
    sparcol_log "$SPARCOL_TASKS_PER_NODE tasks per node on $cores cores: OMPI_MCA_mpi_yield_when_idle=1"
  fi
}

# sparcol_open_results KNOB... : creates the results directory $SPARCOL_OUT =
# $SPARCOL_RESULTS/<job name>-<job id> and records the knobs and the allocation in $SPARCOL_OUT/job.txt.
sparcol_open_results() {
  SPARCOL_OUT="$SPARCOL_RESULTS/${SLURM_JOB_NAME:-job}-$SLURM_JOB_ID"
  mkdir -p "$SPARCOL_OUT" || sparcol_die "cannot create the results directory $SPARCOL_OUT"
  {
    echo "# sparcol job $SLURM_JOB_ID ($SLURM_JOB_NAME), started $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "# nodes $SPARCOL_NODES (${SLURM_JOB_NODELIST:-?}), tasks $SPARCOL_TASKS, $(nproc) cores on $(hostname -s)"
    local k
    for k in SPARCOL_ROOT SPARCOL_BIN SPARCOL_RESULTS SPARCOL_LAUNCHER SPARCOL_SRUN_MPI "$@"; do
      echo "$k=${!k-}"
    done
    env | grep -E '^OMPI_MCA_' | sort || true
  } >"$SPARCOL_OUT/job.txt"
  sparcol_log "job $SLURM_JOB_ID: $SPARCOL_TASKS tasks on $SPARCOL_NODES node(s), results in $SPARCOL_OUT"
}

# sparcol_launch NP COMMAND... : runs an MPI program on NP ranks of this allocation (NP <= tasks).
# srun --mpi=pmix starts the ranks directly (Slurm wires them up through PMIx); mpirun starts them
# through Open MPI's own launcher, which finds the allocation from the SLURM_* environment.
sparcol_launch() {
  local np=$1
  shift
  ((np >= 1 && np <= SPARCOL_TASKS)) || sparcol_die "cannot run $np ranks in an allocation of $SPARCOL_TASKS tasks"
  # As few nodes as hold np ranks at the job's ranks per node, so a small run stays on one node.
  local nodes=$(((np + SPARCOL_TASKS_PER_NODE - 1) / SPARCOL_TASKS_PER_NODE))
  case "$SPARCOL_LAUNCHER" in
    srun) srun --mpi="$SPARCOL_SRUN_MPI" --nodes="$nodes" --ntasks="$np" --kill-on-bad-exit=1 "$@" ;;
    mpirun) mpirun -np "$np" --map-by "ppr:$SPARCOL_TASKS_PER_NODE:node" "$@" ;;
  esac
}

# sparcol_run LOG COMMAND... : runs COMMAND, its output both in the job's output and in LOG; returns
# the command's status without stopping the script (the scripts go on and report every failure).
sparcol_run() {
  local logfile=$1
  shift
  local status=0
  "$@" 2>&1 | tee "$logfile" || status=${PIPESTATUS[0]}
  return "$status"
}
