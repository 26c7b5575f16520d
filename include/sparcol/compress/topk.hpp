// Top-k by magnitude, exact (compressor "topk") and DGC-style sampled (compressor "topk-sampled").
//
// ALGORITHMS.md 1.1. Order of magnitudes: |x| is compared through magnitude_key(x), the bit pattern
// of |x| read as an unsigned integer. For non-negative floats that order is the numeric order, -0 and
// +0 get the same key, and every NaN gets one key above +Inf: NaN coordinates are always among the
// largest, so top-k sends them instead of hiding them in a residual. Equal keys are broken by the
// smaller index (spec 0.1), so the selection is a pure function of v and k.
#pragma once

#include <bit>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "sparcol/compress/compressor.hpp"
#include "sparcol/core/types.hpp"

namespace sparcol::compress {

// Key of |x| in the order "larger magnitude first": 0 for +-0, 0x7f800000 for +-Inf and
// kNanKey for every NaN (whatever its sign or payload). Keys are < 2^31, so they also compare
// correctly as signed integers (used by the vectorized scans).
inline constexpr std::uint32_t kNanKey = 0x7f800001u;
inline std::uint32_t magnitude_key(float x) {
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(x) & 0x7fffffffu;
  return bits < kNanKey ? bits : kNanKey;
}
// The non-negative float with key `key` (kNanKey gives a NaN).
inline float key_magnitude(std::uint32_t key) {
  return std::bit_cast<float>(key);
}

// Exact top-k selection with scratch that is kept between calls.
//
// Method (a radix select on magnitude_key, no sort):
//  1. Bound: find a key L with k <= count(key >= L) <= capacity. Either from a strided sample of
//     v (kSampledBound: one sample, no pass over v), or from 11/11/9-bit histograms of the keys
//     (kRadix: one pass over v per digit, refined until the bucket of the k-th largest key is small
//     enough or the key is fully known).
//  2. Collect: one pass over v in index order keeps every (index, value) with key >= L. The scan
//     compares 16 keys at a time and visits only the matches (src/compress/scan.hpp).
//  3. Finish: the k-th largest key T among the candidates (the same 11/11/9-bit histograms, over
//     the candidates' keys), then the candidates in index order: all with key > T and the first
//     k - count(key > T) with key == T.
// A sampled bound that misses (fewer than k or more than capacity elements at or above L, e.g.
// on data with many ties) falls back to the histograms, so the result never depends on the path:
// only the time does. Work: one sampled look-up plus about one pass over v in the common case.
class TopkSelector {
 public:
  enum class Strategy {
    kAuto,          // sampled bound for large n and small k/n, histograms otherwise
    kSampledBound,  // always try the sampled bound first (tests use it to cover both paths)
    kRadix,         // histograms only
  };

  // Writes the k selected indices in ascending order to `indices` and v at those indices to
  // `values` (both resized to k). k <= v.size() and v.size() <= kMaxElements are the caller's
  // preconditions. No allocation after a first call with the same (n, k).
  void select(std::span<const float> v, std::uint64_t k, std::vector<Index>& indices,
              std::vector<float>& values, Strategy strategy = Strategy::kAuto);

  // Sizes the scratch of every path for (n, k); select() calls it, callers that may select later
  // (topk-sampled) call it ahead so that their first exact selection does not allocate.
  void reserve(std::uint64_t n, std::uint64_t k);

  // Selection from a vector that its producer writes itself, block by block (GMC's one-pass message,
  // src/optim/gmc.cpp), with no pass of its own over v. The result is bit for bit select(v, k):
  //   1. fused_begin(n, k, value_at): value_at(i) is v_i at the sample positions (computed by the
  //      producer exactly as it will write them). false: no sampled bound for (n, k) or this sample;
  //      the producer writes v and calls select() on it.
  //   2. fused_collect(block, first, len) for every block of v, in index order, each element once.
  //   3. fused_finish(k, indices, values): false when the bound missed (fewer than k or more than
  //      the capacity at or above it): the producer calls select() on v (all of it was written).
  template <class ValueAt>
  bool fused_begin(std::uint64_t n, std::uint64_t k, const ValueAt& value_at) {
    return fused_begin_impl(
        n, k, [](const void* f, std::uint64_t i) { return (*static_cast<const ValueAt*>(f))(i); }, &value_at);
  }
  void fused_collect(const float* block, std::uint64_t first, std::uint64_t len);
  bool fused_finish(std::uint64_t k, std::vector<Index>& indices, std::vector<float>& values);

  // The path the last select() took (for tests and benchmarks).
  bool last_used_sample() const { return last_used_sample_; }
  int last_radix_passes() const { return last_radix_passes_; }

 private:
  // Collects every element with key >= bound into cand_idx_/cand_val_ (index order); returns how
  // many there are (possibly more than capacity, then only the first `capacity` are stored).
  std::uint64_t collect(std::span<const float> v, std::uint32_t bound, std::uint64_t capacity);
  // Step 3 on the first `count` candidates.
  void finish(std::uint64_t count, std::uint64_t k, std::vector<Index>& indices, std::vector<float>& values);
  // Bound from the sample; false when the sample cannot give a useful one (the bound rank exceeds the
  // sample, or the sample predicts more than the candidate capacity at or above the bound).
  bool sampled_bound(std::span<const float> v, std::uint64_t k, std::uint32_t& bound);
  // The bound from the sample keys in sample_ (sampled_bound's second half).
  bool bound_from_sample(std::uint64_t n, std::uint64_t k, std::uint32_t& bound);
  bool fused_begin_impl(std::uint64_t n, std::uint64_t k, float (*at)(const void*, std::uint64_t),
                        const void* ctx);
  // Histogram path; writes the result itself.
  void radix(std::span<const float> v, std::uint64_t k, std::vector<Index>& indices,
             std::vector<float>& values);

