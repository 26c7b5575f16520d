// DGC-style approximate top-k (ALGORITHMS.md 1.1, steps 1-5; see topk.hpp for the contract).
#include <algorithm>
#include <cmath>
#include <functional>

#include "common.hpp"
#include "scan.hpp"
#include "sparcol/compress/topk.hpp"
#include "sparcol/core/rng.hpp"

namespace sparcol::compress {

DgcSamplePlan dgc_sample_plan(std::uint64_t n, std::uint64_t k, double sample_ratio) {
  DgcSamplePlan p;
  if (n == 0 || k == 0) return p;
  const std::uint64_t pct = static_cast<std::uint64_t>(std::ceil(static_cast<double>(n) * sample_ratio));
  const std::uint64_t cpr = (2 * n + k - 1) / k;  // ceil(2 / ratio) with ratio = k/n, exactly
  if (sample_ratio >= 1.0 || n <= cpr) {
    p.stride = 1;
  } else {
    const std::uint64_t m = std::max(pct, cpr);
    p.stride =
        static_cast<std::uint64_t>(std::ceil(static_cast<double>(n) / static_cast<double>(m) / 32.0)) * 32 +
        1;
    // stride = 1 (mod 8) and n >= m, so this stops at stride 1 at the latest.
    while (n / p.stride < m) p.stride -= 8;
  }
  p.num_samples = n / p.stride;
  p.top_samples = (p.num_samples * k + n - 1) / n;
  return p;
}

std::uint64_t dgc_sample_offset(std::uint64_t stride, std::uint64_t seed, std::uint64_t step,
                                std::uint32_t tensor) {
  return uniform_below(counter_u64(seed, step, tensor, kStreamSampling), stride);
}

namespace {

// Step 3 (and 5): counts the j with key(v_j) >= theta and stores the first `k` of them in index
// order. Stops counting once the count exceeds `stop_above` (the caller then takes the exact top-k,
// or, after the last reselection, just the first k, which are already stored).
std::uint64_t select_at_least(std::span<const float> v, std::uint32_t theta, std::uint64_t k,
                              std::uint64_t stop_above, Index* idx, float* val) {
  const float* p = v.data();
  std::uint64_t c = 0;
  detail::for_each_at_least(p, v.size(), theta, [&](std::uint64_t i) {
    if (c < k) {
      idx[c] = static_cast<Index>(i);
      val[c] = p[i];
    }
    return ++c <= stop_above;
  });
  return c;
}

}  // namespace

void TopkSampledCompressor::compress(std::span<const float> v, const Context& ctx, Message& out) {
  const std::uint64_t n = v.size();
  detail::check_length(n, "topk-sampled");
  const std::uint64_t k = detail::resolve_k(ctx.k, target_k(n), n, "topk-sampled");
  out.reset(Aggregation::kSparse, n);
  last_reselections_ = 0;
  last_used_exact_ = false;
  last_threshold_ = 0.0f;
  if (k == 0) return;

  selector_.reserve(n, k);  // steps 4 and the small-n case may need the exact top-k
  const DgcSamplePlan plan = dgc_sample_plan(n, k, sample_ratio_);
  if (k == n || plan.stride == 1) {
    // The "sample" is all of v: the threshold would be exact, so send the exact top-k ([P]).
    last_used_exact_ = true;
    selector_.select(v, k, out.indices, out.values);
    return;
  }

  // Steps 1-2: threshold from the strided sample.
  const std::uint64_t offset = dgc_sample_offset(plan.stride, ctx.seed, ctx.step, ctx.tensor);
  sample_.clear();
  sample_.reserve(plan.num_samples + 1);  // the sample holds num_samples or num_samples + 1 keys
  for (std::uint64_t j = offset; j < n; j += plan.stride) sample_.push_back(magnitude_key(v[j]));
  const auto kth = sample_.begin() + static_cast<std::ptrdiff_t>(plan.top_samples - 1);
  std::nth_element(sample_.begin(), kth, sample_.end(), std::greater<std::uint32_t>());
  std::uint32_t theta = *kth;

  // Steps 3-4: select, adapt. DGC compares counts with 1.3k and 0.8k in floating point.
  const double kd = static_cast<double>(k);
  const auto upper =
      static_cast<std::uint64_t>(std::floor(kUpperBound * kd));  // count > 1.3k <=> count > upper
  out.indices.resize(k);
  out.values.resize(k);
  std::uint64_t count = select_at_least(v, theta, k, upper, out.indices.data(), out.values.data());
  for (int it = 0; it < kMaxReselections; ++it) {
    if (count > k) {
      if (count > upper) {
        // The exact top-k of the selected ones: all of the k largest are selected (their keys are
        // >= theta), so this is the exact top-k of v.
        last_used_exact_ = true;
        last_threshold_ = key_magnitude(theta);
        selector_.select(v, k, out.indices, out.values);
        return;
      }
      break;
    }
    if (static_cast<double>(count) >= kLowerBound * kd) break;
    // DGC scales the float32 threshold tensor, so the product is rounded to float.
    theta = magnitude_key(key_magnitude(theta) * static_cast<float>(kLowerBound));
    ++last_reselections_;
    count = select_at_least(v, theta, k, upper, out.indices.data(), out.values.data());
  }
  // Step 5: the first k selected, in index order (select_at_least stored at most k).
  last_threshold_ = key_magnitude(theta);
  const std::uint64_t kept = std::min(count, k);
  out.indices.resize(kept);
  out.values.resize(kept);
}

}  // namespace sparcol::compress
