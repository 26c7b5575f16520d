#include <gtest/gtest.h>

#include <set>

#include "sparcol/coll/rbgs_allreduce.hpp"
#include "sparcol/core/rng.hpp"

using sparcol::Philox4x32;

TEST(Philox, KnownAnswer) {
  // Random123 known-answer test for philox4x32-10: counter = 0, key = 0.
  const auto out = Philox4x32::generate(0, Philox4x32::Block{0, 0, 0, 0});
  EXPECT_EQ(out[0], 0x6627e8d5u);
  EXPECT_EQ(out[1], 0xe169c58du);
  EXPECT_EQ(out[2], 0xbc57ac4cu);
  EXPECT_EQ(out[3], 0x9b00dbd8u);
  // counter = all ones, key = all ones.
  const auto ones = Philox4x32::generate(~0ull, Philox4x32::Block{~0u, ~0u, ~0u, ~0u});
  EXPECT_EQ(ones[0], 0x408f276du);
  EXPECT_EQ(ones[1], 0x41c83b0eu);
  EXPECT_EQ(ones[2], 0xa20bc7c6u);
  EXPECT_EQ(ones[3], 0x6d5451fdu);
}

TEST(Rbgs, BlockIsDeterministicAndCoversAllStarts) {
  std::set<std::uint64_t> starts;
  for (std::uint64_t step = 0; step < 2000; ++step) {
    const auto b = sparcol::rbgs_block(17, 5, 42, step, 0);
    EXPECT_LT(b.start, 17u);
    EXPECT_EQ(b.length, 5u);
    const auto again = sparcol::rbgs_block(17, 5, 42, step, 0);
    EXPECT_EQ(b.start, again.start);
    starts.insert(b.start);
  }
  EXPECT_EQ(starts.size(), 17u);  // every start in {0..16} occurs
}

TEST(Rbgs, WrapAroundPackUnpack) {
  const sparcol::Block b{10, 7, 5};  // positions 7, 8, 9, 0, 1
  EXPECT_EQ(b.first_len(), 3u);
  EXPECT_EQ(b.wrap_len(), 2u);
  std::vector<float> v{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, packed(5);
  sparcol::rbgs_pack(v.data(), b, packed.data());
  EXPECT_EQ(packed, (std::vector<float>{7, 8, 9, 0, 1}));
  for (auto& p : packed) p *= 10;
  sparcol::rbgs_unpack(packed.data(), b, v.data());
  EXPECT_EQ(v, (std::vector<float>{0, 10, 2, 3, 4, 5, 6, 70, 80, 90}));
  for (std::uint64_t i = 0; i < 10; ++i) EXPECT_EQ(b.contains(i), i >= 7 || i <= 1) << i;
}

TEST(Rng, UniformBelowInRange) {
  sparcol::CounterRng rng(7, sparcol::kStreamUser);
  for (int i = 0; i < 10000; ++i) EXPECT_LT(rng.below(3), 3u);
  double sum = 0;
  for (int i = 0; i < 10000; ++i) sum += rng.uniform();
  EXPECT_NEAR(sum / 10000, 0.5, 0.02);
}
