#include "sparcol/compress/sidco.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "common.hpp"
#include "scan.hpp"
#include "sparcol/compress/topk.hpp"

namespace sparcol::compress {

namespace {

// Sum, count and minimum of the finite |v_j| > theta (theta < 0: of all finite entries).
struct Exceedances {
  double sum = 0;
  std::uint64_t count = 0;
  float min = std::numeric_limits<float>::infinity();
};

// 8 independent float accumulators (two SSE registers) over blocks of kBlock elements, each block's
// lanes added into double in a fixed order. Float partial sums of kBlock/8 values keep the relative
// error near 1e-6, ample for a threshold estimate, and the fixed order makes the result reproducible
// bit for bit. (GCC does not vectorize these masked reductions by itself, hence the intrinsics; the
// scalar fallback for other targets sums the same lanes in the same order.)
constexpr std::size_t kLanes = 8;
constexpr std::size_t kBlock = 256;

Exceedances exceedances(std::span<const float> v, float theta) {
  Exceedances e;
  const std::size_t n = v.size();
  const float* p = v.data();
  const float inf = std::numeric_limits<float>::infinity();
  float mn[kLanes];
  std::fill(mn, mn + kLanes, inf);
  for (std::size_t b = 0; b < n; b += kBlock) {
    const std::size_t end = std::min(n, b + kBlock);
    float s[kLanes] = {};
    std::uint32_t c[kLanes] = {};
    std::size_t i = b;
#if defined(__SSE2__)
    const __m128 th = _mm_set1_ps(theta), fmax = _mm_set1_ps(FLT_MAX), vinf = _mm_set1_ps(inf);
    const __m128 abs_mask = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
    __m128 s0 = _mm_setzero_ps(), s1 = _mm_setzero_ps();
    __m128i c0 = _mm_setzero_si128(), c1 = _mm_setzero_si128();
    __m128 m0 = _mm_loadu_ps(mn), m1 = _mm_loadu_ps(mn + 4);
    for (; i + kLanes <= end; i += kLanes) {
      const __m128 a0 = _mm_and_ps(_mm_loadu_ps(p + i), abs_mask);
      const __m128 a1 = _mm_and_ps(_mm_loadu_ps(p + i + 4), abs_mask);
      // NaN fails both comparisons, Inf the second.
      const __m128 in0 = _mm_and_ps(_mm_cmpgt_ps(a0, th), _mm_cmple_ps(a0, fmax));
      const __m128 in1 = _mm_and_ps(_mm_cmpgt_ps(a1, th), _mm_cmple_ps(a1, fmax));
      s0 = _mm_add_ps(s0, _mm_and_ps(in0, a0));
      s1 = _mm_add_ps(s1, _mm_and_ps(in1, a1));
      c0 = _mm_sub_epi32(c0, _mm_castps_si128(in0));  // a true lane is -1
      c1 = _mm_sub_epi32(c1, _mm_castps_si128(in1));
      m0 = _mm_min_ps(m0, _mm_or_ps(_mm_and_ps(in0, a0), _mm_andnot_ps(in0, vinf)));
      m1 = _mm_min_ps(m1, _mm_or_ps(_mm_and_ps(in1, a1), _mm_andnot_ps(in1, vinf)));
    }
    _mm_storeu_ps(s, s0);
    _mm_storeu_ps(s + 4, s1);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(c), c0);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(c + 4), c1);
    _mm_storeu_ps(mn, m0);
    _mm_storeu_ps(mn + 4, m1);
#else
    for (; i + kLanes <= end; i += kLanes) {
      for (std::size_t j = 0; j < kLanes; ++j) {
        const float a = std::fabs(p[i + j]);
        if (a > theta && a <= FLT_MAX) {
          s[j] += a;
          ++c[j];
          mn[j] = std::min(mn[j], a);
        }
      }
    }
#endif
    for (; i < end; ++i) {
      const float a = std::fabs(p[i]);
      if (a > theta && a <= FLT_MAX) {
        s[0] += a;
        ++c[0];
        mn[0] = std::min(mn[0], a);
      }
    }
    double block_sum = 0;
    for (std::size_t j = 0; j < kLanes; ++j) {
      block_sum += static_cast<double>(s[j]);
      e.count += c[j];
    }
    e.sum += block_sum;
  }
  for (const float m : mn) e.min = std::min(e.min, m);
  return e;
}

}  // namespace

float sidco_threshold(std::span<const float> v, double ratio, int stages, double first_ratio) {
  const Exceedances all = exceedances(v, -1.0f);
  const double mean = all.count > 0 ? all.sum / static_cast<double>(all.count) : 0.0;
  // Thresholds are rounded to float before each comparison (the comparisons are in float).
  auto to_float = [](double t) { return static_cast<float>(std::min(t, static_cast<double>(FLT_MAX))); };
  double theta;
  if (stages <= 1 || ratio >= first_ratio) {
    theta = -mean * std::log(ratio);
  } else {
    theta = -mean * std::log(first_ratio);
    const double log_q = std::log(ratio / first_ratio) / static_cast<double>(stages - 1);
    for (int s = 1; s < stages; ++s) {
      const Exceedances e = exceedances(v, to_float(theta));
      if (e.count == 0) break;
      const double m = static_cast<double>(e.min);
      const double mu = e.sum / static_cast<double>(e.count) - m;
      theta = m - mu * log_q;
    }
  }
  return to_float(theta);
}

void SidcoCompressor::compress(std::span<const float> v, const Context& ctx, Message& out) {
  const std::uint64_t n = v.size();
  detail::check_length(n, "sidco");
  const std::uint64_t k = detail::resolve_k(ctx.k, 0, n, "sidco");
  out.reset(Aggregation::kSparse, n);
  if (n == 0) return;
  const double ratio = k != 0 ? static_cast<double>(k) / static_cast<double>(n) : density_;
  last_threshold_ = sidco_threshold(v, ratio, stages_, first_ratio_);
  // key(v_j) > key(theta) <=> |v_j| > theta for finite v_j; Inf and NaN keys exceed every finite key.
  const std::uint32_t t = magnitude_key(last_threshold_);
  // nnz is data dependent: reserve twice the target so that usual calls do not reallocate.
  const std::uint64_t reserve = std::min(n, 2 * target_k(n) + 64);
  out.indices.reserve(reserve);
  out.values.reserve(reserve);
  const float* p = v.data();
  // key > t <=> key >= t + 1 (t is a finite float's key, so t + 1 <= kNanKey).
  detail::for_each_at_least(p, n, t + 1, [&](std::uint64_t i) {
    out.indices.push_back(static_cast<Index>(i));
    out.values.push_back(p[i]);
    return true;
  });
}

}  // namespace sparcol::compress
