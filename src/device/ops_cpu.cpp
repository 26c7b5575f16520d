// CPU twins of the CUDA kernels (see ops.hpp): the fallback without a GPU and the reference of the
// GPU tests. Elementwise operations run the shared functors of element_ops.hpp; the selections and
// reductions follow the kernels' algorithms step by step (radix select on 11/11/9-bit digits, the
// tie cut, the fixed reduction tree), so that every result the GPU produces is reproduced exactly.
#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "element_ops.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/core/prefetch.hpp"
#include "sparcol/device/ops.hpp"

namespace sparcol::device::cpu {

namespace {

using detail::kRadixBuckets;
using detail::kRadixDigits;

template <class Op>
void run(std::uint64_t count, const Op& op) {
  for (std::uint64_t i = 0; i < count; ++i) op.store(i, op.load(i));
}

// The common case of the optimizer updates on the host: no block to extract, no weight decay, no
// clipping. The functors' per-element branches on those cases keep GCC from vectorizing run(), so
// these loops call the same per-element formulas (elementwise.hpp) without them: the same bits at
// memory speed. (Distinct, non-overlapping vectors, as every update requires.)
bool plain(const GradientInput& g, const Block& send) {
  return send.length == 0 && g.wd == 0.0f && g.scale == 1.0f;
}

// Host pointer checks apply only when the call touches memory (a null pointer with n = 0 is fine).
void host(const void* p, const char* what) {
  require_host_pointer(p, what);
}

void check_block(const Block& b, std::uint64_t n, const char* who) {
  SPARCOL_CHECK_ARG(b.length == 0 || (b.n == n && b.length <= n && b.start < n), -1,
                    std::string(who) + ": block (n " + std::to_string(b.n) + ", start " +
                        std::to_string(b.start) + ", length " + std::to_string(b.length) +
                        ") does not fit a vector of " + std::to_string(n));
}

// The message (who + what) is built only when the check fails: updates run every step and must
// not allocate.
void host_named(const void* p, const char* who, const char* what) {
  if (p != nullptr && pointer_kind(p) == MemKind::kHost) return;
  host(p, (std::string(who) + what).c_str());
}

void check_gradient(const GradientInput& g, std::uint64_t n, const char* who) {
  if (n == 0) return;
  host_named(g.g, who, ": gradient");
  if (g.wd != 0.0f) host_named(g.z, who, ": gradient point (weight decay)");
}

void check_send(const Block& b, std::uint64_t n, const float* send, const char* who) {
  if (b.length != 0 && !(b.n == n && b.length <= n && b.start < n)) check_block(b, n, who);
  if (b.length != 0) host_named(send, who, ": send");
}

// ---- deterministic reduction (elementwise.hpp: tiles, thread order, tree) ----
void tree(double* s) {
  for (int h = kReduceThreads / 2; h >= 1; h /= 2)
    for (int t = 0; t < h; ++t) s[t] = dadd(s[t], s[t + h]);
}

template <class Term>
double reduce(const float* v, std::uint64_t n, Term term) {
  const std::uint64_t tiles = (n + kReduceTile - 1) / kReduceTile;
  std::vector<double> partial(tiles);
  std::array<double, kReduceThreads> s{};
  for (std::uint64_t t = 0; t < tiles; ++t) {
    for (int th = 0; th < kReduceThreads; ++th) {
      double acc = 0.0;
      for (int j = 0; j < 32; ++j) {
        const std::uint64_t i = reduce_element(t, th, j);
        if (i < n) acc = dadd(acc, term(v[i]));
      }
      s[static_cast<std::size_t>(th)] = acc;
    }
    tree(s.data());
    partial[t] = s[0];
  }
  for (int th = 0; th < kReduceThreads; ++th) {
    double acc = 0.0;
    for (std::uint64_t p = static_cast<std::uint64_t>(th); p < tiles; p += kReduceThreads)
      acc = dadd(acc, partial[p]);
    s[static_cast<std::size_t>(th)] = acc;
  }
  tree(s.data());
  return s[0];
}

// ---- radix select (topk.cu): the k-th largest of n keys ----
struct RadixResult {
  std::uint32_t key = 0;    // K, the k-th largest key
  std::uint64_t above = 0;  // keys > K
  std::uint64_t equal = 0;  // keys == K
};

// key_at(i) gives key i. 1 <= k <= n. Per digit: a histogram of the keys that share the chosen
// prefix, then the bucket where the running count from the top reaches k.
template <class KeyAt>
RadixResult radix_select(KeyAt key_at, std::uint64_t n, std::uint64_t k) {
  std::vector<std::uint64_t> hist(kRadixBuckets);
  std::uint32_t prefix = 0;
  std::uint64_t above = 0, bucket = 0;
  for (int d = 0; d < kRadixDigits; ++d) {
    std::fill(hist.begin(), hist.end(), 0);
    for (std::uint64_t i = 0; i < n; ++i) {
      const std::uint32_t key = key_at(i);
      if (detail::radix_in_prefix(key, d, prefix)) ++hist[detail::radix_bucket(key, d)];
    }
    std::uint32_t b = (1u << detail::radix_bits(d)) - 1u;
    while (above + hist[b] < k) above += hist[b--];  // stops: the prefix holds >= k - above keys
    prefix = (prefix << detail::radix_bits(d)) | b;
    bucket = hist[b];
  }
  return {prefix, above, bucket};
}

// Writes the elements with key >= lo and (key > tie_key or i <= cut), in index order, up to `cap`.
std::uint64_t select_into(const float* v, std::uint64_t n, std::uint32_t lo, std::uint32_t tie_key,
                          std::uint64_t cut, std::uint64_t cap, Index* idx, float* val) {
  std::uint64_t out = 0;
  for (std::uint64_t i = 0; i < n && out < cap; ++i) {
    const std::uint32_t key = magnitude_key(v[i]);
    if (key >= lo && (key > tie_key || i <= cut)) {
      idx[out] = static_cast<Index>(i);
      val[out] = v[i];
      ++out;
    }
  }
  return out;
}

// Index of the r-th (1-based) element with key in [lo, hi], in index order; r >= 1 and it exists.
std::uint64_t rth_match(const float* v, std::uint64_t n, std::uint32_t lo, std::uint32_t hi,
                        std::uint64_t r) {
  for (std::uint64_t i = 0; i < n; ++i) {
    const std::uint32_t key = magnitude_key(v[i]);
    if (key >= lo && key <= hi && --r == 0) return i;
  }
  throw Error(ErrorCode::kInternal, -1, "topk: the tie cut lies beyond the vector");
}

// Exact top-k, 1 <= k < n: radix select of K, then the first k - above ties in index order.
void exact_topk(const float* v, std::uint64_t n, std::uint64_t k, Index* idx, float* val) {
  const RadixResult r = radix_select([v](std::uint64_t i) { return magnitude_key(v[i]); }, n, k);
  const std::uint64_t ties = k - r.above;
  const std::uint64_t cut = ties < r.equal ? rth_match(v, n, r.key, r.key, ties) : ~std::uint64_t{0};
  const std::uint64_t got = select_into(v, n, r.key, r.key, cut, k, idx, val);
  SPARCOL_CHECK(got == k, ErrorCode::kInternal, -1,
                "topk: selected " + std::to_string(got) + " elements instead of " + std::to_string(k));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// copy, rbgs
// ---------------------------------------------------------------------------------------------
void copy(float* dst, const float* src, std::uint64_t n) {
  if (n == 0) return;
  host(dst, "copy: dst");
  host(src, "copy: src");
  run(n, detail::CopyOp{dst, src});
}

void rbgs_pack(const float* v, const Block& b, float* packed) {
  check_block(b, b.n, "rbgs_pack");
  if (b.length == 0) return;
  host(v, "rbgs_pack: v");
  host(packed, "rbgs_pack: packed");
  run(b.length, detail::RbgsPackOp{v, b, packed});
}

void rbgs_extract(float* v, const Block& b, float* packed) {
  check_block(b, b.n, "rbgs_extract");
  if (b.length == 0) return;
  host(v, "rbgs_extract: v");
  host(packed, "rbgs_extract: packed");
  run(b.length, detail::RbgsExtractOp{v, b, packed});
}

void rbgs_unpack(const float* packed, const Block& b, float divisor, float* out, bool zero_outside) {
  check_block(b, b.n, "rbgs_unpack");
  const std::uint64_t count = zero_outside ? b.n : b.length;
  if (count == 0) return;
  host(out, "rbgs_unpack: out");
  if (b.length != 0) host(packed, "rbgs_unpack: packed");
  if (zero_outside) {
    run(b.n, detail::RbgsUnpackFillOp{packed, b, divisor, out});
  } else {
    run(b.length, detail::RbgsUnpackOp{packed, b, divisor, out});
  }
}

// ---------------------------------------------------------------------------------------------
// sign, reductions
// ---------------------------------------------------------------------------------------------
void sign_pack(const float* v, std::uint64_t n, std::uint32_t* words, float* scale) {
  host(scale, "sign_pack: scale");
  if (n == 0) {
    *scale = 0.0f;
    return;
  }
  host(v, "sign_pack: v");
  host(words, "sign_pack: words");
  constexpr std::uint64_t kW = SignLayout::kWordBits;
  const std::uint64_t nw = SignLayout::words_for(n);
  for (std::uint64_t w = 0; w < nw; ++w) {
    std::uint32_t bits = 0;
    const std::uint64_t end = std::min(n, kW * w + kW);
    for (std::uint64_t j = kW * w; j < end; ++j) bits |= SignLayout::placed(v[j], j);
    words[w] = bits;
  }
  *scale = static_cast<float>(reduce(v, n, abs_term) / static_cast<double>(n));
}

void sum_squares(const float* v, std::uint64_t n, double* sum) {
  host(sum, "sum_squares: sum");
  if (n > 0) host(v, "sum_squares: v");
  *sum = reduce(v, n, square_term);
}

namespace {
void check_signs(const std::uint32_t* words, const float* scales, int ranks, std::uint64_t n, float* out,
                 const char* who) {
  SPARCOL_CHECK_ARG(ranks >= 1, -1,
                    std::string(who) + ": needs at least one rank, got " + std::to_string(ranks));
  if (n == 0) return;
  host(words, (std::string(who) + ": words").c_str());
  host(scales, (std::string(who) + ": scales").c_str());
  host(out, (std::string(who) + ": out").c_str());
}
}  // namespace

void sign_decode_mean(const std::uint32_t* words, const float* scales, int ranks, std::uint64_t n,
                      float* out) {
  check_signs(words, scales, ranks, n, out, "sign_decode_mean");
  run(n, detail::SignMeanOp{words, scales, ranks, SignLayout::words_for(n), out});
}

void sign_decode_majority(const std::uint32_t* words, const float* scales, int ranks, std::uint64_t n,
                          float* out) {
  check_signs(words, scales, ranks, n, out, "sign_decode_majority");
  run(n, detail::SignMajorityOp{words, scales, ranks, SignLayout::words_for(n), out});
}

// ---------------------------------------------------------------------------------------------
// sparse sum
// ---------------------------------------------------------------------------------------------
void sparse_sum(const Index* idx, const float* val, std::uint64_t pairs, std::uint64_t n, float divisor,
                float* out) {
  SPARCOL_CHECK_ARG(
      n <= kMaxElements, -1,
      "sparse_sum: vectors longer than 2^32-1 elements are not supported (n = " + std::to_string(n) + ")");
  SPARCOL_CHECK_ARG(divisor > 0.0f && std::isfinite(divisor), -1,
                    "sparse_sum: the divisor must be finite and > 0, got " + std::to_string(divisor));
  if (pairs > 0) {
    host(idx, "sparse_sum: indices");
    host(val, "sparse_sum: values");
    for (std::uint64_t j = 0; j < pairs; ++j)
      SPARCOL_CHECK_ARG(idx[j] < n, -1,
                        "sparse_sum: index " + std::to_string(idx[j]) + " of pair " + std::to_string(j) +
                            " is out of range for n = " + std::to_string(n));
  }
  if (n == 0) return;
  host(out, "sparse_sum: out");
  // SparseAllgather::sum_into, then the Exchange's division by K.
  std::fill(out, out + n, 0.0f);
  for (std::uint64_t j = 0; j < pairs; ++j) out[idx[j]] = fadd(out[idx[j]], val[j]);
  for (std::uint64_t i = 0; i < n; ++i) out[i] = fdiv(out[i], divisor);
}

// ---------------------------------------------------------------------------------------------
// top-k
// ---------------------------------------------------------------------------------------------
void topk(const float* v, std::uint64_t n, std::uint64_t k, Index* idx, float* val) {
  SPARCOL_CHECK_ARG(
      n <= kMaxElements, -1,
      "topk: vectors longer than 2^32-1 elements are not supported (n = " + std::to_string(n) + ")");
  SPARCOL_CHECK_ARG(k <= n, -1,
                    "topk: k = " + std::to_string(k) + " exceeds the vector length n = " + std::to_string(n));
  if (k == 0) return;
  host(v, "topk: v");
  host(idx, "topk: indices");
  host(val, "topk: values");
  if (k == n) {
    run(n, detail::IotaCopyOp{v, idx, val});
    return;
  }
  exact_topk(v, n, k, idx, val);
}

void scatter_zero(float* v, std::uint64_t n, const Index* idx, std::uint64_t count) {
  if (count == 0) return;
  host(v, "scatter_zero: v");
  host(idx, "scatter_zero: indices");
  // ScatterZeroOp's element rule with the lines prefetched ahead (core/prefetch.hpp).
  const std::uint64_t ahead = count > kPrefetchDistance ? count - kPrefetchDistance : 0;
  for (std::uint64_t j = 0; j < count; ++j) {
    if (j < ahead && idx[j + kPrefetchDistance] < n) prefetch_for_write(v + idx[j + kPrefetchDistance]);
    if (idx[j] < n) v[idx[j]] = 0.0f;
  }
}

void topk_sampled(const float* v, std::uint64_t n, std::uint64_t k, const SamplePlan& plan, Index* idx,
                  float* val, SampledTopkResult* result) {
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
  const std::uint64_t m = plan.offset < n ? (n - plan.offset + plan.stride - 1) / plan.stride : 0;
  SPARCOL_CHECK_ARG(plan.top_samples >= 1 && plan.top_samples <= m, -1,
                    "topk_sampled: top_samples = " + std::to_string(plan.top_samples) + " is not in [1, " +
                        std::to_string(m) + "] (the number of samples)");
  host(v, "topk_sampled: v");
  host(idx, "topk_sampled: indices");
  host(val, "topk_sampled: values");
  host(result, "topk_sampled: result");

  // Steps 1-2: the threshold is the top_samples-th largest key of the sample.
  std::vector<std::uint32_t> sample(m);
  run(m, detail::SampleKeysOp{v, plan.offset, plan.stride, sample.data()});
  const RadixResult s = radix_select([&](std::uint64_t j) { return sample[j]; }, m, plan.top_samples);
  std::uint32_t theta = s.key;

  // Steps 3-4 (topk_sampled.cpp): count, adapt; the count after the last reselection is not checked.
  const auto upper = static_cast<std::uint64_t>(std::floor(kSampledUpperBound * static_cast<double>(k)));
  SampledTopkResult res;
  std::uint64_t count = 0;
  for (int j = 0; j <= kSampledMaxReselections; ++j) {
    count = 0;
    for (std::uint64_t i = 0; i < n; ++i) count += magnitude_key(v[i]) >= theta;
    if (j == kSampledMaxReselections) break;
    if (count > k) {
      if (count > upper) {
        res.used_exact = 1;
        res.threshold_key = theta;
        res.count = k;
        exact_topk(v, n, k, idx, val);
        *result = res;
        return;
      }
      break;
    }
    if (static_cast<double>(count) >= kSampledLowerBound * static_cast<double>(k)) break;
    theta = magnitude_key(fmul(key_magnitude(theta), static_cast<float>(kSampledLowerBound)));
    ++res.reselections;
  }
  // Step 5: the first min(count, k) elements with key >= theta, in index order.
  res.threshold_key = theta;
  res.count = select_into(v, n, theta, kNoKey, ~std::uint64_t{0}, k, idx, val);
  *result = res;
}

// ---------------------------------------------------------------------------------------------
// optimizer updates
// ---------------------------------------------------------------------------------------------
void detached_point(float* z, const float* x, const float* d, float c, std::uint64_t n) {
  if (n == 0) return;
  host(z, "detached_point: z");
  host(x, "detached_point: x");
  host(d, "detached_point: d");
  run(n, detail::DetachedPointOp{z, x, d, c});
}

void offset_point(float* z, const float* x, const float* r, std::uint64_t n) {
  if (n == 0) return;
  host(z, "offset_point: z");
  host(x, "offset_point: x");
  host(r, "offset_point: r");
  run(n, detail::OffsetPointOp{z, x, r});
}

void gmc_accumulate(float* u, const float* m, const GradientInput& g, float beta, std::uint64_t n,
                    const Block& send, float* send_values) {
  check_send(send, n, send_values, "gmc_accumulate");
  if (n == 0) return;
  host(u, "gmc_accumulate: u");
  host(m, "gmc_accumulate: m");
  check_gradient(g, n, "gmc_accumulate");
  if (plain(g, send)) {
    float* __restrict uu = u;
    const float* __restrict mm = m;
    const float* __restrict gg = g.g;
    for (std::uint64_t i = 0; i < n; ++i) uu[i] = gmc_message(uu[i], gg[i], beta, mm[i]);
    return;
  }
  run(n, detail::GmcAccumulateOp{u, m, g, beta, send, send_values});
}

void gmc_accumulate_sparse(float* u, const float* m, const Index* idx, std::uint64_t count,
                           const GradientInput& g, float beta, std::uint64_t n, float* save) {
  if (n == 0) return;
  host(u, "gmc_accumulate_sparse: u");
  check_gradient(g, n, "gmc_accumulate_sparse");
  if (count > 0) {
    host(m, "gmc_accumulate_sparse: m");
    host(idx, "gmc_accumulate_sparse: indices");
    host(save, "gmc_accumulate_sparse: save");
    run(count, detail::GmcSupportSaveOp{u, m, g, beta, idx, save});
  }
  if (plain(g, Block{})) {
    float* __restrict uu = u;
    const float* __restrict gg = g.g;
    for (std::uint64_t i = 0; i < n; ++i) uu[i] = gmc_message(uu[i], gg[i], beta, 0.0f);
  } else {
    run(n, detail::GmcAccumulateOp{u, nullptr, g, beta, Block{}, nullptr});
  }
  if (count > 0) run(count, detail::ScatterValuesOp{u, idx, save});
}

void dgc_accumulate(float* u, float* v, const GradientInput& g, float beta, bool nesterov, bool mask_momentum,
                    std::uint64_t n, const Block& send, float* send_values) {
  check_send(send, n, send_values, "dgc_accumulate");
  if (n == 0) return;
  host(u, "dgc_accumulate: u");
  host(v, "dgc_accumulate: v");
  check_gradient(g, n, "dgc_accumulate");
  if (plain(g, send) && !nesterov) {
    float* __restrict uu = u;
    float* __restrict vv = v;
    const float* __restrict gg = g.g;
    for (std::uint64_t i = 0; i < n; ++i) {
      const DgcState st = device::dgc_accumulate(uu[i], vv[i], gg[i], beta, false);
      uu[i] = st.u;
      vv[i] = st.v;
    }
    return;
  }
  run(n, detail::DgcAccumulateOp{u, v, g, beta, nesterov, mask_momentum, send, send_values});
}

void ef_accumulate(float* e, float* m, const GradientInput& g, float beta, float eta, std::uint64_t n,
                   const Block& send, float* send_values) {
  check_send(send, n, send_values, "ef_accumulate");
  if (n == 0) return;
  host(e, "ef_accumulate: e");
  if (m != nullptr) host(m, "ef_accumulate: m");
  check_gradient(g, n, "ef_accumulate");
  if (plain(g, send)) {
    float* __restrict ee = e;
    float* __restrict mm = m;
    const float* __restrict gg = g.g;
    if (m != nullptr) {
      for (std::uint64_t i = 0; i < n; ++i) {
        const float q = momentum(beta, mm[i], gg[i]);
        mm[i] = q;
        ee[i] = ef_message(ee[i], eta, q);
      }
    } else {
      for (std::uint64_t i = 0; i < n; ++i) ee[i] = ef_message(ee[i], eta, gg[i]);
    }
    return;
  }
  run(n, detail::EfAccumulateOp{e, m, g, beta, eta, send, send_values});
}

void cser_accumulate(float* m, float* r, const GradientInput& g, float beta, float eta, std::uint64_t n,
                     const Block& send, float* send_values) {
  check_send(send, n, send_values, "cser_accumulate");
  if (n == 0) return;
  host(m, "cser_accumulate: m");
  host(r, "cser_accumulate: r");
  check_gradient(g, n, "cser_accumulate");
  run(n, detail::CserAccumulateOp{m, r, g, beta, eta, send, send_values});
}

void cser_momentum(float* m, float* delta, const GradientInput& g, float beta, float eta, std::uint64_t n) {
  if (n == 0) return;
  host(m, "cser_momentum: m");
  host(delta, "cser_momentum: delta");
  check_gradient(g, n, "cser_momentum");
  if (plain(g, Block{})) {
    float* __restrict mm = m;
    float* __restrict dd = delta;
    const float* __restrict gg = g.g;
    for (std::uint64_t i = 0; i < n; ++i) {
      const float q = momentum(beta, mm[i], gg[i]);
      mm[i] = q;
      dd[i] = fmul(eta, q);
    }
    return;
  }
  run(n, detail::CserMomentumOp{m, delta, g, beta, eta});
}

void cser_apply(float* x, float* r, const float* a, const float* delta, std::uint64_t n) {
  if (n == 0) return;
  host(x, "cser_apply: x");
  host(r, "cser_apply: r");
  host(a, "cser_apply: a");
  host(delta, "cser_apply: delta");
  run(n, detail::CserApplyOp{x, r, a, delta});
}

void dmsgd_local(float* m, float* v, const GradientInput& g, float beta, std::uint64_t n) {
  if (n == 0) return;
  host(m, "dmsgd_local: m");
  host(v, "dmsgd_local: v");
  check_gradient(g, n, "dmsgd_local");
  run(n, detail::DmsgdLocalOp{m, v, g, beta});
}

void dmsgd_apply(float* m, float* x, const float* a, float beta, float eta, std::uint64_t n) {
  if (n == 0) return;
  host(m, "dmsgd_apply: m");
  host(x, "dmsgd_apply: x");
  host(a, "dmsgd_apply: a");
  run(n, detail::DmsgdApplyOp{m, x, a, beta, eta});
}

void apply_update(float* x, const float* a, float eta, float wd, std::uint64_t n) {
  if (n == 0) return;
  host(x, "apply_update: x");
  host(a, "apply_update: a");
  run(n, detail::ApplyUpdateOp{x, a, eta, wd});
}

void sparse_apply_update(float* x, const float* a, const Index* idx, std::uint64_t count, float eta) {
  if (count == 0) return;
  host(x, "sparse_apply_update: x");
  host(a, "sparse_apply_update: a");
  host(idx, "sparse_apply_update: indices");
  // SparseApplyUpdateOp's element rule with the lines of x and a prefetched ahead.
  const std::uint64_t ahead = count > kPrefetchDistance ? count - kPrefetchDistance : 0;
  for (std::uint64_t j = 0; j < count; ++j) {
    if (j < ahead) {
      prefetch_for_write(x + idx[j + kPrefetchDistance]);
      prefetch_for_write(a + idx[j + kPrefetchDistance]);
    }
    const Index i = idx[j];
    x[i] = device::apply_update(x[i], a[i], eta);
  }
}

// ---- PowerSGD (lowrank.cu): the same functors, one output element after the other ----

void lowrank_multiply(const float* a, std::uint64_t n, std::uint64_t m, const float* b, std::uint64_t r,
                      float* out) {
  if (n * r == 0) return;
  host(a, "lowrank_multiply: a");
  host(b, "lowrank_multiply: b");
  host(out, "lowrank_multiply: out");
  run(n * r, detail::LowrankMultiplyOp{a, b, out, m, r});
}

void lowrank_multiply_t(const float* a, std::uint64_t n, std::uint64_t m, const float* p, std::uint64_t r,
                        float* out) {
  if (m * r == 0) return;
  host(a, "lowrank_multiply_t: a");
  host(p, "lowrank_multiply_t: p");
  host(out, "lowrank_multiply_t: out");
  run(m * r, detail::LowrankMultiplyTOp{a, p, out, n, m, r});
}

void lowrank_outer(const float* p, const float* q, std::uint64_t n, std::uint64_t m, std::uint64_t r,
                   float* out) {
  if (n * m == 0) return;
  host(p, "lowrank_outer: p");
  host(q, "lowrank_outer: q");
  host(out, "lowrank_outer: out");
  run(n * m, detail::LowrankOuterOp{p, q, out, m, r});
}

void orthonormalize_columns(float* p, std::uint64_t n, std::uint64_t r) {
  if (n * r == 0) return;
  host(p, "orthonormalize_columns: p");
  for (std::uint64_t c = 0; c < r; ++c) {
    const float div = static_cast<float>(std::sqrt(detail::column_dot(p, n, r, c, c))) + 1e-8f;
    for (std::uint64_t i = 0; i < n; ++i) p[i * r + c] /= div;
    for (std::uint64_t c2 = c + 1; c2 < r; ++c2) {
      const auto fd = static_cast<float>(detail::column_dot(p, n, r, c, c2));
      for (std::uint64_t i = 0; i < n; ++i) p[i * r + c2] -= fd * p[i * r + c];
    }
  }
}

void add_vectors(float* dst, const float* a, const float* b, std::uint64_t n) {
  if (n == 0) return;
  host(dst, "add_vectors: dst");
  host(a, "add_vectors: a");
  host(b, "add_vectors: b");
  run(n, detail::AddVectorsOp{dst, a, b});
}

void sub_vectors(float* dst, const float* a, const float* b, std::uint64_t n) {
  if (n == 0) return;
  host(dst, "sub_vectors: dst");
  host(a, "sub_vectors: a");
  host(b, "sub_vectors: b");
  run(n, detail::SubVectorsOp{dst, a, b});
}

void divide(float* dst, const float* src, float divisor, std::uint64_t n) {
  if (n == 0) return;
  host(dst, "divide: dst");
  host(src, "divide: src");
  run(n, detail::DivideOp{dst, src, divisor});
}

void powersgd_apply(float* m, float* x, const float* a, float lambda, float eta, float wd, std::uint64_t n) {
  if (n == 0) return;
  host(m, "powersgd_apply: m");
  host(x, "powersgd_apply: x");
  host(a, "powersgd_apply: a");
  run(n, detail::PowerSgdApplyOp{m, x, a, lambda, eta, wd});
}

}  // namespace sparcol::device::cpu
