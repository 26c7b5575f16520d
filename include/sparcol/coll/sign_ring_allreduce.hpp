// Sign-bit ring all-reduces (ALGORITHMS.md 10.1): Marsit's unbiased merge, and the cascading
// baseline that re-compresses at every hop. Both move bit payloads and never compress the caller's
// vector themselves (Marsit takes the packed signs; the cascade takes the float vector because its
// hops re-compress partial sums, which is the point of the baseline).
//
// Chunks: the n bits are held in W = BitLayout<uint64_t>::words_for(n) 64-bit words, split into K
// balanced chunks of whole words (chunk c = words [c*q + min(c, rem), ...), the remainder to the first
// chunks), so that element chunks start at multiples of 64 and the unused high bits of the last word
// stay 0.
//
// SignRingAllreduce (Marsit), run(mine, seed, step, tensor):
//   1. the K scales are all-gathered (one float each) and lambda = (sum in rank order) / K;
//   2. ring reduce-scatter on bits, K-1 hops: at hop s (0-based) rank r sends chunk (r - s) mod K to
//      rank r+1 and receives chunk c = (r - s - 1) mod K, which already merges j = s + 1 workers'
//      signs (B); it draws the mask M with i.i.d. bits, P(1) = 1/(j+1), and sets
//      B <- (b_r AND M) OR (B AND NOT M), b_r its own bits of chunk c. After K-1 hops every bit of
//      chunk (r + 1) mod K is the bit of one worker chosen uniformly at random (the merge is
//      unbiased: P(bit = b_i) = 1/K for every worker i);
//   3. ring all-gather of the merged chunks (no further compression), so every rank holds the same W
//      words. decode_into(out): out_j = lambda * (+1 or -1 from bit j).
//   Masks: mask_word(key, word, q, differ) below, key = marsit_key(seed, step, tensor, chunk, hop),
//   word = global 64-bit word index. A mask word is built from independent uniform words R_1, R_2, ...
//   (splitmix64 outputs indexed by (word, level) under the key): lane l's uniform U = 0.R_1[l] R_2[l]...
//   is compared with the binary expansion of 1/q, level by level, until every lane that matters is
//   decided (about log2(64) + 2 levels), so 64 Bernoulli draws cost a few random words, not 64. Lanes
//   where b_r and B agree do not matter (the merge keeps the common bit whatever M says) and are not
//   drawn. The draw is exact (no truncation of 1/q) up to a cap of 240 levels (a lane undecided
//   after 240 fair-bit comparisons, probability 2^-240, gets 0). Every rank that merges a chunk uses
//   the same key, so the result is a pure function of (inputs, seed, step, tensor) and of K.
//   Bytes sent per rank: the K-1 reduce-scatter chunks + the K-1 all-gather chunks (about
//   2 (K-1)/K * W * 8 bytes) + (K-1) * 4 for the scales.
//
// SignCascadeAllreduce (the baseline of 10.1), run(p, step):
//   hop 0 sends chunk r of C(p_r) (scaled sign of 1.4 of the chunk: bits + one scale); a rank that
//   receives chunk c decodes it, adds its own p chunk, and re-compresses the sum (its own scale) for
//   the next hop; after K-1 hops the owner re-compresses the full sum of chunk (r + 1) mod K, and the
//   final messages (bits + scale per chunk) are ring all-gathered. decode_into(out):
//   out_j = scale_c * sign_j / K. Bytes per rank: (K-1) chunk messages in each phase, plus 4 bytes per
//   message for its scale.
//
// Both: fingerprint-checked (CollOp::kSignRingAllreduce / kSignCascade with n, seed, step, tensor);
// every rank must pass the same n (and, for Marsit, seed, step and tensor). Host memory only.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "sparcol/comm/backend.hpp"
#include "sparcol/core/payload.hpp"
#include "sparcol/core/rng.hpp"

