// Internal to kernels/: the selection machinery shared by the exact top-k (topk.cu, which defines the
// functions declared here) and the sampled top-k (topk_sampled.cu).
//
// A selection runs entirely on the stream: every data-dependent decision (the bucket of each radix
// digit, whether ties must be cut, DGC's reselections) is taken by a one-block kernel that writes a
// SelectState in device memory, and the following kernels read it to learn their parameters or that
// they have nothing to do (they return at once). The host never waits for a count.
//
// Pieces, in stream order:
//   radix select   3 x (histogram pass over the keys, one-block bucket search): the k-th largest
//                  key K, the number of keys above it and equal to it;
//   topk finish    K is the threshold; when only r of the E keys equal to K fit, ask for a cut;
//   count tiles    per tile of kCutTile elements, the number of keys in [count_lo, count_hi]
//                  (and their total, for DGC's adaptation);
//   find cut       the index of the cut_rank-th such key in index order (scan of the tile counts,
//                  then of the one tile);
//   select         CUB DeviceSelect::If over the indices 0..n-1 with the predicate
//                  key >= lo && (key > tie_key || i <= cut): order-preserving, so the output is
//                  ascending; then a gather of the values.
#pragma once

#include <cstdint>

#include "launch.cuh"

namespace sparcol::device::detail {

// Elements per tile of the tile counts (one block of 256 threads, 16 elements each).
inline constexpr std::uint64_t kCutTile = 4096;

// Where the keys come from: magnitude_key(values[i]), or keys[i] (the DGC sample's keys).
struct KeySource {
  const float* values = nullptr;
  const std::uint32_t* keys = nullptr;
  __device__ std::uint32_t key(std::uint64_t i) const {
    return values != nullptr ? magnitude_key(values[i]) : keys[i];
  }
};

enum : std::uint32_t { kPhaseCounting = 0, kPhaseFinal = 1, kPhaseExact = 2 };

// The control block (device memory, zeroed by the launcher before the first kernel).
struct SelectState {
  // Radix select: runs only while radix_active; after digit d, K >> radix_shift(d) == prefix, `above`
  // keys lie above that prefix and `bucket` keys share it.
  std::uint32_t radix_active;
  std::uint32_t prefix;
  std::uint64_t above;
  std::uint64_t bucket;
  // Tile counting of the keys in [count_lo, count_hi] while count_request != 0.
  std::uint32_t count_request;
  std::uint32_t count_lo;
  std::uint32_t count_hi;
  unsigned long long count_total;
  // When cut_rank != 0: cut <- index of the cut_rank-th key in [count_lo, count_hi] (1-based).
  std::uint64_t cut_rank;
  // The final selection: key >= lo && (key > tie_key || i <= cut).
  std::uint32_t lo;
  std::uint32_t tie_key;
  std::uint64_t cut;
  // DGC adaptation (topk_sampled.cu).
  std::uint32_t phase;
  std::uint32_t theta;
  std::uint32_t reselections;
};

// Pieces of one scratch allocation (ScratchCarver order; sizes depend on n and the sample size).
struct SelectScratch {
  SelectState* state = nullptr;
  unsigned long long* hist = nullptr;  // kRadixDigits * kRadixBuckets counters
  std::uint32_t* tile_counts = nullptr;
  std::uint32_t* sample = nullptr;
  std::uint64_t* num_selected = nullptr;
  void* cub_temp = nullptr;
  std::size_t cub_bytes = 0;
  std::size_t total = 0;
};
// Sizes (base == nullptr) or hands out the scratch of a selection over n elements with a sample of
// `samples` keys. Asks CUB for its temporary storage, which needs a device.
SelectScratch carve_select(void* base, std::uint64_t n, std::uint64_t samples);

// Zeroes the state and the histograms.
void reset_select(const Stream& s, const SelectScratch& sc);
// Radix select of the k-th largest of n keys. only_if_exact: run only when DGC chose the exact path
// (state.phase == kPhaseExact); otherwise always.
void launch_radix_select(const Stream& s, const KeySource& src, std::uint64_t n, std::uint64_t k,
                         const SelectScratch& sc, bool only_if_exact);
// After a radix select for k: the final selection's threshold, and the cut request for ties.
void launch_topk_finish(const Stream& s, std::uint64_t k, const SelectScratch& sc);
// Tile counts (if requested) over n keys.
void launch_count_tiles(const Stream& s, const KeySource& src, std::uint64_t n, const SelectScratch& sc);
// The cut (if cut_rank != 0), using the tile counts.
void launch_find_cut(const Stream& s, const KeySource& src, std::uint64_t n, const SelectScratch& sc);
// The final selection over d_v into d_idx/d_val (at most k entries); the count to sc.num_selected.
void launch_final_select(const Stream& s, const float* d_v, std::uint64_t n, std::uint64_t k, Index* d_idx,
                         float* d_val, const SelectScratch& sc);

}  // namespace sparcol::device::detail
