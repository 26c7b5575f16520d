#include "sparcol/compress/sidco.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>

#include "common.hpp"
#include "sparcol/compress/topk.hpp"

namespace sparcol::compress {

namespace {

// Sum and count of the finite |v_j| > theta, and their minimum (theta < 0: all finite entries).
struct Exceedances {
  double sum = 0;
  std::uint64_t count = 0;
  double min = std::numeric_limits<double>::infinity();
};

Exceedances exceedances(std::span<const float> v, double theta) {
  Exceedances e;
  for (const float x : v) {
    const double a = std::fabs(static_cast<double>(x));
    if (a > theta && a <= static_cast<double>(FLT_MAX)) {  // NaN fails both tests, Inf the second
      e.sum += a;
      ++e.count;
      e.min = std::min(e.min, a);
    }
  }
  return e;
}

}  // namespace

float sidco_threshold(std::span<const float> v, double ratio, int stages, double first_ratio) {
  const Exceedances all = exceedances(v, -1.0);
  const double mean = all.count > 0 ? all.sum / static_cast<double>(all.count) : 0.0;
  double theta;
  if (stages <= 1 || ratio >= first_ratio) {
    theta = -mean * std::log(ratio);
  } else {
    theta = -mean * std::log(first_ratio);
    const double log_q = std::log(ratio / first_ratio) / static_cast<double>(stages - 1);
    for (int s = 1; s < stages; ++s) {
      const Exceedances e = exceedances(v, theta);
      if (e.count == 0) break;
      const double mu = e.sum / static_cast<double>(e.count) - e.min;
      theta = e.min - mu * log_q;
    }
  }
  return static_cast<float>(std::min(theta, static_cast<double>(FLT_MAX)));
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
  for (std::uint64_t i = 0; i < n; ++i) {
    if (magnitude_key(v[i]) > t) {
      out.indices.push_back(static_cast<Index>(i));
      out.values.push_back(v[i]);
    }
  }
}

}  // namespace sparcol::compress
