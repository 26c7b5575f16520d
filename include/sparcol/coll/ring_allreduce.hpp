// Dense ring all-reduce (sum) of float32, in place, over any Backend.
//
// What it computes: data <- sum over ranks of data, identical bytes on every rank.
// Steps (K ranks, vector split into K balanced segments; segment i = [start(i), start(i+1))):
//   1. reduce-scatter, K-1 steps: at step s rank r sends segment (r - s) mod K to rank r+1 and adds
//      segment (r - s - 1) mod K received from rank r-1 into its own copy. After it, rank r holds
//      the full sum of segment (r + 1) mod K.
//   2. all-gather, K-1 steps: rank r passes the finished segments around the ring, received directly
//      into `data`.
// Each segment travels as pieces of at most piece_bytes (default 256 KiB), so the reduction of one
// piece overlaps the arrival of the next. Scratch: one segment (ceil(count/K) floats), not a second
// full-size buffer.
// Bytes sent per rank: 2 * (K-1)/K * 4 * count (exactly: the sizes of the 2(K-1) segments sent).
// Summation order: segment i is accumulated in ring order i+1, i+2, ..., i (mod K). The order is a
// fixed function of (K, count), so results are deterministic run to run and identical on all ranks,
// but not always equal bit for bit to a sum in rank order (they are for integer-valued floats).
// NaN and Inf propagate as in IEEE addition.
// Preconditions: every rank calls run() with the same count (checked by the call fingerprint).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "sparcol/comm/backend.hpp"

namespace sparcol::coll {

class RingAllreduce {
 public:
  static constexpr std::size_t kDefaultPieceBytes = 256 * 1024;

  RingAllreduce(comm::Backend& backend, std::size_t count, std::size_t piece_bytes = kDefaultPieceBytes);

  // In-place sum over ranks. `step` only enters the call fingerprint (mismatch detection).
  void run(float* data, std::uint64_t step = 0);

  std::size_t count() const { return count_; }
  // Payload bytes this rank sends (and receives) in one run().
  std::uint64_t bytes_sent_per_run() const { return bytes_per_run_; }

  // The ring itself without the fingerprint exchange; for collectives built on top (RBGS).
  void run_unchecked(float* data);

 private:
  std::size_t seg_start(int i) const;
  std::size_t seg_len(int i) const { return seg_start(i + 1) - seg_start(i); }
  void exchange(const float* send, std::size_t send_len, float* recv, std::size_t recv_len, bool reduce,
                float* target);

  comm::Backend& backend_;
  std::size_t count_;
  std::size_t piece_floats_;
  std::vector<float> scratch_;
  std::vector<comm::Request> reqs_;
  std::uint64_t bytes_per_run_ = 0;
};

// One-shot convenience: RingAllreduce(backend, count).run(data).
void ring_allreduce_sum(comm::Backend& backend, float* data, std::size_t count);

}  // namespace sparcol::coll
