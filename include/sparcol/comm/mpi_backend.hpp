// MpiBackend: the Backend interface over MPI (Open MPI here).
//
// The backend duplicates the communicator it is given (MPI_Comm_dup), so sparcol's messages never
// match the application's, and sets MPI_ERRORS_RETURN on the duplicate: every MPI call is checked
// and a failure throws Error(kBackend) naming the MPI function, the MPI error string and the rank.
// This header is free of MPI types; only src/comm/mpi_backend.cpp includes <mpi.h>.
//
// Blocking waits poll MPI_Test until done or timeout() (Error(kTimeout) naming the peer). The dense
// baselines call the blocking MPI collectives (MPI_Allreduce, MPI_Allgatherv, MPI_Bcast) so that they
// are the best the MPI library offers; they are the "plain MPI" reference in benchmarks and tests.
//
// Device buffers (accepts(kDevice)): every operation also takes CUDA device memory and stages it
// through page-locked host memory, so that sparcol needs no CUDA-aware MPI. isend copies the buffer
// to a pinned staging buffer before MPI_Isend (the copy is synchronous: device work producing the
// buffer must have completed, which sparcol's collectives ensure); irecv receives into a staging
// buffer and copies it to the device when the request completes (in wait, wait_all or test). The
// dense operations copy in, call MPI, and copy out. Staging buffers come from a pool owned by the
// backend (allocated on first use, reused after). Host buffers take exactly the path they took
// before (one cached "is there a GPU" check, then one pointer query per call when there is one).
#pragma once

#include <memory>
#include <span>
#include <string>

#include "sparcol/comm/backend.hpp"

namespace sparcol::comm {

// MPI's thread support levels, in increasing order (MPI_THREAD_SINGLE ... MPI_THREAD_MULTIPLE).
enum class ThreadLevel { kSingle, kFunneled, kSerialized, kMultiple };
const char* to_string(ThreadLevel level) noexcept;

// Initialises MPI (MPI_Init_thread at the `required` level, MPI_THREAD_FUNNELED by default) unless
// already initialised, and finalises it on destruction if it initialised it. One per process, in
// main() (or, for the Python module, one for the interpreter's lifetime). When MPI was already
// initialised by someone else, nothing is done: compare thread_level() with what you need.
class MpiEnvironment {
 public:
  MpiEnvironment(int* argc, char*** argv, ThreadLevel required = ThreadLevel::kFunneled);
  ~MpiEnvironment();
  MpiEnvironment(const MpiEnvironment&) = delete;
  MpiEnvironment& operator=(const MpiEnvironment&) = delete;

  // Whether this object initialised MPI (and will finalise it).
  bool owns() const { return owns_; }
  // Whether MPI is initialised and not yet finalised.
  static bool active();
  // The thread level MPI provides (MPI_Query_thread); kSingle when MPI is not active.
  static ThreadLevel thread_level();
  static int world_rank();  // rank in MPI_COMM_WORLD, or -1 if MPI is not initialised
  static int world_size();
  // MPI_Abort(MPI_COMM_WORLD, code): for programs after printing their error message.
  [[noreturn]] static void abort(int code);
  // The library's version string (MPI_Get_library_version), first line.
  static std::string library_version();
  // This process's rank among the processes of its node (a collective over MPI_COMM_WORLD: the rank
  // in an MPI_COMM_TYPE_SHARED split); 0 when MPI is not initialised.
  static int node_local_rank();

 private:
  bool owns_ = false;
};

class MpiBackend final : public Backend {
 public:
  // Duplicates MPI_COMM_WORLD.
  static std::unique_ptr<MpiBackend> world();
  // Duplicates the communicator whose Fortran handle is `fortran_comm` (MPI_Comm_c2f(comm)), which
  // keeps MPI types out of this header.
  static std::unique_ptr<MpiBackend> from_fortran_handle(int fortran_comm);

  ~MpiBackend() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "mpi"; }
  bool accepts(MemKind) const override { return true; }  // device memory is staged (see above)

  Request isend(const void* buf, std::size_t bytes, int peer, int tag) override;
  Request irecv(void* buf, std::size_t bytes, int peer, int tag) override;
  void wait_all(std::span<Request> requests) override;
  void allreduce_sum(float* data, std::size_t count) override;
  void allreduce_bxor(std::uint64_t* data, std::size_t count) override;
  void allgatherv(const void* send, void* recv, std::span<const std::size_t> recv_bytes) override;
  void broadcast(void* buf, std::size_t bytes, int root) override;
  std::unique_ptr<Backend> duplicate() override;       // MPI_Comm_dup of this backend's communicator
  std::string concurrent_use_reason() const override;  // needs MPI_THREAD_MULTIPLE

  // MPI's own neighbourhood collective on a graph (the reference of sparcol-bench --op neighbor):
  // MPI_Dist_graph_create_adjacent over `neighbors` (this rank's list; the graph must be symmetric,
  // every rank calls it with its own list; the communicator is made once per list and kept), then
  // MPI_Neighbor_alltoallv of `bytes` bytes per neighbour: neighbour k's block at send + k*bytes, its
  // block to us at recv + k*bytes. Host memory, blocking, no fingerprint, no timeout (MPI's own call).
  void neighbor_alltoall(std::span<const int> neighbors, const void* send, void* recv, std::size_t bytes);

  struct Impl;  // holds the MPI_Comm

 protected:
  // Asks the silent peer whom it waits for, and so on along the chain (docs/reliability.md,
  // "Who is to blame for a timeout").
  std::string explain_wait(const RequestInfo& info) const override;

 private:
  explicit MpiBackend(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace sparcol::comm
