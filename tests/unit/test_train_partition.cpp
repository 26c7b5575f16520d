// Partitions (sparcol/train/partition.hpp) and the per-worker batch iterator (batch_iterator.hpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "sparcol/core/error.hpp"
#include "sparcol/train/batch_iterator.hpp"
#include "sparcol/train/partition.hpp"

using sparcol::Error;
namespace train = sparcol::train;

namespace {

// A fresh seed per run (printed on failure); SPARCOL_TEST_SEED=<n> replays one.
std::uint64_t fresh_seed() {
  if (const char* env = std::getenv("SPARCOL_TEST_SEED")) return std::strtoull(env, nullptr, 10);
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) | rd();
}

// n labels, balanced over `classes`, in a scrambled order (like a real training set).
std::vector<std::int32_t> balanced_labels(std::size_t n, int classes) {
  std::vector<std::int32_t> labels(n);
  for (std::size_t i = 0; i < n; ++i)
    labels[i] = static_cast<std::int32_t>((i * 7919) % static_cast<std::size_t>(classes));
  return labels;
}

// Every index in [0, n) exactly once over all parts.
void expect_disjoint_complete(const train::Partition& p, std::size_t n) {
  std::vector<int> seen(n, 0);
  for (const auto& part : p.parts) {
    for (auto idx : part) {
      ASSERT_LT(idx, n);
      ++seen[idx];
    }
  }
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(seen[i], 1) << "index " << i;
}

// Mean over workers of the largest class share of that worker's data.
double mean_top_class_share(const train::Partition& p, const std::vector<std::int32_t>& labels, int classes) {
  const auto counts = train::class_counts(p, labels, classes);
  double total = 0.0;
  for (std::size_t w = 0; w < counts.size(); ++w) {
    const auto top = *std::max_element(counts[w].begin(), counts[w].end());
    total += static_cast<double>(top) / static_cast<double>(p.parts[w].size());
  }
  return total / static_cast<double>(counts.size());
}

}  // namespace

TEST(Partition, IidIsDisjointCompleteBalancedDeterministic) {
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  for (int k : {1, 3, 8}) {
    const auto p = train::partition_iid(1001, k, seed);
    ASSERT_EQ(p.num_workers(), k);
    expect_disjoint_complete(p, 1001);
    for (const auto& part : p.parts) {
      EXPECT_GE(part.size(), 1001u / k);
      EXPECT_LE(part.size(), 1001u / k + 1);
    }
    EXPECT_EQ(train::partition_iid(1001, k, seed).parts, p.parts);
  }
  EXPECT_NE(train::partition_iid(1001, 4, seed).parts, train::partition_iid(1001, 4, seed + 1).parts);
}

TEST(Partition, DirichletFollowsTheSpec) {
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const std::size_t n = 12000;
  const int classes = 10;
  const auto labels = balanced_labels(n, classes);
  for (int k : {2, 4, 8}) {
    const auto p = train::partition_dirichlet(labels, classes, k, 0.1, seed);
    ASSERT_EQ(p.num_workers(), k);
    expect_disjoint_complete(p, n);
    // Acceptance rule: every worker holds >= floor(0.5 N/K).
    const auto min_size = static_cast<std::size_t>(0.5 * static_cast<double>(n) / k);
    // Cap rule: a worker stops receiving once it holds >= N/K, so it ends below N/K plus one class.
    const double cap = static_cast<double>(n) / k + static_cast<double>(n) / classes;
    for (const auto& part : p.parts) {
      EXPECT_GE(part.size(), min_size);
      EXPECT_LT(static_cast<double>(part.size()), cap);
    }
    EXPECT_EQ(train::partition_dirichlet(labels, classes, k, 0.1, seed).parts, p.parts);
  }
  // Skew is visible at alpha 0.1 and gone at alpha 1000 (IID: top share ~ 1/10).
  const auto skewed = train::partition_dirichlet(labels, classes, 8, 0.1, seed);
  const auto flat = train::partition_dirichlet(labels, classes, 8, 1000.0, seed);
  const auto iid = train::partition_iid(n, 8, seed);
  EXPECT_GT(mean_top_class_share(skewed, labels, classes), 0.35);
  EXPECT_LT(mean_top_class_share(flat, labels, classes), 0.13);
  EXPECT_LT(mean_top_class_share(iid, labels, classes), 0.13);
}

