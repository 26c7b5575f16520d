// RBGS all-reduce: ring all-reduce of one random contiguous block shared by all ranks.
//
// ALGORITHMS.md 1.3. Every rank derives the same block from (seed, step, tensor) with the
// counter-based RNG (core/rng.hpp): start s = uniform{0..n-1}, length k, positions
// {s, s+1, ..., s+k-1} mod n, so a block that runs past the end wraps around to index 0.
// Steps: a block that does not wrap is contiguous and is ring all-reduced (sum) in place. A block that
// wraps (probability about k/n per step) is (1) packed in wrap order into k contiguous floats,
// (2) ring all-reduced, (3) unpacked in place. Positions outside the block are not touched.
// Bytes sent per rank: 2 * (K-1)/K * 4k (no indices travel: the block is implied by the seed).
// Preconditions: every rank passes the same (n, k, seed, step, tensor): checked by the call
// fingerprint, so a disagreement is an Error(kMismatch), never a silently wrong block.
// Device memory: with an executor (see ring_allreduce.hpp) `data` lives in its memory, the packing
// of a wrapping block runs there (rbgs_pack / rbgs_unpack kernels), and the block is all-reduced by
// the ring all-reduce's device path (on NCCL: ncclAllReduce of the block, Algorithm::kNative).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "sparcol/coll/ring_allreduce.hpp"
#include "sparcol/comm/backend.hpp"
#include "sparcol/core/payload.hpp"

namespace sparcol::coll {

// The block type, its draw from (seed, step, tensor) and its host packing are payload types of
// core (sparcol::Block, sparcol::rbgs_block, sparcol::rbgs_pack / rbgs_unpack in core/payload.hpp).

class RbgsAllreduce {
 public:
  // exec: where the data lives (nullptr: host memory); must outlive this object.
  RbgsAllreduce(comm::Backend& backend, std::size_t n, std::size_t k, device::Exec* exec = nullptr);

  // data[block] <- sum over ranks of data[block]; returns the block used.
  Block run(float* data, std::uint64_t seed, std::uint64_t step, std::uint32_t tensor = 0);

  // For callers that already packed their block (the optimizers): packed (k floats) <- sum over ranks.
  void run_packed(float* packed, std::uint64_t seed, std::uint64_t step, std::uint32_t tensor = 0);

  std::size_t n() const { return n_; }
  std::size_t k() const { return k_; }
  std::uint64_t bytes_sent_per_run() const { return ring_.bytes_sent_per_run(); }

 private:
  comm::Backend& backend_;
  std::size_t n_, k_;
  RingAllreduce ring_;
  device::Exec* exec_;
  std::vector<float> packed_;
  device::Buffer<float> d_packed_;  // device path
};

}  // namespace sparcol::coll
