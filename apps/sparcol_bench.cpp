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
// codes. Files: bench/options (flags), bench/runs (the operations at each size), bench/timing,
// bench/data (inputs and expected results), bench/output (to the writer, sparcol/io/bench_table.hpp);
// this file: the agreement across ranks and the two mains (loopback, MPI).
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
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <memory>
#include <new>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "bench/options.hpp"
#include "bench/output.hpp"
#include "bench/overlap.hpp"
#include "bench/runs.hpp"
#include "sparcol/comm/loopback.hpp"
#include "sparcol/comm/make_backend.hpp"
#include "sparcol/comm/mpi_backend.hpp"
#include "sparcol/config.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/device/device.hpp"
#include "sparcol/device/dispatch.hpp"
#include "sparcol/topo/graph.hpp"

#ifndef SPARCOL_BUILD_TYPE
#define SPARCOL_BUILD_TYPE "unknown"
#endif

namespace {

using sparcol::Error;
using sparcol::ErrorCode;
using sparcol::bench::Config;
using sparcol::bench::kSeedLimit;
using sparcol::bench::Parsed;
using sparcol::bench::Setup;
using sparcol::comm::Backend;

// Exit status when some result was wrong (errors use sparcol::exit_code(), 2 and up).
constexpr int kExitWrong = 1;

void configure_backend(Backend& b, const Config& c) {
  if (c.timeout_s >= 0)
    b.set_timeout(std::chrono::milliseconds(static_cast<long long>(c.timeout_s * 1000.0)));
  b.set_check_collectives(c.check_collectives);
}

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
      const std::int64_t w = c.overlap ? run_overlap(b, c) : run_bench(b, c, s, out.get());
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
    if (std::find(c.ops.begin(), c.ops.end(), sparcol::bench::Op::kNeighbor) != c.ops.end()) {
      // Whether --topology fits the world: the same verdict on every rank.
      try {
        (void)sparcol::topo::make_topology(c.topology, backend->size(), rank);
      } catch (const Error& e) {
        print_error(rank, e.message());
        return sparcol::exit_code(e.code());
      }
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
    std::unique_ptr<sparcol::io::BenchTable> out;
    try {
      out = open_outputs(*bench, c, s);
    } catch (const Error& e) {
      print_error(rank, e.message());  // raised on every rank alike: a clean exit, no abort
      return sparcol::exit_code(e.code());
    }
    const std::int64_t wrong =
        c.overlap ? run_overlap(*bench, c) : run_bench(*bench, c, s, out.get(), exec ? &*exec : nullptr);
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
  // --overlap runs a progress thread next to the caller's MPI calls: MPI_THREAD_MULTIPLE.
  bool overlap = false;
  for (int i = 1; i < argc; ++i) overlap = overlap || std::string(argv[i]) == "--overlap";
  sparcol::comm::MpiEnvironment mpi(
      &argc, &argv, overlap ? sparcol::comm::ThreadLevel::kMultiple : sparcol::comm::ThreadLevel::kFunneled);
  const Parsed p = sparcol::bench::parse(argc, argv);
  // Several MPI processes always go through the agreement, even with --backend loopback, so that
  // ranks given different flags cannot leave one another waiting.
  if (p.status < 0 && p.config.backend == "loopback" && sparcol::comm::MpiEnvironment::world_size() == 1) {
    return main_loopback(p);
  }
  return main_mpi(p);
}