TEST(Partition, DirichletGroupsOfWorkers) {
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const std::size_t n = 32000;
  const auto labels = balanced_labels(n, 10);
  // With K <= group size the grouping changes nothing.
  EXPECT_EQ(train::partition_dirichlet(labels, 10, 8, 0.1, seed, 1000, 10).parts,
            train::partition_dirichlet(labels, 10, 8, 0.1, seed).parts);
  // 32 workers in groups of 10, 10, 10, 2: group i holds a slice of floor(10/32 * N) = 10000
  // samples (the last group 2000), each worker at least half its group's share.
  const auto p = train::partition_dirichlet(labels, 10, 32, 0.1, seed, 1000, 10);
  ASSERT_EQ(p.num_workers(), 32);
  expect_disjoint_complete(p, n);
  const std::size_t slice[4] = {10000, 10000, 10000, 2000}, members[4] = {10, 10, 10, 2};
  std::size_t w = 0;
  for (int gi = 0; gi < 4; ++gi) {
    std::size_t held = 0;
    for (std::size_t j = 0; j < members[gi]; ++j, ++w) {
      held += p.parts[w].size();
      EXPECT_GE(p.parts[w].size(), slice[gi] / (2 * members[gi])) << "worker " << w;
    }
    EXPECT_EQ(held, slice[gi]) << "group " << gi;
  }
}

TEST(Partition, DirichletGivesUpWhenImpossible) {
  // 2 classes over 16 workers at alpha 0.001: each class lands almost entirely on one worker, so
  // most workers stay far below half their share.
  const auto labels = balanced_labels(1600, 2);
  try {
    train::partition_dirichlet(labels, 2, 16, 0.001, 1, 5);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), sparcol::ErrorCode::kInvalidArgument);
    EXPECT_NE(e.message().find("no draw in 5"), std::string::npos) << e.what();
  }
  EXPECT_THROW(train::partition_dirichlet(labels, 2, 4, 0.0, 1), Error);
  EXPECT_THROW(train::partition_dirichlet(labels, 2, 0, 0.1, 1), Error);
  std::vector<std::int32_t> bad = {0, 1, 5};
  EXPECT_THROW(train::partition_dirichlet(bad, 2, 1, 0.1, 1), Error);
}

TEST(Partition, ShardsAreLabelSorted) {
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const std::size_t n = 6000;
  const auto labels = balanced_labels(n, 10);
  const auto p = train::partition_shards(labels, 10, 2, seed);
  expect_disjoint_complete(p, n);
  const auto counts = train::class_counts(p, labels, 10);
  for (std::size_t w = 0; w < counts.size(); ++w) {
    EXPECT_EQ(p.parts[w].size(), 600u);
    // Each 300-sample shard lies within one class (600 per class): at most 2 classes per worker.
    const auto classes =
        std::count_if(counts[w].begin(), counts[w].end(), [](std::size_t c) { return c > 0; });
    EXPECT_LE(classes, 2);
  }
  EXPECT_EQ(train::partition_shards(labels, 10, 2, seed).parts, p.parts);
  EXPECT_THROW(train::partition_shards(labels, 10, 0, seed), Error);
  EXPECT_THROW(train::partition_shards(std::vector<std::int32_t>(5, 0), 3, 2, seed), Error);
}

TEST(Partition, KindsByName) {
  EXPECT_EQ(train::parse_partition_kind("iid"), train::PartitionKind::kIid);
  EXPECT_EQ(train::parse_partition_kind("dirichlet"), train::PartitionKind::kDirichlet);
  EXPECT_EQ(train::parse_partition_kind("shards"), train::PartitionKind::kShards);
  EXPECT_THROW(train::parse_partition_kind("random"), Error);
  train::Dataset d;
  d.count = 100;
  d.num_classes = 10;
  d.labels = balanced_labels(100, 10);
  train::PartitionOptions o;
  o.kind = train::PartitionKind::kShards;
  o.seed = 3;
  EXPECT_EQ(train::make_partition(d, 5, o).parts, train::partition_shards(d.labels, 5, 2, 3).parts);
}

