// sparcol-bench: the collective microbenchmark, in the conventions of nccl-tests.
//
// For each size of a sweep (-b, -e, -f; the bytes of a dense float32 vector of d elements) and each
// operation (--op) it times the operation (-w warm-up runs, then -n timed runs, each after a barrier;
// time = median over runs of the maximum over ranks), checks the result exactly (-c 1), and prints one
// table row on rank 0. Compressed operations are judged twice: against the plain-MPI operation that
// moves the same payload (MPI_Allreduce of the same k-float block for rbgs, MPI_Allgatherv of the same
// pairs for sparse-allgather: column base(us)), and against MPI_Allreduce of the whole dense vector.
// Each operation is timed interleaved with both references (time_interleaved), so the ratios of a row
// are measured under the same machine conditions.
// docs/bench.md defines every flag, column, bandwidth, the HDF5 layout (a public contract) and the exit
// codes.
//
// Data: integer-valued floats given by a formula in (seed, rank, index) (input_value below), so every
// rank computes the exact expected result itself and sums are exact in any order.
//
// Device memory (--device cuda): every buffer of every operation lives on the rank's GPU (one per
// rank, chosen by local rank), the collectives run their device path (device/dispatch.hpp) and the
// plain operations are the backend's on device memory: MPI with staging through pinned host memory
// (--backend mpi), or NCCL (--backend nccl, where they are ncclAllReduce and ncclBroadcast-based
// all-gather-v and their rows are named nccl-allreduce and nccl-allgatherv). Inputs are written and
// results read back outside the timed region.
//
// Robustness: flags are validated on every rank before any collective; then all ranks exchange their
// verdict and a canonical form of their arguments, so a rank that rejects its flags, or ranks given
// different flags, end every rank with a message and the same exit status (no hang, no MPI_Abort).
// Errors after that point (a timeout, a dead peer) print the message and MPI_Abort with the error's
// exit code.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "sparcol/coll/rbgs_allreduce.hpp"
#include "sparcol/coll/ring_allreduce.hpp"
#include "sparcol/coll/sparse_allgather.hpp"
#include "sparcol/comm/loopback.hpp"
#include "sparcol/comm/make_backend.hpp"
#include "sparcol/comm/mpi_backend.hpp"
#include "sparcol/config.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/core/types.hpp"
#include "sparcol/device/device.hpp"
#include "sparcol/device/dispatch.hpp"
#include "sparcol/io/bench_table.hpp"

#ifndef SPARCOL_BUILD_TYPE
#define SPARCOL_BUILD_TYPE "unknown"
#endif

namespace {

using sparcol::Error;
using sparcol::ErrorCode;
using sparcol::Index;
using sparcol::comm::Backend;

// Exit status when some result was wrong (errors use sparcol::exit_code(), 2 and up).
constexpr int kExitWrong = 1;

// Seeds stay below 2^53 so that JSON readers (doubles) and the HDF5 int64 attribute hold them exactly.
constexpr std::uint64_t kSeedLimit = std::uint64_t{1} << 53;

// The operations, in the order rows are printed. The names are the --op values and the HDF5 groups.
enum class Op { kDenseRing, kRbgs, kSparseAllgather, kMpiAllreduce, kMpiAllgatherv };
constexpr Op kAllOps[] = {Op::kDenseRing, Op::kRbgs, Op::kSparseAllgather, Op::kMpiAllreduce,
                          Op::kMpiAllgatherv};

// The plain operations are named after the library that runs them: mpi-* with --backend mpi or
// loopback, nccl-* with --backend nccl. parse() sets this once, before anything is named.
bool g_nccl_names = false;

const char* op_name(Op op, bool nccl) {
  switch (op) {
    case Op::kDenseRing:
      return "dense-ring";
    case Op::kRbgs:
      return "rbgs";
    case Op::kSparseAllgather:
      return "sparse-allgather";
    case Op::kMpiAllreduce:
      return nccl ? "nccl-allreduce" : "mpi-allreduce";
    case Op::kMpiAllgatherv:
      return nccl ? "nccl-allgatherv" : "mpi-allgatherv";
  }
  return "?";
}
const char* op_name(Op op) {
  return op_name(op, g_nccl_names);
}

// ------------------------------------------------------------------------------------------------
// Configuration
// ------------------------------------------------------------------------------------------------

struct Config {
  std::uint64_t min_bytes = 0, max_bytes = 0;
  std::uint64_t factor = 2;
  int iters = 20;
  int warmup = 5;
  int check = 1;
  std::vector<Op> ops;
  double density = 0.01;
  std::uint64_t k = 0;  // pairs / block elements per rank when given with -k (0: use density)
  std::string backend = "mpi";
  std::string device = "cpu";  // where the buffers live: cpu (host memory) or cuda (the rank's GPU)
  int ranks = 0;               // loopback world size (0: not given)
  std::uint64_t seed = 0;      // 0: rank 0 draws one
  double timeout_s = -1;       // < 0: the backend's default
  bool check_collectives = true;
  bool nan = false;
  bool xref = true;  // time MPI_Allreduce of the whole vector beside every operation (x-allred)
#ifdef SPARCOL_BENCH_TEST_HOOKS
  bool corrupt = false;  // SPARCOL_BENCH_CORRUPT=1: the last rank spoils one result element (tests the check)
#endif
  std::string csv, json, h5;

  // Everything ranks must agree on, as "key=value" lines (output file names are rank 0's business).
  std::vector<std::string> canonical() const {
    std::vector<std::string> out;
    auto add = [&](const char* key, const std::string& v) { out.push_back(std::string(key) + "=" + v); };
    add("-b", std::to_string(min_bytes));
    add("-e", std::to_string(max_bytes));
    add("-f", std::to_string(factor));
    add("-n", std::to_string(iters));
    add("-w", std::to_string(warmup));
    add("-c", std::to_string(check));
    std::string o;
    for (Op op : ops) o += std::string(o.empty() ? "" : ",") + op_name(op);
    add("--op", o);
    char dens[64];
    std::snprintf(dens, sizeof dens, "%.17g", density);
    add("--density", dens);
    add("-k", std::to_string(k));
    add("--backend", backend);
    add("--device", device);
    add("--seed", std::to_string(seed));
    char to[64];
    std::snprintf(to, sizeof to, "%.17g", timeout_s);
    add("--timeout", to);
    add("--no-check-collectives", check_collectives ? "0" : "1");
    add("--nan", nan ? "1" : "0");
    add("--no-xref", xref ? "0" : "1");
#ifdef SPARCOL_BENCH_TEST_HOOKS
    add("SPARCOL_BENCH_CORRUPT", corrupt ? "1" : "0");
#endif
    return out;
  }
};

// nccl-tests sizes: a whole number of bytes with an optional K, M or G suffix (powers of 1024).
std::uint64_t parse_size(const char* flag, const std::string& text) {
  auto bad = [&](const std::string& why) -> Error {
    return Error(ErrorCode::kInvalidArgument, -1,
                 std::string("invalid size for ") + flag + ": '" + text + "' " + why +
                     " (expected a whole number of bytes with an optional K, M or G suffix, e.g. 64M)");
  };
  if (!text.empty() && text[0] == '-') throw bad("is negative");
  std::size_t i = 0;
  std::uint64_t v = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    const auto digit = static_cast<std::uint64_t>(text[i] - '0');
    if (v > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) throw bad("is too large");
    v = v * 10 + digit;
    ++i;
  }
  if (i == 0) throw bad("is not a number");
  if (i < text.size() && (text[i] == '.' || text[i] == 'e' || text[i] == 'E'))
    throw bad("is not a whole number");
  std::uint64_t mult = 1;
  if (i < text.size()) {
    switch (text[i]) {
      case 'K':
      case 'k':
        mult = std::uint64_t{1} << 10;
        break;
      case 'M':
      case 'm':
        mult = std::uint64_t{1} << 20;
        break;
      case 'G':
      case 'g':
        mult = std::uint64_t{1} << 30;
        break;
      default:
        throw bad("has an unknown suffix");
    }
    if (i + 1 != text.size()) throw bad("has trailing characters");
  }
  if (v > std::numeric_limits<std::uint64_t>::max() / mult) throw bad("is too large");
  return v * mult;
}

