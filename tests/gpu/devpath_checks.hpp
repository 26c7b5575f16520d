// Checks of the collectives' executor path (device/dispatch.hpp), written once over any Backend and
// any executor: Exec::host() on LoopbackBackend, on the NCCL emulation and on MpiBackend (every
// build, no GPU needed), and Exec::device() on MpiBackend (staging) and NcclBackend (GPU machines).
//
// The reference is the host path of the same collective, run with the same inputs on
// backend.control() (the backend itself for host backends, the MPI backend under NCCL). Inputs are
// non-integer floats, so the comparison is bitwise and catches any change of summation order;
// where the device path legitimately sums in another order (kNative: NCCL's own all-reduce) the
// inputs are integer-valued, so every order gives the same bits.
#pragma once

#include <cstdint>
#include <string>

#include "sparcol/comm/backend.hpp"
#include "sparcol/device/dispatch.hpp"

namespace sparcol::test {

struct DevCheck {
  std::uint64_t wrong = 0;
  std::string first;
  void fail(const std::string& what) {
    if (wrong++ == 0) first = what;
  }
};

// Algorithm: 0 auto, 1 ring, 2 direct, 3 native (RingAllreduce::Algorithm).
DevCheck check_ring_exec(comm::Backend& b, device::Exec& ex, std::size_t count, int algorithm,
                         std::uint64_t seed);
// k = 0, k = n, a wrapping block and a contiguous one are chosen by the caller through `wrap`.
DevCheck check_rbgs_exec(comm::Backend& b, device::Exec& ex, std::size_t n, std::size_t k, bool wrap,
                         std::uint64_t seed);
// Per-rank pair counts vary (one rank sends none), indices repeat across and within ranks; checks the
// gathered pairs and sum_into(out, K) against the host path. algorithm: 0 auto, 1 direct, 2 ring.
DevCheck check_sparse_exec(comm::Backend& b, device::Exec& ex, std::uint64_t n, std::size_t max_k,
                           int algorithm, std::uint64_t seed);
// The sign all-gather and both decoders.
DevCheck check_sign_exec(comm::Backend& b, device::Exec& ex, std::uint64_t n, std::uint64_t seed);
// The backend's dense operations (allreduce_sum, allgatherv, broadcast) on the executor's memory.
DevCheck check_dense_exec(comm::Backend& b, device::Exec& ex, std::size_t count, std::uint64_t seed);

// Number of ranks whose check failed (logical OR over the control backend).
int ranks_failed(comm::Backend& b, const DevCheck& c);

}  // namespace sparcol::test
