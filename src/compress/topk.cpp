// Exact top-k by magnitude: a radix select on the bit patterns of |v| (see topk.hpp for the method).
#include "sparcol/compress/topk.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <utility>

#include "common.hpp"
#include "scan.hpp"

namespace sparcol::compress {

namespace {

// Elements the sampled bound looks at, and when kAuto tries it. Below kSampleMinN a histogram pass
// costs too little to be worth a gamble; above k/n = 1/16 the candidate set would be large anyway.
constexpr std::uint64_t kBoundSampleSize = std::uint64_t{1} << 16;
constexpr std::uint64_t kSampleMinN = std::uint64_t{1} << 18;
constexpr std::uint64_t kSampleMaxDensityDiv = 16;

// The sample the bound uses: m elements in runs of kRunLength consecutive elements (one cache line
// of floats), run j starting at offset + j * stride * kRunLength, and the sample rank that gives
// the bound. Runs cost one cache miss per 16 samples instead of one per sample; the rank margin is
// widened (sqrt(2r) instead of sqrt(r) standard deviations of a binomial count) for neighbours that
// are correlated within a run. The rank sits about 4 of those above the rank r that matches k, so
// that count(key >= bound) < k is unlikely; the candidate capacity allows twice the expected count.
// A miss costs time only (the histograms then decide). All of it is a function of (n, k) only, so
// the scratch sizes are too, and a repeated call with the same (n, k) never allocates.
constexpr std::uint64_t kRunLength = 16;

struct BoundPlan {
  std::uint64_t stride = 1;
  std::uint64_t offset = 0;
  std::uint64_t run = 1;   // consecutive elements per run
  std::uint64_t m = 0;     // samples, a multiple of run
  std::uint64_t rank = 0;  // 1-based rank in the sample, descending; > m means "no bound"
  std::uint64_t capacity = 0;