// Elements per rank for the sparse operations at d elements: -k if given, else max(1, floor(density d))
// (ALGORITHMS.md 1.3).
std::uint64_t pairs_for(const Config& c, std::uint64_t d) {
  if (c.k != 0) return c.k;
  return std::max<std::uint64_t>(1,
                                 static_cast<std::uint64_t>(std::floor(c.density * static_cast<double>(d))));
}

// The sweep: min, min*f, ... up to max; sizes are rounded down to whole float32 elements.
std::vector<std::uint64_t> sweep(const Config& c) {
  std::vector<std::uint64_t> sizes;
  for (std::uint64_t s = c.min_bytes; s <= c.max_bytes;) {
    sizes.push_back(s / sizeof(float) * sizeof(float));
    if (s > c.max_bytes / c.factor) break;  // next step would pass max (or overflow)
    s *= c.factor;
  }
  return sizes;
}

void validate(const Config& c) {
  auto fail = [](const std::string& m) { throw Error(ErrorCode::kInvalidArgument, -1, m); };
  if (c.min_bytes < sizeof(float))
    fail("-b must be at least 4 bytes (one float32 element), got " + std::to_string(c.min_bytes));
  if (c.max_bytes < c.min_bytes)
    fail("-e (" + std::to_string(c.max_bytes) + " bytes) must not be smaller than -b (" +
         std::to_string(c.min_bytes) + " bytes)");
  if (c.max_bytes / sizeof(float) > sparcol::kMaxElements)
    fail("-e " + std::to_string(c.max_bytes) +
         " bytes exceeds the largest vector sparcol supports (2^32-1 float32 elements)");
  if (c.factor < 2) fail("-f must be at least 2, got " + std::to_string(c.factor));
  if (c.iters < 1) fail("-n must be at least 1, got " + std::to_string(c.iters));
  if (c.warmup < 0) fail("-w must not be negative, got " + std::to_string(c.warmup));
  if (c.check != 0 && c.check != 1) fail("-c must be 0 or 1, got " + std::to_string(c.check));
  if (!(c.density > 0.0 && c.density <= 1.0)) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%g", c.density);
    fail(std::string("--density must lie in (0, 1], got ") + buf);
  }
  if (c.k != 0) {
    const std::uint64_t d_min = c.min_bytes / sizeof(float);
    if (c.k > d_min)
      fail("-k " + std::to_string(c.k) + " exceeds the vector length d = " + std::to_string(d_min) +
           " of the smallest size (-b " + std::to_string(c.min_bytes) + " bytes)");
  }
  if (c.backend != "mpi" && c.backend != "loopback" && c.backend != "nccl")
    fail("--backend must be 'mpi', 'nccl' or 'loopback', got '" + c.backend + "'");
  if (c.backend == "nccl" && !sparcol::comm::backend_compiled("nccl"))
    fail("--backend nccl: this build of sparcol has no NCCL (it was not found, or CUDA was not)");
  if (c.device != "cpu" && c.device != "cuda")
    fail("--device must be 'cpu' or 'cuda', got '" + c.device + "'");
  if (c.backend == "nccl" && c.device != "cuda")
    fail("--backend nccl moves device memory: add --device cuda");
  if (c.backend == "loopback" && c.device == "cuda")
    fail("--backend loopback moves host memory only: use --backend mpi or nccl with --device cuda");
  if (c.backend == "loopback" && c.ranks < 1) fail("--backend loopback needs --ranks N (N >= 1)");
  if (c.ranks < 0) fail("--ranks must be positive, got " + std::to_string(c.ranks));
  if (c.timeout_s < 0 && c.timeout_s != -1) fail("--timeout must be >= 0 seconds (0: wait forever)");
  if (c.ops.empty()) fail("--op names no operation");
  if (c.seed >= kSeedLimit) fail("--seed must be below 2^53 = " + std::to_string(kSeedLimit));
}

// Outcome of parsing on one rank: run, stop successfully (--help, --version), or an error.
struct Parsed {
  Config config;
  int status = -1;      // -1: run; otherwise exit with it
  std::string message;  // text for stdout (help) or the error message
  bool is_error = false;
};

