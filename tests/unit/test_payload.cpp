// The payload types of core/payload.hpp: the sign-bit layout against a naive reference (and the
// packers of the compressor and of the device twin against both), word counts, the sign of zero
// and NaN, wire sizes, and the views that Message hands to the collectives.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "sparcol/compress/sign.hpp"
#include "sparcol/core/payload.hpp"
#include "sparcol/core/rng.hpp"
#include "sparcol/device/ops.hpp"

namespace {

using sparcol::BitLayout;
using sparcol::SignBits;
using sparcol::SignLayout;
using sparcol::SparseChunk;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Written out from the definition, sharing nothing with payload.hpp: element j is bit (j mod 32) of
// word floor(j / 32); the bit is 1 unless v_j is negative or NaN.
std::vector<std::uint32_t> naive_pack(const std::vector<float>& v) {
  std::vector<std::uint32_t> w((v.size() + 31) / 32, 0u);
  for (std::size_t j = 0; j < v.size(); ++j) {
    const bool plus = !std::isnan(v[j]) && !(v[j] < 0.0f);
    if (plus) w[j / 32] |= std::uint32_t{1} << (j % 32);
  }
  return w;
}

// Values that exercise every case: signed zeros, NaN, infinities, denormals, ordinary numbers.
std::vector<float> mixed(std::size_t n, std::uint64_t seed) {
  const float special[] = {0.0f, -0.0f, kNaN, -kNaN, kInf, -kInf, 1e-45f, -1e-45f, 1.0f, -1.0f};
  std::vector<float> v(n);
  for (std::size_t j = 0; j < n; ++j) {
    const std::uint64_t r = sparcol::counter_u64(seed, j, 0, sparcol::kStreamUser);
    v[j] = r % 3 == 0 ? special[(r >> 8) % 10]
                      : static_cast<float>(static_cast<std::int64_t>(r >> 40) - (1 << 23));
  }
  return v;
}

TEST(SignLayout, WordsFor) {
  EXPECT_EQ(SignLayout::words_for(0), 0u);
  EXPECT_EQ(SignLayout::words_for(1), 1u);
  EXPECT_EQ(SignLayout::words_for(31), 1u);
  EXPECT_EQ(SignLayout::words_for(32), 1u);
  EXPECT_EQ(SignLayout::words_for(33), 2u);
  EXPECT_EQ(SignLayout::words_for(std::uint64_t{1} << 32), std::uint64_t{1} << 27);
  using Wide = BitLayout<std::uint64_t>;
  EXPECT_EQ(Wide::words_for(0), 0u);
  EXPECT_EQ(Wide::words_for(1), 1u);
  EXPECT_EQ(Wide::words_for(64), 1u);
  EXPECT_EQ(Wide::words_for(65), 2u);
  static_assert(SignLayout::kWordBits == 32 && Wide::kWordBits == 64);
  static_assert(SignLayout::word_of(31) == 0 && SignLayout::word_of(32) == 1 && SignLayout::bit_of(33) == 1);
}

TEST(SignLayout, SignOfZeroNaNAndInfinity) {
  EXPECT_EQ(SignLayout::bit_for(0.0f), 1u);
  EXPECT_EQ(SignLayout::bit_for(-0.0f), 1u);  // sign(-0) := +1, as sign(+0)
  EXPECT_EQ(SignLayout::bit_for(1e-45f), 1u);
  EXPECT_EQ(SignLayout::bit_for(-1e-45f), 0u);
  EXPECT_EQ(SignLayout::bit_for(kInf), 1u);
  EXPECT_EQ(SignLayout::bit_for(-kInf), 0u);
  EXPECT_EQ(SignLayout::bit_for(kNaN), 0u);  // v >= 0 is false for NaN, of either sign bit
  EXPECT_EQ(SignLayout::bit_for(-kNaN), 0u);
  EXPECT_EQ(SignLayout::placed(2.0f, 37), 1u << 5);
  EXPECT_EQ(SignLayout::placed(-2.0f, 37), 0u);
}

TEST(SignLayout, PackersMatchTheNaiveReference) {
  for (std::size_t n : {0, 1, 31, 32, 33, 63, 64, 65, 100, 1000, 4099}) {
    const std::vector<float> v = mixed(n, 7 + n);
    const std::vector<std::uint32_t> want = naive_pack(v);
    ASSERT_EQ(want.size(), SignLayout::words_for(n));
    // The compressor's packer (SSE2 on x86-64) and the device layer's CPU twin.
    std::vector<std::uint32_t> comp(want.size() + 1, 0xdeadbeefu), twin = comp;
    sparcol::compress::sign_pack(v, comp.data());
    float scale = 0.0f;
    sparcol::device::cpu::sign_pack(v.data(), n, twin.data(), &scale);
    for (std::size_t w = 0; w < want.size(); ++w) {
      EXPECT_EQ(comp[w], want[w]) << "n " << n << " word " << w;
      EXPECT_EQ(twin[w], want[w]) << "n " << n << " word " << w;
    }
    EXPECT_EQ(comp[want.size()], 0xdeadbeefu) << "wrote past words_for(" << n << ")";
    if (n % 32 != 0) {
      EXPECT_EQ(want.back() >> (n % 32), 0u);  // unused high bits are 0
    }
    // Reading back: is_set and sign, through the layout and through a SignBits view.
    const SignBits view{n, want, 0.5f};
    for (std::size_t j = 0; j < n; ++j) {
      const bool plus = !std::isnan(v[j]) && !(v[j] < 0.0f);
      ASSERT_EQ(SignLayout::is_set(want.data(), j), plus) << "n " << n << " j " << j;
      ASSERT_EQ(view.is_set(j), plus);
      ASSERT_EQ(view.sign(j), plus ? 1.0f : -1.0f);
    }
  }
}

// The 32-bit layout, padded to an even number of words, is byte for byte the 64-bit layout on a
// little-endian machine (what payload.hpp promises the 64-bit words of a sign ring all-reduce).
TEST(SignLayout, SixtyFourBitWordsReadTheSameBytes) {
  if constexpr (std::endian::native != std::endian::little) GTEST_SKIP() << "big-endian host";
  using Wide = BitLayout<std::uint64_t>;
  for (std::size_t n : {1, 31, 32, 33, 64, 65, 1000}) {
    const std::vector<float> v = mixed(n, 99 + n);
    std::vector<std::uint32_t> narrow = naive_pack(v);
    narrow.resize(2 * Wide::words_for(n), 0u);
    std::vector<std::uint64_t> wide(Wide::words_for(n), 0u);
    for (std::size_t j = 0; j < n; ++j) wide[Wide::word_of(j)] |= Wide::placed(v[j], j);
    ASSERT_EQ(std::memcmp(narrow.data(), wide.data(), wide.size() * sizeof(std::uint64_t)), 0) << "n " << n;
    for (std::size_t j = 0; j < n; ++j)
      ASSERT_EQ(Wide::is_set(wide.data(), j), SignLayout::is_set(narrow.data(), j));
  }
}

TEST(SignBits, WireSizes) {
  EXPECT_EQ(SignBits::wire_bytes(0), 4u);
  EXPECT_EQ(SignBits::wire_bytes(1), 8u);
  EXPECT_EQ(SignBits::wire_bytes(32), 8u);
  EXPECT_EQ(SignBits::wire_bytes(33), 12u);
  EXPECT_DOUBLE_EQ(SignBits::wire_elements(33), 33.0 / 32.0 + 1.0);
}

TEST(SignBits, MessageViewAndNaNPolicyOfTheCompressor) {
  sparcol::compress::SignCompressor c(false);
  sparcol::compress::Message m;
  const std::vector<float> v{kNaN, 2.0f, -0.0f, -3.0f, 0.0f};
  c.compress(v, {}, m);
  const SignBits s = m.sign();
  EXPECT_EQ(s.n, v.size());
  EXPECT_EQ(s.words.data(), m.bits.data());
  ASSERT_EQ(s.words.size(), 1u);
  EXPECT_EQ(s.words[0], 0b10110u);   // NaN -> 0, 2 -> 1, -0 -> 1, -3 -> 0, +0 -> 1
  EXPECT_TRUE(std::isnan(s.scale));  // the NaN reaches the scale: the decoded vector is non-finite
  EXPECT_EQ(m.wire_bytes(), SignBits::wire_bytes(v.size()));
  EXPECT_DOUBLE_EQ(m.wire_elements(), SignBits::wire_elements(v.size()));
}

TEST(SparseChunk, ViewOfAMessage) {
  sparcol::compress::Message m;
  m.reset(sparcol::compress::Aggregation::kSparse, 10);
  m.indices = {1, 4, 9};
  m.values = {0.5f, -1.0f, 2.0f};
  const SparseChunk c = m.sparse();
  EXPECT_EQ(c.size(), 3u);
  EXPECT_FALSE(c.empty());
  EXPECT_EQ(c.indices.data(), m.indices.data());
  EXPECT_EQ(c.values.data(), m.values.data());
  EXPECT_EQ(c.wire_bytes(), 3 * sparcol::kPairBytes);
  EXPECT_EQ(m.wire_bytes(), c.wire_bytes());
  const SparseChunk none{};
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(none.size(), 0u);
  EXPECT_EQ(none.wire_bytes(), 0u);
}

}  // namespace
