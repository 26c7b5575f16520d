// A host-memory emulation of NCCL's point-to-point rules, for testing NcclBackend's host logic
// (GroupedBackend) and every collective's use of it on machines without a GPU.
//
// EmulatedNcclBackend is a GroupedBackend whose transport follows NCCL's rules strictly:
//   * matching by order only: the i-th send from a to b meets the i-th receive at b from a, tags are
//     ignored (a size mismatch, undefined in NCCL, is reported here as Error(kMismatch));
//   * groups of a rank run one after the other, as kernels on one stream: a group's operations are
//     matchable only once every earlier group of that rank has completed, and a group completes
//     only when all its operations have;
//   * host memory instead of device memory (mem_kind() is kHost), and the dense operations go
//     through the control backend after the rank's groups have drained.
// Ranks are threads (LoopbackWorld); the control backend is the thread's LoopbackBackend.
// A collective that would deadlock on NCCL (waiting for a group whose sends the peer receives only
// in a later group) deadlocks here too, and the backend's timeout reports it.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "sparcol/comm/grouped_backend.hpp"

namespace sparcol::test {

class EmulatedNcclState;

class EmulatedNcclBackend final : public comm::GroupedBackend {
 public:
  EmulatedNcclBackend(std::shared_ptr<EmulatedNcclState> state, comm::Backend& control);

  std::string name() const override { return "nccl-emulated"; }

  void allreduce_sum(float* data, std::size_t count) override;
  void allgatherv(const void* send, void* recv, std::span<const std::size_t> recv_bytes) override;
  void broadcast(void* buf, std::size_t bytes, int root) override;

  // Times abort_transport() ran on this backend (a timeout aborts once).
  int aborts() const { return aborts_; }

 protected:
  std::unique_ptr<Launched> launch(const std::vector<Op>& ops) override;
  void check_buffer(const void* buf, const char* what) const override;
  void idle() override;
  std::string abort_transport() override;

 private:
  std::shared_ptr<EmulatedNcclState> state_;
  int aborts_ = 0;
};

// Runs fn(backend) on `size` threads, each with an EmulatedNcclBackend; rethrows the first failure
// (LoopbackWorld::run's contract; a failed rank makes the others' waits throw).
void run_emulated_nccl(int size, const std::function<void(comm::Backend&)>& fn);

}  // namespace sparcol::test
