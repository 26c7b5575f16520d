// Timing of the bench's operations: interleaved runs, the slowest rank per run, median and
// percentiles (docs/bench.md, "Timing").
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "options.hpp"

namespace sparcol::bench {

using comm::Backend;

struct Stats {
  double p50 = 0, min = 0, p99 = 0;  // microseconds, over runs, of the maximum over ranks
};

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
std::vector<Timing> time_interleaved(Backend& b, const Config& c, const std::vector<Timed>& ops);

// The maximum over ranks of a per-rank count.
std::uint64_t max_over_ranks_u64(Backend& b, std::uint64_t mine);

}  // namespace sparcol::bench
