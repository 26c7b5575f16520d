// DGC's sampled-threshold top-k (ALGORITHMS.md 1.1 steps 1-5; compress::TopkSampledCompressor).
//
// Given the same sample plan (stride, offset, top_samples: compress::dgc_sample_plan and
// compress::dgc_sample_offset), the result equals the compressor's and the CPU twin's exactly:
//   1. the sample's keys: magnitude_key(v[offset + j * stride]) (one strided pass, m ~ n/100 keys);
//   2. theta = the top_samples-th largest sample key: the radix select of topk.cu on the sample;
//   3-4. up to 11 counting passes over v (per-tile counts of key >= theta and their total), each
//      followed by a one-thread control kernel that applies DGC's rule: more than floor(1.3k)
//      selected -> exact top-k; more than k -> stop; at least 0.8k -> stop; otherwise
//      theta <- key(|theta| * 0.8f) and count again (the count after the tenth reselection is final
//      unchecked, as in the compressor). Passes after the decision return at once;
//   5. exact path: the radix select of topk.cu on v (it runs only when chosen); threshold path: the
//      first min(count, k) keys >= theta, found with the last pass's tile counts when count > k;
//      then the order-preserving selection and the gather of values.
// Passes over v: 1 strided + 1 per counting round (usually 1-2) + 1 selection (+ 3-4 on the exact
// path). The host never waits: the outcome (count, theta, reselections, exact or not) is written to
// *d_result for the caller to read when it synchronizes.
#include <cmath>

#include "launch.cuh"
#include "select.cuh"
#include "sparcol/device/ops.hpp"

