// IDX readers, Fashion-MNIST loading, normalisation and synthetic data (sparcol/train/data.hpp).
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "sparcol/core/error.hpp"
#include "sparcol/train/data.hpp"

namespace fs = std::filesystem;
using sparcol::Error;
using sparcol::ErrorCode;
namespace train = sparcol::train;

namespace {

std::vector<std::uint8_t> be32(std::uint32_t v) {
  return {static_cast<std::uint8_t>(v >> 24), static_cast<std::uint8_t>(v >> 16),
          static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v)};
}

void append(std::vector<std::uint8_t>& out, const std::vector<std::uint8_t>& more) {
  out.insert(out.end(), more.begin(), more.end());
}

// IDX images file contents: header (magic, count, rows, cols) then count*rows*cols pixels, pixel
// value of image i at p = (i * 7 + p) mod 256.
std::vector<std::uint8_t> idx_images(std::uint32_t count, std::uint32_t rows, std::uint32_t cols,
                                     std::uint32_t magic = train::kIdxImagesMagic) {
  std::vector<std::uint8_t> out;
  append(out, be32(magic));
  append(out, be32(count));
  append(out, be32(rows));
  append(out, be32(cols));
  for (std::uint32_t i = 0; i < count; ++i) {
    for (std::uint32_t p = 0; p < rows * cols; ++p)
      out.push_back(static_cast<std::uint8_t>((i * 7 + p) % 256));
  }
  return out;
}

std::vector<std::uint8_t> idx_labels(std::uint32_t count, std::uint32_t magic = train::kIdxLabelsMagic) {
  std::vector<std::uint8_t> out;
  append(out, be32(magic));
  append(out, be32(count));
  for (std::uint32_t i = 0; i < count; ++i) out.push_back(static_cast<std::uint8_t>(i % 10));
  return out;
}

// A fresh directory per test under gtest's temporary directory.
class IdxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) /
           ("sparcol_train_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write_plain(const std::string& name, const std::vector<std::uint8_t>& bytes) {
    const std::string path = (dir_ / name).string();
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return path;
  }
  std::string write_gz(const std::string& name, const std::vector<std::uint8_t>& bytes) {
    const std::string path = (dir_ / name).string();
    gzFile f = gzopen(path.c_str(), "wb");
    EXPECT_NE(f, nullptr);
    if (!bytes.empty()) {
      EXPECT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())),
                static_cast<int>(bytes.size()));
    }
    gzclose(f);
    return path;
  }
  std::vector<std::uint8_t> read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
  }

  fs::path dir_;
};

// Runs fn, expects Error(kIo) whose message names `path` and contains `what`.
template <typename Fn>
void expect_io_error(Fn fn, const std::string& path, const std::string& what) {
  try {
    fn();
    ADD_FAILURE() << "no error for " << path << " (expected '" << what << "')";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo) << e.what();
    EXPECT_NE(e.message().find(path), std::string::npos) << e.what();
    EXPECT_NE(e.message().find(what), std::string::npos) << e.what();
  }
}

}  // namespace

TEST_F(IdxTest, ReadsPlainAndGzipImages) {
  const auto bytes = idx_images(5, 3, 4);
  for (const std::string& path : {write_plain("img", bytes), write_gz("img.gz", bytes)}) {
    const auto img = train::load_idx_images(path);
    EXPECT_EQ(img.count, 5u);
    EXPECT_EQ(img.rows, 3);
    EXPECT_EQ(img.cols, 4);
    ASSERT_EQ(img.pixels.size(), 60u);
    for (std::size_t i = 0; i < 5; ++i) {
      for (std::size_t p = 0; p < 12; ++p) EXPECT_EQ(img.pixels[i * 12 + p], (i * 7 + p) % 256);
    }
  }
}

TEST_F(IdxTest, ReadsPlainAndGzipLabels) {
  const auto bytes = idx_labels(23);
  for (const std::string& path : {write_plain("lab", bytes), write_gz("lab.gz", bytes)}) {
    const auto labels = train::load_idx_labels(path);
    ASSERT_EQ(labels.size(), 23u);
    for (std::size_t i = 0; i < 23; ++i) EXPECT_EQ(labels[i], i % 10);
  }
}

TEST_F(IdxTest, WrongMagic) {
  // Labels file given as images and vice versa, and a 2-byte-element (0x0B) file.
  const std::string p1 = write_gz("a.gz", idx_labels(4));
  expect_io_error([&] { train::load_idx_images(p1); }, p1, "bad magic number 0x00000801");
  const std::string p2 = write_plain("b", idx_images(2, 2, 2));
  expect_io_error([&] { train::load_idx_labels(p2); }, p2, "bad magic number 0x00000803");
  const std::string p3 = write_plain("c", idx_images(2, 2, 2, 0x00000B03));
  expect_io_error([&] { train::load_idx_images(p3); }, p3, "bad magic");
}

