// IDX readers (zlib), Fashion-MNIST loading, normalisation and the synthetic data set.
#include "sparcol/train/data.hpp"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "sparcol/core/error.hpp"
#include "sparcol/core/rng.hpp"
#include "sparcol/train/partition.hpp"

namespace sparcol::train {

BatchView dataset_view(const Dataset& data, std::size_t first, std::size_t count) {
  SPARCOL_CHECK_ARG(first <= data.count && count <= data.count - first, -1,
                    "dataset_view: samples [" + std::to_string(first) + ", " + std::to_string(first + count) +
                        ") outside a data set of " + std::to_string(data.count));
  return {data.images.data() + first * data.sample_size(), data.labels.data() + first, count};
}

// ---------------------------------------------------------------------------------------------
// IDX
// ---------------------------------------------------------------------------------------------
namespace {

[[noreturn]] void io_error(const std::string& path, int rank, const std::string& what) {
  throw Error(ErrorCode::kIo, rank, path + ": " + what);
}

// A gzFile that throws on failure and closes itself. gzread passes plain (non-gzip) files through.
class GzReader {
 public:
  GzReader(const std::string& path, int rank) : path_(path), rank_(rank) {
    errno = 0;
    file_ = gzopen(path.c_str(), "rb");
    if (file_ == nullptr) {
      io_error(path, rank,
               std::string("cannot open: ") + (errno != 0 ? std::strerror(errno) : "out of memory"));
    }
  }
  ~GzReader() { gzclose(file_); }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;

  // Reads up to n bytes; returns how many were read (fewer only at the end of the data). Corrupt
  // compressed data (bad CRC, a broken deflate stream) throws; a gzip stream cut short reads as
  // fewer bytes, which the callers report as truncation.
  std::size_t read(void* buf, std::size_t n) {
    auto* out = static_cast<unsigned char*>(buf);
    std::size_t done = 0;
    while (done < n) {
      const auto chunk = static_cast<unsigned>(std::min<std::size_t>(n - done, 1u << 30));
      const int got = gzread(file_, out + done, chunk);
      if (got < 0) fail_corrupt();
      if (got == 0) {
        int errnum = Z_OK;
        gzerror(file_, &errnum);
        // Z_BUF_ERROR here means the gzip stream ended early: truncation, which the caller reports.
        if (errnum != Z_OK && errnum != Z_BUF_ERROR) fail_corrupt();
        break;
      }
      done += static_cast<std::size_t>(got);
    }
    return done;
  }

  std::uint32_t read_u32(const char* field) {
    unsigned char b[4];
    const std::size_t got = read(b, 4);
    if (got != 4) io_error(path_, rank_, std::string("truncated header: cannot read the ") + field);
    return (static_cast<std::uint32_t>(b[0]) << 24) | (static_cast<std::uint32_t>(b[1]) << 16) |
           (static_cast<std::uint32_t>(b[2]) << 8) | static_cast<std::uint32_t>(b[3]);
  }

  // Reads exactly `expected` bytes into out, growing it as data arrives, so a header that claims a
  // huge count does not allocate before the data is there. Then insists on end of file.
  void read_payload(std::vector<std::uint8_t>& out, std::size_t expected, const std::string& what) {
    out.clear();
    constexpr std::size_t kChunk = std::size_t{16} << 20;
    while (out.size() < expected) {
      const std::size_t want = std::min(kChunk, expected - out.size());
      const std::size_t old = out.size();
      out.resize(old + want);
      const std::size_t got = read(out.data() + old, want);
      if (got < want) {
        io_error(path_, rank_,
                 "truncated: the header declares " + what + " (" + std::to_string(expected) +
                     " bytes) but the file holds " + std::to_string(old + got));
      }
    }
    unsigned char extra = 0;
    if (read(&extra, 1) != 0) {
      io_error(path_, rank_,
               "unexpected data after the " + what + " the header declares (wrong count in the header?)");
    }
  }

 private:
  [[noreturn]] void fail_corrupt() {
    int errnum = Z_OK;
    const char* msg = gzerror(file_, &errnum);
    std::string what = msg != nullptr ? msg : "read error";
    // zlib prefixes its message with the path; ours already starts with it.
    if (what.rfind(path_ + ": ", 0) == 0) what.erase(0, path_.size() + 2);
    io_error(path_, rank_, "corrupt or unreadable data: " + what);
  }

