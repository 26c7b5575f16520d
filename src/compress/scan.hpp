// The scan every threshold selection shares (private to src/compress): visit, in increasing index
// order, the elements whose magnitude key is at least a bound.
//
// Typical bounds keep about 1% of the elements, so the scan is dominated by the elements it skips.
// With SSE2 (every x86-64) it compares 16 keys at a time, gathers the results into a 16-bit mask
// (movemask) and walks only the set bits (count trailing zeros): no per-element branch, so no
// mispredictions on the random positions of the matches. Elsewhere it tests blocks of 16 with plain
// code the compiler vectorizes, then visits the elements of the blocks that have a match.
#pragma once

#include <bit>
#include <cstdint>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "sparcol/compress/topk.hpp"

namespace sparcol::compress::detail {

// Calls visit(i) for every i in [0, n) with magnitude_key(p[i]) >= bound, in increasing order, until
// visit returns false. bound <= kNanKey. Keys without the NaN clamp (bits & 0x7fffffff) give the same
// answer for such bounds and are < 2^31, so they compare correctly as signed 32-bit integers.
template <class Visit>
void for_each_at_least(const float* p, std::uint64_t n, std::uint32_t bound, Visit&& visit) {
  constexpr std::uint64_t kBlock = 16;
  std::uint64_t i = 0;
#if defined(__SSE2__)
  const __m128i abs_mask = _mm_set1_epi32(0x7fffffff);
  const __m128i below = _mm_set1_epi32(static_cast<std::int32_t>(bound) - 1);  // key > bound-1
  auto mask4 = [&](const float* q) {
    const __m128i key = _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)), abs_mask);
    return static_cast<std::uint32_t>(_mm_movemask_ps(_mm_castsi128_ps(_mm_cmpgt_epi32(key, below))));
  };
  for (; i + kBlock <= n; i += kBlock) {
    std::uint32_t m =
        mask4(p + i) | (mask4(p + i + 4) << 4) | (mask4(p + i + 8) << 8) | (mask4(p + i + 12) << 12);
    while (m != 0) {
      if (!visit(i + static_cast<std::uint64_t>(std::countr_zero(m)))) return;
      m &= m - 1;
    }
  }
#else
  const auto b = static_cast<std::int32_t>(bound);
  for (; i + kBlock <= n; i += kBlock) {
    int any = 0;  // no early exit, so that this vectorizes
    for (std::uint64_t j = 0; j < kBlock; ++j)
      any |= static_cast<int>(
          static_cast<std::int32_t>(std::bit_cast<std::uint32_t>(p[i + j]) & 0x7fffffffu) >= b);
    if (any == 0) continue;
    for (std::uint64_t j = i; j < i + kBlock; ++j)
      if (magnitude_key(p[j]) >= bound && !visit(j)) return;
  }
#endif
  for (; i < n; ++i)
    if (magnitude_key(p[i]) >= bound && !visit(i)) return;
}

}  // namespace sparcol::compress::detail
