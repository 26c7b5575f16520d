// sparcol-bench-kernels: time and achieved bandwidth of every CUDA kernel of sparcol, against the
// device-to-device copy bandwidth measured in the same run (bench/kernels.cmake; docs/gpu.md).
//
// For each size n = 2^b, 2^(b+1), ..., 2^e float32 elements it times (CUDA events on one stream,
// the median of -n runs after -w warm-up runs): cudaMemcpy D2D (the reference), sparcol's copy
// kernel, the fused optimizer updates with and without RBGS block extraction, the model update,
// RBGS pack/unpack, sign pack and decode, the sparse sum of K = 8 ranks' top-k messages, exact and
// sampled top-k at the given density, and a full CUB radix sort of (key, index) pairs as the
// reference point for top-k. Each row: n, bytes moved (the bytes the kernel must read and write at
// least: streaming kernels count every vector once), time in us, achieved GB/s (bytes / time) and
// that bandwidth as a percentage of the copy's at the same n. Top-k rows count one read of v plus
// the output (their passes over v show as a low percentage). torch.topk: bench/torch_topk.py.
//
// Without a GPU it prints "skipped" and exits 0; an explicit --device that does not exist, or bad
// flags, print "sparcol: rank 0: error: ..." and exit with the documented status (docs/errors.md).
#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "sparcol/compress/compressor.hpp"
#include "sparcol/compress/topk.hpp"
#include "sparcol/config.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/device/device.hpp"
#include "sparcol/device/ops.hpp"

namespace dev = sparcol::device;
using sparcol::Index;
using U64 = std::uint64_t;

namespace {

#define BENCH_CUDA(expr)                                                               \
  do {                                                                                 \
    const cudaError_t e_ = (expr);                                                     \
    if (e_ != cudaSuccess)                                                             \
      throw sparcol::Error(sparcol::ErrorCode::kCuda, -1,                              \
                           std::string(#expr) + " failed: " + cudaGetErrorString(e_)); \
  } while (0)

struct Options {
  int log2_min = 20;
  int log2_max = 28;
  int iters = 20;
  int warmup = 5;
  int device = -1;  // -1: device 0 if there is one, else skip
  double density = 0.01;
  int ranks = 8;
  bool csv = false;
};

const char* kUsage =
    "usage: sparcol-bench-kernels [-b LOG2_MIN] [-e LOG2_MAX] [-n ITERS] [-w WARMUP] [--device N]\n"
    "                             [--density RHO] [--ranks K] [--csv]\n"
    "  -b, -e      sizes 2^b .. 2^e float32 elements (default 20 .. 28)\n"
    "  -n, -w      timed and warm-up runs per kernel (default 20, 5); the median is reported\n"
    "  --device N  the GPU to use (default 0); naming one that does not exist is an error\n"
    "  --density   k/n of top-k, RBGS and the sparse sum (default 0.01)\n"
    "  --ranks K   messages summed by the sparse sum and sign decode (default 8)\n"
    "  --csv       comma-separated rows instead of the table\n"
    "Without a GPU (and no --device) it prints 'skipped' and exits 0.\n";

long parse_int(const std::string& flag, const char* text, long lo, long hi) {
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || v < lo || v > hi)
    throw sparcol::Error(sparcol::ErrorCode::kInvalidArgument, -1,
                         flag + " wants an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                             "], got '" + text + "'");
  return v;
}

// Returns false after --help.
bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return false;
    }
    if (a == "--csv") {
      o.csv = true;
      continue;
    }
    static const char* const kWithValue[] = {"-b", "-e", "-n", "-w", "--device", "--ranks", "--density"};
    if (std::find(std::begin(kWithValue), std::end(kWithValue), a) == std::end(kWithValue))
      throw sparcol::Error(sparcol::ErrorCode::kInvalidArgument, -1, "unknown flag '" + a + "' (see --help)");
    if (i + 1 >= argc)
      throw sparcol::Error(sparcol::ErrorCode::kInvalidArgument, -1, a + " needs a value (see --help)");
    const char* v = argv[++i];
    if (a == "-b") {
      o.log2_min = static_cast<int>(parse_int(a, v, 0, 31));
    } else if (a == "-e") {
      o.log2_max = static_cast<int>(parse_int(a, v, 0, 31));
    } else if (a == "-n") {
      o.iters = static_cast<int>(parse_int(a, v, 1, 100000));
    } else if (a == "-w") {
      o.warmup = static_cast<int>(parse_int(a, v, 0, 100000));
    } else if (a == "--device") {
      o.device = static_cast<int>(parse_int(a, v, 0, 1 << 20));
    } else if (a == "--ranks") {
      o.ranks = static_cast<int>(parse_int(a, v, 1, 1024));
    } else if (a == "--density") {
      char* end = nullptr;
      o.density = std::strtod(v, &end);
      if (end == v || *end != '\0' || !(o.density > 0.0 && o.density <= 1.0))
        throw sparcol::Error(sparcol::ErrorCode::kInvalidArgument, -1,
                             std::string("--density wants a number in (0, 1], got '") + v + "'");
    } else {
      throw sparcol::Error(sparcol::ErrorCode::kInternal, -1, "flag '" + a + "' is listed but not handled");
    }
  }
  if (o.log2_min > o.log2_max)
    throw sparcol::Error(sparcol::ErrorCode::kInvalidArgument, -1,
                         "-b " + std::to_string(o.log2_min) + " exceeds -e " + std::to_string(o.log2_max));
  return true;
}