TEST(RandomVariates, GammaMomentsAndDirichletSimplex) {
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  sparcol::CounterRng rng(seed, sparcol::kStreamUser);
  for (double shape : {0.1, 0.5, 1.0, 3.5}) {
    const int n = 40000;
    double s = 0.0, sq = 0.0;
    for (int i = 0; i < n; ++i) {
      const double g = std::exp(train::sample_log_gamma(rng, shape));
      s += g;
      sq += g * g;
    }
    const double mean = s / n, var = sq / n - mean * mean;
    // Gamma(a, 1): mean a, variance a. Standard error of the mean sqrt(a / n); 6 sigma.
    EXPECT_NEAR(mean, shape, 6.0 * std::sqrt(shape / n)) << "shape " << shape;
    EXPECT_NEAR(var, shape, 0.1 * shape + 0.02) << "shape " << shape;
  }
  for (int i = 0; i < 100; ++i) {
    const auto q = train::sample_dirichlet(rng, 0.1, 8);
    double sum = 0.0;
    for (double v : q) {
      EXPECT_GE(v, 0.0);
      sum += v;
    }
    EXPECT_NEAR(sum, 1.0, 1e-12);
  }
}

// ---------------------------------------------------------------------------------------------
// Batch iterator
// ---------------------------------------------------------------------------------------------
namespace {

// 40 images 1x6x6 whose pixels encode (sample, position): value = sample * 100 + position.
train::Dataset coded_images(std::size_t count = 40) {
  train::Dataset d;
  d.count = count;
  d.shape = {1, 6, 6};
  d.num_classes = 10;
  d.images.resize(count * 36);
  d.labels.resize(count);
  for (std::size_t i = 0; i < count; ++i) {
    d.labels[i] = static_cast<std::int32_t>(i % 10);
    for (std::size_t p = 0; p < 36; ++p) d.images[i * 36 + p] = static_cast<float>(i * 100 + p);
  }
  d.background = -1.0f;
  return d;
}

std::vector<std::uint32_t> some_indices() {
  std::vector<std::uint32_t> idx;
  for (std::uint32_t i = 3; i < 40; i += 2) idx.push_back(i);  // 19 samples
  return idx;
}

}  // namespace

TEST(BatchIterator, EpochsArePermutationsAndBatchesStraddle) {
  const auto data = coded_images();
  const auto idx = some_indices();
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  train::BatchIterator it(data, idx, {5, false, seed, 2});
  train::Batch b;
  std::vector<std::uint32_t> stream;
  for (int i = 0; i < 19; ++i) {  // 95 samples = 5 epochs of 19
    it.next(b);
    ASSERT_EQ(b.size(), 5u);
    for (std::size_t j = 0; j < 5; ++j) {
      EXPECT_EQ(b.labels[j], data.labels[b.indices[j]]);
      EXPECT_EQ(b.images[j * 36 + 7], data.images[b.indices[j] * 36 + 7]);
      stream.push_back(b.indices[j]);
    }
  }
  EXPECT_EQ(it.epoch(), 4u);
  EXPECT_EQ(it.position(), 19u);
  std::vector<std::vector<std::uint32_t>> epochs;
  for (int e = 0; e < 5; ++e) {
    std::vector<std::uint32_t> ep(stream.begin() + e * 19, stream.begin() + (e + 1) * 19);
    epochs.push_back(ep);
    std::sort(ep.begin(), ep.end());
    EXPECT_EQ(ep, idx) << "epoch " << e;
  }
  EXPECT_NE(epochs[0], epochs[1]);  // reshuffled (equal with probability 1/19!)
  // Same (seed, rank): same stream; another rank: another order.
  train::BatchIterator again(data, idx, {5, false, seed, 2});
  train::BatchIterator other(data, idx, {5, false, seed, 3});
  train::Batch b2, b3;
  again.next(b2);
  other.next(b3);
  EXPECT_EQ(b2.indices, std::vector<std::uint32_t>(stream.begin(), stream.begin() + 5));
  std::vector<std::uint32_t> first_other;
  for (int i = 0; i < 3; ++i) {
    first_other.insert(first_other.end(), b3.indices.begin(), b3.indices.end());
    other.next(b3);
  }
  first_other.resize(15);
  EXPECT_NE(first_other, std::vector<std::uint32_t>(stream.begin(), stream.begin() + 15));
}

