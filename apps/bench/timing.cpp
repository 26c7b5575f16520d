// Timing of the bench's operations (timing.hpp).
#include "timing.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace sparcol::bench {

using comm::Backend;

namespace {

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

double percentile(std::vector<double> sorted_copy, double q) {
  std::sort(sorted_copy.begin(), sorted_copy.end());
  const double pos = q * static_cast<double>(sorted_copy.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const auto hi = std::min(lo + 1, sorted_copy.size() - 1);
  return sorted_copy[lo] + (pos - static_cast<double>(lo)) * (sorted_copy[hi] - sorted_copy[lo]);
}

}  // namespace

std::uint64_t max_over_ranks_u64(Backend& b, std::uint64_t mine) {
  const auto n = static_cast<std::size_t>(b.size());
  std::vector<std::uint64_t> all(n);
  std::vector<std::size_t> bytes(n, sizeof(std::uint64_t));
  b.control().allgatherv(&mine, all.data(), bytes);
  return *std::max_element(all.begin(), all.end());
}

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

}  // namespace sparcol::bench