// Deterministic data: signed values over many binades (like gradients), from a hash of the index.
__global__ void fill_kernel(float* v, U64 n, U64 seed) {
  for (U64 i = blockIdx.x * static_cast<U64>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<U64>(gridDim.x) * blockDim.x) {
    U64 z = (i + seed) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const float mant = 1.0f + static_cast<float>(z >> 41) * 0x1.0p-23f;
    const float mag = ldexpf(mant, static_cast<int>(z % 24) - 12);
    v[i] = (z >> 40) & 1 ? -mag : mag;
  }
}

__global__ void keys_kernel(const float* v, std::uint32_t* keys, Index* idx, U64 n) {
  for (U64 i = blockIdx.x * static_cast<U64>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<U64>(gridDim.x) * blockDim.x) {
    keys[i] = dev::magnitude_key(v[i]);
    idx[i] = static_cast<Index>(i);
  }
}

void fill(const dev::Stream& s, float* d, U64 n, U64 seed) {
  if (n == 0) return;
  fill_kernel<<<1024, 256, 0, static_cast<cudaStream_t>(s.handle())>>>(d, n, seed);
  BENCH_CUDA(cudaGetLastError());
}

class Timer {
 public:
  explicit Timer(const dev::Stream& s) : s_(s) {
    BENCH_CUDA(cudaEventCreate(&start_));
    BENCH_CUDA(cudaEventCreate(&stop_));
  }
  ~Timer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // Median time of one call of f in microseconds; setup runs before each call, untimed.
  double median_us(int warmup, int iters, const std::function<void()>& f,
                   const std::function<void()>& setup) {
    const auto stream = static_cast<cudaStream_t>(s_.handle());
    for (int i = 0; i < warmup; ++i) {
      if (setup) setup();
      f();
    }
    std::vector<double> t;
    for (int i = 0; i < iters; ++i) {
      if (setup) setup();
      BENCH_CUDA(cudaEventRecord(start_, stream));
      f();
      BENCH_CUDA(cudaEventRecord(stop_, stream));
      BENCH_CUDA(cudaEventSynchronize(stop_));
      float ms = 0;
      BENCH_CUDA(cudaEventElapsedTime(&ms, start_, stop_));
      t.push_back(1000.0 * ms);
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
  }

 private:
  const dev::Stream& s_;
  cudaEvent_t start_{}, stop_{};
};

struct Row {
  std::string kernel;
  U64 n;
  double bytes;
  double us;
};

void print_row(const Options& o, const Row& r, double copy_gbs) {
  const double gbs = r.bytes / (r.us * 1e3);
  if (o.csv) {
    std::printf("%s,%llu,%.0f,%.2f,%.1f,%.1f\n", r.kernel.c_str(), static_cast<unsigned long long>(r.n),
                r.bytes, r.us, gbs, 100.0 * gbs / copy_gbs);
  } else {
    std::printf("%-28s %12llu %14.0f %11.2f %9.1f %8.1f\n", r.kernel.c_str(),
                static_cast<unsigned long long>(r.n), r.bytes, r.us, gbs, 100.0 * gbs / copy_gbs);
  }
  std::fflush(stdout);
}

// Everything one size needs, allocated once per size.
struct Buffers {
  dev::DeviceBuffer<float> a, b, c, g, x, send, packed, val, pair_val;
  dev::DeviceBuffer<Index> idx, pair_idx, sort_idx_in, sort_idx_out;
  dev::DeviceBuffer<std::uint32_t> words, keys_in, keys_out;
  dev::DeviceBuffer<float> scales, scale;
  dev::DeviceBuffer<dev::SampledTopkResult> result;
  dev::DeviceBuffer<char> scratch;
};

void bench_size(const Options& o, const dev::Stream& s, Timer& timer, U64 n) {
  const U64 k = sparcol::compress::k_round(o.density, n);
  const U64 K = static_cast<U64>(o.ranks);
  const U64 words = sparcol::SignLayout::words_for(n);
  const U64 pairs = K * k;
  // Scratch: the largest of every kernel's needs, and CUB's sort.
  std::size_t sort_bytes = 0;
  BENCH_CUDA(cub::DeviceRadixSort::SortPairsDescending(
      nullptr, sort_bytes, static_cast<const std::uint32_t*>(nullptr), static_cast<std::uint32_t*>(nullptr),
      static_cast<const Index*>(nullptr), static_cast<Index*>(nullptr), n));
  const auto splan = sparcol::compress::dgc_sample_plan(n, k, 0.01);
  const dev::SamplePlan plan{splan.stride, sparcol::compress::dgc_sample_offset(splan.stride, 1, 0, 0),
                             splan.top_samples};
  const bool sampled = splan.stride > 1 && k < n;
  std::size_t scratch = std::max({dev::topk_scratch_bytes(n, k), dev::reduce_scratch_bytes(n),
                                  dev::sparse_sum_scratch_bytes(pairs, n), sort_bytes});
  if (sampled) scratch = std::max(scratch, dev::topk_sampled_scratch_bytes(n, k, plan));
  const U64 need =
      6 * n * 4 + 4 * n * 4 /*sort keys and indices*/ + 4 * k * 8 + pairs * 8 + words * K * 4 + scratch;
  const dev::MemoryInfo mem = dev::memory_info();
  if (need + (U64{1} << 30) > mem.free_bytes) {
    std::printf("# n = %llu skipped: needs %llu MiB, %llu MiB free\n", static_cast<unsigned long long>(n),
                static_cast<unsigned long long>(need >> 20),
                static_cast<unsigned long long>(mem.free_bytes >> 20));
    return;
  }
  Buffers B;
  B.a = dev::DeviceBuffer<float>(n);
  B.b = dev::DeviceBuffer<float>(n);
  B.c = dev::DeviceBuffer<float>(n);
  B.g = dev::DeviceBuffer<float>(n);
  B.x = dev::DeviceBuffer<float>(n);
  B.send = dev::DeviceBuffer<float>(k);
  B.packed = dev::DeviceBuffer<float>(k);
  B.idx = dev::DeviceBuffer<Index>(k);
  B.val = dev::DeviceBuffer<float>(k);
  B.pair_idx = dev::DeviceBuffer<Index>(pairs);
  B.pair_val = dev::DeviceBuffer<float>(pairs);
  B.words = dev::DeviceBuffer<std::uint32_t>(words * K);
  B.scales = dev::DeviceBuffer<float>(K);
  B.scale = dev::DeviceBuffer<float>(1);
  B.result = dev::DeviceBuffer<dev::SampledTopkResult>(1);
  B.keys_in = dev::DeviceBuffer<std::uint32_t>(n);
  B.keys_out = dev::DeviceBuffer<std::uint32_t>(n);
  B.sort_idx_in = dev::DeviceBuffer<Index>(n);
  B.sort_idx_out = dev::DeviceBuffer<Index>(n);
  B.scratch = dev::DeviceBuffer<char>(std::max<std::size_t>(scratch, 1));
  for (auto [p, seed] :
       {std::pair{B.a.data(), 1}, {B.b.data(), 2}, {B.c.data(), 3}, {B.g.data(), 4}, {B.x.data(), 5}})
    fill(s, p, n, static_cast<U64>(seed) * n);
  fill(s, B.scales.data(), K, 6);
  const sparcol::Block none{};
  const sparcol::Block blk{n, n - k / 2, k};  // wraps around the end
  const dev::GradientInput grad{B.g.data()};
  s.synchronize();

  const int W = o.warmup, I = o.iters;
  const double f4 = 4.0 * static_cast<double>(n);
  const double kb = 4.0 * static_cast<double>(k);
  std::vector<Row> rows;
  auto time = [&](const std::string& name, double bytes, const std::function<void()>& f,
                  const std::function<void()>& setup = nullptr) {
    rows.push_back({name, n, bytes, timer.median_us(W, I, f, setup)});
  };

  time("copy (cudaMemcpy D2D)", 2 * f4, [&] { dev::copy(s, B.c.data(), B.a.data(), n); });
  time("copy_kernel", 2 * f4, [&] { dev::copy_kernel(s, B.c.data(), B.a.data(), n); });
  time("gmc_accumulate", 4 * f4,
       [&] { dev::gmc_accumulate(s, B.a.data(), B.b.data(), grad, 0.9f, n, none, nullptr); });
  time("gmc_accumulate+block", 4 * f4 + kb,
       [&] { dev::gmc_accumulate(s, B.a.data(), B.b.data(), grad, 0.9f, n, blk, B.send.data()); });
  time("dgc_accumulate+block+mfm", 5 * f4 + kb, [&] {
    dev::dgc_accumulate(s, B.a.data(), B.b.data(), grad, 0.9f, false, true, n, blk, B.send.data());
  });
  time("ef_accumulate+block", 5 * f4 + kb,
       [&] { dev::ef_accumulate(s, B.a.data(), B.b.data(), grad, 0.9f, 0.1f, n, blk, B.send.data()); });
  time("cser_accumulate+block", 5 * f4 + kb,
       [&] { dev::cser_accumulate(s, B.a.data(), B.b.data(), grad, 0.9f, 0.1f, n, blk, B.send.data()); });
  time("dmsgd_apply", 5 * f4,
       [&] { dev::dmsgd_apply(s, B.a.data(), B.x.data(), B.c.data(), 0.9f, 0.1f, n); });
  time("apply_update", 3 * f4, [&] { dev::apply_update(s, B.x.data(), B.c.data(), 0.1f, 0.0f, n); });
  time("rbgs_pack", 2 * kb, [&] { dev::rbgs_pack(s, B.a.data(), blk, B.packed.data()); });
  time("rbgs_unpack+fill", f4 + kb,
       [&] { dev::rbgs_unpack(s, B.packed.data(), blk, 8.0f, B.c.data(), true); });
  time("sign_pack", f4 + f4 / 32, [&] {
    dev::sign_pack(s, B.a.data(), n, B.words.data(), B.scale.data(), B.scratch.data(), B.scratch.bytes());
  });
  // Sign decode of K messages: words of the same pack repeated (the content does not change the time).
  for (U64 r = 1; r < K; ++r)
    BENCH_CUDA(cudaMemcpyAsync(B.words.data() + r * words, B.words.data(), words * 4,
                               cudaMemcpyDeviceToDevice, static_cast<cudaStream_t>(s.handle())));
  time("sign_decode_mean K", f4 + static_cast<double>(K) * f4 / 32,
       [&] { dev::sign_decode_mean(s, B.words.data(), B.scales.data(), o.ranks, n, B.c.data()); });

  time("topk exact", f4 + 2 * kb, [&] {
    dev::topk(s, B.a.data(), n, k, B.idx.data(), B.val.data(), B.scratch.data(), B.scratch.bytes());
  });
  if (sampled) {
    time("topk_sampled (DGC)", f4 + 2 * kb, [&] {
      dev::topk_sampled(s, B.a.data(), n, k, plan, B.idx.data(), B.val.data(), B.result.data(),
                        B.scratch.data(), B.scratch.bytes());
    });
  }
  // Messages of K ranks for the sparse sum: every rank sends the same top-k pairs, so each index has
  // a run of K values to add in order (full overlap: the most work per output element).
  for (U64 r = 0; r < K; ++r) {
    BENCH_CUDA(cudaMemcpyAsync(B.pair_idx.data() + r * k, B.idx.data(), k * sizeof(Index),
                               cudaMemcpyDeviceToDevice, static_cast<cudaStream_t>(s.handle())));
    BENCH_CUDA(cudaMemcpyAsync(B.pair_val.data() + r * k, B.val.data(), k * sizeof(float),
                               cudaMemcpyDeviceToDevice, static_cast<cudaStream_t>(s.handle())));
  }
  time("sparse_sum K", f4 + 2.0 * static_cast<double>(pairs) * 4, [&] {
    dev::sparse_sum(s, B.pair_idx.data(), B.pair_val.data(), pairs, n, static_cast<float>(K), B.c.data(),
                    B.scratch.data(), B.scratch.bytes());
  });
  const auto cs = static_cast<cudaStream_t>(s.handle());
  keys_kernel<<<1024, 256, 0, cs>>>(B.a.data(), B.keys_in.data(), B.sort_idx_in.data(), n);
  BENCH_CUDA(cudaGetLastError());
  time("cub sort pairs (reference)", 4 * f4, [&] {
    std::size_t bytes = sort_bytes;
    BENCH_CUDA(cub::DeviceRadixSort::SortPairsDescending(B.scratch.data(), bytes, B.keys_in.data(),
                                                         B.keys_out.data(), B.sort_idx_in.data(),
                                                         B.sort_idx_out.data(), n, 0, 32, cs));
  });
  BENCH_CUDA(cudaStreamSynchronize(cs));

  const double copy_gbs = rows[0].bytes / (rows[0].us * 1e3);
  for (const Row& r : rows) print_row(o, r, copy_gbs);
  if (!o.csv) std::printf("\n");
}

int run(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) return 0;
  if (!dev::has_gpu() && o.device < 0) {
    std::printf("# sparcol-bench-kernels: skipped: no CUDA device (%s)\n", dev::no_gpu_reason().c_str());
    return 0;
  }
  dev::set_device(o.device < 0 ? 0 : o.device);  // an ordinal that does not exist: kInvalidArgument
  cudaDeviceProp prop{};
  BENCH_CUDA(cudaGetDeviceProperties(&prop, dev::current_device()));
  std::printf("# sparcol-bench-kernels (sparcol %s)\n", SPARCOL_VERSION_STRING);
  std::printf("# device %d: %s, %d SMs, compute %d.%d, %.1f GiB\n", dev::current_device(), prop.name,
              prop.multiProcessorCount, prop.major, prop.minor,
              static_cast<double>(prop.totalGlobalMem) / (1 << 30));
  std::printf("# sizes 2^%d .. 2^%d float32, density %g, K = %d, %d runs (median) after %d warm-up\n",
              o.log2_min, o.log2_max, o.density, o.ranks, o.iters, o.warmup);
  std::printf(
      "# bytes: minimum bytes read + written; GB/s = bytes / time; %%copy = GB/s / copy GB/s at that n\n");
  if (o.csv) {
    std::printf("kernel,n,bytes,time_us,GBps,pct_copy\n");
  } else {
    std::printf("%-28s %12s %14s %11s %9s %8s\n", "# kernel", "n", "bytes", "time(us)", "GB/s", "%copy");
  }
  dev::Stream s;
  Timer timer(s);
  for (int e = o.log2_min; e <= o.log2_max; ++e) bench_size(o, s, timer, U64{1} << e);
  std::printf("# copy bandwidth: the first row of each size (cudaMemcpyAsync device to device)\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const sparcol::Error& e) {
    std::fprintf(stderr, "sparcol: rank 0: error: %s\n", e.message().c_str());
    return sparcol::exit_code(e.code());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sparcol: rank 0: error: %s\n", e.what());
    return sparcol::exit_code(sparcol::ErrorCode::kInternal);
  }
}