Parsed parse(int argc, char** argv) {
  Parsed p;
  Config& c = p.config;
  CLI::App app{"sparcol-bench: times sparcol's collectives against plain MPI (see docs/bench.md)",
               "sparcol-bench"};
  app.set_version_flag("--version", std::string("sparcol-bench ") + SPARCOL_VERSION_STRING);
  app.option_defaults()->always_capture_default();
  std::string b = "8", e = "64M";
  std::vector<std::string> ops{"all"};
  // Signed on purpose: CLI11 would wrap "-2" into a huge unsigned value instead of rejecting it.
  std::int64_t factor = 2, k = 0, seed = 0;
  app.add_option("-b,--minbytes", b,
                 "Smallest size: bytes of the dense float32 vector (K, M, G suffixes: powers of 1024)");
  app.add_option("-e,--maxbytes", e, "Largest size (same syntax)");
  app.add_option("-f,--stepfactor", factor, "Multiply the size by this between rows");
  app.add_option("-n,--iters", c.iters, "Timed runs per size and operation");
  app.add_option("-w,--warmup_iters", c.warmup, "Untimed warm-up runs before them");
  app.add_option("-c,--check", c.check,
                 "1: check every result exactly and count wrong elements; 0: skip (#wrong shows N/A)");
  app.add_option(
         "--op", ops,
         "Operations, comma-separated or repeated: dense-ring, rbgs, sparse-allgather, mpi-allreduce, "
         "mpi-allgatherv (nccl-allreduce, nccl-allgatherv with --backend nccl), all")
      ->delimiter(',');
  auto* dens =
      app.add_option("--density", c.density,
                     "Fraction rho in (0, 1] for rbgs and the sparse ops: k = max(1, floor(rho d)) per rank");
  app.add_option("-k,--pairs", k, "Fixed k per rank instead of --density (k <= d at every size)")
      ->excludes(dens);
  app.add_option("--backend", c.backend,
                 "mpi, nccl (needs --device cuda), or loopback (threads as ranks in this one process; needs "
                 "--ranks)");
  app.add_option("--device", c.device,
                 "cpu: buffers in host memory; cuda: on the rank's GPU (its local rank), the collectives' "
                 "device path");
  app.add_option("--ranks", c.ranks, "Ranks for --backend loopback");
  app.add_option("--seed", seed, "Data seed (0: rank 0 draws a fresh one; the header prints it)");
  app.add_option("--timeout", c.timeout_s,
                 "Seconds a blocking wait may take before failing (0: forever; -1: the backend's default, "
                 "300 s or SPARCOL_TIMEOUT_S)");
  bool no_check_collectives = false;
  app.add_flag("--no-check-collectives", no_check_collectives,
               "Turn off the call-fingerprint check before each sparcol collective");
  app.add_flag("--nan", c.nan,
               "Rank 0 puts a NaN into each operation's input; the check expects it to propagate");
  bool no_xref = false;
  app.add_flag("--no-xref", no_xref,
               "Do not time MPI_Allreduce of the whole vector beside rbgs, sparse-allgather and "
               "mpi-allgatherv (x-allred shows N/A): halves sweeps on slow networks; dense-ring keeps it "
               "(its baseline)");
  app.add_option("--csv", c.csv, "Also write the results as CSV to this file");
  app.add_option("--json", c.json, "Also write the results as JSON to this file");
  app.add_option("--h5", c.h5, "Also write the results to this HDF5 file (layout: docs/bench.md)");
  try {
    app.parse(argc, argv);
    c.check_collectives = !no_check_collectives;
    c.xref = !no_xref;
#ifdef SPARCOL_BENCH_TEST_HOOKS
    if (const char* env = std::getenv("SPARCOL_BENCH_CORRUPT"); env != nullptr && std::string(env) == "1")
      c.corrupt = true;
#endif
    auto non_negative = [](const char* flag, std::int64_t v) {
      if (v < 0)
        throw Error(ErrorCode::kInvalidArgument, -1,
                    std::string(flag) + " must not be negative, got " + std::to_string(v));
      return static_cast<std::uint64_t>(v);
    };
    c.factor = non_negative("-f", factor);
    c.k = non_negative("-k", k);
    c.seed = non_negative("--seed", seed);
    if (app.count("-k") != 0 && k == 0) throw Error(ErrorCode::kInvalidArgument, -1, "-k must be at least 1");
    c.min_bytes = parse_size("-b", b);
    c.max_bytes = parse_size("-e", e);
    g_nccl_names = c.backend == "nccl";
    for (const auto& name : ops) {
      bool found = false;
      for (Op op : kAllOps) {
        if (name == "all" || name == op_name(op)) {
          if (std::find(c.ops.begin(), c.ops.end(), op) == c.ops.end()) c.ops.push_back(op);
          found = true;
        } else if (name == op_name(op, !g_nccl_names)) {
          throw Error(ErrorCode::kInvalidArgument, -1,
                      "--op " + name + " needs --backend " + (g_nccl_names ? "mpi" : "nccl") +
                          " (with --backend " + c.backend + " it is " + op_name(op) + ")");
        }
      }
      if (!found) {
        throw Error(ErrorCode::kInvalidArgument, -1,
                    "unknown --op '" + name + "' (choose from dense-ring, rbgs, sparse-allgather, " +
                        op_name(Op::kMpiAllreduce) + ", " + op_name(Op::kMpiAllgatherv) + ", all)");
      }
    }
    std::sort(c.ops.begin(), c.ops.end());
    validate(c);
    // Per rank: the GPU (the agreement below ends every rank if one lacks it).
    if (c.device == "cuda" && !sparcol::device::has_gpu())
      throw Error(ErrorCode::kCuda, -1,
                  "--device cuda: no CUDA device (" + sparcol::device::no_gpu_reason() + ")");
  } catch (const CLI::CallForHelp&) {
    p.status = 0;
    p.message = app.help();
  } catch (const CLI::CallForVersion&) {
    p.status = 0;
    p.message = std::string("sparcol-bench ") + SPARCOL_VERSION_STRING + " (" + SPARCOL_BUILD_TYPE + ")\n";
  } catch (const CLI::ParseError& err) {
    p.status = sparcol::exit_code(ErrorCode::kInvalidArgument);
    p.is_error = true;
    p.message = std::string(err.what()) + " (see --help)";
  } catch (const Error& err) {
    p.status = sparcol::exit_code(err.code());
    p.is_error = true;
    p.message = err.message();
  }
  return p;
}

// ------------------------------------------------------------------------------------------------
// Data and checks
// ------------------------------------------------------------------------------------------------

// Integer-valued input in [-16, 16] for (seed, rank, index): a 64-bit mix (splitmix64 finaliser), so
// any element of any rank can be recomputed anywhere. Sums over up to 2^19 ranks are exact in float32.
inline float input_value(std::uint64_t seed, int rank, std::uint64_t i) {
  std::uint64_t x = seed ^ (static_cast<std::uint64_t>(rank) << 40) ^ (i * 0xD1B54A32D192ED03ull);
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  x ^= x >> 31;
  return static_cast<float>(static_cast<int>(x % 33) - 16);
}

// The exact sum over ranks at index i.
inline float expected_sum(std::uint64_t seed, int ranks, std::uint64_t i) {
  float s = 0;
  for (int r = 0; r < ranks; ++r) s += input_value(seed, r, i);
  return s;
}

// Equal, with NaN equal to NaN (the --nan check expects NaN to propagate).
inline bool same(float got, float want) {
  return got == want || (std::isnan(got) && std::isnan(want));
}

// Rank r's k sparse indices: distinct and ascending (as a top-k selection sorted by index yields),
// one uniformly placed index in each of k equal strata of [0, d).
void sparse_indices(std::uint64_t seed, int rank, std::uint64_t d, std::uint64_t k, std::vector<Index>& out) {
  out.resize(k);
  for (std::uint64_t j = 0; j < k; ++j) {
    const std::uint64_t lo = j * d / k, hi = (j + 1) * d / k;  // hi > lo because k <= d
    const std::uint64_t h =
        sparcol::counter_u64(seed, j, static_cast<std::uint32_t>(rank), sparcol::kStreamUser);
    out[j] = static_cast<Index>(lo + sparcol::uniform_below(h, hi - lo));
  }
}

void sparse_values(std::uint64_t seed, int rank, const std::vector<Index>& idx, bool nan,
                   std::vector<float>& out) {
  out.resize(idx.size());
  for (std::size_t j = 0; j < idx.size(); ++j) out[j] = input_value(seed, rank, idx[j]);
  if (nan && rank == 0 && !out.empty()) out[0] = std::numeric_limits<float>::quiet_NaN();
}

// ------------------------------------------------------------------------------------------------
// Timing
// ------------------------------------------------------------------------------------------------

struct Stats {
  double p50 = 0, min = 0, p99 = 0;  // microseconds, over runs, of the maximum over ranks
};

// Per run: the slowest rank's time. Gathered outside the timed region. (Host values: through the
// control backend, which is the backend itself except for NCCL.)
std::vector<double> max_over_ranks(Backend& b, const std::vector<double>& mine) {
  const auto n = static_cast<std::size_t>(b.size());
  std::vector<double> all(n * mine.size());
  std::vector<std::size_t> bytes(n, mine.size() * sizeof(double));
  b.control().allgatherv(mine.data(), all.data(), bytes);
  std::vector<double> out(mine.size(), 0.0);
  for (std::size_t r = 0; r < n; ++r)
    for (std::size_t i = 0; i < mine.size(); ++i) out[i] = std::max(out[i], all[r * mine.size() + i]);
  return out;
}