TEST(BatchIterator, SaveRestoreContinuesIdentically) {
  const auto data = coded_images();
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  for (bool augment : {false, true}) {
    train::BatchIterator it(data, some_indices(), {4, augment, seed, 1});
    train::Batch b;
    for (int i = 0; i < 7; ++i) it.next(b);  // 28 samples: mid-epoch 1
    const auto saved = it.state();
    std::vector<train::Batch> expected(6);
    for (auto& e : expected) it.next(e);

    train::BatchIterator fresh(data, some_indices(), {4, augment, seed, 1});
    fresh.restore(saved);
    EXPECT_EQ(fresh.state(), saved);
    for (const auto& e : expected) {
      fresh.next(b);
      EXPECT_EQ(b.indices, e.indices);
      EXPECT_EQ(b.images, e.images);  // bitwise, augmentation included
      EXPECT_EQ(b.labels, e.labels);
    }
  }
  // A state from another stream is refused.
  train::BatchIterator it(data, some_indices(), {4, false, seed, 1});
  auto s = it.state();
  s.seed ^= 1;
  EXPECT_THROW(it.restore(s), Error);
  s = it.state();
  s.position = 100;
  EXPECT_THROW(it.restore(s), Error);
}

TEST(BatchIterator, AugmentationIsCropWithPaddingAndFlip) {
  const auto data = coded_images();
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::vector<std::uint32_t> all(40);
  std::iota(all.begin(), all.end(), 0u);
  train::BatchIterator it(data, all, {40, true, seed, 0});
  train::Batch b;
  std::set<std::tuple<int, int, bool>> seen;
  for (int round = 0; round < 10; ++round) {
    it.next(b);
    for (std::size_t j = 0; j < 40; ++j) {
      const float* out = b.images.data() + j * 36;
      const float* src = data.images.data() + b.indices[j] * 36;
      // Find the (dy, dx, flip) that explains the output exactly.
      int matches = 0;
      for (int dy = -2; dy <= 2; ++dy) {
        for (int dx = -2; dx <= 2; ++dx) {
          for (bool flip : {false, true}) {
            bool ok = true;
            for (int y = 0; y < 6 && ok; ++y) {
              for (int x = 0; x < 6 && ok; ++x) {
                const int sy = y + dy, sx = (flip ? 5 - x : x) + dx;
                const float want = (sy >= 0 && sy < 6 && sx >= 0 && sx < 6) ? src[sy * 6 + sx] : -1.0f;
                ok = out[y * 6 + x] == want;
              }
            }
            if (ok) {
              ++matches;
              seen.insert({dy, dx, flip});
            }
          }
        }
      }
      EXPECT_EQ(matches, 1) << "sample " << j << " of round " << round;
    }
  }
  // 400 draws over 50 outcomes: all should appear (each is missed with probability ~3e-4).
  EXPECT_GE(seen.size(), 48u);
}

TEST(BatchIterator, RejectsBadArguments) {
  const auto data = coded_images();
  EXPECT_THROW(train::BatchIterator(data, {}, {4, false, 0, 0}), Error);
  EXPECT_THROW(train::BatchIterator(data, {40}, {4, false, 0, 0}), Error);
  EXPECT_THROW(train::BatchIterator(data, {1, 2}, {0, false, 0, 0}), Error);
}
