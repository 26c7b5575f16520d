// Sign packing with scale, sign decoding, and the deterministic reductions (ALGORITHMS.md 1.4).
//
// sign_pack, one pass over v: block b handles tile b (kReduceTile = 8192 elements); warp w of the
// block covers elements tile * 8192 + w * 1024 + [0, 1024) in 32 steps of 32 consecutive elements.
// At step j every lane tests its element and __ballot_sync gathers the 32 sign bits, which are
// exactly word (tile * 256 + w * 32 + j) of the output (bit l = element 32*word + l); lane j keeps
// that word and all lanes store theirs at the end, coalesced. The same loads feed the |v| sum: the
// thread adds its 32 elements in double, the block combines its 256 sums by a fixed tree into the
// tile's partial, and a second one-block kernel combines the partials in a fixed order
// (elementwise.hpp, "Deterministic reductions"). No atomics: the scale is bitwise reproducible and
// equal to the CPU twin's. Bytes: 4 per element read, 1/8 written.
// sum_squares is the same reduction of v*v (DGC's clipping norm).
// Decoding (mean of K messages, majority vote) is elementwise over the n outputs; each output reads
// its bit of every rank's words (K words per 32 outputs, cached) and adds in rank order.
#include "launch.cuh"
#include "sparcol/device/ops.hpp"

