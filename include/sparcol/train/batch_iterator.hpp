// Per-worker minibatches: an endless stream over one worker's part of the training set.
//
// Each epoch visits every index of the part exactly once, in an order shuffled from
// (seed, epoch, rank): Fisher-Yates over the part as given, driven by CounterRng(seed, kStreamData,
// rank) whose counter starts at epoch << 32 (a shuffle of n < 2^32 items uses n - 1 draws, so epochs
// never share draws). next() always returns batch_size samples: a batch that runs past the end of
// an epoch continues with the start of the next one, so every rank can take the same number of
// steps even when the parts differ in size (Dirichlet partitions).
//
// Augmentation (optional, images only): a random crop with padding 2 (offsets in [-2, 2] on each
// axis, padding filled with Dataset::background) followed by a horizontal flip with probability 1/2.
// The draws of one sample are one Philox block keyed by (seed; position, epoch, rank,
// kStreamAugment), so they depend only on where the sample sits in the stream.
//
// State: everything random is a pure function of (epoch, position), so those two numbers restore
// the stream exactly; the state also carries the seed and part size to catch restoring into an
// iterator built with other arguments (kInvalidArgument).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "sparcol/train/data.hpp"

namespace sparcol::train {

struct BatchIteratorOptions {
  std::size_t batch_size = 32;
  bool augment = false;
  std::uint64_t seed = 0;
  int rank = 0;  // names the shuffle and augmentation streams; also labels error messages
};

struct BatchIteratorState {
  std::uint64_t epoch = 0;      // epoch the next sample comes from
  std::uint64_t position = 0;   // index of the next sample within that epoch's order
  std::uint64_t seed = 0;       // checked on restore
  std::uint64_t part_size = 0;  // checked on restore
  bool operator==(const BatchIteratorState&) const = default;
};

class BatchIterator {
 public:
  // data must outlive the iterator; indices (this worker's part) must be non-empty and < data.count.
  BatchIterator(const Dataset& data, std::vector<std::uint32_t> indices, const BatchIteratorOptions& options);

  // Fills batch (resized as needed, so a batch can be reused without reallocation).
  void next(Batch& batch);

  BatchIteratorState state() const;
  void restore(const BatchIteratorState& state);

  std::uint64_t epoch() const { return epoch_; }
  std::uint64_t position() const { return position_; }
  std::size_t part_size() const { return indices_.size(); }
  std::size_t batch_size() const { return options_.batch_size; }

 private:
  void shuffle_for_epoch();
  void augment_sample(std::uint32_t index, float* out) const;  // at (epoch_, position_)

  const Dataset* data_;
  std::vector<std::uint32_t> indices_;  // the part as given (the shuffles start from this order)
  std::vector<std::uint32_t> order_;    // this epoch's order
  BatchIteratorOptions options_;
  std::uint64_t epoch_ = 0;
  std::uint64_t position_ = 0;
};

}  // namespace sparcol::train
