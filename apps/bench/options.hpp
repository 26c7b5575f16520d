// sparcol-bench's flags (docs/bench.md, "Flags"): the operations, the configuration every rank
// must agree on, and the parser.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sparcol/comm/backend.hpp"
#include "sparcol/core/error.hpp"

namespace sparcol::bench {

using comm::Backend;

// Seeds stay below 2^53 so that JSON readers (doubles) and the HDF5 int64 attribute hold them exactly.
constexpr std::uint64_t kSeedLimit = std::uint64_t{1} << 53;

// The operations, in the order rows are printed. The names are the --op values and the HDF5 groups.
// kMarsit, kSignCascade, kSignAllgather (issue 13) and kNeighbor (the neighbour exchange on
// --topology, against MPI_Neighbor_alltoallv; needs --backend mpi) are not part of "all": they are
// named explicitly.
enum class Op {
  kDenseRing,
  kRbgs,
  kSparseAllgather,
  kMpiAllreduce,
  kMpiAllgatherv,
  kMarsit,
  kSignCascade,
  kSignAllgather,
  kNeighbor
};
constexpr Op kAllOps[] = {Op::kDenseRing, Op::kRbgs, Op::kSparseAllgather, Op::kMpiAllreduce,
                          Op::kMpiAllgatherv};
// The 1-bit operations (issue 13), named explicitly (not part of `all`): host memory only; their
// same-payload baseline is the backend's bitwise-XOR all-reduce of the packed 64-bit words.
constexpr Op kSignOps[] = {Op::kMarsit, Op::kSignCascade, Op::kSignAllgather};

// The plain operations are named after the library that runs them: mpi-* with --backend mpi or
// loopback, nccl-* with --backend nccl. parse() decides once, before anything is named.
const char* op_name(Op op, bool nccl);
const char* op_name(Op op);

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
  std::string topology = "ring";  // --op neighbor's graph (topo/graph.hpp)
  std::string device = "cpu";     // where the buffers live: cpu (host memory) or cuda (the rank's GPU)
  int ranks = 0;                  // loopback world size (0: not given)
  std::uint64_t seed = 0;         // 0: rank 0 draws one
  double timeout_s = -1;          // < 0: the backend's default
  bool check_collectives = true;
  bool nan = false;
  bool xref = true;      // time MPI_Allreduce of the whole vector beside every operation (x-allred)
  bool overlap = false;  // --overlap: the all-reduce behind computation instead of the operations
  bool corrupt =
      false;  // SPARCOL_BENCH_CORRUPT=1 (test-hooks build only): the last rank spoils one result element
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
    add("--topology", topology);
    add("--device", device);
    add("--seed", std::to_string(seed));
    char to[64];
    std::snprintf(to, sizeof to, "%.17g", timeout_s);
    add("--timeout", to);
    add("--no-check-collectives", check_collectives ? "0" : "1");
    add("--nan", nan ? "1" : "0");
    add("--no-xref", xref ? "0" : "1");
    add("--overlap", overlap ? "1" : "0");
    if (corrupt) add("SPARCOL_BENCH_CORRUPT", "1");  // only ever set in the test-hooks build
    return out;
  }
};

// Elements per rank for the sparse operations at d elements: -k if given, else max(1, floor(density d)).
std::uint64_t pairs_for(const Config& c, std::uint64_t d);

// The sweep: min, min*f, ... up to max; sizes are rounded down to whole float32 elements.
std::vector<std::uint64_t> sweep(const Config& c);

// Outcome of parsing on one rank: run, stop successfully (--help, --version), or an error.
struct Parsed {
  Config config;
  int status = -1;      // -1: run; otherwise exit with it
  std::string message;  // text for stdout (help) or the error message
  bool is_error = false;
};

// Parses and validates argv on this rank; never throws.
Parsed parse(int argc, char** argv);

// The test hooks: true only in sparcol-bench-test-hooks (hooks_on.cpp) when SPARCOL_BENCH_CORRUPT=1 is
// set; the installed program links hooks_off.cpp, where it is always false. One translation unit
// differs between the two programs, so the bench is compiled once.
bool test_hook_corrupt_requested();

}  // namespace sparcol::bench
