// Exact top-k by magnitude (ALGORITHMS.md 1.1): radix select, no sort.
//
// Result: the k indices with the largest magnitude_key (elementwise.hpp: |v| as bits, NaN above
// +Inf), ascending, ties at the k-th largest key K going to the smaller indices; the same as
// compress::TopkCompressor and the CPU twin device::cpu::topk.
// Steps (select.cuh has the shared pieces; all on the stream, no host synchronization):
//   1. radix select of K: for each digit (bits 30..20, 19..9, 8..0 of the key) one histogram pass over
//      v counts the keys that share the digits chosen so far (shared-memory histogram per block,
//      warp-aggregated with __match_any_sync so that ties cost one atomic per warp), then one block
//      scans the buckets from the top to find the one that holds the k-th key;
//   2. r = k - (keys above K) of the E keys equal to K are taken; if r < E, the index of the r-th
//      tie is found from per-tile tie counts (one more pass over v, only then);
//   3. CUB DeviceSelect::If over the indices with key > K, or key == K and index <= cut: a single
//      order-preserving pass writing exactly k ascending indices; then a gather of their values.
// Passes over v: 4 (5 when ties at K are cut), each reading 4 bytes per element. Scratch: the state,
// 3 x 2048 counters, one count per 4096 elements, CUB's temporary storage (topk_scratch_bytes).
// Preconditions: k <= n <= kMaxElements (uint32 indices).
#include <thrust/iterator/counting_iterator.h>
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_select.cuh>

#include "launch.cuh"
#include "select.cuh"
#include "sparcol/device/ops.hpp"

