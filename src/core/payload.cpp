#include "sparcol/core/payload.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace sparcol {

void rbgs_pack(const float* v, const Block& b, float* packed) {
  const auto first = static_cast<std::ptrdiff_t>(b.first_len());
  std::copy(v + b.start, v + b.start + first, packed);
  std::copy(v, v + b.wrap_len(), packed + first);
}

void rbgs_unpack(const float* packed, const Block& b, float* v) {
  const auto first = static_cast<std::ptrdiff_t>(b.first_len());
  std::copy(packed, packed + first, v + b.start);
  std::copy(packed + first, packed + b.length, v);
}

void sign_pack(std::span<const float> v, std::uint32_t* words) {
  constexpr std::uint64_t kW = SignLayout::kWordBits;
  static_assert(kW == 32, "the SSE2 path fills one 32-bit word per 8 movemasks");
  const std::uint64_t n = v.size();
  const float* p = v.data();
  const std::uint64_t full = n / kW;  // words whose kW bits are all elements
  for (std::uint64_t w = 0; w < full; ++w) {
    const float* q = p + w * kW;
    std::uint32_t bits = 0;
#if defined(__SSE2__)
    // 4 comparisons per instruction, their results gathered by movemask (x86-64 always has SSE2).
    // cmpge is false for NaN, as SignLayout::bit_for is.
    const __m128 zero = _mm_setzero_ps();
    for (std::uint32_t b = 0; b < kW; b += 4)
      bits |= static_cast<std::uint32_t>(_mm_movemask_ps(_mm_cmpge_ps(_mm_loadu_ps(q + b), zero))) << b;
#else
    for (std::uint32_t b = 0; b < kW; ++b) bits |= SignLayout::placed(q[b], b);
#endif
    words[w] = bits;
  }
  if (n % kW != 0) {
    std::uint32_t bits = 0;
    for (std::uint64_t j = full * kW; j < n; ++j) bits |= SignLayout::placed(p[j], j);
    words[full] = bits;
  }
}

float sign_scale(std::span<const float> v) {
  if (v.empty()) return 0.0f;
  // 8 float lanes per block of 256 elements, blocks added in double: vectorizes, keeps the relative
  // error near 1e-6, and the fixed order makes the scale reproducible bit for bit.
  constexpr std::size_t kLanes = 8, kBlock = 256;
  const std::size_t n = v.size();
  const float* p = v.data();
  double total = 0;
  for (std::size_t b = 0; b < n; b += kBlock) {
    const std::size_t end = std::min(n, b + kBlock);
    float s[kLanes] = {};
    std::size_t i = b;
    for (; i + kLanes <= end; i += kLanes)
      for (std::size_t j = 0; j < kLanes; ++j) s[j] += std::fabs(p[i + j]);
    for (; i < end; ++i) s[0] += std::fabs(p[i]);
    double block = 0;
    for (const float x : s) block += static_cast<double>(x);
    total += block;
  }
  return static_cast<float>(total / static_cast<double>(n));
}

}  // namespace sparcol
