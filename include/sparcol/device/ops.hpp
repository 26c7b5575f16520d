// Every GPU kernel's host launcher, declared once, and its CPU twin (namespace cpu).
//
// Launchers (namespace sparcol::device, only in builds with CUDA: SPARCOL_HAVE_CUDA) take a Stream,
// device pointers and 64-bit sizes. They check their arguments (sizes, device pointers, scratch
// size) and throw Error(kInvalidArgument) before launching anything; every launch is checked with
// cudaGetLastError (Error(kCuda)). Kernels never throw. Launches are asynchronous with respect to
// the host: results are ready after the stream is synchronized. No launcher allocates: the ones
// that need scratch take it, sized by the matching *_scratch_bytes query (CUB's temporary-storage
// pattern), so a training loop allocates once.
//
// CPU twins (namespace sparcol::device::cpu, in every build) take the same arguments on host
// pointers, minus the stream and the scratch. They run the same algorithm with the same per-element
// code (elementwise.hpp), and are both the fallback without a GPU and the reference of the GPU tests:
// a kernel's result equals its twin's bit for bit, including which elements top-k selects on ties.
// Twins check that their pointers are host memory (a device pointer is Error(kInvalidArgument)).
//
// Pointers: `d_` device, plain names in twins. In-place use is allowed only where a comment says so.
// Sizes n may exceed 2^31 everywhere; top-k and the sparse sum also need n <= kMaxElements (uint32
// indices on the wire, ALGORITHMS.md 0.1).
#pragma once

#include <cstddef>
#include <cstdint>

#include "sparcol/config.hpp"
#include "sparcol/core/types.hpp"
#include "sparcol/device/device.hpp"
#include "sparcol/device/elementwise.hpp"