TEST_F(IdxTest, TruncatedHeaderAndData) {
  auto bytes = idx_images(4, 5, 5);
  const std::vector<std::uint8_t> header_only(bytes.begin(), bytes.begin() + 10);
  const std::string p1 = write_plain("h", header_only);
  expect_io_error([&] { train::load_idx_images(p1); }, p1, "truncated header");
  bytes.resize(bytes.size() - 7);
  const std::string p2 = write_plain("d", bytes);
  expect_io_error([&] { train::load_idx_images(p2); }, p2, "truncated");
  const std::string p3 = write_gz("d.gz", bytes);
  expect_io_error([&] { train::load_idx_images(p3); }, p3, "truncated");
  auto labels = idx_labels(30);
  labels.pop_back();
  const std::string p4 = write_gz("l.gz", labels);
  expect_io_error([&] { train::load_idx_labels(p4); }, p4, "truncated");
  const std::string p5 = write_plain("empty", {});
  expect_io_error([&] { train::load_idx_images(p5); }, p5, "truncated header");
}

TEST_F(IdxTest, TruncatedGzipStream) {
  // A valid gzip file cut in the middle of its compressed stream.
  const std::string full = write_gz("full.gz", idx_images(50, 28, 28));
  auto gz = read_file(full);
  gz.resize(gz.size() / 2);
  const std::string cut = write_plain("cut.gz", gz);
  expect_io_error([&] { train::load_idx_images(cut); }, cut, "truncated");
}

TEST_F(IdxTest, CorruptGzipData) {
  const std::string full = write_gz("full.gz", idx_images(50, 28, 28));
  auto gz = read_file(full);
  for (std::size_t i = gz.size() / 3; i < gz.size() / 3 + 64; ++i) gz[i] ^= 0x5a;
  const std::string bad = write_plain("bad.gz", gz);
  expect_io_error([&] { train::load_idx_images(bad); }, bad, "");
}

TEST_F(IdxTest, CountsDisagreeWithData) {
  // The header claims fewer images than the file holds: trailing data.
  auto bytes = idx_images(3, 2, 2);
  bytes.push_back(1);
  const std::string p1 = write_gz("extra.gz", bytes);
  expect_io_error([&] { train::load_idx_images(p1); }, p1, "unexpected data after");
  auto labels = idx_labels(5);
  labels.push_back(0);
  const std::string p2 = write_plain("extra_l", labels);
  expect_io_error([&] { train::load_idx_labels(p2); }, p2, "unexpected data after");
  // Zero counts and zero sizes.
  const std::string p3 = write_plain("zero", idx_images(0, 2, 2));
  expect_io_error([&] { train::load_idx_images(p3); }, p3, "0 images");
  const std::string p4 = write_plain("zero_rows", idx_images(1, 0, 2));
  expect_io_error([&] { train::load_idx_images(p4); }, p4, "bad image size");
}

TEST_F(IdxTest, LabelOutOfRange) {
  auto bytes = idx_labels(12);
  bytes[8 + 7] = 10;  // label of sample 7
  const std::string p = write_gz("l.gz", bytes);
  expect_io_error([&] { train::load_idx_labels(p); }, p, "label 10 at index 7 is out of range");
  // The same file is fine with more classes.
  EXPECT_EQ(train::load_idx_labels(p, 11).at(7), 10);
}

TEST_F(IdxTest, MissingFileNamesTheFileAndRank) {
  const std::string p = (dir_ / "nope.gz").string();
  try {
    train::load_idx_labels(p, 10, 3);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_EQ(e.rank(), 3);
    EXPECT_NE(std::string(e.what()).find("rank 3: " + p + ": cannot open"), std::string::npos) << e.what();
  }
}

