// Splitting a training set across K workers: IID, Dirichlet non-IID (ALGORITHMS.md 12.1) and
// label-sorted shards.
//
// Contract: a partition is a pure function of (labels, K, options, seed). Every rank computes the
// whole partition itself and keeps its own part; nothing is communicated, so ranks agree as long as
// they pass the same arguments. Every sample goes to exactly one worker (disjoint and complete).
// Random draws come from CounterRng(seed, kStreamPartition), independent of every other stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "sparcol/core/rng.hpp"
#include "sparcol/train/data.hpp"

namespace sparcol::train {

// RNG streams of the data pipeline (see sparcol/core/rng.hpp: user streams start at kStreamUser).
inline constexpr std::uint32_t kStreamPartition = kStreamUser + 1;
inline constexpr std::uint32_t kStreamAugment = kStreamUser + 2;
inline constexpr std::uint32_t kStreamSyntheticData = kStreamUser + 3;
// The per-epoch shuffle of BatchIterator uses kStreamData with the rank as substream.

struct Partition {
  // parts[k]: the data-set indices of worker k, in no particular order (BatchIterator shuffles).
  std::vector<std::vector<std::uint32_t>> parts;
  int num_workers() const { return static_cast<int>(parts.size()); }
  std::size_t total() const;
};

enum class PartitionKind { kIid, kDirichlet, kShards };

struct PartitionOptions {
  PartitionKind kind = PartitionKind::kIid;
  double alpha = 0.1;         // Dirichlet concentration (> 0); the GMC paper's non-IID setting is 0.1
  int shards_per_worker = 2;  // label-sorted shards per worker
  std::uint64_t seed = 0;
  int max_draws = 1000;     // Dirichlet: give up (kInvalidArgument) after this many whole draws
  int dirichlet_group = 0;  // Dirichlet: workers per group, 0 = all in one group (see partition_dirichlet)
};

// "iid", "dirichlet", "shards"; anything else throws kInvalidArgument listing the valid names.
PartitionKind parse_partition_kind(std::string_view name);
const char* to_string(PartitionKind kind);

// IID: a seeded shuffle of 0..n-1 cut into K contiguous runs; sizes differ by at most one (the first
// n mod K workers get one more).
Partition partition_iid(std::size_t n, int num_workers, std::uint64_t seed);

// Dirichlet non-IID, the procedure of ALGORITHMS.md 12.1 (Lin et al.'s code):
//   1. shuffle the (index, label) pairs with the seeded RNG;
//   2. for each class c in 0..C-1: draw q ~ Dir(alpha, ..., alpha) over the K workers, set q_k = 0
//      for every worker already holding >= N/K samples, renormalise, and split class c's indices
//      (in shuffled order) at floor(cumsum(q) * n_c);
//   3. if some worker ends with fewer than floor(0.5 * N / K) samples, repeat steps 2-3 from scratch
//      (the shuffle of step 1 is kept, the RNG continues), at most max_draws times.
// group_size g > 0 and < K reproduces the reference code's grouping (n_auxi_workers = 10): the
// shuffled pairs are cut into ceil(K/g) consecutive slices of floor(g/K * N) (the last slice takes
// the rest), and steps 2-3 run per slice for its g workers (the last group: the remaining workers),
// with N the slice size. g = 0 (the spec's form) partitions all K workers at once; the two agree
// for K <= g. Grouping keeps large K feasible: at alpha 0.1, 32 workers on Fashion-MNIST find no
// acceptable draw in one group but do in groups of 10.
Partition partition_dirichlet(std::span<const std::int32_t> labels, int num_classes, int num_workers,
                              double alpha, std::uint64_t seed, int max_draws = 1000, int group_size = 0);

// Label-sorted shards (McMahan et al.): sort indices by (label, index), cut them into
// K * shards_per_worker contiguous shards of near-equal size, deal the shards out in seeded random
// order, shards_per_worker to each worker. With 2 shards per worker most workers see 1-2 classes.
Partition partition_shards(std::span<const std::int32_t> labels, int num_workers, int shards_per_worker,
                           std::uint64_t seed);

// Dispatches on options.kind.
Partition make_partition(const Dataset& data, int num_workers, const PartitionOptions& options);

// counts[k][c]: samples of class c held by worker k.
std::vector<std::vector<std::size_t>> class_counts(const Partition& p, std::span<const std::int32_t> labels,
                                                   int num_classes);

// Random variates used by the Dirichlet partition, exposed for tests.
// log of a Gamma(shape, 1) draw (Marsaglia-Tsang; shape < 1 through the boost
// Gamma(a) = Gamma(a + 1) * U^(1/a), kept in log space because U^(1/a) underflows for small a).
double sample_log_gamma(CounterRng& rng, double shape);
// A Dirichlet(alpha, ..., alpha) draw of dimension k: Gamma draws normalised from log space
// (subtracting the largest log first), so the sum is >= 1 before division even when every Gamma
// draw itself would underflow (alpha = 0.01 makes draws below 1e-300 common).
std::vector<double> sample_dirichlet(CounterRng& rng, double alpha, int k);

}  // namespace sparcol::train