namespace sparcol::device {

namespace {

using detail::SelectState;

__global__ void dgc_begin_kernel(SelectState* st) {
  const std::uint32_t theta = st->prefix;  // the sample's top_samples-th largest key
  st->phase = detail::kPhaseCounting;
  st->theta = theta;
  st->reselections = 0;
  st->count_lo = theta;
  st->count_hi = kNoKey;
  st->count_total = 0;
  st->count_request = 1;
  st->cut_rank = 0;
}

// After counting round j (0-based) with the total in count_total.
__global__ void dgc_control_kernel(SelectState* st, int round, std::uint64_t k, std::uint64_t upper) {
  if (st->phase != detail::kPhaseCounting) return;
  const std::uint64_t count = st->count_total;
  bool exact = false;
  if (round < kSampledMaxReselections) {
    if (count > k) {
      exact = count > upper;
    } else if (!(static_cast<double>(count) >= kSampledLowerBound * static_cast<double>(k))) {
      // Too few: lower the threshold (DGC scales the float32 threshold, rounded to float) and count again.
      const std::uint32_t theta =
          magnitude_key(fmul(key_magnitude(st->theta), static_cast<float>(kSampledLowerBound)));
      st->theta = theta;
      st->count_lo = theta;
      st->count_total = 0;
      st->reselections += 1;
      return;
    }
  }
  st->count_request = 0;
  if (exact) {
    st->phase = detail::kPhaseExact;  // the radix select on v runs next
    return;
  }
  st->phase = detail::kPhaseFinal;
  st->lo = st->theta;
  st->tie_key = kNoKey;
  st->cut = ~0ull;
  // More than k at or above theta: keep the first k. The tile counts of this round are for
  // [theta, kNoKey], exactly what the cut search needs.
  st->cut_rank = count > k ? k : 0;
}

__global__ void dgc_result_kernel(const SelectState* st, const std::uint64_t* num, std::uint64_t k,
                                  SampledTopkResult* out) {
  SampledTopkResult r;
  r.count = *num < k ? *num : k;
  r.threshold_key = st->theta;
  r.reselections = st->reselections;
  r.used_exact = st->phase == detail::kPhaseExact ? 1u : 0u;
  *out = r;
}

std::uint64_t sample_count(std::uint64_t n, const SamplePlan& plan) {
  return plan.offset < n ? (n - plan.offset + plan.stride - 1) / plan.stride : 0;
}

void check_plan(std::uint64_t n, std::uint64_t k, const SamplePlan& plan) {
  SPARCOL_CHECK_ARG(
      n <= kMaxElements, -1,
      "topk_sampled: vectors longer than 2^32-1 elements are not supported (n = " + std::to_string(n) + ")");
  SPARCOL_CHECK_ARG(
      k >= 1 && k < n, -1,
      "topk_sampled: needs 1 <= k < n, got k = " + std::to_string(k) + ", n = " + std::to_string(n));
  SPARCOL_CHECK_ARG(
      plan.stride > 1 && plan.offset < plan.stride, -1,
      "topk_sampled: needs stride > 1 (stride 1 is the exact top-k) and offset < stride, got stride " +
          std::to_string(plan.stride) + ", offset " + std::to_string(plan.offset));
  const std::uint64_t m = sample_count(n, plan);
  SPARCOL_CHECK_ARG(plan.top_samples >= 1 && plan.top_samples <= m, -1,
                    "topk_sampled: top_samples = " + std::to_string(plan.top_samples) + " is not in [1, " +
                        std::to_string(m) + "] (the number of samples)");
}

}  // namespace

std::size_t topk_sampled_scratch_bytes(std::uint64_t n, std::uint64_t k, const SamplePlan& plan) {
  check_plan(n, k, plan);
  detail::require_gpu("topk_sampled_scratch_bytes");
  return detail::carve_select(nullptr, n, sample_count(n, plan)).total;
}

void topk_sampled(const Stream& s, const float* d_v, std::uint64_t n, std::uint64_t k, const SamplePlan& plan,
                  Index* d_idx, float* d_val, SampledTopkResult* d_result, void* d_scratch,
                  std::size_t scratch_bytes) {
  check_plan(n, k, plan);
  detail::dev(d_v, "topk_sampled: v");
  detail::dev(d_idx, "topk_sampled: indices");
  detail::dev(d_val, "topk_sampled: values");
  detail::dev(d_result, "topk_sampled: result");
  detail::check_scratch(d_scratch, scratch_bytes, topk_sampled_scratch_bytes(n, k, plan), "topk_sampled");
  const std::uint64_t m = sample_count(n, plan);
  const detail::SelectScratch sc = detail::carve_select(d_scratch, n, m);
  const cudaStream_t cs = detail::cuda_stream(s);
  const detail::KeySource values{d_v, nullptr};
  const detail::KeySource sample{nullptr, sc.sample};
  const auto upper = static_cast<std::uint64_t>(std::floor(kSampledUpperBound * static_cast<double>(k)));

  // Steps 1-2: the sample and its threshold.
  detail::reset_select(s, sc);
  detail::launch_elementwise(s, m, detail::SampleKeysOp{d_v, plan.offset, plan.stride, sc.sample});
  detail::launch_radix_select(s, sample, m, plan.top_samples, sc, /*only_if_exact=*/false);
  dgc_begin_kernel<<<1, 1, 0, cs>>>(sc.state);
  SPARCOL_CUDA_CHECK_LAUNCH();

  // Steps 3-4: counting rounds with the adaptation rule.
  for (int round = 0; round <= kSampledMaxReselections; ++round) {
    detail::launch_count_tiles(s, values, n, sc);
    dgc_control_kernel<<<1, 1, 0, cs>>>(sc.state, round, k, upper);
    SPARCOL_CUDA_CHECK_LAUNCH();
  }

  // Step 5: the exact top-k if chosen (fresh histograms), else the threshold selection.
  detail::memset_async(s, sc.hist, 0,
                       sizeof(unsigned long long) * detail::kRadixDigits * detail::kRadixBuckets);
  detail::launch_radix_select(s, values, n, k, sc, /*only_if_exact=*/true);
  detail::launch_topk_finish(s, k, sc);
  detail::launch_count_tiles(s, values, n, sc);
  detail::launch_find_cut(s, values, n, sc);
  detail::launch_final_select(s, d_v, n, k, d_idx, d_val, sc);
  dgc_result_kernel<<<1, 1, 0, cs>>>(sc.state, sc.num_selected, k, d_result);
  SPARCOL_CUDA_CHECK_LAUNCH();
}

}  // namespace sparcol::device
