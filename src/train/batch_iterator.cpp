// Per-worker minibatch stream (batch_iterator.hpp).
#include "sparcol/train/batch_iterator.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "sparcol/core/error.hpp"
#include "sparcol/core/rng.hpp"
#include "sparcol/train/partition.hpp"

namespace sparcol::train {

namespace {
constexpr int kCropPad = 2;
}  // namespace

BatchIterator::BatchIterator(const Dataset& data, std::vector<std::uint32_t> indices,
                             const BatchIteratorOptions& options)
    : data_(&data), indices_(std::move(indices)), options_(options) {
  const int rank = options.rank;
  SPARCOL_CHECK_ARG(!indices_.empty(), rank, "batch iterator: this worker's part of the data set is empty");
  SPARCOL_CHECK_ARG(indices_.size() < (std::uint64_t{1} << 32), rank, "batch iterator: part too large");
  SPARCOL_CHECK_ARG(options.batch_size >= 1, rank, "batch iterator: batch size must be >= 1");
  SPARCOL_CHECK_ARG(options.rank >= 0, rank, "batch iterator: rank must be >= 0");
  for (std::uint32_t i : indices_) {
    SPARCOL_CHECK_ARG(i < data.count, rank,
                      "batch iterator: index " + std::to_string(i) + " outside a data set of " +
                          std::to_string(data.count) + " samples");
  }
  if (options.augment) {
    SPARCOL_CHECK_ARG(data.shape.height > 2 * kCropPad && data.shape.width > 2 * kCropPad, rank,
                      "batch iterator: augmentation needs image samples larger than 4x4");
  }
  shuffle_for_epoch();
}

void BatchIterator::shuffle_for_epoch() {
  order_ = indices_;
  CounterRng rng(options_.seed, kStreamData, static_cast<std::uint32_t>(options_.rank));
  rng.set_counter(epoch_ << 32);
  for (std::size_t i = order_.size(); i > 1; --i) std::swap(order_[i - 1], order_[rng.below(i)]);
}

void BatchIterator::next(Batch& batch) {
  const std::size_t bs = options_.batch_size, sample = data_->sample_size();
  batch.images.resize(bs * sample);
  batch.labels.resize(bs);
  batch.indices.resize(bs);
  for (std::size_t b = 0; b < bs; ++b) {
    if (position_ == order_.size()) {
      ++epoch_;
      position_ = 0;
      shuffle_for_epoch();
    }
    const std::uint32_t idx = order_[position_];
    batch.indices[b] = idx;
    batch.labels[b] = data_->labels[idx];
    float* out = batch.images.data() + b * sample;
    if (options_.augment) {
      augment_sample(idx, out);
    } else {
      std::memcpy(out, data_->images.data() + static_cast<std::size_t>(idx) * sample, sizeof(float) * sample);
    }
    ++position_;
  }
}

// Crop offsets dy, dx in [-2, 2] and the flip come from one Philox block for this stream position.
void BatchIterator::augment_sample(std::uint32_t idx, float* out) const {
  const auto r = Philox4x32::generate(
      options_.seed,
      Philox4x32::Block{static_cast<std::uint32_t>(position_), static_cast<std::uint32_t>(epoch_),
                        static_cast<std::uint32_t>(options_.rank), kStreamAugment});
  const int span = 2 * kCropPad + 1;
  const int dy = static_cast<int>((static_cast<std::uint64_t>(r[0]) * span) >> 32) - kCropPad;
  const int dx = static_cast<int>((static_cast<std::uint64_t>(r[1]) * span) >> 32) - kCropPad;
  const bool flip = (r[2] & 1u) != 0;
  const int channels = data_->shape.channels, h = data_->shape.height, w = data_->shape.width;
  const float* src = data_->images.data() + static_cast<std::size_t>(idx) * data_->sample_size();
  for (int c = 0; c < channels; ++c) {
    const float* plane = src + static_cast<std::size_t>(c) * h * w;
    float* dst = out + static_cast<std::size_t>(c) * h * w;
    for (int y = 0; y < h; ++y) {
      const int sy = y + dy;
      for (int x = 0; x < w; ++x) {
        // Output pixel x shows cropped pixel (flip ? w - 1 - x : x), taken from source column + dx.
        const int sx = (flip ? w - 1 - x : x) + dx;
        dst[y * w + x] = (sy >= 0 && sy < h && sx >= 0 && sx < w) ? plane[sy * w + sx] : data_->background;
      }
    }
  }
}

BatchIteratorState BatchIterator::state() const {
  return {epoch_, position_, options_.seed, indices_.size()};
}

void BatchIterator::restore(const BatchIteratorState& s) {
  const int rank = options_.rank;
  SPARCOL_CHECK_ARG(s.seed == options_.seed && s.part_size == indices_.size(), rank,
                    "batch iterator: the saved state belongs to another stream (seed " +
                        std::to_string(s.seed) + ", " + std::to_string(s.part_size) +
                        " samples; this iterator: seed " + std::to_string(options_.seed) + ", " +
                        std::to_string(indices_.size()) + " samples)");
  SPARCOL_CHECK_ARG(
      s.position <= indices_.size() && s.epoch < (std::uint64_t{1} << 32), rank,
      "batch iterator: saved position " + std::to_string(s.position) + " is past the end of an epoch");
  epoch_ = s.epoch;
  position_ = s.position;
  shuffle_for_epoch();
}

}  // namespace sparcol::train
