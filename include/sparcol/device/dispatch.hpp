// One code path for host and device memory: an executor (Exec) says where work runs, and the
// dispatch functions call the CPU twin (host memory) or the kernel's launcher (device memory).
//
// The collectives' device path and the optimizers (optim/optimizer.hpp) are written once against
// this header. Run with Exec::host() they use the twins on host memory, which is how their logic is
// tested on machines without a GPU; run with Exec::device() the same code queues the kernels on a
// stream. The twins equal the kernels bit for bit (ops.hpp), so both runs give the same bits.
//
// Contracts:
// * Pointers must be in the executor's memory: host for Exec::host(), device for Exec::device()
//   (Error(kInvalidArgument) naming the argument otherwise, from the twin or the launcher).
// * Device work is queued on exec.stream() and is asynchronous, except for the functions that
//   return a value (sum_squares, topk_sampled, first_bad_index, count_nonzero), which wait for the stream.
// * Scratch the kernels need comes from the executor (Exec::scratch: grown on demand, reused), so
//   a steady-state loop allocates nothing.
// Without CUDA compiled in, Exec::device() is Error(kCuda) (no device exists), and every function
// runs the twin.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "sparcol/core/types.hpp"
#include "sparcol/device/device.hpp"
#include "sparcol/device/ops.hpp"

namespace sparcol::device {

class Exec {
 public:
  // Host memory, CPU twins.
  static Exec host();
  // Device memory, kernels on the current device: on `cuda_stream` (an opaque cudaStream_t the
  // caller keeps alive; nullptr: a new stream this executor owns). Error(kCuda) without a GPU.
  static Exec device(void* cuda_stream = nullptr);
  // For memory of `kind`: host(), or device() on `cuda_stream`.
  static Exec for_memory(MemKind kind, void* cuda_stream = nullptr);

  Exec(Exec&&) noexcept;
  Exec& operator=(Exec&&) noexcept;
  ~Exec();
  Exec(const Exec&) = delete;
  Exec& operator=(const Exec&) = delete;

  MemKind kind() const { return kind_; }
  bool on_device() const { return kind_ == MemKind::kDevice; }
  // The stream (device executors only; Error(kInternal) on a host executor).
  const Stream& stream() const;
  // Waits until queued work is done (nothing to do on the host); Error(kCuda) reports a failed
  // kernel.
  void synchronize() const;

  // At least `bytes` of scratch in this executor's memory, valid until the next scratch() call.
  // Growing it frees the old block (cudaFree waits for the device first, so queued kernels that
  // still use it are safe).
  void* scratch(std::size_t bytes);

  // Copies and fills within this executor's memory (queued on the stream for device memory).
  void copy(void* dst, const void* src, std::size_t bytes) const;
  void zero(void* dst, std::size_t bytes) const;
  // Between host memory and this executor's memory; wait for the stream first (synchronous).
  void upload(void* dst, const void* h_src, std::size_t bytes) const;
  void download(void* h_dst, const void* src, std::size_t bytes) const;

 private:
  Exec() = default;
  MemKind kind_ = MemKind::kHost;
  std::optional<Stream> stream_;
  std::vector<std::byte> h_scratch_;
  DeviceBuffer<std::byte> d_scratch_;
};

// An array of T in an executor's memory, zero-filled on creation. Move-only.
template <class T>
class Buffer {
 public:
  Buffer() = default;
  Buffer(Exec& exec, std::uint64_t count, const char* what = "buffer") { assign(exec, count, what); }

  // Reallocates for `count` elements of exec's memory, zero-filled (the old contents are lost).
  void assign(Exec& exec, std::uint64_t count, const char* what = "buffer") {
    kind_ = exec.kind();
    size_ = count;
    host_.clear();
    device_ = DeviceBuffer<T>();
    if (kind_ == MemKind::kDevice) {
      device_ = DeviceBuffer<T>(count, what);
    } else {
      host_.resize(static_cast<std::size_t>(count));
    }
    exec.zero(data(), bytes());
  }

  T* data() const { return kind_ == MemKind::kDevice ? device_.data() : const_cast<T*>(host_.data()); }
  std::uint64_t size() const { return size_; }
  std::size_t bytes() const { return static_cast<std::size_t>(size_) * sizeof(T); }
  MemKind kind() const { return kind_; }
  // (pointer, size): the span may point to device memory; never dereference it on the host then.
  std::span<T> span() const { return {data(), static_cast<std::size_t>(size_)}; }

