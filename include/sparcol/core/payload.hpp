// Payload types that cross layers: what a compressor produces, a collective moves and a kernel
// reads. They live in core so that compressors (core, device), collectives (core, comm, device) and
// kernels (core, device) share one definition without reaching each other's layers (STYLE.md 1).
//
// Sparse chunks ((index, value) pairs) and sign bits travel as spans of Index/float and uint32
// words (compress::Message, coll::SparseAllgather, coll::SignAllgather); the RBGS block is the one
// payload with structure of its own, defined here.
#pragma once

#include <cstdint>

#include "sparcol/core/rng.hpp"
#include "sparcol/core/types.hpp"

namespace sparcol {

// An RBGS block: positions {start, start + 1, ..., start + length - 1} mod n (ALGORITHMS.md 1.3).
// first_len() elements from start, then wrap_len() from 0. length = 0 is "no block" (the fused
// updates then extract nothing). The packed form of a block holds its elements in that wrap order.
struct Block {
  std::uint64_t n = 0;
  std::uint64_t start = 0;
  std::uint64_t length = 0;

  SPARCOL_HD std::uint64_t first_len() const { return n - start < length ? n - start : length; }
  SPARCOL_HD std::uint64_t wrap_len() const { return length - first_len(); }
  SPARCOL_HD bool contains(std::uint64_t i) const {
    return i >= start ? i - start < length : i + (n - start) < length;
  }
  // Position of element i in the packed block (wrap order); i must be in the block.
  SPARCOL_HD std::uint64_t position(std::uint64_t i) const {
    return i >= start ? i - start : i + (n - start);
  }
  // Element at packed position p < length.
  SPARCOL_HD std::uint64_t element(std::uint64_t p) const {
    const std::uint64_t first = first_len();
    return p < first ? start + p : p - first;
  }
};

// The block every rank uses for (seed, step, tensor): start = uniform{0..n-1} from the counter-based
// RNG (stream kStreamRbgsStart), length k. k <= n required (k = 0 gives an empty block).
SPARCOL_HD inline Block rbgs_block(std::uint64_t n, std::uint64_t k, std::uint64_t seed, std::uint64_t step,
                                   std::uint32_t tensor) {
  Block b{n, 0, k};
  if (n > 0) b.start = uniform_below(counter_u64(seed, step, tensor, kStreamRbgsStart), n);
  return b;
}

// Host memory: copies the block of v (n floats) into packed (length floats, wrap order), and back.
// No checks: b must fit v (the device layer's checked twins are device::cpu::rbgs_pack/rbgs_unpack).
void rbgs_pack(const float* v, const Block& b, float* packed);
void rbgs_unpack(const float* packed, const Block& b, float* v);

}  // namespace sparcol
