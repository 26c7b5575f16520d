// "none": no compression. kind kDense, values = v (n elements, 4n bytes on the wire); ctx.k is ignored.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "sparcol/compress/compressor.hpp"

namespace sparcol::compress {

class NoneCompressor final : public Compressor {
 public:
  std::string name() const override { return "none"; }
  Aggregation aggregation() const override { return Aggregation::kDense; }
  std::uint64_t target_k(std::uint64_t n) const override { return n; }
  void compress(std::span<const float> v, const Context& ctx, Message& out) override;
};

}  // namespace sparcol::compress
