// The runs of sparcol-bench: every operation of --op at every size of the sweep, timed against its
// baselines and checked (docs/bench.md), one result row each.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "options.hpp"
#include "sparcol/device/dispatch.hpp"
#include "sparcol/io/bench_table.hpp"
#include "timing.hpp"

namespace sparcol::bench {

using comm::Backend;

struct Setup {
  std::string backend, build, mpi_library;
  int ranks = 1;
  std::uint64_t seed = 0;
  std::string device = "cpu";  // cpu, or cuda
  std::string nccl_library;    // NCCL's version with --backend nccl
};

struct Row {
  Op op{};
  std::uint64_t bytes = 0, count = 0, k = 0;
  double density = 1.0;
  int ranks = 1;
  Stats time, base;          // base: the plain-MPI operation moving the same payload (= time for MPI ops)
  double allreduce_us = 0;   // MPI_Allreduce of the whole dense vector at this size (median)
  double sum_us = NAN;       // sparse-allgather only: the optional dense sum, timed on its own
  double payload_bytes = 0;  // S in algbw = S / t (docs/bench.md)
  double bus_factor = 0;     // busbw = algbw * bus_factor
  std::uint64_t sent_bytes = 0;
  std::int64_t wrong = -1;  // -1: not checked

  double algbw_gbs() const { return time.p50 > 0 ? payload_bytes / (time.p50 * 1e3) : 0.0; }
  double busbw_gbs() const { return algbw_gbs() * bus_factor; }
};

// Runs the sweep and hands every row to out (rank 0's writer; nullptr on other ranks). Returns the
// total wrong count (-1 when unchecked). ex: the executor of --device cuda (nullptr: host memory).
std::int64_t run_bench(Backend& b, const Config& c, const Setup& setup, io::BenchTable* out,
                       device::Exec* ex = nullptr);

}  // namespace sparcol::bench
