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
// Preconditions: every rank calls run() with the same count and algorithm (the count is checked by the
// call fingerprint).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "sparcol/coll/agree.hpp"
#include "sparcol/comm/backend.hpp"

namespace sparcol::coll {

class RingAllreduce {
 public:
  enum class Algorithm { kAuto, kRing, kDirect };
  static constexpr std::size_t kDefaultPieceBytes = 256 * 1024;
  static constexpr int kDirectMaxRanks = 16;
  static constexpr std::size_t kDirectMaxBytes = std::size_t{8} << 20;

  RingAllreduce(comm::Backend& backend, std::size_t count, std::size_t piece_bytes = kDefaultPieceBytes,
                Algorithm algorithm = Algorithm::kAuto);

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
  Algorithm algorithm() const { return direct_ ? Algorithm::kDirect : Algorithm::kRing; }

 private:
  std::size_t seg_start(int i) const;
  std::size_t seg_len(int i) const { return seg_start(i + 1) - seg_start(i); }
  void exchange(const float* send, std::size_t send_len, float* recv, std::size_t recv_len, bool reduce,
                float* target);
  void run_ring(float* data);
  void run_direct(float* data, Agreement* pending);

  comm::Backend& backend_;
  std::size_t count_;
  std::size_t piece_floats_;
  bool direct_ = false;
  std::vector<float> scratch_;  // ring: one segment; direct: K-1 copies of this rank's segment
  std::vector<comm::Request> reqs_;
  std::uint64_t bytes_per_run_ = 0;
};

// One-shot convenience: RingAllreduce(backend, count).run(data).
void ring_allreduce_sum(comm::Backend& backend, float* data, std::size_t count);

}  // namespace sparcol::coll
