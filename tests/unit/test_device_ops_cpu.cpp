// The CPU twins of the CUDA kernels (device::cpu, src/device/ops_cpu.cpp) against the code they
// mirror: the compressors (top-k, sampled top-k, sign, rbgs), the collectives' decoders (sparse sum,
// sign mean and majority), and whole optimizer steps (every method, run on LoopbackBackend, against
// the same steps composed from the fused twins). Results must agree bit for bit wherever the order of
// operations is the same; the GPU tests then compare each kernel with these twins.
//
// Random inputs use a fresh seed per run, printed on failure; SPARCOL_TEST_SEED=<n> repeats a run.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "sparcol/coll/rbgs_allreduce.hpp"
#include "sparcol/coll/sign_allgather.hpp"
#include "sparcol/coll/sparse_allgather.hpp"
#include "sparcol/comm/loopback.hpp"
#include "sparcol/compress/compressor.hpp"
#include "sparcol/compress/sign.hpp"
#include "sparcol/compress/topk.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/core/rng.hpp"
#include "sparcol/device/ops.hpp"
#include "sparcol/optim/optimizer.hpp"

namespace dev = sparcol::device;
namespace cpu = sparcol::device::cpu;
using sparcol::Index;
using Vec = std::vector<float>;

namespace {

constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

std::uint64_t fresh_seed() {
  if (const char* s = std::getenv("SPARCOL_TEST_SEED")) return std::strtoull(s, nullptr, 10);
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}

#define SEEDED(seed) SCOPED_TRACE("seed " + std::to_string(seed) + " (repeat with SPARCOL_TEST_SEED)")

// Inputs: gaussian, integer-valued (many ties), and gaussian with NaN, +-Inf and +-0 sprinkled in.
enum class Data { kGaussian, kTies, kSpecial, kAllEqual };
const char* name(Data d) {
  switch (d) {
    case Data::kGaussian:
      return "gaussian";
    case Data::kTies:
      return "ties";
    case Data::kSpecial:
      return "special";
    case Data::kAllEqual:
      return "all-equal";
  }
  return "?";
}

Vec make(Data kind, std::uint64_t n, std::uint64_t seed) {
  sparcol::CounterRng rng(seed, sparcol::kStreamUser);
  Vec v(n);
  for (std::uint64_t i = 0; i < n; ++i) {
    switch (kind) {
      case Data::kGaussian:
        v[i] = static_cast<float>(rng.normal());
        break;
      case Data::kTies:
        v[i] = static_cast<float>(static_cast<int>(rng.below(9)) - 4);
        break;
      case Data::kAllEqual:
        v[i] = (i % 2 == 0) ? 2.5f : -2.5f;
        break;
      case Data::kSpecial: {
        const std::uint64_t r = rng.below(40);
        v[i] = r == 0   ? kNan
               : r == 1 ? kInf
               : r == 2 ? -kInf
               : r == 3 ? -0.0f
               : r == 4 ? 0.0f
                        : static_cast<float>(rng.normal());
      }
    }
  }
  return v;
}

std::uint32_t bits(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

::testing::AssertionResult same_bits(const float* a, const float* b, std::uint64_t n,
                                     const std::string& what) {
  for (std::uint64_t i = 0; i < n; ++i) {
    if (bits(a[i]) != bits(b[i])) {
      return ::testing::AssertionFailure() << what << ": first difference at " << i << ": " << a[i] << " vs "
                                           << b[i] << " (of " << n << ")";
    }
  }
  return ::testing::AssertionSuccess();
}
::testing::AssertionResult same_bits(const Vec& a, const Vec& b, const std::string& what) {
  if (a.size() != b.size())
    return ::testing::AssertionFailure() << what << ": sizes " << a.size() << " vs " << b.size();
  return same_bits(a.data(), b.data(), a.size(), what);
}

template <class F>
void expect_error(sparcol::ErrorCode code, const std::string& text, F&& f) {
  try {
    f();
    ADD_FAILURE() << "expected an error containing '" << text << "'";
  } catch (const sparcol::Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Shared per-element pieces
// ---------------------------------------------------------------------------------------------

TEST(DeviceElementwise, MagnitudeKeyMatchesTheCompressors) {
  const float special[] = {0.0f,
                           -0.0f,
                           1.0f,
                           -1.0f,
                           kInf,
                           -kInf,
                           kNan,
                           -kNan,
                           1e-45f,
                           -3.4e38f,
                           std::numeric_limits<float>::signaling_NaN()};
  for (float x : special) EXPECT_EQ(dev::magnitude_key(x), sparcol::compress::magnitude_key(x)) << x;
  const std::uint64_t seed = fresh_seed();
  SEEDED(seed);
  sparcol::CounterRng rng(seed, sparcol::kStreamUser);
  for (int i = 0; i < 100000; ++i) {
    const auto u = static_cast<std::uint32_t>(rng.next_u64());
    float x;
    std::memcpy(&x, &u, sizeof x);
    ASSERT_EQ(dev::magnitude_key(x), sparcol::compress::magnitude_key(x)) << u;
  }
  EXPECT_EQ(dev::kNanKey, sparcol::compress::kNanKey);
}

TEST(DeviceElementwise, BlockMatchesRbgsBlock) {
  const std::uint64_t seed = fresh_seed();
  SEEDED(seed);
  for (std::uint64_t n : std::initializer_list<std::uint64_t>{1, 2, 7, 100, 1001}) {
    for (std::uint64_t k : std::initializer_list<std::uint64_t>{0, 1, n / 3, n}) {
      for (std::uint64_t step = 0; step < 20; ++step) {
        const auto rb = sparcol::rbgs_block(n, k, seed, step, 3);
        const sparcol::Block b{rb.n, rb.start, rb.length};
        ASSERT_EQ(b.first_len(), rb.first_len());
        ASSERT_EQ(b.wrap_len(), rb.wrap_len());
        for (std::uint64_t i = 0; i < n; ++i) {
          ASSERT_EQ(b.contains(i), rb.contains(i)) << "n " << n << " k " << k << " i " << i;
          if (b.contains(i)) {
            ASSERT_EQ(b.element(b.position(i)), i);
          }
        }
        for (std::uint64_t p = 0; p < k; ++p) ASSERT_EQ(b.position(b.element(p)), p);
      }
    }
  }
}

TEST(DeviceElementwise, SampledConstantsMatchTheCompressor) {
  using sparcol::compress::TopkSampledCompressor;
  EXPECT_EQ(dev::kSampledUpperBound, TopkSampledCompressor::kUpperBound);
  EXPECT_EQ(dev::kSampledLowerBound, TopkSampledCompressor::kLowerBound);
  EXPECT_EQ(dev::kSampledMaxReselections, TopkSampledCompressor::kMaxReselections);
}

// ---------------------------------------------------------------------------------------------
// RBGS
// ---------------------------------------------------------------------------------------------

TEST(DeviceOpsCpu, RbgsPackUnpackExtractWithWrap) {
  const std::uint64_t seed = fresh_seed();
  SEEDED(seed);
  for (std::uint64_t n : std::initializer_list<std::uint64_t>{1, 5, 64, 1003}) {
    for (std::uint64_t k : std::initializer_list<std::uint64_t>{1, n / 2 + 1, n}) {
      for (std::uint64_t step = 0; step < 8; ++step) {
        const auto rb = sparcol::rbgs_block(n, k, seed, step, 0);
        const sparcol::Block b{rb.n, rb.start, rb.length};
        const Vec v = make(Data::kSpecial, n, seed + step);
        Vec want(k), got(k);
        sparcol::rbgs_pack(v.data(), rb, want.data());
        cpu::rbgs_pack(v.data(), b, got.data());
        ASSERT_TRUE(same_bits(want, got, "pack"));

        // Extract = pack + zero the block (Exchange: v <- v - C(v)).
        Vec ve = v, packed(k);
        cpu::rbgs_extract(ve.data(), b, packed.data());
        ASSERT_TRUE(same_bits(want, packed, "extract values"));
        for (std::uint64_t i = 0; i < n; ++i) ASSERT_EQ(bits(ve[i]), bits(rb.contains(i) ? 0.0f : v[i])) << i;

        // Unpack: in place only on the block, or the block's mean with zeros elsewhere.
        Vec out = make(Data::kGaussian, n, seed ^ 77), ref = out;
        sparcol::rbgs_unpack(want.data(), rb, ref.data());
        cpu::rbgs_unpack(want.data(), b, 1.0f, out.data(), false);
        ASSERT_TRUE(same_bits(ref, out, "unpack"));
        Vec mean(n, 123.0f);
        cpu::rbgs_unpack(want.data(), b, 3.0f, mean.data(), true);
        for (std::uint64_t i = 0; i < n; ++i) {
          const float expect = rb.contains(i) ? want[b.position(i)] / 3.0f : 0.0f;
          ASSERT_EQ(bits(mean[i]), bits(expect)) << i;
        }
      }
    }
  }
}

TEST(DeviceOpsCpu, RbgsRejectsBlocksThatDoNotFit) {
  Vec v(10), p(10);
  expect_error(sparcol::ErrorCode::kInvalidArgument, "does not fit", [&] {
    cpu::rbgs_pack(v.data(), sparcol::Block{10, 10, 3}, p.data());
  });
  expect_error(sparcol::ErrorCode::kInvalidArgument, "does not fit", [&] {
    cpu::gmc_accumulate(v.data(), v.data(), {v.data()}, 0.5f, 10, sparcol::Block{9, 0, 3}, p.data());
  });
  expect_error(sparcol::ErrorCode::kInvalidArgument, "null pointer", [&] {
    cpu::rbgs_pack(nullptr, sparcol::Block{10, 0, 3}, p.data());
  });
}

// ---------------------------------------------------------------------------------------------
// Sign and the deterministic reductions
// ---------------------------------------------------------------------------------------------

TEST(DeviceOpsCpu, SignPackMatchesTheCompressor) {
  const std::uint64_t seed = fresh_seed();
  SEEDED(seed);
  for (std::uint64_t n : std::initializer_list<std::uint64_t>{0, 1, 31, 32, 33, 8191, 8192, 8193, 100003}) {
    for (Data kind : {Data::kGaussian, Data::kTies, Data::kSpecial}) {
      SCOPED_TRACE(std::string(name(kind)) + " n " + std::to_string(n));
      const Vec v = make(kind, n, seed + n);
      std::vector<std::uint32_t> want((n + 31) / 32 + 1, 0xdeadbeefu), got = want;
      sparcol::compress::sign_pack(v, want.data());
      float scale = -1.0f;
      cpu::sign_pack(v.data(), n, got.data(), &scale);
      ASSERT_EQ(want, got);
      const float ref = sparcol::compress::sign_scale(v);
      if (std::any_of(v.begin(), v.end(), [](float x) { return !std::isfinite(x); })) {
        EXPECT_FALSE(std::isfinite(scale)) << scale;  // non-finite input is not hidden
        EXPECT_EQ(std::isnan(scale), std::isnan(ref));
        continue;
      }
      // Same value up to the summation order (both accumulate in double).
      EXPECT_NEAR(scale, ref, 1e-6 * std::max(1.0f, std::fabs(ref))) << n;
      long double exact = 0;
      for (float x : v) exact += std::fabs(static_cast<long double>(x));
      if (n > 0) {
        EXPECT_NEAR(scale, static_cast<double>(exact / n),
                    1e-6 * std::max(1.0, static_cast<double>(exact / n)));
      } else {
        EXPECT_EQ(scale, 0.0f);
      }
    }
  }
}

TEST(DeviceOpsCpu, SumSquaresIsAccurateAndReproducible) {
  const std::uint64_t seed = fresh_seed();
  SEEDED(seed);
  for (std::uint64_t n : std::initializer_list<std::uint64_t>{0, 1, 1000, 8192 * 300 + 17}) {
    const Vec v = make(Data::kGaussian, n, seed);
    double s1 = -1, s2 = -2;
    cpu::sum_squares(v.data(), n, &s1);
    cpu::sum_squares(v.data(), n, &s2);
    EXPECT_EQ(s1, s2);
    long double exact = 0;
    for (float x : v) exact += static_cast<long double>(x) * x;
    EXPECT_NEAR(s1, static_cast<double>(exact), 1e-12 * std::max(1.0, static_cast<double>(exact))) << n;
  }
  // Integer-valued squares are exact in any order: the result is exactly the sum.
  Vec ints(50000);
  double want = 0;
  for (std::size_t i = 0; i < ints.size(); ++i) {
    ints[i] = static_cast<float>(static_cast<int>(i % 7) - 3);
    want += static_cast<double>(ints[i]) * ints[i];
  }
  double got = 0;
  cpu::sum_squares(ints.data(), ints.size(), &got);
  EXPECT_EQ(got, want);
}

TEST(DeviceOpsCpu, SignDecodeMatchesSignAllgather) {
  const std::uint64_t seed = fresh_seed();
  SEEDED(seed);
  for (int K : {1, 2, 3, 5}) {
    for (std::uint64_t n : std::initializer_list<std::uint64_t>{1, 33, 1000}) {
      const std::uint64_t words = (n + 31) / 32;
      std::vector<std::uint32_t> all(words * static_cast<std::uint64_t>(K));
      std::vector<float> scales(static_cast<std::size_t>(K));
      std::vector<Vec> mean_ref(static_cast<std::size_t>(K)), major_ref(static_cast<std::size_t>(K));
      sparcol::comm::LoopbackWorld::spawn(K, [&](sparcol::comm::Backend& b) {
        const auto r = static_cast<std::size_t>(b.rank());
        const Vec v = make(Data::kTies, n, seed + 31 * r + n);
        std::vector<std::uint32_t> w(words);
        sparcol::compress::sign_pack(v, w.data());
        const float scale = sparcol::compress::sign_scale(v) + static_cast<float>(r) * 0.1f;
        std::copy(w.begin(), w.end(), all.begin() + static_cast<std::ptrdiff_t>(r * words));
        scales[r] = scale;
        sparcol::coll::SignAllgather sag(b, n);
        sag.run(sparcol::SignBits{n, w, scale});
        mean_ref[r].resize(n);
        major_ref[r].resize(n);
        sag.mean_into(mean_ref[r]);
        sag.majority_into(major_ref[r]);
      });
      Vec mean(n), major(n);
      cpu::sign_decode_mean(all.data(), scales.data(), K, n, mean.data());
      cpu::sign_decode_majority(all.data(), scales.data(), K, n, major.data());
      ASSERT_TRUE(same_bits(mean_ref[0], mean, "mean K " + std::to_string(K)));
      ASSERT_TRUE(same_bits(major_ref[0], major, "majority K " + std::to_string(K)));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Sparse sum
// ---------------------------------------------------------------------------------------------

TEST(DeviceOpsCpu, SparseSumMatchesSparseAllgatherWithDuplicates) {
  const std::uint64_t seed = fresh_seed();
  SEEDED(seed);
  const std::uint64_t n = 997;
  for (int K : {1, 2, 3, 4}) {
    std::vector<Index> all_idx;
    std::vector<float> all_val;
    std::vector<std::vector<Index>> idx(static_cast<std::size_t>(K));
    std::vector<Vec> val(static_cast<std::size_t>(K));
    for (int r = 0; r < K; ++r) {
      sparcol::CounterRng rng(seed, sparcol::kStreamUser, static_cast<std::uint32_t>(r));
      const std::uint64_t count = 50 + rng.below(200);
      for (std::uint64_t j = 0; j < count; ++j) {
        // Few distinct indices: duplicates within a rank and across ranks, in no particular order.
        idx[static_cast<std::size_t>(r)].push_back(static_cast<Index>(rng.below(60) * 16 % n));
        val[static_cast<std::size_t>(r)].push_back(static_cast<float>(rng.normal()) *
                                                   (j % 5 == 0 ? 1e6f : 1.0f));
      }
      all_idx.insert(all_idx.end(), idx[static_cast<std::size_t>(r)].begin(),
                     idx[static_cast<std::size_t>(r)].end());
      all_val.insert(all_val.end(), val[static_cast<std::size_t>(r)].begin(),
                     val[static_cast<std::size_t>(r)].end());
    }
    Vec ref(n);
    sparcol::comm::LoopbackWorld::spawn(K, [&](sparcol::comm::Backend& b) {
      const auto r = static_cast<std::size_t>(b.rank());
      sparcol::coll::SparseAllgather sag(b, n);
      sag.run({idx[r], val[r]});
      if (r == 0) {
        sag.sum_into(ref.data());
        for (auto& x : ref) x /= static_cast<float>(K);  // the Exchange's division by K
      }
    });
    Vec got(n, 5.0f);
    cpu::sparse_sum(all_idx.data(), all_val.data(), all_idx.size(), n, static_cast<float>(K), got.data());
    ASSERT_TRUE(same_bits(ref, got, "K " + std::to_string(K)));
  }
}

TEST(DeviceOpsCpu, SparseSumStartsFromPositiveZeroAndRejectsBadIndices) {
  const Index idx[] = {3, 3, 1};
  const float val[] = {-0.0f, -0.0f, 2.0f};
  Vec out(4, 9.0f);
  cpu::sparse_sum(idx, val, 3, 4, 1.0f, out.data());
  EXPECT_EQ(bits(out[3]), bits(0.0f));  // 0 + -0 + -0 = +0, as SparseAllgather::sum_into gives
  EXPECT_EQ(out[1], 2.0f);
  EXPECT_EQ(bits(out[0]), bits(0.0f));
  const Index bad[] = {1, 4};
  expect_error(sparcol::ErrorCode::kInvalidArgument, "out of range",
               [&] { cpu::sparse_sum(bad, val, 2, 4, 1.0f, out.data()); });
  expect_error(sparcol::ErrorCode::kInvalidArgument, "divisor",
               [&] { cpu::sparse_sum(idx, val, 3, 4, 0.0f, out.data()); });
}

// ---------------------------------------------------------------------------------------------
// Top-k
// ---------------------------------------------------------------------------------------------

namespace {

void expect_topk_like_compressor(const Vec& v, std::uint64_t k, const std::string& what) {
  sparcol::compress::TopkCompressor c(0.5);
  sparcol::compress::Message m;
  sparcol::compress::Context ctx;
  ctx.k = k;
  c.compress(v, ctx, m);
  std::vector<Index> idx(k, 12345);
  Vec val(k, 7.0f);
  cpu::topk(v.data(), v.size(), k, idx.data(), val.data());
  ASSERT_EQ(m.indices.size(), k) << what;
  ASSERT_EQ(m.indices, idx) << what;
  ASSERT_TRUE(same_bits(m.values, val, what));
}

}  // namespace

TEST(DeviceOpsCpu, TopkMatchesTheCompressor) {
  const std::uint64_t seed = fresh_seed();
  SEEDED(seed);
  for (std::uint64_t n : std::initializer_list<std::uint64_t>{1, 2, 17, 1001, 65537, 1 << 20}) {
    for (Data kind : {Data::kGaussian, Data::kTies, Data::kSpecial, Data::kAllEqual}) {
      const Vec v = make(kind, n, seed + n);
      for (std::uint64_t k : std::initializer_list<std::uint64_t>{1, 2, n / 100, n / 3, n - 1, n}) {
        if (k == 0 || k > n) continue;
        expect_topk_like_compressor(
            v, k, std::string(name(kind)) + " n " + std::to_string(n) + " k " + std::to_string(k));
      }
    }
  }
}

TEST(DeviceOpsCpu, TopkTieRuleAndNan) {
  // Ties at the threshold go to the smaller indices; NaN ranks above +Inf; -0 and +0 tie.
  const Vec v = {1.0f, -3.0f, 3.0f, kNan, -kInf, 3.0f, -0.0f, 0.0f, -3.0f};
  std::vector<Index> idx(4);
  Vec val(4);
  cpu::topk(v.data(), v.size(), 4, idx.data(), val.data());
  EXPECT_EQ(idx, (std::vector<Index>{1, 2, 3, 4}));  // NaN, -Inf, then the first two of the four 3s
  std::vector<Index> idx2(8);
  Vec val2(8);
  cpu::topk(v.data(), v.size(), 8, idx2.data(), val2.data());
  EXPECT_EQ(idx2, (std::vector<Index>{0, 1, 2, 3, 4, 5, 6, 8}));  // -0 (index 6) wins the 0-tie
  expect_error(sparcol::ErrorCode::kInvalidArgument, "exceeds",
               [&] { cpu::topk(v.data(), v.size(), 10, idx2.data(), val2.data()); });
  cpu::topk(nullptr, 0, 0, nullptr, nullptr);  // nothing to do, nothing touched
}

TEST(DeviceOpsCpu, ScatterZero) {
  Vec v = {1, 2, 3, 4, 5};
  const Index idx[] = {4, 0, 9};  // 9 is out of range: ignored
  cpu::scatter_zero(v.data(), v.size(), idx, 3);
  EXPECT_EQ(v, (Vec{0, 2, 3, 4, 0}));
}

namespace {

// Runs the compressor and the twin with the same plan; returns the twin's outcome (used_exact = 1
// also when the plan's stride is 1, where the compressor sends the exact top-k).
dev::SampledTopkResult expect_sampled_like_compressor(const Vec& v, std::uint64_t k, double ratio,
                                                      std::uint64_t seed, std::uint64_t step,
                                                      const std::string& what) {
  sparcol::compress::TopkSampledCompressor c(0.5, ratio);
  sparcol::compress::Message m;
  sparcol::compress::Context ctx;
  ctx.k = k;
  ctx.seed = seed;
  ctx.step = step;
  ctx.tensor = 2;
  c.compress(v, ctx, m);
  const auto p = sparcol::compress::dgc_sample_plan(v.size(), k, ratio);
  if (p.stride == 1 || k == v.size()) {
    expect_error(sparcol::ErrorCode::kInvalidArgument, "stride", [&] {
      std::vector<Index> i(k);
      Vec x(k);
      dev::SampledTopkResult r;
      cpu::topk_sampled(v.data(), v.size(), k, {p.stride, 0, p.top_samples}, i.data(), x.data(), &r);
    });
    dev::SampledTopkResult exact;
    exact.used_exact = 1;
    return exact;
  }
  const dev::SamplePlan plan{p.stride, sparcol::compress::dgc_sample_offset(p.stride, seed, step, 2),
                             p.top_samples};
  std::vector<Index> idx(k, 4242);
  Vec val(k, 3.0f);
  dev::SampledTopkResult r;
  cpu::topk_sampled(v.data(), v.size(), k, plan, idx.data(), val.data(), &r);
  EXPECT_EQ(r.count, m.indices.size()) << what;
  idx.resize(r.count);
  val.resize(r.count);
  EXPECT_EQ(idx, m.indices) << what;
  EXPECT_TRUE(same_bits(val, m.values, what));
  EXPECT_EQ(r.reselections, static_cast<std::uint32_t>(c.last_reselections())) << what;
  EXPECT_EQ(r.used_exact != 0, c.last_used_exact()) << what;
  EXPECT_EQ(r.threshold_key, dev::magnitude_key(c.last_threshold())) << what;
  return r;
}

}  // namespace

TEST(DeviceOpsCpu, SampledTopkMatchesTheCompressor) {
  const std::uint64_t seed = fresh_seed();
  SEEDED(seed);
  for (std::uint64_t n : std::initializer_list<std::uint64_t>{1000, 30011, 1 << 20}) {
    for (Data kind : {Data::kGaussian, Data::kTies, Data::kSpecial}) {
      const Vec v = make(kind, n, seed + n);
      for (std::uint64_t k : std::initializer_list<std::uint64_t>{1, n / 1000, n / 100, n / 10}) {
        if (k == 0) continue;
        for (std::uint64_t step = 0; step < 3; ++step) {
          expect_sampled_like_compressor(
              v, k, 0.01, seed, step,
              std::string(name(kind)) + " n " + std::to_string(n) + " k " + std::to_string(k));
        }
      }
    }
  }
}

TEST(DeviceOpsCpu, SampledTopkAdaptationPaths) {
  const std::uint64_t seed = fresh_seed();
  SEEDED(seed);
  const std::uint64_t n = 200000;
  // Where the sample of (n, k) lies for step 0, tensor 2 (the helper's context).
  auto sample_of = [&](std::uint64_t k) {
    const auto p = sparcol::compress::dgc_sample_plan(n, k, 0.01);
    return std::pair{p.stride, sparcol::compress::dgc_sample_offset(p.stride, seed, 0, 2)};
  };
  {
    // Reselection: only the sampled elements are large, so the sample's threshold selects about
    // k / stride elements, far fewer than 0.8k, and theta is lowered until all large ones (more than
    // k) are in; then the first k are kept.
    const std::uint64_t k = 2000;
    const auto [stride, offset] = sample_of(k);
    ASSERT_GT(stride, 1u);
    Vec v = make(Data::kGaussian, n, seed);
    for (std::uint64_t i = 0; i < n; ++i) v[i] = (i % stride == offset) ? 100.0f + v[i] : 0.01f * v[i];
    const auto r = expect_sampled_like_compressor(v, k, 0.01, seed, 0, "reselections");
    EXPECT_EQ(r.used_exact, 0u);
    EXPECT_GE(r.reselections, 1u);
    EXPECT_EQ(r.count, k);  // more than k reached theta: the first k are kept
  }
  {
    // Exact path: a plateau of ties at the threshold selects far more than 1.3k.
    Vec t(n, 1.0f);
    for (std::uint64_t i = 0; i < n; i += 3) t[i] = 2.0f;
    EXPECT_EQ(expect_sampled_like_compressor(t, 2000, 0.01, seed, 0, "plateau").used_exact, 1u);
  }
  {
    // Ten reselections without reaching 0.8k: the count after the last one stands unchecked.
    const std::uint64_t k = 20000;
    const auto [stride, offset] = sample_of(k);
    Vec tiny(n, 0.0f);
    for (std::uint64_t i = offset; i < n; i += stride) tiny[i] = 1e30f;
    const auto r = expect_sampled_like_compressor(tiny, k, 0.01, seed, 0, "exhausted");
    EXPECT_EQ(r.used_exact, 0u);
    EXPECT_EQ(r.reselections, static_cast<std::uint32_t>(dev::kSampledMaxReselections));
    EXPECT_LT(r.count, k * 8 / 10);
  }
}

// ---------------------------------------------------------------------------------------------
// Fused optimizer updates: whole steps against the optimizers
// ---------------------------------------------------------------------------------------------

namespace {

using sparcol::optim::Layout;
using sparcol::optim::OptimConfig;
using State = std::map<std::string, Vec>;
using GradFn = std::function<Vec(int rank, std::uint64_t t, const Vec& z)>;

struct Outcome {
  std::vector<Vec> x;        // per rank
  std::vector<State> state;  // per rank
};

Outcome run_optimizer(const OptimConfig& cfg, int K, std::uint64_t n, int steps, const GradFn& grad,
                      double lr) {
  Outcome out;
  out.x.resize(static_cast<std::size_t>(K));
  out.state.resize(static_cast<std::size_t>(K));
  const Layout layout = Layout::flat(n);
  sparcol::comm::LoopbackWorld::spawn(K, [&](sparcol::comm::Backend& b) {
    auto opt = sparcol::optim::make_optimizer(b, layout, cfg);
    Vec x(n, 0.0f);
    for (std::uint64_t i = 0; i < n; ++i) x[i] = 0.01f * static_cast<float>(i % 13);
    for (int t = 0; t < steps; ++t) {
      const auto zs = opt->gradient_point(x, lr);
      const Vec g = grad(b.rank(), static_cast<std::uint64_t>(t), Vec(zs.begin(), zs.end()));
      opt->step(x, g, static_cast<std::uint64_t>(t), lr);
    }
    const auto r = static_cast<std::size_t>(b.rank());
    out.x[r] = x;
    for (auto& s : opt->state()) out.state[r][s.name] = Vec(s.data.begin(), s.data.end());
  });
  return out;
}

// One compressor application on a message vector of every rank, in the Exchange's way, with the
// twins: the message keeps its residual, agg receives the mean over ranks. mask: vectors of each
// rank to zero where the message was sent (dgc-mfm).
struct TwinExchange {
  sparcol::compress::CompressorConfig comp;
  std::uint64_t n, seed;
  int K;
  std::uint32_t stream = 0;  // ExchangeConfig::stream: CSER's C2 draws from 2^31

  std::uint64_t k() const {
    if (comp.name == "rbgs") return sparcol::compress::k_floor(comp.density, n);
    return sparcol::compress::k_round(comp.density, n);
  }
  sparcol::Block block(std::uint64_t t) const {
    const auto b = sparcol::rbgs_block(n, k(), seed, t, stream);
    return {b.n, b.start, b.length};
  }
  // Mean of per-rank packed blocks (ring all-reduce: for K <= 2 any order gives the same sum).
  void reduce_blocks(const std::vector<Vec>& sends, std::uint64_t t, Vec& agg) const {
    Vec sum = sends[0];
    for (int r = 1; r < K; ++r)
      for (std::size_t i = 0; i < sum.size(); ++i) sum[i] = sum[i] + sends[static_cast<std::size_t>(r)][i];
    cpu::rbgs_unpack(sum.data(), block(t), static_cast<float>(K), agg.data(), true);
  }
  // Top-k (exact or sampled) on each rank's message, then the rank-ordered sparse sum.
  void sparse(std::vector<Vec*> msgs, std::uint64_t t, Vec& agg, std::vector<Vec*> masks = {}) const {
    std::vector<Index> all_idx;
    Vec all_val;
    for (int r = 0; r < K; ++r) {
      Vec& v = *msgs[static_cast<std::size_t>(r)];
      std::vector<Index> idx(k());
      Vec val(k());
      std::uint64_t count = k();
      if (comp.name == "topk-sampled") {
        const auto p = sparcol::compress::dgc_sample_plan(n, k(), comp.sample_ratio);
        const dev::SamplePlan plan{p.stride, sparcol::compress::dgc_sample_offset(p.stride, seed, t, stream),
                                   p.top_samples};
        dev::SampledTopkResult res;
        cpu::topk_sampled(v.data(), n, k(), plan, idx.data(), val.data(), &res);
        count = res.count;
      } else {
        cpu::topk(v.data(), n, k(), idx.data(), val.data());
      }
      cpu::scatter_zero(v.data(), n, idx.data(), count);
      if (!masks.empty()) cpu::scatter_zero(masks[static_cast<std::size_t>(r)]->data(), n, idx.data(), count);
      all_idx.insert(all_idx.end(), idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(count));
      all_val.insert(all_val.end(), val.begin(), val.begin() + static_cast<std::ptrdiff_t>(count));
    }
    cpu::sparse_sum(all_idx.data(), all_val.data(), all_idx.size(), n, static_cast<float>(K), agg.data());
  }
  // Dense exchange ("none"): agg = mean, the messages become 0.
  void dense(std::vector<Vec*> msgs, Vec& agg) const {
    for (std::uint64_t i = 0; i < n; ++i) {
      float s = (*msgs[0])[i];
      for (int r = 1; r < K; ++r) s = s + (*msgs[static_cast<std::size_t>(r)])[i];
      agg[i] = s / static_cast<float>(K);
    }
    for (auto* m : msgs) std::fill(m->begin(), m->end(), 0.0f);
  }
};

struct Rank {
  Vec u, m, v, e, r, delta, z, send;
};

// The optimizer steps of cfg composed from the twins, for K ranks simulated in one thread.
Outcome run_twins(const OptimConfig& cfg, int K, std::uint64_t n, int steps, const GradFn& grad, double lr) {
  const std::string& method = cfg.method;
  const auto beta = static_cast<float>(cfg.momentum);
  const auto eta = static_cast<float>(lr);
  const auto wd = static_cast<float>(cfg.weight_decay);
  const bool wd_in = cfg.weight_decay != 0.0 && !cfg.wd_outside;
  TwinExchange ex{cfg.exchange.compressor, n, cfg.exchange.seed, K};
  const bool block = ex.comp.name == "rbgs";
  Vec x(n), agg(n);
  for (std::uint64_t i = 0; i < n; ++i) x[i] = 0.01f * static_cast<float>(i % 13);
  std::vector<Rank> ranks(static_cast<std::size_t>(K));
  for (auto& rk : ranks) rk.u = rk.m = rk.v = rk.e = rk.r = rk.delta = rk.z = Vec(n, 0.0f);
  double alpha = cfg.alpha;
  if (alpha < 0) alpha = method == "gmc-plus" ? 0.5 : 0.3;

  for (int ti = 0; ti < steps; ++ti) {
    const auto t = static_cast<std::uint64_t>(ti);
    std::vector<Vec> sends(static_cast<std::size_t>(K));
    std::vector<Vec*> msgs, masks;
    std::vector<Vec> grads(static_cast<std::size_t>(K));
    for (int r = 0; r < K; ++r) {
      Rank& rk = ranks[static_cast<std::size_t>(r)];
      // Gradient point.
      const float* zp = x.data();
      if (method == "gmc-plus" && alpha != 0.0) {
        cpu::detached_point(rk.z.data(), x.data(), rk.u.data(), static_cast<float>(alpha * lr), n);
        zp = rk.z.data();
      } else if (method == "def-a" && alpha != 0.0) {
        cpu::detached_point(rk.z.data(), x.data(), rk.e.data(), static_cast<float>(alpha), n);
        zp = rk.z.data();
      } else if (method == "cser") {
        cpu::offset_point(rk.z.data(), x.data(), rk.r.data(), n);
        zp = rk.z.data();
      }
      grads[static_cast<std::size_t>(r)] = grad(r, t, Vec(zp, zp + n));
      dev::GradientInput gi{grads[static_cast<std::size_t>(r)].data(), zp, wd_in ? wd : 0.0f, 1.0f};
      if (method.rfind("dgc", 0) == 0 && cfg.clip_norm > 0) {
        // dgc.cpp: the norm of g (after weight decay) in double, in index order.
        double norm2 = 0;
        for (std::uint64_t i = 0; i < n; ++i) {
          const float gv = dev::effective_gradient(gi.g[i], zp[i], gi.wd, 1.0f);
          norm2 += static_cast<double>(gv) * gv;
        }
        const double limit = cfg.clip_norm / std::sqrt(static_cast<double>(K));
        const double norm = std::sqrt(norm2);
        gi.scale = norm > limit ? static_cast<float>(limit / norm) : 1.0f;
      }
      auto& send = sends[static_cast<std::size_t>(r)];
      send.assign(block ? ex.k() : 0, 0.0f);
      const sparcol::Block b = block ? ex.block(t) : sparcol::Block{};
      if (method == "gmc" || method == "gmc-plus") {
        cpu::gmc_accumulate(rk.u.data(), rk.m.data(), gi, beta, n, b, send.data());
        msgs.push_back(&rk.u);
      } else if (method == "dgc" || method == "dgc-mfm") {
        cpu::dgc_accumulate(rk.u.data(), rk.v.data(), gi, beta, cfg.nesterov, method == "dgc-mfm", n, b,
                            send.data());
        msgs.push_back(&rk.v);
        masks.push_back(&rk.u);
      } else if (method == "ef-sgd" || method == "ef-sgdm" || method == "def-a") {
        cpu::ef_accumulate(rk.e.data(), method == "ef-sgd" ? nullptr : rk.m.data(), gi, beta, eta, n, b,
                           send.data());
        msgs.push_back(&rk.e);
      } else if (method == "dmsgd-local") {
        cpu::dmsgd_local(rk.m.data(), rk.v.data(), gi, beta, n);
        msgs.push_back(&rk.v);
      } else if (method == "dmsgd") {
        for (std::uint64_t i = 0; i < n; ++i) rk.v[i] = dev::effective_gradient(gi.g[i], zp[i], gi.wd, 1.0f);
        msgs.push_back(&rk.v);
      } else if (method == "cser") {
        const std::string& c1 = cfg.cser_c1.name;
        if (c1 == "zero" || c1 == "rbgs") {
          TwinExchange e1{cfg.cser_c1, n, cfg.exchange.seed, K};
          const sparcol::Block b1 = c1 == "rbgs" ? e1.block(t) : sparcol::Block{};
          send.assign(b1.length, 0.0f);
          cpu::cser_accumulate(rk.m.data(), rk.r.data(), gi, beta, eta, n, b1, send.data());
        } else {
          cpu::cser_momentum(rk.m.data(), rk.delta.data(), gi, beta, eta, n);
          msgs.push_back(&rk.delta);
        }
      }
    }

    // Aggregate and apply.
    if (method == "cser") {
      TwinExchange e1{cfg.cser_c1, n, cfg.exchange.seed, K};
      if (cfg.cser_c1.name == "rbgs") {
        e1.reduce_blocks(sends, t, agg);
        cpu::apply_update(x.data(), agg.data(), 1.0f, 0.0f, n);
      } else if (cfg.cser_c1.name != "zero") {
        e1.sparse(msgs, t, agg);
        for (int r = 0; r < K; ++r) {
          // x is shared; every rank applies the same agg, so apply it once and r per rank.
          Rank& rk = ranks[static_cast<std::size_t>(r)];
          Vec xr = x;
          cpu::cser_apply(xr.data(), rk.r.data(), agg.data(), rk.delta.data(), n);
          if (r == K - 1) x = xr;
        }
      }
      if ((t + 1) % static_cast<std::uint64_t>(cfg.cser_period) == 0) {
        TwinExchange e2{cfg.cser_c2, n, cfg.exchange.seed, K, 1u << 31};
        std::vector<Vec*> rs;
        for (auto& rk : ranks) rs.push_back(&rk.r);
        if (cfg.cser_c2.name == "rbgs") {
          std::vector<Vec> s2(static_cast<std::size_t>(K), Vec(e2.k()));
          for (int r = 0; r < K; ++r)
            cpu::rbgs_extract(rs[static_cast<std::size_t>(r)]->data(), e2.block(t),
                              s2[static_cast<std::size_t>(r)].data());
          e2.reduce_blocks(s2, t, agg);
        } else {
          e2.sparse(rs, t, agg);
        }
        cpu::apply_update(x.data(), agg.data(), -1.0f, 0.0f, n);  // x + mean c2
      }
      continue;
    }
    if (method == "dmsgd" || method == "dmsgd-local") {
      ex.dense(msgs, agg);
    } else if (block) {
      ex.reduce_blocks(sends, t, agg);
    } else {
      ex.sparse(msgs, t, agg, method == "dgc-mfm" ? masks : std::vector<Vec*>{});
    }
    if (method == "gmc" || method == "gmc-plus") {
      for (auto& rk : ranks) rk.m = agg;  // m <- a_t (replicated)
      cpu::apply_update(x.data(), ranks[0].m.data(), eta, 0.0f, n);
    } else if (method == "dgc" || method == "dgc-mfm") {
      cpu::apply_update(x.data(), agg.data(), eta, cfg.wd_outside ? wd : 0.0f, n);
    } else if (method == "dmsgd") {
      for (int r = 0; r < K; ++r) {
        Vec xr = x;
        cpu::dmsgd_apply(ranks[static_cast<std::size_t>(r)].m.data(), xr.data(), agg.data(), beta, eta, n);
        if (r == K - 1) x = xr;
      }
    } else if (method == "dmsgd-local") {
      cpu::apply_update(x.data(), agg.data(), eta, 0.0f, n);
    } else {
      cpu::apply_update(x.data(), agg.data(), 1.0f, 0.0f, n);  // EF family: x - mean c
    }
  }

  Outcome out;
  for (int r = 0; r < K; ++r) {
    const Rank& rk = ranks[static_cast<std::size_t>(r)];
    out.x.push_back(x);
    State s;
    if (method == "gmc" || method == "gmc-plus") s = {{"residual", rk.u}, {"global_momentum", rk.m}};
    if (method == "dgc" || method == "dgc-mfm") s = {{"momentum", rk.u}, {"velocity", rk.v}};
    if (method == "ef-sgd") s = {{"error", rk.e}};
    if (method == "ef-sgdm" || method == "def-a") s = {{"error", rk.e}, {"momentum", rk.m}};
    if (method == "cser") s = {{"local_residual", rk.r}, {"momentum", rk.m}};
    if (method == "dmsgd" || method == "dmsgd-local") s = {{"momentum", rk.m}};
    out.state.push_back(s);
  }
  return out;
}

struct Case {
  std::string label;
  OptimConfig cfg;
};

OptimConfig make_cfg(const std::string& method, const std::string& comp, double density) {
  OptimConfig c;
  c.method = method;
  c.momentum = 0.9;
  c.exchange.compressor.name = comp;
  c.exchange.compressor.density = density;
  c.exchange.seed = 1234;
  return c;
}

std::vector<Case> cases() {
  std::vector<Case> cs;
  for (const char* comp : {"rbgs", "topk"}) {
    for (const char* m : {"gmc", "gmc-plus", "dgc", "dgc-mfm", "ef-sgd", "ef-sgdm", "def-a"})
      cs.push_back({std::string(m) + "/" + comp, make_cfg(m, comp, 0.05)});
  }
  cs.push_back({"dgc/topk-sampled", make_cfg("dgc", "topk-sampled", 0.05)});
  auto wd = make_cfg("gmc-plus", "rbgs", 0.05);
  wd.weight_decay = 0.01;
  cs.push_back({"gmc-plus/rbgs/wd", wd});
  auto defa = make_cfg("def-a", "topk", 0.05);
  defa.weight_decay = 0.02;
  defa.alpha = 0.7;
  cs.push_back({"def-a/topk/wd/alpha", defa});
  auto nest = make_cfg("dgc-mfm", "rbgs", 0.05);
  nest.nesterov = true;
  nest.clip_norm = 0.5;
  cs.push_back({"dgc-mfm/rbgs/nesterov/clip", nest});
  auto outside = make_cfg("dgc", "topk", 0.05);
  outside.weight_decay = 0.05;
  outside.wd_outside = true;
  outside.clip_norm = 100.0;
  cs.push_back({"dgc/topk/wd-outside/clip", outside});
  for (auto [c1, c2] : {std::pair{"zero", "rbgs"}, {"topk", "rbgs"}, {"rbgs", "topk"}}) {
    auto c = make_cfg("cser", "topk", 0.05);
    c.cser_c1 = {c1, 0.05};
    c.cser_c2 = {c2, 0.2};
    c.cser_period = 2;
    c.weight_decay = 0.01;
    cs.push_back({std::string("cser/") + c1 + "/" + c2, c});
  }
  auto dm = make_cfg("dmsgd", "none", 1.0);
  dm.weight_decay = 0.01;
  cs.push_back({"dmsgd/wd", dm});
  cs.push_back({"dmsgd-local", make_cfg("dmsgd-local", "none", 1.0)});
  return cs;
}

}  // namespace

TEST(DeviceOpsCpu, FusedUpdatesReproduceEveryOptimizerBitwise) {
  const std::uint64_t seed = fresh_seed();
  SEEDED(seed);
  const std::uint64_t n = 2003;
  const int steps = 6;
  const double lr = 0.1;
  // Gradient depends on the point it is taken at, so detached points matter.
  const GradFn grad = [seed](int rank, std::uint64_t t, const Vec& z) {
    sparcol::CounterRng rng(seed, sparcol::kStreamUser, static_cast<std::uint32_t>(rank * 1000 + t));
    Vec g(z.size());
    for (std::size_t i = 0; i < z.size(); ++i)
      g[i] = static_cast<float>(rng.normal()) * (i % 17 == 0 ? 10.0f : 1.0f) + 0.5f * z[i];
    return g;
  };
  for (int K : {1, 2}) {
    for (const Case& c : cases()) {
      SCOPED_TRACE(c.label + " K " + std::to_string(K));
      const Outcome want = run_optimizer(c.cfg, K, n, steps, grad, lr);
      const Outcome got = run_twins(c.cfg, K, n, steps, grad, lr);
      for (int r = 0; r < K; ++r) {
        const auto rr = static_cast<std::size_t>(r);
        ASSERT_TRUE(same_bits(want.x[rr], got.x[rr], "x rank " + std::to_string(r)));
        ASSERT_EQ(want.state[rr].size(), got.state[rr].size());
        for (const auto& [nm, vec] : want.state[rr]) {
          ASSERT_TRUE(got.state[rr].count(nm)) << nm;
          ASSERT_TRUE(same_bits(vec, got.state[rr].at(nm), nm + " rank " + std::to_string(r)));
        }
      }
    }
  }
}

TEST(DeviceOpsCpu, FusedUpdateArgumentChecks) {
  Vec u(8), m(8), g(8), send(4);
  expect_error(sparcol::ErrorCode::kInvalidArgument, "gradient point", [&] {
    cpu::gmc_accumulate(u.data(), m.data(), {g.data(), nullptr, 0.1f}, 0.9f, 8, {}, nullptr);
  });
  expect_error(sparcol::ErrorCode::kInvalidArgument, "send", [&] {
    cpu::ef_accumulate(u.data(), m.data(), {g.data()}, 0.9f, 0.1f, 8, {8, 6, 4}, nullptr);
  });
  cpu::gmc_accumulate(nullptr, nullptr, {}, 0.9f, 0, {}, nullptr);  // n = 0: nothing touched
}

TEST(DeviceOpsCpu, LowrankTwinsComputeTheProductsAndAnOrthonormalBasis) {
  // PowerSGD's twins (lowrank.cu) against plain double arithmetic: each product element is the
  // double sum rounded once to float, the Gram-Schmidt leaves orthonormal columns, and the update
  // is the paper's momentum form.
  const std::uint64_t seed = fresh_seed();
  SEEDED(seed);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd;
  const std::uint64_t n = 37, m = 23, r = 3;
  Vec a(n * m), b(m * r);
  for (auto& v : a) v = nd(rng);
  for (auto& v : b) v = nd(rng);
  Vec p(n * r), q(m * r), o(n * m);
  cpu::lowrank_multiply(a.data(), n, m, b.data(), r, p.data());
  for (std::uint64_t i = 0; i < n; ++i)
    for (std::uint64_t c = 0; c < r; ++c) {
      double s = 0;
      for (std::uint64_t j = 0; j < m; ++j) s += static_cast<double>(a[i * m + j]) * b[j * r + c];
      ASSERT_EQ(p[i * r + c], static_cast<float>(s)) << i << "," << c;
    }
  cpu::orthonormalize_columns(p.data(), n, r);
  for (std::uint64_t c1 = 0; c1 < r; ++c1)
    for (std::uint64_t c2 = 0; c2 < r; ++c2) {
      double dot = 0;
      for (std::uint64_t i = 0; i < n; ++i) dot += static_cast<double>(p[i * r + c1]) * p[i * r + c2];
      EXPECT_NEAR(dot, c1 == c2 ? 1.0 : 0.0, 1e-5) << c1 << "," << c2;
    }
  cpu::lowrank_multiply_t(a.data(), n, m, p.data(), r, q.data());
  for (std::uint64_t j = 0; j < m; ++j)
    for (std::uint64_t c = 0; c < r; ++c) {
      double s = 0;
      for (std::uint64_t i = 0; i < n; ++i) s += static_cast<double>(a[i * m + j]) * p[i * r + c];
      ASSERT_EQ(q[j * r + c], static_cast<float>(s)) << j << "," << c;
    }
  cpu::lowrank_outer(p.data(), q.data(), n, m, r, o.data());
  for (std::uint64_t i = 0; i < n; ++i)
    for (std::uint64_t j = 0; j < m; ++j) {
      double s = 0;
      for (std::uint64_t c = 0; c < r; ++c) s += static_cast<double>(p[i * r + c]) * q[j * r + c];
      ASSERT_EQ(o[i * m + j], static_cast<float>(s)) << i << "," << j;
    }
  // The elementwise helpers and the update, in place where allowed.
  Vec x = {1.0f, -2.0f, 0.5f}, mom = {0.1f, 0.0f, -0.3f}, g = {0.2f, 0.4f, -1.0f}, out(3);
  cpu::add_vectors(out.data(), x.data(), g.data(), 3);
  cpu::sub_vectors(out.data(), out.data(), g.data(), 3);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(out[i], (x[i] + g[i]) - g[i]);
  cpu::divide(out.data(), x.data(), 4.0f, 3);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(out[i], x[i] / 4.0f);
  const Vec x0 = x, m0 = mom;
  cpu::powersgd_apply(mom.data(), x.data(), g.data(), 0.9f, 0.5f, 0.01f, 3);
  for (int i = 0; i < 3; ++i) {
    const float ag = g[i] + 0.01f * x0[i];
    const float mm = 0.9f * m0[i] + ag;
    EXPECT_EQ(mom[i], mm);
    EXPECT_EQ(x[i], x0[i] - 0.5f * (ag + mm));
  }
  expect_error(sparcol::ErrorCode::kInvalidArgument, "lowrank_multiply",
               [&] { cpu::lowrank_multiply(nullptr, n, m, b.data(), r, p.data()); });
}
