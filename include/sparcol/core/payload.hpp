// Payload types that cross layers: what a compressor produces, a collective moves and a kernel
// reads. They live in core so that compressors (core, device), collectives (core, comm, device) and
// kernels (core, device) share one definition without reaching each other's layers (STYLE.md 1).
//
//   SparseChunk  (index, value) pairs: top-k, random-k, sampled top-k, SIDCo messages and what the
//                sparse all-gather returns per rank (a view; compress::Message owns the vectors).
//   SignBits     n sign bits packed into 32-bit words plus one float scale: the scaled-sign message
//                and what the sign all-gather returns per rank (a view). BitLayout below is the one
//                definition of how bits are packed; every packer, decoder and kernel uses it.
//   Block        one contiguous (wrapping) range of positions, the RBGS support; its values travel
//                packed in wrap order (rbgs_pack / rbgs_unpack).
//
// The views never own memory and may point to device memory (a collective on a device executor
// returns views of its device buffers); they are then passed on, never dereferenced on the host.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "sparcol/core/rng.hpp"
#include "sparcol/core/types.hpp"

namespace sparcol {

// ---------------------------------------------------------------------------------------------
// Sparse chunks
// ---------------------------------------------------------------------------------------------

// k (index, value) pairs: pair i sends values[i] for position indices[i]. indices.size() must equal
// values.size() (the collectives check it, with the rank and both sizes in the error). Order and
// duplicates mean what the producer documents (top-k: ascending, distinct); consumers add the pairs
// in their order. On the wire a chunk is its k indices followed by its k values (wire_bytes()).
//
// The dimension n is not part of the chunk. A chunk's positions are self-describing, and n is a
// property of the vector and of the collective that moves it: the sparse all-gather is built for
// one n and checks every index against it before sending, and compress::Message carries n beside
// its pairs. Putting n in every chunk would duplicate it in each of the K received chunks and
// invite chunks of one call that disagree; nothing that reads a chunk needs more than the bound the
// collective already knows. (SignBits differs: ceil(n/32) words do not determine n, so it must say.)
struct SparseChunk {
  std::span<const Index> indices;
  std::span<const float> values;

  std::size_t size() const { return indices.size(); }
  bool empty() const { return indices.empty(); }
  std::size_t wire_bytes() const { return kPairBytes * indices.size(); }
};

// ---------------------------------------------------------------------------------------------
// Sign bits
// ---------------------------------------------------------------------------------------------

// The packed bit layout, for words of type Word (32 bits for SignBits). Element j is bit j % W of
// word j / W (W = bits per word, least significant bit first); the unused high bits of the last
// word are 0. Bit value 1 means sign +1: v >= 0, so sign(+0) = sign(-0) = +1; a negative v and a NaN
// (v >= 0 is false for NaN) give 0, i.e. -1 (compress/sign.hpp says what then happens to the scale).
//
// Word sizes: on a little-endian machine (x86-64, AArch64 and every CUDA device) this layout is a
// bit stream, element j at bit j % 8 of byte j / 8, whatever W is. So BitLayout<std::uint64_t>
// (the 64-bit words of issue 13's sign ring all-reduce) reads the same bytes as the 32-bit words,
// provided the 32-bit array is padded with a zero word to 2 * BitLayout<std::uint64_t>::words_for(n)
// words when SignLayout::words_for(n) is odd. The wire format of the sign all-gather stays 32-bit.
template <class Word>
struct BitLayout {
  static constexpr unsigned kWordBits = 8 * sizeof(Word);

  // Words holding n bits: ceil(n / W) (0 for n = 0).
  SPARCOL_HD static constexpr std::uint64_t words_for(std::uint64_t n) {
    return (n + kWordBits - 1) / kWordBits;
  }
  // Word holding element j, and element j's bit within it.
  SPARCOL_HD static constexpr std::uint64_t word_of(std::uint64_t j) { return j / kWordBits; }
  SPARCOL_HD static constexpr unsigned bit_of(std::uint64_t j) {
    return static_cast<unsigned>(j % kWordBits);
  }
  // The bit for value v: 1 for v >= 0 (so +-0 give 1), 0 for negative values and NaN.
  SPARCOL_HD static constexpr Word bit_for(float v) { return v >= 0.0f ? Word{1} : Word{0}; }
  // bit_for(v) placed at element j's position in its word (OR it into words[word_of(j)]).
  SPARCOL_HD static constexpr Word placed(float v, std::uint64_t j) {
    return static_cast<Word>(bit_for(v) << bit_of(j));
  }
  // Whether element j's bit is set in words (sign +1).
  SPARCOL_HD static constexpr bool is_set(const Word* words, std::uint64_t j) {
    return ((words[word_of(j)] >> bit_of(j)) & Word{1}) != 0;
  }
  // +1 or -1 for element j.
  SPARCOL_HD static constexpr float sign(const Word* words, std::uint64_t j) {
    return is_set(words, j) ? 1.0f : -1.0f;
  }
};

// The layout of every sign payload in sparcol (compressor, all-gather, kernels, twins).
using SignLayout = BitLayout<std::uint32_t>;

// One sign message: n elements' sign bits in SignLayout::words_for(n) words, and the scale every
// decoded element gets (C(v)_j = +scale or -scale; ALGORITHMS.md 1.4). A view: words may point to
// device memory.
struct SignBits {
  std::uint64_t n = 0;
  std::span<const std::uint32_t> words;
  float scale = 0.0f;

  // Host memory only: whether element j < n is +1, and its sign as +1.0f / -1.0f.
  bool is_set(std::uint64_t j) const { return SignLayout::is_set(words.data(), j); }
  float sign(std::uint64_t j) const { return SignLayout::sign(words.data(), j); }

  // Size on the wire of a message of n elements: the words, then the scale's 4 bytes.
  static constexpr std::uint64_t wire_bytes(std::uint64_t n) {
    return sizeof(std::uint32_t) * SignLayout::words_for(n) + sizeof(float);
  }
  // The same in elements, as ALGORITHMS.md 0.1 and 9 count them: n/32 + 1 (one element per 32 bits,
  // not rounded to whole words, plus the scale).
  static constexpr double wire_elements(std::uint64_t n) {
    return static_cast<double>(n) / SignLayout::kWordBits + 1.0;
  }
};

// ---------------------------------------------------------------------------------------------
// RBGS blocks
// ---------------------------------------------------------------------------------------------

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

// The scaled sign of ALGORITHMS.md 1.4 on host memory, the one definition the compressor "sign" and
// the sign ring all-reduces use: sign_pack writes SignLayout::words_for(v.size()) words;
// sign_scale is ||v||_1 / n (0 for n = 0) as float partial sums over blocks of 256 (8 lanes), the
// blocks added in double in a fixed order, so it is reproducible bit for bit.
void sign_pack(std::span<const float> v, std::uint32_t* words);
float sign_scale(std::span<const float> v);

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