std::uint64_t max_over_ranks_u64(Backend& b, std::uint64_t mine) {
  const auto n = static_cast<std::size_t>(b.size());
  std::vector<std::uint64_t> all(n);
  std::vector<std::size_t> bytes(n, sizeof(std::uint64_t));
  b.control().allgatherv(&mine, all.data(), bytes);
  return *std::max_element(all.begin(), all.end());
}

double percentile(std::vector<double> sorted_copy, double q) {
  std::sort(sorted_copy.begin(), sorted_copy.end());
  const double pos = q * static_cast<double>(sorted_copy.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const auto hi = std::min(lo + 1, sorted_copy.size() - 1);
  return sorted_copy[lo] + (pos - static_cast<double>(lo)) * (sorted_copy[hi] - sorted_copy[lo]);
}

// One operation to time: reset(step) runs untimed before each run(step); `step` counts every run of
// the operation from 0 (warm-up included).
struct Timed {
  using Fn = std::function<void(std::uint64_t)>;
  Fn reset, run;
};

struct Timing {
  Stats stats;
  std::uint64_t sent_per_run = 0;  // bytes this rank passed to the backend's isend per run, max over ranks
};

// Times the operations interleaved: in every step each operation runs once (reset, barrier, timed run),
// in an order that rotates from step to step. An operation and its baseline thus see the same machine
// conditions (load from other processes on shared cores drifts over seconds) and neither always runs
// first. Warm-up steps are run the same way and not recorded.
std::vector<Timing> time_interleaved(Backend& b, const Config& c, const std::vector<Timed>& ops) {
  using Clock = std::chrono::steady_clock;
  const std::size_t n = ops.size();
  std::vector<std::vector<double>> t(n, std::vector<double>(static_cast<std::size_t>(c.iters)));
  std::vector<std::uint64_t> sent(n, 0);
  // Bytes this rank passed to isend, on the backend and (NCCL) on its control backend (fingerprints).
  Backend& ctl = b.control();
  auto sent_now = [&] { return b.bytes_sent() + (&ctl != &b ? ctl.bytes_sent() : 0); };
  const int total = c.warmup + c.iters;
  for (int step = 0; step < total; ++step) {
    const auto st = static_cast<std::uint64_t>(step);
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t j = (st + i) % n;
      ops[j].reset(st);
      b.barrier();
      const std::uint64_t sent0 = sent_now();
      const auto t0 = Clock::now();
      ops[j].run(st);
      const auto t1 = Clock::now();
      sent[j] += sent_now() - sent0;
      if (step >= c.warmup)
        t[j][static_cast<std::size_t>(step - c.warmup)] =
            std::chrono::duration<double, std::micro>(t1 - t0).count();
    }
  }
  std::vector<Timing> out(n);
  for (std::size_t j = 0; j < n; ++j) {
    const auto worst = max_over_ranks(b, t[j]);
    out[j].stats = Stats{percentile(worst, 0.5), percentile(worst, 0.0), percentile(worst, 0.99)};
    out[j].sent_per_run = max_over_ranks_u64(b, sent[j] / static_cast<std::uint64_t>(total));
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// One row of results
// ------------------------------------------------------------------------------------------------

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

// Sum over ranks of a per-rank count (wrong elements), exact as long as it fits in a double.
std::int64_t sum_over_ranks(Backend& b, std::uint64_t mine) {
  const auto n = static_cast<std::size_t>(b.size());
  std::vector<std::uint64_t> all(n);
  std::vector<std::size_t> bytes(n, sizeof(std::uint64_t));
  b.control().allgatherv(&mine, all.data(), bytes);
  std::uint64_t s = 0;
  for (auto x : all) s += x;
  return static_cast<std::int64_t>(s);
}

// ------------------------------------------------------------------------------------------------
// The operations at one size
// ------------------------------------------------------------------------------------------------

// A vector the operations work on: host memory, or the executor's device memory with --device cuda.
// Inputs are built on the host and copied in (untimed); results are copied out for the check.
template <class T>
class Mem {
 public:
  Mem(sparcol::device::Exec* ex, std::size_t n) : ex_(ex) {
    if (ex_ != nullptr) {
      dev_.assign(*ex_, n, "sparcol-bench buffer");
    } else {
      host_.resize(n);
    }
  }
  T* data() { return ex_ != nullptr ? dev_.data() : host_.data(); }
  std::size_t size() const { return ex_ != nullptr ? static_cast<std::size_t>(dev_.size()) : host_.size(); }
  void set(const std::vector<T>& h) { set_range(0, h.data(), h.size()); }
  void set_range(std::size_t off, const T* h, std::size_t n) {
    if (ex_ != nullptr) {
      ex_->upload(dev_.data() + off, h, n * sizeof(T));
    } else {
      std::copy(h, h + n, host_.begin() + static_cast<std::ptrdiff_t>(off));
    }
  }
  std::vector<T> get() const { return get_range(ex_ != nullptr ? dev_.data() : host_.data(), size()); }
  // n elements at p (this executor's memory) as a host vector.
  std::vector<T> get_range(const T* p, std::size_t n) const {
    if (ex_ == nullptr) return std::vector<T>(p, p + n);
    std::vector<T> h(n);
    ex_->download(h.data(), p, n * sizeof(T));
    return h;
  }
  // this[off, off + n) <- src[off, off + n), finished when this returns (the caller times what follows).
  void copy_from(Mem& src, std::size_t off, std::size_t n) {
    if (n == 0) return;
    if (ex_ != nullptr) {
      ex_->copy(dev_.data() + off, src.data() + off, n * sizeof(T));
      ex_->synchronize();
    } else {
      std::copy(src.host_.begin() + static_cast<std::ptrdiff_t>(off),
                src.host_.begin() + static_cast<std::ptrdiff_t>(off + n),
                host_.begin() + static_cast<std::ptrdiff_t>(off));
    }
  }
  void copy_from(Mem& src) { copy_from(src, 0, size()); }

 private:
  sparcol::device::Exec* ex_;
  std::vector<T> host_;
  sparcol::device::Buffer<T> dev_;
};

class SizeBench {
 public:
  SizeBench(Backend& b, const Config& c, std::uint64_t seed, std::uint64_t bytes, sparcol::device::Exec* ex)
      : b_(b),
        c_(c),
        ex_(ex),
        seed_(seed),
        bytes_(bytes),
        d_(bytes / sizeof(float)),
        k_(pairs_for(c, bytes / sizeof(float))),
        K_(b.size()),
        me_(b.rank()) {
    if (k_ > d_) {
      throw Error(ErrorCode::kInvalidArgument, me_,
                  "-k " + std::to_string(k_) + " exceeds the vector length d = " + std::to_string(d_) +
                      " at size " + std::to_string(bytes_) + " bytes");
    }
  }

  Row base_row(Op op, double payload, double factor) const {
    Row r;
    r.op = op;
    r.bytes = bytes_;
    r.count = d_;
    r.ranks = K_;
    r.k = (op == Op::kDenseRing || op == Op::kMpiAllreduce) ? d_ : k_;
    r.density = static_cast<double>(r.k) / static_cast<double>(d_);
    r.payload_bytes = payload;
    r.bus_factor = factor;
    return r;
  }

  double allreduce_factor() const { return 2.0 * (K_ - 1) / K_; }
  double allgather_factor() const { return static_cast<double>(K_ - 1) / K_; }

  // The dense input of this rank; rank 0 puts a NaN in the middle with --nan.
  void fill_dense(std::vector<float>& v) const {
    v.resize(d_);
    for (std::uint64_t i = 0; i < d_; ++i) v[i] = input_value(seed_, me_, i);
    if (c_.nan && me_ == 0) v[d_ / 2] = std::numeric_limits<float>::quiet_NaN();
  }
  // The same in the benchmark's memory.
  Mem<float> dense_input() const {
    std::vector<float> h;
    fill_dense(h);
    Mem<float> m(ex_, d_);
    m.set(h);
    return m;
  }
  float dense_expected(std::uint64_t i) const {
    if (c_.nan && i == d_ / 2) return std::numeric_limits<float>::quiet_NaN();
    return expected_sum(seed_, K_, i);
  }
  std::uint64_t check_dense_sum(const std::vector<float>& v) const {
    std::uint64_t wrong = 0;
    for (std::uint64_t i = 0; i < d_; ++i) wrong += same(v[i], dense_expected(i)) ? 0 : 1;
    return wrong;
  }

  // The backend's dense all-reduce (MPI_Allreduce, or ncclAllReduce with --backend nccl) of the whole
  // vector, timed alone.
  Row mpi_allreduce() {
    Row row = base_row(Op::kMpiAllreduce, 4.0 * static_cast<double>(d_), allreduce_factor());
    FullAllreduce full(*this);
    row.time = time_interleaved(b_, c_, {full.timed()})[0].stats;
    row.base = row.time;
    row.allreduce_us = row.time.p50;
    row.sent_bytes = ring_allreduce_bytes(d_);
    if (c_.check) {
      std::vector<float> result = full.result().get();
      spoil(result[0]);
      row.wrong = sum_over_ranks(b_, check_dense_sum(result));
    }
    return row;
  }

  // sparcol's all-reduce, interleaved with the backend's all-reduce of the same vector (its baseline,
  // and the x-allred reference).
  Row dense_ring() {
    Row row = base_row(Op::kDenseRing, 4.0 * static_cast<double>(d_), allreduce_factor());
    Mem<float> pristine = dense_input(), data(ex_, d_);
    sparcol::coll::RingAllreduce ring(b_, d_, sparcol::coll::RingAllreduce::kDefaultPieceBytes,
                                      sparcol::coll::RingAllreduce::Algorithm::kAuto, ex_);
    FullAllreduce full(*this);
    const auto t = time_interleaved(b_, c_,
                                    {{[&](std::uint64_t) { data.copy_from(pristine); },
                                      [&](std::uint64_t step) { ring.run(data.data(), step); }},
                                     full.timed()});
    row.time = t[0].stats;
    row.sent_bytes = t[0].sent_per_run;
    row.base = t[1].stats;
    row.allreduce_us = t[1].stats.p50;
    if (c_.check) {
      std::vector<float> result = data.get();
      spoil(result[0]);
      row.wrong = sum_over_ranks(b_, check_dense_sum(result));
    }
    return row;
  }

  // RBGS with the block of step `step`, interleaved with the backend's all-reduce of a packed k-float
  // block (the baseline) and of the whole vector (the x-allred reference).
  Row rbgs() {
    Row row = base_row(Op::kRbgs, 4.0 * static_cast<double>(k_), allreduce_factor());
    std::vector<float> pristine_h;
    fill_dense(pristine_h);
    Mem<float> pristine(ex_, d_), data(ex_, d_);
    pristine.set(pristine_h);
    data.copy_from(pristine);
    sparcol::coll::RbgsAllreduce rbgs(b_, d_, k_, ex_);
    sparcol::coll::RbgsBlock last{d_, 0, 0};
    auto block = [&](std::uint64_t step) { return sparcol::coll::rbgs_block(d_, k_, seed_, step, 0); };
    // Restores what the previous run changed (its block) and rewrites the next run's block, its input,
    // as the baseline's reset rewrites its buffer; with --nan rank 0 puts a NaN inside that block.
    auto restore = [&](const sparcol::coll::RbgsBlock& blk) {
      data.copy_from(pristine, blk.start, blk.first_len());
      data.copy_from(pristine, 0, blk.wrap_len());
    };
    auto reset = [&](std::uint64_t step) {
      restore(last);
      last = block(step);
      restore(last);
      if (c_.nan && me_ == 0 && k_ > 0) {
        const float nan = std::numeric_limits<float>::quiet_NaN();
        data.set_range(last.start, &nan, 1);
      }
    };
    std::vector<float> packed_h(k_);
    sparcol::coll::rbgs_pack(pristine_h.data(), block(0), packed_h.data());
    Mem<float> packed0(ex_, k_), packed(ex_, k_);
    packed0.set(packed_h);
    FullAllreduce full(*this);
    const auto t =
        timed_with_xref({{reset, [&](std::uint64_t step) { rbgs.run(data.data(), seed_, step, 0); }},
                         {[&](std::uint64_t) { packed.copy_from(packed0); },
                          [&](std::uint64_t) { b_.allreduce_sum(packed.data(), k_); }}},
                        full);
    row.time = t[0].stats;
    row.sent_bytes = t[0].sent_per_run;
    row.base = t[1].stats;
    row.allreduce_us = xref_us(t, 2);
    if (c_.check) {
      std::vector<float> result = data.get();
      if (k_ > 0) spoil(result[last.start]);
      std::uint64_t wrong = 0;
      for (std::uint64_t i = 0; i < d_; ++i) {
        float want = pristine_h[i];
        if (last.contains(i))
          want = (c_.nan && i == last.start) ? std::numeric_limits<float>::quiet_NaN()
                                             : expected_sum(seed_, K_, i);
        wrong += same(result[i], want) ? 0 : 1;
      }
      row.wrong = sum_over_ranks(b_, wrong);
    }
    return row;
  }

  // This rank's pairs, and the wire block the MPI baseline gathers (k indices, then k values: the
  // same bytes sparcol's all-gather moves).
  void make_pairs() {
    sparse_indices(seed_, me_, d_, k_, idx_);
    sparse_values(seed_, me_, idx_, c_.nan, val_);
  }

  // Counts gathered pairs that differ from what rank r contributed; get(r) gives rank r's received
  // (indices, values) as host vectors.
  template <typename Get>
  std::uint64_t check_pairs(Get&& get) const {
    std::uint64_t wrong = 0;
    std::vector<Index> idx;
    std::vector<float> val;
    for (int r = 0; r < K_; ++r) {
      sparse_indices(seed_, r, d_, k_, idx);
      sparse_values(seed_, r, idx, c_.nan, val);
      const auto [gi, gv] = get(r);
      if (gi.size() != idx.size()) {
        wrong += std::max<std::uint64_t>(gi.size(), idx.size());
        continue;
      }
      for (std::size_t j = 0; j < idx.size(); ++j) wrong += (gi[j] == idx[j] && same(gv[j], val[j])) ? 0 : 1;
    }
    return wrong;
  }

  // The sparse all-gather, interleaved with the backend's all-gather-v of the same wire blocks; then
  // the optional dense sum, timed on its own (local work, no communication).
  Row sparse_allgather() {
    Row row = base_row(Op::kSparseAllgather, 8.0 * static_cast<double>(k_) * K_, allgather_factor());
    make_pairs();
    Mem<Index> idx(ex_, k_);
    Mem<float> val(ex_, k_);
    idx.set(idx_);
    val.set(val_);
    sparcol::coll::SparseAllgather sag(b_, d_, k_, sparcol::coll::SparseAllgather::Algorithm::kAuto, ex_);
    MpiGather plain(*this);
    FullAllreduce full(*this);
    const std::span<const Index> is(idx.data(), k_);
    const std::span<const float> vs(val.data(), k_);
    const auto t = timed_with_xref(
        {{nothing(), [&](std::uint64_t step) { sag.run(is, vs, step); }}, plain.timed()}, full);
    row.time = t[0].stats;
    row.sent_bytes = t[0].sent_per_run;
    row.base = t[1].stats;
    row.allreduce_us = xref_us(t, 2);
    Mem<float> sum(ex_, d_);
    row.sum_us = time_interleaved(b_, c_, {{nothing(), [&](std::uint64_t) { sag.sum_into(sum.data()); }}})[0]
                     .stats.p50;
    if (c_.check) {
      std::uint64_t wrong = check_pairs([&](int r) {
        const auto gi = sag.indices(r);
        const auto gv = sag.values(r);
        return std::pair(idx.get_range(gi.data(), gi.size()), val.get_range(gv.data(), gv.size()));
      });
      // The dense sum: every rank's pairs added in rank order.
      std::vector<float> got = sum.get();
      spoil(got[d_ - 1]);
      std::vector<float> want(d_, 0.0f);
      std::vector<Index> pi;
      std::vector<float> pv;
      for (int r = 0; r < K_; ++r) {
        sparse_indices(seed_, r, d_, k_, pi);
        sparse_values(seed_, r, pi, c_.nan, pv);
        for (std::size_t j = 0; j < pi.size(); ++j) want[pi[j]] += pv[j];
      }
      for (std::uint64_t i = 0; i < d_; ++i) wrong += same(got[i], want[i]) ? 0 : 1;
      row.wrong = sum_over_ranks(b_, wrong);
    }
    return row;
  }

  Row mpi_allgatherv() {
    Row row = base_row(Op::kMpiAllgatherv, 8.0 * static_cast<double>(k_) * K_, allgather_factor());
    make_pairs();
    MpiGather plain(*this);
    FullAllreduce full(*this);
    const auto t = timed_with_xref({plain.timed()}, full);
    row.time = t[0].stats;
    row.base = row.time;
    row.allreduce_us = xref_us(t, 1);
    // A ring all-gather's bytes per rank: every block but the right neighbour's passes through.
    row.sent_bytes = 8 * k_ * static_cast<std::uint64_t>(K_ - 1);
    if (c_.check) row.wrong = sum_over_ranks(b_, plain.check());
    return row;
  }

 private:
  // SPARCOL_BENCH_CORRUPT=1: the last rank changes one element of a result before it is checked, so
  // that a test can see the check count it and the exit status report it. Only in the test build of
  // the bench (sparcol-bench-test-hooks, SPARCOL_BENCH_TEST_HOOKS); a no-op in the program itself.
#ifdef SPARCOL_BENCH_TEST_HOOKS
  void spoil(float& x) const {
    if (c_.corrupt && me_ == K_ - 1) x += 1.0f;
  }
#else
  void spoil(float& /*x*/) const {}
#endif

  static Timed::Fn nothing() {
    return [](std::uint64_t) {};
  }

  // The backend's all-reduce of this rank's whole dense input: each operation is timed interleaved
  // with it, so that every row's x-allred is measured under the same conditions as its time.
  class FullAllreduce {
   public:
    explicit FullAllreduce(const SizeBench& s) : s_(s), pristine_(s.dense_input()), data_(s.ex_, s.d_) {}
    Timed timed() {
      return Timed{[this](std::uint64_t) { data_.copy_from(pristine_); },
                   [this](std::uint64_t) { s_.b_.allreduce_sum(data_.data(), s_.d_); }};
    }
    Mem<float>& result() { return data_; }

   private:
    const SizeBench& s_;
    Mem<float> pristine_, data_;
  };

  // The operations timed interleaved, with the whole-vector all-reduce (x-allred) after them unless
  // --no-xref.
  std::vector<Timing> timed_with_xref(std::vector<Timed> ops, FullAllreduce& full) const {
    if (c_.xref) ops.push_back(full.timed());
    return time_interleaved(b_, c_, ops);
  }
  // x-allred's median, or NaN (shown as N/A) without it.
  double xref_us(const std::vector<Timing>& t, std::size_t i) const {
    return c_.xref ? t.at(i).stats.p50 : std::numeric_limits<double>::quiet_NaN();
  }

  // The backend's all-gather-v (MPI_Allgatherv, or broadcasts with NCCL) of every rank's wire block:
  // k indices then k values, the bytes sparcol's all-gather moves.
  class MpiGather {
   public:
    explicit MpiGather(const SizeBench& s)
        : s_(s),
          block_(s.ex_, s.k_ * sparcol::kPairBytes),
          bytes_(static_cast<std::size_t>(s.K_), s.k_ * sparcol::kPairBytes),
          all_(s.ex_, s.k_ * sparcol::kPairBytes * static_cast<std::size_t>(s.K_)) {
      if (s.k_ > 0) {
        std::vector<std::byte> h(s.k_ * sparcol::kPairBytes);
        std::memcpy(h.data(), s.idx_.data(), s.k_ * sizeof(Index));
        std::memcpy(h.data() + s.k_ * sizeof(Index), s.val_.data(), s.k_ * sizeof(float));
        block_.set(h);
      }
    }
    Timed timed() {
      return Timed{nothing(),
                   [this](std::uint64_t) { s_.b_.allgatherv(block_.data(), all_.data(), bytes_); }};
    }
    std::uint64_t check() {
      std::vector<std::byte> all = all_.get();
      if (s_.k_ > 0) {
        // Rank 0's first gathered value is the one spoiled (SPARCOL_BENCH_CORRUPT).
        float v0;
        std::memcpy(&v0, all.data() + s_.k_ * sizeof(Index), sizeof v0);
        s_.spoil(v0);
        std::memcpy(all.data() + s_.k_ * sizeof(Index), &v0, sizeof v0);
      }
      const std::size_t block = s_.k_ * sparcol::kPairBytes;
      return s_.check_pairs([&](int r) {
        const std::byte* p = all.data() + static_cast<std::size_t>(r) * block;
        std::vector<Index> gi(s_.k_);
        std::vector<float> gv(s_.k_);
        if (s_.k_ > 0) {
          std::memcpy(gi.data(), p, s_.k_ * sizeof(Index));
          std::memcpy(gv.data(), p + s_.k_ * sizeof(Index), s_.k_ * sizeof(float));
        }
        return std::pair(gi, gv);
      });
    }

   private:
    const SizeBench& s_;
    Mem<std::byte> block_;
    std::vector<std::size_t> bytes_;
    Mem<std::byte> all_;
  };

  // A bandwidth-optimal (ring) all-reduce's bytes per rank: 2 (K-1)/K of the vector.
  std::uint64_t ring_allreduce_bytes(std::uint64_t d) const {
    return 2 * d * sizeof(float) * static_cast<std::uint64_t>(K_ - 1) / static_cast<std::uint64_t>(K_);
  }

  Backend& b_;
  const Config& c_;
  sparcol::device::Exec* ex_;  // nullptr: host memory
  std::uint64_t seed_, bytes_, d_, k_;
  int K_, me_;
  std::vector<Index> idx_;
  std::vector<float> val_;
};

// ------------------------------------------------------------------------------------------------
// Output: what sparcol::io::BenchTable writes (table on stdout, CSV, JSON, HDF5). Only rank 0 writes.
// ------------------------------------------------------------------------------------------------

struct Setup {
  std::string backend, build, mpi_library;
  int ranks = 1;
  std::uint64_t seed = 0;
  std::string device = "cpu";  // cpu, or cuda
  std::string nccl_library;    // NCCL's version with --backend nccl
};

// The table, CSV, JSON and HDF5 outputs are written by sparcol::io::BenchTable; these say what to write.
sparcol::io::BenchSetup table_setup(const Config& c, const Setup& s) {
  sparcol::io::BenchSetup t;
  t.build = s.build;
  t.backend = s.backend;
  t.mpi_library = s.mpi_library;
  t.device = s.device;
  t.nccl_library = s.nccl_library;
  t.ranks = s.ranks;
  t.seed = s.seed;
  for (Op op : c.ops) t.ops.push_back(op_name(op));
  t.iters = c.iters;
  t.warmup = c.warmup;
  t.check = c.check;
  t.density = c.density;
  t.k = c.k;
  t.min_bytes = c.min_bytes;
  t.max_bytes = c.max_bytes;
  t.step_factor = c.factor;
  t.collective_check = c.check_collectives;
  t.nan_injected = c.nan;
  t.csv = c.csv;
  t.json = c.json;
  t.h5 = c.h5;
  return t;
}

sparcol::io::BenchRow table_row(const Row& r) {
  sparcol::io::BenchRow t;
  t.op = op_name(r.op);
  t.has_baseline = r.op != Op::kMpiAllreduce && r.op != Op::kMpiAllgatherv;
  t.bytes = r.bytes;
  t.count = r.count;
  t.k = r.k;
  t.density = r.density;
  t.ranks = r.ranks;
  t.time = {r.time.p50, r.time.min, r.time.p99};
  t.base = {r.base.p50, r.base.min, r.base.p99};
  t.allreduce_us = r.allreduce_us;
  t.sum_us = r.sum_us;
  t.algbw_gbs = r.algbw_gbs();
  t.busbw_gbs = r.busbw_gbs();
  t.sent_bytes = r.sent_bytes;
  t.wrong = r.wrong;
  return t;
}

using Output = sparcol::io::BenchTable;

// ------------------------------------------------------------------------------------------------
// The run on one rank
// ------------------------------------------------------------------------------------------------

// Rank 0 opens the output files (an unwritable path is an error on every rank, before any timing).
// Returns rank 0's Output, nullptr elsewhere.
std::unique_ptr<Output> open_outputs(Backend& b, const Config& c, const Setup& s) {
  std::unique_ptr<Output> out;
  std::string error;
  if (b.rank() == 0) {
    try {
      out = std::make_unique<Output>(table_setup(c, s));
    } catch (const Error& e) {
      error = e.message();
    }
  }
  std::uint64_t len = error.size();
  b.control().broadcast(&len, sizeof len, 0);
  error.resize(len);
  if (len > 0) {
    b.control().broadcast(error.data(), len, 0);
    throw Error(ErrorCode::kIo, b.rank(), b.rank() == 0 ? error : "rank 0 cannot write its output: " + error);
  }
  return out;
}

void configure_backend(Backend& b, const Config& c) {
  if (c.timeout_s >= 0)
    b.set_timeout(std::chrono::milliseconds(static_cast<long long>(c.timeout_s * 1000.0)));
  b.set_check_collectives(c.check_collectives);
}

// Returns the total wrong count (-1 when unchecked). `out` is rank 0's output (nullptr elsewhere).
// ex: the executor of --device cuda (nullptr: host memory).
std::int64_t run_bench(Backend& b, const Config& c, const Setup& setup, Output* out,
                       sparcol::device::Exec* ex = nullptr) {
  if (out) out->header();
  std::int64_t wrong = c.check ? 0 : -1;
  for (const std::uint64_t bytes : sweep(c)) {
    SizeBench sb(b, c, setup.seed, bytes, ex);
    for (Op op : c.ops) {
      Row r;
      switch (op) {
        case Op::kDenseRing:
          r = sb.dense_ring();
          break;
        case Op::kRbgs:
          r = sb.rbgs();
          break;
        case Op::kSparseAllgather:
          r = sb.sparse_allgather();
          break;
        case Op::kMpiAllreduce:
          r = sb.mpi_allreduce();
          break;
        case Op::kMpiAllgatherv:
          r = sb.mpi_allgatherv();
          break;
      }
      if (r.wrong > 0) wrong += r.wrong;
      if (out) out->row(table_row(r));
    }
  }
  if (out) wrong = out->finish();
  return wrong;
}

// ------------------------------------------------------------------------------------------------
// Start-up agreement across MPI ranks
// ------------------------------------------------------------------------------------------------

// Every rank's status (-1: ready to run) and canonical arguments, gathered on every rank. Uses plain
// blocking MPI collectives through the backend: every rank reaches this point whatever it parsed.
struct Verdict {
  int status = -1;
  std::string message;  // for this rank
  bool is_error = false;
};

std::vector<std::string> gather_strings(Backend& b, const std::string& mine) {
  const auto n = static_cast<std::size_t>(b.size());
  std::vector<std::uint64_t> lens(n);
  std::uint64_t my_len = mine.size();
  b.allgatherv(&my_len, lens.data(), std::vector<std::size_t>(n, sizeof(std::uint64_t)));
  std::vector<std::size_t> bytes(lens.begin(), lens.end());
  std::size_t total = 0;
  for (auto x : bytes) total += x;
  std::string all(total, '\0');
  b.allgatherv(mine.data(), all.data(), bytes);
  std::vector<std::string> out;
  std::size_t off = 0;
  for (auto x : bytes) {
    out.push_back(all.substr(off, x));
    off += x;
  }
  return out;
}

Verdict agree_on_arguments(Backend& b, const Parsed& p) {
  const int me = b.rank();
  // 1. Who failed to parse? Rank i's status as text, with its canonical arguments when it parsed.
  std::string mine = std::to_string(p.status) + "\n";
  if (p.status < 0) {
    for (const auto& kv : p.config.canonical()) mine += kv + "\n";
  }
  const auto all = gather_strings(b, mine);
  Verdict v;
  for (int r = 0; r < b.size(); ++r) {
    const int st = std::stoi(all[static_cast<std::size_t>(r)]);
    if (st > 0 && v.status <= 0) {
      v.status = st;
      v.is_error = true;
      v.message =
          r == me ? p.message : "rank " + std::to_string(r) + " rejected its arguments (see its message)";
    }
  }
  if (v.is_error) {
    if (p.is_error) v.message = p.message;  // every failing rank prints its own reason
    return v;
  }
  if (p.status == 0) return Verdict{0, p.message, false};  // --help / --version everywhere
  // 2. Everyone parsed: the arguments must be the same on every rank.
  for (int r = 0; r < b.size(); ++r) {
    if (all[static_cast<std::size_t>(r)] == all[0]) continue;
    std::istringstream a(all[0]), o(all[static_cast<std::size_t>(r)]);
    std::string la, lo;
    while (std::getline(a, la) && std::getline(o, lo) && la == lo) {
    }
    auto eq = la.find('=');
    const std::string key = la.substr(0, eq);
    return Verdict{sparcol::exit_code(ErrorCode::kMismatch),
                   "ranks disagree on their arguments: rank 0 has " + key + " " + la.substr(eq + 1) +
                       " but rank " + std::to_string(r) + " has " + key + " " + lo.substr(lo.find('=') + 1) +
                       " (every rank must get the same flags)",
                   true};
  }
  return v;
}

std::string build_string() {
  std::string s = std::string(SPARCOL_BUILD_TYPE) + ", ";
#if defined(__clang__)
  s += "clang " __clang_version__;
#elif defined(__GNUC__)
  s += "gcc " __VERSION__;
#endif
  s += SPARCOL_HAVE_CUDA ? ", CUDA built" : ", no CUDA";
  return s;
}

std::uint64_t fresh_seed() {
  std::random_device rd;
  std::uint64_t s = 0;
  while (s == 0) s = ((static_cast<std::uint64_t>(rd()) << 32) | rd()) % kSeedLimit;
  return s;
}

void print_error(int rank, const std::string& message) {
  std::fprintf(stderr, "sparcol: rank %d: error: %s\n", rank, message.c_str());
  std::fflush(stderr);
}

int finish_status(std::int64_t wrong) {
  return wrong > 0 ? kExitWrong : 0;
}

int main_loopback(const Parsed& p) {
  const Config& c = p.config;
  Setup s{"loopback", build_string(), "", c.ranks, c.seed != 0 ? c.seed : fresh_seed(), "cpu", ""};
  std::int64_t wrong = 0;
  try {
    sparcol::comm::LoopbackWorld::spawn(c.ranks, [&](Backend& b) {
      configure_backend(b, c);
      auto out = open_outputs(b, c, s);
      const std::int64_t w = run_bench(b, c, s, out.get());
      if (b.rank() == 0) wrong = w;
    });
  } catch (const Error& e) {
    print_error(e.rank() < 0 ? 0 : e.rank(), e.message());
    return sparcol::exit_code(e.code());
  } catch (const std::bad_alloc&) {
    print_error(0, "out of memory (try a smaller -e)");
    return sparcol::exit_code(ErrorCode::kInternal);
  }
  return finish_status(wrong);
}

int main_mpi(const Parsed& p) {
  int rank = sparcol::comm::MpiEnvironment::world_rank();
  std::unique_ptr<sparcol::comm::MpiBackend> backend;
  bool agreed = false;
  try {
    backend = sparcol::comm::MpiBackend::world();
    rank = backend->rank();
    const Verdict v = agree_on_arguments(*backend, p);
    agreed = true;
    if (v.status >= 0) {
      if (v.is_error) {
        print_error(rank, v.message);
      } else if (rank == 0) {
        std::fputs(v.message.c_str(), stdout);
      }
      return v.status;
    }
    const Config& c = p.config;
    if (c.backend == "loopback") {
      // Every rank has it (the arguments agree), so every rank stops here.
      print_error(rank,
                  "--backend loopback runs every rank as a thread of one process: start it without mpirun");
      return sparcol::exit_code(ErrorCode::kInvalidArgument);
    }
    if (c.ranks != 0 && c.ranks != backend->size()) {
      // Same on every rank (the arguments agree), so every rank stops here.
      print_error(
          rank, "--ranks " + std::to_string(c.ranks) + " differs from the " +
                    std::to_string(backend->size()) +
                    " MPI ranks started (--ranks is for --backend loopback; mpirun -np sets the MPI world)");
      return sparcol::exit_code(ErrorCode::kInvalidArgument);
    }
    std::uint64_t seed = c.seed != 0 ? c.seed : fresh_seed();
    backend->broadcast(&seed, sizeof seed, 0);
    Setup s{"mpi",
            build_string(),
            sparcol::comm::MpiEnvironment::library_version(),
            backend->size(),
            seed,
            c.device,
            ""};
    // --device cuda: the rank's GPU (its local rank), and with --backend nccl the NCCL communicator
    // (created over a duplicate of MPI_COMM_WORLD). Failures here are raised on every rank alike
    // (NcclBackend::create exchanges every rank's status), so they end the job cleanly.
    std::unique_ptr<Backend> nccl;
    std::optional<sparcol::device::Exec> exec;
    Backend* bench = backend.get();
    try {
      if (c.backend == "nccl") {
        nccl = sparcol::comm::make_backend("nccl");
        bench = nccl.get();
        exec.emplace(sparcol::device::Exec::device(nccl->stream_handle()));
        s.backend = "nccl";
        s.nccl_library = sparcol::comm::backend_library_version("nccl");
      } else if (c.device == "cuda") {
        sparcol::device::set_device(sparcol::comm::local_rank() % sparcol::device::device_count());
        exec.emplace(sparcol::device::Exec::device());
      }
    } catch (const Error& e) {
      print_error(rank, e.message());
      return sparcol::exit_code(e.code());
    }
    configure_backend(*bench, c);
    std::unique_ptr<Output> out;
    try {
      out = open_outputs(*bench, c, s);
    } catch (const Error& e) {
      print_error(rank, e.message());  // raised on every rank alike: a clean exit, no abort
      return sparcol::exit_code(e.code());
    }
    const std::int64_t wrong = run_bench(*bench, c, s, out.get(), exec ? &*exec : nullptr);
    // Rank 0 knows the total; share it so every rank exits with the same status.
    std::int64_t w = wrong;
    backend->broadcast(&w, sizeof w, 0);
    return finish_status(w);
  } catch (const Error& e) {
    print_error(e.rank() >= 0 ? e.rank() : rank, e.message());
    // After the agreement a failure may be one-sided: tear the job down rather than risk a hang in
    // MPI_Finalize. Before it, every rank is here for the same reason.
    if (agreed && sparcol::comm::MpiEnvironment::world_size() > 1) {
      backend.reset();
      sparcol::comm::MpiEnvironment::abort(sparcol::exit_code(e.code()));
    }
    return sparcol::exit_code(e.code());
  } catch (const std::bad_alloc&) {
    print_error(rank, "out of memory (try a smaller -e)");
    sparcol::comm::MpiEnvironment::abort(sparcol::exit_code(ErrorCode::kInternal));
  }
}

}  // namespace

int main(int argc, char** argv) {
  // MPI first (every rank must reach the agreement below), then the flags.
  sparcol::comm::MpiEnvironment mpi(&argc, &argv);
  const Parsed p = parse(argc, argv);
  // Several MPI processes always go through the agreement, even with --backend loopback, so that
  // ranks given different flags cannot leave one another waiting.
  if (p.status < 0 && p.config.backend == "loopback" && sparcol::comm::MpiEnvironment::world_size() == 1) {
    return main_loopback(p);
  }
  return main_mpi(p);
}