namespace sparcol::device {

namespace {

// One warp's ballot is one word of the output: the kernel needs SignLayout's 32-bit words.
static_assert(SignLayout::kWordBits == 32, "sign_pack packs one warp ballot per SignLayout word");

// The tile's partial from one double per thread: the tree of elementwise.hpp.
__device__ double block_tree(double* s, double acc) {
  const int t = static_cast<int>(threadIdx.x);
  s[t] = acc;
  __syncthreads();
  for (int h = kReduceThreads / 2; h >= 1; h /= 2) {
    if (t < h) s[t] = dadd(s[t], s[t + h]);
    __syncthreads();
  }
  return s[0];
}

// Term: 0 = |v| (and pack the signs into d_words), 1 = v*v.
template <int Term>
__global__ void __launch_bounds__(kReduceThreads)
    reduce_tiles_kernel(const float* d_v, std::uint64_t n, std::uint32_t* d_words, double* d_partial) {
  __shared__ double s[kReduceThreads];
  const std::uint64_t tile = blockIdx.x;
  const int thread = static_cast<int>(threadIdx.x);
  const int lane = thread % 32;
  double acc = 0.0;
  std::uint32_t word = 0;
#pragma unroll 8
  for (int j = 0; j < 32; ++j) {
    const std::uint64_t i = reduce_element(tile, thread, j);
    const bool inside = i < n;
    const float x = inside ? d_v[i] : 0.0f;
    if (inside) acc = dadd(acc, Term == 0 ? abs_term(x) : square_term(x));
    if (Term == 0) {
      const std::uint32_t bits = __ballot_sync(0xffffffffu, inside && SignLayout::bit_for(x) != 0u);
      if (lane == j) word = bits;
    }
  }
  if (Term == 0) {
    // Word index of this lane's word: its first element is reduce_element(tile, thread - lane, lane).
    const std::uint64_t first = reduce_element(tile, thread - lane, lane);
    if (first < n) d_words[SignLayout::word_of(first)] = word;
  }
  const double partial = block_tree(s, acc);
  if (thread == 0) d_partial[tile] = partial;
}

// Combines the partials: thread t adds partials t, t + kReduceThreads, ... in order, then the tree.
// mode 0: *d_scale = total / n (as float); mode 1: *d_sum = total.
__global__ void __launch_bounds__(kReduceThreads)
    reduce_final_kernel(const double* d_partial, std::uint64_t tiles, std::uint64_t n, int mode,
                        float* d_scale, double* d_sum) {
  __shared__ double s[kReduceThreads];
  double acc = 0.0;
  for (std::uint64_t p = threadIdx.x; p < tiles; p += kReduceThreads) acc = dadd(acc, d_partial[p]);
  const double total = block_tree(s, acc);
  if (threadIdx.x == 0) {
    if (mode == 0) {
      *d_scale = static_cast<float>(total / static_cast<double>(n));
    } else {
      *d_sum = total;
    }
  }
}

std::uint64_t tiles_for(std::uint64_t n) {
  return (n + kReduceTile - 1) / kReduceTile;
}

}  // namespace

std::size_t reduce_scratch_bytes(std::uint64_t n) {
  detail::ScratchCarver c(nullptr);
  c.take<double>(tiles_for(n));
  return c.size();
}

void sign_pack(const Stream& s, const float* d_v, std::uint64_t n, std::uint32_t* d_words, float* d_scale,
               void* d_scratch, std::size_t scratch_bytes) {
  detail::dev(d_scale, "sign_pack: scale");
  if (n == 0) {
    detail::memset_async(s, d_scale, 0, sizeof(float));
    return;
  }
  detail::dev(d_v, "sign_pack: v");
  detail::dev(d_words, "sign_pack: words");
  detail::check_scratch(d_scratch, scratch_bytes, reduce_scratch_bytes(n), "sign_pack");
  const std::uint64_t tiles = tiles_for(n);
  detail::ScratchCarver c(d_scratch);
  double* d_partial = c.take<double>(tiles);
  const cudaStream_t cs = detail::cuda_stream(s);
  reduce_tiles_kernel<0><<<static_cast<unsigned>(tiles), kReduceThreads, 0, cs>>>(d_v, n, d_words, d_partial);
  SPARCOL_CUDA_CHECK_LAUNCH();
  reduce_final_kernel<<<1, kReduceThreads, 0, cs>>>(d_partial, tiles, n, 0, d_scale, nullptr);
  SPARCOL_CUDA_CHECK_LAUNCH();
}

void sum_squares(const Stream& s, const float* d_v, std::uint64_t n, double* d_sum, void* d_scratch,
                 std::size_t scratch_bytes) {
  detail::dev(d_sum, "sum_squares: sum");
  if (n == 0) {
    detail::memset_async(s, d_sum, 0, sizeof(double));
    return;
  }
  detail::dev(d_v, "sum_squares: v");
  detail::check_scratch(d_scratch, scratch_bytes, reduce_scratch_bytes(n), "sum_squares");
  const std::uint64_t tiles = tiles_for(n);
  detail::ScratchCarver c(d_scratch);
  double* d_partial = c.take<double>(tiles);
  const cudaStream_t cs = detail::cuda_stream(s);
  reduce_tiles_kernel<1><<<static_cast<unsigned>(tiles), kReduceThreads, 0, cs>>>(d_v, n, nullptr, d_partial);
  SPARCOL_CUDA_CHECK_LAUNCH();
  reduce_final_kernel<<<1, kReduceThreads, 0, cs>>>(d_partial, tiles, n, 1, nullptr, d_sum);
  SPARCOL_CUDA_CHECK_LAUNCH();
}

namespace {
void check_signs(const std::uint32_t* d_words, const float* d_scales, int ranks, std::uint64_t n,
                 float* d_out, const char* who) {
  SPARCOL_CHECK_ARG(ranks >= 1, -1,
                    std::string(who) + ": needs at least one rank, got " + std::to_string(ranks));
  if (n == 0) return;
  detail::dev(d_words, std::string(who) + ": words");
  detail::dev(d_scales, std::string(who) + ": scales");
  detail::dev(d_out, std::string(who) + ": out");
}
}  // namespace

void sign_decode_mean(const Stream& s, const std::uint32_t* d_words, const float* d_scales, int ranks,
                      std::uint64_t n, float* d_out) {
  check_signs(d_words, d_scales, ranks, n, d_out, "sign_decode_mean");
  detail::launch_elementwise(s, n,
                             detail::SignMeanOp{d_words, d_scales, ranks, SignLayout::words_for(n), d_out});
}

void sign_decode_majority(const Stream& s, const std::uint32_t* d_words, const float* d_scales, int ranks,
                          std::uint64_t n, float* d_out) {
  check_signs(d_words, d_scales, ranks, n, d_out, "sign_decode_majority");
  detail::launch_elementwise(
      s, n, detail::SignMajorityOp{d_words, d_scales, ranks, SignLayout::words_for(n), d_out});
}

}  // namespace sparcol::device
