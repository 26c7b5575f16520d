// Dense all-reduce (sum) of float32, in place, over any Backend: a ring, or a direct exchange for
// short vectors on few ranks.
//
// What it computes: data <- sum over ranks of data, identical bytes on every rank.
// The vector is split into K balanced segments (segment i = [start(i), start(i+1)); the remainder goes
// to the first segments). Two algorithms, both bandwidth-optimal:
// * ring (Algorithm::kRing):
//   1. reduce-scatter, K-1 steps: at step s rank r sends segment (r - s) mod K to rank r+1 and adds
//      segment (r - s - 1) mod K received from rank r-1 into its own copy. After it, rank r holds
//      the full sum of segment (r + 1) mod K.
//   2. all-gather, K-1 steps: rank r passes the finished segments around the ring, received directly
//      into `data`.
//   Each segment travels as pieces of at most piece_bytes (default 256 KiB), so the reduction of one
//   piece overlaps the arrival of the next. Scratch: one segment (ceil(count/K) floats).
//   Summation order: segment i is accumulated in ring order i+1, i+2, ..., i (mod K).
// * direct (Algorithm::kDirect):
//   1. reduce-scatter in one round: rank r sends segment j straight to rank j (all K-1 sends posted at
//      once) and receives the K-1 other copies of segment r, which it sums in rank order 0, 1, ..., K-1.
//   2. all-gather in one round: rank r sends its finished segment to every other rank, received
//      directly into `data`.
//   Two rounds instead of 2(K-1): the time is about two message times instead of 2(K-1) in sequence,
//   which matters for short vectors (latency-bound) and when ranks share cores (every round waits for
//   a peer to be scheduled). Scratch: K-1 segments ((K-1)/K of the vector), hence only for short
//   vectors.
// * kAuto (the default) picks direct for K <= kDirectMaxRanks and 4 * count <= kDirectMaxBytes,
//   ring otherwise; the choice is a function of (K, count) only, so every rank makes the same one.
// Bytes sent per rank: 2 * (K-1)/K * 4 * count for both (exactly: the sizes of the segments sent).
// Determinism: the summation order is a fixed function of (K, count), so results are identical run to
// run and on all ranks, but not always equal bit for bit to a sum in rank order for the ring (they are
// for integer-valued floats, and the direct algorithm sums in rank order).
// NaN and Inf propagate as in IEEE addition.
// * native (Algorithm::kNative): the backend's own dense all-reduce (ncclAllReduce on NcclBackend,
//   MPI_Allreduce on MpiBackend) after the call fingerprint. kAuto picks it on a device backend
//   (NCCL), whose own ring and tree kernels a host-driven ring of point-to-point steps cannot match.
// Preconditions: every rank calls run() with the same count and algorithm (the count is checked by the
// call fingerprint).
//
// Device memory (docs/gpu.md): given an executor (device/dispatch.hpp), `data` and the scratch live in
// the executor's memory and the reduction steps run there (kernel add_into on the GPU); the
// algorithms, messages and summation orders are the host path's, so the results are bitwise the
// same. Device work is synchronised before anything is posted (unless it is queued on the backend's
// own stream), and run() returns with the result in place. With Exec::host() the same code runs on
// host memory through the CPU twins (how it is tested without a GPU). Without an executor the host
// path below runs exactly as it always has.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "sparcol/coll/agree.hpp"
#include "sparcol/comm/backend.hpp"
#include "sparcol/device/dispatch.hpp"

namespace sparcol::coll {

class RingAllreduce {
 public:
  enum class Algorithm { kAuto, kRing, kDirect, kNative };
  static constexpr std::size_t kDefaultPieceBytes = 256 * 1024;
  static constexpr int kDirectMaxRanks = 16;
  static constexpr std::size_t kDirectMaxBytes = std::size_t{8} << 20;

  // exec: where `data` lives and local work runs (nullptr: host memory, the host path). The executor
  // must outlive this object; the backend must accept its memory kind (Error(kInvalidArgument)).
  RingAllreduce(comm::Backend& backend, std::size_t count, std::size_t piece_bytes = kDefaultPieceBytes,
                Algorithm algorithm = Algorithm::kAuto, device::Exec* exec = nullptr);

  // In-place sum over ranks. `step` only enters the call fingerprint (mismatch detection).
  void run(float* data, std::uint64_t step = 0);

  std::size_t count() const { return count_; }
  // Payload bytes this rank sends (and receives) in one run().
  std::uint64_t bytes_sent_per_run() const { return bytes_per_run_; }

  // The all-reduce itself without the fingerprint exchange; for collectives built on top (RBGS).
  void run_unchecked(float* data);
  // For collectives built on top (RBGS) that started their own call fingerprint: finishes `pending`
  // (throwing its mismatch error, before `data` is touched) within the all-reduce's first round when
  // the algorithm is direct, before the all-reduce otherwise.
  void run_with(float* data, Agreement& pending);

  // The algorithm run() uses (kAuto resolved).
  Algorithm algorithm() const {
    return native_ ? Algorithm::kNative : direct_ ? Algorithm::kDirect : Algorithm::kRing;
  }

 private:
  std::size_t seg_start(int i) const;
  std::size_t seg_len(int i) const { return seg_start(i + 1) - seg_start(i); }
  void exchange(const float* send, std::size_t send_len, float* recv, std::size_t recv_len, bool reduce,
                float* target);
  void run_ring(float* data);
  void run_direct(float* data, Agreement* pending);
  float* scratch() { return exec_ != nullptr ? d_scratch_.data() : scratch_.data(); }
  // Device path: lets the device work queued so far finish before buffers are handed to the backend.
  void settle_device_work();

  comm::Backend& backend_;
  std::size_t count_;
  std::size_t piece_floats_;
  bool direct_ = false;
  bool native_ = false;
  device::Exec* exec_ = nullptr;
  std::vector<float> scratch_;       // ring: one segment; direct: K-1 copies of this rank's segment
  device::Buffer<float> d_scratch_;  // the same in the executor's memory (device path)
  std::vector<comm::Request> reqs_;
  std::uint64_t bytes_per_run_ = 0;
};

// One-shot convenience: RingAllreduce(backend, count).run(data).
void ring_allreduce_sum(comm::Backend& backend, float* data, std::size_t count);

}  // namespace sparcol::coll