  std::uint64_t position(std::uint64_t i) const { return offset + (i / run) * stride * run + i % run; }
};

BoundPlan bound_plan(std::uint64_t n, std::uint64_t k) {
  BoundPlan p;
  p.stride = std::max<std::uint64_t>(1, n / kBoundSampleSize);
  p.m = n / p.stride;
  p.run = p.m >= kRunLength ? kRunLength : 1;
  p.m -= p.m % p.run;
  p.offset = p.stride / 2;
  const std::uint64_t r = (p.m * k + n - 1) / n;
  p.rank = r + static_cast<std::uint64_t>(std::ceil(4.0 * std::sqrt(2.0 * static_cast<double>(r)))) + 4;
  const std::uint64_t expected = std::max(k, std::min(p.rank, p.m) * p.stride);
  p.capacity = std::min(n, 2 * expected + 1024);
  return p;
}

// Digits of the radix path: bits 30..20, 19..9 and 8..0 of the 31-bit key.
constexpr int kDigitShift[3] = {20, 9, 0};
constexpr int kDigitBits[3] = {11, 11, 9};
constexpr std::size_t kHistSize = std::size_t{1} << 11;
constexpr std::size_t kHistCopies = 4;

// Adds every element to histogram copy (i mod kHistCopies) of h at the (bucket, increment) that
// `digit` gives for its key, then sums the copies into the first.
template <class KeyAt, class Digit>
void count_digit(KeyAt key_at, std::uint64_t n, std::uint32_t* h, Digit digit) {
  std::uint64_t i = 0;
  for (; i + kHistCopies <= n; i += kHistCopies) {
    for (std::size_t c = 0; c < kHistCopies; ++c) {
      const auto [bucket, inc] = digit(key_at(i + c));
      h[c * kHistSize + bucket] += inc;
    }
  }
  for (; i < n; ++i) {
    const auto [bucket, inc] = digit(key_at(i));
    h[bucket] += inc;
  }
  for (std::size_t c = 1; c < kHistCopies; ++c)
    for (std::size_t b = 0; b < kHistSize; ++b) h[b] += h[c * kHistSize + b];
}

// Where the radix select stands after `digits` digits: the k-th largest key K has
// (K >> shift) == prefix; `above` keys have a larger (key >> shift), `bucket` keys the same. After
// all three digits (shift 0) prefix is K itself.
struct RadixState {
  int digits = 0;
  int shift = 31;
  std::uint32_t prefix = 0;
  std::uint64_t above = 0;
  std::uint64_t bucket = 0;
};

// One histogram pass per digit over the n keys that key_at gives, until done(state) or the key is
// fully known. h holds kHistCopies * kHistSize counters. 1 <= k <= n.
template <class KeyAt, class Done>
RadixState radix_digits(KeyAt key_at, std::uint64_t n, std::uint64_t k, std::uint32_t* h, Done done) {
  RadixState s;
  for (int d = 0; d < 3; ++d) {
    const int shift = kDigitShift[d];
    const std::uint32_t mask = (std::uint32_t{1} << kDigitBits[d]) - 1;
    std::fill(h, h + kHistCopies * kHistSize, 0u);
    // kHistCopies interleaved histograms: consecutive equal keys (ties, narrow distributions) would
    // otherwise chain every increment on the previous store to the same counter.
    if (d == 0) {
      count_digit(key_at, n, h, [shift](std::uint32_t key) { return std::pair{key >> shift, 1u}; });
    } else {
      // Branch-free: keys outside the prefix add 0 (a branch would mispredict on tie-heavy data,
      // the case that reaches these passes).
      const int prev_shift = s.shift;
      const std::uint32_t prefix = s.prefix;
      count_digit(key_at, n, h, [=](std::uint32_t key) {
        return std::pair{(key >> shift) & mask, static_cast<std::uint32_t>((key >> prev_shift) == prefix)};
      });
    }
    std::uint32_t b = mask;
    while (s.above + h[b] < k) s.above += h[b--];  // terminates: the buckets hold >= k - above keys
    s.prefix = (s.prefix << kDigitBits[d]) | b;
    s.shift = shift;
    s.bucket = h[b];
    s.digits = d + 1;
    if (d < 2 && done(s)) break;
  }
  return s;
}

}  // namespace

std::uint64_t TopkSelector::collect(std::span<const float> v, std::uint32_t bound, std::uint64_t capacity) {
  const float* p = v.data();
  Index* ci = cand_idx_.data();
  float* cv = cand_val_.data();
  std::uint64_t c = 0;
  detail::for_each_at_least(p, v.size(), bound, [&](std::uint64_t i) {
    if (c < capacity) {
      ci[c] = static_cast<Index>(i);
      cv[c] = p[i];
    }
    return ++c <= capacity;  // past capacity the caller falls back: no need to count the rest
  });
  return c;
}

void TopkSelector::finish(std::uint64_t count, std::uint64_t k, std::vector<Index>& indices,
                          std::vector<float>& values) {
  indices.resize(k);
  values.resize(k);
  if (count == k) {
    std::copy_n(cand_idx_.begin(), k, indices.begin());
    std::copy_n(cand_val_.begin(), k, values.begin());
    return;
  }
  // T = the k-th largest key among the candidates, by the same radix select (all three digits).
  std::uint32_t* keys = cand_key_.data();
  for (std::uint64_t i = 0; i < count; ++i) keys[i] = magnitude_key(cand_val_[i]);
  const RadixState r = radix_digits([keys](std::uint64_t i) { return keys[i]; }, count, k, hist_.data(),
                                    [](const RadixState&) { return false; });
  const std::uint32_t t = r.prefix;
  std::uint64_t ties = k - r.above;  // keys == T to take, the first ones in index order
  std::uint64_t out = 0;
  for (std::uint64_t i = 0; i < count && out < k; ++i) {
    const std::uint32_t key = keys[i];
    if (key > t || (key == t && ties > 0)) {
      if (key == t) --ties;
      indices[out] = cand_idx_[i];
      values[out] = cand_val_[i];
      ++out;
    }
  }
}

void TopkSelector::reserve(std::uint64_t n, std::uint64_t k) {
  // Every path's scratch, whichever path the data will need: a later call with the same (n, k)
  // then never allocates, even if it takes another path.
  hist_.resize(kHistSize * kHistCopies);
  if (k == 0 || k >= n) return;
  const BoundPlan p = bound_plan(n, k);
  cand_idx_.resize(p.capacity);
  cand_val_.resize(p.capacity);
  cand_key_.resize(p.capacity);
  sample_.resize(p.m);
}

bool TopkSelector::sampled_bound(std::span<const float> v, std::uint64_t k, std::uint32_t& bound) {
  const BoundPlan p = bound_plan(v.size(), k);
  if (p.rank > p.m) return false;
  for (std::uint64_t i = 0; i < p.m; ++i) sample_[i] = magnitude_key(v[p.position(i)]);
  return bound_from_sample(v.size(), k, bound);
}

bool TopkSelector::bound_from_sample(std::uint64_t n, std::uint64_t k, std::uint32_t& bound) {
  const BoundPlan p = bound_plan(n, k);
  const auto kth = sample_.begin() + static_cast<std::ptrdiff_t>(p.rank - 1);
  std::nth_element(sample_.begin(), kth, sample_.end(), std::greater<std::uint32_t>());
  bound = *kth;
  // Ties at the bound (e.g. integer-valued data) can put far more than `capacity` elements at or
  // above it; when the sample already says so, skip the collecting pass that would overflow.
  std::uint64_t at_or_above = p.rank;
  for (auto it = kth + 1; it != sample_.end(); ++it) at_or_above += static_cast<std::uint64_t>(*it == bound);
  return at_or_above * p.stride <= p.capacity;
}

void TopkSelector::radix(std::span<const float> v, std::uint64_t k, std::vector<Index>& indices,
                         std::vector<float>& values) {
  const std::uint64_t n = v.size();
  const float* p = v.data();
  const std::uint64_t capacity = bound_plan(n, k).capacity;
  const RadixState r =
      radix_digits([p](std::uint64_t i) { return magnitude_key(p[i]); }, n, k, hist_.data(),
                   [capacity](const RadixState& s) { return s.above + s.bucket <= capacity; });
  last_radix_passes_ = r.digits;
  if (r.digits < 3) {
    // Few enough elements at or above the bucket: collect them and finish among them.
    const std::uint64_t count = collect(v, r.prefix << r.shift, capacity);
    finish(count, k, indices, values);
    return;
  }

  // The k-th largest key T is known exactly: take every key above it and the first k - above keys
  // equal to it, in one pass in index order.
  const std::uint32_t t = r.prefix;
  std::uint64_t ties = k - r.above;
  indices.resize(k);
  values.resize(k);
  std::uint64_t out = 0;
  detail::for_each_at_least(p, n, t, [&](std::uint64_t i) {
    const std::uint32_t key = magnitude_key(p[i]);
    if (key > t || ties > 0) {
      if (key == t) --ties;
      indices[out] = static_cast<Index>(i);
      values[out] = p[i];
      ++out;
    }
    return out < k;
  });
}

bool TopkSelector::fused_begin_impl(std::uint64_t n, std::uint64_t k, float (*at)(const void*, std::uint64_t),
                                    const void* ctx) {
  fused_count_ = 0;
  fused_capacity_ = 0;  // 0: not armed (fused_collect ignores blocks, fused_finish fails)
  if (k == 0 || k >= n || n < kSampleMinN || k > n / kSampleMaxDensityDiv) return false;
  reserve(n, k);
  const BoundPlan p = bound_plan(n, k);
  if (p.rank > p.m) return false;
  for (std::uint64_t i = 0; i < p.m; ++i) sample_[i] = magnitude_key(at(ctx, p.position(i)));
  if (!bound_from_sample(n, k, fused_bound_)) return false;
  fused_capacity_ = p.capacity;
  return true;
}

void TopkSelector::fused_collect(const float* block, std::uint64_t first, std::uint64_t len) {
  if (fused_capacity_ == 0 || fused_count_ > fused_capacity_) return;  // not armed, or past capacity
  Index* ci = cand_idx_.data();
  float* cv = cand_val_.data();
  std::uint64_t c = fused_count_;
  const std::uint64_t capacity = fused_capacity_;
  detail::for_each_at_least(block, len, fused_bound_, [&](std::uint64_t i) {
    if (c < capacity) {
      ci[c] = static_cast<Index>(first + i);
      cv[c] = block[i];
    }
    return ++c <= capacity;
  });
  fused_count_ = c;
}

bool TopkSelector::fused_finish(std::uint64_t k, std::vector<Index>& indices, std::vector<float>& values) {
  last_used_sample_ = false;
  last_radix_passes_ = 0;
  const std::uint64_t count = fused_count_;
  const bool hit = fused_capacity_ > 0 && count >= k && count <= fused_capacity_;
  fused_capacity_ = 0;
  fused_count_ = 0;
  if (!hit) return false;
  last_used_sample_ = true;
  finish(count, k, indices, values);
  return true;
}

void TopkSelector::select(std::span<const float> v, std::uint64_t k, std::vector<Index>& indices,
                          std::vector<float>& values, Strategy strategy) {
  const std::uint64_t n = v.size();
  last_used_sample_ = false;
  last_radix_passes_ = 0;
  if (k == 0) {
    indices.clear();
    values.clear();
    return;
  }
  if (k >= n) {
    indices.resize(n);
    for (std::uint64_t i = 0; i < n; ++i) indices[i] = static_cast<Index>(i);
    values.assign(v.begin(), v.end());
    return;
  }
  reserve(n, k);
  const bool try_sample = strategy == Strategy::kSampledBound ||
                          (strategy == Strategy::kAuto && n >= kSampleMinN && k <= n / kSampleMaxDensityDiv);
  std::uint32_t bound = 0;
  if (try_sample && sampled_bound(v, k, bound)) {
    const std::uint64_t capacity = bound_plan(n, k).capacity;
    const std::uint64_t count = collect(v, bound, capacity);
    if (count >= k && count <= capacity) {
      last_used_sample_ = true;
      finish(count, k, indices, values);
      return;
    }
  }
  radix(v, k, indices, values);
}

void TopkCompressor::compress(std::span<const float> v, const Context& ctx, Message& out) {
  const std::uint64_t n = v.size();
  detail::check_length(n, "topk");
  const std::uint64_t k = detail::resolve_k(ctx.k, target_k(n), n, "topk");
  out.reset(Aggregation::kSparse, n);
  selector_.select(v, k, out.indices, out.values);
}

}  // namespace sparcol::compress
