// Random-k (ALGORITHMS.md 1.2): k distinct coordinates drawn uniformly at random.
//
// "randk" (independent): every rank draws its own indices; kind kSparse, the indices travel with the
// values (2k elements). "randk-shared": every rank draws the same indices; kind kShared with
// is_block = false, only the k values travel (k elements) and the aggregate is an all-reduce of them.
// Both give the indices in ascending order and k = k_round(density, n) unless ctx.k != 0.
//
// Randomness (counter RNG, core/rng.hpp), so that the draw is a pure function of its inputs:
//   key = counter_u64(seed, step, tensor, stream), then draw i uses counter_u64(key, i, sub, stream),
// with stream kStreamRandkLocal and sub = rank for "randk", and stream kStreamRandkShared and
// sub = 0 for "randk-shared" (so the shared draw cannot depend on the rank).
//
// Optional unbiased scaling (randk_scale): values = (n/k) * v at the indices and
// Message::value_scale = n/k; off by default (error feedback expects it off).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "sparcol/compress/compressor.hpp"
#include "sparcol/core/types.hpp"

namespace sparcol::compress {

// Draws k distinct indices uniformly from {0, ..., n-1} with Floyd's algorithm (k random numbers,
// every k-subset equally likely), marking them in a bitmap of n bits that is read back in index
// order: ascending output with no sort. k <= n. The bitmap is kept (all zero) between calls.
class DistinctSampler {
 public:
  void draw(std::uint64_t n, std::uint64_t k, std::uint64_t key, std::uint32_t sub, std::uint32_t stream,
            std::vector<Index>& out);

 private:
  std::vector<std::uint64_t> bitmap_;
};

class RandkCompressor final : public Compressor {
 public:
  RandkCompressor(double density, bool shared, bool scale)
      : density_(density), shared_(shared), scale_(scale) {}
  std::string name() const override { return shared_ ? "randk-shared" : "randk"; }
  Aggregation aggregation() const override { return shared_ ? Aggregation::kShared : Aggregation::kSparse; }
  std::uint64_t target_k(std::uint64_t n) const override { return k_round(density_, n); }
  void compress(std::span<const float> v, const Context& ctx, Message& out) override;

 private:
  double density_;
  bool shared_;
  bool scale_;
  DistinctSampler sampler_;
};

}  // namespace sparcol::compress
