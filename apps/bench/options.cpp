// sparcol-bench's flags (options.hpp).
#include "options.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>

#include "sparcol/comm/make_backend.hpp"
#include "sparcol/config.hpp"
#include "sparcol/device/device.hpp"
#include "sparcol/topo/graph.hpp"

#ifndef SPARCOL_BUILD_TYPE
#define SPARCOL_BUILD_TYPE "unknown"
#endif

namespace sparcol::bench {

using comm::Backend;

namespace {

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
  for (Op op : c.ops)
    if (std::find(std::begin(kSignOps), std::end(kSignOps), op) != std::end(kSignOps) && c.device != "cpu")
      fail(std::string("--op ") + op_name(op) + " runs on host memory only (--device cpu)");
  if (c.backend == "nccl" && c.device != "cuda")
    fail("--backend nccl moves device memory: add --device cuda");
  if (c.backend == "loopback" && c.device == "cuda")
    fail("--backend loopback moves host memory only: use --backend mpi or nccl with --device cuda");
  if (c.backend == "loopback" && c.ranks < 1) fail("--backend loopback needs --ranks N (N >= 1)");
  if (c.ranks < 0) fail("--ranks must be positive, got " + std::to_string(c.ranks));
  if (c.timeout_s < 0 && c.timeout_s != -1) fail("--timeout must be >= 0 seconds (0: wait forever)");
  if (c.ops.empty()) fail("--op names no operation");
  const bool neighbor = std::find(c.ops.begin(), c.ops.end(), Op::kNeighbor) != c.ops.end();
  if (neighbor && c.backend != "mpi")
    fail("--op neighbor needs --backend mpi (its reference is MPI_Neighbor_alltoallv), got --backend " +
         c.backend);
  if (neighbor && c.device != "cpu") fail("--op neighbor moves host memory only (--device cpu)");
  const auto& topologies = sparcol::topo::topology_names();
  if (std::find(topologies.begin(), topologies.end(), c.topology) == topologies.end()) {
    std::string list;
    for (const auto& t : topologies) list += (list.empty() ? "" : ", ") + t;
    fail("--topology: unknown topology '" + c.topology + "' (valid: " + list + ")");
  }
  if (c.seed >= kSeedLimit) fail("--seed must be below 2^53 = " + std::to_string(kSeedLimit));
}

// Set once by parse(), from --backend.
bool g_nccl_names = false;

}  // namespace

// The plain operations are named after the library that runs them: mpi-* with --backend mpi or
// loopback, nccl-* with --backend nccl. parse() sets this once, before anything is named.

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
    case Op::kMarsit:
      return "marsit";
    case Op::kSignCascade:
      return "sign-cascade";
    case Op::kSignAllgather:
      return "sign-allgather";
    case Op::kNeighbor:
      return "neighbor";
  }
  return "?";
}
const char* op_name(Op op) {
  return op_name(op, g_nccl_names);
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
         "mpi-allgatherv (nccl-allreduce, nccl-allgatherv with --backend nccl), all; neighbor (not in all: "
         "the neighbour exchange on --topology against MPI_Neighbor_alltoallv, --backend mpi)")
      ->delimiter(',');
  auto* dens =
      app.add_option("--density", c.density,
                     "Fraction rho in (0, 1] for rbgs and the sparse ops: k = max(1, floor(rho d)) per rank");
  app.add_option("-k,--pairs", k, "Fixed k per rank instead of --density (k <= d at every size)")
      ->excludes(dens);
  app.add_option(
      "--topology", c.topology,
      "--op neighbor's graph: ring, torus, exponential, complete, chain, binary-tree, double-binary-tree");
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
  app.add_flag("--overlap", c.overlap,
               "Measure the ring all-reduce on a progress thread behind a compute loop of the same length "
               "(the hidden fraction; docs/bench.md); needs MPI_THREAD_MULTIPLE, which it requests");
  app.add_option("--csv", c.csv, "Also write the results as CSV to this file");
  app.add_option("--json", c.json, "Also write the results as JSON to this file");
  app.add_option("--h5", c.h5, "Also write the results to this HDF5 file (layout: docs/bench.md)");
  try {
    app.parse(argc, argv);
    c.check_collectives = !no_check_collectives;
    c.xref = !no_xref;
    c.corrupt = test_hook_corrupt_requested();
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
      if (name == op_name(Op::kNeighbor)) {
        if (std::find(c.ops.begin(), c.ops.end(), Op::kNeighbor) == c.ops.end())
          c.ops.push_back(Op::kNeighbor);
        continue;
      }
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
      for (Op op : kSignOps) {
        if (name != op_name(op)) continue;
        if (std::find(c.ops.begin(), c.ops.end(), op) == c.ops.end()) c.ops.push_back(op);
        found = true;
      }
      if (!found) {
        throw Error(ErrorCode::kInvalidArgument, -1,
                    "unknown --op '" + name + "' (choose from dense-ring, rbgs, sparse-allgather, " +
                        op_name(Op::kMpiAllreduce) + ", " + op_name(Op::kMpiAllgatherv) +
                        ", all, marsit, sign-cascade, sign-allgather, neighbor)");
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

}  // namespace sparcol::bench
