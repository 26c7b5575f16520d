// Counter-based random numbers shared by all ranks (and by CPU and GPU code).
//
// Philox-4x32 with 10 rounds (Salmon et al., SC'11): a pure function of (key, counter), so every
// rank derives the same numbers from (global seed, iteration t, tensor id) without communicating,
// and the CPU and CUDA code paths agree bit for bit (ALGORITHMS.md 0.1, "Determinism").
//
// Streams: the fourth counter word names what the numbers are for (kStream*), so that the RBGS block
// start and, e.g., shared random-k indices drawn for the same (t, tensor) are independent.
#pragma once

#include <array>
#include <cstdint>

#include "sparcol/core/types.hpp"

namespace sparcol {

enum RngStream : std::uint32_t {
  kStreamRbgsStart = 1,
  kStreamRandkShared = 2,
  kStreamRandkLocal = 3,
  kStreamSampling = 4,
  kStreamData = 5,
  kStreamInit = 6,
  kStreamNoise = 7,
  kStreamUser = 16,
};

struct Philox4x32 {
  using Block = std::array<std::uint32_t, 4>;

  SPARCOL_HD static Block generate(std::uint64_t key, Block ctr) {
    std::uint32_t k0 = static_cast<std::uint32_t>(key), k1 = static_cast<std::uint32_t>(key >> 32);
    for (int round = 0; round < 10; ++round) {
      const std::uint64_t p0 = static_cast<std::uint64_t>(0xD2511F53u) * ctr[0];
      const std::uint64_t p1 = static_cast<std::uint64_t>(0xCD9E8D57u) * ctr[2];
      const std::uint32_t hi0 = static_cast<std::uint32_t>(p0 >> 32), lo0 = static_cast<std::uint32_t>(p0);
      const std::uint32_t hi1 = static_cast<std::uint32_t>(p1 >> 32), lo1 = static_cast<std::uint32_t>(p1);
      ctr = Block{hi1 ^ ctr[1] ^ k0, lo1, hi0 ^ ctr[3] ^ k1, lo0};
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    return ctr;
  }
};

// Uniform 64-bit value for (seed; a, b, stream): a and b are typically the iteration and tensor id.
SPARCOL_HD inline std::uint64_t counter_u64(std::uint64_t seed, std::uint64_t a, std::uint32_t b,
                                            std::uint32_t stream) {
  const auto out = Philox4x32::generate(
      seed, Philox4x32::Block{static_cast<std::uint32_t>(a), static_cast<std::uint32_t>(a >> 32), b, stream});
  return (static_cast<std::uint64_t>(out[1]) << 32) | out[0];
}

// Maps a uniform 64-bit value to {0, ..., n-1} by a 64x64->128 multiply (Lemire); bias < n / 2^64.
SPARCOL_HD inline std::uint64_t uniform_below(std::uint64_t r, std::uint64_t n) {
#if defined(__CUDA_ARCH__)
  return __umul64hi(r, n);
#else
  __extension__ using U128 = unsigned __int128;  // GCC/Clang extension; silences -Wpedantic
  return static_cast<std::uint64_t>((static_cast<U128>(r) * n) >> 64);
#endif
}

// A small sequential generator on top of Philox for host code that needs a stream of numbers
// (data shuffles, initialisation, sampling). Its whole state is (seed, stream, counter), so it can
// be checkpointed as three integers.
class CounterRng {
 public:
  CounterRng() = default;
  CounterRng(std::uint64_t seed, std::uint32_t stream, std::uint32_t substream = 0)
      : seed_(seed), stream_(stream), substream_(substream) {}

  std::uint64_t next_u64() { return counter_u64(seed_, counter_++, substream_, stream_); }
  std::uint64_t below(std::uint64_t n) { return uniform_below(next_u64(), n); }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  double normal();  // standard normal (Box-Muller); defined in rng.cpp

  std::uint64_t seed() const { return seed_; }
  std::uint32_t stream() const { return stream_; }
  std::uint32_t substream() const { return substream_; }
  std::uint64_t counter() const { return counter_; }
  void set_counter(std::uint64_t c) { counter_ = c; }

 private:
  std::uint64_t seed_ = 0;
  std::uint32_t stream_ = 0;
  std::uint32_t substream_ = 0;
  std::uint64_t counter_ = 0;
};

}  // namespace sparcol
