// Partitions of a training set across workers (partition.hpp; ALGORITHMS.md 12.1).
#include "sparcol/train/partition.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "sparcol/core/error.hpp"
#include "sparcol/core/types.hpp"

namespace sparcol::train {

std::size_t Partition::total() const {
  std::size_t n = 0;
  for (const auto& p : parts) n += p.size();
  return n;
}

PartitionKind parse_partition_kind(std::string_view name) {
  if (name == "iid") return PartitionKind::kIid;
  if (name == "dirichlet") return PartitionKind::kDirichlet;
  if (name == "shards") return PartitionKind::kShards;
  throw Error(ErrorCode::kInvalidArgument, -1,
              "unknown partition '" + std::string(name) + "' (expected iid, dirichlet or shards)");
}

const char* to_string(PartitionKind kind) {
  switch (kind) {
    case PartitionKind::kIid:
      return "iid";
    case PartitionKind::kDirichlet:
      return "dirichlet";
    case PartitionKind::kShards:
      return "shards";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------
// Random variates
// ---------------------------------------------------------------------------------------------
double sample_log_gamma(CounterRng& rng, double shape) {
  SPARCOL_CHECK_ARG(shape > 0.0 && std::isfinite(shape), -1, "Gamma shape must be positive and finite");
  if (shape < 1.0) {
    // Gamma(a) = Gamma(a + 1) * U^(1/a) (Marsaglia & Tsang 2000, sec. 6); U in (0, 1].
    const double log_u = std::log(1.0 - rng.uniform());
    return sample_log_gamma(rng, shape + 1.0) + log_u / shape;
  }
  // Marsaglia & Tsang (2000): d = a - 1/3, c = 1/sqrt(9d); accept d*v with v = (1 + c*x)^3, x normal.
  const double d = shape - 1.0 / 3.0;
  const double c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    double x = 0.0, v = 0.0;
    do {
      x = rng.normal();
      v = 1.0 + c * x;
    } while (v <= 0.0);
    v = v * v * v;
    const double u = 1.0 - rng.uniform();  // (0, 1]
    const double x2 = x * x;
    if (u < 1.0 - 0.0331 * x2 * x2) return std::log(d * v);
    if (std::log(u) < 0.5 * x2 + d * (1.0 - v + std::log(v))) return std::log(d * v);
  }
}

std::vector<double> sample_dirichlet(CounterRng& rng, double alpha, int k) {
  SPARCOL_CHECK_ARG(k >= 1, -1, "Dirichlet dimension must be >= 1");
  std::vector<double> logs(static_cast<std::size_t>(k));
  for (double& l : logs) l = sample_log_gamma(rng, alpha);
  const double top = *std::max_element(logs.begin(), logs.end());
  double sum = 0.0;
  for (double& l : logs) {
    l = std::exp(l - top);
    sum += l;
  }
  for (double& l : logs) l /= sum;
  return logs;
}

// ---------------------------------------------------------------------------------------------
// Partitions
// ---------------------------------------------------------------------------------------------
namespace {

void check_workers(int num_workers, std::size_t n, const char* what) {
  SPARCOL_CHECK_ARG(num_workers >= 1, -1, std::string(what) + ": the number of workers must be >= 1");
  SPARCOL_CHECK_ARG(n <= kMaxElements, -1,
                    std::string(what) + ": data sets beyond 2^32 - 1 samples are not supported");
  SPARCOL_CHECK_ARG(n >= static_cast<std::size_t>(num_workers), -1,
                    std::string(what) + ": " + std::to_string(n) + " samples cannot give each of " +
                        std::to_string(num_workers) + " workers at least one");
}

// Fisher-Yates with uniform_below draws: the same permutation on every rank for the same RNG.
template <typename T>
void shuffle(std::vector<T>& v, CounterRng& rng) {
  for (std::size_t i = v.size(); i > 1; --i) {
    const std::size_t j = rng.below(i);
    std::swap(v[i - 1], v[j]);
  }
}

// Substreams of kStreamPartition, one per procedure.
constexpr std::uint32_t kSubIid = 0;
constexpr std::uint32_t kSubDirichlet = 1;
constexpr std::uint32_t kSubShards = 2;

}  // namespace

Partition partition_iid(std::size_t n, int num_workers, std::uint64_t seed) {
  check_workers(num_workers, n, "partition_iid");
  std::vector<std::uint32_t> all(n);
  std::iota(all.begin(), all.end(), 0u);
  CounterRng rng(seed, kStreamPartition, kSubIid);
  shuffle(all, rng);
  Partition p;
  p.parts.resize(static_cast<std::size_t>(num_workers));
  const std::size_t k = static_cast<std::size_t>(num_workers), base = n / k, extra = n % k;
  std::size_t start = 0;
  for (std::size_t w = 0; w < k; ++w) {
    const std::size_t len = base + (w < extra ? 1 : 0);
    p.parts[w].assign(all.begin() + static_cast<std::ptrdiff_t>(start),
                      all.begin() + static_cast<std::ptrdiff_t>(start + len));
    start += len;
  }
  return p;
}

namespace {

// Steps 2-3 of the Dirichlet procedure for one slice of the shuffled indices and k workers; the
// cap and the acceptance threshold are relative to the slice (N_s / k and floor(0.5 N_s / k)).
std::vector<std::vector<std::uint32_t>> dirichlet_split(std::span<const std::uint32_t> slice,
                                                        std::span<const std::int32_t> labels, int num_classes,
                                                        std::size_t k, double alpha, CounterRng& rng,
                                                        int max_draws) {
  std::vector<std::vector<std::uint32_t>> by_class(static_cast<std::size_t>(num_classes));
  for (std::uint32_t idx : slice) by_class[static_cast<std::size_t>(labels[idx])].push_back(idx);
  const double n = static_cast<double>(slice.size());
  const double cap = n / static_cast<double>(k);  // N/K: stop feeding a worker
  const auto min_size = static_cast<std::size_t>(0.5 * n / static_cast<double>(k));
  std::vector<std::vector<std::uint32_t>> parts;
  for (int draw = 0; draw < max_draws; ++draw) {
    parts.assign(k, {});
    bool degenerate = false;
    for (const auto& members : by_class) {
      // 2. q ~ Dir(alpha); zero the share of workers already at N/K; renormalise.
      std::vector<double> q = sample_dirichlet(rng, alpha, static_cast<int>(k));
      double sum = 0.0;
      for (std::size_t w = 0; w < k; ++w) {
        if (static_cast<double>(parts[w].size()) >= cap) q[w] = 0.0;
        sum += q[w];
      }
      if (!(sum > 0.0)) {  // every open worker drew an underflowing share: start this draw over
        degenerate = true;
        break;
      }
      // Split at floor(cumsum(q) * n_c); the last worker takes the rest, as numpy's split does.
      const double n_c = static_cast<double>(members.size());
      double cum = 0.0;
      std::size_t start = 0;
      for (std::size_t w = 0; w < k; ++w) {
        std::size_t end = members.size();
        if (w + 1 < k) {
          cum += q[w] / sum;
          end = std::min(members.size(), std::max(start, static_cast<std::size_t>(cum * n_c)));
        }
        parts[w].insert(parts[w].end(), members.begin() + static_cast<std::ptrdiff_t>(start),
                        members.begin() + static_cast<std::ptrdiff_t>(end));
        start = end;
      }
    }
    if (degenerate) continue;
    // 3. Accept when every worker has at least floor(0.5 N / K) samples (and at least one).
    std::size_t smallest = slice.size();
    for (const auto& part : parts) smallest = std::min(smallest, part.size());
    if (smallest >= min_size && smallest > 0) return parts;
  }
  throw Error(ErrorCode::kInvalidArgument, -1,
              "partition_dirichlet: no draw in " + std::to_string(max_draws) + " gave every one of " +
                  std::to_string(k) + " workers at least " +
                  std::to_string(std::max<std::size_t>(min_size, 1)) + " of " + std::to_string(slice.size()) +
                  " samples (alpha " + std::to_string(alpha) +
                  " is too small for this many workers; a group size of 10 may help)");
}

}  // namespace

Partition partition_dirichlet(std::span<const std::int32_t> labels, int num_classes, int num_workers,
                              double alpha, std::uint64_t seed, int max_draws, int group_size) {
  const std::size_t n = labels.size();
  check_workers(num_workers, n, "partition_dirichlet");
  SPARCOL_CHECK_ARG(alpha > 0.0 && std::isfinite(alpha), -1,
                    "partition_dirichlet: alpha must be positive, got " + std::to_string(alpha));
  SPARCOL_CHECK_ARG(num_classes >= 1, -1, "partition_dirichlet: num_classes must be >= 1");
  SPARCOL_CHECK_ARG(max_draws >= 1, -1, "partition_dirichlet: max_draws must be >= 1");
  SPARCOL_CHECK_ARG(group_size >= 0, -1, "partition_dirichlet: group size must be >= 0");
  for (std::size_t i = 0; i < n; ++i) {
    SPARCOL_CHECK_ARG(labels[i] >= 0 && labels[i] < num_classes, -1,
                      "partition_dirichlet: label " + std::to_string(labels[i]) + " of sample " +
                          std::to_string(i) + " is outside [0, " + std::to_string(num_classes) + ")");
  }
  const auto k = static_cast<std::size_t>(num_workers);

  // 1. Shuffle the (index, label) pairs.
  std::vector<std::uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  CounterRng rng(seed, kStreamPartition, kSubDirichlet);
  shuffle(order, rng);

  // Groups (the reference code's n_auxi_workers): group i of g workers takes the shuffled slice
  // [i * floor(g/K * N), (i + 1) * floor(g/K * N)), the last group the rest; the RNG runs on.
  const std::size_t g = (group_size == 0 || static_cast<std::size_t>(group_size) >= k)
                            ? k
                            : static_cast<std::size_t>(group_size);
  const std::size_t groups = (k + g - 1) / g;
  const auto slice_len =
      static_cast<std::size_t>(static_cast<double>(g) / static_cast<double>(k) * static_cast<double>(n));
  Partition p;
  for (std::size_t gi = 0; gi < groups; ++gi) {
    const std::size_t workers = gi + 1 < groups ? g : k - g * (groups - 1);
    const std::size_t from = gi * slice_len, to = gi + 1 < groups ? from + slice_len : n;
    auto parts = dirichlet_split(std::span<const std::uint32_t>(order).subspan(from, to - from), labels,
                                 num_classes, workers, alpha, rng, max_draws);
    for (auto& part : parts) p.parts.push_back(std::move(part));
  }
  return p;
}

Partition partition_shards(std::span<const std::int32_t> labels, int num_workers, int shards_per_worker,
                           std::uint64_t seed) {
  const std::size_t n = labels.size();
  check_workers(num_workers, n, "partition_shards");
  SPARCOL_CHECK_ARG(shards_per_worker >= 1, -1, "partition_shards: shards per worker must be >= 1");
  const std::size_t shards =
      static_cast<std::size_t>(num_workers) * static_cast<std::size_t>(shards_per_worker);
  SPARCOL_CHECK_ARG(shards <= n, -1,
                    "partition_shards: " + std::to_string(shards) +
                        " shards need at least as many samples, got " + std::to_string(n));
  std::vector<std::uint32_t> sorted(n);
  std::iota(sorted.begin(), sorted.end(), 0u);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [&](std::uint32_t a, std::uint32_t b) { return labels[a] < labels[b]; });
  std::vector<std::uint32_t> shard_ids(shards);
  std::iota(shard_ids.begin(), shard_ids.end(), 0u);
  CounterRng rng(seed, kStreamPartition, kSubShards);
  shuffle(shard_ids, rng);
  Partition p;
  p.parts.resize(static_cast<std::size_t>(num_workers));
  for (std::size_t s = 0; s < shards; ++s) {
    // Shard i covers [floor(i n / S), floor((i + 1) n / S)) of the sorted order.
    const std::size_t id = shard_ids[s];
    const std::size_t begin = id * n / shards, end = (id + 1) * n / shards;
    auto& part = p.parts[s / static_cast<std::size_t>(shards_per_worker)];
    part.insert(part.end(), sorted.begin() + static_cast<std::ptrdiff_t>(begin),
                sorted.begin() + static_cast<std::ptrdiff_t>(end));
  }
  return p;
}

Partition make_partition(const Dataset& data, int num_workers, const PartitionOptions& options) {
  switch (options.kind) {
    case PartitionKind::kIid:
      return partition_iid(data.count, num_workers, options.seed);
    case PartitionKind::kDirichlet:
      return partition_dirichlet(data.labels, data.num_classes, num_workers, options.alpha, options.seed,
                                 options.max_draws, options.dirichlet_group);
    case PartitionKind::kShards:
      return partition_shards(data.labels, num_workers, options.shards_per_worker, options.seed);
  }
  throw Error(ErrorCode::kInternal, -1, "make_partition: unknown partition kind");
}

std::vector<std::vector<std::size_t>> class_counts(const Partition& p, std::span<const std::int32_t> labels,
                                                   int num_classes) {
  std::vector<std::vector<std::size_t>> counts(p.parts.size(), std::vector<std::size_t>(num_classes, 0));
  for (std::size_t w = 0; w < p.parts.size(); ++w) {
    for (std::uint32_t idx : p.parts[w]) {
      SPARCOL_CHECK_ARG(idx < labels.size(), -1,
                        "class_counts: index " + std::to_string(idx) + " out of range");
      const std::int32_t c = labels[idx];
      SPARCOL_CHECK_ARG(c >= 0 && c < num_classes, -1, "class_counts: label out of range");
      ++counts[w][static_cast<std::size_t>(c)];
    }
  }
  return counts;
}

}  // namespace sparcol::train