  std::string path_;
  int rank_;
  gzFile file_ = nullptr;
};

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

}  // namespace

IdxImages load_idx_images(const std::string& path, int rank) {
  GzReader in(path, rank);
  const std::uint32_t magic = in.read_u32("magic number");
  if (magic != kIdxImagesMagic) {
    io_error(path, rank,
             "bad magic number " + hex32(magic) + " (expected " + hex32(kIdxImagesMagic) +
                 ": IDX images, unsigned bytes, 3 dimensions)");
  }
  const std::uint32_t count = in.read_u32("image count");
  const std::uint32_t rows = in.read_u32("row count");
  const std::uint32_t cols = in.read_u32("column count");
  if (count == 0) io_error(path, rank, "the header declares 0 images");
  // 2^15 per side is far beyond any image set; the bound keeps rows * cols * count from overflowing.
  constexpr std::uint32_t kMaxSide = 1u << 15;
  if (rows == 0 || cols == 0 || rows > kMaxSide || cols > kMaxSide) {
    io_error(path, rank,
             "bad image size " + std::to_string(rows) + "x" + std::to_string(cols) + " in the header");
  }
  IdxImages out;
  out.count = count;
  out.rows = static_cast<int>(rows);
  out.cols = static_cast<int>(cols);
  const std::size_t bytes = static_cast<std::size_t>(count) * rows * cols;
  in.read_payload(out.pixels, bytes,
                  std::to_string(count) + " images of " + std::to_string(rows) + "x" + std::to_string(cols));
  return out;
}

std::vector<std::uint8_t> load_idx_labels(const std::string& path, int num_classes, int rank) {
  SPARCOL_CHECK_ARG(num_classes >= 1 && num_classes <= 256, rank,
                    "load_idx_labels: num_classes must be in [1, 256], got " + std::to_string(num_classes));
  GzReader in(path, rank);
  const std::uint32_t magic = in.read_u32("magic number");
  if (magic != kIdxLabelsMagic) {
    io_error(path, rank,
             "bad magic number " + hex32(magic) + " (expected " + hex32(kIdxLabelsMagic) +
                 ": IDX labels, unsigned bytes, 1 dimension)");
  }
  const std::uint32_t count = in.read_u32("label count");
  if (count == 0) io_error(path, rank, "the header declares 0 labels");
  std::vector<std::uint8_t> labels;
  in.read_payload(labels, count, std::to_string(count) + " labels");
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] >= num_classes) {
      io_error(path, rank,
               "label " + std::to_string(labels[i]) + " at index " + std::to_string(i) +
                   " is out of range (expected < " + std::to_string(num_classes) + ")");
    }
  }
  return labels;
}

Dataset make_image_dataset(const IdxImages& images, const std::vector<std::uint8_t>& labels, int num_classes,
                           const std::string& images_file, const std::string& labels_file, int rank) {
  if (images.count != labels.size()) {
    throw Error(ErrorCode::kIo, rank,
                images_file + " holds " + std::to_string(images.count) + " images but " + labels_file +
                    " holds " + std::to_string(labels.size()) + " labels");
  }
  Dataset d;
  d.count = images.count;
  d.shape = InputShape{1, images.rows, images.cols};
  d.num_classes = num_classes;
  d.images.resize(images.pixels.size());
  std::transform(images.pixels.begin(), images.pixels.end(), d.images.begin(),
                 [](std::uint8_t v) { return static_cast<float>(v) / 255.0f; });
  d.labels.assign(labels.begin(), labels.end());
  d.background = 0.0f;
  return d;
}

namespace {

// dir/name.gz if it exists, else dir/name if it exists, else throws naming the .gz path.
std::string find_idx_file(const std::string& dir, const std::string& name, int rank) {
  namespace fs = std::filesystem;
  const fs::path gz = fs::path(dir) / (name + ".gz");
  const fs::path plain = fs::path(dir) / name;
  std::error_code ec;
  if (fs::exists(gz, ec)) return gz.string();
  if (fs::exists(plain, ec)) return plain.string();
  throw Error(ErrorCode::kIo, rank,
              gz.string() +
                  ": no such file (nor without .gz); install the dataset-fashion-mnist package or point "
                  "--data to a directory holding the Fashion-MNIST IDX files");
}

Dataset load_split(const std::string& dir, const std::string& prefix, int rank) {
  const std::string images_file = find_idx_file(dir, prefix + "-images-idx3-ubyte", rank);
  const std::string labels_file = find_idx_file(dir, prefix + "-labels-idx1-ubyte", rank);
  const IdxImages images = load_idx_images(images_file, rank);
  if (images.rows != 28 || images.cols != 28) {
    throw Error(ErrorCode::kIo, rank,
                images_file + ": images are " + std::to_string(images.rows) + "x" +
                    std::to_string(images.cols) + ", Fashion-MNIST images are 28x28");
  }
  const auto labels = load_idx_labels(labels_file, kFashionMnistClasses, rank);
  return make_image_dataset(images, labels, kFashionMnistClasses, images_file, labels_file, rank);
}

}  // namespace

