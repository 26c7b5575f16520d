#include "sparcol/compress/sign.hpp"

#include <algorithm>
#include <cmath>

#include "common.hpp"

namespace sparcol::compress {

void sign_pack(std::span<const float> v, std::uint32_t* words) {
  sparcol::sign_pack(v, words);
}

float sign_scale(std::span<const float> v) {
  return sparcol::sign_scale(v);
}

void SignCompressor::compress(std::span<const float> v, const Context& /*ctx*/, Message& out) {
  const std::uint64_t n = v.size();
  detail::check_length(n, "sign");
  out.reset(Aggregation::kSign, n);
  out.bits.resize(SignLayout::words_for(n));
  sign_pack(v, out.bits.data());
  out.scale = sign_scale(v);
}

}  // namespace sparcol::compress
