// The bench's inputs and expected results: integer-valued floats given by a formula in (seed, rank,
// index), so every rank computes the exact expected result itself and sums are exact in any order.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "sparcol/core/rng.hpp"
#include "sparcol/core/types.hpp"

namespace sparcol::bench {

using comm::Backend;

// Integer-valued input in [-16, 16] for (seed, rank, index): a 64-bit mix (splitmix64 finaliser), so
// any element of any rank can be recomputed anywhere. Sums over up to 2^19 ranks are exact in float32.
inline float input_value(std::uint64_t seed, int rank, std::uint64_t i) {
  std::uint64_t x = seed ^ (static_cast<std::uint64_t>(rank) << 40) ^ (i * 0xD1B54A32D192ED03ull);
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  x ^= x >> 31;
  return static_cast<float>(static_cast<int>(x % 33) - 16);
}

// The exact sum over ranks at index i.
inline float expected_sum(std::uint64_t seed, int ranks, std::uint64_t i) {
  float s = 0;
  for (int r = 0; r < ranks; ++r) s += input_value(seed, r, i);
  return s;
}

// Equal, with NaN equal to NaN (the --nan check expects NaN to propagate).
inline bool same(float got, float want) {
  return got == want || (std::isnan(got) && std::isnan(want));
}

// Rank r's k sparse indices: distinct and ascending (as a top-k selection sorted by index yields),
// one uniformly placed index in each of k equal strata of [0, d).
inline void sparse_indices(std::uint64_t seed, int rank, std::uint64_t d, std::uint64_t k,
                           std::vector<Index>& out) {
  out.resize(k);
  for (std::uint64_t j = 0; j < k; ++j) {
    const std::uint64_t lo = j * d / k, hi = (j + 1) * d / k;  // hi > lo because k <= d
    const std::uint64_t h =
        sparcol::counter_u64(seed, j, static_cast<std::uint32_t>(rank), sparcol::kStreamUser);
    out[j] = static_cast<Index>(lo + sparcol::uniform_below(h, hi - lo));
  }
}

inline void sparse_values(std::uint64_t seed, int rank, const std::vector<Index>& idx, bool nan,
                          std::vector<float>& out) {
  out.resize(idx.size());
  for (std::size_t j = 0; j < idx.size(); ++j) out[j] = input_value(seed, rank, idx[j]);
  if (nan && rank == 0 && !out.empty()) out[0] = std::numeric_limits<float>::quiet_NaN();
}

}  // namespace sparcol::bench
