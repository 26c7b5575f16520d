// make_backend: a Backend by name, for programs that let the user choose ("mpi", "nccl",
// "loopback"). The only place in sparcol that knows which backends were compiled in
// (src/comm/make_backend.cpp tests SPARCOL_HAVE_NCCL); everything else sees the Backend interface.
//
//   mpi       MpiBackend::world(): MPI must be initialised (a comm::MpiEnvironment in main).
//   nccl      NcclBackend over a fresh MpiBackend::world() (the control backend: unique id,
//             fingerprints), on one CUDA device per rank: options.device if >= 0, else the rank's
//             local rank on its node (local_rank()). Error(kInvalidArgument) "backend 'nccl' is not
//             compiled in ..." in builds without NCCL; Error(kInvalidArgument) naming the device when
//             that ordinal does not exist (which includes every ordinal on a machine without a GPU).
//   loopback  rank options.loopback_rank of options.loopback_world (threads as ranks; see loopback.hpp),
//             or the only rank of a new one-rank world when no world is given.
// Any other name is Error(kInvalidArgument) listing the names this build has.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "sparcol/comm/backend.hpp"
#include "sparcol/comm/loopback.hpp"

namespace sparcol::comm {

struct BackendOptions {
  int device = -1;  // nccl: the CUDA device; -1: the local rank
  std::shared_ptr<LoopbackWorld> loopback_world;
  int loopback_rank = 0;
};

std::unique_ptr<Backend> make_backend(const std::string& name, const BackendOptions& options = {});

// Every name make_backend knows, and whether this build has it.
const std::vector<std::string>& backend_names();
bool backend_compiled(const std::string& name);
// The version of the library behind a backend ("2.28.9" for nccl, MPI's first line for mpi, the
// sparcol version for loopback); empty for a backend that is not compiled in.
std::string backend_library_version(const std::string& name);

// This process's rank among the ranks on its node, for choosing its GPU: the launcher's variable
// (OMPI_COMM_WORLD_LOCAL_RANK, MV2_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID), else the rank within an
// MPI_COMM_TYPE_SHARED split of MPI_COMM_WORLD (a collective then: every rank must call it), else 0
// when MPI is not initialised. A variable that is set but not a non-negative integer is
// Error(kInvalidArgument) naming it.
int local_rank();

}  // namespace sparcol::comm
