// Soak test: back-to-back collectives of random kind (ring, RBGS, sparse and sign all-gather), size and
// density under mpirun, each checked exactly (tests/common/coll_checks), watching the resident memory for
// growth.
//
// Usage: mpirun -np 4 sparcol_soak [iterations=10000] [max_log2_size=18]
// Prints per-phase progress and a summary on rank 0: collectives run, wrong elements (0 expected),
// resident memory after the warm-up and at the end, and the peak (VmHWM), per rank maximum.
// Exit status 0 only if nothing was wrong and the resident memory grew by less than 32 MiB after
// the warm-up (the first tenth of the run); under AddressSanitizer the growth is reported, not judged.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "../common/coll_checks.hpp"
#include "sparcol/comm/mpi_backend.hpp"
#include "sparcol/core/rng.hpp"

namespace {

// AddressSanitizer keeps freed memory in a quarantine (up to 256 MiB by default), so the resident size
// grows with every allocation of a run and says nothing about leaks: under it only the results are
// judged.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kUnderAsan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kUnderAsan = true;
#else
constexpr bool kUnderAsan = false;
#endif
#else
constexpr bool kUnderAsan = false;
#endif

// A field of /proc/self/status in KiB (VmRSS, VmHWM).
long status_kib(const char* field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::string key = std::string(field) + ":";
  while (std::getline(f, line)) {
    if (line.rfind(key, 0) == 0) return std::strtol(line.c_str() + key.size(), nullptr, 10);
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  sparcol::comm::MpiEnvironment env(&argc, &argv);
  auto world = sparcol::comm::MpiBackend::world();
  world->set_timeout(std::chrono::seconds(120));
  const long iterations = argc > 1 ? std::atol(argv[1]) : 10000;
  const int max_log2 = argc > 2 ? std::atoi(argv[2]) : 18;
  const int me = world->rank();

  std::uint64_t seed = sparcol::test::test_seed();
  world->broadcast(&seed, sizeof seed, 0);
  sparcol::CounterRng rng(seed, sparcol::kStreamUser, 0);  // same sequence on every rank

  std::uint64_t wrong = 0, counts[4] = {0, 0, 0, 0};
  std::string first;
  long rss_warm = -1;
  for (long it = 0; it < iterations; ++it) {
    const int kind = static_cast<int>(rng.below(4));
    const std::size_t n =
        static_cast<std::size_t>(rng.below(std::uint64_t{1} << rng.below(max_log2 + 1)) + 1);
    const double density = 0.001 + 0.999 * rng.uniform() * rng.uniform();  // mostly small
    const std::size_t k =
        std::min<std::size_t>(n, std::max<std::size_t>(0, static_cast<std::size_t>(density * n)));
    sparcol::test::CheckResult r;
    switch (kind) {
      case 0:
        r = sparcol::test::check_ring_allreduce(*world, n, seed + it);
        break;
      case 1:
        r = sparcol::test::check_rbgs_allreduce(*world, n, k, seed + it, rng.below(2) == 0);
        break;
      case 2:
        r = sparcol::test::check_sparse_allgather(*world, n, k, seed + it);
        break;
      default:
        r = sparcol::test::check_sign_allgather(*world, n, seed + it);
        break;
    }
    ++counts[kind];
    if (r.wrong != 0 && first.empty()) first = "iteration " + std::to_string(it) + ": " + r.first;
    wrong += r.wrong;
    if (it + 1 == std::max(1L, iterations / 10)) rss_warm = status_kib("VmRSS");
    if (me == 0 && (it + 1) % std::max(1L, iterations / 10) == 0) {
      std::printf("soak: %ld/%ld collectives, RSS %ld KiB\n", it + 1, iterations, status_kib("VmRSS"));
      std::fflush(stdout);
    }
  }
  const long rss_end = status_kib("VmRSS"), hwm = status_kib("VmHWM");
  // Reduce over ranks: wrong elements (sum), memory growth and peak (max).
  float stats[3] = {static_cast<float>(wrong), static_cast<float>(rss_end - rss_warm),
                    static_cast<float>(hwm)};
  std::vector<float> all(3 * static_cast<std::size_t>(world->size()), 0.0f);
  for (int i = 0; i < 3; ++i) all[3 * static_cast<std::size_t>(me) + static_cast<std::size_t>(i)] = stats[i];
  world->allreduce_sum(all.data(), all.size());
  double total_wrong = 0, max_growth = -1e30, max_hwm = 0;
  for (int r = 0; r < world->size(); ++r) {
    total_wrong += all[3 * static_cast<std::size_t>(r)];
    max_growth = std::max<double>(max_growth, all[3 * static_cast<std::size_t>(r) + 1]);
    max_hwm = std::max<double>(max_hwm, all[3 * static_cast<std::size_t>(r) + 2]);
  }
  if (!first.empty()) std::fprintf(stderr, "soak: rank %d: first wrong result: %s\n", me, first.c_str());
  const bool ok = total_wrong == 0 && (kUnderAsan || max_growth < 32 * 1024);
  if (me == 0 && kUnderAsan)
    std::printf("soak: built with AddressSanitizer: memory growth reported, not judged (its quarantine)\n");
  if (me == 0) {
    std::printf(
        "soak: %ld collectives (ring %llu, rbgs %llu, sparse %llu, sign %llu) on %d ranks, sizes up to 2^%d, "
        "seed %llu: "
        "%.0f wrong; RSS growth after warm-up %.0f KiB (max over ranks); peak RSS %.0f KiB -> %s\n",
        iterations, static_cast<unsigned long long>(counts[0]), static_cast<unsigned long long>(counts[1]),
        static_cast<unsigned long long>(counts[2]), static_cast<unsigned long long>(counts[3]), world->size(),
        max_log2, static_cast<unsigned long long>(seed), total_wrong, max_growth, max_hwm,
        ok ? "PASS" : "FAIL");
  }
  world.reset();
  return ok ? 0 : 1;
}