DataSplit load_fashion_mnist(const std::string& dir, int rank) {
  DataSplit out;
  out.train = load_split(dir, "train", rank);
  out.test = load_split(dir, "t10k", rank);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Normalisation
// ---------------------------------------------------------------------------------------------
Normalization compute_normalization(const Dataset& data) {
  const int channels = data.shape.channels;
  const std::size_t plane = static_cast<std::size_t>(data.shape.height) * data.shape.width;
  SPARCOL_CHECK_ARG(data.count > 0 && channels > 0 && plane > 0, -1, "compute_normalization: empty data set");
  Normalization n;
  for (int c = 0; c < channels; ++c) {
    double sum = 0.0;
    for (std::size_t i = 0; i < data.count; ++i) {
      const float* v = data.images.data() + (i * channels + c) * plane;
      for (std::size_t j = 0; j < plane; ++j) sum += v[j];
    }
    const double total = static_cast<double>(data.count * plane);
    const double mean = sum / total;
    double sq = 0.0;
    for (std::size_t i = 0; i < data.count; ++i) {
      const float* v = data.images.data() + (i * channels + c) * plane;
      for (std::size_t j = 0; j < plane; ++j) sq += (v[j] - mean) * (v[j] - mean);
    }
    const double stddev = std::sqrt(sq / total);
    n.mean.push_back(static_cast<float>(mean));
    // A constant channel would divide by zero; leave such a channel unscaled.
    n.stddev.push_back(stddev > 0.0 ? static_cast<float>(stddev) : 1.0f);
  }
  return n;
}

Normalization fashion_mnist_normalization() {
  return Normalization{{0.2860f}, {0.3530f}};
}

void normalize(Dataset& data, const Normalization& n) {
  const auto channels = static_cast<std::size_t>(data.shape.channels);
  SPARCOL_CHECK_ARG(n.mean.size() == channels && n.stddev.size() == channels, -1,
                    "normalize: " + std::to_string(n.mean.size()) +
                        " channel statistics for a data set with " + std::to_string(channels) + " channels");
  for (float s : n.stddev) SPARCOL_CHECK_ARG(s > 0.0f, -1, "normalize: standard deviations must be positive");
  const std::size_t plane = static_cast<std::size_t>(data.shape.height) * data.shape.width;
  for (std::size_t i = 0; i < data.count; ++i) {
    for (std::size_t c = 0; c < channels; ++c) {
      float* v = data.images.data() + (i * channels + c) * plane;
      const float mean = n.mean[c], inv = 1.0f / n.stddev[c];
      for (std::size_t j = 0; j < plane; ++j) v[j] = (v[j] - mean) * inv;
    }
  }
  // Background follows channel 0: padding is one value for all channels (single-channel data here).
  data.background = (data.background - n.mean[0]) / n.stddev[0];
}

// ---------------------------------------------------------------------------------------------
// Synthetic data
// ---------------------------------------------------------------------------------------------
namespace {

// Substreams of kStreamSyntheticData.
constexpr std::uint32_t kSubTeacher = 0;
constexpr std::uint32_t kSubTrain = 1;
constexpr std::uint32_t kSubTest = 2;

Dataset synthetic_split(std::size_t count, int latent_dim, const std::vector<double>& teacher,
                        std::uint64_t seed, std::uint32_t substream) {
  Dataset d;
  d.count = count;
  d.shape = InputShape{1, 1, latent_dim};
  d.num_classes = 2;
  d.images.resize(count * static_cast<std::size_t>(latent_dim));
  d.labels.resize(count);
  CounterRng rng(seed, kStreamSyntheticData, substream);
  for (std::size_t i = 0; i < count; ++i) {
    float* u = d.images.data() + i * static_cast<std::size_t>(latent_dim);
    double margin = 0.0;
    for (int k = 0; k < latent_dim; ++k) {
      u[k] = static_cast<float>(rng.normal());
      margin += teacher[static_cast<std::size_t>(k)] * u[k];
    }
    margin += 0.1 * rng.normal();
    d.labels[i] = margin > 0.0 ? 1 : 0;
  }
  return d;
}

}  // namespace

DataSplit make_synthetic_data(std::size_t num_train, std::size_t num_test, int latent_dim,
                              std::uint64_t seed) {
  SPARCOL_CHECK_ARG(latent_dim >= 1, -1, "make_synthetic_data: latent_dim must be >= 1");
  SPARCOL_CHECK_ARG(num_train >= 1 && num_test >= 1, -1, "make_synthetic_data: sample counts must be >= 1");
  CounterRng rng(seed, kStreamSyntheticData, kSubTeacher);
  std::vector<double> teacher(static_cast<std::size_t>(latent_dim));
  double norm = 0.0;
  for (double& t : teacher) {
    t = rng.normal();
    norm += t * t;
  }
  norm = std::sqrt(norm);
  for (double& t : teacher) t /= norm;
  DataSplit out;
  out.train = synthetic_split(num_train, latent_dim, teacher, seed, kSubTrain);
  out.test = synthetic_split(num_test, latent_dim, teacher, seed, kSubTest);
  return out;
}

}  // namespace sparcol::train
