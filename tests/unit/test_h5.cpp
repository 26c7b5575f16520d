// sparcol::io HDF5 layer: round trips of attributes and datasets, extendable datasets across
// reopen/resize (the trainer's resume path), and errors that name the file and the object.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "sparcol/core/error.hpp"
#include "sparcol/io/h5.hpp"

namespace {

using sparcol::ErrorCode;
using sparcol::io::Dataset;
using sparcol::io::ExtendableOptions;
using sparcol::io::File;

// A fresh file name per test in the system temp directory, removed afterwards.
class H5Test : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = (std::filesystem::temp_directory_path() /
             ("sparcol_test_h5_" + std::to_string(::getpid()) + "_" + info->name() + ".h5"))
                .string();
    std::filesystem::remove(path_);
  }
  void TearDown() override { std::filesystem::remove(path_); }

  std::string path_;
};

// Runs fn, expects an Error of `code` whose message contains every one of `parts`.
template <typename Fn>
void expect_error(Fn&& fn, ErrorCode code, std::initializer_list<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "expected an error";
  } catch (const sparcol::Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    for (const auto& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << " lacks " << p;
  }
}

TEST_F(H5Test, AttributesRoundTripAndReplace) {
  {
    File f(path_, File::Mode::kCreate);
    f.set_attr("name", "sparcol-bench");
    f.set_attr("empty", std::string_view{});
    f.set_attr("ranks", std::int64_t{4});
    f.set_attr("big", std::numeric_limits<std::int64_t>::min());
    f.set_attr("density", 0.01);
    f.set_attr("nan", std::nan(""));
    auto g = f.create_group("grp");
    g.set_attr("unit", "us");
    g.set_attr("unit", std::int64_t{7});  // replacing changes the type too
    f.close();
  }
  File f(path_, File::Mode::kReadOnly);
  EXPECT_EQ(f.attr_string("name"), "sparcol-bench");
  EXPECT_EQ(f.attr_string("empty"), "");
  EXPECT_EQ(f.attr_int64("ranks"), 4);
  EXPECT_EQ(f.attr_int64("big"), std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(f.attr_double("density"), 0.01);
  EXPECT_TRUE(std::isnan(f.attr_double("nan")));
  EXPECT_TRUE(f.has_attr("ranks"));
  EXPECT_FALSE(f.has_attr("nope"));
  EXPECT_EQ(f.open_group("grp").attr_int64("unit"), 7);
  expect_error([&] { (void)f.attr_int64("name"); }, ErrorCode::kIo, {path_, "'name'", "not an integer"});
  expect_error([&] { (void)f.attr_string("density"); }, ErrorCode::kIo, {"'density'", "not a string"});
  expect_error([&] { (void)f.attr_double("missing"); }, ErrorCode::kIo, {"no attribute 'missing'", path_});
}

TEST_F(H5Test, WholeDatasetsOfEveryTypeRoundTrip) {
  const std::vector<double> d{1.5, -2.25, std::numeric_limits<double>::infinity()};
  const std::vector<float> fl{0.5f, 3.0f};
  const std::vector<std::int64_t> i{-1, 0, std::numeric_limits<std::int64_t>::max()};
  const std::vector<std::uint64_t> u{0, std::numeric_limits<std::uint64_t>::max()};
  {
    File f(path_, File::Mode::kCreate);
    auto g = f.create_group("op");
    g.write("d", d);
    g.write("f", fl);
    g.write("i", i);
    g.write("u", u);
    g.write("empty", std::vector<double>{});
    auto sub = g.create_group("sub");
    sub.write("x", std::vector<double>{42});
  }
  File f(path_, File::Mode::kReadOnly);
  EXPECT_TRUE(f.has("op/sub/x"));
  EXPECT_TRUE(f.has("/op/d"));
  EXPECT_FALSE(f.has("op/missing"));
  EXPECT_FALSE(f.has("missing/deeper"));  // intermediate group absent: false, not an error
  EXPECT_EQ(f.read<double>("op/d"), d);
  EXPECT_EQ(f.read<float>("op/f"), fl);
  EXPECT_EQ(f.read<std::int64_t>("op/i"), i);
  EXPECT_EQ(f.read<std::uint64_t>("op/u"), u);
  EXPECT_TRUE(f.read<double>("op/empty").empty());
  const Dataset ds = f.open_dataset("op/d");
  EXPECT_EQ(ds.rank(), 1);
  EXPECT_EQ(ds.rows(), 3u);
  EXPECT_EQ(ds.type_name(), "double");
  EXPECT_FALSE(ds.extendable());
  EXPECT_EQ(f.open_group("op").open_group("sub").read<double>("x"), std::vector<double>{42});
  // Strict types: no silent conversion.
  expect_error([&] { (void)f.read<std::int64_t>("op/d"); }, ErrorCode::kIo,
               {"op/d", "stores double", "int64"});
}

TEST_F(H5Test, ExtendableDatasetsAppendReopenAndResize) {
  std::mt19937_64 gen(std::random_device{}());
  const std::uint64_t seed = gen();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  // At least 2 columns: the bad append below (cols + 1 values) must not be a whole number of rows.
  const std::uint64_t cols = 2 + rng() % 8;
  const std::uint64_t chunk = 1 + rng() % 5;
  std::vector<double> rows_written;
  std::vector<std::int64_t> steps;
  {
    File f(path_, File::Mode::kCreate);
    auto trace = f.create_group("trace");
    Dataset m = trace.create_extendable<double>("m", ExtendableOptions{cols, chunk, 1});
    Dataset t = trace.create_extendable<std::int64_t>("step");
    EXPECT_TRUE(m.extendable());
    EXPECT_EQ(m.rank(), 2);
    EXPECT_EQ(m.cols(), cols);
    for (std::int64_t s = 0; s < 20; ++s) {
      std::vector<double> row(cols);
      for (auto& x : row) x = static_cast<double>(static_cast<std::int64_t>(rng() % 1000) - 500) / 8.0;
      m.append(row);
      t.append(std::vector<std::int64_t>{s});
      rows_written.insert(rows_written.end(), row.begin(), row.end());
      steps.push_back(s);
      if (s % 5 == 4) m.flush();
    }
    // Several rows at once, and zero rows (a no-op).
    std::vector<double> two(2 * cols, 1.25);
    m.append(two);
    m.append(std::vector<double>{});
    rows_written.insert(rows_written.end(), two.begin(), two.end());
    EXPECT_EQ(m.rows(), 22u);
    expect_error([&] { m.append(std::vector<double>(cols + 1, 0.0)); }, ErrorCode::kIo,
                 {"trace/m", "whole number"});
    expect_error([&] { t.append(std::vector<double>{1.0}); }, ErrorCode::kIo, {"trace/step", "stores int64"});
  }
  // Resume: reopen read-write, drop the rows after step 11, append again.
  {
    File f(path_, File::Mode::kReadWrite);
    Dataset m = f.open_dataset("trace/m");
    Dataset t = f.open_dataset("trace/step");
    EXPECT_EQ(m.rows(), 22u);
    EXPECT_EQ(m.read<double>(), rows_written);
    EXPECT_EQ(t.read<std::int64_t>(), steps);
    EXPECT_EQ(m.read_rows<double>(3, 2),
              std::vector<double>(rows_written.begin() + 3 * static_cast<std::ptrdiff_t>(cols),
                                  rows_written.begin() + 5 * static_cast<std::ptrdiff_t>(cols)));
    m.resize(12);
    t.resize(12);
    rows_written.resize(12 * cols);
    steps.resize(12);
    std::vector<double> row(cols, -3.0);
    m.append(row);
    t.append(std::vector<std::int64_t>{99});
    rows_written.insert(rows_written.end(), row.begin(), row.end());
    steps.push_back(99);
    expect_error([&] { (void)m.read_rows<double>(10, 4); }, ErrorCode::kIo, {"trace/m", "outside"});
  }
  File f(path_, File::Mode::kReadOnly);
  EXPECT_EQ(f.read<double>("trace/m"), rows_written);
  EXPECT_EQ(f.read<std::int64_t>("trace/step"), steps);
}

TEST_F(H5Test, ErrorsNameTheFileAndObject) {
  const std::string missing = path_ + ".missing";
  expect_error([&] { File f(missing, File::Mode::kReadOnly); }, ErrorCode::kIo, {"no such file", missing});
  expect_error([&] { File f("/proc/sparcol-cannot-create/x.h5", File::Mode::kCreate); }, ErrorCode::kIo,
               {"create file", "sparcol-cannot-create"});
  File f(path_, File::Mode::kCreate);
  f.write("x", std::vector<double>{1});
  expect_error([&] { f.write("x", std::vector<double>{2}); }, ErrorCode::kIo, {path_ + ":/x", "exists"});
  expect_error([&] { (void)f.open_group("nope"); }, ErrorCode::kIo, {"no group", path_ + ":/nope"});
  expect_error([&] { (void)f.open_dataset("a/b"); }, ErrorCode::kIo, {"no dataset", path_ + ":/a/b"});
  expect_error([&] { f.open_dataset("x").append(std::vector<double>{3}); }, ErrorCode::kIo,
               {"not extendable"});
  expect_error([&] { f.create_group("x"); }, ErrorCode::kIo, {"exists"});
  expect_error(
      [&] {
        (void)f.create_extendable<double>("y", ExtendableOptions{0, 0, 12});
      },
      ErrorCode::kInvalidArgument, {"deflate"});
  // require_group opens what exists and creates what does not.
  f.require_group("g").set_attr("a", std::int64_t{1});
  EXPECT_EQ(f.require_group("g").attr_int64("a"), 1);
  f.remove("x");
  EXPECT_FALSE(f.has("x"));
}

TEST_F(H5Test, ObjectsOutliveTheirFileHandle) {
  Dataset d = [&] {
    File f(path_, File::Mode::kCreate);
    return f.create_extendable<std::uint64_t>("u");
  }();
  d.append(std::vector<std::uint64_t>{1, 2, 3});
  d.flush();
  EXPECT_EQ(d.read<std::uint64_t>(), (std::vector<std::uint64_t>{1, 2, 3}));
}

}  // namespace