  std::vector<std::uint32_t> hist_;    // 4 interleaved copies of 2048 buckets
  std::vector<std::uint32_t> sample_;  // sample keys
  std::vector<Index> cand_idx_;        // candidates (index order)
  std::vector<float> cand_val_;
  std::vector<std::uint32_t> cand_key_;  // their keys
  bool last_used_sample_ = false;
  std::uint32_t fused_bound_ = 0;  // the fused selection in progress (fused_begin .. fused_finish)
  std::uint64_t fused_count_ = 0;
  std::uint64_t fused_capacity_ = 0;
  int last_radix_passes_ = 0;
};

// "topk": k = k_round(density, n) unless ctx.k != 0; kind kSparse, indices ascending.
class TopkCompressor final : public Compressor {
 public:
  explicit TopkCompressor(double density) : density_(density) {}
  std::string name() const override { return "topk"; }
  Aggregation aggregation() const override { return Aggregation::kSparse; }
  std::uint64_t target_k(std::uint64_t n) const override { return k_round(density_, n); }
  void compress(std::span<const float> v, const Context& ctx, Message& out) override;

 private:
  double density_;
  TopkSelector selector_;
};

// The strided sample DGC draws (spec 1.1 step 1; DGC code `initialize`), for n elements and k to
// select (ratio = k/n): `stride` between samples (1: the sample is all of v) and `top_samples`, the
// rank in the sample that gives the threshold (step 2). With m = max(ceil(n*sample_ratio),
// ceil(2/ratio)): sample_ratio >= 1 or n <= ceil(2/ratio) gives stride 1; otherwise
// stride = ceil(n/m/32)*32 + 1, lowered by 8 while floor(n/stride) < m (it stops at 1 at the
// latest). num_samples = floor(n/stride), top_samples = ceil(num_samples*ratio) (exact integer
// arithmetic). The sample itself starts at a random offset in [0, stride) and may hold one element
// more than num_samples; the threshold rank stays top_samples, as in DGC.
struct DgcSamplePlan {
  std::uint64_t stride = 1;
  std::uint64_t num_samples = 0;
  std::uint64_t top_samples = 0;
};
DgcSamplePlan dgc_sample_plan(std::uint64_t n, std::uint64_t k, double sample_ratio);
// The random offset of the sample for (seed, step, tensor): uniform in [0, stride), the same on
// every rank (counter RNG, stream kStreamSampling).
std::uint64_t dgc_sample_offset(std::uint64_t stride, std::uint64_t seed, std::uint64_t step,
                                std::uint32_t tensor);

// "topk-sampled": DGC's approximate top-k (spec 1.1 steps 1-5).
//  1. sample v[s], v[s+stride], ... with s uniform in [0, stride) from the counter RNG
//     (seed, step, tensor, stream kStreamSampling): the same offset on every rank;
//  2. theta = the top_samples-th largest |v| of the sample;
//  3. select every j with |v_j| >= theta;
//  4. up to 10 times: more than 1.3k selected -> keep the exact top-k of the selected ones (which
//     is the exact top-k of v, since the k largest are all selected) and stop; fewer than 0.8k ->
//     theta *= 0.8 (in float) and select again; otherwise stop;
//  5. keep the first k selected indices in index order.
// The message has between 0 and k pairs and is NOT padded to k ([P] choice: the sparse all-gather
// takes per-rank counts, so padding would only add bytes). Indices ascending.
// Choices where the spec is silent [P]: when the sample is all of v (stride 1, small n) or k = n,
// the result is the exact top-k (the threshold is then exact; DGC would truncate ties at it in index
// order instead). Comparisons use magnitude_key, so NaN counts as larger than any threshold and is
// selected, except that step 5 may cut it like any other selected index; a NaN or infinite theta
// cannot be lowered by step 4.
class TopkSampledCompressor final : public Compressor {
 public:
  TopkSampledCompressor(double density, double sample_ratio)
      : density_(density), sample_ratio_(sample_ratio) {}
  std::string name() const override { return "topk-sampled"; }
  Aggregation aggregation() const override { return Aggregation::kSparse; }
  std::uint64_t target_k(std::uint64_t n) const override { return k_round(density_, n); }
  void compress(std::span<const float> v, const Context& ctx, Message& out) override;

  // Diagnostics of the last call: threshold reselections (step 4) and whether the exact top-k was used.
  int last_reselections() const { return last_reselections_; }
  bool last_used_exact() const { return last_used_exact_; }
  float last_threshold() const { return last_threshold_; }

  // Adaptation constants (DGC code defaults).
  static constexpr double kUpperBound = 1.3;
  static constexpr double kLowerBound = 0.8;
  static constexpr int kMaxReselections = 10;

 private:
  double density_;
  double sample_ratio_;
  TopkSelector selector_;
  std::vector<std::uint32_t> sample_;
  int last_reselections_ = 0;
  bool last_used_exact_ = false;
  float last_threshold_ = 0.0f;
};

}  // namespace sparcol::compress