TEST_F(IdxTest, FashionMnistDirectoryLayout) {
  // A miniature Fashion-MNIST: gzip train files, plain test files.
  write_gz("train-images-idx3-ubyte.gz", idx_images(20, 28, 28));
  write_gz("train-labels-idx1-ubyte.gz", idx_labels(20));
  write_plain("t10k-images-idx3-ubyte", idx_images(10, 28, 28));
  write_plain("t10k-labels-idx1-ubyte", idx_labels(10));
  const auto split = train::load_fashion_mnist(dir_.string());
  EXPECT_EQ(split.train.count, 20u);
  EXPECT_EQ(split.test.count, 10u);
  EXPECT_EQ(split.train.shape, (train::InputShape{1, 28, 28}));
  EXPECT_EQ(split.train.num_classes, 10);
  EXPECT_FLOAT_EQ(split.train.images[3], 3.0f / 255.0f);
  EXPECT_EQ(split.test.labels[9], 9);

  // Image and label counts disagree.
  write_plain("t10k-labels-idx1-ubyte", idx_labels(11));
  try {
    train::load_fashion_mnist(dir_.string(), 2);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_NE(e.message().find("holds 10 images but"), std::string::npos) << e.what();
    EXPECT_NE(e.message().find("holds 11 labels"), std::string::npos) << e.what();
  }
  // Wrong image size.
  write_plain("t10k-labels-idx1-ubyte", idx_labels(10));
  write_plain("t10k-images-idx3-ubyte", idx_images(10, 32, 32));
  expect_io_error([&] { train::load_fashion_mnist(dir_.string()); }, "t10k-images-idx3-ubyte", "28x28");
  // Missing files name the expected path.
  fs::remove(dir_ / "train-labels-idx1-ubyte.gz");
  expect_io_error([&] { train::load_fashion_mnist(dir_.string()); }, "train-labels-idx1-ubyte.gz",
                  "no such file");
}

TEST(FashionMnist, RealFilesWhenInstalled) {
  if (!fs::exists(fs::path(train::kFashionMnistDir) / "train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "Fashion-MNIST not installed in " << train::kFashionMnistDir
                 << " (Debian package dataset-fashion-mnist)";
  }
  const auto split = train::load_fashion_mnist();
  ASSERT_EQ(split.train.count, 60000u);
  ASSERT_EQ(split.test.count, 10000u);
  std::vector<int> per_class(10, 0);
  for (auto l : split.train.labels) ++per_class[static_cast<std::size_t>(l)];
  for (int c : per_class) EXPECT_EQ(c, 6000);
  // The documented constants are the training set's statistics.
  const auto stats = train::compute_normalization(split.train);
  const auto fixed = train::fashion_mnist_normalization();
  EXPECT_NEAR(stats.mean[0], fixed.mean[0], 5e-5);
  EXPECT_NEAR(stats.stddev[0], fixed.stddev[0], 5e-5);
}

TEST(Normalization, ZeroMeanUnitVarianceAndBackground) {
  train::Dataset d;
  d.count = 3;
  d.shape = {2, 1, 2};
  d.num_classes = 2;
  d.images = {0.0f, 1.0f, 5.0f, 5.0f, 2.0f, 3.0f, 7.0f, 9.0f, 4.0f, 5.0f, 6.0f, 10.0f};
  d.labels = {0, 1, 0};
  const auto n = train::compute_normalization(d);
  ASSERT_EQ(n.mean.size(), 2u);
  EXPECT_FLOAT_EQ(n.mean[0], 2.5f);  // channel 0: 0 1 2 3 4 5
  EXPECT_FLOAT_EQ(n.mean[1], 7.0f);  // channel 1: 5 5 7 9 6 10
  train::normalize(d, n);
  for (int c = 0; c < 2; ++c) {
    double s = 0, sq = 0;
    for (std::size_t i = 0; i < 3; ++i) {
      for (int j = 0; j < 2; ++j) {
        const double v = d.images[(i * 2 + c) * 2 + j];
        s += v;
        sq += v * v;
      }
    }
    EXPECT_NEAR(s / 6, 0.0, 1e-6);
    EXPECT_NEAR(sq / 6, 1.0, 1e-5);
  }
  EXPECT_FLOAT_EQ(d.background, -2.5f / n.stddev[0]);
  train::Normalization wrong{{0.0f}, {1.0f}};
  EXPECT_THROW(train::normalize(d, wrong), Error);
}

TEST(SyntheticData, DeterministicBalancedAndShaped) {
  const auto a = train::make_synthetic_data(2000, 500, 16, 7);
  const auto b = train::make_synthetic_data(2000, 500, 16, 7);
  const auto c = train::make_synthetic_data(2000, 500, 16, 8);
  EXPECT_EQ(a.train.shape, (train::InputShape{1, 1, 16}));
  EXPECT_EQ(a.train.num_classes, 2);
  EXPECT_EQ(a.train.images, b.train.images);
  EXPECT_EQ(a.test.labels, b.test.labels);
  EXPECT_NE(a.train.images, c.train.images);
  // Train and test samples come from different substreams.
  EXPECT_NE(std::vector<float>(a.train.images.begin(), a.train.images.begin() + 500 * 16), a.test.images);
  std::size_t ones = 0;
  for (auto l : a.train.labels) ones += static_cast<std::size_t>(l);
  // Labels are the side of a hyperplane through the origin: about half are ones.
  EXPECT_GT(ones, 850u);
  EXPECT_LT(ones, 1150u);
}
