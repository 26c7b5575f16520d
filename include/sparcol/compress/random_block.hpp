// "rbgs": random block-wise gradient sparsification (ALGORITHMS.md 1.3).
//
// Every rank keeps the same contiguous block of k = k_floor(density, n) coordinates (ctx.k if set),
// starting at s = sparcol::rbgs_block(n, k, seed, step, tensor).start and wrapping past the end to 0.
// Message: kind kShared, is_block = true, block set, values = v on the block in wrap order
// (sparcol::rbgs_pack), indices empty (the block implies them). Wire: k values, 4k bytes.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "sparcol/compress/compressor.hpp"

namespace sparcol::compress {

class RbgsCompressor final : public Compressor {
 public:
  explicit RbgsCompressor(double density) : density_(density) {}
  std::string name() const override { return "rbgs"; }
  Aggregation aggregation() const override { return Aggregation::kShared; }
  std::uint64_t target_k(std::uint64_t n) const override { return k_floor(density_, n); }
  void compress(std::span<const float> v, const Context& ctx, Message& out) override;

 private:
  double density_;
};

}  // namespace sparcol::compress