namespace sparcol::device {

// ---------------------------------------------------------------------------------------------
// Parameter types shared by launchers and twins
// ---------------------------------------------------------------------------------------------

// The gradient a fused update consumes: g, plus coupled weight decay wd * z at the gradient point z
// (z may be null when wd == 0; pass x for methods that evaluate at x), times the DGC clipping factor
// `scale` (1 = off). See effective_gradient in elementwise.hpp.
struct GradientInput {
  const float* g = nullptr;
  const float* z = nullptr;
  float wd = 0.0f;
  float scale = 1.0f;
};

// DGC's strided sample (compress::dgc_sample_plan and compress::dgc_sample_offset compute it):
// sample elements offset, offset + stride, ... < n; the threshold is the top_samples-th largest
// magnitude among them. 1 <= top_samples <= number of samples, offset < stride.
struct SamplePlan {
  std::uint64_t stride = 1;
  std::uint64_t offset = 0;
  std::uint64_t top_samples = 1;
};

// The outcome of a sampled top-k (the diagnostics of compress::TopkSampledCompressor).
struct SampledTopkResult {
  std::uint64_t count = 0;          // pairs written (<= k)
  std::uint32_t threshold_key = 0;  // magnitude_key of the final threshold theta
  std::uint32_t reselections = 0;   // times theta was lowered (step 4)
  std::uint32_t used_exact = 0;     // 1 when the exact top-k was sent instead
};

// Adaptation constants of the sampled top-k (DGC code defaults; equal to
// compress::TopkSampledCompressor's, which the tests check).
inline constexpr double kSampledUpperBound = 1.3;
inline constexpr double kSampledLowerBound = 0.8;
inline constexpr int kSampledMaxReselections = 10;

#if SPARCOL_HAVE_CUDA

// ---------------------------------------------------------------------------------------------
// copy.cu: the device-to-device copy baselines of the kernel benchmark
// ---------------------------------------------------------------------------------------------
// d_dst <- d_src with cudaMemcpyAsync (the reference bandwidth), and with sparcol's own elementwise
// launch scheme (what the fused kernels can at best reach). No overlap allowed.
void copy(const Stream& s, float* d_dst, const float* d_src, std::uint64_t n);
void copy_kernel(const Stream& s, float* d_dst, const float* d_src, std::uint64_t n);

// ---------------------------------------------------------------------------------------------
// rbgs.cu: block gather/scatter with wrap-around (ALGORITHMS.md 1.3)
// ---------------------------------------------------------------------------------------------
// d_packed[p] <- d_v[b.element(p)] for p < b.length.
void rbgs_pack(const Stream& s, const float* d_v, const Block& b, float* d_packed);
// Pack and zero in one pass (the residual of an RBGS message): d_packed[p] <- d_v[element(p)],
// then d_v[element(p)] <- 0.
void rbgs_extract(const Stream& s, float* d_v, const Block& b, float* d_packed);
// d_out[b.element(p)] <- d_packed[p] / divisor; elements outside the block become 0 when
// zero_outside, and are untouched otherwise. divisor = K turns the all-reduced sum into the mean
// (Exchange: divided by K once); divisor 1 is an exact copy.
void rbgs_unpack(const Stream& s, const float* d_packed, const Block& b, float divisor, float* d_out,
                 bool zero_outside);

// ---------------------------------------------------------------------------------------------
// sign.cu: sign packing with scale, decoding, deterministic reductions (ALGORITHMS.md 1.4)
// ---------------------------------------------------------------------------------------------
// Scratch for sign_pack and sum_squares (per-tile partial sums).
std::size_t reduce_scratch_bytes(std::uint64_t n);
// d_words[SignLayout::words_for(n)]: the sign bits of v in SignLayout (core/payload.hpp).
// *d_scale = (float)(sum_j |v_j| / n) in double, summed in the fixed order of elementwise.hpp
// (0 for n = 0). Differs from compress::sign_scale only in summation order (relative ~1e-7).
void sign_pack(const Stream& s, const float* d_v, std::uint64_t n, std::uint32_t* d_words, float* d_scale,
               void* d_scratch, std::size_t scratch_bytes);
// *d_sum = sum_j v_j^2 in double (fixed order), for DGC's clipping norm.
void sum_squares(const Stream& s, const float* d_v, std::uint64_t n, double* d_sum, void* d_scratch,
                 std::size_t scratch_bytes);
// K gathered sign messages: rank r's words at d_words + r * ceil(n/32), its scale d_scales[r].
// Mean (coll::SignAllgather::mean_into): out_j = (0 + s_0j + s_1j + ... in rank order) / K with
// s_rj = +scale_r or -scale_r.
void sign_decode_mean(const Stream& s, const std::uint32_t* d_words, const float* d_scales, int ranks,
                      std::uint64_t n, float* d_out);
// Majority vote (coll::SignAllgather::majority_into): out_j = +m or -m, m = mean of the scales
// (summed in rank order), + where at least as many ranks voted + as -.
void sign_decode_majority(const Stream& s, const std::uint32_t* d_words, const float* d_scales, int ranks,
                          std::uint64_t n, float* d_out);

// ---------------------------------------------------------------------------------------------
// sparse_sum.cu: dense sum of gathered (index, value) pairs in rank order
// ---------------------------------------------------------------------------------------------
std::size_t sparse_sum_scratch_bytes(std::uint64_t pairs, std::uint64_t n);
// The pairs of all ranks concatenated in rank order (each rank's in the order it sent them).
// d_out[i] <- (0 + every value with index i, in that order) / divisor; 0 where no pair points.
// This is SparseAllgather::sum_into followed by the Exchange's division by K, bit for bit: the
// pairs are stably sorted by index (so equal indices keep their rank and in-rank order) and each
// run of equal indices is added by one thread, starting from +0. Duplicates within one rank or
// across ranks are therefore summed in the same order as on the CPU, and no float atomics are used.
// Pairs with an index >= n are ignored on the GPU (the twin throws Error(kInvalidArgument)): the
// senders check their indices (SparseAllgather::run) before anything travels.
void sparse_sum(const Stream& s, const Index* d_idx, const float* d_val, std::uint64_t pairs, std::uint64_t n,
                float divisor, float* d_out, void* d_scratch, std::size_t scratch_bytes);

// ---------------------------------------------------------------------------------------------
// topk.cu: exact top-k by magnitude (ALGORITHMS.md 1.1; same result as compress::TopkCompressor)
// ---------------------------------------------------------------------------------------------
std::size_t topk_scratch_bytes(std::uint64_t n, std::uint64_t k);
// Writes the k indices with the largest magnitude_key, ascending, to d_idx and their values to
// d_val. Ties at the k-th largest key go to the smaller indices; NaN ranks above +Inf. k <= n.
// k >= n gives every index. Method: radix select of the k-th largest key T (three histogram
// passes on 11/11/9-bit digits), the cut among ties at T when not all of them fit, then one
// order-preserving selection pass (CUB DeviceSelect) and a gather of the values.
void topk(const Stream& s, const float* d_v, std::uint64_t n, std::uint64_t k, Index* d_idx, float* d_val,
          void* d_scratch, std::size_t scratch_bytes);
// d_v[d_idx[j]] <- 0 for j < count, count = *d_count when d_count is given (device memory, e.g.
// SampledTopkResult::count), max_count otherwise. The error-feedback residual after a sparse message
// (sent coordinates become exactly 0) and DGC's momentum masking. Indices >= n are ignored.
void scatter_zero(const Stream& s, float* d_v, std::uint64_t n, const Index* d_idx, std::uint64_t max_count,
                  const std::uint64_t* d_count);

// ---------------------------------------------------------------------------------------------
// topk_sampled.cu: DGC's sampled-threshold top-k (compress::TopkSampledCompressor, steps 1-5)
// ---------------------------------------------------------------------------------------------
std::size_t topk_sampled_scratch_bytes(std::uint64_t n, std::uint64_t k, const SamplePlan& plan);
// Threshold theta from the sample, then the adaptation: up to 10 times, more than floor(1.3k)
// selected -> the exact top-k (as topk()); fewer than 0.8k -> theta *= 0.8f and select again; then
// the first min(count, k) elements with key >= theta, ascending. The outcome goes to *d_result
// (device memory); d_idx/d_val must hold k entries. 1 <= k <= n. The caller sends the exact top-k
// itself when plan.stride == 1 or k == n, as the compressor does (Error(kInvalidArgument) here).
void topk_sampled(const Stream& s, const float* d_v, std::uint64_t n, std::uint64_t k, const SamplePlan& plan,
                  Index* d_idx, float* d_val, SampledTopkResult* d_result, void* d_scratch,
                  std::size_t scratch_bytes);

// ---------------------------------------------------------------------------------------------
// optim_update.cu: fused single-pass optimizer updates (ALGORITHMS.md 2-8)
// ---------------------------------------------------------------------------------------------
// Each reads and writes every state vector once. `send` blocks: when send.length > 0 the block
// (RBGS message) is extracted in the same pass: its values go to d_send in wrap order and the
// message vector becomes exactly 0 there (v <- v - C(v)). With send.length == 0 the message stays
// whole for a top-k or sign compressor (then topk + scatter_zero). send.n must equal n.

// Gradient points. GMC+: z = x - c * u with c = alpha * eta (in float); DEF-A: z = x - alpha * e.
void detached_point(const Stream& s, float* d_z, const float* d_x, const float* d_d, float c,
                    std::uint64_t n);
// CSER: z = x + r.
void offset_point(const Stream& s, float* d_z, const float* d_x, const float* d_r, std::uint64_t n);

// GMC / GMC+ (5.2 steps 2-4): u <- u + (g' + beta * m), the message v_k, in u.
void gmc_accumulate(const Stream& s, float* d_u, const float* d_m, const GradientInput& g, float beta,
                    std::uint64_t n, const Block& send, float* d_send);
// The same when m is +0 outside the `count` distinct indices d_idx (m is a sparse aggregate): a dense
// pass with m = +0 and the exact message at the indices (saved before, written after it), bit for
// bit gmc_accumulate without a send block. d_save: scratch for `count` floats.
void gmc_accumulate_sparse(const Stream& s, float* d_u, const float* d_m, const Index* d_idx,
                           std::uint64_t count, const GradientInput& g, float beta, std::uint64_t n,
                           float* d_save);
// DGC (4, step 3): u <- beta*u + g', v <- v + u (Nesterov: u <- beta*(u + g'), v <- v + u + g').
// The message is v. mask_momentum (dgc-mfm) also zeroes u on the extracted block.
void dgc_accumulate(const Stream& s, float* d_u, float* d_v, const GradientInput& g, float beta,
                    bool nesterov, bool mask_momentum, std::uint64_t n, const Block& send, float* d_send);
// EF-SGDM and DEF-A (3, 7): m <- beta*m + g', e <- e + eta*m; EF-SGD when d_m is null: e <- e + eta*g'.
// The message is e.
void ef_accumulate(const Stream& s, float* d_e, float* d_m, const GradientInput& g, float beta, float eta,
                   std::uint64_t n, const Block& send, float* d_send);
// CSER (8) with C1 = zero (send.length == 0) or an RBGS block: m <- beta*m + g', delta = eta*m;
// r <- r - delta outside the block, delta to d_send inside (r <- r - 0 there).
void cser_accumulate(const Stream& s, float* d_m, float* d_r, const GradientInput& g, float beta, float eta,
                     std::uint64_t n, const Block& send, float* d_send);
// CSER with another C1 (top-k): m <- beta*m + g', d_delta <- eta*m (the message); then compress
// d_delta, exchange, and cser_apply.
void cser_momentum(const Stream& s, float* d_m, float* d_delta, const GradientInput& g, float beta, float eta,
                   std::uint64_t n);
// x <- x - a, r <- r - delta (delta holding its compression residual).
void cser_apply(const Stream& s, float* d_x, float* d_r, const float* d_a, const float* d_delta,
                std::uint64_t n);
// DMSGD with local momentum: m <- beta*m + g', d_v <- m (the message, a copy the exchange may zero).
void dmsgd_local(const Stream& s, float* d_m, float* d_v, const GradientInput& g, float beta,
                 std::uint64_t n);
// DMSGD with global momentum, after the dense mean a: m <- beta*m + a, x <- x - eta*m.
void dmsgd_apply(const Stream& s, float* d_m, float* d_x, const float* d_a, float beta, float eta,
                 std::uint64_t n);
// x <- x - eta*a, or with wd != 0 (DGC's weight decay outside compression) x <- x - eta*(a + wd*x).
// eta = 1 is the EF family's x - a, eta = -1 CSER's reset x + a.
void apply_update(const Stream& s, float* d_x, const float* d_a, float eta, float wd, std::uint64_t n);
// apply_update (wd = 0) at the `count` distinct indices d_idx only: the dense update, bit for bit,
// when a is +0 elsewhere and eta >= 0.
void sparse_apply_update(const Stream& s, float* d_x, const float* d_a, const Index* d_idx,
                         std::uint64_t count, float eta);

// ---------------------------------------------------------------------------------------------
// lowrank.cu: PowerSGD's small products, Gram-Schmidt and update (ALGORITHMS.md 10.3)
// ---------------------------------------------------------------------------------------------
// Row-major: A is n x m, B and Q are m x r, P is n x r. Every output element is a sum in double over
// the inner dimension in ascending order, done by one thread (no split reduction), so each equals the
// twin's bit for bit; the cost is one pass over A per column of the result (r is small: 1 to 4).
// d_out (n x r) = A B.
void lowrank_multiply(const Stream& s, const float* d_a, std::uint64_t n, std::uint64_t m, const float* d_b,
                      std::uint64_t r, float* d_out);
// d_out (m x r) = A^T P.
void lowrank_multiply_t(const Stream& s, const float* d_a, std::uint64_t n, std::uint64_t m, const float* d_p,
                        std::uint64_t r, float* d_out);
// d_out (n x m) = P Q^T.
void lowrank_outer(const Stream& s, const float* d_p, const float* d_q, std::uint64_t n, std::uint64_t m,
                   std::uint64_t r, float* d_out);
// In place, the paper code's Gram-Schmidt over the r columns of P, in column order: divide column c
// by ((float) sqrt(||P_c||^2) + 1e-8f), then subtract (float)<P_c, P_c2> P_c from every later column
// c2. One block; the norms and dots are summed by one thread in row order.
void orthonormalize_columns(const Stream& s, float* d_p, std::uint64_t n, std::uint64_t r);
// d_dst = a + b, d_dst = a - b, d_dst = src / divisor (d_dst may equal an input).
void add_vectors(const Stream& s, float* d_dst, const float* d_a, const float* d_b, std::uint64_t n);
void sub_vectors(const Stream& s, float* d_dst, const float* d_a, const float* d_b, std::uint64_t n);
void divide(const Stream& s, float* d_dst, const float* d_src, float divisor, std::uint64_t n);
// PowerSGD's momentum: a' = a (+ wd x when wd != 0), m <- lambda m + a', x <- x - eta (a' + m).
void powersgd_apply(const Stream& s, float* d_m, float* d_x, const float* d_a, float lambda, float eta,
                    float wd, std::uint64_t n);

#endif  // SPARCOL_HAVE_CUDA

// ---------------------------------------------------------------------------------------------
// CPU twins: the same operations on host memory, in every build
// ---------------------------------------------------------------------------------------------
namespace cpu {

void copy(float* dst, const float* src, std::uint64_t n);

void rbgs_pack(const float* v, const Block& b, float* packed);
void rbgs_extract(float* v, const Block& b, float* packed);
void rbgs_unpack(const float* packed, const Block& b, float divisor, float* out, bool zero_outside);

void sign_pack(const float* v, std::uint64_t n, std::uint32_t* words, float* scale);
void sum_squares(const float* v, std::uint64_t n, double* sum);
void sign_decode_mean(const std::uint32_t* words, const float* scales, int ranks, std::uint64_t n,
                      float* out);
void sign_decode_majority(const std::uint32_t* words, const float* scales, int ranks, std::uint64_t n,
                          float* out);

void sparse_sum(const Index* idx, const float* val, std::uint64_t pairs, std::uint64_t n, float divisor,
                float* out);

void topk(const float* v, std::uint64_t n, std::uint64_t k, Index* idx, float* val);
void scatter_zero(float* v, std::uint64_t n, const Index* idx, std::uint64_t count);
void topk_sampled(const float* v, std::uint64_t n, std::uint64_t k, const SamplePlan& plan, Index* idx,
                  float* val, SampledTopkResult* result);

void detached_point(float* z, const float* x, const float* d, float c, std::uint64_t n);
void offset_point(float* z, const float* x, const float* r, std::uint64_t n);
void gmc_accumulate(float* u, const float* m, const GradientInput& g, float beta, std::uint64_t n,
                    const Block& send, float* send_values);
void gmc_accumulate_sparse(float* u, const float* m, const Index* idx, std::uint64_t count,
                           const GradientInput& g, float beta, std::uint64_t n, float* save);
void dgc_accumulate(float* u, float* v, const GradientInput& g, float beta, bool nesterov, bool mask_momentum,
                    std::uint64_t n, const Block& send, float* send_values);
void ef_accumulate(float* e, float* m, const GradientInput& g, float beta, float eta, std::uint64_t n,
                   const Block& send, float* send_values);
void cser_accumulate(float* m, float* r, const GradientInput& g, float beta, float eta, std::uint64_t n,
                     const Block& send, float* send_values);
void cser_momentum(float* m, float* delta, const GradientInput& g, float beta, float eta, std::uint64_t n);
void cser_apply(float* x, float* r, const float* a, const float* delta, std::uint64_t n);
void dmsgd_local(float* m, float* v, const GradientInput& g, float beta, std::uint64_t n);
void dmsgd_apply(float* m, float* x, const float* a, float beta, float eta, std::uint64_t n);
void apply_update(float* x, const float* a, float eta, float wd, std::uint64_t n);
void sparse_apply_update(float* x, const float* a, const Index* idx, std::uint64_t count, float eta);

void lowrank_multiply(const float* a, std::uint64_t n, std::uint64_t m, const float* b, std::uint64_t r,
                      float* out);
void lowrank_multiply_t(const float* a, std::uint64_t n, std::uint64_t m, const float* p, std::uint64_t r,
                        float* out);
void lowrank_outer(const float* p, const float* q, std::uint64_t n, std::uint64_t m, std::uint64_t r,
                   float* out);
void orthonormalize_columns(float* p, std::uint64_t n, std::uint64_t r);
void add_vectors(float* dst, const float* a, const float* b, std::uint64_t n);
void sub_vectors(float* dst, const float* a, const float* b, std::uint64_t n);
void divide(float* dst, const float* src, float divisor, std::uint64_t n);
void powersgd_apply(float* m, float* x, const float* a, float lambda, float eta, float wd, std::uint64_t n);

}  // namespace cpu

}  // namespace sparcol::device
