// Sign all-gather: every rank contributes one SignBits (core/payload.hpp: n sign bits packed 32 per
// uint32 word in SignLayout, and one float scale); every rank receives all of them (bits(r) is rank
// r's) and can decode their mean (ALGORITHMS.md 1.4).
//
// Steps: ring all-gather of fixed-size blocks (SignLayout::words_for(n) words + 1 float) in K-1
// steps, as in the sparse all-gather. Bytes sent per rank: (K-1) * SignBits::wire_bytes(n), i.e.
// (K-1) * (4*ceil(n/32) + 4).
// Decoding (mean_into): out_j = (sum over r in rank order of scale_r * s_rj) / K with s = +1 where the
// bit is set and -1 otherwise, so every rank gets bitwise the same vector. majority_into: out_j =
// mean scale * sign(sum_r s_rj), sign(0) := +1 [P].
// Preconditions: every rank passes the same n (checked by the call fingerprint unless run_agreed).
//
// Device memory: with an executor (see ring_allreduce.hpp) the bits live in its memory, every
// rank's words are kept contiguous (rank r's at r * words()) with the K scales in a separate array,
// so each ring step moves two messages (the words, the scale), and the decoders are the kernels
// sign_decode_mean / sign_decode_majority (same order of additions: bitwise the host result).
// The words of bits(r) then point to device memory, and bits(r) reads the scale back.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "sparcol/comm/backend.hpp"
#include "sparcol/core/payload.hpp"
#include "sparcol/device/dispatch.hpp"

namespace sparcol::coll {

class SignAllgather {
 public:
  // exec: where the bits and the decoded vectors live (nullptr: host memory); must outlive this.
  SignAllgather(comm::Backend& backend, std::uint64_t n, device::Exec* exec = nullptr);

  // Gathers every rank's message; mine.n must equal n and mine.words hold words() words.
  void run(SignBits mine, std::uint64_t step = 0);
  void run_agreed(SignBits mine);

  std::uint64_t n() const { return n_; }
  std::uint64_t words() const { return words_; }
  // Rank r's message from the last run.
  SignBits bits(int r) const;

  void mean_into(std::span<float> out) const;
  void majority_into(std::span<float> out) const;

  std::uint64_t last_bytes_sent() const { return last_sent_; }
  std::uint64_t last_bytes_recv() const { return last_recv_; }

 private:
  std::size_t block_words() const { return words_ + 1; }  // bits + the scale's bit pattern
  comm::Backend& backend_;
  std::uint64_t n_, words_;
  std::vector<std::uint32_t> buffer_;  // rank r's block at r * block_words()
  std::uint64_t last_sent_ = 0, last_recv_ = 0;
  const std::uint32_t* words_of(int r) const;
  float scale_of(int r) const;
  void run_exec(SignBits mine);
  device::Exec* exec_ = nullptr;
  device::Buffer<std::uint32_t> d_words_;  // device path: rank r's words at r * words_
  device::Buffer<float> d_scales_;         // and its scale at r
};

}  // namespace sparcol::coll
