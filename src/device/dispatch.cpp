// Executors and the host/device dispatch (see dispatch.hpp). One of the places that test
// SPARCOL_HAVE_CUDA: without CUDA there are no launchers, and no device executor can exist.
#include "sparcol/device/dispatch.hpp"

#include <cmath>
#include <cstring>
#include <string>

#include "sparcol/config.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/device/coll_support.hpp"

namespace sparcol::device {

// ---------------------------------------------------------------------------------------------
// Exec
// ---------------------------------------------------------------------------------------------

Exec Exec::host() {
  return Exec();
}

Exec Exec::device(void* cuda_stream) {
  SPARCOL_CHECK(has_gpu(), ErrorCode::kCuda, -1,
                "a device executor needs a GPU: no CUDA device (" + no_gpu_reason() + ")");
  Exec e;
  e.kind_ = MemKind::kDevice;
  if (cuda_stream != nullptr) {
    e.stream_.emplace(Stream::borrow(cuda_stream));
  } else {
    e.stream_.emplace();
  }
  return e;
}

Exec Exec::for_memory(MemKind kind, void* cuda_stream) {
  return kind == MemKind::kDevice ? device(cuda_stream) : host();
}

Exec::Exec(Exec&&) noexcept = default;
Exec& Exec::operator=(Exec&&) noexcept = default;
Exec::~Exec() = default;

const Stream& Exec::stream() const {
  SPARCOL_CHECK(stream_.has_value(), ErrorCode::kInternal, -1, "Exec::stream() on a host executor");
  return *stream_;
}

void Exec::synchronize() const {
  if (on_device()) stream_->synchronize();
}

void* Exec::scratch(std::size_t bytes) {
  if (!on_device()) {
    if (h_scratch_.size() < bytes) h_scratch_.resize(bytes);
    return h_scratch_.data();
  }
  if (d_scratch_.bytes() < bytes) {
    d_scratch_ = DeviceBuffer<std::byte>();  // free first: the old block is not needed any more
    d_scratch_ = DeviceBuffer<std::byte>(bytes, "kernel scratch");
  }
  return d_scratch_.data();
}

void Exec::copy(void* dst, const void* src, std::size_t bytes) const {
  if (bytes == 0 || dst == src) return;
  if (on_device()) {
    detail::copy_bytes_async(*stream_, dst, src, bytes);
  } else {
    std::memmove(dst, src, bytes);
  }
}

void Exec::zero(void* dst, std::size_t bytes) const {
  if (bytes == 0) return;
  if (on_device()) {
    detail::memset_async(*stream_, dst, 0, bytes);
  } else {
    std::memset(dst, 0, bytes);
  }
}

void Exec::upload(void* dst, const void* h_src, std::size_t bytes) const {
  if (bytes == 0) return;
  if (on_device()) {
    stream_->synchronize();
    detail::copy_bytes(dst, h_src, bytes);
  } else {
    std::memmove(dst, h_src, bytes);
  }
}

void Exec::download(void* h_dst, const void* src, std::size_t bytes) const {
  if (bytes == 0) return;
  if (on_device()) {
    stream_->synchronize();
    detail::copy_bytes(h_dst, src, bytes);
  } else {
    std::memmove(h_dst, src, bytes);
  }
}

// ---------------------------------------------------------------------------------------------
// Dispatch
// ---------------------------------------------------------------------------------------------

namespace dispatch {

// Each function: the launcher on a device executor, the twin otherwise. (Without CUDA there are no
// launchers and no device executors: the twin is the only path.)
#if SPARCOL_HAVE_CUDA
#define SPARCOL_ON_DEVICE(ex, launch)  \
  do {                                 \
    if ((ex).on_device()) {            \
      const Stream& s = (ex).stream(); \
      launch;                          \
      return;                          \
    }                                  \
  } while (0)
#else
#define SPARCOL_ON_DEVICE(ex, launch) (void)(ex)
#endif

#if SPARCOL_HAVE_CUDA
namespace {
// Scratch for a kernel followed by room for a small result the host reads back (the executor waits
// before reading it, so reusing the block later is safe).
constexpr std::size_t kAlign = 256;
std::size_t aligned(std::size_t bytes) {
  return (bytes + kAlign - 1) / kAlign * kAlign;
}
}  // namespace
#endif

void add_into(Exec& ex, float* dst, const float* src, std::uint64_t n) {
  SPARCOL_ON_DEVICE(ex, device::add_into(s, dst, src, n));
  cpu::add_into(dst, src, n);
}

std::uint64_t first_bad_index(Exec& ex, const Index* idx, std::uint64_t count, std::uint64_t n) {
  std::uint64_t first = kNoBadIndex;
#if SPARCOL_HAVE_CUDA
  if (ex.on_device()) {
    auto* d_first = static_cast<std::uint64_t*>(ex.scratch(sizeof(std::uint64_t)));
    detail::memset_async(ex.stream(), d_first, 0xff, sizeof(std::uint64_t));
    device::first_bad_index(ex.stream(), idx, count, n, d_first);
    ex.download(&first, d_first, sizeof first);
    return first;
  }
#endif
  (void)ex;  // the host executor has nothing to do
  cpu::first_bad_index(idx, count, n, &first);
  return first;
}

bool all_finite(Exec& ex, const float* v, std::uint64_t n) {
  if (ex.on_device()) return std::isfinite(sum_squares(ex, v, n));
  if (n == 0) return true;
  require_host_pointer(v, "all_finite: v");
  // Finite <=> the exponent bits are not all ones; an AND over the words vectorizes (std::isfinite
  // does not).
  std::uint32_t all = 0xffffffffu;
  for (std::uint64_t i = 0; i < n; ++i) {
    std::uint32_t bits;
    std::memcpy(&bits, v + i, sizeof bits);
    all &= (bits & 0x7f800000u) == 0x7f800000u ? 0u : 0xffffffffu;
  }
  return all != 0;
}

double norm_squares(Exec& ex, const float* v, std::uint64_t n) {
  if (ex.on_device()) return sum_squares(ex, v, n);
  if (n > 0) require_host_pointer(v, "norm_squares: v");
  double sum = 0;
  for (std::uint64_t i = 0; i < n; ++i) sum += static_cast<double>(v[i]) * v[i];
  return sum;
}

std::uint64_t count_nonzero(Exec& ex, const float* v, std::uint64_t n) {
  std::uint64_t count = 0;
#if SPARCOL_HAVE_CUDA
  if (ex.on_device()) {
    auto* d_count = static_cast<std::uint64_t*>(ex.scratch(sizeof(std::uint64_t)));
    device::count_nonzero(ex.stream(), v, n, d_count);
    ex.download(&count, d_count, sizeof count);
    return count;
  }
#endif
  (void)ex;
  cpu::count_nonzero(v, n, &count);
  return count;
}

void rbgs_pack(Exec& ex, const float* v, const Block& b, float* packed) {
  SPARCOL_ON_DEVICE(ex, device::rbgs_pack(s, v, b, packed));
  cpu::rbgs_pack(v, b, packed);
}

void rbgs_extract(Exec& ex, float* v, const Block& b, float* packed) {
  SPARCOL_ON_DEVICE(ex, device::rbgs_extract(s, v, b, packed));
  cpu::rbgs_extract(v, b, packed);
}

void rbgs_unpack(Exec& ex, const float* packed, const Block& b, float divisor, float* out,
                 bool zero_outside) {
  SPARCOL_ON_DEVICE(ex, device::rbgs_unpack(s, packed, b, divisor, out, zero_outside));
  cpu::rbgs_unpack(packed, b, divisor, out, zero_outside);
}

double sum_squares(Exec& ex, const float* v, std::uint64_t n) {
  double sum = 0.0;
#if SPARCOL_HAVE_CUDA
  if (ex.on_device()) {
    const std::size_t bytes = aligned(reduce_scratch_bytes(n));
    auto* base = static_cast<char*>(ex.scratch(bytes + sizeof(double)));
    auto* d_sum = reinterpret_cast<double*>(base + bytes);
    device::sum_squares(ex.stream(), v, n, d_sum, base, bytes);
    ex.download(&sum, d_sum, sizeof sum);
    return sum;
  }
#endif
  (void)ex;
  cpu::sum_squares(v, n, &sum);
  return sum;
}

void sign_pack(Exec& ex, const float* v, std::uint64_t n, std::uint32_t* words, float* scale) {
#if SPARCOL_HAVE_CUDA
  if (ex.on_device()) {
    const std::size_t bytes = reduce_scratch_bytes(n);
    device::sign_pack(ex.stream(), v, n, words, scale, ex.scratch(bytes), bytes);
    return;
  }
#endif
  (void)ex;
  cpu::sign_pack(v, n, words, scale);
}

void sign_decode_mean(Exec& ex, const std::uint32_t* words, const float* scales, int ranks, std::uint64_t n,
                      float* out) {
  SPARCOL_ON_DEVICE(ex, device::sign_decode_mean(s, words, scales, ranks, n, out));
  cpu::sign_decode_mean(words, scales, ranks, n, out);
}

void sign_decode_majority(Exec& ex, const std::uint32_t* words, const float* scales, int ranks,
                          std::uint64_t n, float* out) {
  SPARCOL_ON_DEVICE(ex, device::sign_decode_majority(s, words, scales, ranks, n, out));
  cpu::sign_decode_majority(words, scales, ranks, n, out);
}

void sparse_sum(Exec& ex, SparseChunk pairs, std::uint64_t n, float divisor, float* out) {
  SPARCOL_CHECK_ARG(pairs.indices.size() == pairs.values.size(), -1,
                    "sparse_sum: " + std::to_string(pairs.indices.size()) + " indices but " +
                        std::to_string(pairs.values.size()) + " values");
  const Index* idx = pairs.indices.data();
  const float* val = pairs.values.data();
#if SPARCOL_HAVE_CUDA
  if (ex.on_device()) {
    const std::size_t bytes = sparse_sum_scratch_bytes(pairs.size(), n);
    device::sparse_sum(ex.stream(), idx, val, pairs.size(), n, divisor, out, ex.scratch(bytes), bytes);
    return;
  }
#endif
  (void)ex;
  cpu::sparse_sum(idx, val, pairs.size(), n, divisor, out);
}

void topk(Exec& ex, const float* v, std::uint64_t n, std::uint64_t k, Index* idx, float* val) {
#if SPARCOL_HAVE_CUDA
  if (ex.on_device()) {
    const std::size_t bytes = topk_scratch_bytes(n, k);
    device::topk(ex.stream(), v, n, k, idx, val, ex.scratch(bytes), bytes);
    return;
  }
#endif
  (void)ex;
  cpu::topk(v, n, k, idx, val);
}

void scatter_zero(Exec& ex, float* v, std::uint64_t n, const Index* idx, std::uint64_t count) {
  SPARCOL_ON_DEVICE(ex, device::scatter_zero(s, v, n, idx, count, nullptr));
  cpu::scatter_zero(v, n, idx, count);
}

SampledTopkResult topk_sampled(Exec& ex, const float* v, std::uint64_t n, std::uint64_t k,
                               const SamplePlan& plan, Index* idx, float* val) {
  SampledTopkResult result;
#if SPARCOL_HAVE_CUDA
  if (ex.on_device()) {
    const std::size_t bytes = aligned(topk_sampled_scratch_bytes(n, k, plan));
    auto* base = static_cast<char*>(ex.scratch(bytes + sizeof(SampledTopkResult)));
    auto* d_result = reinterpret_cast<SampledTopkResult*>(base + bytes);
    device::topk_sampled(ex.stream(), v, n, k, plan, idx, val, d_result, base, bytes);
    ex.download(&result, d_result, sizeof result);
    return result;
  }
#endif
  (void)ex;
  cpu::topk_sampled(v, n, k, plan, idx, val, &result);
  return result;
}

void detached_point(Exec& ex, float* z, const float* x, const float* d, float c, std::uint64_t n) {
  SPARCOL_ON_DEVICE(ex, device::detached_point(s, z, x, d, c, n));
  cpu::detached_point(z, x, d, c, n);
}

void offset_point(Exec& ex, float* z, const float* x, const float* r, std::uint64_t n) {
  SPARCOL_ON_DEVICE(ex, device::offset_point(s, z, x, r, n));
  cpu::offset_point(z, x, r, n);
}

void gmc_accumulate(Exec& ex, float* u, const float* m, const GradientInput& g, float beta, std::uint64_t n,
                    const Block& send, float* send_values) {
  SPARCOL_ON_DEVICE(ex, device::gmc_accumulate(s, u, m, g, beta, n, send, send_values));
  cpu::gmc_accumulate(u, m, g, beta, n, send, send_values);
}

void gmc_accumulate_sparse(Exec& ex, float* u, const float* m, const Index* idx, std::uint64_t count,
                           const GradientInput& g, float beta, std::uint64_t n) {
  auto* save = static_cast<float*>(ex.scratch(static_cast<std::size_t>(count) * sizeof(float)));
  SPARCOL_ON_DEVICE(ex, device::gmc_accumulate_sparse(s, u, m, idx, count, g, beta, n, save));
  cpu::gmc_accumulate_sparse(u, m, idx, count, g, beta, n, save);
}

void dgc_accumulate(Exec& ex, float* u, float* v, const GradientInput& g, float beta, bool nesterov,
                    bool mask_momentum, std::uint64_t n, const Block& send, float* send_values) {
  SPARCOL_ON_DEVICE(ex,
                    device::dgc_accumulate(s, u, v, g, beta, nesterov, mask_momentum, n, send, send_values));
  cpu::dgc_accumulate(u, v, g, beta, nesterov, mask_momentum, n, send, send_values);
}

void ef_accumulate(Exec& ex, float* e, float* m, const GradientInput& g, float beta, float eta,
                   std::uint64_t n, const Block& send, float* send_values) {
  SPARCOL_ON_DEVICE(ex, device::ef_accumulate(s, e, m, g, beta, eta, n, send, send_values));
  cpu::ef_accumulate(e, m, g, beta, eta, n, send, send_values);
}

void cser_accumulate(Exec& ex, float* m, float* r, const GradientInput& g, float beta, float eta,
                     std::uint64_t n, const Block& send, float* send_values) {
  SPARCOL_ON_DEVICE(ex, device::cser_accumulate(s, m, r, g, beta, eta, n, send, send_values));
  cpu::cser_accumulate(m, r, g, beta, eta, n, send, send_values);
}

void cser_momentum(Exec& ex, float* m, float* delta, const GradientInput& g, float beta, float eta,
                   std::uint64_t n) {
  SPARCOL_ON_DEVICE(ex, device::cser_momentum(s, m, delta, g, beta, eta, n));
  cpu::cser_momentum(m, delta, g, beta, eta, n);
}

void cser_apply(Exec& ex, float* x, float* r, const float* a, const float* delta, std::uint64_t n) {
  SPARCOL_ON_DEVICE(ex, device::cser_apply(s, x, r, a, delta, n));
  cpu::cser_apply(x, r, a, delta, n);
}

void dmsgd_local(Exec& ex, float* m, float* v, const GradientInput& g, float beta, std::uint64_t n) {
  SPARCOL_ON_DEVICE(ex, device::dmsgd_local(s, m, v, g, beta, n));
  cpu::dmsgd_local(m, v, g, beta, n);
}

void dmsgd_apply(Exec& ex, float* m, float* x, const float* a, float beta, float eta, std::uint64_t n) {
  SPARCOL_ON_DEVICE(ex, device::dmsgd_apply(s, m, x, a, beta, eta, n));
  cpu::dmsgd_apply(m, x, a, beta, eta, n);
}

void apply_update(Exec& ex, float* x, const float* a, float eta, float wd, std::uint64_t n) {
  SPARCOL_ON_DEVICE(ex, device::apply_update(s, x, a, eta, wd, n));
  cpu::apply_update(x, a, eta, wd, n);
}

void sparse_apply_update(Exec& ex, float* x, const float* a, const Index* idx, std::uint64_t count,
                         float eta) {
  SPARCOL_ON_DEVICE(ex, device::sparse_apply_update(s, x, a, idx, count, eta));
  cpu::sparse_apply_update(x, a, idx, count, eta);
}

void lowrank_multiply(Exec& ex, const float* a, std::uint64_t n, std::uint64_t m, const float* b,
                      std::uint64_t r, float* out) {
  SPARCOL_ON_DEVICE(ex, device::lowrank_multiply(s, a, n, m, b, r, out));
  cpu::lowrank_multiply(a, n, m, b, r, out);
}

void lowrank_multiply_t(Exec& ex, const float* a, std::uint64_t n, std::uint64_t m, const float* p,
                        std::uint64_t r, float* out) {
  SPARCOL_ON_DEVICE(ex, device::lowrank_multiply_t(s, a, n, m, p, r, out));
  cpu::lowrank_multiply_t(a, n, m, p, r, out);
}

void lowrank_outer(Exec& ex, const float* p, const float* q, std::uint64_t n, std::uint64_t m,
                   std::uint64_t r, float* out) {
  SPARCOL_ON_DEVICE(ex, device::lowrank_outer(s, p, q, n, m, r, out));
  cpu::lowrank_outer(p, q, n, m, r, out);
}

void orthonormalize_columns(Exec& ex, float* p, std::uint64_t n, std::uint64_t r) {
  SPARCOL_ON_DEVICE(ex, device::orthonormalize_columns(s, p, n, r));
  cpu::orthonormalize_columns(p, n, r);
}

void add_vectors(Exec& ex, float* dst, const float* a, const float* b, std::uint64_t n) {
  SPARCOL_ON_DEVICE(ex, device::add_vectors(s, dst, a, b, n));
  cpu::add_vectors(dst, a, b, n);
}

void sub_vectors(Exec& ex, float* dst, const float* a, const float* b, std::uint64_t n) {
  SPARCOL_ON_DEVICE(ex, device::sub_vectors(s, dst, a, b, n));
  cpu::sub_vectors(dst, a, b, n);
}

void divide(Exec& ex, float* dst, const float* src, float divisor, std::uint64_t n) {
  SPARCOL_ON_DEVICE(ex, device::divide(s, dst, src, divisor, n));
  cpu::divide(dst, src, divisor, n);
}

void powersgd_apply(Exec& ex, float* m, float* x, const float* a, float lambda, float eta, float wd,
                    std::uint64_t n) {
  SPARCOL_ON_DEVICE(ex, device::powersgd_apply(s, m, x, a, lambda, eta, wd, n));
  cpu::powersgd_apply(m, x, a, lambda, eta, wd, n);
}

#undef SPARCOL_ON_DEVICE

}  // namespace dispatch

}  // namespace sparcol::device