namespace sparcol::coll {

using SignWord = std::uint64_t;
using SignLayout64 = BitLayout<SignWord>;

// splitmix64's output function (Steele et al. 2014): a bijective mix of a 64-bit value.
inline std::uint64_t splitmix_mix(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The key of the masks of (seed, step, tensor, chunk, hop): Philox of (step, tensor, stream) under
// the seed, then of (chunk, hop) under that.
inline std::uint64_t marsit_key(std::uint64_t seed, std::uint64_t step, std::uint32_t tensor,
                                std::uint32_t chunk, std::uint32_t hop) {
  constexpr std::uint32_t kStreamMarsit = kStreamUser - 1;  // 15: below the users' streams
  const std::uint64_t k1 = counter_u64(seed, step, tensor, kStreamMarsit);
  return counter_u64(k1, (static_cast<std::uint64_t>(hop) << 32) | chunk, 0, kStreamMarsit);
}

// The uniform word of level t (t >= 0) for 64-bit word `word` under `key`.
inline std::uint64_t marsit_random_word(std::uint64_t key, std::uint64_t word, unsigned level) {
  return splitmix_mix(key + 0x9E3779B97F4A7C15ull * ((word << 8) + level + 1));
}

inline constexpr unsigned kMarsitMaxLevels = 240;

// A mask word with P(bit = 1) = 1/q per lane (q >= 1), for the lanes set in `lanes` (other lanes 0).
inline std::uint64_t mask_word(std::uint64_t key, std::uint64_t word, std::uint64_t q, std::uint64_t lanes) {
  if (q <= 1) return lanes;
  std::uint64_t undecided = lanes, mask = 0, rem = 1;  // rem: long division of 1 by q
  for (unsigned t = 0; undecided != 0 && t < kMarsitMaxLevels; ++t) {
    rem <<= 1;
    const bool bit = rem >= q;  // bit t+1 of the binary expansion of 1/q
    if (bit) rem -= q;
    const std::uint64_t r = marsit_random_word(key, word, t);
    if (bit) {
      mask |= undecided & ~r;  // U's bit 0 < p's bit 1: U < p
      undecided &= r;
    } else {
      undecided &= ~r;  // U's bit 1 > p's bit 0: U > p
    }
    if (rem == 0) break;  // p's remaining bits are 0: no undecided lane can be below p
  }
  return mask;
}

// The merge of one word: mine where the mask is set, merged elsewhere (the mask drawn only where they
// differ).
inline std::uint64_t marsit_merge_word(std::uint64_t key, std::uint64_t word, std::uint64_t q,
                                       std::uint64_t mine, std::uint64_t merged) {
  const std::uint64_t differ = mine ^ merged;
  if (differ == 0) return merged;
  return merged ^ mask_word(key, word, q, differ);
}

// Chunk c's first 64-bit word among W words split over K ranks (c in [0, K]).
std::uint64_t sign_chunk_start(std::uint64_t words, int ranks, int c);

class SignRingAllreduce {
 public:
  SignRingAllreduce(comm::Backend& backend, std::uint64_t n);

  // mine: this rank's n sign bits (SignLayout, 32-bit words) and its scale.
  void run(SignBits mine, std::uint64_t seed, std::uint64_t step, std::uint32_t tensor);
  // The same after a fingerprint the caller exchanged itself (the optimizers' Exchange).
  void run_agreed(SignBits mine, std::uint64_t seed, std::uint64_t step, std::uint32_t tensor);

  std::uint64_t n() const { return n_; }
  // The merged bits (W 64-bit words, identical on every rank) and lambda.
  std::span<const SignWord> merged() const { return {buf_.data(), buf_.size()}; }
  float scale() const { return scale_; }
  // out (n floats) <- lambda * sign(B_j).
  void decode_into(std::span<float> out) const;

  std::uint64_t last_bytes_sent() const { return last_sent_; }
  std::uint64_t last_bytes_recv() const { return last_recv_; }

 private:
  comm::Backend& backend_;
  std::uint64_t n_, words_;
  std::vector<SignWord> buf_, recv_;
  std::vector<float> scales_;
  float scale_ = 0.0f;
  std::uint64_t last_sent_ = 0, last_recv_ = 0;
};

// The result of SignRingAllreduce recomputed on one host from every rank's bits (bits[r]: rank r's
// SignLayout words), replaying the ring's merges with the same masks. For checks (bench -c, tests).
std::vector<SignWord> marsit_reference(const std::vector<std::vector<std::uint32_t>>& bits, std::uint64_t n,
                                       std::uint64_t seed, std::uint64_t step, std::uint32_t tensor);

class SignCascadeAllreduce {
 public:
  SignCascadeAllreduce(comm::Backend& backend, std::uint64_t n);

  // p: this rank's n floats (not changed).
  void run(std::span<const float> p, std::uint64_t step = 0);
  void run_agreed(std::span<const float> p);

  std::uint64_t n() const { return n_; }
  // out (n floats) <- the decoded final chunks divided by K (identical on every rank).
  void decode_into(std::span<float> out) const;
  // Chunk c's final message: its SignLayout words and scale (the sum's scaled sign, before / K).
  SignBits chunk(int c) const;
  std::uint64_t chunk_begin(int c) const;  // first element of chunk c
  std::uint64_t chunk_size(int c) const;

  std::uint64_t last_bytes_sent() const { return last_sent_; }
  std::uint64_t last_bytes_recv() const { return last_recv_; }

 private:
  std::uint64_t chunk_words32(int c) const { return SignLayout::words_for(chunk_size(c)); }
  // Chunk c's message slot in final_: its words, then the scale's bit pattern.
  std::uint32_t* slot(int c) { return final_.data() + slot_off_[static_cast<std::size_t>(c)]; }
  const std::uint32_t* slot(int c) const { return final_.data() + slot_off_[static_cast<std::size_t>(c)]; }
  void compress_into(const float* v, std::uint64_t len, std::uint32_t* msg) const;

  comm::Backend& backend_;
  std::uint64_t n_, words64_;
  std::vector<std::uint64_t> slot_off_;  // K + 1 offsets into final_
  std::vector<std::uint32_t> final_, send_, recv_;
  std::vector<float> sum_;
  std::uint64_t last_sent_ = 0, last_recv_ = 0;
};

}  // namespace sparcol::coll
