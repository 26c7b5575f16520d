#include "sparcol/compress/sign.hpp"

#include <cmath>

#include "common.hpp"

namespace sparcol::compress {

void sign_pack(std::span<const float> v, std::uint32_t* words) {
  const std::uint64_t n = v.size();
  const float* p = v.data();
  const std::uint64_t full = n / 32;
  for (std::uint64_t w = 0; w < full; ++w) {
    std::uint32_t bits = 0;
    for (std::uint32_t b = 0; b < 32; ++b) bits |= static_cast<std::uint32_t>(p[w * 32 + b] >= 0.0f) << b;
    words[w] = bits;
  }
  if (n % 32 != 0) {
    std::uint32_t bits = 0;
    for (std::uint64_t j = full * 32; j < n; ++j) bits |= static_cast<std::uint32_t>(p[j] >= 0.0f) << (j & 31);
    words[full] = bits;
  }
}

float sign_scale(std::span<const float> v) {
  if (v.empty()) return 0.0f;
  // Four partial sums: shorter dependency chains, and a fixed order (bitwise reproducible).
  double s[4] = {0, 0, 0, 0};
  const std::uint64_t n = v.size();
  std::uint64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int j = 0; j < 4; ++j) s[j] += std::fabs(static_cast<double>(v[i + static_cast<std::uint64_t>(j)]));
  for (; i < n; ++i) s[0] += std::fabs(static_cast<double>(v[i]));
  return static_cast<float>(((s[0] + s[1]) + (s[2] + s[3])) / static_cast<double>(n));
}

void SignCompressor::compress(std::span<const float> v, const Context& /*ctx*/, Message& out) {
  const std::uint64_t n = v.size();
  detail::check_length(n, "sign");
  out.reset(Aggregation::kSign, n);
  out.bits.resize((n + 31) / 32);
  sign_pack(v, out.bits.data());
  out.scale = sign_scale(v);
}

}  // namespace sparcol::compress
