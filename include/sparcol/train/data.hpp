// Data sets for the native trainer: Fashion-MNIST from IDX files, normalisation, and the generated
// data of the synthetic logistic-regression task. Partitioning across workers is in partition.hpp,
// per-worker minibatches in batch_iterator.hpp; the models that consume them in model.hpp.
//
// Every function here is deterministic and communication-free: each rank loads the whole data set
// itself and derives the same partition from the same seed (docs/models.md, "Data").
//
// Errors: unreadable or corrupt files throw Error(kIo, rank, "<file>: <what is wrong>"); the rank
// argument only labels the message (-1 leaves the rank out).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace sparcol::train {

// Sample shape of a data set and the input shape of a model.
struct InputShape {
  int channels = 1;
  int height = 28;
  int width = 28;
  std::size_t size() const {
    return static_cast<std::size_t>(channels) * static_cast<std::size_t>(height) *
           static_cast<std::size_t>(width);
  }
  bool operator==(const InputShape&) const = default;
};

// A labelled data set in memory. Sample i is images[i * sample_size() ...] in [C][H][W] order;
// flat (non-image) samples use channels = height = 1 and width = features.
struct Dataset {
  std::size_t count = 0;
  InputShape shape{};
  int num_classes = 0;
  std::vector<float> images;         // count * shape.size() values
  std::vector<std::int32_t> labels;  // count values in [0, num_classes)
  // What a blank pixel (raw value 0) becomes after normalisation; augmentation pads crops with it so
  // that padding looks like background, as padding before normalising would.
  float background = 0.0f;

  std::size_t sample_size() const { return shape.size(); }
  std::span<const float> sample(std::size_t i) const {
    return {images.data() + i * sample_size(), sample_size()};
  }
};

// A contiguous group of samples, as the models consume it: images[size][sample_size] and labels[size].
// A view: it borrows the memory of a Batch or a Dataset, which must outlive it.
struct BatchView {
  const float* images = nullptr;
  const std::int32_t* labels = nullptr;
  std::size_t size = 0;
};

// A minibatch owned by its caller (filled by BatchIterator::next, reusable across calls).
struct Batch {
  std::vector<float> images;
  std::vector<std::int32_t> labels;
  std::vector<std::uint32_t> indices;  // data-set index of each sample (for checks and debugging)
  std::size_t size() const { return labels.size(); }
  BatchView view() const { return {images.data(), labels.data(), labels.size()}; }
};

// Samples [first, first + count) of a data set as a batch view.
BatchView dataset_view(const Dataset& data, std::size_t first, std::size_t count);

// ---------------------------------------------------------------------------------------------
// IDX files (the MNIST format: big-endian header, then unsigned bytes). Both readers go through
// zlib's gzFile API, which reads gzip-compressed and plain files alike. Every header field is
// checked: the magic (type unsigned byte, 3 dimensions for images, 1 for labels), non-zero sizes,
// the data length (a short file is "truncated", extra bytes after the declared data are an error
// too), and for labels the range [0, num_classes).
// ---------------------------------------------------------------------------------------------
inline constexpr std::uint32_t kIdxImagesMagic = 0x00000803;
inline constexpr std::uint32_t kIdxLabelsMagic = 0x00000801;

struct IdxImages {
  std::size_t count = 0;
  int rows = 0;
  int cols = 0;
  std::vector<std::uint8_t> pixels;  // count * rows * cols, row-major per image
};

IdxImages load_idx_images(const std::string& path, int rank = -1);
std::vector<std::uint8_t> load_idx_labels(const std::string& path, int num_classes = 10, int rank = -1);

// ---------------------------------------------------------------------------------------------
// Fashion-MNIST (Debian package dataset-fashion-mnist). The directory holds
// {train,t10k}-{images-idx3,labels-idx1}-ubyte, each with or without a .gz suffix (.gz preferred).
// Images must be 28x28 and image and label counts must agree; pixels become floats in [0, 1].
// ---------------------------------------------------------------------------------------------
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
inline constexpr int kFashionMnistClasses = 10;

struct DataSplit {
  Dataset train;
  Dataset test;
};

DataSplit load_fashion_mnist(const std::string& dir = kFashionMnistDir, int rank = -1);

// Builds a Dataset from IDX contents (pixels scaled to [0, 1]); the file names label errors.
Dataset make_image_dataset(const IdxImages& images, const std::vector<std::uint8_t>& labels, int num_classes,
                           const std::string& images_file, const std::string& labels_file, int rank = -1);

// ---------------------------------------------------------------------------------------------
// Normalisation: x <- (x - mean[c]) / stddev[c] per channel.
// ---------------------------------------------------------------------------------------------
struct Normalization {
  std::vector<float> mean;    // one per channel
  std::vector<float> stddev;  // one per channel, > 0
};

// Mean and (population) standard deviation of every channel over all samples, accumulated in double
// in index order, so every rank computes bitwise the same values from the same data.
Normalization compute_normalization(const Dataset& data);
// Fixed constants for Fashion-MNIST pixels in [0, 1]: mean 0.2860, std 0.3530 (the values
// compute_normalization gives on its 60000 training images, rounded to four digits).
Normalization fashion_mnist_normalization();
// Applies n in place and updates data.background. Throws kInvalidArgument on a channel mismatch.
void normalize(Dataset& data, const Normalization& n);

// ---------------------------------------------------------------------------------------------
// Synthetic task (model "synthetic", docs/models.md): samples are latent vectors u ~ N(0, I_P),
// P = latent_dim, stored as flat samples of shape (1, 1, P); the label is the side of a random
// teacher hyperplane with 10% margin noise: y = [u . t / |t| + 0.1 e > 0], e ~ N(0, 1). The model
// expands u into its N parameters' feature space (model.hpp), so the data stays small at any N.
// ---------------------------------------------------------------------------------------------
DataSplit make_synthetic_data(std::size_t num_train, std::size_t num_test, int latent_dim,
                              std::uint64_t seed);

}  // namespace sparcol::train
