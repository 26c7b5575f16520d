#include "bench/overlap.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "sparcol/coll/background.hpp"
#include "sparcol/coll/ring_allreduce.hpp"

namespace sparcol::bench {

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The compute loop: `reps` passes of a multiply-add over a buffer that stays in cache, no MPI.
float compute(std::vector<float>& v, std::uint64_t reps) {
  float acc = 0;
  for (std::uint64_t r = 0; r < reps; ++r) {
    for (float& x : v) x = x * 0.999f + 0.001f;
    acc += v[r % v.size()];
  }
  return acc;
}

// The slowest rank's time.
double slowest(Backend& b, double mine) {
  std::vector<double> all(static_cast<std::size_t>(b.size()));
  const std::vector<std::size_t> bytes(all.size(), sizeof(double));
  b.allgatherv(&mine, all.data(), bytes);
  return *std::max_element(all.begin(), all.end());
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

}  // namespace

std::int64_t run_overlap(Backend& b, const Config& c) {
  const int me = b.rank();
  coll::Background bg(b);
  std::vector<float> work(4096, 1.0f);
  volatile float sink = 0;
  std::int64_t wrong = 0;
  if (me == 0) {
    std::printf(
        "# sparcol-bench --overlap: ring all-reduce on a progress thread behind a compute loop of "
        "the same length\n# %d ranks, backend %s; times: median over %d runs of the slowest rank\n",
        b.size(), b.name().c_str(), c.iters);
    std::printf("%12s %12s %10s %10s %10s %10s %10s %8s %6s\n", "bytes", "count", "t_ar_ms", "t_comp_ms",
                "t_seq_ms", "t_ovl_ms", "t_bg_ms", "hidden", "wrong");
  }
  for (const std::uint64_t bytes : sweep(c)) {
    const std::uint64_t count = bytes / sizeof(float);  // -b / -e are bytes of the float32 vector
    if (count == 0) continue;
    std::vector<float> src(count), data(count), ref(count);
    for (std::uint64_t i = 0; i < count; ++i)
      src[i] = static_cast<float>((i * 7 + static_cast<std::uint64_t>(me) * 13) % 101) * 0.01f;
    coll::RingAllreduce blocking(b, count);
    coll::RingAllreduce behind(bg.backend(), count);
    auto run_blocking = [&] {
      std::memcpy(data.data(), src.data(), count * sizeof(float));
      blocking.run(data.data());
    };
    // Calibrate: the all-reduce's time, then the compute loop's repetitions to match it.
    for (int w = 0; w < std::max(1, c.warmup); ++w) run_blocking();
    b.barrier();
    auto t0 = Clock::now();
    run_blocking();
    const double t_cal = slowest(b, since(t0));
    std::memcpy(ref.data(), data.data(), count * sizeof(float));
    t0 = Clock::now();
    sink = sink + compute(work, 64);
    const double per_rep = std::max(1e-9, slowest(b, since(t0)) / 64.0);
    // Every rank uses rank 0's repetition count (the same loop everywhere).
    std::uint64_t reps = static_cast<std::uint64_t>(std::max(1.0, t_cal / per_rep));
    // One correction: time the loop at that count and rescale (short calibrations are noisy).
    b.barrier();
    t0 = Clock::now();
    sink = sink + compute(work, reps);
    const double t_first = slowest(b, since(t0));
    if (t_first > 0)
      reps = static_cast<std::uint64_t>(std::max(1.0, static_cast<double>(reps) * t_cal / t_first));
    b.broadcast(&reps, sizeof reps, 0);

    std::vector<double> t_ar, t_comp, t_seq, t_ovl, t_bg;
    for (int it = 0; it < c.iters; ++it) {
      b.barrier();
      t0 = Clock::now();
      run_blocking();
      t_ar.push_back(slowest(b, since(t0)));
      b.barrier();
      t0 = Clock::now();
      sink = sink + compute(work, reps);
      t_comp.push_back(slowest(b, since(t0)));
      b.barrier();
      t0 = Clock::now();
      run_blocking();
      sink = sink + compute(work, reps);
      t_seq.push_back(slowest(b, since(t0)));
      b.barrier();
      std::memcpy(data.data(), src.data(), count * sizeof(float));
      t0 = Clock::now();
      bg.start([&](Backend&) { behind.run(data.data()); });
      sink = sink + compute(work, reps);
      bg.wait();
      t_ovl.push_back(slowest(b, since(t0)));
      if (std::memcmp(data.data(), ref.data(), count * sizeof(float)) != 0) {
        for (std::uint64_t i = 0; i < count; ++i) wrong += std::memcmp(&data[i], &ref[i], sizeof(float)) != 0;
      }
      b.barrier();
      std::memcpy(data.data(), src.data(), count * sizeof(float));
      t0 = Clock::now();
      bg.start([&](Backend&) { behind.run(data.data()); });
      bg.wait();
      t_bg.push_back(slowest(b, since(t0)));
    }
    const double ar = median(t_ar), seq = median(t_seq), ovl = median(t_ovl);
    const double hidden = ar > 0 ? std::clamp((seq - ovl) / ar, 0.0, 1.0) : 0.0;
    std::int64_t all_wrong = wrong;
    {
      std::vector<std::int64_t> w(static_cast<std::size_t>(b.size()));
      const std::vector<std::size_t> sizes(w.size(), sizeof(std::int64_t));
      b.allgatherv(&all_wrong, w.data(), sizes);
      all_wrong = 0;
      for (auto x : w) all_wrong += x;
    }
    if (me == 0) {
      std::printf("%12llu %12llu %10.3f %10.3f %10.3f %10.3f %10.3f %7.1f%% %6lld\n",
                  static_cast<unsigned long long>(count * sizeof(float)),
                  static_cast<unsigned long long>(count), 1e3 * ar, 1e3 * median(t_comp), 1e3 * seq,
                  1e3 * ovl, 1e3 * median(t_bg), 100.0 * hidden, static_cast<long long>(all_wrong));
      std::fflush(stdout);
    }
    wrong = all_wrong;
  }
  return wrong;
}

}  // namespace sparcol::bench