namespace sparcol::device {

namespace detail {

namespace {

constexpr int kHistThreads = 512;
constexpr int kHistUnroll = 4;
constexpr int kFindThreads = 1024;
constexpr int kFindItems = 16;
constexpr int kCountThreads = 256;
constexpr std::uint32_t kNoBucket = 0xffffffffu;

__global__ void radix_begin_kernel(SelectState* st, int only_if_exact) {
  st->radix_active = only_if_exact != 0 ? (st->phase == kPhaseExact ? 1u : 0u) : 1u;
  st->prefix = 0;
  st->above = 0;
  st->bucket = 0;
}

// Histogram of digit `digit` over the keys that share the prefix. Warp-uniform grid-stride loop: a
// warp handles 32 * kHistUnroll consecutive keys per iteration, so every lane takes part in every
// __match_any_sync.
__global__ void __launch_bounds__(kHistThreads)
    radix_histogram_kernel(KeySource src, std::uint64_t n, int digit, const SelectState* st,
                           unsigned long long* hist) {
  __shared__ unsigned int sh[kRadixBuckets];
  if (st->radix_active == 0) return;
  const std::uint32_t prefix = st->prefix;
  const int buckets = 1 << radix_bits(digit);
  for (int b = static_cast<int>(threadIdx.x); b < buckets; b += static_cast<int>(blockDim.x)) sh[b] = 0;
  __syncthreads();
  const unsigned lane = threadIdx.x % 32;
  const std::uint64_t warp = (static_cast<std::uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const std::uint64_t warps = static_cast<std::uint64_t>(gridDim.x) * blockDim.x / 32;
  constexpr std::uint64_t kSpan = 32 * kHistUnroll;
  for (std::uint64_t base = warp * kSpan; base < n; base += warps * kSpan) {
    std::uint32_t b[kHistUnroll];
#pragma unroll
    for (int u = 0; u < kHistUnroll; ++u) {
      const std::uint64_t i = base + static_cast<std::uint64_t>(u) * 32 + lane;
      b[u] = kNoBucket;
      if (i < n) {
        const std::uint32_t key = src.key(i);
        if (radix_in_prefix(key, digit, prefix)) b[u] = radix_bucket(key, digit);
      }
    }
#pragma unroll
    for (int u = 0; u < kHistUnroll; ++u) {
      const unsigned peers = __match_any_sync(0xffffffffu, b[u]);
      if (b[u] != kNoBucket && lane == static_cast<unsigned>(__ffs(peers) - 1))
        atomicAdd(&sh[b[u]], __popc(peers));
    }
  }
  __syncthreads();
  for (int b = static_cast<int>(threadIdx.x); b < buckets; b += static_cast<int>(blockDim.x))
    if (sh[b] != 0) atomicAdd(&hist[b], static_cast<unsigned long long>(sh[b]));
}

// One block: the bucket holding the k-th largest key. Position p = 0 is the largest bucket; thread t
// holds positions 2t and 2t+1; an inclusive scan gives the keys at or above each position.
__global__ void __launch_bounds__(kFindThreads)
    radix_find_kernel(SelectState* st, const unsigned long long* hist, int digit, std::uint64_t k) {
  using Scan = cub::BlockScan<unsigned long long, kFindThreads>;
  __shared__ typename Scan::TempStorage temp;
  if (st->radix_active == 0) return;
  const int nb = 1 << radix_bits(digit);
  const std::uint64_t above = st->above;
  const std::uint32_t prefix = st->prefix;
  unsigned long long c[2], incl[2];
  for (int j = 0; j < 2; ++j) {
    const int p = 2 * static_cast<int>(threadIdx.x) + j;
    c[j] = p < nb ? hist[nb - 1 - p] : 0ull;
  }
  Scan(temp).InclusiveSum(c, incl);
  __syncthreads();  // every thread has read the state before one of them writes it
  for (int j = 0; j < 2; ++j) {
    const int p = 2 * static_cast<int>(threadIdx.x) + j;
    const std::uint64_t before = above + incl[j] - c[j];
    if (p < nb && before < k && k <= above + incl[j]) {
      const auto b = static_cast<std::uint32_t>(nb - 1 - p);
      st->prefix = (prefix << radix_bits(digit)) | b;
      st->above = before;
      st->bucket = c[j];
    }
  }
}

__global__ void topk_finish_kernel(SelectState* st, std::uint64_t k) {
  if (st->radix_active == 0) return;
  const std::uint32_t t = st->prefix;  // K, exact after three digits
  const std::uint64_t ties = k - st->above;
  st->lo = t;
  st->tie_key = t;
  st->cut = ~0ull;
  st->count_total = 0;
  if (ties < st->bucket) {
    st->cut_rank = ties;
    st->count_lo = t;
    st->count_hi = t;
    st->count_request = 1;
  } else {
    st->cut_rank = 0;
    st->count_request = 0;
  }
}

// Grid-stride over tiles, so that a launch with nothing to do (DGC's rounds after its decision) costs
// only a few resident blocks.
__global__ void __launch_bounds__(kCountThreads)
    count_tiles_kernel(KeySource src, std::uint64_t n, std::uint64_t tiles, SelectState* st,
                       std::uint32_t* tile_counts) {
  using Reduce = cub::BlockReduce<unsigned, kCountThreads>;
  __shared__ typename Reduce::TempStorage temp;
  if (st->count_request == 0) return;
  const std::uint32_t lo = st->count_lo, hi = st->count_hi;
  for (std::uint64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const std::uint64_t first = tile * kCutTile;
    unsigned c = 0;
#pragma unroll
    for (int j = 0; j < static_cast<int>(kCutTile) / kCountThreads; ++j) {
      const std::uint64_t i = first + static_cast<std::uint64_t>(j) * kCountThreads + threadIdx.x;
      if (i < n) {
        const std::uint32_t key = src.key(i);
        c += (key >= lo && key <= hi) ? 1u : 0u;
      }
    }
    const unsigned total = Reduce(temp).Sum(c);
    if (threadIdx.x == 0) {
      tile_counts[tile] = total;
      if (total != 0) atomicAdd(&st->count_total, static_cast<unsigned long long>(total));
    }
    __syncthreads();  // temp is reused by the next tile
  }
}

// One block: the index of the cut_rank-th key in [count_lo, count_hi], in index order.
__global__ void __launch_bounds__(kFindThreads)
    find_cut_kernel(KeySource src, std::uint64_t n, std::uint64_t tiles, SelectState* st,
                    const std::uint32_t* tile_counts) {
  using Scan = cub::BlockScan<unsigned long long, kFindThreads>;
  __shared__ typename Scan::TempStorage temp;
  __shared__ unsigned long long s_tile, s_rank;
  __shared__ int s_found;
  const std::uint64_t rank = st->cut_rank;
  if (rank == 0) return;
  const std::uint32_t lo = st->count_lo, hi = st->count_hi;
  if (threadIdx.x == 0) s_found = 0;
  __syncthreads();
  // Phase 1: the tile that holds it. Each thread takes kFindItems consecutive tile counts, so one
  // scan covers kFindThreads * kFindItems tiles (2^28 elements: 4 scans).
  unsigned long long carry = 0;
  for (std::uint64_t base = 0; base < tiles; base += static_cast<std::uint64_t>(kFindThreads) * kFindItems) {
    const std::uint64_t first_tile = base + static_cast<std::uint64_t>(threadIdx.x) * kFindItems;
    unsigned long long c[kFindItems];
    unsigned long long local = 0;
#pragma unroll
    for (int j = 0; j < kFindItems; ++j) {
      const std::uint64_t t = first_tile + static_cast<std::uint64_t>(j);
      c[j] = t < tiles ? tile_counts[t] : 0ull;
      local += c[j];
    }
    unsigned long long incl = 0, total = 0;
    Scan(temp).InclusiveSum(local, incl, total);
    const unsigned long long before = carry + incl - local;
    if (local != 0 && before < rank && rank <= carry + incl) {
      unsigned long long acc = before;
      for (int j = 0; j < kFindItems; ++j) {
        if (acc + c[j] >= rank) {
          s_tile = first_tile + static_cast<std::uint64_t>(j);
          s_rank = rank - acc;
          break;
        }
        acc += c[j];
      }
      s_found = 1;
    }
    __syncthreads();
    if (s_found != 0) break;
    carry += total;
  }
  if (s_found == 0) return;  // unreachable: the counts hold at least `rank` keys
  // Phase 2: the element within the tile.
  const std::uint64_t first = s_tile * kCutTile;
  const unsigned long long want = s_rank;
  carry = 0;
  for (std::uint64_t off = 0; off < kCutTile; off += kFindThreads) {
    const std::uint64_t i = first + off + threadIdx.x;
    unsigned long long f = 0;
    if (i < n) {
      const std::uint32_t key = src.key(i);
      f = (key >= lo && key <= hi) ? 1ull : 0ull;
    }
    unsigned long long incl = 0, total = 0;
    Scan(temp).InclusiveSum(f, incl, total);
    if (f != 0 && carry + incl == want) st->cut = i;
    carry += total;
    __syncthreads();
    if (carry >= want) break;
  }
}

struct SelectPredicate {
  const float* v;
  const SelectState* st;
  __device__ bool operator()(Index i) const {
    const std::uint32_t key = magnitude_key(v[i]);
    return key >= st->lo && (key > st->tie_key || static_cast<std::uint64_t>(i) <= st->cut);
  }
};

__global__ void gather_kernel(const float* d_v, const Index* d_idx, float* d_val, std::uint64_t k,
                              const std::uint64_t* d_num) {
  const std::uint64_t count = *d_num < k ? *d_num : k;
  const std::uint64_t step = static_cast<std::uint64_t>(gridDim.x) * blockDim.x;
  for (std::uint64_t j = static_cast<std::uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < count;
       j += step)
    d_val[j] = d_v[d_idx[j]];
}

std::uint64_t tiles_for(std::uint64_t n) {
  return (n + kCutTile - 1) / kCutTile;
}

using IndexIterator = thrust::counting_iterator<Index>;

}  // namespace

SelectScratch carve_select(void* base, std::uint64_t n, std::uint64_t samples) {
  SelectScratch sc;
  SPARCOL_CUDA_CHECK(cub::DeviceSelect::If(nullptr, sc.cub_bytes, IndexIterator(0),
                                           static_cast<Index*>(nullptr), static_cast<std::uint64_t*>(nullptr),
                                           static_cast<std::int64_t>(n), SelectPredicate{nullptr, nullptr}));
  ScratchCarver c(base);
  sc.state = c.take<SelectState>(1);
  sc.hist = c.take<unsigned long long>(static_cast<std::uint64_t>(kRadixDigits) * kRadixBuckets);
  sc.tile_counts = c.take<std::uint32_t>(tiles_for(n));
  sc.sample = c.take<std::uint32_t>(samples);
  sc.num_selected = c.take<std::uint64_t>(1);
  sc.cub_temp = c.take_bytes(sc.cub_bytes);
  sc.total = c.size();
  return sc;
}

void reset_select(const Stream& s, const SelectScratch& sc) {
  memset_async(s, sc.state, 0, sizeof(SelectState));
  memset_async(s, sc.hist, 0, sizeof(unsigned long long) * kRadixDigits * kRadixBuckets);
}

void launch_radix_select(const Stream& s, const KeySource& src, std::uint64_t n, std::uint64_t k,
                         const SelectScratch& sc, bool only_if_exact) {
  const cudaStream_t cs = cuda_stream(s);
  radix_begin_kernel<<<1, 1, 0, cs>>>(sc.state, only_if_exact ? 1 : 0);
  SPARCOL_CUDA_CHECK_LAUNCH();
  const unsigned grid = grid_for(radix_histogram_kernel, kHistThreads, n,
                                 static_cast<std::uint64_t>(kHistThreads) * kHistUnroll);
  for (int d = 0; d < kRadixDigits; ++d) {
    unsigned long long* h = sc.hist + static_cast<std::size_t>(d) * kRadixBuckets;
    radix_histogram_kernel<<<grid, kHistThreads, 0, cs>>>(src, n, d, sc.state, h);
    SPARCOL_CUDA_CHECK_LAUNCH();
    radix_find_kernel<<<1, kFindThreads, 0, cs>>>(sc.state, h, d, k);
    SPARCOL_CUDA_CHECK_LAUNCH();
  }
}

void launch_topk_finish(const Stream& s, std::uint64_t k, const SelectScratch& sc) {
  topk_finish_kernel<<<1, 1, 0, cuda_stream(s)>>>(sc.state, k);
  SPARCOL_CUDA_CHECK_LAUNCH();
}

void launch_count_tiles(const Stream& s, const KeySource& src, std::uint64_t n, const SelectScratch& sc) {
  const std::uint64_t tiles = tiles_for(n);
  const unsigned grid = grid_for(count_tiles_kernel, kCountThreads, tiles, 1);
  count_tiles_kernel<<<grid, kCountThreads, 0, cuda_stream(s)>>>(src, n, tiles, sc.state, sc.tile_counts);
  SPARCOL_CUDA_CHECK_LAUNCH();
}

void launch_find_cut(const Stream& s, const KeySource& src, std::uint64_t n, const SelectScratch& sc) {
  find_cut_kernel<<<1, kFindThreads, 0, cuda_stream(s)>>>(src, n, tiles_for(n), sc.state, sc.tile_counts);
  SPARCOL_CUDA_CHECK_LAUNCH();
}

void launch_final_select(const Stream& s, const float* d_v, std::uint64_t n, std::uint64_t k, Index* d_idx,
                         float* d_val, const SelectScratch& sc) {
  const cudaStream_t cs = cuda_stream(s);
  std::size_t bytes = sc.cub_bytes;
  SPARCOL_CUDA_CHECK(cub::DeviceSelect::If(sc.cub_temp, bytes, IndexIterator(0), d_idx, sc.num_selected,
                                           static_cast<std::int64_t>(n), SelectPredicate{d_v, sc.state}, cs));
  const unsigned grid = grid_for(gather_kernel, kBlockThreads, k, kBlockThreads);
  gather_kernel<<<grid, kBlockThreads, 0, cs>>>(d_v, d_idx, d_val, k, sc.num_selected);
  SPARCOL_CUDA_CHECK_LAUNCH();
}

}  // namespace detail

std::size_t topk_scratch_bytes(std::uint64_t n, std::uint64_t k) {
  if (k == 0 || k >= n) return 0;
  detail::require_gpu("topk_scratch_bytes");
  return detail::carve_select(nullptr, n, 0).total;
}

void topk(const Stream& s, const float* d_v, std::uint64_t n, std::uint64_t k, Index* d_idx, float* d_val,
          void* d_scratch, std::size_t scratch_bytes) {
  SPARCOL_CHECK_ARG(
      n <= kMaxElements, -1,
      "topk: vectors longer than 2^32-1 elements are not supported (n = " + std::to_string(n) + ")");
  SPARCOL_CHECK_ARG(k <= n, -1,
                    "topk: k = " + std::to_string(k) + " exceeds the vector length n = " + std::to_string(n));
  if (k == 0) return;
  detail::dev(d_v, "topk: v");
  detail::dev(d_idx, "topk: indices");
  detail::dev(d_val, "topk: values");
  if (k == n) {
    detail::launch_elementwise(s, n, detail::IotaCopyOp{d_v, d_idx, d_val});
    return;
  }
  detail::check_scratch(d_scratch, scratch_bytes, topk_scratch_bytes(n, k), "topk");
  const detail::SelectScratch sc = detail::carve_select(d_scratch, n, 0);
  const detail::KeySource src{d_v, nullptr};
  detail::reset_select(s, sc);
  detail::launch_radix_select(s, src, n, k, sc, /*only_if_exact=*/false);
  detail::launch_topk_finish(s, k, sc);
  detail::launch_count_tiles(s, src, n, sc);
  detail::launch_find_cut(s, src, n, sc);
  detail::launch_final_select(s, d_v, n, k, d_idx, d_val, sc);
}

void scatter_zero(const Stream& s, float* d_v, std::uint64_t n, const Index* d_idx, std::uint64_t max_count,
                  const std::uint64_t* d_count) {
  if (max_count == 0) return;
  detail::dev(d_v, "scatter_zero: v");
  detail::dev(d_idx, "scatter_zero: indices");
  if (d_count == nullptr) {
    detail::launch_elementwise(s, max_count, detail::ScatterZeroOp{d_v, n, d_idx});
    return;
  }
  detail::dev(d_count, "scatter_zero: count");
  detail::launch_elementwise(s, max_count, detail::ScatterZeroCountedOp{d_v, n, d_idx, d_count});
}

}  // namespace sparcol::device
