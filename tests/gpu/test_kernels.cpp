// Every CUDA kernel against its CPU twin (device::cpu), on fresh random inputs: sizes 0, 1, odd,
// 2^24 and, where the device has the memory, more than 2^31 elements; gaussian data, integer data
// full of ties, and data with NaN, +-Inf and +-0. The twins run the same algorithms with the same
// per-element code (and are themselves tested against the compressors and optimizers in
// tests/unit/test_device_ops_cpu.cpp), so every comparison is bitwise: selections, sums in a fixed
// order, and every fused update.
//
// Without a GPU the comparisons skip and say why; the argument checks that need no GPU (host pointers
// given to launchers, scratch queries) run everywhere. A fresh seed per run is printed on failure;
// SPARCOL_TEST_SEED=<n> repeats a run.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "gpu_skip.hpp"
#include "sparcol/coll/rbgs_allreduce.hpp"
#include "sparcol/compress/topk.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/core/rng.hpp"
#include "sparcol/device/device.hpp"
#include "sparcol/device/ops.hpp"

namespace dev = sparcol::device;
namespace cpu = sparcol::device::cpu;
using sparcol::ErrorCode;
using sparcol::Index;
using U64 = std::uint64_t;
using Vec = std::vector<float>;

namespace {

constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr U64 kOdd = 1000003;
constexpr U64 kBig = U64{1} << 24;
// More than 2^31 elements (and below 2^32 - 1, the top-k limit): run when the device has room.
constexpr U64 kHuge = (U64{1} << 31) + 11;

U64 fresh_seed() {
  if (const char* s = std::getenv("SPARCOL_TEST_SEED")) return std::strtoull(s, nullptr, 10);
  std::random_device rd;
  return (static_cast<U64>(rd()) << 32) ^ rd();
}
#define SEEDED(seed) SCOPED_TRACE("seed " + std::to_string(seed) + " (repeat with SPARCOL_TEST_SEED)")

// Fast generator (splitmix64), so that 2^31 elements take seconds.
struct Mix {
  U64 s;
  U64 next() {
    U64 z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float uniform() { return static_cast<float>(next() >> 40) * 0x1.0p-24f; }  // [0, 1)
};

enum class Data { kSpread, kTies, kSpecial };
const char* name(Data d) {
  return d == Data::kSpread ? "spread" : d == Data::kTies ? "ties" : "special";
}

// kSpread: signed values over many binades (like gradients); kTies: integers in [-4, 4];
// kSpecial: kSpread with NaN, +-Inf, +-0 mixed in.
Vec make(Data kind, U64 n, U64 seed) {
  Mix m{seed};
  Vec v(n);
  for (U64 i = 0; i < n; ++i) {
    const U64 r = m.next();
    const float mag = std::ldexp(1.0f + m.uniform(), static_cast<int>(r % 24) - 12);
    const float x = (r >> 63) != 0 ? -mag : mag;
    switch (kind) {
      case Data::kSpread:
        v[i] = x;
        break;
      case Data::kTies:
        v[i] = static_cast<float>(static_cast<int>((r >> 8) % 9) - 4);
        break;
      case Data::kSpecial: {
        const U64 c = (r >> 8) % 50;
        v[i] = c == 0 ? kNan : c == 1 ? kInf : c == 2 ? -kInf : c == 3 ? -0.0f : c == 4 ? 0.0f : x;
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

template <class T>
::testing::AssertionResult same(const std::vector<T>& a, const std::vector<T>& b, const std::string& what) {
  if (a.size() != b.size())
    return ::testing::AssertionFailure() << what << ": sizes " << a.size() << " vs " << b.size();
  for (std::size_t i = 0; i < a.size(); ++i) {
    bool eq;
    if constexpr (std::is_same_v<T, float>) {
      // Bit for bit, except that any NaN equals any NaN: NVIDIA GPUs return the canonical NaN from
      // arithmetic on NaN where x86 keeps the operand's payload. (Copies keep every bit on both.)
      eq = bits(a[i]) == bits(b[i]) || (std::isnan(a[i]) && std::isnan(b[i]));
    } else {
      eq = a[i] == b[i];
    }
    if (!eq) {
      return ::testing::AssertionFailure() << what << ": first difference at " << i << ": " << a[i]
                                           << " (gpu) vs " << b[i] << " (cpu), of " << a.size();
    }
  }
  return ::testing::AssertionSuccess();
}

template <class T>
dev::DeviceBuffer<T> up(const std::vector<T>& h) {
  dev::DeviceBuffer<T> d(std::max<U64>(h.size(), 1));
  if (!h.empty()) dev::detail::copy_bytes(d.data(), h.data(), h.size() * sizeof(T));
  return d;
}
template <class T>
std::vector<T> down(const dev::DeviceBuffer<T>& d, U64 n) {
  std::vector<T> h(n);
  if (n > 0) dev::detail::copy_bytes(h.data(), d.data(), n * sizeof(T));
  return h;
}

// Whether `bytes` more fit on the device with a margin; otherwise the caller skips the big case.
bool fits(U64 bytes) {
  const auto info = dev::memory_info();
  return bytes + (U64{1} << 30) < info.free_bytes;
}

template <class F>
void expect_error(ErrorCode code, const std::string& text, F&& f) {
  try {
    f();
    ADD_FAILURE() << "expected an error containing '" << text << "'";
  } catch (const sparcol::Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  }
}

std::vector<U64> sizes() {
  return {0, 1, 33, kOdd, kBig};
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Bad input (no GPU needed)
// ---------------------------------------------------------------------------------------------

TEST(KernelArgs, HostPointersAreRejectedBeforeAnyLaunch) {
  Vec h(64, 1.0f), out(64);
  std::vector<Index> idx(8);
  // Without a GPU Stream() itself fails; the pointer checks come first in the launchers, so use a
  // borrowed default-stream handle, which needs no device.
  const dev::Stream s = dev::Stream::borrow(nullptr);
  expect_error(ErrorCode::kInvalidArgument, "copy: dst: expected a device pointer",
               [&] { dev::copy(s, out.data(), h.data(), 64); });
  expect_error(ErrorCode::kInvalidArgument, "gmc_accumulate: u: expected a device pointer",
               [&] { dev::gmc_accumulate(s, out.data(), h.data(), {h.data()}, 0.9f, 64, {}, nullptr); });
  expect_error(ErrorCode::kInvalidArgument, "topk: v: expected a device pointer",
               [&] { dev::topk(s, h.data(), 64, 8, idx.data(), out.data(), nullptr, 0); });
  expect_error(ErrorCode::kInvalidArgument, "rbgs_pack: v: expected a device pointer", [&] {
    dev::rbgs_pack(s, h.data(), sparcol::Block{64, 60, 8}, out.data());
  });
  // Arguments that are wrong whatever the memory: reported as such.
  expect_error(ErrorCode::kInvalidArgument, "exceeds the vector length",
               [&] { dev::topk(s, h.data(), 64, 65, idx.data(), out.data(), nullptr, 0); });
  expect_error(ErrorCode::kInvalidArgument, "does not fit", [&] {
    dev::rbgs_pack(s, h.data(), sparcol::Block{64, 64, 8}, out.data());
  });
  expect_error(ErrorCode::kInvalidArgument, "stride > 1", [&] {
    dev::topk_sampled(s, h.data(), 64, 8, {1, 0, 1}, idx.data(), out.data(), nullptr, nullptr, 0);
  });
  // Nothing to do: no pointer is looked at.
  dev::topk(s, nullptr, 0, 0, nullptr, nullptr, nullptr, 0);
  dev::apply_update(s, nullptr, nullptr, 1.0f, 0.0f, 0);
}

TEST(KernelArgs, ScratchQueriesNeedAGpu) {
  if (dev::has_gpu()) {
    EXPECT_GT(dev::topk_scratch_bytes(1000, 10), 0u);
    EXPECT_EQ(dev::topk_scratch_bytes(1000, 1000), 0u);  // k = n needs no scratch
    EXPECT_GT(dev::reduce_scratch_bytes(1000), 0u);
    return;
  }
  expect_error(ErrorCode::kCuda, "no CUDA device", [] { dev::topk_scratch_bytes(1000, 10); });
  expect_error(ErrorCode::kCuda, "no CUDA device", [] { dev::sparse_sum_scratch_bytes(100, 1000); });
  EXPECT_GT(dev::reduce_scratch_bytes(1000), 0u);  // pure arithmetic
}

TEST(KernelArgs, CpuTwinsRejectDevicePointers) {
  SPARCOL_SKIP_WITHOUT_GPU();
  dev::DeviceBuffer<float> d(64);
  Vec h(64);
  expect_error(ErrorCode::kInvalidArgument, "copy: src: expected a host pointer",
               [&] { cpu::copy(h.data(), d.data(), 64); });
}

// ---------------------------------------------------------------------------------------------
// Top-k
// ---------------------------------------------------------------------------------------------

namespace {

void check_topk(const dev::Stream& s, const Vec& v, U64 k, const std::string& what) {
  const U64 n = v.size();
  auto d_v = up(v);
  dev::DeviceBuffer<Index> d_idx(std::max<U64>(k, 1));
  dev::DeviceBuffer<float> d_val(std::max<U64>(k, 1));
  const std::size_t bytes = dev::topk_scratch_bytes(n, k);
  dev::DeviceBuffer<char> scratch(std::max<std::size_t>(bytes, 1));
  dev::topk(s, d_v.data(), n, k, d_idx.data(), d_val.data(), scratch.data(), bytes);
  s.synchronize();
  std::vector<Index> idx(k);
  Vec val(k);
  cpu::topk(v.data(), n, k, idx.data(), val.data());
  ASSERT_TRUE(same(down(d_idx, k), idx, what + " indices"));
  ASSERT_TRUE(same(down(d_val, k), val, what + " values"));
}

}  // namespace

TEST(Kernels, TopkEqualsTwin) {
  SPARCOL_SKIP_WITHOUT_GPU();
  const U64 seed = fresh_seed();
  SEEDED(seed);
  dev::Stream s;
  for (U64 n : sizes()) {
    for (Data kind : {Data::kSpread, Data::kTies, Data::kSpecial}) {
      const Vec v = make(kind, n, seed + n);
      for (U64 k : {U64{0}, U64{1}, n / 100, n / 2 + 1, n > 0 ? n - 1 : 0, n}) {
        if (k > n) continue;
        check_topk(s, v, k, std::string(name(kind)) + " n " + std::to_string(n) + " k " + std::to_string(k));
      }
    }
  }
}

TEST(Kernels, TopkTieCutAndAllEqual) {
  SPARCOL_SKIP_WITHOUT_GPU();
  dev::Stream s;
  // Every element ties: the first k indices win; the cut lands inside a later tile.
  Vec same_value(kOdd, -1.5f);
  check_topk(s, same_value, 12345, "all equal");
  check_topk(s, same_value, kOdd - 3, "all equal, k near n");
  // NaN and Inf rank first, then the ties at the threshold.
  Vec v(5000, 1.0f);
  v[4000] = kNan;
  v[17] = -kInf;
  check_topk(s, v, 3, "nan inf ties");
}

TEST(Kernels, TopkHuge) {
  SPARCOL_SKIP_WITHOUT_GPU();
  const U64 n = kHuge, k = n / 100;
  if (!fits(n * 4 + k * 8 + n / 1000))
    SPARCOL_GPU_CAPACITY_SKIP("the device lacks memory for " + std::to_string(n) + " elements");
  const U64 seed = fresh_seed();
  SEEDED(seed);
  dev::Stream s;
  check_topk(s, make(Data::kSpread, n, seed), k, "huge");
}

namespace {

void check_sampled(const dev::Stream& s, const Vec& v, U64 k, U64 seed, U64 step, const std::string& what) {
  const U64 n = v.size();
  const auto p = sparcol::compress::dgc_sample_plan(n, k, 0.01);
  if (p.stride == 1 || k == n) return;  // the compressor sends the exact top-k there
  const dev::SamplePlan plan{p.stride, sparcol::compress::dgc_sample_offset(p.stride, seed, step, 0),
                             p.top_samples};
  auto d_v = up(v);
  dev::DeviceBuffer<Index> d_idx(k);
  dev::DeviceBuffer<float> d_val(k);
  dev::DeviceBuffer<dev::SampledTopkResult> d_res(1);
  const std::size_t bytes = dev::topk_sampled_scratch_bytes(n, k, plan);
  dev::DeviceBuffer<char> scratch(bytes);
  dev::topk_sampled(s, d_v.data(), n, k, plan, d_idx.data(), d_val.data(), d_res.data(), scratch.data(),
                    bytes);
  s.synchronize();
  std::vector<Index> idx(k);
  Vec val(k);
  dev::SampledTopkResult want;
  cpu::topk_sampled(v.data(), n, k, plan, idx.data(), val.data(), &want);
  const dev::SampledTopkResult got = down(d_res, 1)[0];
  ASSERT_EQ(got.count, want.count) << what;
  EXPECT_EQ(got.threshold_key, want.threshold_key) << what;
  EXPECT_EQ(got.reselections, want.reselections) << what;
  EXPECT_EQ(got.used_exact, want.used_exact) << what;
  idx.resize(want.count);
  val.resize(want.count);
  ASSERT_TRUE(same(down(d_idx, got.count), idx, what + " indices"));
  ASSERT_TRUE(same(down(d_val, got.count), val, what + " values"));
}

}  // namespace

TEST(Kernels, SampledTopkEqualsTwin) {
  SPARCOL_SKIP_WITHOUT_GPU();
  const U64 seed = fresh_seed();
  SEEDED(seed);
  dev::Stream s;
  for (U64 n : {U64{30011}, kOdd, kBig}) {
    for (Data kind : {Data::kSpread, Data::kTies, Data::kSpecial}) {
      const Vec v = make(kind, n, seed + n);
      for (U64 k : {U64{1}, n / 1000, n / 100, n / 10}) {
        for (U64 step = 0; step < 2; ++step)
          check_sampled(s, v, k, seed, step,
                        std::string(name(kind)) + " n " + std::to_string(n) + " k " + std::to_string(k));
      }
    }
  }
  // The adaptation paths: reselections (only the sampled elements are large), the exact path (a
  // plateau of ties), and ten fruitless reselections.
  const U64 n = 200000;
  for (U64 k : {U64{2000}, U64{20000}}) {
    const auto p = sparcol::compress::dgc_sample_plan(n, k, 0.01);
    const U64 offset = sparcol::compress::dgc_sample_offset(p.stride, seed, 0, 0);
    Vec big = make(Data::kSpread, n, seed);
    Vec sparse(n, 0.0f);
    for (U64 i = 0; i < n; ++i) {
      if (i % p.stride == offset) {
        big[i] = 100.0f + std::fabs(big[i]);
        sparse[i] = 1e30f;
      } else {
        big[i] *= 1e-3f;
      }
    }
    check_sampled(s, big, k, seed, 0, "reselect k " + std::to_string(k));
    check_sampled(s, sparse, k, seed, 0, "exhausted k " + std::to_string(k));
  }
  Vec plateau(n, 1.0f);
  for (U64 i = 0; i < n; i += 3) plateau[i] = 2.0f;
  check_sampled(s, plateau, 2000, seed, 0, "plateau");
}

TEST(Kernels, ScatterZeroEqualsTwin) {
  SPARCOL_SKIP_WITHOUT_GPU();
  const U64 seed = fresh_seed();
  SEEDED(seed);
  dev::Stream s;
  const U64 n = kOdd;
  Vec v = make(Data::kSpread, n, seed);
  std::vector<Index> idx(5000);
  Mix m{seed};
  for (auto& i : idx) i = static_cast<Index>(m.next() % (n + 10));  // a few out of range: ignored
  auto d_v = up(v);
  auto d_idx = up(idx);
  dev::DeviceBuffer<U64> d_count(1);
  const U64 count = 3000;
  dev::detail::copy_bytes(d_count.data(), &count, sizeof count);
  dev::scatter_zero(s, d_v.data(), n, d_idx.data(), idx.size(), d_count.data());
  s.synchronize();
  cpu::scatter_zero(v.data(), n, idx.data(), count);
  ASSERT_TRUE(same(down(d_v, n), v, "scatter_zero counted"));
  dev::scatter_zero(s, d_v.data(), n, d_idx.data(), idx.size(), nullptr);
  s.synchronize();
  cpu::scatter_zero(v.data(), n, idx.data(), idx.size());
  ASSERT_TRUE(same(down(d_v, n), v, "scatter_zero"));
}

// ---------------------------------------------------------------------------------------------
// PowerSGD (lowrank.cu)
// ---------------------------------------------------------------------------------------------

TEST(Kernels, LowrankEqualsTwin) {
  SPARCOL_SKIP_WITHOUT_GPU();
  const U64 seed = fresh_seed();
  SEEDED(seed);
  dev::Stream s;
  struct Shape {
    U64 n, m, r;
  };
  for (const Shape sh :
       {Shape{1, 1, 1}, Shape{5, 3, 2}, Shape{64, 40, 4}, Shape{257, 1031, 3}, Shape{1000, 3, 1}}) {
    const std::string what =
        std::to_string(sh.n) + " x " + std::to_string(sh.m) + " r " + std::to_string(sh.r);
    const Vec a = make(Data::kSpread, sh.n * sh.m, seed);
    const Vec b = make(Data::kSpread, sh.m * sh.r, seed + 1);
    auto d_a = up(a);
    auto d_b = up(b);
    Vec p(sh.n * sh.r), q(sh.m * sh.r), o(sh.n * sh.m);
    auto d_p = up(p);
    auto d_q = up(q);
    auto d_o = up(o);
    cpu::lowrank_multiply(a.data(), sh.n, sh.m, b.data(), sh.r, p.data());
    dev::lowrank_multiply(s, d_a.data(), sh.n, sh.m, d_b.data(), sh.r, d_p.data());
    s.synchronize();
    ASSERT_TRUE(same(down(d_p, p.size()), p, "lowrank_multiply " + what));
    cpu::orthonormalize_columns(p.data(), sh.n, sh.r);
    dev::orthonormalize_columns(s, d_p.data(), sh.n, sh.r);
    s.synchronize();
    ASSERT_TRUE(same(down(d_p, p.size()), p, "orthonormalize_columns " + what));
    cpu::lowrank_multiply_t(a.data(), sh.n, sh.m, p.data(), sh.r, q.data());
    dev::lowrank_multiply_t(s, d_a.data(), sh.n, sh.m, d_p.data(), sh.r, d_q.data());
    s.synchronize();
    ASSERT_TRUE(same(down(d_q, q.size()), q, "lowrank_multiply_t " + what));
    cpu::lowrank_outer(p.data(), q.data(), sh.n, sh.m, sh.r, o.data());
    dev::lowrank_outer(s, d_p.data(), d_q.data(), sh.n, sh.m, sh.r, d_o.data());
    s.synchronize();
    ASSERT_TRUE(same(down(d_o, o.size()), o, "lowrank_outer " + what));
  }
  for (U64 n : sizes()) {
    if (n == 0 || n > kBig) continue;
    const Vec a = make(Data::kSpecial, n, seed), b = make(Data::kSpread, n, seed + 2);
    Vec m0 = make(Data::kSpread, n, seed + 3), x0 = make(Data::kSpread, n, seed + 4);
    auto d_a = up(a);
    auto d_b = up(b);
    Vec out(n);
    auto d_out = up(out);
    cpu::add_vectors(out.data(), a.data(), b.data(), n);
    dev::add_vectors(s, d_out.data(), d_a.data(), d_b.data(), n);
    s.synchronize();
    ASSERT_TRUE(same(down(d_out, n), out, "add_vectors n " + std::to_string(n)));
    cpu::sub_vectors(out.data(), a.data(), b.data(), n);
    dev::sub_vectors(s, d_out.data(), d_a.data(), d_b.data(), n);
    s.synchronize();
    ASSERT_TRUE(same(down(d_out, n), out, "sub_vectors n " + std::to_string(n)));
    cpu::divide(out.data(), a.data(), 3.0f, n);
    dev::divide(s, d_out.data(), d_a.data(), 3.0f, n);
    s.synchronize();
    ASSERT_TRUE(same(down(d_out, n), out, "divide n " + std::to_string(n)));
    for (float wd : {0.0f, 0.01f}) {
      Vec m = m0, x = x0;
      auto d_m = up(m);
      auto d_x = up(x);
      cpu::powersgd_apply(m.data(), x.data(), a.data(), 0.9f, 0.05f, wd, n);
      dev::powersgd_apply(s, d_m.data(), d_x.data(), d_a.data(), 0.9f, 0.05f, wd, n);
      s.synchronize();
      ASSERT_TRUE(same(down(d_m, n), m, "powersgd_apply m n " + std::to_string(n)));
      ASSERT_TRUE(same(down(d_x, n), x, "powersgd_apply x n " + std::to_string(n)));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// RBGS, copy
// ---------------------------------------------------------------------------------------------

TEST(Kernels, RbgsAndCopyEqualTwin) {
  SPARCOL_SKIP_WITHOUT_GPU();
  const U64 seed = fresh_seed();
  SEEDED(seed);
  dev::Stream s;
  for (U64 n : sizes()) {
    if (n == 0) continue;
    const Vec v = make(Data::kSpecial, n, seed + n);
    auto d_v = up(v);
    {
      dev::DeviceBuffer<float> d_out(n);
      dev::copy(s, d_out.data(), d_v.data(), n);
      s.synchronize();
      ASSERT_TRUE(same(down(d_out, n), v, "copy"));
      dev::DeviceBuffer<float> d_out2(n);
      dev::copy_kernel(s, d_out2.data(), d_v.data(), n);
      s.synchronize();
      ASSERT_TRUE(same(down(d_out2, n), v, "copy_kernel"));
    }
    for (U64 k : {U64{1}, n / 3 + 1, n}) {
      for (U64 step = 0; step < 3; ++step) {
        const auto rb = sparcol::rbgs_block(n, k, seed, step, 1);
        const sparcol::Block b{rb.n, rb.start, rb.length};
        const std::string what =
            "n " + std::to_string(n) + " k " + std::to_string(k) + " start " + std::to_string(b.start);
        Vec packed(k), ve = v;
        cpu::rbgs_pack(v.data(), b, packed.data());
        dev::DeviceBuffer<float> d_packed(k);
        dev::rbgs_pack(s, d_v.data(), b, d_packed.data());
        s.synchronize();
        ASSERT_TRUE(same(down(d_packed, k), packed, "pack " + what));

        auto d_ve = up(v);
        cpu::rbgs_extract(ve.data(), b, packed.data());
        dev::rbgs_extract(s, d_ve.data(), b, d_packed.data());
        s.synchronize();
        ASSERT_TRUE(same(down(d_packed, k), packed, "extract values " + what));
        ASSERT_TRUE(same(down(d_ve, n), ve, "extract residual " + what));

        for (bool fill : {false, true}) {
          Vec out = make(Data::kSpread, n, seed ^ n);
          auto d_out = up(out);
          cpu::rbgs_unpack(packed.data(), b, 3.0f, out.data(), fill);
          dev::rbgs_unpack(s, d_packed.data(), b, 3.0f, d_out.data(), fill);
          s.synchronize();
          ASSERT_TRUE(
              same(down(d_out, n), out, std::string("unpack fill ") + (fill ? "on " : "off ") + what));
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Sign, reductions
// ---------------------------------------------------------------------------------------------

TEST(Kernels, SignPackAndReductionsEqualTwin) {
  SPARCOL_SKIP_WITHOUT_GPU();
  const U64 seed = fresh_seed();
  SEEDED(seed);
  dev::Stream s;
  std::vector<U64> ns = sizes();
  ns.push_back(8192);
  ns.push_back(8193);
  for (U64 n : ns) {
    for (Data kind : {Data::kSpread, Data::kTies, Data::kSpecial}) {
      const std::string what = std::string(name(kind)) + " n " + std::to_string(n);
      const Vec v = make(kind, n, seed + n);
      const U64 words = (n + 31) / 32;
      auto d_v = up(v);
      dev::DeviceBuffer<std::uint32_t> d_words(std::max<U64>(words, 1));
      dev::DeviceBuffer<float> d_scale(1);
      dev::DeviceBuffer<double> d_sum(1);
      const std::size_t bytes = dev::reduce_scratch_bytes(n);
      dev::DeviceBuffer<char> scratch(std::max<std::size_t>(bytes, 1));
      dev::sign_pack(s, d_v.data(), n, d_words.data(), d_scale.data(), scratch.data(), bytes);
      dev::sum_squares(s, d_v.data(), n, d_sum.data(), scratch.data(), bytes);
      s.synchronize();
      std::vector<std::uint32_t> w(words);
      float scale = -1;
      double sum = -1;
      cpu::sign_pack(v.data(), n, w.data(), &scale);
      cpu::sum_squares(v.data(), n, &sum);
      ASSERT_TRUE(same(down(d_words, words), w, "sign words " + what));
      EXPECT_TRUE(same(down(d_scale, 1), Vec{scale}, "scale " + what));
      const double gs = down(d_sum, 1)[0];
      EXPECT_TRUE(std::memcmp(&gs, &sum, sizeof gs) == 0 || (std::isnan(gs) && std::isnan(sum)))
          << what << ": " << gs << " vs " << sum;
    }
  }
}

TEST(Kernels, SignPackHuge) {
  SPARCOL_SKIP_WITHOUT_GPU();
  const U64 n = kHuge;
  if (!fits(n * 4 + n / 8 + n / 1000))
    SPARCOL_GPU_CAPACITY_SKIP("the device lacks memory for " + std::to_string(n) + " elements");
  const U64 seed = fresh_seed();
  SEEDED(seed);
  dev::Stream s;
  const Vec v = make(Data::kSpread, n, seed);
  const U64 words = (n + 31) / 32;
  auto d_v = up(v);
  dev::DeviceBuffer<std::uint32_t> d_words(words);
  dev::DeviceBuffer<float> d_scale(1);
  const std::size_t bytes = dev::reduce_scratch_bytes(n);
  dev::DeviceBuffer<char> scratch(bytes);
  dev::sign_pack(s, d_v.data(), n, d_words.data(), d_scale.data(), scratch.data(), bytes);
  s.synchronize();
  std::vector<std::uint32_t> w(words);
  float scale = -1;
  cpu::sign_pack(v.data(), n, w.data(), &scale);
  ASSERT_TRUE(same(down(d_words, words), w, "huge sign words"));
  EXPECT_TRUE(same(down(d_scale, 1), Vec{scale}, "huge scale"));
}

TEST(Kernels, SignDecodeEqualsTwin) {
  SPARCOL_SKIP_WITHOUT_GPU();
  const U64 seed = fresh_seed();
  SEEDED(seed);
  dev::Stream s;
  for (int K : {1, 2, 5, 8}) {
    for (U64 n : {U64{1}, U64{33}, kOdd}) {
      const U64 words = (n + 31) / 32;
      std::vector<std::uint32_t> all(words * static_cast<U64>(K));
      Vec scales(static_cast<std::size_t>(K));
      Mix m{seed + n + static_cast<U64>(K)};
      for (auto& w : all) w = static_cast<std::uint32_t>(m.next());
      for (auto& sc : scales) sc = m.uniform() * 3.0f;
      auto d_words = up(all);
      auto d_scales = up(scales);
      dev::DeviceBuffer<float> d_mean(n), d_major(n);
      dev::sign_decode_mean(s, d_words.data(), d_scales.data(), K, n, d_mean.data());
      dev::sign_decode_majority(s, d_words.data(), d_scales.data(), K, n, d_major.data());
      s.synchronize();
      Vec mean(n), major(n);
      cpu::sign_decode_mean(all.data(), scales.data(), K, n, mean.data());
      cpu::sign_decode_majority(all.data(), scales.data(), K, n, major.data());
      const std::string what = "K " + std::to_string(K) + " n " + std::to_string(n);
      ASSERT_TRUE(same(down(d_mean, n), mean, "mean " + what));
      ASSERT_TRUE(same(down(d_major, n), major, "majority " + what));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Sparse sum
// ---------------------------------------------------------------------------------------------

TEST(Kernels, SparseSumEqualsTwin) {
  SPARCOL_SKIP_WITHOUT_GPU();
  const U64 seed = fresh_seed();
  SEEDED(seed);
  dev::Stream s;
  for (U64 n : {U64{1}, U64{1000}, kOdd, kBig}) {
    for (int K : {1, 3, 8}) {
      // Each rank: ascending distinct indices (a compressor's message) or, every other rank, an
      // unsorted message with duplicates; values over many binades so that the order shows.
      std::vector<Index> idx;
      Vec val;
      Mix m{seed + n * 31 + static_cast<U64>(K)};
      for (int r = 0; r < K; ++r) {
        const U64 count = std::min<U64>(n, 1 + n / 50);
        std::vector<Index> mine(count);
        for (auto& i : mine) i = static_cast<Index>(m.next() % n);
        if (r % 2 == 0) {
          std::sort(mine.begin(), mine.end());
          mine.erase(std::unique(mine.begin(), mine.end()), mine.end());
        }
        for (Index i : mine) {
          idx.push_back(i);
          val.push_back(std::ldexp(m.uniform() - 0.5f, static_cast<int>(m.next() % 40) - 20));
        }
      }
      const U64 pairs = idx.size();
      auto d_idx = up(idx);
      auto d_val = up(val);
      dev::DeviceBuffer<float> d_out(n);
      const std::size_t bytes = dev::sparse_sum_scratch_bytes(pairs, n);
      dev::DeviceBuffer<char> scratch(std::max<std::size_t>(bytes, 1));
      dev::sparse_sum(s, d_idx.data(), d_val.data(), pairs, n, static_cast<float>(K), d_out.data(),
                      scratch.data(), bytes);
      s.synchronize();
      Vec out(n);
      cpu::sparse_sum(idx.data(), val.data(), pairs, n, static_cast<float>(K), out.data());
      ASSERT_TRUE(same(down(d_out, n), out, "n " + std::to_string(n) + " K " + std::to_string(K)));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Fused optimizer updates
// ---------------------------------------------------------------------------------------------

namespace {

// The state vectors and inputs of one fused call, on host and device.
struct Fused {
  U64 n;
  Vec a, b, c, g, z, send;
  dev::DeviceBuffer<float> da, db, dc, dg, dz, dsend;
  Fused(U64 n_, U64 seed, U64 block_len) : n(n_) {
    a = make(Data::kSpread, n, seed + 1);
    b = make(Data::kSpread, n, seed + 2);
    c = make(Data::kSpread, n, seed + 3);
    g = make(Data::kSpecial, n, seed + 4);
    z = make(Data::kSpread, n, seed + 5);
    send.assign(block_len, 0.0f);
    da = up(a);
    db = up(b);
    dc = up(c);
    dg = up(g);
    dz = up(z);
    dsend = up(send);
  }
  dev::GradientInput host_g(float wd, float scale) const { return {g.data(), z.data(), wd, scale}; }
  dev::GradientInput dev_g(float wd, float scale) const { return {dg.data(), dz.data(), wd, scale}; }
  ::testing::AssertionResult check(const std::string& what) const {
    for (auto [d, h, nm] : {std::tuple{&da, &a, "a"}, {&db, &b, "b"}, {&dc, &c, "c"}}) {
      auto r = same(down(*d, n), *h, what + " " + nm);
      if (!r) return r;
    }
    return same(down(dsend, send.size()), send, what + " send");
  }
};

}  // namespace

TEST(Kernels, FusedUpdatesEqualTwin) {
  SPARCOL_SKIP_WITHOUT_GPU();
  const U64 seed = fresh_seed();
  SEEDED(seed);
  dev::Stream s;
  const float beta = 0.9f, eta = 0.05f;
  for (U64 n : sizes()) {
    if (n == 0) continue;
    for (U64 k : {U64{0}, n / 10 + 1}) {
      const auto rb = sparcol::rbgs_block(n, k, seed, n, 0);
      const sparcol::Block blk = k == 0 ? sparcol::Block{} : sparcol::Block{rb.n, rb.start, rb.length};
      for (auto [wd, scale] : {std::pair{0.0f, 1.0f}, {0.01f, 1.0f}, {0.01f, 0.25f}}) {
        const std::string what = "n " + std::to_string(n) + " block " + std::to_string(k) + " wd " +
                                 std::to_string(wd) + " scale " + std::to_string(scale);
        {
          Fused f(n, seed, k);
          cpu::gmc_accumulate(f.a.data(), f.b.data(), f.host_g(wd, scale), beta, n, blk, f.send.data());
          dev::gmc_accumulate(s, f.da.data(), f.db.data(), f.dev_g(wd, scale), beta, n, blk, f.dsend.data());
          s.synchronize();
          ASSERT_TRUE(f.check("gmc " + what));
        }
        for (bool nesterov : {false, true}) {
          for (bool mask : {false, true}) {
            Fused f(n, seed, k);
            cpu::dgc_accumulate(f.a.data(), f.b.data(), f.host_g(wd, scale), beta, nesterov, mask, n, blk,
                                f.send.data());
            dev::dgc_accumulate(s, f.da.data(), f.db.data(), f.dev_g(wd, scale), beta, nesterov, mask, n, blk,
                                f.dsend.data());
            s.synchronize();
            ASSERT_TRUE(f.check("dgc " + what));
          }
        }
        for (bool momentum : {false, true}) {
          Fused f(n, seed, k);
          cpu::ef_accumulate(f.a.data(), momentum ? f.b.data() : nullptr, f.host_g(wd, scale), beta, eta, n,
                             blk, f.send.data());
          dev::ef_accumulate(s, f.da.data(), momentum ? f.db.data() : nullptr, f.dev_g(wd, scale), beta, eta,
                             n, blk, f.dsend.data());
          s.synchronize();
          ASSERT_TRUE(f.check("ef " + what));
        }
        {
          Fused f(n, seed, k);
          cpu::cser_accumulate(f.a.data(), f.b.data(), f.host_g(wd, scale), beta, eta, n, blk, f.send.data());
          dev::cser_accumulate(s, f.da.data(), f.db.data(), f.dev_g(wd, scale), beta, eta, n, blk,
                               f.dsend.data());
          s.synchronize();
          ASSERT_TRUE(f.check("cser_accumulate " + what));
        }
        if (k != 0) continue;  // the rest have no block
        {
          Fused f(n, seed, 0);
          cpu::cser_momentum(f.a.data(), f.b.data(), f.host_g(wd, scale), beta, eta, n);
          dev::cser_momentum(s, f.da.data(), f.db.data(), f.dev_g(wd, scale), beta, eta, n);
          s.synchronize();
          ASSERT_TRUE(f.check("cser_momentum " + what));
        }
        {
          Fused f(n, seed, 0);
          cpu::dmsgd_local(f.a.data(), f.b.data(), f.host_g(wd, scale), beta, n);
          dev::dmsgd_local(s, f.da.data(), f.db.data(), f.dev_g(wd, scale), beta, n);
          s.synchronize();
          ASSERT_TRUE(f.check("dmsgd_local " + what));
        }
      }
      if (k != 0) continue;
      {
        Fused f(n, seed, 0);
        cpu::cser_apply(f.a.data(), f.b.data(), f.c.data(), f.z.data(), n);
        dev::cser_apply(s, f.da.data(), f.db.data(), f.dc.data(), f.dz.data(), n);
        s.synchronize();
        ASSERT_TRUE(f.check("cser_apply n " + std::to_string(n)));
      }
      {
        Fused f(n, seed, 0);
        cpu::dmsgd_apply(f.a.data(), f.b.data(), f.c.data(), beta, eta, n);
        dev::dmsgd_apply(s, f.da.data(), f.db.data(), f.dc.data(), beta, eta, n);
        s.synchronize();
        ASSERT_TRUE(f.check("dmsgd_apply n " + std::to_string(n)));
      }
      for (auto [e, wd] : {std::pair{eta, 0.0f}, {1.0f, 0.0f}, {-1.0f, 0.0f}, {eta, 0.05f}}) {
        Fused f(n, seed, 0);
        cpu::apply_update(f.a.data(), f.c.data(), e, wd, n);
        dev::apply_update(s, f.da.data(), f.dc.data(), e, wd, n);
        s.synchronize();
        ASSERT_TRUE(f.check("apply_update n " + std::to_string(n)));
      }
      {
        Fused f(n, seed, 0);
        cpu::detached_point(f.a.data(), f.b.data(), f.c.data(), 0.35f, n);
        dev::detached_point(s, f.da.data(), f.db.data(), f.dc.data(), 0.35f, n);
        cpu::offset_point(f.c.data(), f.b.data(), f.z.data(), n);
        dev::offset_point(s, f.dc.data(), f.db.data(), f.dz.data(), n);
        s.synchronize();
        ASSERT_TRUE(f.check("gradient points n " + std::to_string(n)));
      }
    }
  }
}

TEST(Kernels, FusedUpdateHuge) {
  SPARCOL_SKIP_WITHOUT_GPU();
  const U64 n = kHuge, k = n / 64;
  if (!fits(3 * n * 4 + k * 4))
    SPARCOL_GPU_CAPACITY_SKIP("the device lacks memory for 3 x " + std::to_string(n) + " elements");
  const U64 seed = fresh_seed();
  SEEDED(seed);
  dev::Stream s;
  // The block starts past 2^31, so positions and wrap-around exercise 64-bit indexing.
  const sparcol::Block blk{n, n - k / 2, k};
  Vec u = make(Data::kSpread, n, seed), m = make(Data::kSpread, n, seed + 1),
      g = make(Data::kSpread, n, seed + 2);
  Vec send(k);
  auto du = up(u), dm = up(m), dg = up(g);
  dev::DeviceBuffer<float> dsend(k);
  dev::gmc_accumulate(s, du.data(), dm.data(), {dg.data()}, 0.9f, n, blk, dsend.data());
  s.synchronize();
  cpu::gmc_accumulate(u.data(), m.data(), {g.data()}, 0.9f, n, blk, send.data());
  ASSERT_TRUE(same(down(du, n), u, "huge gmc u"));
  ASSERT_TRUE(same(down(dsend, k), send, "huge gmc send"));
}