 private:
  MemKind kind_ = MemKind::kHost;
  std::uint64_t size_ = 0;
  std::vector<T> host_;
  DeviceBuffer<T> device_;
};

namespace dispatch {

// See ops.hpp and coll_support.hpp for what each computes; here the executor picks the
// implementation.
void add_into(Exec& ex, float* dst, const float* src, std::uint64_t n);
// The smallest j < count with idx[j] >= n, or kNoBadIndex (coll_support.hpp). Waits.
std::uint64_t first_bad_index(Exec& ex, const Index* idx, std::uint64_t count, std::uint64_t n);
// The number of non-zero elements of v (NaN counts, -0 does not). Waits.
std::uint64_t count_nonzero(Exec& ex, const float* v, std::uint64_t n);

void rbgs_pack(Exec& ex, const float* v, const Block& b, float* packed);
void rbgs_extract(Exec& ex, float* v, const Block& b, float* packed);
void rbgs_unpack(Exec& ex, const float* packed, const Block& b, float divisor, float* out, bool zero_outside);

// sum_j v_j^2 in double, in the fixed order of elementwise.hpp. Waits.
double sum_squares(Exec& ex, const float* v, std::uint64_t n);
// Whether every v_j is finite. Host: one read pass; device: the squared norm is finite (each term
// is at most 2^256, far from double's limit). Waits.
bool all_finite(Exec& ex, const float* v, std::uint64_t n);
// sum_j v_j^2 in double for DGC's clipping norm: in index order on the host (what the CPU optimizer
// has always computed), in the fixed tile order of sum_squares on the device. The one documented
// place where host and device may differ, in the last bit of the clipping factor. Waits.
double norm_squares(Exec& ex, const float* v, std::uint64_t n);
void sign_pack(Exec& ex, const float* v, std::uint64_t n, std::uint32_t* words, float* scale);
void sign_decode_mean(Exec& ex, const std::uint32_t* words, const float* scales, int ranks, std::uint64_t n,
                      float* out);
void sign_decode_majority(Exec& ex, const std::uint32_t* words, const float* scales, int ranks,
                          std::uint64_t n, float* out);

// The gathered pairs of all ranks, concatenated in rank order, as one chunk (ops.hpp sparse_sum).
void sparse_sum(Exec& ex, SparseChunk pairs, std::uint64_t n, float divisor, float* out);
void topk(Exec& ex, const float* v, std::uint64_t n, std::uint64_t k, Index* idx, float* val);
void scatter_zero(Exec& ex, float* v, std::uint64_t n, const Index* idx, std::uint64_t count);
// Waits, and returns the outcome (count, threshold, ...).
SampledTopkResult topk_sampled(Exec& ex, const float* v, std::uint64_t n, std::uint64_t k,
                               const SamplePlan& plan, Index* idx, float* val);

void detached_point(Exec& ex, float* z, const float* x, const float* d, float c, std::uint64_t n);
void offset_point(Exec& ex, float* z, const float* x, const float* r, std::uint64_t n);
void gmc_accumulate(Exec& ex, float* u, const float* m, const GradientInput& g, float beta, std::uint64_t n,
                    const Block& send, float* send_values);
// gmc_accumulate (no send block) when m is +0 outside the `count` distinct indices idx (ops.hpp).
void gmc_accumulate_sparse(Exec& ex, float* u, const float* m, const Index* idx, std::uint64_t count,
                           const GradientInput& g, float beta, std::uint64_t n);
void dgc_accumulate(Exec& ex, float* u, float* v, const GradientInput& g, float beta, bool nesterov,
                    bool mask_momentum, std::uint64_t n, const Block& send, float* send_values);
void ef_accumulate(Exec& ex, float* e, float* m, const GradientInput& g, float beta, float eta,
                   std::uint64_t n, const Block& send, float* send_values);
void cser_accumulate(Exec& ex, float* m, float* r, const GradientInput& g, float beta, float eta,
                     std::uint64_t n, const Block& send, float* send_values);
void cser_momentum(Exec& ex, float* m, float* delta, const GradientInput& g, float beta, float eta,
                   std::uint64_t n);
void cser_apply(Exec& ex, float* x, float* r, const float* a, const float* delta, std::uint64_t n);
void dmsgd_local(Exec& ex, float* m, float* v, const GradientInput& g, float beta, std::uint64_t n);
void dmsgd_apply(Exec& ex, float* m, float* x, const float* a, float beta, float eta, std::uint64_t n);
void apply_update(Exec& ex, float* x, const float* a, float eta, float wd, std::uint64_t n);
void sparse_apply_update(Exec& ex, float* x, const float* a, const Index* idx, std::uint64_t count,
                         float eta);

// PowerSGD (ops.hpp, lowrank.cu): the products with double sums in a fixed order, the Gram-Schmidt,
// the elementwise helpers and the paper's momentum update.
void lowrank_multiply(Exec& ex, const float* a, std::uint64_t n, std::uint64_t m, const float* b,
                      std::uint64_t r, float* out);
void lowrank_multiply_t(Exec& ex, const float* a, std::uint64_t n, std::uint64_t m, const float* p,
                        std::uint64_t r, float* out);
void lowrank_outer(Exec& ex, const float* p, const float* q, std::uint64_t n, std::uint64_t m,
                   std::uint64_t r, float* out);
void orthonormalize_columns(Exec& ex, float* p, std::uint64_t n, std::uint64_t r);
void add_vectors(Exec& ex, float* dst, const float* a, const float* b, std::uint64_t n);
void sub_vectors(Exec& ex, float* dst, const float* a, const float* b, std::uint64_t n);
void divide(Exec& ex, float* dst, const float* src, float divisor, std::uint64_t n);
void powersgd_apply(Exec& ex, float* m, float* x, const float* a, float lambda, float eta, float wd,
                    std::uint64_t n);

}  // namespace dispatch

}  // namespace sparcol::device
