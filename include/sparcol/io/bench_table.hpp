// The results of sparcol-bench in its four forms, written in one place (docs/bench.md): the table on
// stdout in the conventions of nccl-tests (a "#" header, a row per size and operation, a footer with
// the average busbw per operation and the wrong-element count), and, when asked for, CSV (a row per
// result, flushed as it comes), JSON (written whole at the end) and HDF5 (a group per operation, an
// extendable dataset per column, appended and flushed per row, so an interrupted sweep leaves every
// finished size readable). Only one rank writes; this layer knows nothing of ranks or backends.
#pragma once

#include <cmath>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace sparcol::io {

class File;

// Everything the header lines and file attributes say about a sweep.
struct BenchSetup {
  std::string build, backend, mpi_library, device = "cpu", nccl_library;
  int ranks = 1;
  std::uint64_t seed = 0;
  std::vector<std::string> ops;  // in the order of --op
  int iters = 0, warmup = 0, check = 0;
  double density = 0;  // the density asked for (k == 0)
  std::uint64_t k = 0;
  std::uint64_t min_bytes = 0, max_bytes = 0, step_factor = 0;
  bool collective_check = true, nan_injected = false;
  std::string csv, json, h5;  // output files, "" = none
};

struct BenchStats {
  double p50 = 0, min = 0, p99 = 0;  // microseconds
};

// One result: an operation at one size.
struct BenchRow {
  std::string op;
  bool has_baseline = true;  // false for the plain backend operations, which are their own baseline
  std::uint64_t bytes = 0, count = 0, k = 0;
  double density = 1.0;
  int ranks = 1;
  BenchStats time, base;
  double allreduce_us = 0;  // NaN: not measured (--no-xref)
  double sum_us = NAN;      // NaN: not measured
  double algbw_gbs = 0, busbw_gbs = 0;
  std::uint64_t sent_bytes = 0;
  std::int64_t wrong = -1;  // -1: not checked
};

class BenchTable {
 public:
  // Opens (truncates) the output files; kIo naming the path when one cannot be written.
  explicit BenchTable(BenchSetup setup);
  ~BenchTable();
  BenchTable(const BenchTable&) = delete;
  BenchTable& operator=(const BenchTable&) = delete;

  void header();
  void row(const BenchRow& r);
  // Prints the footer and closes the files; returns the total wrong count (-1: nothing checked).
  std::int64_t finish();

 private:
  void make_group(const std::string& op);
  void append_h5(const BenchRow& r);
  void write_json();

  BenchSetup s_;
  std::ofstream csv_, json_;
  std::unique_ptr<File> h5_;
  std::vector<BenchRow> rows_;
};

}  // namespace sparcol::io
