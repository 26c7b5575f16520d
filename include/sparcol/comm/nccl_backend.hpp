// NcclBackend: the Backend interface over NCCL, on device memory (one GPU per rank).
//
// Built only when NCCL is found (SPARCOL_HAVE_NCCL; target sparcol_nccl); comm::make_backend("nccl")
// is the portable way to get one. Only src/comm/nccl_backend.cpp includes nccl.h: this header has
// no NCCL or CUDA type.
//
// Creation (create(), collective over the control backend): every rank checks its device ordinal
// (Error(kInvalidArgument) "device 3 does not exist ..."), the ranks exchange (host, device) so that
// two ranks on one GPU are an error naming both before NCCL sees them, rank 0 draws the NCCL unique
// id and broadcasts it over the control backend, and every rank creates a non-blocking communicator
// (ncclCommInitRankConfig with blocking = 0) and its own CUDA stream. A failure on any rank before
// NCCL is involved is an error on every rank.
//
// Semantics (see grouped_backend.hpp for the rules of NCCL point-to-point):
// * mem_kind() is kDevice: isend/irecv and the dense operations take device pointers
//   (Error(kInvalidArgument) naming the operation for host memory). control() is the host backend
//   the communicator was created over; sparcol's collectives send their fingerprints through it.
// * isend/irecv are ncclSend/ncclRecv of bytes, grouped: everything posted before a wait is issued
//   as one ncclGroupStart/End when the wait comes; tags are not matched, order per peer is.
// * allreduce_sum is ncclAllReduce (float, sum, in place); allgatherv is one group of ncclBroadcast,
//   one per rank with a non-empty contribution; broadcast is ncclBroadcast in place. They return
//   when the result is in place (the stream event has completed).
// * Every NCCL call is checked (Error(kBackend) naming the call and NCCL's message). Waits poll the
//   group's CUDA event and ncclCommGetAsyncError; on timeout() or an asynchronous error the
//   communicator is aborted (ncclCommAbort, so no kernel is left waiting for a dead peer) and
//   Error(kTimeout) / Error(kBackend) names the operation and the peer. After an abort every further
//   call throws Error(kBackend) "... was aborted".
// * All work is on stream() (non-blocking with respect to the legacy default stream). Device work
//   that produces a buffer for a send must be queued on stream() or have completed before the send
//   is posted; sparcol's collectives queue theirs on stream_handle().
#pragma once

#include <memory>
#include <string>

#include "sparcol/comm/grouped_backend.hpp"

namespace sparcol::comm {

class NcclBackend final : public GroupedBackend {
 public:
  // Collective over `control` (a host backend, typically MpiBackend::world(); owned from now on):
  // every rank of control calls it, with the CUDA device ordinal this rank is to use.
  static std::unique_ptr<NcclBackend> create(std::unique_ptr<Backend> control, int device);

  ~NcclBackend() override;

  std::string name() const override { return "nccl"; }
  MemKind mem_kind() const override { return MemKind::kDevice; }
  void* stream_handle() const override;

  void allreduce_sum(float* data, std::size_t count) override;
  void allgatherv(const void* send, void* recv, std::span<const std::size_t> recv_bytes) override;
  void broadcast(void* buf, std::size_t bytes, int root) override;

  int device() const { return device_; }
  // NCCL's version as "2.28.9".
  static std::string library_version();
  // Whether an earlier failure aborted the communicator.
  bool aborted() const;

  struct Impl;  // the communicator, the stream, the state of the abort

 protected:
  std::unique_ptr<Launched> launch(const std::vector<Op>& ops) override;
  void check_buffer(const void* buf, const char* what) const override;
  std::string abort_transport() override;
  void poll_failure() override;

 private:
  NcclBackend(std::unique_ptr<Backend> control, int device);
  // Waits for the stream's work so far (a dense operation) with the timeout; `what` names it.
  void wait_stream(const char* what, int peer);
  std::unique_ptr<Impl> impl_;
  int device_;
};

}  // namespace sparcol::comm
