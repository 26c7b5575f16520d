// "sign": scaled sign, one bit per element plus one float (ALGORITHMS.md 1.4).
//
// C(v) = (||v||_1 / n) * sign(v) with sign(v_j) = +1 where v_j >= 0 (so sign(+-0) = +1) and -1
// elsewhere. The bits are packed in SignLayout and the message is a SignBits (core/payload.hpp:
// bit j%32 of word j/32 is 1 for +1, unused high bits 0); Message::sign() is its view.
// Wire: SignBits::wire_bytes(n) = 4*ceil(n/32) + 4 bytes (n/32 + 1 elements). kind kSign; ctx.k is ignored.
// Non-finite input is not hidden: a NaN gets bit 0, and the scale (see sign_scale) becomes NaN or Inf, so the
// decoded vector is non-finite and the caller's checks see it. Majority vote (config.sign_majority) is an
// aggregation choice of the Exchange, not of this class.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "sparcol/compress/compressor.hpp"

namespace sparcol::compress {

// Packs the sign bits of v into SignLayout::words_for(n) words.
void sign_pack(std::span<const float> v, std::uint32_t* words);
// ||v||_1 / n (0 for n = 0): float partial sums over blocks of 256, added in double in a fixed order.
float sign_scale(std::span<const float> v);

class SignCompressor final : public Compressor {
 public:
  explicit SignCompressor(bool majority) : majority_(majority) {}
  std::string name() const override { return "sign"; }
  Aggregation aggregation() const override { return Aggregation::kSign; }
  std::uint64_t target_k(std::uint64_t n) const override { return n; }
  void compress(std::span<const float> v, const Context& ctx, Message& out) override;
  // Whether the configuration asked for majority-vote aggregation (read by the Exchange).
  bool majority_vote() const { return majority_; }

 private:
  bool majority_;
};

}  // namespace sparcol::compress
