// The compressor interface: dense span in, message out, and back (ALGORITHMS.md section 1).
//
// Compressors know nothing of backends, MPI or NCCL (STYLE.md 1). A compressor maps v in R^n to a
// Message that names which coordinates are sent and with which values; C(v) is the dense vector
// with those values and zeros elsewhere. How messages from all ranks are combined is the
// Message's `kind` (see Aggregation); the optimizer layer's Exchange picks the collective from it.
//
// Every compressor is a pure function of (v, n, k, seed, step, tensor): no hidden state, so all
// ranks that must agree (shared-seed kinds) do, and runs are reproducible.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "sparcol/core/payload.hpp"
#include "sparcol/core/types.hpp"

namespace sparcol::compress {

// How messages from all ranks are combined.
enum class Aggregation {
  kDense,   // the whole vector is sent (compressor "none"): ring all-reduce
  kSparse,  // (index, value) pairs whose supports differ per rank: sparse all-gather
  kShared,  // values on a support every rank derives from the shared seed (rbgs, randk-shared):
            // all-reduce of the values alone, no indices on the wire
  kSign,    // one bit per element plus one float scale: all-gather of bits and scales
};

struct Message {
  Aggregation kind = Aggregation::kDense;
  std::uint64_t n = 0;
  // kSparse: the selected indices (ascending unless the compressor documents otherwise) and their
  // values. kShared: the shared indices in packing order (for rbgs, the block in wrap order) and
  // the values there. kDense: values holds v. kSign: unused.
  std::vector<Index> indices;
  std::vector<float> values;
  // kShared with rbgs: the block (indices may then stay empty: the block implies them).
  bool is_block = false;
  Block block;
  // kSign: the sign bits in SignLayout (core/payload.hpp: bit j of word j/32 is 1 where v_j >= 0,
  // sign(0) := +1), SignLayout::words_for(n) words; scale = ||v||_1 / n.
  std::vector<std::uint32_t> bits;
  float scale = 0.0f;
  // kSparse/kShared: values[i] = value_scale * v[indices[i]] (rounded to float). 1 for every
  // compressor except randk/randk-shared with randk_scale on (n/k). subtract_decompressed zeroes the
  // sent coordinates when it is 1 and subtracts the sent values otherwise.
  float value_scale = 1.0f;

  // Empties the message for a new call: sets kind and n, clears the vectors (their capacity stays,
  // so a reused message does not allocate) and resets the other fields to their defaults.
  void reset(Aggregation new_kind, std::uint64_t new_n);

  // Views of the payload, as the collectives take it (they stay valid until the message changes).
  // sparse(): the pairs of a kSparse message (or the shared indices and values of a kShared one
  // that lists its indices). sign(): the SignBits of a kSign message.
  SparseChunk sparse() const { return {indices, values}; }
  SignBits sign() const { return {n, bits, scale}; }

  // Number of values carried (k for sparse/shared, n for dense and sign).
  std::uint64_t nnz() const;
  // Size on the wire from this rank in elements (values and indices count 1 each; sign:
  // SignBits::wire_elements, n/32 + 1) and bytes (ALGORITHMS.md 0.1, 9).
  double wire_elements() const;
  std::uint64_t wire_bytes() const;
};

// Parameters of one compression call.
struct Context {
  std::uint64_t seed = 0;    // global seed shared by all ranks
  std::uint64_t step = 0;    // iteration t
  std::uint32_t tensor = 0;  // tensor id (0 in flat mode)
  std::uint32_t rank = 0;    // this rank (for independent random-k)
  std::uint64_t k = 0;       // elements to select; 0: the compressor's own rule (target_k(n))
};

class Compressor {
 public:
  virtual ~Compressor() = default;
  virtual std::string name() const = 0;
  virtual Aggregation aggregation() const = 0;
  // Elements selected for a vector of n elements (k for top-k/random-k/rbgs; n for none and sign).
  // Threshold compressors (topk-sampled, sidco) return their target; their actual count varies.
  virtual std::uint64_t target_k(std::uint64_t n) const = 0;

  // Fills `out` with the message for v. `out` is reused between calls (no allocation once sized).
  virtual void compress(std::span<const float> v, const Context& ctx, Message& out) = 0;
};

// C(v) as a dense vector: out <- zeros with the message's values at its coordinates (kSign:
// out_j = +scale or -scale). out.size() must equal m.n (Error(kInvalidArgument) otherwise).
void decompress(const Message& m, std::span<float> out);
// Error feedback: v <- v - C(v), in place. Contract: m is the message compress() made from this
// same v. Sent coordinates of kDense/kSparse/kShared messages become exactly 0 (not v_j - v_j, which
// is NaN for an infinite v_j), except with value_scale != 1 where the sent value is subtracted;
// kSign subtracts scale*sign(v_j) everywhere. v.size() must equal m.n.
void subtract_decompressed(const Message& m, std::span<float> v);
// Positions the message sends (its support): calls f(begin, end) for each contiguous range, or
// f(i, i+1) per index. Used for momentum factor masking.
template <class F>
void for_each_support_range(const Message& m, F&& f) {
  switch (m.kind) {
    case Aggregation::kDense:
    case Aggregation::kSign:
      f(std::uint64_t{0}, m.n);
      return;
    case Aggregation::kShared:
      if (m.is_block) {
        f(m.block.start, m.block.start + m.block.first_len());
        if (m.block.wrap_len() > 0) f(std::uint64_t{0}, m.block.wrap_len());
        return;
      }
      [[fallthrough]];
    case Aggregation::kSparse:
      for (Index i : m.indices) f(std::uint64_t{i}, std::uint64_t{i} + 1);
      return;
  }
}

// Configuration of a compressor, as the programs' flags give it (names as in the docs).
struct CompressorConfig {
  std::string name = "topk";  // topk, topk-sampled, randk, randk-shared, rbgs, sign, sidco, none
  double density = 0.01;      // rho = k/n, in (0, 1]
  // topk-sampled (ALGORITHMS.md 1.1; DGC constants)
  double sample_ratio = 0.01;
  // randk: scale kept values by n/k (unbiased); off by default (and with error feedback)
  bool randk_scale = false;
  // sidco (ALGORITHMS.md 1.5)
  int sidco_stages = 3;
  double sidco_first_ratio = 0.75;
  // sign: majority vote aggregation instead of the mean of the scaled signs [P]
  bool sign_majority = false;
};

// Builds a compressor; throws Error(kInvalidArgument) naming the problem for an unknown name, a
// density outside (0, 1], a sample_ratio outside (0, 1], sidco_stages < 1 or a sidco_first_ratio
// outside (0, 1).
//
// Every compressor's compress() throws Error(kInvalidArgument) when v has more than kMaxElements
// elements or when ctx.k > n; ctx.k is ignored by none and sign (they send everything).
std::unique_ptr<Compressor> make_compressor(const CompressorConfig& config);
// The names make_compressor accepts.
const std::vector<std::string>& compressor_names();

// k for density rho and n elements, as the spec defines it per compressor:
// top-k / random-k: k = max(1, round(rho*n)) (halves round up); RBGS: max(1, floor(rho*n)); n = 0
// gives 0; the result never exceeds n. rho*n is formed in double, so a product that decimal
// arithmetic makes an integer or a half (0.29 * 100) may land just below it (28.999999999999996):
// a product within 1e-9 (relative) of a multiple of 1/2 is snapped to it first, so
// k_floor(0.29, 100) = 29.
std::uint64_t k_round(double rho, std::uint64_t n);
std::uint64_t k_floor(double rho, std::uint64_t n);

}  // namespace sparcol::compress
